//! `fiamma <role> keys`: a role's BTC key in an encrypted keystore (age, scrypt), the same for
//! every role program (covenant member, verifier).

use std::path::PathBuf;

use bitcoin::secp256k1::{Keypair, SecretKey, SECP256K1};
use fiamma_role::keystore::{Keystore, DEFAULT_WORK_FACTOR};
use fiamma_role::passphrase::PassphraseSource;

use super::CliError;

/// Which role's keystore a `keys` command works on.
#[derive(Debug, Clone, Copy)]
pub struct KeyRole {
    /// The role name written in the keystore.
    pub role: &'static str,
    /// The environment variable a passphrase may come from.
    pub passphrase_env: &'static str,
    /// The terminal prompt.
    pub prompt: &'static str,
}

/// `fiamma <role> keys …`
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
    #[arg(long)]
    pub keystore: PathBuf,
    /// A file holding the passphrase; else the role's passphrase variable
    /// (FIAMMA_COVENANT_PASSPHRASE, FIAMMA_VERIFIER_PASSPHRASE), else a prompt.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

impl KeystoreArgs {
    /// Where the passphrase comes from for `role`.
    pub fn source(&self, role: &KeyRole) -> PassphraseSource {
        PassphraseSource::choose(self.passphrase_file.clone(), role.passphrase_env)
    }

    /// The keystore of `role`, opened with its passphrase.
    ///
    /// # Errors
    /// [`CliError`] when the passphrase cannot be read or does not open the keystore.
    pub fn open(&self, role: &KeyRole) -> Result<Keypair, CliError> {
        let passphrase = self.source(role).read(role.prompt, role.passphrase_env)?;
        Ok(Keystore::at(&self.keystore, role.role).open(&passphrase)?)
    }
}

/// Runs `fiamma <role> keys …`.
///
/// # Errors
/// [`CliError`].
pub fn run(cmd: KeysCommand, role: &KeyRole) -> Result<(), CliError> {
    match cmd {
        KeysCommand::New {
            keystore,
            work_factor,
        } => {
            let secret = SecretKey::new(&mut rand::thread_rng());
            create(&keystore, role, &secret, work_factor)
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
            create(&keystore, role, &secret, work_factor)
        }
        KeysCommand::Show { keystore, check } => {
            let store = Keystore::at(&keystore.keystore, role.role);
            let public = store.public_key()?;
            if check {
                keystore.open(role)?;
                println!("{public} (keystore opens)");
            } else {
                println!("{public}");
            }
            Ok(())
        }
    }
}

fn create(
    args: &KeystoreArgs,
    role: &KeyRole,
    secret: &SecretKey,
    work_factor: u8,
) -> Result<(), CliError> {
    let store = Keystore::at(&args.keystore, role.role);
    let passphrase = args.source(role).read_new(role.passphrase_env)?;
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
