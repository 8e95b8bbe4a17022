//! `fiamma node`: resolve the configuration, migrate the database, start the chain follower and
//! the round closer, and serve both modules over gRPC until interrupted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::Network;
use fiamma_finality::rounds::CommitmentRules;
use fiamma_staking::context::SigningContexts;
use fiamma_staking::params::ParamsVersions;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::btc::{Backend, BackendError, EmbeddedBackend, RegtestChain};
use crate::node::checkpoint::follow::spawn_checkpoint_follower;
use crate::node::checkpoint::{CheckpointSettings, Checkpoints};
use crate::node::config::{
    BitcoinConfig, ConfigError, FinalityConfig, NodeArgs, NodeConfig, ServerConfig,
};
use crate::node::finality::closer::spawn_round_closer_with_health;
use crate::node::finality::{FinalityModule, FinalityParams};
use crate::node::follower::Follower;
use crate::node::grpc::{serve_with, ServeError};
use crate::node::module::StakingModule;
use crate::node::store::{Store, StoreError};

/// Database connections of the round closer and of the chain follower, each (apart from the
/// handlers' pool, so a flood of requests cannot starve them).
const TASK_DB_CONNECTIONS: u32 = 2;

/// How long a stopping node waits for its calls in flight before it drops them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

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

/// The finality parameters: the node's finality settings, with `max_active_verifiers` and
/// `min_pub_rand` from the latest params version.
pub fn finality_params(config: &FinalityConfig, params: &ParamsVersions) -> FinalityParams {
    let (_, latest) = params.latest();
    FinalityParams {
        round_interval: config.round_interval,
        vote_expiry: config.vote_expiry,
        max_active_verifiers: latest.max_active_verifiers,
        commitment: CommitmentRules {
            min_pub_rand: latest.min_pub_rand,
            max_pub_rand: latest.limits.max_pub_rand,
            max_start_ahead: config.max_start_ahead,
        },
        liveness: config.liveness,
        limits: latest.limits,
        proof_retention: config.proof_retention_rounds,
    }
}

/// What a node runs on, resolved from configuration or chosen by an embedding (`fiamma devnet`).
pub struct NodeSetup {
    /// The database, migrated.
    pub pool: PgPool,
    /// The staking params versions.
    pub params: ParamsVersions,
    /// The signing contexts.
    pub contexts: SigningContexts,
    /// The finality settings.
    pub finality: FinalityConfig,
    /// The Bitcoin backend followed.
    pub backend: Arc<dyn Backend>,
    /// Its network.
    pub network: Network,
    /// Between two polls of the backend.
    pub poll_interval: Duration,
    /// How long the backend may fail to answer before the node stops closing rounds.
    pub stall_timeout: Duration,
    /// Where gRPC is served.
    pub listener: TcpListener,
}

/// A running node: both modules, the chain follower, the round closer and the gRPC server.
pub struct RunningNode {
    /// The staking module.
    pub staking: StakingModule,
    /// The finality module.
    pub finality: FinalityModule,
    /// The gRPC address.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    follow: JoinHandle<()>,
    closer: JoinHandle<()>,
    checkpoints: Option<JoinHandle<()>>,
    server: JoinHandle<Result<(), ServeError>>,
}

impl RunningNode {
    /// [`RunningNode::start_with`] the default server limits.
    ///
    /// # Errors
    /// [`RunError::Store`] when the staking module cannot load its state.
    pub async fn start(setup: NodeSetup) -> Result<Self, RunError> {
        Self::start_with(setup, &ServerConfig::default()).await
    }

