//! `fiamma sequencer`: a rollup's sequencer. `submit` sends proofs and prints their ids,
//! `anchor` anchors one final round on Bitcoin, `run` is the daemon anchoring each due final
//! round until k deep (and each READY checkpoint as a package), `status` reads its local
//! store, `wallet` makes and reads its wallet, `checkpoint` funds the checkpoint genesis and
//! shows the checkpoint chain.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Amount, Denomination};
use fiamma_proto::client::{CheckpointNode, CheckpointOutputView, GrpcNode};
use fiamma_role::daemon::Shutdown;
use fiamma_role::keystore::DEFAULT_WORK_FACTOR;
use fiamma_role::passphrase::PassphraseSource;
use fiamma_sequencer::config::{SequencerConfig, PASSPHRASE_ENV, WALLET_NAME};
use fiamma_sequencer::daemon::{open_sequencer, open_wallet, rpc_client};
use fiamma_sequencer::proofs::{proof_dirs, read_proof};
use fiamma_sequencer::sequencer::{submit, txid_of, AnchorOutcome, GenesisOutcome};
use fiamma_sequencer::store::SequencerStore;
use fiamma_wallet::wallet::Sealing;
use fiamma_wallet::{Wallet, WalletKeys};

use super::CliError;

/// Rounds beyond the newest closed one that `anchor` is willing to wait for.
const MAX_AHEAD: u64 = 100_000;

