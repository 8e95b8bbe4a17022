//! `fiamma checkpoint show|follow`: the checkpoint reader (§13.9) as a command. From a Bitcoin
//! backend and the genesis outpoint alone it follows the chain of checkpoint transactions and
//! prints the latest one buried at least k deep; `follow` keeps printing each new one.
//!
//! Nothing here trusts a Fiamma node: the reader checks each spend's proof of work, Merkle
//! inclusion, shape and spent leaf itself, and Bitcoin consensus already checked the
//! signatures.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{OutPoint, Txid};
use fiamma_finality::checkpoint::{
    ChainEnd, CheckpointChain, CheckpointKind, CheckpointLink, ReadError, ReaderParams,
    MIN_CHECKPOINT_VALUE, THRESHOLD,
};

use fiamma_role::daemon::Shutdown;

use crate::btc::{Backend, BackendError, RpcBackend, TxStatus};
use crate::node::checkpoint::source::read_chain;

use super::CliError;

/// The environment variable the RPC password may come from (as for `fiamma regtest`).
const PASSWORD_ENV: &str = "FIAMMA_RPC_PASSWORD";

/// `fiamma checkpoint …`
#[derive(Debug, clap::Subcommand)]
pub enum CheckpointCommand {
    /// Print the latest checkpoint of a chain with at least `--confirmations` confirmations.
    Show(ReadArgs),
    /// Print the latest checkpoint, then each new one as it reaches `--confirmations`, until
    /// Ctrl-C.
    Follow {
        #[command(flatten)]
        read: ReadArgs,
        /// How often to ask the Bitcoin backend for new blocks, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        poll_interval_ms: u64,
    },
}

/// Where the chain starts and which Bitcoin node to read it from.
#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// The genesis outpoint (`checkpoint_genesis`): `txid:vout` of the first checkpoint output.
    #[arg(long)]
    pub genesis: OutPoint,
    /// The round h₀ whose set the genesis output encodes; every checkpoint has a later round.
    #[arg(long, default_value_t = 0)]
    pub genesis_round: u64,
    /// k: confirmations a checkpoint needs before it is printed (`btc_confirmation_depth`).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    pub confirmations: u32,
    /// Bitcoin Core's (or `fiamma regtest`'s) JSON-RPC URL.
    #[arg(long, default_value = "http://127.0.0.1:18443")]
    pub rpc_url: String,
    /// The JSON-RPC user.
    #[arg(long, env = "FIAMMA_RPC_USER")]
    pub rpc_user: String,
    /// A file holding the JSON-RPC password (else `FIAMMA_RPC_PASSWORD`).
    #[arg(long)]
    pub rpc_password_file: Option<PathBuf>,
}

/// Why the chain cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointCliError {
    /// No password was given.
    #[error("no JSON-RPC password: pass --rpc-password-file or set {PASSWORD_ENV}")]
    NoPassword,
    /// The password file cannot be read.
    #[error("cannot read the JSON-RPC password file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The node refused the credentials.
    #[error(
        "the bitcoin node at {0} refused the JSON-RPC user and password (HTTP 401): check \
         --rpc-user and the password"
    )]
    Unauthorized(String),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The genesis transaction is unknown to the backend.
    #[error(
        "genesis {0}: the bitcoin node knows no such transaction (wrong txid, wrong network, \
         or a node without -txindex)"
    )]
    UnknownGenesis(OutPoint),
    /// The genesis output index is past the transaction's outputs.
    #[error("genesis {outpoint}: its transaction has only {outputs} outputs")]
    NoSuchOutput {
        /// The genesis outpoint.
        outpoint: OutPoint,
        /// How many outputs the transaction has.
        outputs: usize,
    },
    /// The genesis outpoint is not a checkpoint output.
    #[error("genesis {outpoint} is not a checkpoint genesis: {why}")]
    NotGenesis {
        /// The genesis outpoint.
        outpoint: OutPoint,
        /// What it is instead.
        why: String,
    },
    /// The reader failed (the backend, or data that does not prove what it claims).
    #[error("reading the checkpoint chain: {0}")]
    Read(#[from] ReadError<BackendError>),
}

