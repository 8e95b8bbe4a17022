//! The `fiamma` node: wiring of the staking and finality modules, Bitcoin backends and the CLI.

pub mod btc;
pub mod cli;
pub mod devnet;
pub mod fuzzing;
pub mod node;
