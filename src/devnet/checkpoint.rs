//! The devnet's checkpoint chain (`CHECKPOINTS.md` §13), played by the real components: the
//! sequencer funds and registers the genesis, the verifiers' daemons sign each checkpoint
//! round's M, the sequencer broadcasts the signed candidate with its fee-paying child as a
//! package, Bitcoin Core's consensus checks the threshold, the node moves its base, and the
//! reader follows the chain from the genesis outpoint over JSON-RPC alone.

use std::sync::Arc;

use bitcoin::{OutPoint, Txid};
use fiamma_finality::checkpoint::{CheckpointKind, ReaderParams, THRESHOLD, WEIGHT_SCALE};
use fiamma_proto::client::{
    CheckpointNode, CheckpointOutputView, CheckpointRoundView, CheckpointStatus, GrpcNode,
};
use fiamma_sequencer::sequencer::CheckpointOutcome;

use super::chain::DevnetChain;
use super::error::DevnetError;
use super::sequencer::Sequencer;
use super::setup;
use super::story::{Narrator, Roster};
use crate::btc::RpcBackend;
use crate::node::checkpoint::source::read_chain;

/// How long the story waits for a checkpoint step.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(40);
/// Between two looks at the node.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The checkpoint part of the story: the node, the chain and the sequencer it talks to.
pub(super) struct Checkpoints<'a> {
    pub(super) node: GrpcNode,
    pub(super) chain: &'a DevnetChain,
    pub(super) bitcoin: RpcBackend,
    pub(super) sequencer: &'a Sequencer,
}

