//! `sequencer.toml`: how a sequencer runs. Relative paths are read from the config file's
//! folder.
//!
//! ```toml
//! node = "http://127.0.0.1:9090"      # the node's gRPC endpoint
//! chain_id = "fiamma-regtest"         # signing contexts of the votes (PROTOCOL §6)
//! module_address = ""
//! network = "regtest"
//! wallet_secret = "wallet.age"        # from `fiamma sequencer wallet create`
//! # passphrase_file = "passphrase"    # else FIAMMA_SEQUENCER_PASSPHRASE, else a prompt
//! # store = "sqlite://sequencer.db"   # default: sequencer.db beside this file; or postgres://…
//! # status_addr = "127.0.0.1:9195"    # GET /health and /metrics
//! anchor_every = 1                    # anchor the final rounds divisible by this
//! # start_round = 1                   # first round to anchor; default: the newest at first start
//! confirmations = 6                   # k: an anchor this deep is done
//! fee_rate_sat_vb = 2
//! max_pending = 20                    # anchors not yet mined, at most (mempool chain limits)
//! poll_interval_ms = 2000             # new blocks bring no node event: look this often
//! call_timeout_ms = 10000
//!
//! [bitcoin]                           # Bitcoin Core (or `fiamma regtest`) over JSON-RPC
//! rpc_url = "http://127.0.0.1:18443"
//! rpc_user = "fiamma"
//! rpc_password_file = "rpc-password"  # else FIAMMA_SEQUENCER_RPC_PASSWORD
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcoin::Network;
use fiamma_staking::context::SigningContexts;
use serde::Deserialize;

pub use fiamma_role::config::{BitcoinRpc, ConfigError, PasswordError};

/// The environment variable the Bitcoin RPC password may come from.
pub const RPC_PASSWORD_ENV: &str = "FIAMMA_SEQUENCER_RPC_PASSWORD";
/// The environment variable the wallet passphrase may come from.
pub const PASSPHRASE_ENV: &str = "FIAMMA_SEQUENCER_PASSPHRASE";
/// The wallet's name in the store.
pub const WALLET_NAME: &str = "sequencer";

/// The config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequencerConfig {
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
    /// The Bitcoin network.
    pub network: Network,
    /// The wallet's sealed secret.
    pub wallet_secret: PathBuf,
    /// A file holding the wallet passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// The local store's URL.
    pub store: Option<String>,
    /// Where `/health` and `/metrics` are served.
    pub status_addr: Option<SocketAddr>,
    /// Anchor the final rounds divisible by this.
    #[serde(default = "one")]
    pub anchor_every: u64,
    /// The first round to anchor; default: the newest closed round at the first start.
    pub start_round: Option<u64>,
    /// k.
    #[serde(default = "default_confirmations")]
    pub confirmations: u32,
    /// Fee rate of the anchors.
    #[serde(default = "default_fee_rate")]
    pub fee_rate_sat_vb: u64,
    /// Anchors not yet mined, at most.
    #[serde(default = "default_max_pending")]
    pub max_pending: u32,
    /// Longest wait between two passes, in milliseconds.
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// Timeout of each call to the node, in milliseconds.
    #[serde(default = "default_timeout")]
    pub call_timeout_ms: u64,
    /// The Bitcoin node.
    pub bitcoin: BitcoinRpc,
    /// The folder of the config file.
    #[serde(skip)]
    pub dir: PathBuf,
}

fn one() -> u64 {
    1
}
fn default_confirmations() -> u32 {
    6
}
fn default_fee_rate() -> u64 {
    2
}
fn default_max_pending() -> u32 {
    20
}
fn default_poll() -> u64 {
    2_000
}
fn default_timeout() -> u64 {
    10_000
}

impl SequencerConfig {
    /// Reads and checks `path`, resolving relative paths against its folder.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: SequencerConfig = fiamma_role::config::read_toml(path)?;
        let range = |field, reason| ConfigError::range(path, field, reason);
        if !(1..=1_000_000).contains(&config.anchor_every) {
            return Err(range("anchor_every", "must be between 1 and 1000000"));
        }
        if config.start_round == Some(0) {
            return Err(range("start_round", "rounds are numbered from 1"));
        }
        if !(1..=1000).contains(&config.confirmations) {
            return Err(range("confirmations", "must be between 1 and 1000"));
        }
        if !(1..=10_000).contains(&config.fee_rate_sat_vb) {
            return Err(range("fee_rate_sat_vb", "must be between 1 and 10000"));
        }
        // Bitcoin Core refuses a chain of more than 25 unconfirmed transactions.
        if !(1..=24).contains(&config.max_pending) {
            return Err(range("max_pending", "must be between 1 and 24"));
        }
        fiamma_role::config::check_timing(path, config.poll_interval_ms, config.call_timeout_ms)?;
        config.dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        fiamma_role::config::resolve_paths(
            path,
            [
                Some(&mut config.wallet_secret),
                config.passphrase_file.as_mut(),
                config.bitcoin.rpc_password_file.as_mut(),
            ]
            .into_iter()
            .flatten(),
        );
        Ok(config)
    }

    /// The local store's URL: as configured, else `sequencer.db` beside the config file.
    pub fn store_url(&self) -> String {
        self.store
            .clone()
            .unwrap_or_else(|| fiamma_role::store::sqlite_url(&self.dir.join("sequencer.db")))
    }

    /// The Bitcoin RPC password: the file's first line, else the environment variable.
    ///
    /// # Errors
    /// [`PasswordError`].
    pub fn rpc_password(&self) -> Result<String, PasswordError> {
        self.bitcoin.password(RPC_PASSWORD_ENV)
    }

    /// The signing contexts the verifiers' votes are checked under.
    pub fn contexts(&self) -> SigningContexts {
        SigningContexts {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("sequencer.toml");
        std::fs::write(
            &path,
            format!(
                "node = \"http://127.0.0.1:9090\"\nchain_id = \"c\"\nnetwork = \"regtest\"\n\
                 wallet_secret = \"wallet.age\"\n{body}\n[bitcoin]\n\
                 rpc_url = \"http://127.0.0.1:18443\"\nrpc_user = \"u\"\n\
                 rpc_password_file = \"pw\"\n"
            ),
        )
        .expect("write");
        path
    }

    #[test]
    fn a_config_loads_with_defaults_and_resolves_paths() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("pw"), "s3cret\n").expect("write");
        let c = SequencerConfig::load(&write(dir.path(), "")).expect("loads");
        assert_eq!((c.anchor_every, c.confirmations, c.max_pending), (1, 6, 20));
        assert_eq!(c.rpc_password().expect("password"), "s3cret");
        assert_eq!(c.wallet_secret, dir.path().join("wallet.age"));
        assert!(
            c.store_url().ends_with("sequencer.db?mode=rwc"),
            "{}",
            c.store_url()
        );
        for (body, field) in [
            ("anchor_every = 0", "anchor_every"),
            ("start_round = 0", "start_round"),
            ("confirmations = 0", "confirmations"),
            ("max_pending = 30", "max_pending"),
        ] {
            let e = SequencerConfig::load(&write(dir.path(), body)).expect_err(body);
            assert!(e.to_string().contains(field), "{e}");
        }
    }
}
