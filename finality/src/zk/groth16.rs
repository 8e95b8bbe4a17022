//! Groth16 over BN254 in arkworks' compressed encoding: Fiamma's proof format
//! ([`ProofSystem::Groth16Bn254`](super::ProofSystem::Groth16Bn254)).
//!
//! Layout of the three parts (arkworks `CanonicalSerialize`, compressed):
//! - verifying key: `alpha_g1 (32) ‖ beta_g2 (64) ‖ gamma_g2 (64) ‖ delta_g2 (64) ‖
//!   u64le(n + 1) ‖ gamma_abc_g1 ((n + 1) × 32)` for `n` public inputs;
//! - proof: `a (32) ‖ b (64) ‖ c (32)`;
//! - public inputs: `u64le(n) ‖ n × 32-byte little-endian scalars`.

use ark_bn254::{Bn254, Fr};
use ark_groth16::{prepare_verifying_key, Groth16, PreparedVerifyingKey, Proof, VerifyingKey};

use super::error::{Element, Part, ZkError};
use super::reader::{Reader, G1_LEN, G2_LEN, LEN_PREFIX, SCALAR_LEN};
use super::verdict::Verdict;

/// The most public inputs a proof may have.
///
/// Fiamma's BitVM circuit has one; the Groth16 wrappers of common zkVMs have two (SP1) to five
/// (RISC Zero). Each input costs one G1 scalar multiplication at verification, so 64 leaves a
/// wide margin while bounding the work one submission can ask of every verifier.
pub const MAX_PUBLIC_INPUTS: usize = 64;

/// The size of a verifying key for `inputs` public inputs.
pub const fn verifying_key_len(inputs: usize) -> usize {
    G1_LEN + 3 * G2_LEN + LEN_PREFIX + (inputs + 1) * G1_LEN
}

/// The size of the public inputs part holding `inputs` scalars.
pub const fn public_inputs_len(inputs: usize) -> usize {
    LEN_PREFIX + inputs * SCALAR_LEN
}

/// The largest well-formed verifying key (2,312 bytes): one for [`MAX_PUBLIC_INPUTS`].
pub const MAX_VERIFYING_KEY_LEN: usize = verifying_key_len(MAX_PUBLIC_INPUTS);
/// The size of every proof (128 bytes): the cap is exactly the encoding's fixed size.
pub const PROOF_LEN: usize = 2 * G1_LEN + G2_LEN;
/// The largest well-formed public inputs part (2,056 bytes).
pub const MAX_PUBLIC_INPUTS_LEN: usize = public_inputs_len(MAX_PUBLIC_INPUTS);

/// A decoded Groth16 BN254 submission: every point on its curve and in the prime-order
/// subgroup, every scalar canonical, and as many public inputs as the key expects.
#[derive(Debug, Clone, PartialEq)]
pub struct Groth16Bn254 {
    verifying_key: VerifyingKey<Bn254>,
    proof: Proof<Bn254>,
    public_inputs: Vec<Fr>,
}

impl Groth16Bn254 {
    /// Decodes the three parts, each of which must be consumed exactly.
    ///
    /// Accepts what arkworks' validated `deserialize_compressed` accepts, except: the point at
    /// infinity with a non-zero x (so every value has one encoding), trailing bytes (which
    /// arkworks leaves unread), length prefixes over the caps (for which arkworks reserves
    /// memory before reading, so a forged prefix aborts the process there), and keys and
    /// proofs that make the check vacuous: any point at infinity
    /// ([`PointError::Identity`](super::PointError::Identity)), and `delta = ±gamma`
    /// ([`ZkError::DependentGammaDelta`]).
    pub fn decode(
        verifying_key: &[u8],
        proof: &[u8],
        public_inputs: &[u8],
    ) -> Result<Self, ZkError> {
        let verifying_key = decode_verifying_key(verifying_key)?;
        let proof = decode_proof(proof)?;
        let public_inputs = decode_public_inputs(public_inputs)?;
        check_input_count(&verifying_key, &public_inputs)?;
        Ok(Groth16Bn254 {
            verifying_key,
            proof,
            public_inputs,
        })
    }

    /// Evaluates the Groth16 verification equation.
    pub fn verify(&self) -> Verdict {
        let prepared = prepare_verifying_key(&self.verifying_key);
        pairing_check(&prepared, &self.proof, &self.public_inputs)
    }

    /// The decoded verifying key.
    pub fn verifying_key(&self) -> &VerifyingKey<Bn254> {
        &self.verifying_key
    }