/// `fiamma sequencer …`
#[derive(Debug, clap::Subcommand)]
pub enum SequencerCommand {
    /// Submit proofs: each PATH is a proof directory (vk.bitvm, proof.bitvm,
    /// public_input.bitvm) or a directory of them; prints each proof id and its round.
    Submit {
        /// The sequencer's config file.
        #[arg(long, env = "FIAMMA_SEQUENCER_CONFIG")]
        config: PathBuf,
        /// Proof directories, or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Wait until a round is final, check its certificate, broadcast its anchor (once: a
    /// round anchored before gets its recorded transaction again); prints the txid.
    Anchor {
        /// The sequencer's config file.
        #[arg(long, env = "FIAMMA_SEQUENCER_CONFIG")]
        config: PathBuf,
        /// The round.
        #[arg(long)]
        round: u64,
        /// How long to wait for the round to become final, in seconds.
        #[arg(long, default_value_t = 600)]
        wait_secs: u64,
    },
    /// Run the daemon: anchor each due final round until k deep.
    Run {
        /// The sequencer's config file.
        #[arg(long, env = "FIAMMA_SEQUENCER_CONFIG")]
        config: PathBuf,
    },
    /// Progress, the anchors and their depth, and the proofs submitted.
    Status {
        /// The sequencer's config file.
        #[arg(long, env = "FIAMMA_SEQUENCER_CONFIG")]
        config: PathBuf,
    },
    /// The wallet that pays for anchors.
    #[command(subcommand)]
    Wallet(SequencerWalletCommand),
    /// Bitcoin-checked checkpoints: fund the genesis, show the chain.
    #[command(subcommand)]
    Checkpoint(SequencerCheckpointCommand),
}

/// `fiamma sequencer checkpoint …`
#[derive(Debug, clap::Subcommand)]
pub enum SequencerCheckpointCommand {
    /// Once round h₀ is closed, pay V to the genesis script from the wallet, wait until it is
    /// k deep, and register it with the node; prints the genesis outpoint. Running it again
    /// never pays twice: the funding is recorded before it is sent.
    Genesis {
        /// The sequencer's config file.
        #[arg(long, env = "FIAMMA_SEQUENCER_CONFIG")]
        config: PathBuf,
        /// How long to wait for the funding to be k deep, in seconds.
        #[arg(long, default_value_t = 7_200)]
        wait_secs: u64,
    },
    /// The checkpoint chain as the node follows it (genesis, base, newest round) and the
    /// packages this sequencer sent.
    Status {
        /// The sequencer's config file.
        #[arg(long, env = "FIAMMA_SEQUENCER_CONFIG")]
        config: PathBuf,
    },
}

/// `fiamma sequencer wallet …`
#[derive(Debug, clap::Subcommand)]
pub enum SequencerWalletCommand {
    /// A new wallet from a fresh 24-word mnemonic, sealed at `wallet_secret` (shown once:
    /// write it down).
    Create {
        /// The sequencer's config file.
        #[arg(long, env = "FIAMMA_SEQUENCER_CONFIG")]
        config: PathBuf,
        /// scrypt work factor (log2 N) of the sealed secret.
        #[arg(long, default_value_t = DEFAULT_WORK_FACTOR)]
        work_factor: u8,
    },
    /// The wallet of an existing BIP-39 mnemonic (read from a file, sealed at
    /// `wallet_secret`): the sequencer signs its anchors, so it holds the secret.
    Import {
        /// The sequencer's config file.
        #[arg(long, env = "FIAMMA_SEQUENCER_CONFIG")]
        config: PathBuf,
        /// A file holding the mnemonic.
        #[arg(long)]
        mnemonic_file: PathBuf,
        /// scrypt work factor (log2 N) of the sealed secret.
        #[arg(long, default_value_t = DEFAULT_WORK_FACTOR)]
        work_factor: u8,
    },
    /// A fresh receiving address, to fund the wallet.
    Address {
        /// The sequencer's config file.
        #[arg(long, env = "FIAMMA_SEQUENCER_CONFIG")]
        config: PathBuf,
    },
    /// Sync over the Bitcoin node's JSON-RPC and show the balance.
    Balance {
        /// The sequencer's config file.
        #[arg(long, env = "FIAMMA_SEQUENCER_CONFIG")]
        config: PathBuf,
    },
}

/// Runs `fiamma sequencer …`.
///
/// # Errors
/// [`CliError`].
pub async fn run(cmd: SequencerCommand) -> Result<(), CliError> {
    match cmd {
        SequencerCommand::Submit { config, paths } => submit_paths(&config, &paths).await,
        SequencerCommand::Anchor {
            config,
            round,
            wait_secs,
        } => anchor(&config, round, Duration::from_secs(wait_secs)).await,
        SequencerCommand::Run { config } => {
            super::init_logging();
            fiamma_sequencer::daemon::run(&config, Shutdown::on_signals()).await?;
            Ok(())
        }
        SequencerCommand::Status { config } => status(&config).await,
        SequencerCommand::Wallet(w) => wallet(w).await,
        SequencerCommand::Checkpoint(c) => checkpoint(c).await,
    }
}

async fn checkpoint(cmd: SequencerCheckpointCommand) -> Result<(), CliError> {
    match cmd {
        SequencerCheckpointCommand::Genesis { config, wait_secs } => {
            let config = SequencerConfig::load(&config)?;
            let sequencer = open_sequencer(&config).await?;
            let genesis = match sequencer
                .checkpoint_genesis(Duration::from_secs(wait_secs))
                .await?
            {
                GenesisOutcome::AlreadyRegistered(g) => {
                    eprintln!("the node has its genesis already");
                    g
                }
                GenesisOutcome::Registered(g) => g,
            };
            println!("{}", genesis.outpoint);
            Ok(())
        }
        SequencerCheckpointCommand::Status { config } => {
            let config = SequencerConfig::load(&config)?;
            let node = GrpcNode::connect_lazy(&config.node, config.call_timeout())?;
            let Some(view) = node.checkpoints().await? else {
                return Err("the node runs without checkpoints".into());
            };
            let output = |o: &CheckpointOutputView| {
                format!(
                    "{} (round {}, height {}, kind {})",
                    o.outpoint, o.round, o.height, o.kind
                )
            };
            let p = &view.params;
            println!(
                "params: genesis round {}, value {}, every {} rounds, k = {}, recovery {} blocks",
                p.genesis_round,
                p.value.to_sat(),
                p.interval_rounds,
                p.confirmation_depth,
                p.recovery_blocks
            );
            match (&view.genesis, &view.genesis_script) {
                (Some(g), _) => println!("genesis: {}", output(g)),
                (None, Some((h0, script))) => println!(
                    "genesis: not registered; round {h0}'s set: pay {} sat to {script}",
                    p.value.to_sat()
                ),
                (None, None) => println!("genesis: round {} not closed yet", p.genesis_round),
            }
            if let Some(b) = &view.base {
                println!("base: {}", output(b));
            }
            if let Some(r) = &view.latest {
                println!(
                    "latest: round {} {:?} {:?}, candidate {}, base weight signed {}/{}",
                    r.round,
                    r.kind,
                    r.status,
                    r.candidate.compute_txid(),
                    r.base_weight_signed,
                    r.threshold
                );
            }
            if let Some(why) = &view.ended {
                println!("ended: {why}");
            }
            let store = SequencerStore::open(&config.store_url()).await?;
            for k in store.packages(false).await? {
                let said = said(&k.last_result);
                println!(
                    "round {} package {} + child {}: {} confirmations{}{}, broadcast {} times, last: {said}",
                    k.round,
                    k.parent.compute_txid(),
                    k.child.compute_txid(),
                    k.confirmations,
                    if k.done { ", done" } else { "" },
                    if k.superseded { ", superseded" } else { "" },
                    k.broadcasts
                );
            }
            Ok(())
        }
    }
}

async fn submit_paths(config: &Path, paths: &[PathBuf]) -> Result<(), CliError> {
    let config = SequencerConfig::load(config)?;
    // Every path is read and decoded before anything is sent: a typo submits nothing.
    let mut proofs = Vec::new();
    for path in paths {
        for dir in proof_dirs(path)? {
            proofs.push((read_proof(&dir)?, dir));
        }
    }
    let node = GrpcNode::connect_lazy(&config.node, config.call_timeout())?;
    let store = SequencerStore::open(&config.store_url()).await?;
    for (proof, dir) in &proofs {
        let (id, round) = submit(&node, &store, proof)
            .await
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        println!("{} round {round} {}", hex::encode(id), dir.display());
    }
    Ok(())
}

async fn anchor(config: &Path, round: u64, wait: Duration) -> Result<(), CliError> {
    if round == 0 {
        return Err("rounds are numbered from 1".into());
    }
    let config = SequencerConfig::load(config)?;
    let sequencer = open_sequencer(&config).await?;
    let latest = sequencer.node().latest_round().await?;
    // A round this far beyond the newest closed one would only be waited on in vain.
    if round > latest.saturating_add(MAX_AHEAD) {
        return Err(
            format!("round {round} is unknown: the newest closed round is {latest}").into(),
        );
    }
    sequencer.sync_wallet().await?;
    let outcome = sequencer.anchor_when_final(round, wait).await?;
    match &outcome {
        AnchorOutcome::Broadcast { result, .. } if !result.is_empty() => {
            eprintln!("bitcoin refused the anchor for now: {result} (the daemon sends it again)");
        }
        AnchorOutcome::Pending { confirmations, .. } => {
            eprintln!("round {round} was anchored before ({confirmations} confirmations)");
        }
        AnchorOutcome::Done { confirmations, .. } => {
            eprintln!("round {round} was anchored before, {confirmations} confirmations deep");
        }
        AnchorOutcome::Broadcast { .. } => {}
    }
    println!("{}", txid_of(&outcome));
    Ok(())
}

async fn status(config: &Path) -> Result<(), CliError> {
    let config = SequencerConfig::load(config)?;
    let store = SequencerStore::open(&config.store_url()).await?;
    match store.progress().await? {
        Some(p) => {
            let age = fiamma_role::store::unix_now().saturating_sub(p.last_step_at);
            println!(
                "bitcoin tip: {} (last pass {age} s ago); newest closed round {}; next round to \
                 settle {}; anchor every {} round(s), k = {}",
                p.tip_height,
                p.latest_round,
                p.next_round,
                config.anchor_every,
                config.confirmations
            );
        }
        None => println!("the daemon has not completed a pass yet"),
    }
    for a in store.anchors().await? {
        let said = said(&a.last_result);
        println!(
            "round {} anchored by {}: {} confirmations{}, broadcast {} times, last: {said}",
            a.round,
            a.tx.compute_txid(),
            a.confirmations,
            if a.done { ", done" } else { "" },
            a.broadcasts
        );
    }
    for p in store.proofs().await? {
        println!("proof {} in round {}", hex::encode(p.proof_id), p.round);
    }
    Ok(())
}

/// What the Bitcoin node said to the last broadcast, as the status lines show it.
fn said(last_result: &str) -> &str {
    if last_result.is_empty() {
        "accepted"
    } else {
        last_result
    }
}

async fn wallet(cmd: SequencerWalletCommand) -> Result<(), CliError> {
    match cmd {
        SequencerWalletCommand::Create {
            config,
            work_factor,
        } => {
            let keys = WalletKeys::generate()?;
            create_wallet(&config, &keys, work_factor).await?;
            println!("{}", keys.mnemonic_words().unwrap_or_default());
            eprintln!(
                "the 24 words above are the wallet's backup: write them down, keep them offline"
            );
            Ok(())
        }
        SequencerWalletCommand::Import {
            config,
            mnemonic_file,
            work_factor,
        } => {
            let keys = super::staker::mnemonic_keys(&mnemonic_file)?;
            create_wallet(&config, &keys, work_factor).await?;
            println!("wallet imported");
            Ok(())
        }
        SequencerWalletCommand::Address { config } => {
            let config = SequencerConfig::load(&config)?;
            let store = SequencerStore::open(&config.store_url()).await?;
            let mut wallet = open_wallet(&config, &store, false).await?;
            println!("{}", wallet.next_address().await?);
            Ok(())
        }
        SequencerWalletCommand::Balance { config } => {
            let config = SequencerConfig::load(&config)?;
            let store = SequencerStore::open(&config.store_url()).await?;
            let mut wallet = open_wallet(&config, &store, false).await?;
            let height = wallet.sync(Arc::new(rpc_client(&config)?)).await?;
            let b = wallet.balance();
            let show = |a: Amount| {
                a.display_in(Denomination::Bitcoin)
                    .show_denomination()
                    .to_string()
            };
            println!(
                "confirmed {} pending {} immature {} (synced to height {height})",
                show(b.confirmed),
                show(b.trusted_pending + b.untrusted_pending),
                show(b.immature)
            );
            Ok(())
        }
    }
}

/// Creates the sequencer's wallet of `keys` in its store, the secret sealed at
/// `wallet_secret` under a new passphrase.
async fn create_wallet(config: &Path, keys: &WalletKeys, work_factor: u8) -> Result<(), CliError> {
    let config = SequencerConfig::load(config)?;
    let store = SequencerStore::open(&config.store_url()).await?;
    let passphrase = PassphraseSource::choose(config.passphrase_file.clone(), PASSPHRASE_ENV)
        .read_new(PASSPHRASE_ENV)?;
    Wallet::create(
        store.wallet(WALLET_NAME).await?,
        config.network,
        keys,
        Some(Sealing {
            path: &config.wallet_secret,
            passphrase: &passphrase,
            work_factor,
        }),
    )
    .await?;
    Ok(())
}
