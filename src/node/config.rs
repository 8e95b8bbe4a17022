//! `fiamma node` configuration: a TOML file, overridden by environment variables, overridden
//! by command-line flags (clap reads each flag's environment variable, and a flag given on
//! the command line wins over it).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcoin::Amount;
use bitcoin::Network;
use fiamma_finality::checkpoint::CheckpointParams;
use fiamma_finality::rounds::LivenessRules;

use crate::node::checkpoint::CheckpointConfig;
use serde::Deserialize;

/// Default gRPC listen address.
pub const DEFAULT_GRPC_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090));
/// Default interval between two polls of the Bitcoin backend, in milliseconds.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 1000;
/// Default `[bitcoin] stall_timeout_ms`: a minute without an answer stops the rounds.
pub const DEFAULT_STALL_TIMEOUT_MS: u64 = 60_000;
/// Default finality settings: a round every 10 s, votes accepted for 10 rounds, commitments
/// starting at most 1,000 rounds ahead, jailing after missing more than 50 of the last 100
/// rounds for 100 rounds.
pub const DEFAULT_FINALITY: FinalityFile = FinalityFile {
    round_interval_ms: Some(10_000),
    vote_expiry: Some(10),
    max_start_ahead: Some(1_000),
    liveness_window: Some(100),
    liveness_min_signed: Some(50),
    jail_duration: Some(100),
    proof_retention_rounds: Some(DEFAULT_PROOF_RETENTION_ROUNDS),
};

/// Rounds a closed round's proof bytes are kept for RoundProofs by default: an hour of rounds
/// at one per 10 s, 36 vote windows of the default `vote_expiry`, so verifiers re-verify
/// long after the round stops taking votes; at most `max_round_proof_bytes` per round.
pub const DEFAULT_PROOF_RETENTION_ROUNDS: u64 = 360;

/// Default server limits (the `[server]` table); see [`ServerConfig`] for what each bounds.
pub const DEFAULT_SERVER: ServerConfig = ServerConfig {
    max_concurrent_requests: 256,
    max_streams_per_connection: 128,
    max_event_streams: 1024,
    max_event_streams_per_connection: 16,
    request_timeout: Duration::from_secs(10),
    keepalive_interval: Duration::from_secs(30),
    keepalive_timeout: Duration::from_secs(10),
    max_response_bytes: 4 * 1024 * 1024,
    max_replay_events: 10_000,
    max_concurrent_replays: 4,
    db_max_connections: 16,
    db_acquire_timeout: Duration::from_secs(2),
};

/// Which Bitcoin backend the node follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BitcoinBackendKind {
    /// The in-process regtest chain, validated by Bitcoin Core's consensus engine.
    Embedded,
    /// A Bitcoin Core node over JSON-RPC.
    Rpc,
}

/// The `[bitcoin]` table of the config file.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitcoinFile {
    /// `embedded` or `rpc`.
    pub backend: Option<BitcoinBackendKind>,
    /// JSON-RPC URL of the Bitcoin Core node.
    pub rpc_url: Option<String>,
    /// JSON-RPC user.
    pub rpc_user: Option<String>,
    /// JSON-RPC password.
    pub rpc_password: Option<String>,
    /// Directory of the embedded chain; in memory when absent.
    pub data_dir: Option<PathBuf>,
    /// Milliseconds between polls of the backend.
    pub poll_interval_ms: Option<u64>,
    /// Milliseconds the backend may fail to answer before the node stops closing rounds.
    pub stall_timeout_ms: Option<u64>,
}

/// The `[finality]` table of the config file (PROTOCOL §9–11). `max_active_verifiers` and
/// `min_pub_rand` are not here: they are staking params, versioned in the params file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalityFile {
    /// Milliseconds between two round closings.
    pub round_interval_ms: Option<u64>,
    /// For how many rounds after round h votes on h are accepted.
    pub vote_expiry: Option<u64>,
    /// How far past the current round a randomness commitment may start.
    pub max_start_ahead: Option<u64>,
    /// The liveness window, in rounds.
    pub liveness_window: Option<u64>,
    /// Rounds of the window an active verifier must sign.
    pub liveness_min_signed: Option<u64>,
    /// Rounds a jailed verifier waits before it may ask to be unjailed.
    pub jail_duration: Option<u64>,
    /// Rounds after its close that a round's proof bytes are kept (at least twice
    /// `vote_expiry`); then only the proof ids and verdicts remain.
    pub proof_retention_rounds: Option<u64>,
}

