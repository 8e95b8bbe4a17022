//! `staker.toml`: how the staker service runs. Relative paths are read from the config file's
//! folder.
//!
//! ```toml
//! node = "http://127.0.0.1:9090"      # the node's gRPC endpoint
//! params_file = "params.json"         # the staker's OWN copy of the params versions
//! chain_id = "fiamma-regtest"         # signing contexts (PROTOCOL §6)
//! module_address = ""
//! network = "regtest"
//! wallet_secret = "wallet.age"        # from `fiamma staker wallet create`; absent: watch-only
//! # passphrase_file = "passphrase"    # else FIAMMA_STAKER_PASSPHRASE, else a prompt
//! # store = "sqlite://staker.db"      # default: staker.db beside this file; or postgres://…
//! grpc_addr = "127.0.0.1:9190"        # the staker API, loopback only
//! # status_addr = "127.0.0.1:9191"    # GET /health and /metrics
//! fee_rate_sat_vb = 2                 # when the node has no estimatesmartfee
//! auto_withdraw = true
//! poll_interval_ms = 2000
//!
//! [bitcoin]
//! rpc_url = "http://127.0.0.1:18443"
//! rpc_user = "fiamma"
//! rpc_password_file = "rpc-password" # else FIAMMA_STAKER_RPC_PASSWORD
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcoin::Network;
use serde::Deserialize;

pub use fiamma_role::config::{BitcoinRpc, ConfigError, PasswordError};

/// The environment variable a passphrase may come from.
pub const PASSPHRASE_ENV: &str = "FIAMMA_STAKER_PASSPHRASE";
/// The environment variable the Bitcoin RPC password may come from.
pub const RPC_PASSWORD_ENV: &str = "FIAMMA_STAKER_RPC_PASSWORD";
/// The wallet's name in the store.
pub const WALLET_NAME: &str = "staker";

/// The config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StakerConfig {
    /// The node's gRPC endpoint.
    pub node: String,
    /// The staker's own params versions (JSON list, oldest first).
    pub params_file: PathBuf,
    /// Chain id of the signing contexts.
    pub chain_id: String,
    /// Module address of the signing contexts.
    #[serde(default)]
    pub module_address: String,
    /// Operations signed without a context.
    #[serde(default)]
    pub disabled_contexts: Vec<String>,
    /// The Bitcoin network.
    pub network: Network,
    /// The wallet's encrypted secret; absent for a watch-only wallet.
    pub wallet_secret: Option<PathBuf>,
    /// A file holding the passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// The local store's URL.
    pub store: Option<String>,
    /// Where the staker API listens (loopback).
    pub grpc_addr: SocketAddr,
    /// Where `/health` and `/metrics` are served.
    pub status_addr: Option<SocketAddr>,
    /// Fee rate when the backend cannot estimate one, sat/vB.
    #[serde(default = "default_fee_rate")]
    pub fee_rate_sat_vb: u64,
    /// Whether the service withdraws what becomes spendable on its own.
    #[serde(default = "default_true")]
    pub auto_withdraw: bool,
    /// Longest wait between two passes, in milliseconds.
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// Timeout of each call to the node, in milliseconds.
    #[serde(default = "default_timeout")]
    pub call_timeout_ms: u64,
    /// Bitcoin's JSON-RPC.
    pub bitcoin: BitcoinRpc,
}

fn default_fee_rate() -> u64 {
    2
}
fn default_true() -> bool {
    true
}
fn default_poll() -> u64 {
    2_000
}
fn default_timeout() -> u64 {
    10_000
}

impl StakerConfig {
    /// Reads and checks `path`, resolving relative paths against its folder.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: StakerConfig = fiamma_role::config::read_toml(path)?;
        let range = |field, reason| ConfigError::range(path, field, reason);
        if !config.grpc_addr.ip().is_loopback() {
            return Err(range("grpc_addr", "must be a loopback address"));
        }
        if !(1..=100_000).contains(&config.fee_rate_sat_vb) {
            return Err(range("fee_rate_sat_vb", "must be between 1 and 100000"));
        }
        fiamma_role::config::check_timing(path, config.poll_interval_ms, config.call_timeout_ms)?;
        fiamma_role::config::resolve_paths(
            path,
            [
                Some(&mut config.params_file),
                config.wallet_secret.as_mut(),
                config.passphrase_file.as_mut(),
                config.bitcoin.rpc_password_file.as_mut(),
            ]
            .into_iter()
            .flatten(),
        );
        if config.store.is_none() {
            let base = path.parent().unwrap_or(Path::new("."));
            config.store = Some(fiamma_role::store::sqlite_url(&base.join("staker.db")));
        }
        Ok(config)
    }

    /// The local store's URL.
    pub fn store_url(&self) -> String {
        self.store.clone().unwrap_or_default()
    }

    /// The Bitcoin RPC password: the file's first line, else [`RPC_PASSWORD_ENV`].
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

    fn write(dir: &Path, bitcoin: &str) -> PathBuf {
        let path = dir.join("staker.toml");
        std::fs::write(
            &path,
            format!(
                "node = \"http://127.0.0.1:9090\"\nparams_file = \"params.json\"\n\
                 chain_id = \"c\"\nnetwork = \"regtest\"\ngrpc_addr = \"127.0.0.1:9190\"\n\
                 [bitcoin]\nrpc_url = \"http://127.0.0.1:18443\"\nrpc_user = \"u\"\n{bitcoin}"
            ),
        )
        .expect("write");
        path
    }

    #[test]
    fn the_rpc_password_is_read_from_its_file_beside_the_config() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("pw"), "s3cret\n").expect("write");
        let c =
            StakerConfig::load(&write(dir.path(), "rpc_password_file = \"pw\"\n")).expect("loads");
        assert_eq!(c.bitcoin.rpc_password_file, Some(dir.path().join("pw")));
        assert_eq!(c.rpc_password().expect("password"), "s3cret");
        assert!(c.params_file.starts_with(dir.path()));
    }

    #[test]
    fn a_plaintext_rpc_password_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let e = StakerConfig::load(&write(dir.path(), "rpc_password = \"hunter2\"\n"))
            .expect_err("plaintext password");
        assert!(e.to_string().contains("rpc_password"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
