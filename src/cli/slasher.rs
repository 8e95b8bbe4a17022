//! `fiamma slasher`: anyone's program that turns the key a slashed verifier revealed into
//! confirmed slashing transactions. `run` is the daemon, `status` reads its local store.

use std::path::{Path, PathBuf};

use fiamma_role::daemon::Shutdown;
use fiamma_slasher::config::SlasherConfig;
use fiamma_slasher::store::SlasherStore;

use super::CliError;

/// `fiamma slasher …`
#[derive(Debug, clap::Subcommand)]
pub enum SlasherCommand {
    /// Run the slashing daemon.
    Run {
        /// The daemon's config file.
        #[arg(long, env = "FIAMMA_SLASHER_CONFIG")]
        config: PathBuf,
    },
    /// Slashed verifiers, each delegation's state, and the slashing transactions broadcast.
    Status {
        /// The daemon's config file.
        #[arg(long, env = "FIAMMA_SLASHER_CONFIG")]
        config: PathBuf,
    },
}

/// Runs `fiamma slasher …`.
///
/// # Errors
/// [`CliError`].
pub async fn run(cmd: SlasherCommand) -> Result<(), CliError> {
    match cmd {
        SlasherCommand::Run { config } => {
            super::init_logging();
            fiamma_slasher::daemon::run(&config, Shutdown::on_signals()).await?;
            Ok(())
        }
        SlasherCommand::Status { config } => status(&config).await,
    }
}

async fn status(config: &Path) -> Result<(), CliError> {
    let config = SlasherConfig::load(config)?;
    let store = SlasherStore::open(&config.store_url()).await?;
    let s = store.summary().await?;
    match &s.progress {
        Some(p) => {
            let age = fiamma_role::store::unix_now().saturating_sub(p.last_step_at);
            println!(
                "bitcoin tip: {} (last pass {age} s ago); k = {}",
                p.tip_height, config.confirmations
            );
            println!(
                "slashed verifiers: {}; delegations left to slash: {}",
                p.slashed_verifiers, p.open_delegations
            );
        }
        None => println!("the daemon has not completed a pass yet"),
    }
    for v in &s.verifiers {
        println!(
            "verifier {} slashed in round {} ({})",
            v.verifier, v.slashed_in_round, v.reason
        );
    }
    for d in &s.delegations {
        let output = if d.output.is_empty() {
            String::new()
        } else {
            format!(" {} output", d.output)
        };
        let spender = if d.spender_txid.is_empty() {
            String::new()
        } else {
            format!(" by {}", d.spender_txid)
        };
        println!(
            "delegation {}: {}{output}{spender}, {} confirmations{}: {}",
            d.staking_txid,
            d.state,
            d.confirmations,
            if d.done { ", done" } else { "" },
            d.detail
        );
    }
    for t in &s.transactions {
        let said = if t.last_result.is_empty() {
            "accepted"
        } else {
            t.last_result.as_str()
        };
        println!(
            "slashing tx {} ({} output of {}): broadcast {} times, last: {said}",
            t.txid, t.output, t.staking_txid, t.broadcasts
        );
    }
    Ok(())
}
