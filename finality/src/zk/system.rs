//! The proof systems a sequencer may submit (`PROTOCOL.md` §10).

use thiserror::Error;

/// A proof system the node can verify, identified on the wire and in `proof_id` by one byte.
///
/// Codes are permanent: a code is never reused for another system, because `proof_id` commits
/// to it and rounds already anchored on Bitcoin refer to proofs by `proof_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ProofSystem {
    /// Groth16 over BN254, every part in arkworks `CanonicalSerialize` compressed encoding:
    /// the format Fiamma's sequencer submits (its `GROTH16_BN254_BITVM`). Code 1; code 0 is
    /// left unassigned so that a zeroed field never names a real system.
    Groth16Bn254 = 1,
}

/// The byte does not name a supported proof system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("unknown proof system code {0}")]
pub struct UnknownProofSystem(pub u8);

impl ProofSystem {
    /// The one-byte code of this system, as hashed into `proof_id`.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for ProofSystem {
    type Error = UnknownProofSystem;

    fn try_from(code: u8) -> Result<Self, Self::Error> {
        match code {
            1 => Ok(ProofSystem::Groth16Bn254),
            other => Err(UnknownProofSystem(other)),
        }
    }
}

impl std::fmt::Display for ProofSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProofSystem::Groth16Bn254 => f.write_str("groth16-bn254"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_round_trips_and_other_codes_are_unknown() {
        assert_eq!(ProofSystem::Groth16Bn254.code(), 1);
        assert_eq!(ProofSystem::try_from(1), Ok(ProofSystem::Groth16Bn254));
        for code in (0..=u8::MAX).filter(|c| *c != 1) {
            assert_eq!(ProofSystem::try_from(code), Err(UnknownProofSystem(code)));
        }
    }
}
