//! The rollup sequencer role (PROTOCOL §10): submits its proofs to the node and, once a round
//! is final, checks the round's certificate itself against the round's active set and anchors
//! the round on Bitcoin with the §10 `OP_RETURN`, paid from its own wallet, until k deep.
//!
//! - [`plan`]: the pure decisions (which rounds are due, the certificate check, what a
//!   recorded anchor's place on Bitcoin asks for);
//! - [`checkpoint`]: checkpoint broadcast's pure checks and the child that pays for a
//!   candidate (`CHECKPOINTS.md` §13.7);
//! - [`proofs`]: proofs on disk in Fiamma's arkworks format;
//! - [`sequencer`]: the component (`submit`, `anchor_round`, `step`, `run`);
//! - [`store`]: its local store (SQLite or PostgreSQL): submitted proofs, anchors recorded
//!   before they are broadcast, progress, and the wallet;
//! - [`config`] and [`daemon`]: `fiamma sequencer run`.

pub mod checkpoint;
pub mod config;
pub mod daemon;
pub mod plan;
pub mod proofs;
pub mod sequencer;
pub mod store;
