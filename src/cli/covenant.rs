//! `fiamma covenant`: a covenant committee member's own program. `keys` manages the member's
//! encrypted keystore, `run` is the co-signing daemon, `status` reads its local store.

use std::path::PathBuf;

use bitcoin::secp256k1::{SecretKey, SECP256K1};
use fiamma_covenant_member::config::{MemberConfig, PASSPHRASE_ENV, ROLE};
use fiamma_covenant_member::store::MemberStore;
use fiamma_role::daemon::Shutdown;
use fiamma_role::keystore::{Keystore, DEFAULT_WORK_FACTOR};
use fiamma_role::passphrase::PassphraseSource;

use super::CliError;

/// `fiamma covenant …`
#[derive(Debug, clap::Subcommand)]
pub enum CovenantCommand {
    /// The member's key in an encrypted keystore (age, scrypt).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run the co-signing daemon.
    Run {
        /// The daemon's config file.
        #[arg(long, env = "FIAMMA_COVENANT_CONFIG")]
        config: PathBuf,
    },
    /// What the daemon signed and refused, and how far behind the node it is.
    Status {
        /// The daemon's config file.
        #[arg(long, env = "FIAMMA_COVENANT_CONFIG")]
        config: PathBuf,
        /// How many recent refusals to list.
        #[arg(long, default_value_t = 20)]
        refusals: u32,
    },
}

/// `fiamma covenant keys …`
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a new key in a new keystore and print its public key.
    New {
        #[command(flatten)]
        keystore: KeystoreArgs,
        /// scrypt work factor (log2 N), 10..=22.
        #[arg(long, default_value_t = DEFAULT_WORK_FACTOR)]
        work_factor: u8,
    },
    /// Put an existing secret key (64 hex characters, read from a file) into a new keystore.
    Import {
        #[command(flatten)]
        keystore: KeystoreArgs,
        /// File holding the secret key as 64 hex characters.
        #[arg(long)]
        secret_file: PathBuf,
        /// scrypt work factor (log2 N), 10..=22.
        #[arg(long, default_value_t = DEFAULT_WORK_FACTOR)]
        work_factor: u8,
    },
    /// Print the public key; with --check, also open the keystore with the passphrase.
    Show {
        #[command(flatten)]
        keystore: KeystoreArgs,
        /// Decrypt the keystore to prove the passphrase opens it.
        #[arg(long)]
        check: bool,
    },
}

/// Where the keystore is and how its passphrase is given.
#[derive(Debug, clap::Args)]
pub struct KeystoreArgs {
    /// The keystore's .age file (its public key is beside it, as .pub).
    #[arg(long, env = "FIAMMA_COVENANT_KEYSTORE")]
    pub keystore: PathBuf,
    /// A file holding the passphrase; else FIAMMA_COVENANT_PASSPHRASE, else a prompt.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

impl KeystoreArgs {
    fn source(&self) -> PassphraseSource {
        PassphraseSource::choose(self.passphrase_file.clone(), PASSPHRASE_ENV)
    }
}

/// Runs `fiamma covenant …`.
pub async fn run(cmd: CovenantCommand) -> Result<(), CliError> {
    match cmd {
        CovenantCommand::Keys(keys) => run_keys(keys),
        CovenantCommand::Run { config } => {
            super::init_logging();
            fiamma_covenant_member::daemon::run(&config, Shutdown::on_signals()).await?;
            Ok(())
        }
        CovenantCommand::Status { config, refusals } => status(&config, refusals).await,
    }
}

fn run_keys(cmd: KeysCommand) -> Result<(), CliError> {
    match cmd {
        KeysCommand::New {
            keystore,
            work_factor,
        } => {
            let secret = SecretKey::new(&mut rand::thread_rng());
            create(&keystore, &secret, work_factor)
        }
        KeysCommand::Import {
            keystore,
            secret_file,
            work_factor,
        } => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(&secret_file)
                    .map_err(|e| format!("secret key file {}: {e}", secret_file.display()))?,
            );
            let bytes = zeroize::Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
                format!(
                    "secret key file {} does not hold 64 hex characters",
                    secret_file.display()
                )
            })?);
            let secret = SecretKey::from_slice(&bytes).map_err(|_| {
                format!(
                    "secret key file {} does not hold a valid secp256k1 secret key",
                    secret_file.display()
                )
            })?;
            create(&keystore, &secret, work_factor)
        }
        KeysCommand::Show { keystore, check } => {
            let store = Keystore::at(&keystore.keystore, ROLE);
            let public = store.public_key()?;
            if check {
                let passphrase = keystore
                    .source()
                    .read("Covenant keystore passphrase: ", PASSPHRASE_ENV)?;
                store.open(&passphrase)?;
                println!("{public} (keystore opens)");
            } else {
                println!("{public}");
            }
            Ok(())
        }
    }
}

fn create(args: &KeystoreArgs, secret: &SecretKey, work_factor: u8) -> Result<(), CliError> {
    let store = Keystore::at(&args.keystore, ROLE);
    let passphrase = args.source().read_new(PASSPHRASE_ENV)?;
    let public = store.create(secret, &passphrase, work_factor)?;
    debug_assert_eq!(public, secret.x_only_public_key(SECP256K1).0);
    println!("{public}");
    eprintln!(
        "keystore written to {} (public key in {}); back up the .age file and its passphrase",
        store.secret_path().display(),
        store.public_path().display()
    );
    Ok(())
}

async fn status(config: &std::path::Path, refusals: u32) -> Result<(), CliError> {
    let config = MemberConfig::load(config)?;
    let store = MemberStore::open(&config.store_url()).await?;
    let summary = store.summary(refusals).await?;
    println!(
        "signed: {} (delivered to the node: {})",
        summary.signed, summary.delivered
    );
    match &summary.progress {
        Some(p) => {
            let age = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64 - p.last_step_at)
                .unwrap_or(0);
            println!(
                "last pass: {age} s ago, {} delegations waiting for this member",
                p.pending_seen
            );
            println!("node events acted on: up to {}", p.last_event_sequence);
            if let Some(problem) = &p.params_problem {
                println!("NOT SIGNING: {problem}");
            }
        }
        None => println!("the daemon has not completed a pass yet"),
    }
    println!("refused: {}", summary.refusals.len());
    for r in &summary.refusals {
        println!(
            "  {} [{}] x{}: {}",
            r.staking_txid, r.kind, r.attempts, r.reason
        );
    }
    Ok(())
}
