//! `fiamma node`: resolve the configuration, migrate the database, start the chain follower and
//! serve gRPC until interrupted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fiamma_staking::context::SigningContexts;
use fiamma_staking::params::ParamsVersions;
use tokio::net::TcpListener;

use crate::btc::{Backend, BackendError, EmbeddedBackend, RegtestChain};
use crate::node::config::{BitcoinConfig, ConfigError, NodeArgs, NodeConfig};
use crate::node::follower::Follower;
use crate::node::grpc::{serve, ServeError};
use crate::node::module::StakingModule;
use crate::node::store::{Store, StoreError};

/// Database connections the node keeps.
const MAX_DB_CONNECTIONS: u32 = 16;

/// Why `fiamma node` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is incomplete or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The params file cannot be used.
    #[error("params file {path}: {reason}")]
    Params {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The gRPC address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The Bitcoin backend cannot start.
    #[error("bitcoin backend: {0}")]
    Backend(String),
    /// The gRPC server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Reads a params file: a JSON list of params versions, oldest first.
pub fn load_params(path: &Path) -> Result<ParamsVersions, RunError> {
    let fail = |reason: String| RunError::Params {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| fail(e.to_string()))
}

fn backend(config: &BitcoinConfig) -> Result<Arc<dyn Backend>, RunError> {
    match config {
        BitcoinConfig::Embedded { data_dir } => {
            let chain = match data_dir {
                Some(dir) => RegtestChain::open(dir),
                None => RegtestChain::in_memory(),
            }
            .map_err(|e| RunError::Backend(e.to_string()))?;
            Ok(Arc::new(EmbeddedBackend::new(chain)))
        }
        BitcoinConfig::Rpc {
            url,
            user,
            password,
        } => crate::btc::rpc_backend::RpcBackend::new(url, user, password)
            .map(|b| Arc::new(b) as Arc<dyn Backend>)
            .map_err(|e: BackendError| RunError::Backend(e.to_string())),
    }
}

/// Structured logs: JSON lines on stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Already initialised (e.g. by an embedding test) is fine.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the node until Ctrl-C.
pub async fn run(args: NodeArgs) -> Result<(), RunError> {
    init_logging();
    let config = NodeConfig::from_args(&args)?;
    let store = Store::connect(&config.database_url, MAX_DB_CONNECTIONS).await?;
    store.migrate().await?;
    let params = load_params(&config.params_file)?;
    let contexts = SigningContexts {
        chain_id: config.chain_id.clone(),
        module_address: config.module_address.clone(),
        disabled: config.disabled_contexts.clone(),
    };
    let module = StakingModule::new(store, params, contexts).await?;
    let listener = TcpListener::bind(config.grpc_addr)
        .await
        .map_err(|source| RunError::Bind {
            addr: config.grpc_addr,
            source,
        })?;
    let backend = backend(&config.bitcoin)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let follower = Follower::new(backend, module.clone(), config.network);
    let follow =
        tokio::spawn(follower.run(Duration::from_millis(config.poll_interval_ms), stopped));
    tracing::info!(addr = %config.grpc_addr, network = %config.network, "fiamma node serving");
    let served = serve(module, listener, async {
        // Without a signal handler the node runs until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
    .await;
    let _ = stop.send(true);
    let _ = follow.await;
    Ok(served?)
}
