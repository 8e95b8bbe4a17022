//! Randomness commitments (`PROTOCOL.md` §9): a verifier's signed Merkle root over the public
//! randomness of rounds `start .. start + num − 1`, and the check of one round's randomness
//! against it.

use bitcoin::hashes::{sha256, Hash, HashEngine};
use fiamma_staking::context::{SigningContexts, SigningOp};
use secp256k1::{schnorr, Keypair, Message, XOnlyPublicKey, SECP256K1};

use crate::eots::PublicRandomness;
use crate::merkle::{Digest, Proof, ProofError};

/// A commitment to the public randomness of `num` consecutive rounds starting at `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RandomnessCommitment {
    start: u64,
    num: u64,
    root: Digest,
}

impl RandomnessCommitment {
    /// A commitment to rounds `start .. start + num − 1` with Merkle root `root`.
    ///
    /// # Errors
    /// [`CommitmentRangeError`] when `num` is zero or the last round does not fit in a u64.
    pub fn new(start: u64, num: u64, root: Digest) -> Result<Self, CommitmentRangeError> {
        if num == 0 || start.checked_add(num - 1).is_none() {
            return Err(CommitmentRangeError { start, num });
        }
        Ok(RandomnessCommitment { start, num, root })
    }

    /// The first round covered.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The number of rounds covered (at least 1).
    pub fn num(&self) -> u64 {
        self.num
    }

    /// The last round covered: `start + num − 1`.
    pub fn last(&self) -> u64 {
        // `new` checked that this does not overflow.
        self.start + (self.num - 1)
    }

    /// The Merkle root over the public randomness of the rounds, in order.
    pub fn root(&self) -> Digest {
        self.root
    }

    /// Whether `round` is one of the committed rounds.
    pub fn covers(&self, round: u64) -> bool {
        (self.start..=self.last()).contains(&round)
    }

    /// Whether this and `other` share a round.
    pub fn overlaps(&self, other: &RandomnessCommitment) -> bool {
        self.start <= other.last() && other.start <= self.last()
    }

    /// The 32-byte message the verifier signs:
    /// `sha256(ctx("fp_rand_commit") ‖ u64be(start) ‖ u64be(num) ‖ root)`.
    pub fn signing_hash(&self, contexts: &SigningContexts) -> [u8; 32] {
        let mut engine = sha256::Hash::engine();
        engine.input(contexts.context(SigningOp::FpRandCommit).as_bytes());
        engine.input(&self.start.to_be_bytes());
        engine.input(&self.num.to_be_bytes());
        engine.input(&self.root);
        sha256::Hash::from_engine(engine).to_byte_array()
    }

    /// The verifier's BIP-0340 signature on [`RandomnessCommitment::signing_hash`]; `aux_rand`
    /// is the BIP-0340 auxiliary randomness (32 fresh random bytes in production).
    pub fn sign(
        &self,
        keypair: &Keypair,
        contexts: &SigningContexts,
        aux_rand: &[u8; 32],
    ) -> schnorr::Signature {
        let msg = Message::from_digest(self.signing_hash(contexts));
        SECP256K1.sign_schnorr_with_aux_rand(&msg, keypair, aux_rand)
    }

    /// Checks the verifier's BIP-0340 signature on the commitment.
    ///
    /// # Errors
    /// [`CommitmentSignatureError`] when the signature is not valid for `pk`.
    pub fn verify(
        &self,
        pk: &XOnlyPublicKey,
        contexts: &SigningContexts,
        sig: &schnorr::Signature,
    ) -> Result<(), CommitmentSignatureError> {
        let msg = Message::from_digest(self.signing_hash(contexts));
        SECP256K1
            .verify_schnorr(sig, &msg, pk)
            .map_err(|_| CommitmentSignatureError {
                pk: *pk,
                start: self.start,
                num: self.num,
            })
    }

    /// Checks that `pr` is the committed public randomness of `round`: the round is covered, the
    /// proof is for leaf `round − start` of `num` leaves, and it leads from `pr` to the root.
    ///
    /// # Errors
    /// [`RandomnessProofError`] naming the first check that failed.
    pub fn verify_randomness(
        &self,
        round: u64,
        pr: &PublicRandomness,
        proof: &Proof,
    ) -> Result<(), RandomnessProofError> {
        if !self.covers(round) {
            return Err(RandomnessProofError::RoundNotCovered {
                round,
                start: self.start,
                last: self.last(),
            });
        }
        let index = round - self.start;
        if proof.index != index || proof.total != self.num {
            return Err(RandomnessProofError::WrongPosition {
                round,
                index: proof.index,
                total: proof.total,
                expected_index: index,
                expected_total: self.num,
            });
        }
        proof
            .verify(&self.root, pr.as_bytes())
            .map_err(|source| RandomnessProofError::Proof { round, source })
    }
}

