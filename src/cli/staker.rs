//! `fiamma staker`: a staker's own program. `wallet create|import` make the wallet (offline),
//! `run` is the staker service, and every other verb asks the running service over its
//! loopback gRPC API (`fiamma.staker.v1`), as a front end could. `psbt sign` is the external
//! signer of a watch-only wallet: it holds the keys and only sees PSBTs.

use std::path::{Path, PathBuf};

use bitcoin::{Amount, Denomination, Network};
use fiamma_proto::staker::v1 as pb;
use fiamma_proto::staker::v1::staker_client::StakerClient;
use fiamma_role::daemon::Shutdown;
use fiamma_role::keystore::DEFAULT_WORK_FACTOR;
use fiamma_role::passphrase::PassphraseSource;
use fiamma_staker::config::{StakerConfig, PASSPHRASE_ENV, WALLET_NAME};
use fiamma_staker::plan::{PsbtBundle, StakePsbts};
use fiamma_staker::store::StakerStore;
use fiamma_wallet::wallet::Sealing;
use fiamma_wallet::{Wallet, WalletKeys, WalletStore};
use tonic::transport::Channel;

use super::CliError;

/// `fiamma staker …`
#[derive(Debug, clap::Subcommand)]
pub enum StakerCommand {
    /// The staker's BDK wallet.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Stake with a verifier (pre-approval flow: nothing is broadcast before the covenant
    /// committee has signed).
    Stake {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
        /// The verifier's x-only BTC key (hex).
        #[arg(long)]
        verifier: String,
        /// The amount in BTC.
        #[arg(long)]
        amount: String,
        /// Staking time in blocks.
        #[arg(long)]
        time: u32,
        /// Fee rate in sat/vB (default: estimatesmartfee, else the config's).
        #[arg(long)]
        fee_rate: Option<u64>,
        /// Where to write the PSBTs of a watch-only wallet for its signer.
        #[arg(long)]
        psbt_out: Option<PathBuf>,
    },
    /// Unbond a delegation with the committee's co-signed unbonding transaction.
    Unbond {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
        /// The delegation.
        #[arg(long)]
        staking_txid: String,
    },
    /// Withdraw what a delegation has spendable (timelock, unbonding output, slashing change).
    Withdraw {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
        /// The delegation.
        #[arg(long)]
        staking_txid: String,
        /// Where to write the withdrawal PSBT of a watch-only wallet.
        #[arg(long)]
        psbt_out: Option<PathBuf>,
    },
    /// Each delegation with its state, amounts, heights and what comes next.
    Delegations {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
    },
    /// PSBTs for an external signer.
    #[command(subcommand)]
    Psbt(PsbtCommand),
    /// Run the staker service.
    Run {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
    },
}

/// `fiamma staker wallet …`
#[derive(Debug, clap::Subcommand)]
pub enum WalletCommand {
    /// A new wallet from a fresh 24-word mnemonic, sealed at `wallet_secret` (shown once:
    /// write it down).
    Create {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
        /// scrypt work factor (log2 N) of the sealed secret.
        #[arg(long, default_value_t = DEFAULT_WORK_FACTOR)]
        work_factor: u8,
    },
    /// A wallet from a mnemonic (sealed at `wallet_secret`) or from two descriptors, one per
    /// line, receive then change (public ones make a watch-only wallet).
    Import {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
        /// A file holding the mnemonic.
        #[arg(long, conflicts_with = "descriptor_file")]
        mnemonic_file: Option<PathBuf>,
        /// A file holding the two descriptors.
        #[arg(long)]
        descriptor_file: Option<PathBuf>,
        /// scrypt work factor (log2 N) of the sealed secret.
        #[arg(long, default_value_t = DEFAULT_WORK_FACTOR)]
        work_factor: u8,
    },
    /// A fresh receiving address.
    Address {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
    },
    /// The balance as of the last sync.
    Balance {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
    },
    /// Sync over the Bitcoin node's JSON-RPC.
    Sync {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
    },
    /// Pay an address.
    Send {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
        /// The address.
        #[arg(long)]
        to: String,
        /// The amount in BTC.
        #[arg(long)]
        amount: String,
        /// Fee rate in sat/vB.
        #[arg(long)]
        fee_rate: Option<u64>,
    },
    /// The public descriptors (receive, change), for a watch-only copy.
    Descriptors {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
    },
}

