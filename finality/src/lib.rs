//! Extractable one-time signatures, randomness commitments, rounds and ZK proof verification
//! (`PROTOCOL.md` §9–11).
pub mod zk;
