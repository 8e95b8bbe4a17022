//! A submitted proof as raw bytes, its size caps, its id and its verification.

use super::error::{Part, ProofSizeError, ZkError};
use super::groth16::Groth16Bn254;
use super::proof_id::ProofId;
use super::system::ProofSystem;
use super::verdict::Verdict;

/// A sequencer's submission `(proof_system, verifying_key, proof, public_inputs)` as bytes.
///
/// Constructed only through [`ZkProof::new`], so every part is within its system's
/// [`SizeCaps`]. The bytes need not decode: a submission is data until verified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZkProof {
    system: ProofSystem,
    verifying_key: Vec<u8>,
    proof: Vec<u8>,
    public_inputs: Vec<u8>,
}

/// The largest size in bytes of each part of a submission, per proof system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeCaps {
    /// Cap on the verifying key.
    pub verifying_key: usize,
    /// Cap on the proof.
    pub proof: usize,
    /// Cap on the public inputs.
    pub public_inputs: usize,
}

impl SizeCaps {
    /// The caps of `system`: the largest well-formed encoding of each part.
    ///
    /// For Groth16 over BN254 that is a key and inputs for
    /// [`MAX_PUBLIC_INPUTS`](super::groth16::MAX_PUBLIC_INPUTS) inputs and the fixed 128-byte
    /// proof, so a part over its cap can never decode, and the node stores and hashes at most
    /// 4.5 KiB per submission.
    pub const fn of(system: ProofSystem) -> SizeCaps {
        match system {
            ProofSystem::Groth16Bn254 => SizeCaps {
                verifying_key: super::groth16::MAX_VERIFYING_KEY_LEN,
                proof: super::groth16::PROOF_LEN,
                public_inputs: super::groth16::MAX_PUBLIC_INPUTS_LEN,
            },
        }
    }
}

/// A submission decoded for its proof system, ready for the verification equation.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodedProof {
    /// Groth16 over BN254.
    Groth16Bn254(Groth16Bn254),
}

impl DecodedProof {
    /// Runs the proof system's verifier.
    pub fn verify(&self) -> Verdict {
        match self {
            DecodedProof::Groth16Bn254(decoded) => decoded.verify(),
        }
    }
}

impl ZkProof {
    /// Accepts a submission whose parts are within the caps of `system`.
    pub fn new(
        system: ProofSystem,
        verifying_key: Vec<u8>,
        proof: Vec<u8>,
        public_inputs: Vec<u8>,
    ) -> Result<ZkProof, ProofSizeError> {
        let caps = SizeCaps::of(system);
        for (part, size, cap) in [
            (Part::VerifyingKey, verifying_key.len(), caps.verifying_key),
            (Part::Proof, proof.len(), caps.proof),
            (Part::PublicInputs, public_inputs.len(), caps.public_inputs),
        ] {
            if size > cap {
                return Err(ProofSizeError { part, size, cap });
            }
        }
        Ok(ZkProof {
            system,
            verifying_key,
            proof,
            public_inputs,
        })
    }

    /// The proof system.
    pub fn system(&self) -> ProofSystem {
        self.system
    }

    /// The verifying key bytes.
    pub fn verifying_key(&self) -> &[u8] {
        &self.verifying_key
    }

    /// The proof bytes.
    pub fn proof(&self) -> &[u8] {
        &self.proof
    }

    /// The public inputs bytes.
    pub fn public_inputs(&self) -> &[u8] {
        &self.public_inputs
    }

    /// The `proof_id` of §10.
    pub fn proof_id(&self) -> ProofId {
        ProofId::compute(
            self.system,
            &self.verifying_key,
            &self.proof,
            &self.public_inputs,
        )
        // Every cap is a few KiB, far below the u32 lengths that compute requires.
        .unwrap_or_else(|| unreachable!("parts of a ZkProof are within their size caps"))
    }

    /// Decodes the parts without running the verifier: what the node checks when a proof is
    /// submitted, so that malformed bytes are refused with a precise error.
    pub fn decode(&self) -> Result<DecodedProof, ZkError> {
        match self.system {
            ProofSystem::Groth16Bn254 => {
                Groth16Bn254::decode(&self.verifying_key, &self.proof, &self.public_inputs)
                    .map(DecodedProof::Groth16Bn254)
            }
        }
    }

    /// Decodes and verifies: [`Verdict::Valid`] or [`Verdict::Invalid`] for well-formed bytes,
    /// an error naming the fault for malformed ones.
    pub fn verify(&self) -> Result<Verdict, ZkError> {
        self.decode().map(|decoded| decoded.verify())
    }

    /// The verdict that enters a round's results: a malformed submission is
    /// [`Verdict::Invalid`].
    ///
    /// A round must give every proof in it a verdict that all verifiers compute alike, and
    /// bytes that do not decode prove nothing, so they are recorded as invalid rather than
    /// dropped (dropping would let the node's view of the round differ from the sequencer's).
    pub fn round_verdict(&self) -> Verdict {
        self.verify().unwrap_or(Verdict::Invalid)
    }
}
