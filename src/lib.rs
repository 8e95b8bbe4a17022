//! The `fiamma` node: wiring of the staking and finality modules, Bitcoin backends and the CLI.

/// The Bitcoin backends, from their own crate so that every role can use them.
pub use fiamma_btc as btc;
pub mod cli;
pub mod devnet;
pub mod fuzzing;
pub mod node;
