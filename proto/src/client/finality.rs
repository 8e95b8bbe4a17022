//! What a verifier asks of the node's finality module, in domain types where the verifier acts
//! on them (votes, commitments, proofs) and as served where it only reads (statuses).

use std::pin::Pin;

use async_trait::async_trait;
use bitcoin::secp256k1::{schnorr, XOnlyPublicKey};
use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_finality::merkle::Digest;
use fiamma_finality::rounds::Vote;
use fiamma_finality::zk::{ProofSystem, ZkProof};
use tokio_stream::{Stream, StreamExt};

use super::{Code, GrpcNode, NodeError};
use crate::codec::finality::{bytes32, vote, vote_to_pb, VOTE};
use crate::codec::{self, FieldError};
use crate::finality::v1 as fpb;

pub use fpb::{RoundStatus, VerifierStatus, VoteOutcome};

/// The finality module's record of a verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierRecord {
    /// ACTIVE, JAILED or SLASHED.
    pub status: VerifierStatus,
    /// The round it was jailed or slashed at; 0 when active.
    pub since_round: u64,
    /// Its randomness commitments, as the node holds them.
    pub commitments: Vec<RandomnessCommitment>,
    /// Rounds it missed in its current liveness window.
    pub missed_rounds: u64,
}

impl VerifierRecord {
    /// The last round its commitments cover (0 when it has none).
    pub fn committed_until(&self) -> u64 {
        self.commitments.iter().map(|c| c.last()).max().unwrap_or(0)
    }
}

/// One round in a list of rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundSummary {
    /// The round.
    pub round: u64,
    /// Its status.
    pub status: RoundStatus,
    /// Proofs in it.
    pub proofs: u32,
    /// The power that may vote in it.
    pub total_power_sat: u64,
    /// Whether it is a checkpoint round, and which kind.
    pub checkpoint: fpb::CheckpointKind,
}

/// A vote the node recorded on a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedVote {
    /// The vote.
    pub vote: Vote,
    /// Whether it is for the node's round hash.
    pub agrees: bool,
}

/// A closed round as the node serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedRoundView {
    /// The round.
    pub round: u64,
    /// The node's round hash.
    pub round_hash: Digest,
    /// The round hash it chains from.
    pub prev_round_hash: Digest,
    /// The proof ids of its results, in order, with the node's verdicts.
    pub results: Vec<([u8; 32], bool)>,
    /// Its status.
    pub status: RoundStatus,
    /// The verifiers that may vote in it and their power.
    pub active_set: Vec<(XOnlyPublicKey, u64)>,
    /// The votes recorded so far (a checkpoint round's are served by
    /// [`CheckpointNode::checkpoint_round`](super::CheckpointNode::checkpoint_round)).
    pub votes: Vec<RecordedVote>,
    /// Whether it is a checkpoint round, and which kind.
    pub checkpoint: fpb::CheckpointKind,
}

/// A proof of a closed round as the node serves it for re-verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedProof {
    /// Its position in the round.
    pub position: u32,
    /// The proof id the node lists.
    pub proof_id: [u8; 32],
    /// The node's verdict.
    pub valid: bool,
    /// The proof itself, or why it does not decode; `None` when the node dropped its bytes.
    pub proof: Option<Result<ZkProof, FieldError>>,
}

/// One page of [`ServedProof`]s and where the next starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPage {
    /// The proofs, by position.
    pub proofs: Vec<ServedProof>,
    /// The next page's first position; `None` at the end.
    pub next_position: Option<u32>,
}

/// A stream of the node's finality events, in sequence order.
pub type FinalityEventStream = Pin<Box<dyn Stream<Item = Result<fpb::Event, NodeError>> + Send>>;

/// What a verifier asks of the node's finality module.
#[async_trait]
pub trait FinalityNode: Send + Sync {
    /// The record of `verifier`; `None` when the finality module does not know it.
    async fn verifier(&self, verifier: XOnlyPublicKey)
        -> Result<Option<VerifierRecord>, NodeError>;

    /// Up to `limit` rounds from `from_round` on, in order.
    async fn rounds(&self, from_round: u64, limit: u32) -> Result<Vec<RoundSummary>, NodeError>;

    /// The newest closed round (0 before the first close).
    async fn latest_round(&self) -> Result<u64, NodeError>;

    /// Closed round `round` with all its results (every page); `None` when it is not closed.
    async fn round(&self, round: u64) -> Result<Option<ClosedRoundView>, NodeError>;

    /// One page of the proofs of closed round `round`, from `from_position`.
    async fn round_proofs(&self, round: u64, from_position: u32) -> Result<ProofPage, NodeError>;

