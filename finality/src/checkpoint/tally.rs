//! The node's side of a checkpoint round (§13.5 "Counting", §13.6.2–3): which checkpoint votes
//! it accepts, how they count as the round's votes, when the round's certificate is a complete
//! witness, and the equivocation a second message for the round proves.
//!
//! - A vote is accepted from a member of round h's active set or of the base set (outgoing
//!   duty), when its public randomness is the committed one for h (§9 proof) and its EOTS
//!   signature verifies over the node's candidate's M.
//! - The round is *final* by §10's tally over round h's power table: the active-set members
//!   among the signers, > 2/3 of the power. Base members outside the active set count only on
//!   Bitcoin.
//! - The round is *complete* when the base-set weight of the signatures reaches T (§13.6.3);
//!   then the signatures assemble into the quorum witness, and the signed candidate is the
//!   round's certificate in the one form Bitcoin checks.
//! - A verifier that signs a second message for h with its committed randomness (another M′,
//!   or h's §10 vote message, which checkpoint rounds do not have) gives its key away: §11.

use std::collections::BTreeMap;

use bitcoin::Transaction;
use secp256k1::{SecretKey, XOnlyPublicKey};

use super::candidate::Candidate;
use super::message::{CheckpointMessage, CheckpointVote};
use super::weights::CheckpointSet;
use super::witness::{check_complete, quorum_witness, CompleteSignatures};
use crate::commitment::{RandomnessCommitment, RandomnessProofError};
use crate::eots::{self, ExtractError, Signature, VerifyError};
use crate::merkle::Proof;
use crate::rounds::{has_quorum, PowerTable};

/// A checkpoint round as the node holds it after closing round h.
#[derive(Debug, Clone)]
pub struct CheckpointRound {
    /// The candidate built at the close.
    pub candidate: Candidate,
    /// The set encoded in the base output (whose leaf the signatures spend).
    pub base_set: CheckpointSet,
    /// Round h's power table (the §10 tally).
    pub table: PowerTable,
}

/// Why a checkpoint vote is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointVoteError {
    /// Neither in round h's active set nor in the base set.
    #[error("{0} is neither in the round's active set nor in the base checkpoint's set")]
    NotASigner(XOnlyPublicKey),
    /// Its public randomness is not the one committed for h.
    #[error(transparent)]
    Randomness(#[from] RandomnessProofError),
    /// The signature does not verify over the node's M (another candidate, or bad bytes).
    #[error("the checkpoint signature does not verify over the round's candidate: {0}")]
    Signature(VerifyError),
}

/// The checkpoint votes of a round, weighed both ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointTally {
    /// Power of the active-set members that signed.
    pub voted_power: u128,
    /// The active set's total power.
    pub total_power: u128,
    /// The base-set signatures when they reach T.
    pub complete: Option<CompleteSignatures>,
}

impl CheckpointTally {
    /// Final by §10: > 2/3 of round h's power signed M.
    pub fn is_final(&self) -> bool {
        has_quorum(self.voted_power, self.total_power)
    }

    /// Final and complete: the candidate may be broadcast (§13.6.3).
    pub fn is_ready(&self) -> bool {
        self.is_final() && self.complete.is_some()
    }
}

impl CheckpointRound {
    /// Round h.
    pub fn round(&self) -> u64 {
        self.table.round()
    }

    /// M, the message every signer signs.
    pub fn message(&self) -> &CheckpointMessage {
        &self.candidate.message
    }

    /// Checks one checkpoint vote: a signer of the round, with the committed randomness of h
    /// (`commitment` is the voter's commitment covering h), over this round's M.
    ///
    /// # Errors
    /// [`CheckpointVoteError`] naming the first check that failed.
    pub fn check_vote(
        &self,
        vote: &CheckpointVote,
        commitment: &RandomnessCommitment,
        proof: &Proof,
    ) -> Result<(), CheckpointVoteError> {
        if !self.table.contains(&vote.voter) && !self.base_set.contains(&vote.voter) {
            return Err(CheckpointVoteError::NotASigner(vote.voter));
        }
        commitment.verify_randomness(self.round(), &vote.public_randomness, proof)?;
        vote.verify(self.message())
            .map_err(CheckpointVoteError::Signature)
    }

