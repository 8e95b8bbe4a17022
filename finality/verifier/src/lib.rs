//! The verifier role: a verifier operator's daemon that keeps randomness committed ahead,
//! re-verifies every closed round's proofs itself, votes with EOTS only when it computes the
//! node's round hash, and never signs two different messages for one round.
//!
//! - [`verifier`]: the component (`new`, `step`, `run`);
//! - [`checkpoint`]: checkpoint rounds: rebuild the candidate, sign only an identical one;
//! - [`own_candidate`]: the verifier's own checkpoint candidate from its own view (pure);
//! - [`signer`]: the signing boundary and the keystore signer;
//! - [`store`]: the local store and its slashing protection (SQLite or PostgreSQL);
//! - [`interchange`]: the slashing-protection file (`slashing-protection export|import`);
//! - [`config`] and [`daemon`]: `fiamma verifier run`.

pub mod checkpoint;
pub mod config;
pub mod daemon;
pub mod interchange;
pub mod own_candidate;
pub mod signer;
pub mod store;
pub mod verifier;
