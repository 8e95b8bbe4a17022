//! `fiamma devnet`: every party of the system in one process, on an embedded regtest chain
//! and a throwaway PostgreSQL database, playing the whole story once and checking each
//! outcome it prints.
//!
//! The parties are the real ones, talking to the node only over gRPC and to Bitcoin only
//! over Bitcoin Core's JSON-RPC, as their daemons would:
//! - [`staker`]: the staker component of `fiamma staker run`: its wallet stakes, its steps
//!   broadcast once the committee has co-signed, see ACTIVE and unbond;
//! - [`covenant`]: a committee member that checks each pending delegation with the shared
//!   validation library before it co-signs;
//! - [`verifier`]: registers, commits randomness, re-verifies every proof of each round and
//!   votes with EOTS (one of them is made to equivocate);
//! - [`sequencer`]: submits ZK proofs and anchors final rounds on Bitcoin;
//! - [`slasher`]: turns a published key into mined slashing transactions.
//! - [`checkpoint`]: the checkpoint chain: genesis, signed rounds, packages, the reader.
//!
//! [`story`] runs them in order, and with `--keep-running` [`localnet`] leaves the network
//! up for a person to join; [`setup`] fixes the devnet's keys and parameters, [`chain`]
//! the Bitcoin side, [`database`] the database, [`wire`] the requests they send.

pub mod chain;
pub mod checkpoint;
pub mod cluster;
pub mod covenant;
pub mod database;
pub mod error;
pub mod localnet;
pub mod sequencer;
pub mod setup;
pub mod slasher;
pub mod staker;
pub mod story;
pub mod verifier;
pub mod wallet;
pub mod wire;

pub use error::DevnetError;

/// `fiamma devnet` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DevnetArgs {
    /// PostgreSQL server: a new database `fiamma_devnet_<pid>_<unix secs>` is created on it.
    /// Without one, a throwaway cluster is started from the local PostgreSQL binaries.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Keep the devnet's database at exit instead of dropping it.
    #[arg(long)]
    pub keep_database: bool,
    /// Milliseconds between two round closings.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub round_interval_ms: u64,
    /// After the story, keep everything running (chain, node, covenant committee, verifiers,
    /// slasher) and print how to join, until Ctrl-C or SIGTERM.
    #[arg(long)]
    pub keep_running: bool,
    /// Skip the story: start the network (verifiers registered, nothing staked) and keep it
    /// running.
    #[arg(long, requires = "keep_running")]
    pub no_story: bool,
    /// Seconds between two blocks mined while the network keeps running.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub block_interval: u64,
    /// Keep the directory of configs written for joining (and what was created in it) at
    /// exit instead of removing it.
    #[arg(long, requires = "keep_running")]
    pub keep_dir: bool,
}

/// Runs the devnet story; `Ok` only when every step showed its expected outcome.
///
/// # Errors
/// [`DevnetError`] naming the first step whose outcome was not observed.
pub async fn run(args: DevnetArgs) -> Result<(), DevnetError> {
    story::run(args).await
}
