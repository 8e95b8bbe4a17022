//! Command-line subcommands of the `fiamma` binary.

pub mod regtest;
pub mod staking;

/// An error that ends a subcommand; printed to the user as is.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;
