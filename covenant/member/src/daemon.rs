//! `fiamma covenant run`: the member component wired to its keystore, its own params file, the
//! node over gRPC and its local store, with health and metrics served when configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fiamma_proto::client::{GrpcNode, NodeError};
use fiamma_role::daemon::{spawn_status, Shutdown, StatusBindError};
use fiamma_role::keystore::{Keystore, KeystoreError};
use fiamma_role::passphrase::{PassphraseError, PassphraseSource};
use fiamma_staking::context::SigningContexts;
use fiamma_staking::params::ParamsVersions;

use crate::config::{ConfigError, MemberConfig, PASSPHRASE_ENV, ROLE};
use crate::member::{CovenantMember, MemberSettings};
use crate::signer::KeystoreSigner;
use crate::store::{MemberStore, StoreError};

/// Why the daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The passphrase.
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    /// The keystore.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The member's own params file.
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
    /// The local store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The status address cannot be bound.
    #[error(transparent)]
    Status(#[from] StatusBindError),
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

/// The member of `config`: keystore opened, params read, node client made, store migrated.
///
/// # Errors
/// [`DaemonError`].
pub async fn open_member(config: &MemberConfig) -> Result<CovenantMember, DaemonError> {
    let params = load_params(&config.params_file)?;
    let keystore = Keystore::at(&config.keystore, ROLE);
    let passphrase = PassphraseSource::choose(config.passphrase_file.clone(), PASSPHRASE_ENV)
        .read("Covenant keystore passphrase: ", PASSPHRASE_ENV)?;
    let keypair = keystore.open(&passphrase)?;
    drop(passphrase);
    let node = GrpcNode::connect_lazy(&config.node, config.call_timeout())?;
    let store = MemberStore::open(&config.store_url()).await?;
    let settings = MemberSettings {
        params,
        contexts: SigningContexts {
            chain_id: config.chain_id.clone(),
            module_address: config.module_address.clone(),
            disabled: config.disabled_contexts.clone(),
        },
        page_size: config.page_size,
        poll_interval: config.poll_interval(),
        max_retry: std::time::Duration::from_millis(config.max_retry_ms),
    };
    Ok(CovenantMember::new(
        settings,
        Arc::new(KeystoreSigner::new(keypair)),
        Arc::new(node),
        store,
    ))
}

/// Runs the daemon of the config at `path` until `shutdown`.
///
/// # Errors
/// [`DaemonError`] when it cannot start; once running it only stops on `shutdown`.
pub async fn run(path: &Path, shutdown: Shutdown) -> Result<(), DaemonError> {
    let config = MemberConfig::load(path)?;
    let member = open_member(&config).await?;
    spawn_status(
        config.status_addr,
        member.health(),
        member.metrics(),
        &shutdown,
    )
    .await?;
    tracing::info!(node = %config.node, store = ?member.store().dialect(), "covenant member running");
    member.run(shutdown).await;
    tracing::info!("covenant member stopped");
    Ok(())
}
