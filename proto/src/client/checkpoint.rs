//! What verifiers and sequencers ask of the node about Bitcoin-checked checkpoints
//! (`CHECKPOINTS.md` §13): the chain as the node follows it, each checkpoint round's candidate
//! and votes, checkpoint votes, the genesis registration.
//!
//! Everything the node serves here is decoded, never trusted: a verifier rebuilds the
//! candidate from its own view and signs only a byte-identical one; a sequencer broadcasts the
//! signed transaction, which Bitcoin itself checks.

use async_trait::async_trait;
use bitcoin::hashes::Hash;
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, Txid};
use fiamma_finality::checkpoint::CheckpointVote;
use fiamma_finality::merkle::{Digest, Proof};

use super::{Code, GrpcNode, NodeError};
use crate::codec::finality::{bytes32, checkpoint_vote, checkpoint_vote_to_pb};
use crate::codec::{self, FieldError};
use crate::finality::v1 as fpb;

use fpb::VoteOutcome;
pub use fpb::{CheckpointKind, CheckpointStatus};

/// The checkpoint parameters the node runs with (§13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointParamsView {
    /// The earliest round the genesis may encode (h₀ is the first closed round from it on
    /// with a non-empty active set).
    pub genesis_round: u64,
    /// V.
    pub value: Amount,
    /// N.
    pub interval_rounds: u64,
    /// R.
    pub recovery_blocks: u32,
    /// k: confirmations before a checkpoint is the base.
    pub confirmation_depth: u32,
    /// At most one rotation round per this many rounds.
    pub vote_expiry: u64,
}

/// A confirmed checkpoint output: the genesis or output 0 of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointOutputView {
    /// The output.
    pub outpoint: OutPoint,
    /// The round whose set it encodes.
    pub round: u64,
    /// The block holding its transaction.
    pub height: u32,
    /// 0 for the genesis, else the payload's kind byte (1 quorum, 2 recovery).
    pub kind: u8,
}

/// A checkpoint round as the node serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRoundView {
    /// Round h.
    pub round: u64,
    /// Scheduled or rotation.
    pub kind: CheckpointKind,
    /// Signing, ready, confirmed or superseded.
    pub status: CheckpointStatus,
    /// The base the candidate spends.
    pub base: CheckpointOutputView,
    /// The candidate, without witness.
    pub candidate: Transaction,
    /// M as the node holds it (276 bytes; compare, never sign it as served).
    pub message: Vec<u8>,
    /// The payload's round hash.
    pub round_hash: Digest,
    /// The payload's state.
    pub state: [u8; 32],
    /// Power of the active-set members that signed.
    pub voted_power_sat: u64,
    /// The round's total power.
    pub total_power_sat: u64,
    /// Base-set weight of the signatures.
    pub base_weight_signed: u32,
    /// T.
    pub threshold: u32,
    /// The accepted votes with their randomness proofs.
    pub votes: Vec<(CheckpointVote, Proof)>,
    /// The candidate with its quorum witness, once ready.
    pub signed_transaction: Option<Transaction>,
}

/// The checkpoint chain as the node follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointsView {
    /// The parameters.
    pub params: CheckpointParamsView,
    /// The genesis output, once registered.
    pub genesis: Option<CheckpointOutputView>,
    /// The latest k-deep checkpoint output (the genesis at first).
    pub base: Option<CheckpointOutputView>,
    /// The newest checkpoint round.
    pub latest: Option<CheckpointRoundView>,
    /// h₀ and the scriptPubKey the genesis must pay (round h₀'s checkpoint output), once
    /// known.
    pub genesis_script: Option<(u64, ScriptBuf)>,
    /// Why the chain ended, when its base was spent off the template.
    pub ended: Option<String>,
}

/// What verifiers and sequencers ask of the node about checkpoints.
#[async_trait]
pub trait CheckpointNode: Send + Sync {
    /// The chain as the node follows it; `None` when the node runs without checkpoints.
    async fn checkpoints(&self) -> Result<Option<CheckpointsView>, NodeError>;

