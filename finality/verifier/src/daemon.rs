//! `fiamma verifier run`: the component wired to its keystore, the node over gRPC and its local
//! store, with health and metrics served when configured.

use std::path::Path;
use std::sync::Arc;

use bitcoin::secp256k1::Keypair;
use fiamma_proto::client::{GrpcNode, NodeError};
use fiamma_role::daemon::{spawn_status, Shutdown, StatusBindError};
use fiamma_role::keystore::{Keystore, KeystoreError};
use fiamma_role::passphrase::{PassphraseError, PassphraseSource};

use crate::config::{ConfigError, VerifierConfig, PASSPHRASE_ENV, ROLE};
use crate::signer::KeystoreSigner;
use crate::store::{StoreError, VerifierStore};
use crate::verifier::{Verifier, VerifierError, VerifierSettings};

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
    /// The node endpoint.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The local store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The verifier refused to start.
    #[error(transparent)]
    Verifier(#[from] VerifierError),
    /// The status address cannot be bound.
    #[error(transparent)]
    Status(#[from] StatusBindError),
}

/// Opens the keystore of `config` with its passphrase.
///
/// # Errors
/// [`DaemonError::Passphrase`] or [`DaemonError::Keystore`].
pub fn open_key(config: &VerifierConfig) -> Result<Keypair, DaemonError> {
    let keystore = Keystore::at(&config.keystore, ROLE);
    let passphrase = PassphraseSource::choose(config.passphrase_file.clone(), PASSPHRASE_ENV)
        .read("Verifier keystore passphrase: ", PASSPHRASE_ENV)?;
    Ok(keystore.open(&passphrase)?)
}

/// The settings of `config`.
pub fn settings(config: &VerifierConfig) -> VerifierSettings {
    VerifierSettings {
        contexts: config.contexts(),
        commit_batch: config.commit_batch,
        commit_ahead: config.commit_ahead,
        catch_up_rounds: config.catch_up_rounds,
        poll_interval: config.poll_interval(),
        unjail: config.unjail,
        jail_duration: config.jail_duration,
    }
}

/// The verifier of `config`: keystore opened, node client made, store migrated and checked
/// for this network (`new_network`: see [`Verifier::new`]).
///
/// # Errors
/// [`DaemonError`].
pub async fn open_verifier(
    config: &VerifierConfig,
    new_network: bool,
) -> Result<Verifier, DaemonError> {
    let keypair = open_key(config)?;
    let node = GrpcNode::connect_lazy(&config.node, config.call_timeout())?;
    let store = VerifierStore::open(&config.store_url()).await?;
    Ok(Verifier::new(
        settings(config),
        Arc::new(KeystoreSigner::new(keypair)),
        Arc::new(node),
        store,
        new_network,
    )
    .await?)
}

/// Runs the daemon of the config at `path` until `shutdown`.
///
/// # Errors
/// [`DaemonError`] when it cannot start; once running it only stops on `shutdown`.
pub async fn run(path: &Path, new_network: bool, shutdown: Shutdown) -> Result<(), DaemonError> {
    let config = VerifierConfig::load(path)?;
    let verifier = open_verifier(&config, new_network).await?;
    spawn_status(
        config.status_addr,
        verifier.health(),
        verifier.metrics(),
        &shutdown,
    )
    .await?;
    tracing::info!(node = %config.node, key = %verifier.public_key(), store = ?verifier.store().dialect(), "verifier running");
    verifier.run(shutdown).await;
    tracing::info!("verifier stopped");
    Ok(())
}
