//! The pure parts of a round (`PROTOCOL.md` §10): its results, their Merkle root, the round
//! hash that verifiers sign, and the Bitcoin anchor that publishes it.

pub mod anchor;

use bitcoin::hashes::{sha256, Hash, HashEngine};

use crate::merkle;
use crate::zk::{ProofId, Verdict};

/// The domain tag that starts the round hash preimage.
pub const ROUND_HASH_TAG: &[u8] = b"fiamma/round/v1";

/// Size of a result leaf: `proof_id (32) ‖ verdict (1)`.
pub const RESULT_LEAF_LEN: usize = 33;

/// The verdict the node reached on one proof of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoundResult {
    /// The proof's `proof_id`.
    pub proof_id: ProofId,
    /// Its verdict.
    pub verdict: Verdict,
}

impl RoundResult {
    /// The Merkle leaf `proof_id ‖ verdict` (`0x01` valid, `0x00` invalid).
    pub fn leaf(&self) -> [u8; RESULT_LEAF_LEN] {
        let mut leaf = [0u8; RESULT_LEAF_LEN];
        leaf[..32].copy_from_slice(self.proof_id.as_bytes());
        leaf[32] = self.verdict.byte();
        leaf
    }
}

/// The 32-byte commitment to a round's results, chained to the previous round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoundHash(pub [u8; 32]);

impl RoundHash {
    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Display for RoundHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The RFC-6962 Merkle root over the result leaves, in submission order; `sha256("")` for a
/// round without proofs.
pub fn results_root(results: &[RoundResult]) -> merkle::Digest {
    let leaves: Vec<[u8; RESULT_LEAF_LEN]> = results.iter().map(RoundResult::leaf).collect();
    merkle::root(&leaves)
}

/// `sha256("fiamma/round/v1" ‖ u64be(round) ‖ prev_round_hash ‖ merkle_root(results))`.
///
/// Chaining the previous round hash means that signing round h also confirms every earlier
/// round's results, so the latest anchored round hash commits to the whole history.
pub fn round_hash(round: u64, prev_round_hash: &RoundHash, results: &[RoundResult]) -> RoundHash {
    let mut engine = sha256::Hash::engine();
    engine.input(ROUND_HASH_TAG);
    engine.input(&round.to_be_bytes());
    engine.input(prev_round_hash.as_bytes());
    engine.input(&results_root(results));
    RoundHash(sha256::Hash::from_engine(engine).to_byte_array())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(seed: u8, verdict: Verdict) -> RoundResult {
        RoundResult {
            proof_id: ProofId([seed; 32]),
            verdict,
        }
    }

    #[test]
    fn leaf_is_proof_id_then_verdict_byte() {
        let leaf = result(7, Verdict::Valid).leaf();
        assert_eq!(&leaf[..32], &[7; 32]);
        assert_eq!(leaf[32], 0x01);
        assert_eq!(result(7, Verdict::Invalid).leaf()[32], 0x00);
    }

    #[test]
    fn round_hash_matches_its_preimage() {
        let results = [result(1, Verdict::Valid), result(2, Verdict::Invalid)];
        let prev = RoundHash([9; 32]);
        let root = merkle::inner_hash(
            &merkle::leaf_hash(&results[0].leaf()),
            &merkle::leaf_hash(&results[1].leaf()),
        );
        let preimage = [
            &b"fiamma/round/v1"[..],
            &5u64.to_be_bytes(),
            &[9; 32],
            &root,
        ]
        .concat();
        assert_eq!(
            round_hash(5, &prev, &results).0,
            sha256::Hash::hash(&preimage).to_byte_array()
        );
    }

    #[test]
    fn empty_round_commits_to_the_empty_root() {
        assert_eq!(results_root(&[]), sha256::Hash::hash(b"").to_byte_array());
    }

    #[test]
    fn every_input_changes_the_round_hash() {
        let results = [result(1, Verdict::Valid), result(2, Verdict::Invalid)];
        let prev = RoundHash([0; 32]);
        let base = round_hash(3, &prev, &results);
        let variants = [
            round_hash(4, &prev, &results),
            round_hash(3, &RoundHash([1; 32]), &results),
            round_hash(3, &prev, &[results[1], results[0]]),
            round_hash(3, &prev, &[results[0], result(2, Verdict::Valid)]),
            round_hash(3, &prev, &results[..1]),
        ];
        for (i, variant) in variants.iter().enumerate() {
            assert_ne!(*variant, base, "variant {i}");
        }
    }
}