    /// Weighs accepted votes (see [`CheckpointRound::check_vote`]); a vote that does not verify
    /// over M, or a second vote by one key, is ignored.
    pub fn tally<'a>(
        &self,
        votes: impl IntoIterator<Item = &'a CheckpointVote>,
    ) -> CheckpointTally {
        let mut by_key: BTreeMap<[u8; 32], &CheckpointVote> = BTreeMap::new();
        for vote in votes {
            if vote.verify(self.message()).is_ok() {
                by_key.entry(vote.voter.serialize()).or_insert(vote);
            }
        }
        let voted_power: u128 = by_key
            .values()
            .filter_map(|v| self.table.power_of(&v.voter))
            .map(u128::from)
            .sum();
        let base_sigs: Vec<_> = by_key
            .values()
            .filter(|v| self.base_set.contains(&v.voter))
            .map(|v| v.key_signature())
            .collect();
        CheckpointTally {
            voted_power,
            total_power: self.table.total_power(),
            complete: check_complete(&self.base_set, &self.message().sighash(), &base_sigs).ok(),
        }
    }

    /// The candidate with its quorum witness: the round's certificate as Bitcoin checks it.
    pub fn signed_transaction(&self, complete: &CompleteSignatures) -> Transaction {
        let mut tx = self.candidate.tx.clone();
        tx.input[0].witness = quorum_witness(&self.candidate.base_output, &self.base_set, complete);
        tx
    }
}

/// Why two messages of one verifier for a checkpoint round do not prove equivocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointEquivocationError {
    /// The other signature does not verify over its message with the same randomness.
    #[error("the other signature does not verify with the checkpoint vote's randomness: {0}")]
    Other(VerifyError),
    /// The checkpoint vote does not verify over M.
    #[error("the checkpoint vote does not verify over its message: {0}")]
    Checkpoint(VerifyError),
    /// Extraction failed (the messages are equal, or a scalar is not canonical).
    #[error(transparent)]
    Extract(#[from] ExtractError),
}

