//! The sequencer component: `new`, `submit`, `anchor_round`, `step` (settle recorded anchors,
//! then anchor each due final round, then broadcast the node's READY checkpoint as a package),
//! `checkpoint_genesis`, and the daemon loop through [`fiamma_role::component`],
//! woken by the node's `RoundFinal` events.
//!
//! A round's anchor is signed once, recorded, and only then broadcast; later passes send the
//! recorded bytes again until they are k deep. So a crash anywhere leaves at most one anchor
//! per round: the recorded one. New anchors never spend the inputs of recorded ones still
//! pending, which keeps them valid even when the wallet did not learn of them before a crash.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bdk_bitcoind_rpc::bitcoincore_rpc::Client;
use bitcoin::{Amount, FeeRate, OutPoint, Txid};
use fiamma_btc::{Backend, BackendError, TxStatus};
use fiamma_finality::zk::ZkProof;
use fiamma_proto::client::{
    CheckpointKind, CheckpointNode, CheckpointOutputView, CheckpointStatus, FinalityEventStream,
    NodeError, RoundStatus, SequencerNode,
};
use fiamma_proto::finality::v1 as fpb;
use fiamma_role::component::Component;
use fiamma_role::daemon::{Health, Metrics, Shutdown};
use fiamma_role::store::unix_now;
use fiamma_staking::context::SigningContexts;
use fiamma_wallet::{Wallet, WalletError};
use tokio::sync::Mutex;

use crate::checkpoint::Track as CheckpointTrack;
use crate::plan::{self, CheckError, CheckedRound, Schedule, Track};
use crate::store::{AnchorRow, PackageRow, Progress, SequencerStore, StoreError};

/// Rounds asked of the node per page.
const PAGE: u32 = 100;

