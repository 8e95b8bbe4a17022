//! A verifier's own committed randomness: the public randomness of a range of rounds, its
//! Merkle tree, and the secret randomness re-derived per round (`PROTOCOL.md` §9).

use secp256k1::SecretKey;
use zeroize::Zeroizing;

use crate::commitment::{CommitmentRangeError, RandomnessCommitment};
use crate::eots::{derive_from_key_bytes, PublicRandomness, RandomnessDomain, SecretRandomness};
use crate::merkle::{MerkleTree, Proof};

/// The randomness a verifier committed to for rounds `start .. start + num − 1`.
///
/// Holds a copy of the verifier's secret key (erased on drop) so that it can re-derive each
/// round's secret randomness on demand instead of keeping `num` secrets in memory.
pub struct CommittedRandomness {
    key: Zeroizing<[u8; 32]>,
    domain: RandomnessDomain,
    commitment: RandomnessCommitment,
    public: Vec<PublicRandomness>,
    tree: MerkleTree,
}

/// What a verifier needs to vote in one round: the secret randomness to sign with, its public
/// randomness and the proof that it was committed.
#[derive(Debug)]
pub struct RoundRandomness {
    /// The secret randomness of the round.
    pub secret: SecretRandomness,
    /// `x(kG)` of [`RoundRandomness::secret`].
    pub public: PublicRandomness,
    /// The inclusion proof of [`RoundRandomness::public`] under the commitment's root.
    pub proof: Proof,
}

impl CommittedRandomness {
    /// Derives the randomness of rounds `start .. start + num − 1` for `sk` on `chain_id` (see
    /// [`crate::eots::derive_secret_randomness`]) and commits to it. Costs one scalar
    /// multiplication per round.
    ///
    /// # Errors
    /// [`CommitmentRangeError`] when `num` is zero, the range overflows, or `num` does not fit
    /// in memory indices.
    pub fn derive(
        sk: &SecretKey,
        chain_id: &str,
        start: u64,
        num: u64,
    ) -> Result<Self, CommitmentRangeError> {
        Self::derive_in(sk, RandomnessDomain::chain_only(chain_id), start, num)
    }

    /// Derives the randomness of rounds `start .. start + num − 1` for `sk` bound to `domain`
    /// (see [`crate::eots::derive_bound_randomness`]) and commits to it. This is the derivation
    /// a verifier daemon uses; [`CommittedRandomness::derive`] is the unbound one.
    ///
    /// # Errors
    /// As [`CommittedRandomness::derive`].
    pub fn derive_in(
        sk: &SecretKey,
        domain: RandomnessDomain,
        start: u64,
        num: u64,
    ) -> Result<Self, CommitmentRangeError> {
        let range_error = CommitmentRangeError { start, num };
        // Validates the range before any work is done.
        let last = RandomnessCommitment::new(start, num, [0; 32])?.last();
        usize::try_from(num).map_err(|_| range_error)?;
        let key = Zeroizing::new(sk.secret_bytes());
        let public: Vec<PublicRandomness> = (start..=last)
            .map(|round| derive_from_key_bytes(&key, domain.as_bytes(), round).public())
            .collect();
        let leaves: Vec<&[u8; 32]> = public.iter().map(PublicRandomness::as_bytes).collect();
        let tree = MerkleTree::new(&leaves);
        let commitment = RandomnessCommitment::new(start, num, tree.root())?;
        Ok(CommittedRandomness {
            key,
            domain,
            commitment,
            public,
            tree,
        })
    }

    /// The commitment to sign and publish.
    pub fn commitment(&self) -> &RandomnessCommitment {
        &self.commitment
    }

    /// The public randomness of every committed round, in round order.
    pub fn public_randomness(&self) -> &[PublicRandomness] {
        &self.public
    }

