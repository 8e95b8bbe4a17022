//! What can be wrong with the bytes of a submitted proof, named precisely enough that a
//! sequencer can tell which part, which element and why.

use thiserror::Error;

/// One of the three byte strings of a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The verifying key.
    VerifyingKey,
    /// The proof.
    Proof,
    /// The public inputs.
    PublicInputs,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::VerifyingKey => "verifying key",
            Part::Proof => "proof",
            Part::PublicInputs => "public inputs",
        })
    }
}

/// A curve point of a Groth16 verifying key or proof, by its arkworks field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Element {
    /// `VerifyingKey::alpha_g1`.
    AlphaG1,
    /// `VerifyingKey::beta_g2`.
    BetaG2,
    /// `VerifyingKey::gamma_g2`.
    GammaG2,
    /// `VerifyingKey::delta_g2`.
    DeltaG2,
    /// `VerifyingKey::gamma_abc_g1[i]`.
    GammaAbcG1(usize),
    /// `Proof::a`.
    A,
    /// `Proof::b`.
    B,
    /// `Proof::c`.
    C,
}

impl std::fmt::Display for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Element::AlphaG1 => f.write_str("alpha_g1"),
            Element::BetaG2 => f.write_str("beta_g2"),
            Element::GammaG2 => f.write_str("gamma_g2"),
            Element::DeltaG2 => f.write_str("delta_g2"),
            Element::GammaAbcG1(i) => write!(f, "gamma_abc_g1[{i}]"),
            Element::A => f.write_str("a"),
            Element::B => f.write_str("b"),
            Element::C => f.write_str("c"),
        }
    }
}

/// Why a compressed point encoding was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PointError {
    /// Both flag bits (the top two bits of the last byte) are set: arkworks gives that
    /// combination no meaning.
    #[error("flag bits 0b11 in byte {0:#04x} are not a valid flag")]
    InvalidFlags(u8),
    /// A coordinate (or a coefficient of one) is not below the base field modulus.
    #[error("x coordinate is not a canonical base field element (not below the modulus)")]
    NonCanonicalCoordinate,
    /// The infinity flag is set but the coordinate bytes are not all zero; arkworks ignores
    /// them, this decoder does not, so that each point has exactly one encoding.
    #[error("point at infinity with a non-zero x coordinate")]
    NonCanonicalInfinity,
    /// The point at infinity (the group identity). No point of a Groth16 key or proof is the
    /// identity in a real circuit, and one that is can make the verification equation hold
    /// whatever the inputs: with every point at infinity, every proof of every statement
    /// "verifies"; an identity `gamma_abc_g1[i]` makes input `i` irrelevant.
    #[error("point at infinity, which would make the verification vacuous")]
    Identity,
    /// No point of the curve has this x coordinate.
    #[error("x coordinate is not on the curve")]
    NotOnCurve,
    /// The point is on the curve but not in the prime-order subgroup.
    #[error("point is not in the prime-order subgroup")]
    NotInSubgroup,
}

/// A part is larger than its proof system's cap; such a submission is refused before anything
/// is decoded, hashed or stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{part} is {size} bytes, more than the cap of {cap} bytes")]
pub struct ProofSizeError {
    /// The oversized part.
    pub part: Part,
    /// Its length in bytes.
    pub size: usize,
    /// The cap for that part.
    pub cap: usize,
}

/// The bytes of a submission (within the size caps) do not decode to a verifying key, proof and
/// public inputs that the verification equation can be evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ZkError {
    /// The part ends before the element being read.
    #[error("{part} truncated: {needed} bytes needed at offset {offset}, {available} left")]
    Truncated {
        /// The part being read.
        part: Part,
        /// Where the element starts.
        offset: usize,
        /// The element's encoded size.
        needed: usize,
        /// Bytes left from `offset` on.
        available: usize,
    },
    /// The part has bytes after its last element.
    #[error("{part} has {extra} trailing bytes after offset {consumed}")]
    TrailingBytes {
        /// The part being read.
        part: Part,
        /// Bytes consumed by the decoded value.
        consumed: usize,
        /// Bytes left over.
        extra: usize,
    },
    /// A curve point is malformed.
    #[error("{part} {element}: {reason}")]
    Point {
        /// The part holding the point.
        part: Part,
        /// Which point.
        element: Element,
        /// Why it was rejected.
        reason: PointError,
    },
    /// A public input is not below the scalar field modulus `r`.
    #[error("public input {index} is not a canonical scalar (not below the group order)")]
    NonCanonicalScalar {
        /// Position of the input.
        index: usize,
    },
    /// A length prefix declares more elements than the proof system allows.
    #[error("{part} declares {count} elements, more than the maximum of {max}")]
    TooManyElements {
        /// The part holding the length prefix.
        part: Part,
        /// The declared count.
        count: u64,
        /// The largest count accepted.
        max: usize,
    },
    /// The verifying key has no `gamma_abc_g1[0]`, so it cannot even verify a proof without
    /// public inputs.
    #[error("verifying key has an empty gamma_abc_g1")]
    EmptyGammaAbc,
    /// `delta_g2` is `gamma_g2` or its negation: then `e(vk_x, gamma)·e(c, delta)` is
    /// `e(vk_x ± c, gamma)`, so a proof for one statement becomes a proof for any other by
    /// moving the difference of the input terms into `c`.
    #[error("verifying key has delta_g2 equal to gamma_g2 or to its negation, which lets a proof claim any public inputs")]
    DependentGammaDelta,
    /// The number of public inputs does not match `gamma_abc_g1.len() - 1` of the key.
    #[error("{given} public inputs given, the verifying key expects {expected}")]
    InputCountMismatch {
        /// Inputs in the submission.
        given: usize,
        /// Inputs the key is built for.
        expected: usize,
    },
}
