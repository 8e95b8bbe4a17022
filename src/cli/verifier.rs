//! `fiamma verifier`: a verifier operator's own program. `keys` manages the verifier's encrypted
//! keystore, `register` sends CreateVerifier, `run` is the voting daemon, `slashing-protection`
//! moves its protection records between stores, `status` reads its local store.

use std::path::{Path, PathBuf};

use bitcoin::hashes::{hash160, Hash};
use fiamma_proto::codec::{create_verifier_request, PopFormat};
use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use fiamma_role::daemon::Shutdown;
use fiamma_staking::account::{Account, ACCOUNT_HRP};
use fiamma_verifier::config::{VerifierConfig, PASSPHRASE_ENV, ROLE};
use fiamma_verifier::interchange::{self, Interchange};
use fiamma_verifier::store::{Network, VerifierStore};

use super::keys::{KeyRole, KeysCommand};
use super::CliError;

/// The verifier's keystore role.
const KEYS: KeyRole = KeyRole {
    role: ROLE,
    passphrase_env: PASSPHRASE_ENV,
    prompt: "Verifier keystore passphrase: ",
};

/// `fiamma verifier …`
#[derive(Debug, clap::Subcommand)]
pub enum VerifierCommand {
    /// The verifier's key in an encrypted keystore (age, scrypt).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Register the verifier on the node (CreateVerifier with a BIP-340 proof of possession).
    Register {
        /// The daemon's config file (node, contexts, keystore).
        #[arg(long, env = "FIAMMA_VERIFIER_CONFIG")]
        config: PathBuf,
        /// The account the verifier registers with (bech32 fmma…); default: HASH160 of its key.
        #[arg(long)]
        account: Option<String>,
        /// Its name.
        #[arg(long)]
        moniker: String,
        /// Free text.
        #[arg(long, default_value = "")]
        details: String,
        /// Its website.
        #[arg(long, default_value = "")]
        website: String,
        /// Its commission, a decimal in [0, 1].
        #[arg(long, default_value = "0.05")]
        commission: String,
        /// Prove possession with a BIP-322 signature by the key's P2TR address on this Bitcoin
        /// network (bitcoin, testnet, signet, regtest) instead of a BIP-340 signature.
        #[arg(long)]
        bip322_network: Option<bitcoin::Network>,
    },
    /// Run the voting daemon.
    Run {
        /// The daemon's config file.
        #[arg(long, env = "FIAMMA_VERIFIER_CONFIG")]
        config: PathBuf,
        /// This key never signed on the configured network: start its slashing protection.
        /// Without it the daemon refuses to sign with a store that has no record of the network.
        #[arg(long)]
        new_network: bool,
    },
    /// Move slashing-protection records between stores (JSON, EIP-3076 style).
    #[command(subcommand)]
    SlashingProtection(ProtectionCommand),
    /// Registration, power, committed-until round, votes, missed rounds and disagreements.
    Status {
        /// The daemon's config file.
        #[arg(long, env = "FIAMMA_VERIFIER_CONFIG")]
        config: PathBuf,
        /// How many recent disagreements to list.
        #[arg(long, default_value_t = 20)]
        disagreements: u32,
    },
}

/// `fiamma verifier slashing-protection …`
#[derive(Debug, clap::Subcommand)]
pub enum ProtectionCommand {
    /// Write every recorded network, commitment and signed round to a JSON file.
    Export {
        /// The daemon's config file (its store).
        #[arg(long, env = "FIAMMA_VERIFIER_CONFIG")]
        config: PathBuf,
        /// The file to write.
        #[arg(long)]
        file: PathBuf,
    },
    /// Merge a JSON file into the store (stop the daemon first): only adds; refuses a file that
    /// disagrees with what is recorded.
    Import {
        /// The daemon's config file (its store).
        #[arg(long, env = "FIAMMA_VERIFIER_CONFIG")]
        config: PathBuf,
        /// The file to read.
        #[arg(long)]
        file: PathBuf,
    },
}