    /// Starts everything on `setup` within the server limits `server`; returns once gRPC is
    /// accepting connections. The request handlers use `setup.pool`; the round closer and
    /// the chain follower each get a small pool of their own on the same database.
    ///
    /// # Errors
    /// [`RunError::Store`] when the staking module cannot load its state.
    pub async fn start_with(setup: NodeSetup, server: &ServerConfig) -> Result<Self, RunError> {
        let own_pool = || {
            PgPoolOptions::new()
                .max_connections(TASK_DB_CONNECTIONS)
                .test_before_acquire(false)
                .connect_lazy_with(setup.pool.connect_options().as_ref().clone())
        };
        let (closer_pool, follower_pool) = (own_pool(), own_pool());
        let mut finality = FinalityModule::new(
            setup.pool.clone(),
            finality_params(&setup.finality, &setup.params),
            setup.contexts.clone(),
        );
        if let Some(config) = &setup.finality.checkpoint {
            let settings = CheckpointSettings::new(
                config,
                setup.params.latest().1,
                setup.finality.vote_expiry,
            )
            .map_err(|e| {
                RunError::Config(ConfigError::Checkpoint {
                    key: e.key(),
                    reason: e.to_string(),
                })
            })?;
            finality = finality.with_checkpoints(Checkpoints {
                settings: Arc::new(settings),
                backend: setup.backend.clone(),
            });
        }
        let staking =
            StakingModule::new(Store::from_pool(setup.pool), setup.params, setup.contexts).await?;
        let addr = setup
            .listener
            .local_addr()
            .map_err(|e| RunError::Backend(format!("listener address: {e}")))?;
        let (stop, stopped) = watch::channel(false);
        let follower = Follower::new(
            setup.backend,
            staking.with_store(Store::from_pool(follower_pool)),
            setup.network,
        )
        .with_stall_timeout(setup.stall_timeout);
        let follow = tokio::spawn(follower.run(setup.poll_interval, stopped.clone()));
        let closer = spawn_round_closer_with_health(
            finality.with_pool(closer_pool),
            staking.health().clone(),
            until_stopped(stopped.clone()),
        );
        let checkpoints = finality.checkpoints.is_some().then(|| {
            spawn_checkpoint_follower(
                finality.clone(),
                setup.poll_interval,
                until_stopped(stopped.clone()),
            )
        });
        let server = tokio::spawn(serve_with(
            *server,
            staking.clone(),
            Some(finality.clone()),
            setup.listener,
            until_stopped(stopped),
        ));
        Ok(RunningNode {
            staking,
            finality,
            addr,
            stop,
            follow,
            closer,
            checkpoints,
            server,
        })
    }

    /// Stops the server, the follower and the closer, and waits for them; the server gets
    /// [`SHUTDOWN_GRACE`] to finish its calls (open Events streams never finish on their own),
    /// then is dropped with its connections.
    ///
    /// # Errors
    /// [`RunError::Serve`] when the server had failed.
    pub async fn stop(mut self) -> Result<(), RunError> {
        let _ = self.stop.send(true);
        let _ = self.follow.await;
        let _ = self.closer.await;
        if let Some(checkpoints) = self.checkpoints.take() {
            let _ = checkpoints.await;
        }
        let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server).await {
            Ok(served) => served,
            Err(_) => {
                self.server.abort();
                return Ok(());
            }
        };
        match served {
            Ok(served) => Ok(served?),
            Err(e) => Err(RunError::Backend(format!("grpc server task: {e}"))),
        }
    }

    /// Whether the gRPC server has stopped on its own (it failed).
    pub fn server_stopped(&self) -> bool {
        self.server.is_finished()
    }
}

async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    // A dropped sender also means stop.
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// [`connect_and_migrate_with`] the default server limits.
///
/// # Errors
/// [`RunError::Store`] when the server cannot be reached or a migration fails.
pub async fn connect_and_migrate(url: &str) -> Result<PgPool, RunError> {
    connect_and_migrate_with(url, &ServerConfig::default()).await
}

/// Connects the handlers' pool to `url` (`db_max_connections`, waiting at most
/// `db_acquire_timeout` for a connection, which a handler answers UNAVAILABLE) and applies
/// the migrations.
///
/// # Errors
/// [`RunError::Store`] when the server cannot be reached or a migration fails.
pub async fn connect_and_migrate_with(
    url: &str,
    server: &ServerConfig,
) -> Result<PgPool, RunError> {
    // No ping before each use: a dead connection fails its statement, which the client sees
    // as "database unavailable; retry", and the pool replaces it.
    let pool = PgPoolOptions::new()
        .max_connections(server.db_max_connections)
        .acquire_timeout(server.db_acquire_timeout)
        .test_before_acquire(false)
        .connect(url)
        .await
        .map_err(StoreError::from)?;
    Store::from_pool(pool.clone()).migrate().await?;
    Ok(pool)
}

/// Runs the node until Ctrl-C.
pub async fn run(args: NodeArgs) -> Result<(), RunError> {
    crate::cli::init_logging();
    let config = NodeConfig::from_args(&args)?;
    let pool = connect_and_migrate_with(&config.database_url, &config.server).await?;
    let params = load_params(&config.params_file)?;
    let contexts = SigningContexts {
        chain_id: config.chain_id.clone(),
        module_address: config.module_address.clone(),
        disabled: config.disabled_contexts.clone(),
    };
    let listener = TcpListener::bind(config.grpc_addr)
        .await
        .map_err(|source| RunError::Bind {
            addr: config.grpc_addr,
            source,
        })?;
    let node = RunningNode::start_with(
        NodeSetup {
            pool,
            params,
            contexts,
            finality: config.finality,
            backend: backend(&config.bitcoin)?,
            network: config.network,
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            stall_timeout: Duration::from_millis(config.stall_timeout_ms),
            listener,
        },
        &config.server,
    )
    .await?;
    tracing::info!(
        addr = %node.addr,
        network = %config.network,
        round_interval_ms = config.finality.round_interval.as_millis() as u64,
        "fiamma node serving"
    );
    // Without a signal handler the node runs until killed.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    node.stop().await
}