/// The key a verifier gave away by signing M and another message (M′, or round h's §10 vote
/// message) with the randomness of one round (§11; §13.5 "One message per round").
///
/// # Errors
/// [`CheckpointEquivocationError`] when the two signatures do not both verify under the
/// vote's key and randomness, or the messages are equal.
pub fn checkpoint_equivocation(
    vote: &CheckpointVote,
    message: &CheckpointMessage,
    other_message: &[u8],
    other_signature: &Signature,
) -> Result<SecretKey, CheckpointEquivocationError> {
    vote.verify(message)
        .map_err(CheckpointEquivocationError::Checkpoint)?;
    eots::verify(
        &vote.voter,
        &vote.public_randomness,
        other_message,
        other_signature,
    )
    .map_err(CheckpointEquivocationError::Other)?;
    Ok(eots::extract(
        &vote.voter,
        &vote.public_randomness,
        message.as_bytes(),
        &vote.signature,
        other_message,
        other_signature,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::candidate::{build_candidate, CandidateSpec};
    use crate::checkpoint::payload::{CheckpointKind, CheckpointPayload};
    use crate::checkpoint::script::RecoveryLeaf;
    use crate::checkpoint::testkit::kp;
    use crate::committed::CommittedRandomness;
    use crate::round::RoundHash;
    use crate::rounds::{Candidate as PowerCandidate, VerifierStatus, Vote};
    use bitcoin::hashes::Hash;
    use bitcoin::{Amount, OutPoint};
    use fiamma_staking::context::SigningContexts;
    use secp256k1::Keypair;

    const ROUND: u64 = 40;
    const CHAIN: &str = "fiamma-checkpoint-unit";

    struct Member {
        kp: Keypair,
        randomness: CommittedRandomness,
    }

    impl Member {
        fn new(seed: u8) -> Self {
            let kp = kp(seed);
            Member {
                randomness: CommittedRandomness::derive(&kp.secret_key(), CHAIN, 1, 100)
                    .expect("range"),
                kp,
            }
        }

        fn key(&self) -> XOnlyPublicKey {
            self.kp.x_only_public_key().0
        }

        fn vote(&self, m: &CheckpointMessage) -> CheckpointVote {
            let r = self.randomness.for_round(ROUND).expect("committed");
            CheckpointVote::sign(&self.kp, &r.secret, m)
        }

        fn proof(&self) -> Proof {
            self.randomness.for_round(ROUND).expect("committed").proof
        }
    }

    /// Base set {1: 2, 2: 1} (an outgoing member 1 not active at h); round h's active set
    /// {2: 5, 3: 5, 4: 1}.
    fn scene(round_hash: u8) -> (Vec<Member>, CheckpointRound) {
        let members: Vec<Member> = (1..=4).map(Member::new).collect();
        let base_set =
            CheckpointSet::from_powers([(members[0].key(), 2), (members[1].key(), 1)]).unwrap();
        let powers = [(1usize, 5u64), (2, 5), (3, 1)];
        let candidates: Vec<PowerCandidate<'_>> = powers
            .iter()
            .map(|(i, p)| PowerCandidate {
                key: members[*i].key(),
                status: VerifierStatus::Active,
                power: *p,
                commitments: std::slice::from_ref(members[*i].randomness.commitment()),
            })
            .collect();
        let table = PowerTable::compute(ROUND, &candidates, 100).unwrap();
        let next_set = CheckpointSet::from_power_table(&table).unwrap();
        let recovery = RecoveryLeaf::new(&[kp(9).x_only_public_key().0], 1, 12).unwrap();
        let candidate = build_candidate(&CandidateSpec {
            base: OutPoint::new(bitcoin::Txid::all_zeros(), 0),
            base_round: 0,
            base_set: &base_set,
            next_set: &next_set,
            recovery: &recovery,
            value: Amount::from_sat(1_000),
            payload: CheckpointPayload {
                kind: CheckpointKind::Quorum,
                round: ROUND,
                round_hash: RoundHash([round_hash; 32]),
                state: [0; 32],
            },
        })
        .unwrap();
        (
            members,
            CheckpointRound {
                candidate,
                base_set,
                table,
            },
        )
    }

    #[test]
    fn votes_are_checked_against_signers_randomness_and_m() {
        let (m, round) = scene(1);
        let (_, other) = scene(2);
        let msg = round.message().clone();
        for (i, member) in m.iter().enumerate() {
            assert_eq!(
                round.check_vote(
                    &member.vote(&msg),
                    member.randomness.commitment(),
                    &member.proof()
                ),
                Ok(()),
                "member {i}"
            );
        }
        let outsider = Member::new(7);
        assert_eq!(
            round.check_vote(
                &outsider.vote(&msg),
                outsider.randomness.commitment(),
                &outsider.proof()
            ),
            Err(CheckpointVoteError::NotASigner(outsider.key()))
        );
        // Over another candidate's M.
        assert!(matches!(
            round.check_vote(
                &m[1].vote(other.message()),
                m[1].randomness.commitment(),
                &m[1].proof()
            ),
            Err(CheckpointVoteError::Signature(_))
        ));
        // With randomness other than the committed one for h.
        let fresh = eots::SecretRandomness::new(kp(42).secret_key());
        let rogue = CheckpointVote::sign(&m[1].kp, &fresh, &msg);
        assert!(matches!(
            round.check_vote(&rogue, m[1].randomness.commitment(), &m[1].proof()),
            Err(CheckpointVoteError::Randomness(_))
        ));
    }

    #[test]
    fn final_by_power_complete_by_base_weight() {
        let (m, round) = scene(1);
        let msg = round.message().clone();
        let v: Vec<CheckpointVote> = m.iter().map(|x| x.vote(&msg)).collect();
        // Members 2 and 3 hold 10 of 11 of the power: final. Of the base set only member 2
        // (weight 1/3) signed: not complete.
        let t = round.tally([&v[1], &v[2]]);
        assert_eq!((t.voted_power, t.total_power), (10, 11));
        assert!(t.is_final() && t.complete.is_none() && !t.is_ready());
        // The outgoing member 1 completes it on Bitcoin without adding power.
        let t = round.tally([&v[0], &v[1], &v[2]]);
        assert_eq!(t.voted_power, 10);
        assert!(t.is_ready());
        // Base-complete but not final: members 1 and 2 (power 5 of 11).
        let t = round.tally([&v[0], &v[1]]);
        assert!(!t.is_final() && t.complete.is_some());
        // A duplicate and a vote over another M are ignored.
        let (_, other) = scene(2);
        let t = round.tally([&v[1], &v[1], &m[2].vote(other.message())]);
        assert_eq!(t.voted_power, 5);
        // The certificate is the candidate with its witness; Bitcoin's script checks it in the
        // workspace tests (the kernel is not a dependency of this crate).
        let ready = round.tally(&v);
        let tx = round.signed_transaction(ready.complete.as_ref().unwrap());
        assert_eq!(tx.compute_txid(), round.candidate.tx.compute_txid());
        assert_eq!(tx.input[0].witness.len(), round.base_set.len() + 2);
    }

    #[test]
    fn a_second_message_for_the_round_gives_the_key_away() {
        let (m, round) = scene(1);
        let (_, other) = scene(2);
        let vote = m[1].vote(round.message());
        // M′: a second candidate for h.
        let second = m[1].vote(other.message());
        let key = checkpoint_equivocation(
            &vote,
            round.message(),
            other.message().as_bytes(),
            &second.signature,
        )
        .expect("extracted");
        assert_eq!(key.x_only_public_key(secp256k1::SECP256K1).0, m[1].key());
        // Round h's §10 vote message with the same committed randomness.
        let contexts = SigningContexts::new(CHAIN, "fmma1finality");
        let ordinary = Vote::sign(
            &m[1].kp,
            m[1].randomness.for_round(ROUND).unwrap(),
            &contexts,
            ROUND,
            [1; 32],
        );
        let key = checkpoint_equivocation(
            &vote,
            round.message(),
            &ordinary.message(&contexts),
            &ordinary.signature,
        )
        .expect("extracted");
        assert_eq!(key.x_only_public_key(secp256k1::SECP256K1).0, m[1].key());
        // The same message twice reveals nothing.
        assert!(matches!(
            checkpoint_equivocation(
                &vote,
                round.message(),
                round.message().as_bytes(),
                &vote.signature
            ),
            Err(CheckpointEquivocationError::Extract(
                ExtractError::SameMessage
            ))
        ));
    }
}