/// How a sequencer runs, apart from its node, Bitcoin, wallet and store.
#[derive(Debug, Clone)]
pub struct SequencerSettings {
    /// The signing contexts the votes are checked under.
    pub contexts: SigningContexts,
    /// Anchor the final rounds divisible by this.
    pub anchor_every: u64,
    /// The first round to anchor; `None`: the newest closed round at the first start.
    pub start_round: Option<u64>,
    /// k.
    pub confirmations: u32,
    /// Fee rate of the anchors.
    pub fee_rate: FeeRate,
    /// Anchors not yet mined, at most.
    pub max_pending: usize,
    /// Longest wait between two passes.
    pub poll_interval: Duration,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum SequencerError {
    /// The node could not be asked.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The Bitcoin node could not be asked.
    #[error("bitcoin: {0}")]
    Bitcoin(#[from] BackendError),
    /// The wallet failed (sync, coin selection, signing).
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The round's certificate does not check, or the round is not final.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The node answered another proof id than the proof's own.
    #[error("the node answered proof id {answered} for proof {expected}")]
    ProofId {
        /// The proof's id.
        expected: String,
        /// The node's.
        answered: String,
    },
    /// The node does not know the round (not closed yet).
    #[error("round {0} is not closed on the node")]
    NotClosed(u64),
    /// The round is closed but did not become final within the wait.
    #[error("round {0} is closed but not final yet")]
    NotFinalYet(u64),
    /// A READY checkpoint round's signed transaction does not check.
    #[error(transparent)]
    Ready(#[from] crate::checkpoint::ReadyError),
    /// The child paying for a checkpoint cannot be built.
    #[error("checkpoint child: {0}")]
    Child(#[from] crate::checkpoint::ChildError),
    /// The node runs without checkpoints (or this sequencer was not given its checkpoint API).
    #[error("the node runs without checkpoints")]
    NoCheckpoints,
    /// Round h₀ is not closed yet, so the genesis script is not known.
    #[error("no checkpoint genesis script yet: no round from {0} on with an active set is closed")]
    GenesisNotOpen(u64),
    /// The genesis funding did not get k deep within the wait.
    #[error("the genesis funding {txid} has {confirmations} of {needed} confirmations; run again to keep waiting")]
    GenesisNotDeep {
        /// The funding transaction.
        txid: Txid,
        /// Its confirmations.
        confirmations: u32,
        /// k.
        needed: u32,
    },
}

/// What became of one checkpoint package in a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointOutcome {
    /// Recorded before, broadcast now; `result` is what Bitcoin said (`""`: accepted).
    Broadcast {
        /// The checkpoint round.
        round: u64,
        /// The candidate.
        txid: Txid,
        /// The child.
        child: Txid,
        /// What the Bitcoin node said.
        result: String,
    },
    /// In the mempool or mined fewer than k deep.
    Pending {
        /// The checkpoint round.
        round: u64,
        /// The candidate.
        txid: Txid,
        /// Its confirmations.
        confirmations: u32,
    },
    /// The candidate is k deep.
    Done {
        /// The checkpoint round.
        round: u64,
        /// The candidate.
        txid: Txid,
        /// Its confirmations.
        confirmations: u32,
    },
    /// The node says the base moved on without it: no longer sent.
    Superseded {
        /// The checkpoint round.
        round: u64,
        /// The candidate.
        txid: Txid,
    },
}

/// What `fiamma sequencer checkpoint genesis` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenesisOutcome {
    /// The node had a genesis already; nothing paid by this call.
    AlreadyRegistered(CheckpointOutputView),
    /// The recorded funding is k deep and the node registered it now.
    Registered(CheckpointOutputView),
}

/// What became of one anchor in a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorOutcome {
    /// Signed, recorded and broadcast now; `result` is what Bitcoin said (`""`: accepted).
    Broadcast {
        /// The round.
        round: u64,
        /// The anchor transaction.
        txid: Txid,
        /// What the Bitcoin node said.
        result: String,
    },
    /// Recorded before, seen in the mempool or mined fewer than k deep.
    Pending {
        /// The round.
        round: u64,
        /// The anchor transaction.
        txid: Txid,
        /// Its confirmations.
        confirmations: u32,
    },
    /// k deep: done.
    Done {
        /// The round.
        round: u64,
        /// The anchor transaction.
        txid: Txid,
        /// Its confirmations.
        confirmations: u32,
    },
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepReport {
    /// The Bitcoin tip height.
    pub tip: u32,
    /// The newest closed round.
    pub latest_round: u64,
    /// The lowest round not settled after the step.
    pub next_round: u64,
    /// The anchors looked at or made.
    pub anchors: Vec<AnchorOutcome>,
    /// Rounds that expired without becoming final: nothing to anchor.
    pub expired: Vec<u64>,
    /// A due final round whose certificate did not check (looked at again next step).
    pub refused: Option<String>,
    /// The checkpoint packages looked at or sent.
    pub checkpoints: Vec<CheckpointOutcome>,
    /// A READY checkpoint round that was not sent, and why (looked at again next step).
    pub checkpoint_refused: Option<String>,
}

/// Submits `proof` to `node` and records its id in `store`; the id and the round the node put
/// it in. Needs no wallet.
///
/// # Errors
/// [`SequencerError::Node`] when the node refuses it, [`SequencerError::ProofId`] when it
/// answers another id, [`SequencerError::Store`].
pub async fn submit(
    node: &dyn SequencerNode,
    store: &SequencerStore,
    proof: &ZkProof,
) -> Result<([u8; 32], u64), SequencerError> {
    let (id, round) = node.submit_proof(proof).await?;
    let expected = *proof.proof_id().as_bytes();
    if id != expected {
        return Err(SequencerError::ProofId {
            expected: hex::encode(expected),
            answered: hex::encode(id),
        });
    }
    store.note_proof(&id, round).await?;
    Ok((id, round))
}

/// A sequencer.
pub struct Sequencer {
    settings: SequencerSettings,
    node: Arc<dyn SequencerNode>,
    bitcoin: Arc<dyn Backend>,
    rpc: Arc<Client>,
    wallet: Mutex<Wallet>,
    store: SequencerStore,
    metrics: Metrics,
    health: Health,
    seen_event: AtomicU64,
    checkpoints: Option<Arc<dyn CheckpointNode>>,
}

impl Sequencer {
    /// A sequencer asking `node`, broadcasting through `bitcoin`, paying from `wallet` (synced
    /// over `rpc`), keeping its progress in `store`.
    pub fn new(
        settings: SequencerSettings,
        node: Arc<dyn SequencerNode>,
        bitcoin: Arc<dyn Backend>,
        rpc: Arc<Client>,
        wallet: Wallet,
        store: SequencerStore,
    ) -> Self {
        Sequencer {
            settings,
            node,
            bitcoin,
            rpc,
            wallet: Mutex::new(wallet),
            store,
            metrics: Metrics::default(),
            health: Health::default(),
            seen_event: AtomicU64::new(0),
            checkpoints: None,
        }
    }

    /// This sequencer, also broadcasting the node's READY checkpoints (`CHECKPOINTS.md`
    /// §13.7) and able to fund the genesis, asking `node` about them.
    #[must_use]
    pub fn with_checkpoints(mut self, node: Arc<dyn CheckpointNode>) -> Self {
        self.checkpoints = Some(node);
        self
    }

    /// Its metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Its health.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Its local store.
    pub fn store(&self) -> &SequencerStore {
        &self.store
    }

    /// Its node.
    pub fn node(&self) -> &Arc<dyn SequencerNode> {
        &self.node
    }

    /// Submits `proof` to the node and records its id; the id and the round it will be in.
    ///
    /// # Errors
    /// As [`submit`].
    pub async fn submit(&self, proof: &ZkProof) -> Result<([u8; 32], u64), SequencerError> {
        let submitted = submit(self.node.as_ref(), &self.store, proof).await?;
        self.metrics
            .inc("fiamma_sequencer_proofs_submitted_total", &[]);
        Ok(submitted)
    }

    /// Brings the wallet up to the Bitcoin node's tip and mempool; the height it reached.
    /// `step` does this itself; a caller of [`Sequencer::anchor_round`] alone does it first,
    /// so that the anchor is paid from coins that still exist.
    ///
    /// # Errors
    /// [`SequencerError::Wallet`] when the node cannot be read or a block does not connect.
    pub async fn sync_wallet(&self) -> Result<u32, SequencerError> {
        Ok(self.wallet.lock().await.sync(self.rpc.clone()).await?)
    }

    /// The closed round `round`, checked: its certificate proves it final.
    ///
    /// # Errors
    /// [`SequencerError::NotClosed`], [`SequencerError::Check`], [`SequencerError::Node`].
    pub async fn checked_round(&self, round: u64) -> Result<CheckedRound, SequencerError> {
        let view = self
            .node
            .round_certificate(round)
            .await?
            .ok_or(SequencerError::NotClosed(round))?;
        Ok(plan::check(&view, &self.settings.contexts)?)
    }

    /// Anchors final round `round` once: the recorded anchor when there is one (sent again
    /// unless k deep), else the round is checked, its anchor signed, recorded and broadcast.
    ///
    /// # Errors
    /// [`SequencerError`]; nothing is broadcast that was not recorded first.
    pub async fn anchor_round(&self, round: u64) -> Result<AnchorOutcome, SequencerError> {
        if let Some(row) = self.store.anchor(round).await? {
            return self.settle(&row).await;
        }
        let checked = self.checked_round(round).await?;
        let spent = self.promised_coins().await?;
        let tx = {
            let mut wallet = self.wallet.lock().await;
            let mut psbt = wallet
                .build_payment_excluding(
                    &[(checked.anchor.script_pubkey(), Amount::ZERO)],
                    self.settings.fee_rate,
                    &spent,
                )
                .await?;
            wallet.sign_payment(&mut psbt)?
        };
        let row = self.store.record_anchor(&checked.anchor, &tx).await?;
        tracing::info!(
            round,
            txid = %row.tx.compute_txid(),
            signers = checked.signers,
            voted = %checked.voted_power,
            total = %checked.total_power,
            "certificate checked; anchor recorded"
        );
        self.broadcast(&row).await
    }

    /// The coins spent by recorded transactions not settled yet (anchors, checkpoint
    /// children, the genesis funding): a new payment must not spend them, so that those stay
    /// valid even when the wallet did not learn of them before a crash.
    async fn promised_coins(&self) -> Result<Vec<OutPoint>, SequencerError> {
        let anchors = self.store.pending().await?.into_iter().map(|a| a.tx);
        let children = self
            .store
            .packages(true)
            .await?
            .into_iter()
            .map(|p| p.child);
        let genesis = self
            .store
            .genesis()
            .await?
            .filter(|g| !g.registered)
            .map(|g| g.tx);
        Ok(anchors
            .chain(children)
            .chain(genesis)
            .flat_map(|tx| tx.input.into_iter().map(|i| i.previous_output))
            .collect())
    }

    /// Sends `row`'s transaction and notes what Bitcoin said; the wallet learns of it so its
    /// coins are not spent again.
    async fn broadcast(&self, row: &AnchorRow) -> Result<AnchorOutcome, SequencerError> {
        let txid = row.tx.compute_txid();
        let result = match self.bitcoin.broadcast(&row.tx).await {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        self.store.note_broadcast(row.round, &result).await?;
        self.wallet
            .lock()
            .await
            .record_unconfirmed(row.tx.clone(), u64::try_from(unix_now()).unwrap_or(0))
            .await?;
        let label = if result.is_empty() {
            "accepted"
        } else {
            "refused"
        };
        self.metrics
            .inc("fiamma_sequencer_broadcasts_total", &[("result", label)]);
        if !result.is_empty() {
            tracing::warn!(round = row.round, %txid, %result, "anchor broadcast refused");
        }
        Ok(AnchorOutcome::Broadcast {
            round: row.round,
            txid,
            result,
        })
    }

    /// Looks up a recorded anchor on Bitcoin: done once k deep, sent again when neither mined
    /// nor in the mempool.
    async fn settle(&self, row: &AnchorRow) -> Result<AnchorOutcome, SequencerError> {
        let txid = row.tx.compute_txid();
        let status = self.bitcoin.tx_status(&txid).await?;
        let round = row.round;
        match plan::track(&status, self.settings.confirmations) {
            Track::Rebroadcast => self.broadcast(row).await,
            Track::InMempool => {
                self.store.note_depth(round, 0, false).await?;
                Ok(AnchorOutcome::Pending {
                    round,
                    txid,
                    confirmations: 0,
                })
            }
            Track::Confirming(confirmations) => {
                self.store.note_depth(round, confirmations, false).await?;
                Ok(AnchorOutcome::Pending {
                    round,
                    txid,
                    confirmations,
                })
            }
            Track::Done(confirmations) => {
                self.store.note_depth(round, confirmations, true).await?;
                if !row.done {
                    self.metrics.inc("fiamma_sequencer_anchors_done_total", &[]);
                }
                Ok(AnchorOutcome::Done {
                    round,
                    txid,
                    confirmations,
                })
            }
        }
    }

    /// One pass: the wallet synced, every recorded anchor not k deep settled, then each due
    /// round from the first unsettled one on: final ones anchored, expired ones skipped, up to
    /// the first open one (or `max_pending` unmined anchors).
    ///
    /// # Errors
    /// [`SequencerError`] when the node, Bitcoin, the wallet or the store cannot be asked; a
    /// certificate that does not check is in the report instead (and blocks that round).
    pub async fn step(&self) -> Result<StepReport, SequencerError> {
        let tip = self.bitcoin.tip().await?.height;
        self.sync_wallet().await?;
        let mut report = StepReport {
            tip,
            ..StepReport::default()
        };
        let mut unmined = 0usize;
        for row in self.store.pending().await? {
            let outcome = self.settle(&row).await?;
            if !matches!(
                outcome,
                AnchorOutcome::Done { .. }
                    | AnchorOutcome::Pending {
                        confirmations: 1..,
                        ..
                    }
            ) {
                unmined += 1;
            }
            report.anchors.push(outcome);
        }
        let latest = self.node.latest_round().await?;
        report.latest_round = latest;
        let mut next = match self.store.progress().await? {
            Some(p) => p.next_round,
            None => self.settings.start_round.unwrap_or(latest.max(1)),
        };
        let schedule = Schedule {
            every: self.settings.anchor_every,
            start: next,
        };
        'pages: while next <= latest {
            let rounds = self.node.rounds(next, PAGE).await?;
            if rounds.is_empty() {
                break;
            }
            for r in rounds {
                if r.round < next {
                    continue;
                }
                // A checkpoint round has no §10 vote to anchor: its certificate entries sign
                // M, and its checkpoint is the anchor.
                if !schedule.is_due(r.round) || r.checkpoint != CheckpointKind::None {
                    next = r.round + 1;
                    continue;
                }
                match r.status {
                    RoundStatus::Final => {
                        if unmined >= self.settings.max_pending {
                            break 'pages;
                        }
                        match self.anchor_round(r.round).await {
                            Ok(outcome) => {
                                if matches!(outcome, AnchorOutcome::Broadcast { .. }) {
                                    unmined += 1;
                                }
                                report.anchors.push(outcome);
                            }
                            Err(SequencerError::Check(e)) => {
                                tracing::error!(round = r.round, reason = %e, "certificate refused; round not anchored");
                                self.metrics
                                    .inc("fiamma_sequencer_certificates_refused_total", &[]);
                                report.refused = Some(e.to_string());
                                break 'pages;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    RoundStatus::Expired => {
                        self.metrics
                            .inc("fiamma_sequencer_rounds_expired_total", &[]);
                        report.expired.push(r.round);
                    }
                    RoundStatus::Open | RoundStatus::Unspecified => break 'pages,
                }
                next = r.round + 1;
            }
        }
        report.next_round = next;
        // The anchors' progress is kept before the checkpoints are looked at, so that a node
        // or chain failure there does not undo it.
        self.store
            .record_progress(&Progress {
                next_round: next,
                last_step_at: unix_now(),
                tip_height: tip,
                latest_round: latest,
            })
            .await?;
        match self.checkpoint_pass().await {
            Ok(outcomes) => report.checkpoints = outcomes,
            Err(e @ (SequencerError::Ready(_) | SequencerError::Child(_))) => {
                tracing::error!(reason = %e, "checkpoint not broadcast");
                self.metrics
                    .inc("fiamma_sequencer_checkpoints_refused_total", &[]);
                report.checkpoint_refused = Some(e.to_string());
            }
            Err(e) => return Err(e),
        }
        self.metrics
            .set("fiamma_sequencer_bitcoin_tip", &[], f64::from(tip));
        self.metrics
            .set("fiamma_sequencer_next_round", &[], next as f64);
        self.metrics
            .set("fiamma_sequencer_unmined_anchors", &[], unmined as f64);
        match report
            .refused
            .as_ref()
            .or(report.checkpoint_refused.as_ref())
        {
            Some(why) => self.health.failing(why.clone()),
            None => self.health.ok(),
        }
        Ok(report)
    }

    /// Waits until round `round` is final (up to `wait`), then anchors it once.
    ///
    /// # Errors
    /// [`SequencerError::Check`] when it expired or its certificate does not check,
    /// [`SequencerError::NotClosed`] or [`SequencerError::NotFinalYet`] when it is not final
    /// within `wait`.
    pub async fn anchor_when_final(
        &self,
        round: u64,
        wait: Duration,
    ) -> Result<AnchorOutcome, SequencerError> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            if self.store.anchor(round).await?.is_some() {
                return self.anchor_round(round).await;
            }
            match self.node.round_certificate(round).await? {
                Some(view) if view.status == RoundStatus::Final => {
                    return self.anchor_round(round).await
                }
                Some(view) if view.status == RoundStatus::Expired => {
                    return Err(plan::check(&view, &self.settings.contexts)
                        .err()
                        .map_or(SequencerError::NotClosed(round), SequencerError::Check))
                }
                Some(_) if tokio::time::Instant::now() >= until => {
                    return Err(SequencerError::NotFinalYet(round))
                }
                None if tokio::time::Instant::now() >= until => {
                    return Err(SequencerError::NotClosed(round))
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// One checkpoint pass: each recorded package not settled is looked up (sent again while
    /// neither mined nor superseded, done once its candidate is k deep), then the newest
    /// checkpoint round, when READY and not recorded, is checked, its child built, the package
    /// recorded and broadcast. Nothing when the node runs without checkpoints.
    ///
    /// # Errors
    /// [`SequencerError::Ready`] or [`SequencerError::Child`] when the READY round cannot be
    /// sent (nothing recorded); [`SequencerError`] when a service cannot be asked.
    pub async fn checkpoint_pass(&self) -> Result<Vec<CheckpointOutcome>, SequencerError> {
        let Some(node) = &self.checkpoints else {
            return Ok(Vec::new());
        };
        let Some(view) = node.checkpoints().await? else {
            return Ok(Vec::new());
        };
        let k = view.params.confirmation_depth;
        let mut outcomes = Vec::new();
        for row in self.store.packages(true).await? {
            outcomes.push(self.settle_package(node.as_ref(), &row, k).await?);
        }
        let Some(latest) = view.latest else {
            return Ok(outcomes);
        };
        if latest.status != CheckpointStatus::Ready
            || self.store.package(latest.round).await?.is_some()
        {
            return Ok(outcomes);
        }
        let parent = crate::checkpoint::signed_candidate(&latest, view.params.value)?;
        let promised = self.promised_coins().await?;
        let child = {
            let mut wallet = self.wallet.lock().await;
            crate::checkpoint::build_child(&mut wallet, &parent, self.settings.fee_rate, &promised)
                .await?
        };
        let row = self
            .store
            .record_package(latest.round, &parent, &child)
            .await?;
        tracing::info!(
            round = latest.round,
            txid = %parent.compute_txid(),
            child = %row.child.compute_txid(),
            "checkpoint ready; package recorded"
        );
        outcomes.push(self.send_package(&row).await?);
        Ok(outcomes)
    }

    /// Broadcasts `row`'s package and notes what Bitcoin said; the wallet learns of the child
    /// once it is accepted.
    async fn send_package(&self, row: &PackageRow) -> Result<CheckpointOutcome, SequencerError> {
        let result = match self
            .bitcoin
            .broadcast_package(&[row.parent.clone(), row.child.clone()])
            .await
        {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        self.store
            .note_package_broadcast(row.round, &result)
            .await?;
        // A refused child spends nothing yet; its coins stay out of new payments as long as
        // the package is pending (`promised_coins`), and the wallet sees it once accepted.
        if result.is_empty() {
            self.wallet
                .lock()
                .await
                .record_unconfirmed(row.child.clone(), u64::try_from(unix_now()).unwrap_or(0))
                .await?;
        }
        let label = if result.is_empty() {
            "accepted"
        } else {
            tracing::warn!(round = row.round, %result, "checkpoint package refused");
            "refused"
        };
        self.metrics.inc(
            "fiamma_sequencer_checkpoint_broadcasts_total",
            &[("result", label)],
        );
        Ok(CheckpointOutcome::Broadcast {
            round: row.round,
            txid: row.parent.compute_txid(),
            child: row.child.compute_txid(),
            result,
        })
    }

    /// Looks up a recorded package: done once its candidate is k deep or the round is
    /// superseded, sent again while neither mined nor in the mempool.
    async fn settle_package(
        &self,
        node: &dyn CheckpointNode,
        row: &PackageRow,
        k: u32,
    ) -> Result<CheckpointOutcome, SequencerError> {
        let txid = row.parent.compute_txid();
        let round = row.round;
        let status = self.bitcoin.tx_status(&txid).await?;
        let mined = matches!(status, TxStatus::Confirmed { .. });
        // The node's word is needed only for a candidate Bitcoin has not mined.
        let on_node = if mined {
            None
        } else {
            node.checkpoint_round(round).await?.map(|r| r.status)
        };
        match crate::checkpoint::track(&status, k, on_node) {
            CheckpointTrack::Like(Track::Rebroadcast) => self.send_package(row).await,
            CheckpointTrack::Like(Track::InMempool) => {
                self.store
                    .note_package_depth(round, 0, false, false)
                    .await?;
                Ok(CheckpointOutcome::Pending {
                    round,
                    txid,
                    confirmations: 0,
                })
            }
            CheckpointTrack::Like(Track::Confirming(confirmations)) => {
                self.store
                    .note_package_depth(round, confirmations, false, false)
                    .await?;
                Ok(CheckpointOutcome::Pending {
                    round,
                    txid,
                    confirmations,
                })
            }
            CheckpointTrack::Like(Track::Done(confirmations)) => {
                self.store
                    .note_package_depth(round, confirmations, true, false)
                    .await?;
                self.metrics
                    .inc("fiamma_sequencer_checkpoints_done_total", &[]);
                Ok(CheckpointOutcome::Done {
                    round,
                    txid,
                    confirmations,
                })
            }
            CheckpointTrack::Superseded => {
                self.store.note_package_depth(round, 0, true, true).await?;
                Ok(CheckpointOutcome::Superseded { round, txid })
            }
        }
    }

    /// Funds and registers the checkpoint genesis (`fiamma sequencer checkpoint genesis`):
    /// once the node serves the genesis script (round h₀ closed), pays V to it from the wallet
    /// (recorded before its first broadcast, so a re-run after a crash sends the same
    /// transaction and never pays twice), waits up to `wait` until it is k deep (sending it
    /// again while it is neither mined nor in the mempool), then names it to the node.
    ///
    /// # Errors
    /// [`SequencerError::NoCheckpoints`], [`SequencerError::GenesisNotOpen`],
    /// [`SequencerError::GenesisNotDeep`] (run again to keep waiting), the node's refusal,
    /// [`SequencerError`].
    pub async fn checkpoint_genesis(
        &self,
        wait: Duration,
    ) -> Result<GenesisOutcome, SequencerError> {
        let node = self
            .checkpoints
            .as_ref()
            .ok_or(SequencerError::NoCheckpoints)?;
        let view = node
            .checkpoints()
            .await?
            .ok_or(SequencerError::NoCheckpoints)?;
        if let Some(genesis) = view.genesis {
            if self
                .store
                .genesis()
                .await?
                .is_some_and(|g| OutPoint::new(g.tx.compute_txid(), g.vout) == genesis.outpoint)
            {
                self.store.note_genesis_registered().await?;
            }
            return Ok(GenesisOutcome::AlreadyRegistered(genesis));
        }
        let k = view.params.confirmation_depth;
        let row = match self.store.genesis().await? {
            Some(row) => row,
            None => {
                let (h0, script) = view
                    .genesis_script
                    .clone()
                    .ok_or(SequencerError::GenesisNotOpen(view.params.genesis_round))?;
                self.sync_wallet().await?;
                let promised = self.promised_coins().await?;
                let tx = {
                    let mut wallet = self.wallet.lock().await;
                    let mut psbt = wallet
                        .build_payment_excluding(
                            &[(script.clone(), view.params.value)],
                            self.settings.fee_rate,
                            &promised,
                        )
                        .await?;
                    wallet.sign_payment(&mut psbt)?
                };
                let vout = tx
                    .output
                    .iter()
                    .position(|o| o.script_pubkey == script && o.value == view.params.value)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or(StoreError::Corrupt("genesis funding without its output"))?;
                let row = self.store.record_genesis(h0, &tx, vout).await?;
                tracing::info!(txid = %row.tx.compute_txid(), vout = row.vout, "genesis funding recorded");
                row
            }
        };
        let txid = row.tx.compute_txid();
        let until = tokio::time::Instant::now() + wait;
        loop {
            let confirmations = match self.bitcoin.tx_status(&txid).await? {
                TxStatus::Confirmed { confirmations, .. } => confirmations,
                TxStatus::InMempool => 0,
                TxStatus::Unknown => {
                    if let Err(e) = self.bitcoin.broadcast(&row.tx).await {
                        tracing::warn!(%txid, reason = %e, "genesis funding refused");
                    }
                    self.wallet
                        .lock()
                        .await
                        .record_unconfirmed(row.tx.clone(), u64::try_from(unix_now()).unwrap_or(0))
                        .await?;
                    0
                }
            };
            if confirmations >= k {
                break;
            }
            if tokio::time::Instant::now() >= until {
                return Err(SequencerError::GenesisNotDeep {
                    txid,
                    confirmations,
                    needed: k,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let genesis = node
            .register_checkpoint_genesis(OutPoint::new(txid, row.vout))
            .await?;
        self.store.note_genesis_registered().await?;
        self.metrics
            .inc("fiamma_sequencer_checkpoint_genesis_total", &[]);
        Ok(GenesisOutcome::Registered(genesis))
    }

    /// Runs the daemon loop until `shutdown`.
    pub async fn run(&self, shutdown: Shutdown) {
        fiamma_role::component::run(self, shutdown).await;
    }
}

#[async_trait]
impl Component for Sequencer {
    type Event = fpb::Event;
    type StreamError = NodeError;
    type Events = FinalityEventStream;
    type Report = StepReport;
    type Error = SequencerError;
    const STEP_ERRORS: &'static str = "fiamma_sequencer_step_errors_total";
    const DEBOUNCE: Duration = Duration::from_millis(50);

    async fn step(&self) -> Result<StepReport, SequencerError> {
        Sequencer::step(self).await
    }

    async fn subscribe(&self) -> Option<FinalityEventStream> {
        let from = self.seen_event.load(Ordering::Relaxed) + 1;
        self.node.finality_events(from).await.ok()
    }

    /// Records the event's sequence; true when a round became final or a checkpoint ready
    /// or confirmed.
    fn note_event(&self, event: &fpb::Event) -> bool {
        let before = self.seen_event.fetch_max(event.sequence, Ordering::Relaxed);
        event.sequence > before
            && matches!(
                event.kind,
                Some(
                    fpb::event::Kind::RoundFinal(_)
                        | fpb::event::Kind::CheckpointReady(_)
                        | fpb::event::Kind::CheckpointConfirmed(_)
                )
            )
    }

    fn poll_interval(&self) -> Duration {
        self.settings.poll_interval
    }

    fn health(&self) -> &Health {
        &self.health
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// The recorded transaction of an outcome's round, for callers that show it.
pub fn txid_of(outcome: &AnchorOutcome) -> Txid {
    match outcome {
        AnchorOutcome::Broadcast { txid, .. }
        | AnchorOutcome::Pending { txid, .. }
        | AnchorOutcome::Done { txid, .. } => *txid,
    }
}