/// The `[checkpoint]` table of the config file (`CHECKPOINTS.md` §13.1): present, the node
/// runs Bitcoin-checked checkpoints. The covenant committee of the recovery leaf, k and U are
/// staking params.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointFile {
    /// The earliest round the genesis may encode (required): the genesis encodes the set of
    /// the first closed round from it on with a non-empty active set.
    pub genesis_round: Option<u64>,
    /// V, in satoshis (default 1,000).
    pub value_sat: Option<u64>,
    /// N: a scheduled checkpoint every N rounds (default 2,160).
    pub interval_rounds: Option<u64>,
    /// R: blocks after which the covenant committee may spend a checkpoint (default U/2).
    pub recovery_blocks: Option<u32>,
}

/// The `[server]` table of the config file: bounds on what clients may make the node do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Calls being handled at once, over all connections; more are refused.
    pub max_concurrent_requests: Option<u64>,
    /// HTTP/2 streams (calls) open at once on one connection.
    pub max_streams_per_connection: Option<u64>,
    /// Events subscriptions open at once, over both services and all connections.
    pub max_event_streams: Option<u64>,
    /// Events subscriptions open at once on one connection.
    pub max_event_streams_per_connection: Option<u64>,
    /// Milliseconds a call may take before it is answered DEADLINE_EXCEEDED.
    pub request_timeout_ms: Option<u64>,
    /// Milliseconds between HTTP/2 keepalive pings to each client.
    pub keepalive_interval_ms: Option<u64>,
    /// Milliseconds a client has to answer a keepalive ping before it is disconnected.
    pub keepalive_timeout_ms: Option<u64>,
    /// Largest response message in bytes; list pages are cut to fit.
    pub max_response_bytes: Option<u64>,
    /// Stored events one subscription replays before it must resubscribe.
    pub max_replay_events: Option<u64>,
    /// Replay queries running at once over all subscriptions.
    pub max_concurrent_replays: Option<u64>,
    /// Database connections of the request handlers (the round closer and the chain follower
    /// have their own).
    pub db_max_connections: Option<u64>,
    /// Milliseconds a handler waits for a database connection before answering UNAVAILABLE.
    pub db_acquire_timeout_ms: Option<u64>,
}

/// The resolved server limits. Every bound is at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Calls being handled at once, over all connections; more are refused RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// HTTP/2 streams open at once on one connection (the HTTP/2 setting).
    pub max_streams_per_connection: u32,
    /// Events subscriptions open at once, over both services and all connections.
    pub max_event_streams: usize,
    /// Events subscriptions open at once on one connection.
    pub max_event_streams_per_connection: usize,
    /// How long a call may take (to its response, or to a stream's first message).
    pub request_timeout: Duration,
    /// Between two HTTP/2 keepalive pings.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered.
    pub keepalive_timeout: Duration,
    /// Largest response message in bytes.
    pub max_response_bytes: usize,
    /// Stored events one subscription replays before it must resubscribe.
    pub max_replay_events: u64,
    /// Replay queries running at once over all subscriptions.
    pub max_concurrent_replays: usize,
    /// Database connections of the request handlers.
    pub db_max_connections: u32,
    /// How long a handler waits for a database connection.
    pub db_acquire_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        DEFAULT_SERVER
    }
}

/// The resolved finality settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalityConfig {
    /// Between two round closings.
    pub round_interval: Duration,
    /// For how many rounds after round h votes on h are accepted.
    pub vote_expiry: u64,
    /// How far past the current round a randomness commitment may start.
    pub max_start_ahead: u64,
    /// Liveness jailing.
    pub liveness: LivenessRules,
    /// Rounds after its close that a round's proof bytes are kept.
    pub proof_retention_rounds: u64,
    /// Bitcoin-checked checkpoints, when configured.
    pub checkpoint: Option<CheckpointConfig>,
}

/// The config file, every field optional.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// PostgreSQL URL.
    pub database_url: Option<String>,
    /// gRPC listen address.
    pub grpc_addr: Option<SocketAddr>,
    /// Bitcoin network: bitcoin, testnet, testnet4, signet or regtest.
    pub network: Option<String>,
    /// JSON file with the list of params versions.
    pub params_file: Option<PathBuf>,
    /// Chain id for the signing contexts (PROTOCOL §6).
    pub chain_id: Option<String>,
    /// Module address for the signing contexts.
    pub module_address: Option<String>,
    /// Operations whose signing context is switched off.
    pub disabled_contexts: Option<Vec<String>>,
    /// Bitcoin backend settings.
    #[serde(default)]
    pub bitcoin: BitcoinFile,
    /// Finality settings.
    #[serde(default)]
    pub finality: FinalityFile,
    /// Server limits.
    #[serde(default)]
    pub server: ServerFile,
    /// Bitcoin-checked checkpoints.
    pub checkpoint: Option<CheckpointFile>,
}

