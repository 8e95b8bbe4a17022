//! `covenant.toml`: how a committee member's daemon runs. Relative paths are read from the
//! config file's folder.
//!
//! ```toml
//! node = "http://127.0.0.1:9090"      # the node's gRPC endpoint
//! params_file = "params.json"         # the member's OWN copy of the params versions
//! chain_id = "fiamma-regtest"         # signing contexts (PROTOCOL §6)
//! module_address = ""
//! disabled_contexts = []
//! keystore = "covenant.age"           # from `fiamma covenant keys new`
//! # passphrase_file = "passphrase"    # else FIAMMA_COVENANT_PASSPHRASE, else a prompt
//! # store = "sqlite://covenant.db"    # default: covenant.db beside the keystore; or postgres://…
//! # status_addr = "127.0.0.1:9191"    # GET /health and /metrics
//! poll_interval_ms = 5000
//! page_size = 100
//! call_timeout_ms = 10000
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The environment variable a passphrase may come from.
pub const PASSPHRASE_ENV: &str = "FIAMMA_COVENANT_PASSPHRASE";
/// The role name written in the keystore.
pub const ROLE: &str = "covenant";

/// The config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// The node's gRPC endpoint.
    pub node: String,
    /// The member's own params versions (JSON list, oldest first).
    pub params_file: PathBuf,
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
    /// Delegations per PendingDelegations page.
    #[serde(default = "default_page")]
    pub page_size: u32,
    /// Timeout of each call to the node, in milliseconds.
    #[serde(default = "default_timeout")]
    pub call_timeout_ms: u64,
    /// Longest wait before re-sending refused or undelivered signatures, in milliseconds.
    #[serde(default = "default_max_retry")]
    pub max_retry_ms: u64,
}

fn default_poll() -> u64 {
    5_000
}
fn default_page() -> u32 {
    100
}
fn default_timeout() -> u64 {
    10_000
}
fn default_max_retry() -> u64 {
    60_000
}

pub use fiamma_role::config::ConfigError;

impl MemberConfig {
    /// Reads and checks `path`, resolving relative paths against its folder.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: MemberConfig = fiamma_role::config::read_toml(path)?;
        let range = |field, reason| ConfigError::range(path, field, reason);
        if !(1..=1000).contains(&config.page_size) {
            return Err(range("page_size", "must be between 1 and 1000"));
        }
        fiamma_role::config::check_timing(path, config.poll_interval_ms, config.call_timeout_ms)?;
        fiamma_role::config::resolve_paths(
            path,
            [
                Some(&mut config.params_file),
                Some(&mut config.keystore),
                config.passphrase_file.as_mut(),
            ]
            .into_iter()
            .flatten(),
        );
        Ok(config)
    }

    /// The local store's URL: as configured, else `covenant.db` beside the keystore.
    pub fn store_url(&self) -> String {
        self.store.clone().unwrap_or_else(|| {
            fiamma_role::store::sqlite_url(&self.keystore.with_file_name("covenant.db"))
        })
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