    /// Publishes a signed randomness commitment.
    async fn commit_pub_rand(
        &self,
        verifier: XOnlyPublicKey,
        commitment: &RandomnessCommitment,
        signature: &schnorr::Signature,
    ) -> Result<(), NodeError>;

    /// Submits a vote; the node's verdict on it.
    async fn add_finality_sig(&self, vote: &Vote) -> Result<VoteOutcome, NodeError>;

    /// Asks to be unjailed with a signature on the unjail message.
    async fn unjail(
        &self,
        verifier: XOnlyPublicKey,
        signature: &schnorr::Signature,
    ) -> Result<(), NodeError>;

    /// The finality events from `from_sequence` on, then new ones as they happen.
    async fn finality_events(&self, from_sequence: u64) -> Result<FinalityEventStream, NodeError>;
}

fn decode(call: &'static str) -> impl Fn(FieldError) -> NodeError {
    move |source| NodeError::Decode { call, source }
}

fn key_of(
    call: &'static str,
    field: &'static str,
    bytes: &[u8],
) -> Result<XOnlyPublicKey, NodeError> {
    codec::key(field, bytes).map_err(decode(call))
}

fn served_proof(p: fpb::RoundProof) -> Result<ServedProof, FieldError> {
    let proof_id = bytes32("proof_id", &p.proof_id)?;
    let proof = if p.bytes_dropped {
        None
    } else {
        let system = u8::try_from(p.proof_system)
            .ok()
            .and_then(|c| ProofSystem::try_from(c).ok())
            .ok_or_else(|| codec::bad("proof_system", format!("{} is unknown", p.proof_system)));
        Some(system.and_then(|system| {
            ZkProof::new(system, p.verifying_key, p.proof, p.public_inputs)
                .map_err(|e| codec::bad("proof", e.to_string()))
        }))
    };
    Ok(ServedProof {
        position: p.position,
        proof_id,
        valid: p.valid,
        proof,
    })
}