/// Command-line flags and their environment variables.
#[derive(Clone, Default, clap::Args)]
pub struct NodeArgs {
    /// TOML configuration file.
    #[arg(long, env = "FIAMMA_NODE_CONFIG")]
    pub config: Option<PathBuf>,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// gRPC listen address.
    #[arg(long, env = "FIAMMA_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// Bitcoin network: bitcoin, testnet, testnet4, signet or regtest.
    #[arg(long, env = "FIAMMA_NETWORK")]
    pub network: Option<String>,
    /// JSON file with the list of params versions.
    #[arg(long, env = "FIAMMA_PARAMS_FILE")]
    pub params_file: Option<PathBuf>,
    /// Chain id for the signing contexts.
    #[arg(long, env = "FIAMMA_CHAIN_ID")]
    pub chain_id: Option<String>,
    /// Bitcoin backend.
    #[arg(long, env = "FIAMMA_BITCOIN_BACKEND", value_enum)]
    pub bitcoin_backend: Option<BitcoinBackendKind>,
    /// Bitcoin Core JSON-RPC URL (rpc backend).
    #[arg(long, env = "FIAMMA_BITCOIN_RPC_URL")]
    pub bitcoin_rpc_url: Option<String>,
    /// Bitcoin Core JSON-RPC user.
    #[arg(long, env = "FIAMMA_BITCOIN_RPC_USER")]
    pub bitcoin_rpc_user: Option<String>,
    /// Bitcoin Core JSON-RPC password.
    #[arg(long, env = "FIAMMA_BITCOIN_RPC_PASSWORD", hide_env_values = true)]
    pub bitcoin_rpc_password: Option<String>,
    /// Milliseconds between two round closings.
    #[arg(long, env = "FIAMMA_ROUND_INTERVAL_MS")]
    pub round_interval_ms: Option<u64>,
    /// Calls handled at once over all connections (`[server] max_concurrent_requests`).
    #[arg(long, env = "FIAMMA_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<u64>,
    /// Milliseconds a call may take (`[server] request_timeout_ms`).
    #[arg(long, env = "FIAMMA_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
}

/// How to reach Bitcoin.
#[derive(Clone, PartialEq, Eq)]
pub enum BitcoinConfig {
    /// The embedded regtest chain, in `data_dir` or in memory.
    Embedded {
        /// Where its blocks live; `None` keeps them in memory.
        data_dir: Option<PathBuf>,
    },
    /// A Bitcoin Core node.
    Rpc {
        /// JSON-RPC URL.
        url: String,
        /// JSON-RPC user.
        user: String,
        /// JSON-RPC password.
        password: String,
    },
}

/// The resolved node configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// PostgreSQL URL.
    pub database_url: String,
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// Bitcoin network.
    pub network: Network,
    /// Params versions file.
    pub params_file: PathBuf,
    /// Chain id for the signing contexts.
    pub chain_id: String,
    /// Module address for the signing contexts.
    pub module_address: String,
    /// Operations whose signing context is switched off.
    pub disabled_contexts: Vec<String>,
    /// Bitcoin backend.
    pub bitcoin: BitcoinConfig,
    /// Milliseconds between polls of the backend.
    pub poll_interval_ms: u64,
    /// Milliseconds the backend may fail to answer before the node stops closing rounds.
    pub stall_timeout_ms: u64,
    /// Finality settings.
    pub finality: FinalityConfig,
    /// Server limits.
    pub server: ServerConfig,
}

/// Why the configuration cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML of the expected shape.
    #[error("config file {path} is invalid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: Box<toml::de::Error>,
    },
    /// A required setting is absent everywhere.
    #[error("{setting} is not set: pass {flag}, set {env}, or set {key} in the config file")]
    Missing {
        /// The setting.
        setting: &'static str,
        /// Its flag.
        flag: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// Its config-file key.
        key: &'static str,
    },
    /// The network name is unknown.
    #[error("unknown bitcoin network {0:?}: use bitcoin, testnet, testnet4, signet or regtest")]
    Network(String),
    /// A finality setting cannot work.
    #[error("finality.{key}: {reason}")]
    Finality {
        /// The config-file key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint setting cannot work.
    #[error("checkpoint.{key}: {reason}")]
    Checkpoint {
        /// The config-file key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A server limit cannot work.
    #[error("server.{key}: {reason}")]
    Server {
        /// The config-file key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The embedded chain only runs regtest.
    #[error(
        "the embedded bitcoin backend runs regtest only, but network is {0}; use the rpc backend"
    )]
    EmbeddedNotRegtest(Network),
}