/// Runs `fiamma verifier …`.
///
/// # Errors
/// [`CliError`].
pub async fn run(cmd: VerifierCommand) -> Result<(), CliError> {
    match cmd {
        VerifierCommand::Keys(keys) => super::keys::run(keys, &KEYS),
        VerifierCommand::Register {
            config,
            account,
            moniker,
            details,
            website,
            commission,
            bip322_network,
        } => {
            let description = pb::Description {
                moniker,
                details,
                website,
                ..pb::Description::default()
            };
            let format = bip322_network.map_or(PopFormat::Bip340, PopFormat::Bip322P2tr);
            register(
                &config,
                account.as_deref(),
                description,
                &commission,
                format,
            )
            .await
        }
        VerifierCommand::Run {
            config,
            new_network,
        } => {
            super::init_logging();
            fiamma_verifier::daemon::run(&config, new_network, Shutdown::on_signals()).await?;
            Ok(())
        }
        VerifierCommand::SlashingProtection(ProtectionCommand::Export { config, file }) => {
            let store = open_store(&config).await?;
            let data = interchange::export(&store).await?;
            let text = serde_json::to_string_pretty(&data)?;
            std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
            let rounds: usize = data.data.iter().map(|d| d.signed_rounds.len()).sum();
            println!(
                "exported {} network(s), {rounds} signed round(s) to {}",
                data.data.len(),
                file.display()
            );
            Ok(())
        }
        VerifierCommand::SlashingProtection(ProtectionCommand::Import { config, file }) => {
            let store = open_store(&config).await?;
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let data: Interchange = serde_json::from_str(&text).map_err(|e| {
                format!("{} is not a slashing-protection file: {e}", file.display())
            })?;
            let done = interchange::import(&store, &data).await?;
            println!(
                "imported {} network(s), {} commitment(s), {} signed round(s)",
                done.networks, done.commitments, done.signed_rounds
            );
            Ok(())
        }
        VerifierCommand::Status {
            config,
            disagreements,
        } => status(&config, disagreements).await,
    }
}

async fn open_store(config: &Path) -> Result<VerifierStore, CliError> {
    let config = VerifierConfig::load(config)?;
    Ok(VerifierStore::open(&config.store_url()).await?)
}

async fn register(
    config: &Path,
    account: Option<&str>,
    description: pb::Description,
    commission: &str,
    format: PopFormat,
) -> Result<(), CliError> {
    let config = VerifierConfig::load(config)?;
    let keypair = fiamma_verifier::daemon::open_key(&config)?;
    let account = match account {
        Some(text) => {
            Account::from_bech32(text, ACCOUNT_HRP).map_err(|e| format!("account {text:?}: {e}"))?
        }
        None => {
            Account(hash160::Hash::hash(&keypair.x_only_public_key().0.serialize()).to_byte_array())
        }
    };
    let request = create_verifier_request(
        &keypair,
        &account,
        description,
        commission,
        &config.contexts(),
        format,
    )?;
    let channel = tonic::transport::Endpoint::from_shared(config.node.clone())
        .map_err(|e| format!("node endpoint {:?}: {e}", config.node))?
        .timeout(config.call_timeout())
        .connect()
        .await
        .map_err(|e| format!("node {}: {e}", config.node))?;
    StakingClient::new(channel)
        .create_verifier(request)
        .await
        .map_err(|s| format!("CreateVerifier refused: {:?}: {}", s.code(), s.message()))?;
    println!(
        "registered verifier {} (account {})",
        keypair.x_only_public_key().0,
        account.to_bech32(ACCOUNT_HRP)?
    );
    Ok(())
}

async fn status(config: &Path, limit: u32) -> Result<(), CliError> {
    let config = VerifierConfig::load(config)?;
    let store = VerifierStore::open(&config.store_url()).await?;
    let network = Network {
        chain_id: config.chain_id.clone(),
        module_address: config.module_address.clone(),
    };
    let summary = store.summary(&network, limit).await?;
    println!("network: {network}");
    match &summary.progress {
        Some(p) => {
            let age = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX) - p.last_step_at)
                .unwrap_or(0);
            println!("registration: {}", p.status);
            println!("power: {} sat", p.power_sat);
            println!("current round: {} (last pass {age} s ago)", p.current_round);
            println!("committed until round: {}", p.committed_until);
            println!("missed rounds: {}", p.missed_rounds);
        }
        None => println!("the daemon has not completed a pass yet"),
    }
    match summary.last_signed {
        Some(r) => println!("last voted round: {r} ({} rounds signed)", summary.signed),
        None => println!("last voted round: none"),
    }
    println!("disagreements: {}", summary.disagreements);
    for d in &summary.recent_disagreements {
        println!("  round {} [{}]: {}", d.round, d.kind, d.reason);
    }
    Ok(())
}