    /// Checkpoint round `round`; `None` when it is not a checkpoint round (or not closed).
    async fn checkpoint_round(&self, round: u64) -> Result<Option<CheckpointRoundView>, NodeError>;

    /// Sends a checkpoint vote on `round` with its randomness proof.
    async fn add_checkpoint_sig(
        &self,
        round: u64,
        vote: &CheckpointVote,
        proof: &Proof,
    ) -> Result<VoteOutcome, NodeError>;

    /// Names the genesis output.
    async fn register_checkpoint_genesis(
        &self,
        outpoint: OutPoint,
    ) -> Result<CheckpointOutputView, NodeError>;
}

fn decode(call: &'static str) -> impl Fn(FieldError) -> NodeError {
    move |source| NodeError::Decode { call, source }
}

fn txid(field: &'static str, bytes: &[u8]) -> Result<Txid, FieldError> {
    Ok(Txid::from_byte_array(bytes32(field, bytes)?))
}

/// A served checkpoint output in domain form.
pub fn checkpoint_output(
    field: &'static str,
    o: Option<&fpb::CheckpointOutput>,
) -> Result<CheckpointOutputView, FieldError> {
    let o = o.ok_or_else(|| codec::bad(field, "missing"))?;
    Ok(CheckpointOutputView {
        outpoint: OutPoint::new(txid(field, &o.txid)?, o.vout),
        round: o.round,
        height: o.height,
        kind: u8::try_from(o.kind).map_err(|_| codec::bad(field, "kind is not one byte"))?,
    })
}

/// The wire form of a checkpoint output.
pub fn checkpoint_output_to_pb(o: &CheckpointOutputView) -> fpb::CheckpointOutput {
    fpb::CheckpointOutput {
        txid: o.outpoint.txid.to_byte_array().to_vec(),
        vout: o.outpoint.vout,
        round: o.round,
        height: o.height,
        kind: u32::from(o.kind),
    }
}

/// A served checkpoint round in domain form.
pub fn checkpoint_round(r: &fpb::CheckpointRound) -> Result<CheckpointRoundView, FieldError> {
    let kind = CheckpointKind::try_from(r.kind)
        .map_err(|_| codec::bad("checkpoint.kind", format!("{} is unknown", r.kind)))?;
    let status = CheckpointStatus::try_from(r.status)
        .map_err(|_| codec::bad("checkpoint.status", format!("{} is unknown", r.status)))?;
    let votes = r
        .votes
        .iter()
        .map(|v| {
            let (round, vote, proof) = checkpoint_vote(Some(v))?;
            if round != r.round {
                return Err(codec::bad(
                    "checkpoint_vote.round",
                    format!("{round} is not the checkpoint's round {}", r.round),
                ));
            }
            Ok((vote, proof))
        })
        .collect::<Result<Vec<_>, FieldError>>()?;
    Ok(CheckpointRoundView {
        round: r.round,
        kind,
        status,
        base: checkpoint_output("checkpoint.base", r.base.as_ref())?,
        candidate: codec::transaction("checkpoint.candidate", &r.candidate)?,
        message: r.message.clone(),
        round_hash: bytes32("checkpoint.round_hash", &r.round_hash)?,
        state: bytes32("checkpoint.state", &r.state)?,
        voted_power_sat: r.voted_power_sat,
        total_power_sat: r.total_power_sat,
        base_weight_signed: r.base_weight_signed,
        threshold: r.threshold,
        votes,
        signed_transaction: if r.signed_transaction.is_empty() {
            None
        } else {
            Some(codec::transaction(
                "checkpoint.signed_transaction",
                &r.signed_transaction,
            )?)
        },
    })
}