fn missing(
    setting: &'static str,
    flag: &'static str,
    env: &'static str,
    key: &'static str,
) -> ConfigError {
    ConfigError::Missing {
        setting,
        flag,
        env,
        key,
    }
}

impl ConfigFile {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses config-file text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }
}

impl NodeConfig {
    /// Reads the config file named by the flags (if any) and resolves every setting.
    pub fn from_args(args: &NodeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        Self::resolve(args, file)
    }

    /// Resolves settings: a flag (or its environment variable) wins over the file, the file
    /// over the defaults.
    pub fn resolve(args: &NodeArgs, file: ConfigFile) -> Result<Self, ConfigError> {
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .ok_or_else(|| {
                missing(
                    "database url",
                    "--database-url",
                    "DATABASE_URL",
                    "database_url",
                )
            })?;
        let grpc_addr = args
            .grpc_addr
            .or(file.grpc_addr)
            .unwrap_or(DEFAULT_GRPC_ADDR);
        let network_name = args
            .network
            .clone()
            .or(file.network)
            .unwrap_or_else(|| "regtest".to_owned());
        let network = network_name
            .parse::<Network>()
            .map_err(|_| ConfigError::Network(network_name.clone()))?;
        let params_file = args
            .params_file
            .clone()
            .or(file.params_file)
            .ok_or_else(|| {
                missing(
                    "params file",
                    "--params-file",
                    "FIAMMA_PARAMS_FILE",
                    "params_file",
                )
            })?;
        let chain_id = args
            .chain_id
            .clone()
            .or(file.chain_id)
            .unwrap_or_else(|| format!("fiamma-{network}"));
        let module_address = file.module_address.unwrap_or_default();
        let b = file.bitcoin;
        let kind = args
            .bitcoin_backend
            .or(b.backend)
            .unwrap_or(BitcoinBackendKind::Embedded);
        let bitcoin = match kind {
            BitcoinBackendKind::Embedded => {
                if network != Network::Regtest {
                    return Err(ConfigError::EmbeddedNotRegtest(network));
                }
                BitcoinConfig::Embedded {
                    data_dir: b.data_dir,
                }
            }
            BitcoinBackendKind::Rpc => BitcoinConfig::Rpc {
                url: args.bitcoin_rpc_url.clone().or(b.rpc_url).ok_or_else(|| {
                    missing(
                        "bitcoin rpc url",
                        "--bitcoin-rpc-url",
                        "FIAMMA_BITCOIN_RPC_URL",
                        "bitcoin.rpc_url",
                    )
                })?,
                user: args
                    .bitcoin_rpc_user
                    .clone()
                    .or(b.rpc_user)
                    .unwrap_or_default(),
                password: args
                    .bitcoin_rpc_password
                    .clone()
                    .or(b.rpc_password)
                    .unwrap_or_default(),
            },
        };
        let mut finality = resolve_finality(args, &file.finality)?;
        finality.checkpoint = file
            .checkpoint
            .as_ref()
            .map(resolve_checkpoint)
            .transpose()?;
        let server = resolve_server(args, &file.server)?;
        Ok(NodeConfig {
            database_url,
            grpc_addr,
            network,
            params_file,
            chain_id,
            module_address,
            disabled_contexts: file.disabled_contexts.unwrap_or_default(),
            bitcoin,
            poll_interval_ms: b.poll_interval_ms.unwrap_or(DEFAULT_POLL_INTERVAL_MS),
            stall_timeout_ms: b.stall_timeout_ms.unwrap_or(DEFAULT_STALL_TIMEOUT_MS),
            finality,
            server,
        })
    }
}

