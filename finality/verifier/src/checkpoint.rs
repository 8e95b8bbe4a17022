//! Checkpoint rounds on the verifier's side (`CHECKPOINTS.md` §13.5–13.6): the verifier
//! rebuilds the candidate from its own view, signs only a byte-identical one, and records
//! (h, sha256(M)) in the same slashing protection as its votes before the signature leaves the
//! process. A checkpoint round therefore has one message, like any round: a second candidate
//! for h (after a reorg of the base, a change of set, a failed candidate) and h's §10 vote
//! message are refused, across restarts, because the record for h already holds sha256(M).

use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::Transaction;
use fiamma_finality::checkpoint::{build_candidate, CandidateSpec, CheckpointVote};
use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_finality::eots::RandomnessDomain;
use fiamma_finality::merkle::Proof;
use fiamma_proto::codec::finality::checkpoint_vote_to_pb;
use prost::Message;

use crate::signer::{Signer, SignerError};
use crate::store::{Disagreement, Network, SignedRound, StoreError, VerifierStore};

/// What the verifier did with a checkpoint round's candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointDecision {
    /// Signed now: the record was written first.
    Signed {
        /// The vote: `pr ‖ s` is the 64-byte tapscript signature of its slot.
        vote: CheckpointVote,
        /// The proof that `pr` is the committed randomness of the round.
        proof: Proof,
    },
    /// Signed before (this run or an earlier one) for the same M: the same vote again (§9
    /// randomness is deterministic, so re-signing M gives the same bytes).
    Resent {
        /// The vote.
        vote: CheckpointVote,
        /// Its randomness proof.
        proof: Proof,
    },
    /// The node's candidate is not the one this verifier builds: nothing signed.
    Disagrees(String),
    /// Slashing protection (or the randomness rule) refused to sign.
    Refused(String),
}

/// Why the decision could not be made at all (then nothing was signed or sent).
#[derive(Debug, thiserror::Error)]
pub enum CheckpointSignError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signer failed.
    #[error(transparent)]
    Signer(#[from] SignerError),
}

/// Where a checkpoint vote is signed and what protects it.
pub struct CheckpointSigner<'a> {
    /// The slashing-protection store.
    pub store: &'a VerifierStore,
    /// The network the store records for.
    pub network: &'a Network,
    /// The key.
    pub signer: &'a dyn Signer,
    /// The randomness domain of this verifier on the network.
    pub domain: &'a RandomnessDomain,
    /// This store's commitments that the node also holds: a vote only uses their randomness.
    pub commitments: &'a [RandomnessCommitment],
}

impl CheckpointSigner<'_> {
    /// Decides on the node's candidate `proposed` for the checkpoint round of `own`: `own` is
    /// what this verifier derives from its own view (§13.4 rules 1–3: the base it saw confirmed,
    /// the base and next sets, round h's hash and state, the kind it recomputed).
    ///
    /// # Errors
    /// [`CheckpointSignError`] when the store or the signer fails.
    pub async fn decide(
        &self,
        own: &CandidateSpec<'_>,
        proposed: &Transaction,
    ) -> Result<CheckpointDecision, CheckpointSignError> {
        let round = own.payload.round;
        let mine = match build_candidate(own) {
            Ok(c) => c,
            Err(e) => {
                return self
                    .disagree(round, format!("cannot build its own candidate: {e}"))
                    .await
            }
        };
        // Byte-identical, witness included (the node serves it unsigned): the txid alone would
        // not cover a witness, and anything else signs a transaction the verifier did not build.
        if serialize(&mine.tx) != serialize(proposed) {
            return self
                .disagree(
                    round,
                    format!(
                        "the node's candidate {} is not its own {}",
                        proposed.compute_txid(),
                        mine.tx.compute_txid()
                    ),
                )
                .await;
        }
        let hash = mine.message.sighash().to_byte_array();
        let resend = match self.store.signed(self.network, round).await? {
            Some(signed) if signed.message_hash != hash => {
                return self
                    .refuse(
                        round,
                        format!(
                            "slashing protection: round {round} was signed for another message"
                        ),
                    )
                    .await
            }
            Some(_) => true,
            None => false,
        };
        let Some(c) = self.commitments.iter().find(|c| c.covers(round)) else {
            return self
                .refuse(
                    round,
                    format!("round {round} is covered by no commitment this store made and the node holds"),
                )
                .await;
        };
        let (vote, proof) = self
            .signer
            .checkpoint_vote(self.domain, (c.start(), c.num()), round, &mine.message)
            .await?;
        if resend {
            return Ok(CheckpointDecision::Resent { vote, proof });
        }
        let record = SignedRound {
            round,
            message_hash: hash,
            vote: checkpoint_vote_to_pb(round, &vote, &proof).encode_to_vec(),
        };
        // Durable before the vote leaves the process.
        match self.store.protect(self.network, &record).await {
            Ok(()) => Ok(CheckpointDecision::Signed { vote, proof }),
            Err(StoreError::Conflict { .. }) => {
                self.refuse(
                    round,
                    format!("slashing protection: round {round} was signed for another message"),
                )
                .await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn disagree(
        &self,
        round: u64,
        why: String,
    ) -> Result<CheckpointDecision, CheckpointSignError> {
        tracing::warn!(round, reason = %why, "not signing the checkpoint candidate");
        Ok(CheckpointDecision::Disagrees(
            self.note(round, "checkpoint", why).await?,
        ))
    }

    async fn refuse(
        &self,
        round: u64,
        why: String,
    ) -> Result<CheckpointDecision, CheckpointSignError> {
        tracing::error!(round, reason = %why, "refusing to sign");
        Ok(CheckpointDecision::Refused(
            self.note(round, "refused", why).await?,
        ))
    }

    /// Records why `round` got no checkpoint vote, for `fiamma verifier status`.
    async fn note(&self, round: u64, kind: &str, why: String) -> Result<String, StoreError> {
        self.store
            .record_disagreement(
                self.network,
                &Disagreement {
                    round,
                    kind: kind.to_owned(),
                    reason: why.clone(),
                },
            )
            .await?;
        Ok(why)
    }
}