fn refused(e: impl std::fmt::Display) -> DevnetError {
    DevnetError::refused("checkpoint", e)
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".to_owned();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

impl Checkpoints<'_> {
    /// Fails once [`PATIENCE`] has passed since `start`, naming `what`.
    fn patience(start: tokio::time::Instant, what: &str) -> Result<(), DevnetError> {
        if start.elapsed() > PATIENCE {
            return Err(DevnetError::Timeout {
                what: what.to_owned(),
                after: PATIENCE,
            });
        }
        Ok(())
    }

    /// The sequencer pays V to the genesis script the node serves and registers it once it is
    /// k deep. Returns the genesis.
    pub(super) async fn genesis(
        &self,
        say: &Narrator,
        roster: &Roster,
    ) -> Result<CheckpointOutputView, DevnetError> {
        self.sequencer.sync().await?;
        let view = self
            .node
            .checkpoints()
            .await
            .map_err(refused)?
            .ok_or_else(|| refused("the node runs without checkpoints"))?;
        let (h0, _) = view
            .genesis_script
            .ok_or_else(|| refused("no genesis script served"))?;
        let genesis = loop {
            if let Some(g) = self.sequencer.checkpoint_genesis().await? {
                break g;
            }
            self.chain.mine(1, &setup::miner_script()).await?;
        };
        let set = self.set_line(h0, roster).await?;
        say.say(format!(
            "sequencer: funded the checkpoint genesis {}: {} sat to the checkpoint output of round \
             {h0} (the first round with stake; weights {set}), registered with the node once k = {} \
             deep",
            genesis.outpoint,
            setup::CHECKPOINT_VALUE.to_sat(),
            setup::CONFIRMATION_DEPTH
        ));
        Ok(genesis)
    }

    /// A round's set as "A 37.5%, …" of the quantized weight.
    async fn set_line(&self, round: u64, roster: &Roster) -> Result<String, DevnetError> {
        let view = fiamma_proto::client::FinalityNode::round(&self.node, round)
            .await
            .map_err(refused)?
            .ok_or_else(|| refused(format!("round {round} not served")))?;
        let set = fiamma_finality::checkpoint::CheckpointSet::from_powers(view.active_set)
            .map_err(refused)?;
        Ok(set
            .members()
            .iter()
            .map(|m| {
                format!(
                    "{} {}",
                    roster.name(&m.key),
                    pct(u64::from(m.weight), u64::from(WEIGHT_SCALE))
                )
            })
            .collect::<Vec<_>>()
            .join(", "))
    }

    /// The next checkpoint round after round `after` on `base` is signed by the verifiers'
    /// daemons, broadcast by the sequencer as a package, mined and buried k deep; the node's
    /// base moves to it. Returns its round and txid.
    pub(super) async fn checkpoint(
        &self,
        say: &Narrator,
        roster: &Roster,
        base: OutPoint,
        after: u64,
    ) -> Result<(u64, Txid), DevnetError> {
        let start = tokio::time::Instant::now();
        let ready: CheckpointRoundView = loop {
            let view = self.node.checkpoints().await.map_err(refused)?;
            if let Some(latest) = view.and_then(|v| v.latest).filter(|l| {
                l.base.outpoint == base && l.round > after && l.status == CheckpointStatus::Ready
            }) {
                break latest;
            }
            Self::patience(start, "a checkpoint round READY")?;
            tokio::time::sleep(POLL).await;
        };
        let h = ready.round;
        let txid = ready.candidate.compute_txid();
        let signers: Vec<&str> = ready
            .votes
            .iter()
            .map(|(v, _)| roster.name(&v.voter))
            .collect();
        say.say(format!(
            "node: round {h} is a checkpoint round (every {} rounds): candidate {txid} spends {base} \
             into round {h}'s set ({}); verifiers {} signed its sighash M with their round-{h} \
             randomness: {} of the round's power, {} of the base set's weight (T = {}): READY",
            setup::CHECKPOINT_INTERVAL,
            self.set_line(h, roster).await?,
            signers.join(", "),
            pct(ready.voted_power_sat, ready.total_power_sat),
            pct(u64::from(ready.base_weight_signed), u64::from(WEIGHT_SCALE)),
            pct(u64::from(THRESHOLD), u64::from(WEIGHT_SCALE)),
        ));
        self.sequencer.sync().await?;
        let sent = self.sequencer.checkpoint_pass().await?;
        let child = sent
            .iter()
            .find_map(|o| match o {
                CheckpointOutcome::Broadcast {
                    round,
                    child,
                    result,
                    ..
                } if *round == h && result.is_empty() => Some(*child),
                _ => None,
            })
            .ok_or_else(|| {
                DevnetError::unexpected(
                    "sequencer",
                    format!("checkpoint {h} broadcast"),
                    format!("{sent:?}"),
                )
            })?;
        say.say(format!(
            "sequencer: checked the signed candidate (txid {txid}, shape), broadcast it with its \
             fee-paying child {child} as a package: the candidate pays 0, the child spends its P2A \
             output"
        ));
        let (_, tip) = self.chain.mine(1, &setup::miner_script()).await?;
        let at = self
            .chain
            .mined_at(&txid)
            .await?
            .ok_or_else(|| DevnetError::unexpected("mining", format!("{txid} mined"), "not"))?;
        say.say(format!(
            "bitcoin: checkpoint {txid} mined at height {at} (tip {tip}): Bitcoin Core's consensus \
             checked that signatures worth at least T of the base set's weight spent {base}"
        ));
        self.chain
            .mine(setup::CONFIRMATION_DEPTH - 1, &setup::miner_script())
            .await?;
        let new_base = OutPoint::new(txid, 0);
        let start = tokio::time::Instant::now();
        let moved = loop {
            let view = self.node.checkpoints().await.map_err(refused)?;
            if let Some(b) = view.and_then(|v| v.base).filter(|b| b.outpoint == new_base) {
                break b;
            }
            Self::patience(start, "the node's checkpoint base to move")?;
            tokio::time::sleep(POLL).await;
        };
        let done = self.sequencer.checkpoint_pass().await?;
        if !done
            .iter()
            .any(|o| matches!(o, CheckpointOutcome::Done { round, .. } if *round == h))
        {
            return Err(DevnetError::unexpected(
                "sequencer",
                format!("checkpoint {h} done k deep"),
                format!("{done:?}"),
            ));
        }
        say.say(format!(
            "node: checkpoint of round {} is k = {} deep: its output {new_base} is the base of \
             the next candidate; the sequencer's pass sees it done",
            moved.round,
            setup::CONFIRMATION_DEPTH
        ));
        Ok((h, txid))
    }

    /// The reader follows the chain from the genesis outpoint over JSON-RPC alone and prints
    /// the latest k-deep checkpoint. Returns its round.
    pub(super) async fn read(
        &self,
        say: &Narrator,
        genesis: &CheckpointOutputView,
    ) -> Result<u64, DevnetError> {
        let chain = read_chain(
            Arc::new(self.bitcoin.clone()),
            ReaderParams {
                genesis: genesis.outpoint,
                genesis_round: genesis.round,
                value: setup::CHECKPOINT_VALUE,
            },
        )
        .await
        .map_err(refused)?;
        let tip = crate::btc::Backend::tip(&self.bitcoin)
            .await
            .map_err(refused)?
            .height;
        let latest = chain
            .latest_confirmed(tip, setup::CONFIRMATION_DEPTH)
            .ok_or_else(|| refused("the reader found no k-deep checkpoint"))?;
        let kind = match latest.payload.kind {
            CheckpointKind::Quorum => "quorum",
            CheckpointKind::Recovery => "recovery",
        };
        say.say(format!(
            "reader: from the genesis outpoint alone over JSON-RPC (proof of work, Merkle \
             inclusion, template): {} checkpoints; latest: round {} ({kind}) in block {}, round \
             hash {}…, state root {}… (checkpoint_state = none)",
            chain.links.len(),
            latest.payload.round,
            latest.height,
            hex::encode(&latest.payload.round_hash.0[..8]),
            hex::encode(&latest.payload.state[..8]),
        ));
        Ok(latest.payload.round)
    }
}
