//! The thin layer over Bitcoin Core's consensus engine (`bitcoinkernel`): a regtest
//! chainstate, block submission with the kernel's own rejection reason, block reads, and
//! script verification.
//!
//! The kernel reports only a coarse category through its validation callbacks; the reason
//! string a Bitcoin Core operator sees (`bad-txns-inputs-missingorspent, ... in transaction
//! <txid>`) is in its log. The kernel logs synchronously on the thread that submits the block,
//! so a thread-local capture around `process_block` reads exactly that block's messages even
//! when several chainstates live in one process.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Once;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, Transaction, TxOut};
use bitcoinkernel::prelude::*;
use bitcoinkernel::{ChainType, ChainstateManager, Context, ContextBuilder, Log, Logger};

/// The consensus engine could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The chainstate could not be created or loaded from `path`.
    #[error("cannot open regtest chainstate in {path}: {message}")]
    Open {
        /// The data directory.
        path: String,
        /// The kernel's message.
        message: String,
    },
    /// The block at `height` of the active chain could not be read back.
    #[error("cannot read block at height {height}: {message}")]
    ReadBlock {
        /// Height of the block.
        height: u32,
        /// The kernel's or the decoder's message.
        message: String,
    },
}

/// An output spent by a block, from Bitcoin Core's undo data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentOutput {
    /// The spent output.
    pub output: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether a coinbase created it.
    pub is_coinbase: bool,
}

/// Bitcoin Core refused a block; `reason` is its reject reason and debug message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {hash} rejected: {reason}")]
pub struct BlockRejected {
    /// The refused block.
    pub hash: BlockHash,
    /// Bitcoin Core's reason, e.g. `bad-txns-nonfinal, contains a non-BIP68-final transaction <txid>`.
    pub reason: String,
}

/// A script of one input failed Bitcoin Core's interpreter with all consensus flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("script verification failed on input {input}: {message}")]
pub struct ScriptFailure {
    /// The failing input.
    pub input: usize,
    /// The kernel's message.
    pub message: String,
}

thread_local! {
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

struct CaptureLog;

impl Log for CaptureLog {
    fn log(&self, message: &str) {
        let message = message.trim_end();
        CAPTURED.with(|captured| {
            if let Some(lines) = captured.borrow_mut().as_mut() {
                lines.push(message.to_owned());
            }
        });
        tracing::trace!(target: "bitcoinkernel", "{message}");
    }
}

static LOGGER: Once = Once::new();

fn install_logger() {
    LOGGER.call_once(|| match Logger::new(CaptureLog) {
        // The connection must live as long as the process: the kernel's logger is global.
        Ok(logger) => std::mem::forget(logger),
        Err(e) => tracing::warn!("bitcoinkernel log capture unavailable: {e}"),
    });
}

/// Runs `f` and returns what the kernel logged on this thread meanwhile.
fn capture_log<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let out = f();
    let lines = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, lines)
}

/// Extracts Bitcoin Core's reject reason from the log lines of one block submission.
pub fn reject_reason(lines: &[String]) -> Option<String> {
    const MARKERS: [&str; 3] = [
        "AcceptBlock FAILED (",
        "failed, ",
        "ActivateBestChain failed (",
    ];
    lines.iter().find_map(|line| {
        MARKERS.iter().find_map(|marker| {
            let start = line.find(marker)? + marker.len();
            let rest = &line[start..];
            let rest = if marker.ends_with('(') {
                rest.strip_suffix(')').unwrap_or(rest)
            } else {
                rest
            };
            Some(rest.trim().to_owned())
        })
    })
}

/// Where the chainstate lives.
enum Storage {
    /// A directory the caller owns; the chain survives restarts.
    Persistent,
    /// A scratch directory for block files, removed on drop; databases are in memory.
    Scratch(PathBuf),
}

/// A Bitcoin Core regtest chainstate. Every block goes through the kernel's full validation.
pub struct Kernel {
    // Declared before `context`: the chainstate manager must be dropped first.
    chainman: ChainstateManager,
    _context: Context,
    storage: Storage,
}

impl Kernel {
    /// Opens (or creates) a regtest chainstate stored in `datadir`.
    pub fn open(datadir: &Path) -> Result<Self, KernelError> {
        Self::build(datadir, false).map(|(chainman, context)| Kernel {
            chainman,
            _context: context,
            storage: Storage::Persistent,
        })
    }

