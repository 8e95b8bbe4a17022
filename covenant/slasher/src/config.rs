//! `slasher.toml`: how a slasher's daemon runs. Relative paths are read from the config file's
//! folder.
//!
//! ```toml
//! node = "http://127.0.0.1:9090"      # the node's gRPC endpoint
//! # store = "sqlite://slasher.db"     # default: slasher.db beside this file; or postgres://…
//! # status_addr = "127.0.0.1:9193"    # GET /health and /metrics
//! confirmations = 6                   # k: a slashing transaction this deep is final
//! poll_interval_ms = 5000             # new blocks bring no node event: look this often
//! call_timeout_ms = 10000
//! page_size = 100                     # delegations per Delegations page
//!
//! [bitcoin]                           # a Bitcoin Core node (or `fiamma regtest`) over JSON-RPC
//! rpc_url = "http://127.0.0.1:18443"
//! rpc_user = "fiamma"
//! rpc_password_file = "rpc-password"  # else FIAMMA_SLASHER_RPC_PASSWORD
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use fiamma_role::config::{BitcoinRpc, ConfigError, PasswordError};

/// The environment variable the Bitcoin RPC password may come from.
pub const RPC_PASSWORD_ENV: &str = "FIAMMA_SLASHER_RPC_PASSWORD";

/// The config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlasherConfig {
    /// The node's gRPC endpoint.
    pub node: String,
    /// The local store's URL.
    pub store: Option<String>,
    /// Where `/health` and `/metrics` are served.
    pub status_addr: Option<SocketAddr>,
    /// k.
    #[serde(default = "default_confirmations")]
    pub confirmations: u32,
    /// Longest wait between two passes, in milliseconds.
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// Timeout of each call to the node, in milliseconds.
    #[serde(default = "default_timeout")]
    pub call_timeout_ms: u64,
    /// Delegations per page.
    #[serde(default = "default_page")]
    pub page_size: u32,
    /// The Bitcoin node.
    pub bitcoin: BitcoinRpc,
    /// The folder of the config file (where relative paths and the default store live).
    #[serde(skip)]
    pub dir: PathBuf,
}

fn default_confirmations() -> u32 {
    6
}
fn default_poll() -> u64 {
    5_000
}
fn default_timeout() -> u64 {
    10_000
}
fn default_page() -> u32 {
    100
}

impl SlasherConfig {
    /// Reads and checks `path`, resolving relative paths against its folder.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: SlasherConfig = fiamma_role::config::read_toml(path)?;
        let range = |field, reason| ConfigError::range(path, field, reason);
        if !(1..=1000).contains(&config.confirmations) {
            return Err(range("confirmations", "must be between 1 and 1000"));
        }
        if !(1..=1000).contains(&config.page_size) {
            return Err(range("page_size", "must be between 1 and 1000"));
        }
        fiamma_role::config::check_timing(path, config.poll_interval_ms, config.call_timeout_ms)?;
        config.dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        fiamma_role::config::resolve_paths(path, config.bitcoin.rpc_password_file.as_mut());
        Ok(config)
    }

    /// The local store's URL: as configured, else `slasher.db` beside the config file.
    pub fn store_url(&self) -> String {
        self.store
            .clone()
            .unwrap_or_else(|| fiamma_role::store::sqlite_url(&self.dir.join("slasher.db")))
    }

    /// The Bitcoin RPC password: the file's first line, else the environment variable.
    ///
    /// # Errors
    /// [`PasswordError`].
    pub fn rpc_password(&self) -> Result<String, PasswordError> {
        self.bitcoin.password(RPC_PASSWORD_ENV)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_loads_with_defaults_and_resolves_paths() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("slasher.toml");
        std::fs::write(
            &path,
            "node = \"http://127.0.0.1:9090\"\n[bitcoin]\nrpc_url = \"http://127.0.0.1:18443\"\n\
             rpc_user = \"u\"\nrpc_password_file = \"pw\"\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("pw"), "s3cret\n").expect("write");
        let c = SlasherConfig::load(&path).expect("loads");
        assert_eq!(c.confirmations, 6);
        assert_eq!(c.rpc_password().expect("password"), "s3cret");
        assert!(
            c.store_url().ends_with("slasher.db?mode=rwc"),
            "{}",
            c.store_url()
        );
        std::fs::write(
            &path,
            "node = \"x\"\nconfirmations = 0\n[bitcoin]\nrpc_url = \"x\"\nrpc_user = \"u\"\n",
        )
        .expect("write");
        let e = SlasherConfig::load(&path).expect_err("k = 0");
        assert!(e.to_string().contains("confirmations"), "{e}");
    }
}