/// A commitment with no rounds or with rounds past `u64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a commitment of {num} rounds from round {start} is empty or overflows")]
pub struct CommitmentRangeError {
    /// The requested first round.
    pub start: u64,
    /// The requested number of rounds.
    pub num: u64,
}

/// The signature on a randomness commitment does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "signature by {pk} on the randomness commitment of {num} rounds from {start} does not verify"
)]
pub struct CommitmentSignatureError {
    /// The verifier key checked.
    pub pk: XOnlyPublicKey,
    /// The commitment's first round.
    pub start: u64,
    /// The commitment's number of rounds.
    pub num: u64,
}

/// Why public randomness was not accepted as committed for a round.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RandomnessProofError {
    /// The round is outside the commitment.
    #[error("round {round} is outside the committed rounds {start}..={last}")]
    RoundNotCovered {
        /// The round of the randomness.
        round: u64,
        /// The commitment's first round.
        start: u64,
        /// The commitment's last round.
        last: u64,
    },
    /// The proof is for another position or another tree size.
    #[error(
        "proof for round {round} is for leaf {index} of {total}, expected leaf {expected_index} of {expected_total}"
    )]
    WrongPosition {
        /// The round of the randomness.
        round: u64,
        /// The proof's index.
        index: u64,
        /// The proof's tree size.
        total: u64,
        /// The index of `round` in the commitment.
        expected_index: u64,
        /// The commitment's number of rounds.
        expected_total: u64,
    },
    /// The Merkle proof does not lead from the randomness to the committed root.
    #[error("randomness proof for round {round} fails: {source}")]
    Proof {
        /// The round of the randomness.
        round: u64,
        /// The Merkle proof failure.
        source: ProofError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::MerkleTree;

    fn commitment(start: u64, num: u64) -> RandomnessCommitment {
        RandomnessCommitment::new(start, num, [0; 32]).expect("valid range")
    }

    #[test]
    fn range_is_inclusive_and_overlap_is_symmetric() {
        let c = commitment(10, 5);
        assert_eq!(c.last(), 14);
        assert!(!c.covers(9) && c.covers(10) && c.covers(14) && !c.covers(15));
        for (other, overlaps) in [
            (commitment(0, 10), false),
            (commitment(0, 11), true),
            (commitment(14, 1), true),
            (commitment(15, 3), false),
            (commitment(11, 2), true),
        ] {
            assert_eq!(c.overlaps(&other), overlaps, "{other:?}");
            assert_eq!(other.overlaps(&c), overlaps, "{other:?}");
        }
        assert_eq!(
            RandomnessCommitment::new(1, 0, [0; 32]),
            Err(CommitmentRangeError { start: 1, num: 0 })
        );
    }

    #[test]
    fn signing_hash_covers_context_range_and_root() {
        let contexts = SigningContexts::new("chain", "addr");
        let c = RandomnessCommitment::new(0x0102, 0x0304, [9; 32]).expect("valid range");
        let mut preimage = contexts.context(SigningOp::FpRandCommit).into_bytes();
        preimage.extend_from_slice(&0x0102u64.to_be_bytes());
        preimage.extend_from_slice(&0x0304u64.to_be_bytes());
        preimage.extend_from_slice(&[9; 32]);
        assert_eq!(
            c.signing_hash(&contexts),
            sha256::Hash::hash(&preimage).to_byte_array()
        );
        let off = contexts.clone().without(SigningOp::FpRandCommit);
        assert_eq!(
            c.signing_hash(&off),
            sha256::Hash::hash(&preimage[64..]).to_byte_array()
        );
    }

    #[test]
    fn randomness_checks_name_the_failure() {
        let prs: Vec<[u8; 32]> = (0u8..6).map(|i| [i; 32]).collect();
        let tree = MerkleTree::new(&prs);
        let c = RandomnessCommitment::new(100, 6, tree.root()).expect("valid range");
        let pr = |i: usize| PublicRandomness::from_byte_array(prs[i]);
        let proof = tree.proof(2).expect("in range");
        assert_eq!(c.verify_randomness(102, &pr(2), &proof), Ok(()));
        assert!(matches!(
            c.verify_randomness(106, &pr(2), &proof),
            Err(RandomnessProofError::RoundNotCovered {
                round: 106,
                start: 100,
                last: 105
            })
        ));
        assert!(matches!(
            c.verify_randomness(103, &pr(2), &proof),
            Err(RandomnessProofError::WrongPosition {
                index: 2,
                expected_index: 3,
                ..
            })
        ));
        assert!(matches!(
            c.verify_randomness(102, &pr(3), &proof),
            Err(RandomnessProofError::Proof { round: 102, .. })
        ));
    }
}