/// Runs `fiamma checkpoint …`.
///
/// # Errors
/// [`CliError`]: a bad genesis, an unreachable backend, or data the reader refuses.
pub async fn run(cmd: CheckpointCommand) -> Result<(), CliError> {
    match cmd {
        CheckpointCommand::Show(args) => {
            let reader = Reader::connect(&args).await?;
            let tip = reader.backend.tip().await?.height;
            let chain = reader.read(reader.params).await?;
            print_show(&reader, &chain, tip);
            Ok(())
        }
        CheckpointCommand::Follow {
            read,
            poll_interval_ms,
        } => {
            let reader = Reader::connect(&read).await?;
            follow(reader, Duration::from_millis(poll_interval_ms.max(1))).await
        }
    }
}

/// A checked genesis and the backend to read from.
struct Reader {
    backend: RpcBackend,
    params: ReaderParams,
    depth: u32,
}

impl Reader {
    /// Connects and checks that the genesis outpoint can start a checkpoint chain: it exists,
    /// is P2TR and holds at least the P2TR dust; its value is V for the whole chain.
    async fn connect(args: &ReadArgs) -> Result<Self, CheckpointCliError> {
        let password = match &args.rpc_password_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|source| CheckpointCliError::PasswordFile {
                    path: path.clone(),
                    source,
                })?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            None => std::env::var(PASSWORD_ENV).map_err(|_| CheckpointCliError::NoPassword)?,
        };
        let backend = RpcBackend::new(&args.rpc_url, &args.rpc_user, &password)?;
        let genesis = args.genesis;
        let tx = match backend.transaction(&genesis.txid).await {
            Ok(tx) => tx.ok_or(CheckpointCliError::UnknownGenesis(genesis))?,
            // Bitcoin Core answers a wrong password with a bare HTTP 401.
            Err(BackendError::Transport(e)) if e.contains("401") => {
                return Err(CheckpointCliError::Unauthorized(args.rpc_url.clone()))
            }
            Err(e) => return Err(e.into()),
        };
        let output = usize::try_from(genesis.vout)
            .ok()
            .and_then(|i| tx.output.get(i))
            .ok_or(CheckpointCliError::NoSuchOutput {
                outpoint: genesis,
                outputs: tx.output.len(),
            })?;
        if !output.script_pubkey.is_p2tr() {
            return Err(CheckpointCliError::NotGenesis {
                outpoint: genesis,
                why: format!("its script {} is not P2TR", output.script_pubkey),
            });
        }
        if output.value < MIN_CHECKPOINT_VALUE {
            return Err(CheckpointCliError::NotGenesis {
                outpoint: genesis,
                why: format!(
                    "its value {} is below the {} a checkpoint output holds",
                    output.value, MIN_CHECKPOINT_VALUE
                ),
            });
        }
        Ok(Reader {
            backend,
            params: ReaderParams {
                genesis,
                genesis_round: args.genesis_round,
                value: output.value,
            },
            depth: args.confirmations,
        })
    }

    /// Follows the chain from `start` (the genesis, or a checkpoint already read).
    async fn read(&self, start: ReaderParams) -> Result<CheckpointChain, CheckpointCliError> {
        let chain = read_chain(Arc::new(self.backend.clone()), start).await?;
        // A genesis whose first spend is off the template never was a checkpoint output.
        if start == self.params && chain.links.is_empty() {
            if let ChainEnd::OffTemplate { txid, reason } = &chain.end {
                return Err(CheckpointCliError::NotGenesis {
                    outpoint: start.genesis,
                    why: format!("{txid} spends it off the checkpoint template ({reason})"),
                });
            }
        }
        Ok(chain)
    }
}

fn confirmations(link: &CheckpointLink, tip: u32) -> u32 {
    (tip + 1).saturating_sub(link.height)
}

fn print_show(reader: &Reader, chain: &CheckpointChain, tip: u32) {
    let p = &reader.params;
    println!(
        "chain: genesis {} (round {}, value {}), {} checkpoints, bitcoin tip {tip}",
        p.genesis,
        p.genesis_round,
        p.value,
        chain.links.len()
    );
    match chain.latest_confirmed(tip, reader.depth) {
        Some(link) => print_link(link, tip),
        None => println!(
            "no checkpoint has {} confirmations yet; the genesis set still holds the output",
            reader.depth
        ),
    }
    for link in chain
        .links
        .iter()
        .filter(|l| confirmations(l, tip) < reader.depth)
    {
        println!(
            "pending: round {} in {} ({} of {} confirmations)",
            link.payload.round,
            link.txid,
            confirmations(link, tip),
            reader.depth
        );
    }
    print_end(&chain.end);
}