fn checkpoints_view(r: &fpb::CheckpointsResponse) -> Result<CheckpointsView, FieldError> {
    let p = r
        .params
        .as_ref()
        .ok_or_else(|| codec::bad("params", "missing"))?;
    Ok(CheckpointsView {
        params: CheckpointParamsView {
            genesis_round: p.genesis_round,
            value: Amount::from_sat(p.value_sat),
            interval_rounds: p.interval_rounds,
            recovery_blocks: p.recovery_blocks,
            confirmation_depth: p.confirmation_depth,
            vote_expiry: p.vote_expiry,
        },
        genesis: r
            .genesis
            .as_ref()
            .map(|g| checkpoint_output("genesis", Some(g)))
            .transpose()?,
        base: r
            .base
            .as_ref()
            .map(|b| checkpoint_output("base", Some(b)))
            .transpose()?,
        latest: r.latest.as_ref().map(checkpoint_round).transpose()?,
        genesis_script: (!r.genesis_script_pubkey.is_empty()).then(|| {
            (
                r.genesis_script_round,
                ScriptBuf::from_bytes(r.genesis_script_pubkey.clone()),
            )
        }),
        ended: (!r.ended.is_empty()).then(|| codec::echo(&r.ended)),
    })
}

#[async_trait]
impl CheckpointNode for GrpcNode {
    async fn checkpoints(&self) -> Result<Option<CheckpointsView>, NodeError> {
        const CALL: &str = "Checkpoints";
        match self
            .finality
            .clone()
            .checkpoints(fpb::CheckpointsRequest {})
            .await
        {
            Ok(r) => Ok(Some(
                checkpoints_view(&r.into_inner()).map_err(decode(CALL))?,
            )),
            Err(s) if s.code() == Code::FailedPrecondition => Ok(None),
            Err(s) => Err(NodeError::status(CALL, &s)),
        }
    }

    async fn checkpoint_round(&self, round: u64) -> Result<Option<CheckpointRoundView>, NodeError> {
        const CALL: &str = "CheckpointRound";
        match self
            .finality
            .clone()
            .checkpoint_round(fpb::CheckpointRoundRequest { round })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                let c = r
                    .checkpoint
                    .as_ref()
                    .ok_or_else(|| decode(CALL)(codec::bad("checkpoint", "missing")))?;
                Ok(Some(checkpoint_round(c).map_err(decode(CALL))?))
            }
            Err(s) if matches!(s.code(), Code::NotFound | Code::FailedPrecondition) => Ok(None),
            Err(s) => Err(NodeError::status(CALL, &s)),
        }
    }

    async fn add_checkpoint_sig(
        &self,
        round: u64,
        vote: &CheckpointVote,
        proof: &Proof,
    ) -> Result<VoteOutcome, NodeError> {
        const CALL: &str = "AddCheckpointSig";
        let r = self
            .finality
            .clone()
            .add_checkpoint_sig(fpb::AddCheckpointSigRequest {
                vote: Some(checkpoint_vote_to_pb(round, vote, proof)),
            })
            .await
            .map_err(|s| NodeError::status(CALL, &s))?
            .into_inner();
        VoteOutcome::try_from(r.outcome)
            .map_err(|_| decode(CALL)(codec::bad("outcome", format!("{} is unknown", r.outcome))))
    }

    async fn register_checkpoint_genesis(
        &self,
        outpoint: OutPoint,
    ) -> Result<CheckpointOutputView, NodeError> {
        const CALL: &str = "RegisterCheckpointGenesis";
        let r = self
            .finality
            .clone()
            .register_checkpoint_genesis(fpb::RegisterCheckpointGenesisRequest {
                txid: outpoint.txid.to_byte_array().to_vec(),
                vout: outpoint.vout,
            })
            .await
            .map_err(|s| NodeError::status(CALL, &s))?
            .into_inner();
        checkpoint_output("genesis", r.genesis.as_ref()).map_err(decode(CALL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_output_round_trips_and_a_bad_txid_is_named() {
        let o = CheckpointOutputView {
            outpoint: OutPoint::new(Txid::from_byte_array([7; 32]), 3),
            round: 40,
            height: 120,
            kind: 1,
        };
        let wire = checkpoint_output_to_pb(&o);
        assert_eq!(checkpoint_output("base", Some(&wire)), Ok(o));
        let mut short = wire.clone();
        short.txid.pop();
        assert_eq!(
            checkpoint_output("base", Some(&short)).unwrap_err().field,
            "base"
        );
        assert!(checkpoint_output("base", None).is_err());
    }
}