/// Resolves the `[server]` table: a flag wins over the file, the file over [`DEFAULT_SERVER`];
/// every limit must be at least 1 and fit its type.
fn resolve_server(args: &NodeArgs, f: &ServerFile) -> Result<ServerConfig, ConfigError> {
    fn pick<T: TryFrom<u64> + Into<u64> + Copy>(
        key: &'static str,
        given: Option<u64>,
        default: T,
    ) -> Result<T, ConfigError> {
        let Some(v) = given else {
            return Ok(default);
        };
        if v == 0 {
            return Err(ConfigError::Server {
                key,
                reason: "must be at least 1".into(),
            });
        }
        T::try_from(v).map_err(|_| ConfigError::Server {
            key,
            reason: format!("{v} is too large"),
        })
    }
    let ms = |key, given: Option<u64>, default: Duration| -> Result<Duration, ConfigError> {
        let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        pick(key, given, default_ms).map(Duration::from_millis)
    };
    let size = |key, given: Option<u64>, default: usize| -> Result<usize, ConfigError> {
        pick(key, given, default as u64).and_then(|v| {
            usize::try_from(v).map_err(|_| ConfigError::Server {
                key,
                reason: format!("{v} is too large"),
            })
        })
    };
    let d = DEFAULT_SERVER;
    Ok(ServerConfig {
        max_concurrent_requests: size(
            "max_concurrent_requests",
            args.max_concurrent_requests.or(f.max_concurrent_requests),
            d.max_concurrent_requests,
        )?,
        max_streams_per_connection: pick(
            "max_streams_per_connection",
            f.max_streams_per_connection,
            d.max_streams_per_connection,
        )?,
        max_event_streams: size(
            "max_event_streams",
            f.max_event_streams,
            d.max_event_streams,
        )?,
        max_event_streams_per_connection: size(
            "max_event_streams_per_connection",
            f.max_event_streams_per_connection,
            d.max_event_streams_per_connection,
        )?,
        request_timeout: ms(
            "request_timeout_ms",
            args.request_timeout_ms.or(f.request_timeout_ms),
            d.request_timeout,
        )?,
        keepalive_interval: ms(
            "keepalive_interval_ms",
            f.keepalive_interval_ms,
            d.keepalive_interval,
        )?,
        keepalive_timeout: ms(
            "keepalive_timeout_ms",
            f.keepalive_timeout_ms,
            d.keepalive_timeout,
        )?,
        max_response_bytes: size(
            "max_response_bytes",
            f.max_response_bytes,
            d.max_response_bytes,
        )?,
        max_replay_events: pick(
            "max_replay_events",
            f.max_replay_events,
            d.max_replay_events,
        )?,
        max_concurrent_replays: size(
            "max_concurrent_replays",
            f.max_concurrent_replays,
            d.max_concurrent_replays,
        )?,
        db_max_connections: pick(
            "db_max_connections",
            f.db_max_connections,
            d.db_max_connections,
        )?,
        db_acquire_timeout: ms(
            "db_acquire_timeout_ms",
            f.db_acquire_timeout_ms,
            d.db_acquire_timeout,
        )?,
    })
}

/// `url` with any password replaced by `***` (`postgres://user:***@host/db`), for logs and
/// `Debug`: the part between `://` and the last `@` before the path is `user[:password]`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// A secret in `Debug` output: whether it is set, never its value.
fn secret(value: Option<&str>) -> &'static str {
    match value {
        Some(v) if !v.is_empty() => "<redacted>",
        _ => "<none>",
    }
}

// The Debug impls below are written out so secrets (the bitcoin RPC password, a password in
// the database URL) never reach logs or panic messages.

impl std::fmt::Debug for BitcoinFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitcoinFile")
            .field("backend", &self.backend)
            .field("rpc_url", &self.rpc_url.as_deref().map(redact_url))
            .field("rpc_user", &self.rpc_user)
            .field("rpc_password", &secret(self.rpc_password.as_deref()))
            .field("data_dir", &self.data_dir)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .finish()
    }
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("grpc_addr", &self.grpc_addr)
            .field("network", &self.network)
            .field("params_file", &self.params_file)
            .field("chain_id", &self.chain_id)
            .field("module_address", &self.module_address)
            .field("disabled_contexts", &self.disabled_contexts)
            .field("bitcoin", &self.bitcoin)
            .field("finality", &self.finality)
            .field("server", &self.server)
            .finish()
    }
}

impl std::fmt::Debug for NodeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeArgs")
            .field("config", &self.config)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("grpc_addr", &self.grpc_addr)
            .field("network", &self.network)
            .field("params_file", &self.params_file)
            .field("chain_id", &self.chain_id)
            .field("bitcoin_backend", &self.bitcoin_backend)
            .field(
                "bitcoin_rpc_url",
                &self.bitcoin_rpc_url.as_deref().map(redact_url),
            )
            .field("bitcoin_rpc_user", &self.bitcoin_rpc_user)
            .field(
                "bitcoin_rpc_password",
                &secret(self.bitcoin_rpc_password.as_deref()),
            )
            .field("round_interval_ms", &self.round_interval_ms)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