fn print_link(link: &CheckpointLink, tip: u32) {
    let payload = &link.payload;
    println!("checkpoint round: {}", payload.round);
    match payload.kind {
        CheckpointKind::Quorum => println!("kind: quorum (0x01)"),
        CheckpointKind::Recovery => println!(
            "kind: recovery (0x02): written by the covenant committee, not the verifier set"
        ),
    }
    println!("txid: {}", link.txid);
    println!(
        "block: {} at height {} ({} confirmations)",
        link.block_hash,
        link.height,
        confirmations(link, tip)
    );
    println!("round hash: {}", payload.round_hash);
    println!("state root: {}", hex::encode(payload.state));
    // Output 0's taproot key commits to round h's set; the set itself appears on Bitcoin only
    // when the next checkpoint spends the output.
    println!("checkpoint output: {}:0", link.txid);
    if let Some(set) = &link.signed_by {
        println!(
            "signed by: a set of {} verifiers, total weight {} (threshold {THRESHOLD})",
            set.len(),
            set.total_weight()
        );
    }
    if let Some(leaf) = &link.recovered_by {
        println!(
            "recovered by: {} of {} committee keys after {} blocks",
            leaf.quorum(),
            leaf.keys().len(),
            leaf.blocks()
        );
    }
}

fn print_end(end: &ChainEnd) {
    match end {
        ChainEnd::Unspent(outpoint) => println!("chain end: {outpoint} unspent"),
        ChainEnd::OffTemplate { txid, reason } => {
            println!("chain end: {txid} spends the last checkpoint output off the template ({reason}): the chain is over");
        }
    }
}

/// `follow`: prints the latest checkpoint, then each checkpoint that reaches k confirmations,
/// resuming from the last one printed; a reorganization that removes it rereads from genesis.
async fn follow(reader: Reader, every: Duration) -> Result<(), CliError> {
    // Installed before the first read, so an early Ctrl-C is not lost.
    let stop = Shutdown::on_signals();
    let tip = reader.backend.tip().await?.height;
    let chain = reader.read(reader.params).await?;
    print_show(&reader, &chain, tip);
    let mut last: Option<CheckpointLink> = chain.latest_confirmed(tip, reader.depth).cloned();
    let mut ended = !matches!(chain.end, ChainEnd::Unspent(_));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait() => return Ok(()),
        }
        match poll(&reader, &mut last, &mut ended).await {
            Ok(()) => {}
            // The node may restart or lag: say so and keep following.
            Err(e) => eprintln!("warning: {e}; retrying"),
        }
    }
}

async fn poll(
    reader: &Reader,
    last: &mut Option<CheckpointLink>,
    ended: &mut bool,
) -> Result<(), CheckpointCliError> {
    if let Some(link) = last.as_ref() {
        if !still_confirmed(&reader.backend, link.txid, link.block_hash).await? {
            println!(
                "reorganization: checkpoint round {} ({}) left the best chain; rereading from genesis",
                link.payload.round, link.txid
            );
            *last = None;
            *ended = false;
        }
    }
    let start = match last.as_ref() {
        Some(link) => ReaderParams {
            genesis: OutPoint::new(link.txid, 0),
            genesis_round: link.payload.round,
            value: reader.params.value,
        },
        None => reader.params,
    };
    let tip = reader.backend.tip().await?.height;
    let chain = reader.read(start).await?;
    for link in &chain.links {
        if confirmations(link, tip) >= reader.depth {
            print_link(link, tip);
            *last = Some(link.clone());
        }
    }
    if !*ended && !matches!(chain.end, ChainEnd::Unspent(_)) {
        print_end(&chain.end);
        *ended = true;
    }
    Ok(())
}

async fn still_confirmed(
    backend: &RpcBackend,
    txid: Txid,
    block: bitcoin::BlockHash,
) -> Result<bool, BackendError> {
    Ok(matches!(
        backend.tx_status(&txid).await?,
        TxStatus::Confirmed { block_hash, .. } if block_hash == block
    ))
}
