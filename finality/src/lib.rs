//! Extractable one-time signatures, randomness commitments, rounds and ZK proof verification
//! (`PROTOCOL.md` §9–11).
//!
//! Everything here is pure: values in, values or typed errors out. No I/O, no clock.
pub mod checkpoint;
pub mod commitment;
pub mod committed;
pub mod eots;
pub mod merkle;
pub mod round;
pub mod rounds;
pub mod vote;
pub mod zk;
