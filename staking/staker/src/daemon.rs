//! `fiamma staker run`: the component wired to its wallet (secret opened with the passphrase,
//! or watch-only), its own params file, the node over gRPC, Bitcoin over JSON-RPC and its
//! local store; serving the staker API on loopback with reflection, and health and metrics
//! when configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bdk_bitcoind_rpc::bitcoincore_rpc::{Auth, Client};
use bitcoin::FeeRate;
use fiamma_btc::RpcBackend;
use fiamma_proto::client::{GrpcNode, NodeError};
use fiamma_role::daemon::{serve_status, Shutdown};
use fiamma_role::passphrase::{PassphraseError, PassphraseSource};
use fiamma_staking::context::SigningContexts;
use fiamma_staking::params::ParamsVersions;
use fiamma_wallet::{Wallet, WalletError};

use crate::config::{ConfigError, PasswordError, StakerConfig, PASSPHRASE_ENV, WALLET_NAME};
use crate::service::StakerService;
use crate::staker::{Staker, StakerSettings};
use crate::store::{StakerStore, StoreError};

/// Why the daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The passphrase.
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    /// The Bitcoin RPC password.
    #[error(transparent)]
    RpcPassword(#[from] PasswordError),
    /// The wallet.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The staker's own params file.
    #[error("params file {path}: {reason}")]
    Params {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The node endpoint.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Bitcoin's JSON-RPC.
    #[error("bitcoin rpc {url}: {reason}")]
    Bitcoin {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The local store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("staker api: {0}")]
    Serve(String),
}

/// Reads a params file: a JSON list of params versions, oldest first, each checked.
///
/// # Errors
/// [`DaemonError::Params`].
pub fn load_params(path: &Path) -> Result<ParamsVersions, DaemonError> {
    let fail = |reason: String| DaemonError::Params {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| fail(e.to_string()))
}

/// Bitcoin's JSON-RPC client of `config`, with the password read as the config says.
///
/// # Errors
/// [`DaemonError::RpcPassword`] or [`DaemonError::Bitcoin`].
pub fn rpc_client(config: &StakerConfig) -> Result<Client, DaemonError> {
    Client::new(
        &config.bitcoin.rpc_url,
        Auth::UserPass(config.bitcoin.rpc_user.clone(), config.rpc_password()?),
    )
    .map_err(|e| DaemonError::Bitcoin {
        url: config.bitcoin.rpc_url.clone(),
        reason: e.to_string(),
    })
}

/// The wallet of `config`: with its keys when it has a secret (passphrase from the file, the
/// environment or a prompt), watch-only otherwise.
///
/// # Errors
/// [`DaemonError`]: no wallet in the store, a wrong passphrase.
pub async fn open_wallet(
    config: &StakerConfig,
    store: &StakerStore,
) -> Result<Wallet, DaemonError> {
    let wallet_store = store.wallet(WALLET_NAME).await?;
    Ok(match &config.wallet_secret {
        Some(secret) => {
            let passphrase =
                PassphraseSource::choose(config.passphrase_file.clone(), PASSPHRASE_ENV)
                    .read("Staker wallet passphrase: ", PASSPHRASE_ENV)?;
            Wallet::open(wallet_store, config.network, secret, &passphrase).await?
        }
        None => Wallet::load(wallet_store, config.network, None).await?,
    })
}

/// The staker of `config`.
///
/// # Errors
/// [`DaemonError`].
pub async fn open_staker(config: &StakerConfig) -> Result<Staker, DaemonError> {
    let params = load_params(&config.params_file)?;
    let store = StakerStore::open(&config.store_url()).await?;
    let wallet = open_wallet(config, &store).await?;
    let node = Arc::new(GrpcNode::connect_lazy(&config.node, config.call_timeout())?);
    let rpc = Arc::new(rpc_client(config)?);
    let bitcoin = RpcBackend::new(
        &config.bitcoin.rpc_url,
        &config.bitcoin.rpc_user,
        &config.rpc_password()?,
    )
    .map_err(|e| DaemonError::Bitcoin {
        url: config.bitcoin.rpc_url.clone(),
        reason: e.to_string(),
    })?;
    let settings = StakerSettings {
        params,
        contexts: SigningContexts {
            chain_id: config.chain_id.clone(),
            module_address: config.module_address.clone(),
            disabled: config.disabled_contexts.clone(),
        },
        network: config.network,
        fee_rate: FeeRate::from_sat_per_vb(config.fee_rate_sat_vb)
            .unwrap_or(FeeRate::BROADCAST_MIN),
        auto_withdraw: config.auto_withdraw,
        poll_interval: config.poll_interval(),
    };
    Ok(Staker::new(
        settings,
        wallet,
        store,
        node.clone(),
        Some(node),
        Arc::new(bitcoin),
        rpc,
    ))
}

/// Runs the service of the config at `path` until `shutdown`.
///
/// # Errors
/// [`DaemonError`] when it cannot start.
pub async fn run(path: &Path, shutdown: Shutdown) -> Result<(), DaemonError> {
    let config = StakerConfig::load(path)?;
    let staker = Arc::new(open_staker(&config).await?);
    if let Some(addr) = config.status_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Bind { addr, source })?;
        tokio::spawn(serve_status(
            listener,
            staker.health().clone(),
            staker.metrics().clone(),
            shutdown.clone(),
        ));
    }
    let addr = config.grpc_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind { addr, source })?;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(fiamma_proto::STAKER_FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| DaemonError::Serve(e.to_string()))?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let stop = shutdown.clone();
    let server = tonic::transport::Server::builder()
        .add_service(reflection)
        .add_service(StakerService::new(staker.clone()).server())
        .serve_with_incoming_shutdown(incoming, async move { stop.wait().await });
    tracing::info!(api = %addr, node = %config.node, "staker running");
    let looped = staker.clone();
    let looping = tokio::spawn(async move { looped.run(shutdown).await });
    let served = server.await.map_err(|e| DaemonError::Serve(e.to_string()));
    let _ = looping.await;
    tracing::info!("staker stopped");
    served
}