impl std::fmt::Debug for BitcoinConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BitcoinConfig::Embedded { data_dir } => f
                .debug_struct("Embedded")
                .field("data_dir", data_dir)
                .finish(),
            BitcoinConfig::Rpc {
                url,
                user,
                password,
            } => f
                .debug_struct("Rpc")
                .field("url", &redact_url(url))
                .field("user", user)
                .field("password", &secret(Some(password)))
                .finish(),
        }
    }
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("grpc_addr", &self.grpc_addr)
            .field("network", &self.network)
            .field("params_file", &self.params_file)
            .field("chain_id", &self.chain_id)
            .field("module_address", &self.module_address)
            .field("disabled_contexts", &self.disabled_contexts)
            .field("bitcoin", &self.bitcoin)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("finality", &self.finality)
            .field("server", &self.server)
            .finish()
    }
}

fn resolve_finality(args: &NodeArgs, f: &FinalityFile) -> Result<FinalityConfig, ConfigError> {
    let d = DEFAULT_FINALITY;
    let pick = |given: Option<u64>, default: Option<u64>| given.or(default).unwrap_or_default();
    let round_interval_ms = pick(
        args.round_interval_ms.or(f.round_interval_ms),
        d.round_interval_ms,
    );
    if round_interval_ms == 0 {
        return Err(ConfigError::Finality {
            key: "round_interval_ms",
            reason: "must be at least 1".into(),
        });
    }
    let vote_expiry = pick(f.vote_expiry, d.vote_expiry);
    if vote_expiry == 0 {
        return Err(ConfigError::Finality {
            key: "vote_expiry",
            reason: "must be at least 1 round".into(),
        });
    }
    let liveness = LivenessRules::new(
        pick(f.liveness_window, d.liveness_window),
        pick(f.liveness_min_signed, d.liveness_min_signed),
        pick(f.jail_duration, d.jail_duration),
    )
    .map_err(|e| ConfigError::Finality {
        key: "liveness_window",
        reason: e.to_string(),
    })?;
    let proof_retention_rounds = pick(f.proof_retention_rounds, d.proof_retention_rounds);
    // Verifiers re-verify a round's proofs while it takes votes; the margin of one more vote
    // window serves verifiers that fetch late.
    let least_retention = vote_expiry.saturating_mul(2);
    if proof_retention_rounds < least_retention {
        return Err(ConfigError::Finality {
            key: "proof_retention_rounds",
            reason: format!("must be at least twice vote_expiry ({least_retention} rounds)"),
        });
    }
    Ok(FinalityConfig {
        round_interval: Duration::from_millis(round_interval_ms),
        vote_expiry,
        max_start_ahead: pick(f.max_start_ahead, d.max_start_ahead),
        liveness,
        proof_retention_rounds,
        checkpoint: None,
    })
}