/// `fiamma staker psbt …`
#[derive(Debug, clap::Subcommand)]
pub enum PsbtCommand {
    /// Hand signed PSBTs (a stake bundle or a withdrawal) back to the service.
    Import {
        /// The service's config file.
        #[arg(long, env = "FIAMMA_STAKER_CONFIG")]
        config: PathBuf,
        /// The signed file.
        file: PathBuf,
    },
    /// The external signer: sign every input the sealed wallet's keys can sign in a stake
    /// bundle or a PSBT, seeing nothing but the file.
    Sign {
        /// The sealed wallet secret.
        #[arg(long)]
        secret: PathBuf,
        /// A file holding its passphrase (else FIAMMA_STAKER_PASSPHRASE, else a prompt).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// The network.
        #[arg(long, default_value = "regtest")]
        network: Network,
        /// The PSBT or bundle to sign.
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write the signed file (never replaced).
        #[arg(long = "out")]
        output: PathBuf,
    },
}

fn btc(text: &str) -> Result<Amount, CliError> {
    Amount::from_str_in(text, Denomination::Bitcoin)
        .map_err(|e| format!("amount {text:?} is not an amount of BTC: {e}").into())
}

async fn client(config: &Path) -> Result<StakerClient<Channel>, CliError> {
    let config = StakerConfig::load(config)?;
    let endpoint = format!("http://{}", config.grpc_addr);
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())?
        .connect()
        .await
        .map_err(|e| format!("the staker service at {endpoint} is not running ({e}): start it with `fiamma staker run`"))?;
    Ok(StakerClient::new(channel))
}

fn refused(call: &str, s: tonic::Status) -> CliError {
    format!("{call} refused: {:?}: {}", s.code(), s.message()).into()
}

