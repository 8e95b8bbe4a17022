//! Command-line subcommands of the `fiamma` binary.

pub mod checkpoint;
pub mod covenant;
pub mod keys;
pub mod regtest;
pub mod sequencer;
pub mod slasher;
pub mod staker;
pub mod staking;
pub mod verifier;

/// An error that ends a subcommand; printed to the user as is.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// Structured logs for a daemon: JSON lines on stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Already initialised (e.g. by an embedding test) is fine.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