    /// Creates a fresh regtest chainstate whose databases live in memory. Block files go to
    /// a scratch directory under the system temp dir that is removed when the kernel drops.
    pub fn in_memory() -> Result<Self, KernelError> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fiamma-regtest-{}-{n}", std::process::id()));
        let (chainman, context) = Self::build(&dir, true)?;
        Ok(Kernel {
            chainman,
            _context: context,
            storage: Storage::Scratch(dir),
        })
    }

    fn build(dir: &Path, in_memory: bool) -> Result<(ChainstateManager, Context), KernelError> {
        install_logger();
        let open_err = |message: String| KernelError::Open {
            path: dir.display().to_string(),
            message,
        };
        let blocks = dir.join("blocks");
        std::fs::create_dir_all(&blocks).map_err(|e| open_err(e.to_string()))?;
        let context = ContextBuilder::new()
            .chain_type(ChainType::Regtest)
            .build()
            .map_err(|e| open_err(e.to_string()))?;
        let data = dir.to_string_lossy().into_owned();
        let blocks = blocks.to_string_lossy().into_owned();
        let chainman = ChainstateManager::builder(&context, &data, &blocks)
            .map_err(|e| open_err(e.to_string()))?
            .chainstate_db_in_memory(in_memory)
            .block_tree_db_in_memory(in_memory)
            .build()
            .map_err(|e| open_err(e.to_string()))?;
        chainman
            .import_blocks()
            .map_err(|e| open_err(e.to_string()))?;
        Ok((chainman, context))
    }

    /// Height of the active chain's tip.
    pub fn tip_height(&self) -> u32 {
        // The active chain always holds the genesis block, so the height is never negative.
        u32::try_from(self.chainman.active_chain().height()).unwrap_or(0)
    }

    /// Hash of the active chain's tip.
    pub fn tip_hash(&self) -> BlockHash {
        let tip = self.chainman.active_chain().tip();
        BlockHash::from_byte_array(tip.block_hash().to_bytes())
    }

    /// Reads the active-chain block at `height` back from the kernel's block files.
    pub fn block_at(&self, height: u32) -> Result<Block, KernelError> {
        let read_err = |message: String| KernelError::ReadBlock { height, message };
        let entry = i32::try_from(height)
            .ok()
            .and_then(|h| usize::try_from(h).ok())
            .and_then(|h| self.chainman.active_chain().at_height(h))
            .ok_or_else(|| read_err("not in the active chain".into()))?;
        let block = self
            .chainman
            .read_block_data(&entry)
            .map_err(|e| read_err(e.to_string()))?;
        let bytes = block
            .consensus_encode()
            .map_err(|e| read_err(e.to_string()))?;
        deserialize(&bytes).map_err(|e| read_err(e.to_string()))
    }

    /// Whether the chainstate lives in a data directory that outlives the process.
    pub fn is_persistent(&self) -> bool {
        matches!(self.storage, Storage::Persistent)
    }

    /// Reads any block the kernel stored, on the active chain or not, by hash.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, KernelError> {
        let height = u32::MAX;
        let read_err = |message: String| KernelError::ReadBlock { height, message };
        let kernel_hash = bitcoinkernel::BlockHash::from(hash.to_byte_array());
        let Some(entry) = self.chainman.get_block_tree_entry(&kernel_hash) else {
            return Ok(None);
        };
        let block = self
            .chainman
            .read_block_data(&entry)
            .map_err(|e| read_err(e.to_string()))?;
        let bytes = block
            .consensus_encode()
            .map_err(|e| read_err(e.to_string()))?;
        deserialize(&bytes)
            .map(Some)
            .map_err(|e| read_err(e.to_string()))
    }

    /// Hands a block to the kernel, which stores it and activates the most-work valid chain:
    /// unlike [`submit_block`](Self::submit_block) a valid block off the best chain is not an
    /// error. `Err` carries Bitcoin Core's reason when the block itself is invalid.
    pub fn process_block(&self, block: &Block) -> Result<(), BlockRejected> {
        let hash = block.block_hash();
        let rejected = |reason: String| BlockRejected { hash, reason };
        let kernel_block = bitcoinkernel::Block::new(&serialize(block))
            .map_err(|e| rejected(format!("block decode failed: {e}")))?;
        let (result, lines) = capture_log(|| self.chainman.process_block(&kernel_block));
        if result.is_rejected() {
            return Err(rejected(
                reject_reason(&lines).unwrap_or_else(|| "block rejected".to_owned()),
            ));
        }
        Ok(())
    }

    /// The outputs spent by the active-chain block at `height`, read from Bitcoin Core's undo
    /// data: one list per non-coinbase transaction, in block order, each in input order.
    pub fn spent_outputs_at(&self, height: u32) -> Result<Vec<Vec<SpentOutput>>, KernelError> {
        if height == 0 {
            // The genesis block spends nothing and has no undo data.
            return Ok(Vec::new());
        }
        let read_err = |message: String| KernelError::ReadBlock { height, message };
        let entry = usize::try_from(height)
            .ok()
            .and_then(|h| self.chainman.active_chain().at_height(h))
            .ok_or_else(|| read_err("not in the active chain".into()))?;
        let undo = self
            .chainman
            .read_spent_outputs(&entry)
            .map_err(|e| read_err(e.to_string()))?;
        (0..undo.count())
            .map(|tx| {
                let spent = undo
                    .transaction_spent_outputs(tx)
                    .map_err(|e| read_err(e.to_string()))?;
                (0..spent.count())
                    .map(|i| {
                        let coin = spent.coin(i).map_err(|e| read_err(e.to_string()))?;
                        let out = coin.output();
                        let value = u64::try_from(out.value()).map_err(|_| {
                            read_err(format!("negative spent value {}", out.value()))
                        })?;
                        Ok(SpentOutput {
                            output: TxOut {
                                value: bitcoin::Amount::from_sat(value),
                                script_pubkey: bitcoin::ScriptBuf::from_bytes(
                                    out.script_pubkey().to_bytes(),
                                ),
                            },
                            height: coin.confirmation_height(),
                            is_coinbase: coin.is_coinbase(),
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// Submits a block. `Ok` means Bitcoin Core connected it and it is the new tip; on
    /// `Err` the tip is unchanged and the error carries Bitcoin Core's reason.
    pub fn submit_block(&self, block: &Block) -> Result<(), BlockRejected> {
        let hash = block.block_hash();
        let rejected = |reason: String| BlockRejected { hash, reason };
        let kernel_block = bitcoinkernel::Block::new(&serialize(block))
            .map_err(|e| rejected(format!("block decode failed: {e}")))?;
        let (result, lines) = capture_log(|| self.chainman.process_block(&kernel_block));
        if !result.is_rejected() && self.tip_hash() == hash {
            return Ok(());
        }
        let reason = reject_reason(&lines).unwrap_or_else(|| match result {
            bitcoinkernel::ProcessBlockResult::Duplicate => "duplicate".to_owned(),
            _ => "block not connected to the active chain".to_owned(),
        });
        Err(rejected(reason))
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        if let Storage::Scratch(dir) = &self.storage {
            // Best effort: the scratch directory holds only this chain's block files.
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs Bitcoin Core's script interpreter on every input of `tx` with all consensus flags
/// (P2SH, DERSIG, CHECKLOCKTIMEVERIFY, CHECKSEQUENCEVERIFY, WITNESS, NULLDUMMY, TAPROOT).
/// `spent` holds the outputs the inputs spend, in input order.
pub fn verify_scripts(tx: &Transaction, spent: &[TxOut]) -> Result<(), ScriptFailure> {
    let fail = |input: usize, message: String| ScriptFailure { input, message };
    let kernel_tx =
        bitcoinkernel::Transaction::new(&serialize(tx)).map_err(|e| fail(0, e.to_string()))?;
    let spent_outputs: Vec<bitcoinkernel::TxOut> = spent
        .iter()
        .map(|out| {
            bitcoinkernel::ScriptPubkey::new(out.script_pubkey.as_bytes()).map(|script| {
                // Amounts above i64::MAX cannot exist: MAX_MONEY is far below it.
                let value = i64::try_from(out.value.to_sat()).unwrap_or(i64::MAX);
                bitcoinkernel::TxOut::new(&script, value)
            })
        })
        .collect::<Result<_, _>>()
        .map_err(|e| fail(0, e.to_string()))?;
    let precomputed = bitcoinkernel::PrecomputedTransactionData::new(&kernel_tx, &spent_outputs)
        .map_err(|e| fail(0, e.to_string()))?;
    for (input, out) in spent_outputs.iter().enumerate() {
        bitcoinkernel::verify(
            &out.script_pubkey(),
            Some(out.value()),
            &kernel_tx,
            input,
            Some(bitcoinkernel::VERIFY_ALL),
            &precomputed,
        )
        .map_err(|e| fail(input, e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_reason_reads_connect_block_failures() {
        let lines = vec![
            "UpdateTip: new best=...".to_owned(),
            "ConnectTip: ConnectBlock 00ab failed, bad-txns-inputs-missingorspent, CheckTxInputs: inputs missing/spent in transaction ff".to_owned(),
        ];
        assert_eq!(
            reject_reason(&lines).as_deref(),
            Some("bad-txns-inputs-missingorspent, CheckTxInputs: inputs missing/spent in transaction ff")
        );
    }

    #[test]
    fn reject_reason_reads_accept_block_failures() {
        let lines = vec![
            "ProcessNewBlock: AcceptBlock FAILED (high-hash, proof of work failed)".to_owned(),
        ];
        assert_eq!(
            reject_reason(&lines).as_deref(),
            Some("high-hash, proof of work failed")
        );
        assert_eq!(reject_reason(&["nothing here".to_owned()]), None);
    }

    #[test]
    fn fresh_chain_starts_at_regtest_genesis() {
        let kernel = Kernel::in_memory().expect("open");
        assert_eq!(kernel.tip_height(), 0);
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        assert_eq!(kernel.tip_hash(), genesis.block_hash());
        assert_eq!(kernel.block_at(0).expect("read"), genesis);
    }
}
