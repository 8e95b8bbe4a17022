//! ZK proof submissions and their verification (`PROTOCOL.md` §10).
//!
//! A sequencer submits a [`ZkProof`]: a [`ProofSystem`] code and three byte strings. The node
//! refuses parts over the system's [`SizeCaps`] ([`ProofSizeError`]) and, at submission,
//! bytes that do not decode ([`ZkError`], naming the part, the element and the fault). At
//! round close it verifies each proof; [`ZkProof::round_verdict`] gives the [`Verdict`] that
//! enters the round's results, with malformed bytes counted as invalid.
//!
//! Decoding is strict: every point must be on its curve and in the prime-order subgroup,
//! every scalar and coordinate below its modulus, and every part consumed exactly.

mod error;
pub mod groth16;
mod proof;
mod proof_id;
mod reader;
mod system;
mod verdict;

pub use error::{Element, Part, PointError, ProofSizeError, ZkError};
pub use groth16::{Groth16Bn254, PreparedKey};
pub use proof::{DecodedProof, SizeCaps, ZkProof};
pub use proof_id::ProofId;
pub use system::{ProofSystem, UnknownProofSystem};
pub use verdict::{UnknownVerdict, Verdict};