#[async_trait]
impl FinalityNode for GrpcNode {
    async fn verifier(
        &self,
        verifier: XOnlyPublicKey,
    ) -> Result<Option<VerifierRecord>, NodeError> {
        const CALL: &str = "Verifier";
        let r = match self
            .finality
            .clone()
            .verifier(fpb::VerifierRequest {
                verifier_btc_pk: verifier.serialize().to_vec(),
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(NodeError::status(CALL, &s)),
        };
        let Some(v) = r.verifier else {
            return Ok(None);
        };
        let commitments = v
            .commitments
            .iter()
            .map(|c| {
                let root = bytes32("commitments.root", &c.root)?;
                RandomnessCommitment::new(c.start_round, c.num_pub_rand, root)
                    .map_err(|e| codec::bad("commitments", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(decode(CALL))?;
        Ok(Some(VerifierRecord {
            status: v.status(),
            since_round: v.since_round,
            commitments,
            missed_rounds: v.missed_rounds,
        }))
    }

    async fn latest_round(&self) -> Result<u64, NodeError> {
        Ok(self
            .finality
            .clone()
            .rounds(fpb::RoundsRequest {
                from_round: 1,
                limit: 1,
            })
            .await
            .map_err(|s| NodeError::status("Rounds", &s))?
            .into_inner()
            .latest_round)
    }

    async fn rounds(&self, from_round: u64, limit: u32) -> Result<Vec<RoundSummary>, NodeError> {
        let r = self
            .finality
            .clone()
            .rounds(fpb::RoundsRequest { from_round, limit })
            .await
            .map_err(|s| NodeError::status("Rounds", &s))?
            .into_inner();
        Ok(r.rounds
            .iter()
            .map(|s| RoundSummary {
                round: s.round,
                status: s.status(),
                proofs: s.proofs,
                total_power_sat: s.total_power_sat,
                checkpoint: s.checkpoint(),
            })
            .collect())
    }

    async fn round(&self, round: u64) -> Result<Option<ClosedRoundView>, NodeError> {
        const CALL: &str = "Round";
        let mut view: Option<ClosedRoundView> = None;
        let mut from = 0u32;
        loop {
            let r = match self
                .finality
                .clone()
                .round(fpb::RoundRequest {
                    round,
                    results_from: from,
                    results_limit: 0,
                })
                .await
            {
                Ok(r) => r.into_inner(),
                Err(s) if s.code() == Code::NotFound => return Ok(None),
                Err(s) => return Err(NodeError::status(CALL, &s)),
            };
            let served = r
                .round
                .ok_or_else(|| decode(CALL)(codec::bad("round", "missing")))?;
            let results = served
                .results
                .iter()
                .map(|p| Ok((bytes32("results.proof_id", &p.proof_id)?, p.valid)))
                .collect::<Result<Vec<_>, FieldError>>()
                .map_err(decode(CALL))?;
            match view.as_mut() {
                Some(v) => v.results.extend(results),
                None => {
                    let active_set = served
                        .active_set
                        .iter()
                        .map(|e| {
                            Ok((
                                key_of(CALL, "active_set.verifier_btc_pk", &e.verifier_btc_pk)?,
                                e.power_sat,
                            ))
                        })
                        .collect::<Result<Vec<_>, NodeError>>()?;
                    let votes = served
                        .votes
                        .iter()
                        .map(|v| {
                            Ok(RecordedVote {
                                vote: vote(&VOTE, v.vote.as_ref())?,
                                agrees: v.agrees,
                            })
                        })
                        .collect::<Result<Vec<_>, FieldError>>()
                        .map_err(decode(CALL))?;
                    view = Some(ClosedRoundView {
                        round: served.round,
                        round_hash: bytes32("round_hash", &served.round_hash)
                            .map_err(decode(CALL))?,
                        prev_round_hash: bytes32("prev_round_hash", &served.prev_round_hash)
                            .map_err(decode(CALL))?,
                        results,
                        status: served.status(),
                        active_set,
                        votes,
                        checkpoint: served.checkpoint(),
                    });
                }
            }
            match r.next_results_from {
                // A node that does not move forward would make this loop forever.
                Some(next) if next > from => from = next,
                Some(_) => {
                    return Err(decode(CALL)(codec::bad(
                        "next_results_from",
                        "does not move forward",
                    )))
                }
                None => return Ok(view),
            }
        }
    }

    async fn round_proofs(&self, round: u64, from_position: u32) -> Result<ProofPage, NodeError> {
        const CALL: &str = "RoundProofs";
        let r = self
            .finality
            .clone()
            .round_proofs(fpb::RoundProofsRequest {
                round,
                from_position,
                limit: 0,
            })
            .await
            .map_err(|s| NodeError::status(CALL, &s))?
            .into_inner();
        Ok(ProofPage {
            proofs: r
                .proofs
                .into_iter()
                .map(served_proof)
                .collect::<Result<Vec<_>, _>>()
                .map_err(decode(CALL))?,
            next_position: r.next_position,
        })
    }

    async fn commit_pub_rand(
        &self,
        verifier: XOnlyPublicKey,
        commitment: &RandomnessCommitment,
        signature: &schnorr::Signature,
    ) -> Result<(), NodeError> {
        self.finality
            .clone()
            .commit_pub_rand_list(fpb::CommitPubRandListRequest {
                verifier_btc_pk: verifier.serialize().to_vec(),
                start_round: commitment.start(),
                num_pub_rand: commitment.num(),
                commitment: commitment.root().to_vec(),
                signature: signature.as_ref().to_vec(),
            })
            .await
            .map_err(|s| NodeError::status("CommitPubRandList", &s))?;
        Ok(())
    }

    async fn add_finality_sig(&self, vote: &Vote) -> Result<VoteOutcome, NodeError> {
        const CALL: &str = "AddFinalitySig";
        let r = self
            .finality
            .clone()
            .add_finality_sig(fpb::AddFinalitySigRequest {
                vote: Some(vote_to_pb(vote)),
            })
            .await
            .map_err(|s| NodeError::status(CALL, &s))?
            .into_inner();
        VoteOutcome::try_from(r.outcome)
            .map_err(|_| decode(CALL)(codec::bad("outcome", format!("{} is unknown", r.outcome))))
    }

    async fn unjail(
        &self,
        verifier: XOnlyPublicKey,
        signature: &schnorr::Signature,
    ) -> Result<(), NodeError> {
        self.finality
            .clone()
            .unjail_verifier(fpb::UnjailVerifierRequest {
                verifier_btc_pk: verifier.serialize().to_vec(),
                signature: signature.as_ref().to_vec(),
            })
            .await
            .map_err(|s| NodeError::status("UnjailVerifier", &s))?;
        Ok(())
    }

    async fn finality_events(&self, from_sequence: u64) -> Result<FinalityEventStream, NodeError> {
        const CALL: &str = "Events";
        let stream = self
            .finality
            .clone()
            .events(fpb::EventsRequest { from_sequence })
            .await
            .map_err(|s| NodeError::status(CALL, &s))?
            .into_inner();
        Ok(Box::pin(
            stream.map(|item| item.map_err(|s| NodeError::status(CALL, &s))),
        ))
    }
}
