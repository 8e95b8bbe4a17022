//! `proof_id` (`PROTOCOL.md` §10): the identifier of a submission, as it appears in a round's
//! results and so, through the round hash, on Bitcoin.

use bitcoin::hashes::{sha256, Hash, HashEngine};

use super::system::ProofSystem;

/// `sha256(u8(system) ‖ u32be(len) vk ‖ u32be(len) proof ‖ u32be(len) inputs)`.
///
/// The length prefixes make the split between the parts unambiguous, so two submissions share
/// an id only if all four fields are equal (up to a SHA-256 collision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProofId(pub [u8; 32]);

impl ProofId {
    /// Computes the id of a submission whose parts each fit in a `u32` length.
    ///
    /// Returns `None` if a part is 4 GiB or larger; parts of a
    /// [`ZkProof`](super::ZkProof) are far below that by its size caps.
    pub fn compute(
        system: ProofSystem,
        verifying_key: &[u8],
        proof: &[u8],
        public_inputs: &[u8],
    ) -> Option<ProofId> {
        let mut engine = sha256::Hash::engine();
        engine.input(&[system.code()]);
        for part in [verifying_key, proof, public_inputs] {
            let len = u32::try_from(part.len()).ok()?;
            engine.input(&len.to_be_bytes());
            engine.input(part);
        }
        Some(ProofId(sha256::Hash::from_engine(engine).to_byte_array()))
    }

    /// The 32 bytes of the id.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Display for ProofId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_sha256_of_the_length_prefixed_parts() {
        let id =
            ProofId::compute(ProofSystem::Groth16Bn254, b"vk", b"pi", b"").expect("tiny parts");
        let preimage = [
            &[1u8][..],
            &[0, 0, 0, 2],
            b"vk",
            &[0, 0, 0, 2],
            b"pi",
            &[0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(id.0, sha256::Hash::hash(&preimage).to_byte_array());
        assert_eq!(id.to_string(), hex::encode(id.0));
    }

    #[test]
    fn moving_a_byte_between_parts_changes_the_id() {
        let a = ProofId::compute(ProofSystem::Groth16Bn254, b"ab", b"c", b"");
        let b = ProofId::compute(ProofSystem::Groth16Bn254, b"a", b"bc", b"");
        assert_ne!(a, b);
    }
}