/// The `[checkpoint]` table; what depends on the staking params is checked when the node
/// starts ([`CheckpointSettings::new`](crate::node::checkpoint::CheckpointSettings::new)).
fn resolve_checkpoint(f: &CheckpointFile) -> Result<CheckpointConfig, ConfigError> {
    let genesis_round = match f.genesis_round {
        Some(round) if round >= 1 => round,
        Some(_) => {
            return Err(ConfigError::Checkpoint {
                key: "genesis_round",
                reason: "rounds are numbered from 1".into(),
            })
        }
        None => {
            return Err(ConfigError::Checkpoint {
                key: "genesis_round",
                reason: "is required: the earliest round whose set the genesis output may encode"
                    .into(),
            })
        }
    };
    Ok(CheckpointConfig {
        genesis_round,
        value: f
            .value_sat
            .map_or(CheckpointParams::DEFAULT_VALUE, Amount::from_sat),
        interval_rounds: f
            .interval_rounds
            .unwrap_or(CheckpointParams::DEFAULT_INTERVAL_ROUNDS),
        recovery_blocks: f.recovery_blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        database_url = "postgres://file/db"
        grpc_addr = "0.0.0.0:7000"
        network = "regtest"
        params_file = "params.json"
        chain_id = "fiamma-devnet"
        module_address = "fmma1module"
        disabled_contexts = ["fp_pop"]

        [bitcoin]
        backend = "rpc"
        rpc_url = "http://127.0.0.1:18443"
        rpc_user = "u"
        rpc_password = "p"
        poll_interval_ms = 250

        [finality]
        round_interval_ms = 500
        vote_expiry = 4
        liveness_window = 8
        liveness_min_signed = 3
    "#;

    fn file() -> ConfigFile {
        ConfigFile::parse(FILE, Path::new("node.toml")).expect("valid file")
    }

    #[test]
    fn file_values_are_used_when_no_flag_is_given() {
        let c = NodeConfig::resolve(&NodeArgs::default(), file()).expect("complete");
        assert_eq!(c.database_url, "postgres://file/db");
        assert_eq!(c.grpc_addr, "0.0.0.0:7000".parse().expect("addr"));
        assert_eq!(c.network, Network::Regtest);
        assert_eq!(c.chain_id, "fiamma-devnet");
        assert_eq!(c.disabled_contexts, vec!["fp_pop".to_owned()]);
        assert_eq!(c.poll_interval_ms, 250);
        assert_eq!(c.finality.round_interval, Duration::from_millis(500));
        assert_eq!(c.finality.vote_expiry, 4);
        assert_eq!(c.finality.liveness.window(), 8);
        assert_eq!(c.finality.liveness.min_signed(), 3);
        assert_eq!(
            c.finality.liveness.jail_duration(),
            DEFAULT_FINALITY.jail_duration.expect("a default")
        );
        assert_eq!(
            c.bitcoin,
            BitcoinConfig::Rpc {
                url: "http://127.0.0.1:18443".into(),
                user: "u".into(),
                password: "p".into()
            }
        );
    }

    #[test]
    fn flags_win_over_the_file() {
        let args = NodeArgs {
            database_url: Some("postgres://flag/db".into()),
            grpc_addr: Some("127.0.0.1:1".parse().expect("addr")),
            bitcoin_backend: Some(BitcoinBackendKind::Embedded),
            ..NodeArgs::default()
        };
        let c = NodeConfig::resolve(&args, file()).expect("complete");
        assert_eq!(c.database_url, "postgres://flag/db");
        assert_eq!(c.grpc_addr.port(), 1);
        assert_eq!(c.bitcoin, BitcoinConfig::Embedded { data_dir: None });
        let args = NodeArgs {
            round_interval_ms: Some(20),
            ..args
        };
        let c = NodeConfig::resolve(&args, file()).expect("complete");
        assert_eq!(c.finality.round_interval, Duration::from_millis(20));
    }

    #[test]
    fn finality_settings_that_cannot_work_are_refused() {
        let args = NodeArgs {
            database_url: Some("postgres://x".into()),
            params_file: Some("p.json".into()),
            ..NodeArgs::default()
        };
        for (text, key) in [
            ("[finality]\nround_interval_ms = 0", "round_interval_ms"),
            ("[finality]\nvote_expiry = 0", "vote_expiry"),
            (
                "[finality]\nvote_expiry = 10\nproof_retention_rounds = 19",
                "proof_retention_rounds",
            ),
            ("[finality]\nliveness_window = 0", "liveness_window"),
            (
                "[finality]\nliveness_window = 5\nliveness_min_signed = 6",
                "liveness_window",
            ),
        ] {
            let file = ConfigFile::parse(text, Path::new("n.toml")).expect("valid toml");
            match NodeConfig::resolve(&args, file) {
                Err(ConfigError::Finality { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn checkpoint_table_is_resolved_and_refused_without_a_genesis_round() {
        let args = NodeArgs {
            database_url: Some("postgres://x".into()),
            params_file: Some("p.json".into()),
            ..NodeArgs::default()
        };
        let resolve = |text: &str| {
            NodeConfig::resolve(
                &args,
                ConfigFile::parse(text, Path::new("n.toml")).expect("valid toml"),
            )
        };
        let none = resolve("").expect("no checkpoints");
        assert_eq!(none.finality.checkpoint, None);
        let c = resolve(
            "[checkpoint]
genesis_round = 5
interval_rounds = 20",
        )
        .expect("checkpoints")
        .finality
        .checkpoint
        .expect("configured");
        assert_eq!(
            c,
            CheckpointConfig {
                genesis_round: 5,
                value: CheckpointParams::DEFAULT_VALUE,
                interval_rounds: 20,
                recovery_blocks: None,
            }
        );
        for text in [
            "[checkpoint]
interval_rounds = 20",
            "[checkpoint]
genesis_round = 0",
        ] {
            match resolve(text) {
                Err(ConfigError::Checkpoint { key, .. }) => assert_eq!(key, "genesis_round"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(ConfigFile::parse(
            "[checkpoint]
genesis = 1",
            Path::new("n.toml")
        )
        .is_err());
    }

    #[test]
    fn missing_settings_say_how_to_set_them() {
        let err = NodeConfig::resolve(&NodeArgs::default(), ConfigFile::default())
            .expect_err("no database url");
        let text = err.to_string();
        assert!(
            text.contains("--database-url") && text.contains("DATABASE_URL"),
            "{text}"
        );
        let args = NodeArgs {
            database_url: Some("postgres://x".into()),
            params_file: Some("p.json".into()),
            bitcoin_backend: Some(BitcoinBackendKind::Rpc),
            ..NodeArgs::default()
        };
        let err = NodeConfig::resolve(&args, ConfigFile::default()).expect_err("no rpc url");
        assert!(err.to_string().contains("bitcoin.rpc_url"), "{err}");
    }

    #[test]
    fn embedded_backend_requires_regtest_and_unknown_keys_are_refused() {
        let args = NodeArgs {
            database_url: Some("postgres://x".into()),
            params_file: Some("p.json".into()),
            network: Some("signet".into()),
            ..NodeArgs::default()
        };
        assert!(matches!(
            NodeConfig::resolve(&args, ConfigFile::default()),
            Err(ConfigError::EmbeddedNotRegtest(Network::Signet))
        ));
        let bad = ConfigFile::parse("databse_url = \"x\"", Path::new("n.toml"));
        assert!(
            matches!(bad, Err(ConfigError::Parse { .. })),
            "a misspelt key is an error"
        );
        let args = NodeArgs {
            network: Some("moon".into()),
            ..args
        };
        assert!(matches!(
            NodeConfig::resolve(&args, ConfigFile::default()),
            Err(ConfigError::Network(n)) if n == "moon"
        ));
    }

    #[test]
    fn server_limits_come_from_the_file_and_flags_and_zero_is_refused() {
        let args = NodeArgs {
            database_url: Some("postgres://x".into()),
            params_file: Some("p.json".into()),
            ..NodeArgs::default()
        };
        let c = NodeConfig::resolve(&args, ConfigFile::default()).expect("complete");
        assert_eq!(c.server, DEFAULT_SERVER);
        let text = "[server]\nmax_concurrent_requests = 8\nrequest_timeout_ms = 1500\n\
                    max_event_streams = 3\ndb_acquire_timeout_ms = 100";
        let file = ConfigFile::parse(text, Path::new("n.toml")).expect("valid toml");
        let c = NodeConfig::resolve(&args, file.clone()).expect("complete");
        assert_eq!(c.server.max_concurrent_requests, 8);
        assert_eq!(c.server.request_timeout, Duration::from_millis(1500));
        assert_eq!(c.server.max_event_streams, 3);
        assert_eq!(c.server.db_acquire_timeout, Duration::from_millis(100));
        let flags = NodeArgs {
            max_concurrent_requests: Some(2),
            ..args.clone()
        };
        let c = NodeConfig::resolve(&flags, file).expect("complete");
        assert_eq!(c.server.max_concurrent_requests, 2);
        for key in [
            "max_concurrent_requests",
            "max_streams_per_connection",
            "max_response_bytes",
            "db_max_connections",
        ] {
            let file = ConfigFile::parse(&format!("[server]\n{key} = 0"), Path::new("n.toml"))
                .expect("valid toml");
            match NodeConfig::resolve(&args, file) {
                Err(e @ ConfigError::Server { key: k, .. }) => {
                    assert_eq!(k, key);
                    assert!(e.to_string().contains(key), "{e}");
                }
                other => panic!("{key}: {other:?}"),
            }
        }
        let file = ConfigFile::parse(
            "[server]\nmax_streams_per_connection = 5000000000",
            Path::new("n.toml"),
        )
        .expect("valid toml");
        assert!(matches!(
            NodeConfig::resolve(&args, file),
            Err(ConfigError::Server {
                key: "max_streams_per_connection",
                ..
            })
        ));
    }

    #[test]
    fn secrets_never_appear_in_debug() {
        let text = "database_url = \"postgres://admin:hunter2db@db.example:5432/fiamma\"\n\
                    params_file = \"p.json\"\n[bitcoin]\nbackend = \"rpc\"\n\
                    rpc_url = \"http://rpcuser:urlsecret@127.0.0.1:18443/\"\n\
                    rpc_user = \"rpcuser\"\nrpc_password = \"hunter2rpc\"\n";
        let file = ConfigFile::parse(text, Path::new("n.toml")).expect("valid toml");
        let args = NodeArgs {
            bitcoin_rpc_password: Some("hunter2flag".into()),
            database_url: Some("postgres://u:hunter2flagdb@h/db".into()),
            ..NodeArgs::default()
        };
        let config = NodeConfig::resolve(&args, file.clone()).expect("complete");
        for shown in [
            format!("{file:?}"),
            format!("{args:?}"),
            format!("{config:?}"),
            format!("{:#?}", config.bitcoin),
        ] {
            for secret in ["hunter2", "urlsecret"] {
                assert!(!shown.contains(secret), "{secret} shown in {shown}");
            }
            assert!(
                shown.contains("<redacted>") || shown.contains(":***@"),
                "{shown}"
            );
        }
        assert!(format!("{config:?}").contains("postgres://u:***@h/db"));
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("postgres://h/a@b"), "postgres://h/a@b");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
