//! `fiamma slasher run`: the component wired to the node over gRPC, Bitcoin Core's JSON-RPC
//! and its local store, with health and metrics served when configured.

use std::path::Path;
use std::sync::Arc;

use fiamma_btc::{BackendError, RpcBackend};
use fiamma_proto::client::{GrpcNode, NodeError};
use fiamma_role::daemon::{spawn_status, Shutdown, StatusBindError};

use crate::config::{ConfigError, PasswordError, SlasherConfig};
use crate::slasher::{Slasher, SlasherSettings};
use crate::store::{SlasherStore, StoreError};

/// Why the daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Bitcoin RPC password.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The node endpoint.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The Bitcoin RPC client.
    #[error("bitcoin rpc client: {0}")]
    Bitcoin(#[from] BackendError),
    /// The local store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The status address cannot be bound.
    #[error(transparent)]
    Status(#[from] StatusBindError),
}

/// The settings of `config`.
pub fn settings(config: &SlasherConfig) -> SlasherSettings {
    SlasherSettings {
        confirmations: config.confirmations,
        poll_interval: config.poll_interval(),
        page_size: config.page_size,
    }
}

/// The slasher of `config`: node client and Bitcoin client made, store migrated.
///
/// # Errors
/// [`DaemonError`].
pub async fn open_slasher(config: &SlasherConfig) -> Result<Slasher, DaemonError> {
    let node = GrpcNode::connect_lazy(&config.node, config.call_timeout())?;
    let password = config.rpc_password()?;
    let bitcoin = RpcBackend::new(&config.bitcoin.rpc_url, &config.bitcoin.rpc_user, &password)?;
    let store = SlasherStore::open(&config.store_url()).await?;
    Ok(Slasher::new(
        settings(config),
        Arc::new(node),
        Arc::new(bitcoin),
        store,
    ))
}

/// Runs the daemon of the config at `path` until `shutdown`.
///
/// # Errors
/// [`DaemonError`] when it cannot start; once running it only stops on `shutdown`.
pub async fn run(path: &Path, shutdown: Shutdown) -> Result<(), DaemonError> {
    let config = SlasherConfig::load(path)?;
    let slasher = open_slasher(&config).await?;
    spawn_status(
        config.status_addr,
        slasher.health(),
        slasher.metrics(),
        &shutdown,
    )
    .await?;
    tracing::info!(node = %config.node, bitcoin = %config.bitcoin.rpc_url, k = config.confirmations, store = ?slasher.store().dialect(), "slasher running");
    slasher.run(shutdown).await;
    tracing::info!("slasher stopped");
    Ok(())
}
