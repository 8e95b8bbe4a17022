//! `fiamma sequencer run`: the component wired to the node over gRPC, Bitcoin Core's JSON-RPC,
//! its wallet (secret opened with the passphrase) and its local store, with health and metrics
//! served when configured.

use std::path::Path;
use std::sync::Arc;

use bdk_bitcoind_rpc::bitcoincore_rpc::{Auth, Client};
use bitcoin::FeeRate;
use fiamma_btc::{BackendError, RpcBackend};
use fiamma_proto::client::{GrpcNode, NodeError};
use fiamma_role::daemon::{spawn_status, Shutdown, StatusBindError};
use fiamma_role::passphrase::{PassphraseError, PassphraseSource};
use fiamma_wallet::{Wallet, WalletError};

use crate::config::{ConfigError, PasswordError, SequencerConfig, PASSPHRASE_ENV, WALLET_NAME};
use crate::sequencer::{Sequencer, SequencerSettings};
use crate::store::{SequencerStore, StoreError};

/// Why the daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Bitcoin RPC password.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The wallet passphrase.
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    /// The node endpoint.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The Bitcoin RPC client.
    #[error("bitcoin rpc client: {0}")]
    Bitcoin(#[from] BackendError),
    /// The wallet's JSON-RPC client.
    #[error("bitcoin rpc client of the wallet at {url}: {reason}")]
    WalletRpc {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The wallet.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The local store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The status address cannot be bound.
    #[error(transparent)]
    Status(#[from] StatusBindError),
}

/// The settings of `config`.
pub fn settings(config: &SequencerConfig) -> SequencerSettings {
    SequencerSettings {
        contexts: config.contexts(),
        anchor_every: config.anchor_every,
        start_round: config.start_round,
        confirmations: config.confirmations,
        fee_rate: FeeRate::from_sat_per_vb(config.fee_rate_sat_vb)
            .unwrap_or(FeeRate::BROADCAST_MIN),
        max_pending: config.max_pending as usize,
        poll_interval: config.poll_interval(),
    }
}

/// The wallet's JSON-RPC client of `config`.
///
/// # Errors
/// [`DaemonError`].
pub fn rpc_client(config: &SequencerConfig) -> Result<Client, DaemonError> {
    let password = config.rpc_password()?;
    Client::new(
        &config.bitcoin.rpc_url,
        Auth::UserPass(config.bitcoin.rpc_user.clone(), password),
    )
    .map_err(|e| DaemonError::WalletRpc {
        url: config.bitcoin.rpc_url.clone(),
        reason: e.to_string(),
    })
}

/// The wallet of `config` with its keys (passphrase from the file, the environment or a
/// prompt); watch-only when `signing` is false.
///
/// # Errors
/// [`DaemonError`]: no wallet in the store (create it with `fiamma sequencer wallet create`),
/// a wrong passphrase.
pub async fn open_wallet(
    config: &SequencerConfig,
    store: &SequencerStore,
    signing: bool,
) -> Result<Wallet, DaemonError> {
    let wallet_store = store.wallet(WALLET_NAME).await?;
    if !signing {
        return Ok(Wallet::load(wallet_store, config.network, None).await?);
    }
    let passphrase = PassphraseSource::choose(config.passphrase_file.clone(), PASSPHRASE_ENV)
        .read("Sequencer wallet passphrase: ", PASSPHRASE_ENV)?;
    Ok(Wallet::open(
        wallet_store,
        config.network,
        &config.wallet_secret,
        &passphrase,
    )
    .await?)
}

/// The sequencer of `config`: node client, Bitcoin clients and wallet made, store migrated.
///
/// # Errors
/// [`DaemonError`].
pub async fn open_sequencer(config: &SequencerConfig) -> Result<Sequencer, DaemonError> {
    let node = GrpcNode::connect_lazy(&config.node, config.call_timeout())?;
    let password = config.rpc_password()?;
    let bitcoin = RpcBackend::new(&config.bitcoin.rpc_url, &config.bitcoin.rpc_user, &password)?;
    let rpc = rpc_client(config)?;
    let store = SequencerStore::open(&config.store_url()).await?;
    let wallet = open_wallet(config, &store, true).await?;
    Ok(Sequencer::new(
        settings(config),
        Arc::new(node.clone()),
        Arc::new(bitcoin),
        Arc::new(rpc),
        wallet,
        store,
    )
    .with_checkpoints(Arc::new(node)))
}

/// Runs the daemon of the config at `path` until `shutdown`.
///
/// # Errors
/// [`DaemonError`] when it cannot start; once running it only stops on `shutdown`.
pub async fn run(path: &Path, shutdown: Shutdown) -> Result<(), DaemonError> {
    let config = SequencerConfig::load(path)?;
    let sequencer = open_sequencer(&config).await?;
    spawn_status(
        config.status_addr,
        sequencer.health(),
        sequencer.metrics(),
        &shutdown,
    )
    .await?;
    tracing::info!(node = %config.node, bitcoin = %config.bitcoin.rpc_url, every = config.anchor_every, k = config.confirmations, store = ?sequencer.store().dialect(), "sequencer running");
    sequencer.run(shutdown).await;
    tracing::info!("sequencer stopped");
    Ok(())
}