fn write_new(path: &Path, text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Runs `fiamma staker …`.
pub async fn run(cmd: StakerCommand) -> Result<(), CliError> {
    match cmd {
        StakerCommand::Wallet(w) => wallet(w).await,
        StakerCommand::Run { config } => {
            super::init_logging();
            fiamma_staker::daemon::run(&config, Shutdown::on_signals()).await?;
            Ok(())
        }
        StakerCommand::Stake {
            config,
            verifier,
            amount,
            time,
            fee_rate,
            psbt_out,
        } => {
            let key: bitcoin::secp256k1::XOnlyPublicKey = verifier
                .parse()
                .map_err(|e| format!("--verifier is not an x-only key in hex: {e}"))?;
            let r = client(&config)
                .await?
                .stake(pb::StakeRequest {
                    verifier_btc_pk: key.serialize().to_vec(),
                    amount_sat: fiamma_proto::codec::staker::sat(btc(&amount)?),
                    staking_time_blocks: time,
                    fee_rate_sat_vb: fee_rate.unwrap_or(0),
                })
                .await
                .map_err(|s| refused("Stake", s))?
                .into_inner();
            if r.psbt_bundle.is_empty() {
                println!("{}", r.staking_txid);
                return Ok(());
            }
            let out = psbt_out
                .ok_or("the wallet is watch-only: give --psbt-out FILE for its signer's PSBTs")?;
            write_new(&out, &r.psbt_bundle)?;
            println!("{}", r.staking_txid);
            eprintln!(
                "PSBTs for the signer written to {}; import them signed with `fiamma staker psbt import`",
                out.display()
            );
            Ok(())
        }
        StakerCommand::Unbond {
            config,
            staking_txid,
        } => {
            client(&config)
                .await?
                .unbond(pb::UnbondRequest {
                    staking_txid: staking_txid.clone(),
                })
                .await
                .map_err(|s| refused("Unbond", s))?;
            println!("unbonding {staking_txid}: the service broadcasts the co-signed unbonding transaction");
            Ok(())
        }
        StakerCommand::Withdraw {
            config,
            staking_txid,
            psbt_out,
        } => {
            let r = client(&config)
                .await?
                .withdraw(pb::WithdrawRequest { staking_txid })
                .await
                .map_err(|s| refused("Withdraw", s))?
                .into_inner();
            if !r.withdraw_txid.is_empty() {
                println!("{} (from the {} output)", r.withdraw_txid, r.from);
            } else if !r.psbt.is_empty() {
                let out = psbt_out
                    .ok_or("the wallet is watch-only: give --psbt-out FILE for its signer")?;
                write_new(&out, &r.psbt)?;
                println!("withdrawal PSBT written to {}", out.display());
            } else {
                println!("nothing is spendable yet");
            }
            Ok(())
        }
        StakerCommand::Delegations { config } => {
            let r = client(&config)
                .await?
                .delegations(pb::DelegationsRequest {})
                .await
                .map_err(|s| refused("Delegations", s))?
                .into_inner();
            for d in r.delegations {
                println!(
                    "{} verifier {} {} T={} step={} status={} heights={}..{} next: {}",
                    d.staking_txid,
                    hex::encode(&d.verifier_btc_pk),
                    Amount::from_sat(u64::try_from(d.amount_sat).unwrap_or(0))
                        .display_in(Denomination::Bitcoin)
                        .show_denomination(),
                    d.staking_time_blocks,
                    d.step,
                    if d.status.is_empty() { "-" } else { &d.status },
                    d.start_height,
                    d.end_height,
                    d.next
                );
            }
            Ok(())
        }
        StakerCommand::Psbt(PsbtCommand::Import { config, file }) => {
            let content =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let r = client(&config)
                .await?
                .import_psbt(pb::ImportPsbtRequest { content })
                .await
                .map_err(|s| refused("ImportPsbt", s))?
                .into_inner();
            if r.staking_txid.is_empty() {
                println!("withdrawal {} broadcast", r.withdraw_txid);
            } else {
                println!("{} registered", r.staking_txid);
            }
            Ok(())
        }
        StakerCommand::Psbt(PsbtCommand::Sign {
            secret,
            passphrase_file,
            network,
            input,
            output,
        }) => sign(&secret, passphrase_file, network, &input, &output).await,
    }
}

async fn sign(
    secret: &Path,
    passphrase_file: Option<PathBuf>,
    network: Network,
    input: &Path,
    output: &Path,
) -> Result<(), CliError> {
    let passphrase = PassphraseSource::choose(passphrase_file, PASSPHRASE_ENV)
        .read("Staker wallet passphrase: ", PASSPHRASE_ENV)?;
    let keys = WalletKeys::open(secret, network, &passphrase)?;
    drop(passphrase);
    // The signer keeps no state: its wallet lives in memory for this one signature.
    let store = WalletStore::open("sqlite::memory:", "signer").await?;
    let wallet = Wallet::create(store, network, &keys, None).await?;
    let content =
        std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let content = content.trim();
    let signed = if content.starts_with('{') {
        let bundle: PsbtBundle = serde_json::from_str(content)
            .map_err(|e| format!("{}: not a PSBT bundle: {e}", input.display()))?;
        let mut psbts = StakePsbts::from_bundle(&bundle)?;
        for (_, psbt) in psbts.each_mut() {
            wallet.sign(psbt)?;
        }
        serde_json::to_string_pretty(&psbts.to_bundle())?
    } else {
        let mut psbt: bitcoin::psbt::Psbt = content
            .parse()
            .map_err(|e| format!("{}: not a base64 PSBT: {e}", input.display()))?;
        wallet.sign(&mut psbt)?;
        psbt.to_string()
    };
    write_new(output, &signed)?;
    println!("signed: {}", output.display());
    Ok(())
}

async fn wallet(cmd: WalletCommand) -> Result<(), CliError> {
    match cmd {
        WalletCommand::Create {
            config,
            work_factor,
        } => {
            let keys = WalletKeys::generate()?;
            create(&config, &keys, work_factor).await?;
            println!("{}", keys.mnemonic_words().unwrap_or_default());
            eprintln!(
                "the 24 words above are the wallet's backup: write them down, keep them offline"
            );
            Ok(())
        }
        WalletCommand::Import {
            config,
            mnemonic_file,
            descriptor_file,
            work_factor,
        } => {
            let keys = match (mnemonic_file, descriptor_file) {
                (Some(file), None) => mnemonic_keys(&file)?,
                (None, Some(file)) => {
                    let text = zeroize::Zeroizing::new(
                        std::fs::read_to_string(&file)
                            .map_err(|e| format!("{}: {e}", file.display()))?,
                    );
                    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
                    let (Some(external), Some(internal), None) =
                        (lines.next(), lines.next(), lines.next())
                    else {
                        return Err(format!(
                            "{}: give exactly two descriptors, receive then change",
                            file.display()
                        )
                        .into());
                    };
                    WalletKeys::from_descriptors(external, internal)?
                }
                _ => return Err("give --mnemonic-file or --descriptor-file".into()),
            };
            let wallet = create(&config, &keys, work_factor).await?;
            println!(
                "wallet imported{}",
                if wallet.is_watch_only() {
                    " (watch-only: sign its PSBTs with `fiamma staker psbt sign`)"
                } else {
                    ""
                }
            );
            Ok(())
        }
        WalletCommand::Descriptors { config } => {
            let config = StakerConfig::load(&config)?;
            let store = StakerStore::open(&config.store_url()).await?;
            let wallet =
                Wallet::load(store.wallet(WALLET_NAME).await?, config.network, None).await?;
            println!(
                "{}",
                wallet.public_descriptor(bdk_wallet::KeychainKind::External)
            );
            println!(
                "{}",
                wallet.public_descriptor(bdk_wallet::KeychainKind::Internal)
            );
            Ok(())
        }
        WalletCommand::Address { config } => {
            let r = client(&config)
                .await?
                .wallet_address(pb::WalletAddressRequest {})
                .await
                .map_err(|s| refused("WalletAddress", s))?
                .into_inner();
            println!("{}", r.address);
            Ok(())
        }
        WalletCommand::Balance { config } => {
            let r = client(&config)
                .await?
                .wallet_balance(pb::WalletBalanceRequest {})
                .await
                .map_err(|s| refused("WalletBalance", s))?
                .into_inner();
            let show = |sat: i64| {
                Amount::from_sat(u64::try_from(sat).unwrap_or(0))
                    .display_in(Denomination::Bitcoin)
                    .show_denomination()
                    .to_string()
            };
            println!(
                "confirmed {} pending {} immature {} (synced to height {}{})",
                show(r.confirmed_sat),
                show(r.pending_sat),
                show(r.immature_sat),
                r.synced_height,
                if r.watch_only { ", watch-only" } else { "" }
            );
            Ok(())
        }
        WalletCommand::Sync { config } => {
            let r = client(&config)
                .await?
                .wallet_sync(pb::WalletSyncRequest {})
                .await
                .map_err(|s| refused("WalletSync", s))?
                .into_inner();
            println!("synced to height {}", r.synced_height);
            Ok(())
        }
        WalletCommand::Send {
            config,
            to,
            amount,
            fee_rate,
        } => {
            let r = client(&config)
                .await?
                .wallet_send(pb::WalletSendRequest {
                    address: to,
                    amount_sat: fiamma_proto::codec::staker::sat(btc(&amount)?),
                    fee_rate_sat_vb: fee_rate.unwrap_or(0),
                })
                .await
                .map_err(|s| refused("WalletSend", s))?
                .into_inner();
            if r.txid.is_empty() {
                println!("{}", r.psbt);
            } else {
                println!("{}", r.txid);
            }
            Ok(())
        }
    }
}

/// Creates the wallet of `config` from `keys`, sealing private keys at `wallet_secret`.
/// The wallet keys of the BIP-39 mnemonic in `file`; the words never outlive the call.
///
/// # Errors
/// [`CliError`] naming the file when it cannot be read or holds no valid mnemonic.
pub(crate) fn mnemonic_keys(file: &Path) -> Result<WalletKeys, CliError> {
    let words = zeroize::Zeroizing::new(
        std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?,
    );
    WalletKeys::from_mnemonic(words.trim()).map_err(|e| format!("{}: {e}", file.display()).into())
}

async fn create(config: &Path, keys: &WalletKeys, work_factor: u8) -> Result<Wallet, CliError> {
    let config = StakerConfig::load(config)?;
    let store = StakerStore::open(&config.store_url()).await?;
    let private = keys.descriptors(config.network)?.private;
    let passphrase = if private {
        let secret = config
            .wallet_secret
            .as_ref()
            .ok_or("the config names no wallet_secret file to seal the wallet's keys in")?;
        let passphrase = PassphraseSource::choose(config.passphrase_file.clone(), PASSPHRASE_ENV)
            .read_new(PASSPHRASE_ENV)?;
        Some((secret.clone(), passphrase))
    } else {
        None
    };
    let sealing = passphrase.as_ref().map(|(path, passphrase)| Sealing {
        path,
        passphrase,
        work_factor,
    });
    Ok(Wallet::create(
        store.wallet(WALLET_NAME).await?,
        config.network,
        keys,
        sealing,
    )
    .await?)
}
