//! `fiamma covenant`: a covenant committee member's own program. `keys` manages the member's
//! encrypted keystore, `run` is the co-signing daemon, `status` reads its local store.

use std::path::PathBuf;

use fiamma_covenant_member::config::{MemberConfig, PASSPHRASE_ENV, ROLE};
use fiamma_covenant_member::store::MemberStore;
use fiamma_role::daemon::Shutdown;

use super::keys::{KeyRole, KeysCommand};
use super::CliError;

/// The covenant member's keystore role.
const KEYS: KeyRole = KeyRole {
    role: ROLE,
    passphrase_env: PASSPHRASE_ENV,
    prompt: "Covenant keystore passphrase: ",
};

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

/// Runs `fiamma covenant …`.
pub async fn run(cmd: CovenantCommand) -> Result<(), CliError> {
    match cmd {
        CovenantCommand::Keys(keys) => super::keys::run(keys, &KEYS),
        CovenantCommand::Run { config } => {
            super::init_logging();
            fiamma_covenant_member::daemon::run(&config, Shutdown::on_signals()).await?;
            Ok(())
        }
        CovenantCommand::Status { config, refusals } => status(&config, refusals).await,
    }
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
