//! `verifier.toml`: how a verifier's daemon runs. Relative paths are read from the config
//! file's folder.
//!
//! ```toml
//! node = "http://127.0.0.1:9090"      # the node's gRPC endpoint
//! chain_id = "fiamma-regtest"         # signing contexts (PROTOCOL §6) and randomness binding
//! module_address = ""
//! disabled_contexts = []
//! keystore = "verifier.age"           # from `fiamma verifier keys new`
//! # passphrase_file = "passphrase"    # else FIAMMA_VERIFIER_PASSPHRASE, else a prompt
//! # store = "sqlite://verifier.db"    # default: verifier.db beside the keystore; or postgres://…
//! # status_addr = "127.0.0.1:9192"    # GET /health and /metrics
//! poll_interval_ms = 2000
//! call_timeout_ms = 10000
//! commit_batch = 1000                 # rounds per randomness commitment
//! commit_ahead = 300                  # commit the next batch when fewer rounds are left
//! catch_up_rounds = 20                # closed rounds looked back at (the node's vote expiry)
//! unjail = false                      # send UnjailVerifier when the jail duration is over
//! jail_duration = 100                 # the node's jail duration, in rounds
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The environment variable a passphrase may come from.
pub const PASSPHRASE_ENV: &str = "FIAMMA_VERIFIER_PASSPHRASE";
/// The role name written in the keystore.
pub const ROLE: &str = "verifier";

/// The config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierConfig {
    /// The node's gRPC endpoint.
    pub node: String,
    /// Chain id of the signing contexts.
    pub chain_id: String,
    /// Module address of the signing contexts.
    #[serde(default)]
    pub module_address: String,
    /// Operations signed without a context.
    #[serde(default)]
    pub disabled_contexts: Vec<String>,
    /// The keystore's `.age` file.
    pub keystore: PathBuf,
    /// A file holding the passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// The local store's URL.
    pub store: Option<String>,
    /// Where `/health` and `/metrics` are served.
    pub status_addr: Option<SocketAddr>,
    /// Longest wait between two passes, in milliseconds.
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// Timeout of each call to the node, in milliseconds.
    #[serde(default = "default_timeout")]
    pub call_timeout_ms: u64,
    /// Rounds per randomness commitment.
    #[serde(default = "default_batch")]
    pub commit_batch: u64,
    /// The next batch is committed when fewer rounds than this are left committed ahead.
    #[serde(default = "default_ahead")]
    pub commit_ahead: u64,
    /// How many closed rounds back the daemon looks for rounds to vote in.
    #[serde(default = "default_catch_up")]
    pub catch_up_rounds: u64,
    /// Whether to send UnjailVerifier once the jail duration is over.
    #[serde(default)]
    pub unjail: bool,
    /// The node's jail duration, in rounds.
    #[serde(default = "default_jail")]
    pub jail_duration: u64,
}

fn default_poll() -> u64 {
    5_000
}
fn default_timeout() -> u64 {
    10_000
}
fn default_batch() -> u64 {
    1_000
}
fn default_ahead() -> u64 {
    300
}
fn default_catch_up() -> u64 {
    20
}
fn default_jail() -> u64 {
    100
}

pub use fiamma_role::config::ConfigError;

impl VerifierConfig {
    /// Reads and checks `path`, resolving relative paths against its folder.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: VerifierConfig = fiamma_role::config::read_toml(path)?;
        let range = |field, reason| ConfigError::range(path, field, reason);
        if !(2..=100_000).contains(&config.commit_batch) {
            return Err(range("commit_batch", "must be between 2 and 100000"));
        }
        if config.commit_ahead == 0 || config.commit_ahead >= config.commit_batch {
            return Err(range(
                "commit_ahead",
                "must be at least 1 and below commit_batch",
            ));
        }
        if !(1..=10_000).contains(&config.catch_up_rounds) {
            return Err(range("catch_up_rounds", "must be between 1 and 10000"));
        }
        fiamma_role::config::check_timing(path, config.poll_interval_ms, config.call_timeout_ms)?;
        fiamma_role::config::resolve_paths(
            path,
            [Some(&mut config.keystore), config.passphrase_file.as_mut()]
                .into_iter()
                .flatten(),
        );
        Ok(config)
    }

    /// The local store's URL: as configured, else `verifier.db` beside the keystore.
    pub fn store_url(&self) -> String {
        self.store.clone().unwrap_or_else(|| {
            fiamma_role::store::sqlite_url(&self.keystore.with_file_name("verifier.db"))
        })
    }

    /// The signing contexts.
    pub fn contexts(&self) -> fiamma_staking::context::SigningContexts {
        fiamma_staking::context::SigningContexts {
            chain_id: self.chain_id.clone(),
            module_address: self.module_address.clone(),
            disabled: self.disabled_contexts.clone(),
        }
    }

    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// The call timeout.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }
}
