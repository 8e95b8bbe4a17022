//! `fiamma node` configuration: a TOML file, overridden by environment variables, overridden
//! by command-line flags (clap reads each flag's environment variable, and a flag given on
//! the command line wins over it).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcoin::Network;
use fiamma_finality::rounds::LivenessRules;
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
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
}

/// The config file, every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
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
}

/// Command-line flags and their environment variables.
#[derive(Debug, Clone, Default, clap::Args)]
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
}

/// How to reach Bitcoin.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
        let finality = resolve_finality(args, &file.finality)?;
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
        })
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
}