    /// The decoded proof.
    pub fn proof(&self) -> &Proof<Bn254> {
        &self.proof
    }

    /// The decoded public inputs.
    pub fn public_inputs(&self) -> &[Fr] {
        &self.public_inputs
    }
}

/// A verifying key decoded and prepared for pairings (`e(alpha, beta)` computed, `gamma` and
/// `delta` negated), to verify many proofs against one key without redoing that work.
///
/// A caller that caches it must key the cache by the exact verifying key bytes, so that a
/// proof is only ever checked against the key it was submitted with.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedKey(PreparedVerifyingKey<Bn254>);

impl PreparedKey {
    /// Decodes the verifying key part (as [`Groth16Bn254::decode`] does) and prepares it.
    pub fn decode(verifying_key: &[u8]) -> Result<Self, ZkError> {
        decode_verifying_key(verifying_key).map(|vk| PreparedKey(prepare_verifying_key(&vk)))
    }

    /// Decodes the proof and public inputs and verifies them against this key; the same
    /// result as [`Groth16Bn254::decode`] then [`Groth16Bn254::verify`] on the key's bytes.
    pub fn verify(&self, proof: &[u8], public_inputs: &[u8]) -> Result<Verdict, ZkError> {
        let proof = decode_proof(proof)?;
        let public_inputs = decode_public_inputs(public_inputs)?;
        check_input_count(&self.0.vk, &public_inputs)?;
        Ok(pairing_check(&self.0, &proof, &public_inputs))
    }
}

/// The key is built for `gamma_abc_g1.len() - 1` public inputs.
fn check_input_count(vk: &VerifyingKey<Bn254>, public_inputs: &[Fr]) -> Result<(), ZkError> {
    // decode_verifying_key refuses an empty gamma_abc_g1, so this cannot underflow.
    let expected = vk.gamma_abc_g1.len() - 1;
    if public_inputs.len() == expected {
        Ok(())
    } else {
        Err(ZkError::InputCountMismatch {
            given: public_inputs.len(),
            expected,
        })
    }
}

/// The Groth16 equation, for inputs already matched to the key's input count.
fn pairing_check(
    prepared: &PreparedVerifyingKey<Bn254>,
    proof: &Proof<Bn254>,
    public_inputs: &[Fr],
) -> Verdict {
    match Groth16::<Bn254>::verify_proof(prepared, proof, public_inputs) {
        Ok(true) => Verdict::Valid,
        // Err: the input count was matched by check_input_count, so the only error left is a
        // Miller loop result of zero, which no proof satisfying the equation produces.
        Ok(false) | Err(_) => Verdict::Invalid,
    }
}

fn decode_verifying_key(bytes: &[u8]) -> Result<VerifyingKey<Bn254>, ZkError> {
    let mut reader = Reader::new(Part::VerifyingKey, bytes);
    let alpha_g1 = reader.g1(Element::AlphaG1)?;
    let beta_g2 = reader.g2(Element::BetaG2)?;
    let gamma_g2 = reader.g2(Element::GammaG2)?;
    let delta_g2 = reader.g2(Element::DeltaG2)?;
    if delta_g2 == gamma_g2 || delta_g2 == -gamma_g2 {
        return Err(ZkError::DependentGammaDelta);
    }
    let count = reader.count(MAX_PUBLIC_INPUTS + 1)?;
    if count == 0 {
        return Err(ZkError::EmptyGammaAbc);
    }
    let gamma_abc_g1 = (0..count)
        .map(|i| reader.g1(Element::GammaAbcG1(i)))
        .collect::<Result<Vec<_>, _>>()?;
    reader.finish()?;
    Ok(VerifyingKey {
        alpha_g1,
        beta_g2,
        gamma_g2,
        delta_g2,
        gamma_abc_g1,
    })
}

fn decode_proof(bytes: &[u8]) -> Result<Proof<Bn254>, ZkError> {
    let mut reader = Reader::new(Part::Proof, bytes);
    let a = reader.g1(Element::A)?;
    let b = reader.g2(Element::B)?;
    let c = reader.g1(Element::C)?;
    reader.finish()?;
    Ok(Proof { a, b, c })
}

fn decode_public_inputs(bytes: &[u8]) -> Result<Vec<Fr>, ZkError> {
    let mut reader = Reader::new(Part::PublicInputs, bytes);
    let count = reader.count(MAX_PUBLIC_INPUTS)?;
    let inputs = (0..count)
        .map(|i| reader.scalar(i))
        .collect::<Result<Vec<_>, _>>()?;
    reader.finish()?;
    Ok(inputs)
}