    /// The secret randomness, public randomness and inclusion proof of `round`.
    ///
    /// # Errors
    /// [`RoundNotCommitted`] when `round` is outside the committed range.
    pub fn for_round(&self, round: u64) -> Result<RoundRandomness, RoundNotCommitted> {
        let not_committed = RoundNotCommitted {
            round,
            start: self.commitment.start(),
            last: self.commitment.last(),
        };
        if !self.commitment.covers(round) {
            return Err(not_committed);
        }
        let index = round - self.commitment.start();
        let proof = self.tree.proof(index).map_err(|_| not_committed)?;
        let public = *usize::try_from(index)
            .ok()
            .and_then(|i| self.public.get(i))
            .ok_or(not_committed)?;
        Ok(RoundRandomness {
            secret: derive_from_key_bytes(&self.key, self.domain.as_bytes(), round),
            public,
            proof,
        })
    }
}

impl std::fmt::Debug for CommittedRandomness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommittedRandomness")
            .field("domain", &self.domain)
            .field("commitment", &self.commitment)
            .finish_non_exhaustive()
    }
}

/// A round outside a verifier's committed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("round {round} is outside the committed rounds {start}..={last}")]
pub struct RoundNotCommitted {
    /// The requested round.
    pub round: u64,
    /// The first committed round.
    pub start: u64,
    /// The last committed round.
    pub last: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eots::{derive_secret_randomness, sign, verify};
    use fiamma_staking::context::SigningContexts;
    use secp256k1::{Keypair, SECP256K1};

    fn key() -> SecretKey {
        SecretKey::from_slice(&[0x21; 32]).expect("valid key")
    }

    #[test]
    fn hands_out_committed_randomness_for_every_round_in_range() {
        let list = CommittedRandomness::derive(&key(), "chain", 100, 7).expect("valid range");
        let c = *list.commitment();
        assert_eq!((c.start(), c.num(), c.last()), (100, 7, 106));
        let kp = Keypair::from_secret_key(SECP256K1, &key());
        let (pk, _) = kp.x_only_public_key();
        for round in 100..=106 {
            let r = list.for_round(round).expect("committed");
            assert_eq!(r.public, r.secret.public());
            assert_eq!(
                r.public,
                derive_secret_randomness(&key(), "chain", round).public()
            );
            assert_eq!(c.verify_randomness(round, &r.public, &r.proof), Ok(()));
            let sig = sign(&kp, &r.secret, b"vote");
            assert_eq!(verify(&pk, &r.public, b"vote", &sig), Ok(()));
        }
        assert_eq!(
            list.for_round(99).map(|r| r.public),
            Err(RoundNotCommitted {
                round: 99,
                start: 100,
                last: 106
            })
        );
        assert!(list.for_round(107).is_err());
    }

    #[test]
    fn randomness_of_one_round_is_refused_for_another() {
        let list = CommittedRandomness::derive(&key(), "chain", 0, 4).expect("valid range");
        let c = list.commitment();
        let r = list.for_round(1).expect("committed");
        assert!(c.verify_randomness(2, &r.public, &r.proof).is_err());
        assert!(c.verify_randomness(4, &r.public, &r.proof).is_err());
        let other = list.for_round(2).expect("committed");
        assert!(c.verify_randomness(1, &other.public, &r.proof).is_err());
    }

    #[test]
    fn signed_commitment_verifies_only_under_its_contexts_and_key() {
        let list = CommittedRandomness::derive(&key(), "chain", 10, 3).expect("valid range");
        let kp = Keypair::from_secret_key(SECP256K1, &key());
        let (pk, _) = kp.x_only_public_key();
        let contexts = SigningContexts::new("chain", "addr");
        let sig = list.commitment().sign(&kp, &contexts, &[0; 32]);
        assert_eq!(list.commitment().verify(&pk, &contexts, &sig), Ok(()));
        let other_contexts = SigningContexts::new("chain", "other");
        assert!(list
            .commitment()
            .verify(&pk, &other_contexts, &sig)
            .is_err());
        let (other_pk, _) = Keypair::from_seckey_slice(SECP256K1, &[3; 32])
            .expect("valid key")
            .x_only_public_key();
        assert!(list
            .commitment()
            .verify(&other_pk, &contexts, &sig)
            .is_err());
    }

    #[test]
    fn empty_and_overflowing_ranges_are_refused() {
        assert!(CommittedRandomness::derive(&key(), "c", 5, 0).is_err());
        assert!(CommittedRandomness::derive(&key(), "c", u64::MAX, 2).is_err());
        assert!(CommittedRandomness::derive(&key(), "c", u64::MAX, 1).is_ok());
    }
}
