//! The embedded regtest chain: Bitcoin Core's chainstate (through [`Kernel`]), the index
//! beside it, and the mempool, tied together. [`RegtestChain`] is synchronous and takes the
//! clock as an argument; [`EmbeddedBackend`] is the thin async shell that shares it behind
//! a tokio lock and implements [`Backend`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use bitcoin::{
    Amount, Block, BlockHash, FeeRate, MerkleBlock, OutPoint, ScriptBuf, Transaction, Txid,
};
use tokio::sync::RwLock;

use super::backend::{
    Backend, BackendError, BroadcastError, ChainTip, HeaderEntry, OutPointStatus, Rejection,
    RejectionKind, TxStatus,
};
use super::index::{ChainIndex, NotOnTip, TxLocation};
use super::kernel::{BlockRejected, Kernel, KernelError, SpentOutput};
use super::mempool::{Mempool, MempoolEntry};
use super::mining::{
    assemble_block, next_block_time, AssembleError, BlockTemplate, COINBASE_WEIGHT_RESERVE,
    MAX_BLOCK_WEIGHT,
};
use super::package::{
    check_package_rules, check_topology, dust_outputs, Member, TopologyError, UnconfirmedParent,
};
use super::policy::{
    check_transaction_with, is_final, Accepted, FeeCheck, NextBlock, SpentCoin, TxReject,
};

/// The embedded chain failed in storage, assembly or indexing.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The consensus engine could not be opened or read.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// A block could not be assembled.
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    /// The index and the kernel disagree about the tip.
    #[error(transparent)]
    Index(#[from] NotOnTip),
    /// Bitcoin Core refused a block that holds no mempool transaction to blame.
    #[error(transparent)]
    BlockRejected(#[from] BlockRejected),
    /// The blocking task that ran the chain panicked or was cancelled.
    #[error("chain task failed: {0}")]
    Task(String),
    /// `invalidateblock` / `reconsiderblock` named a block the chain does not know.
    #[error("Block not found")]
    UnknownBlock(BlockHash),
    /// The genesis block cannot be invalidated.
    #[error("cannot invalidate the genesis block")]
    InvalidateGenesis,
    /// Invalidation rebuilds the chainstate in memory, which a data-directory chain cannot.
    #[error("invalidateblock is supported only on an in-memory chain")]
    InvalidatePersistent,
}

impl From<ChainError> for BackendError {
    fn from(e: ChainError) -> Self {
        BackendError::Chain(e.to_string())
    }
}

/// A transaction that did not come back to the mempool after a reorg.
struct ReadmitError {
    txid: Txid,
    reject: TxReject,
}

impl ReadmitError {
    fn short_reason(&self) -> String {
        self.reject.short_reason()
    }
}

/// A transaction removed from the mempool because Bitcoin Core refused a block holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedTx {
    /// The removed transaction (the offender, or a descendant of it).
    pub txid: Txid,
    /// Bitcoin Core's reason for refusing the block.
    pub reason: String,
}

/// The outcome of mining.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mined {
    /// Hashes of the new blocks, lowest first.
    pub hashes: Vec<BlockHash>,
    /// Transactions dropped on the way.
    pub dropped: Vec<DroppedTx>,
}

/// Bitcoin Core's regtest chain in this process, with a UTXO index and a mempool.
pub struct RegtestChain {
    kernel: Kernel,
    index: ChainIndex,
    mempool: Mempool,
    /// Blocks known but off the active chain (disconnected by a reorg), kept so that
    /// `reconsiderblock` and a rebuilt chainstate can bring them back.
    stale: BTreeMap<BlockHash, Block>,
    /// Blocks marked invalid by `invalidateblock`; their descendants are invalid too.
    invalid: BTreeSet<BlockHash>,
}

impl RegtestChain {
    /// A fresh chain at the regtest genesis block, with databases in memory.
    pub fn in_memory() -> Result<Self, ChainError> {
        Self::from_kernel(Kernel::in_memory()?)
    }

    /// Opens the chain stored in `datadir`, creating it when empty. Blocks mined in an
    /// earlier run are loaded; the mempool starts empty.
    pub fn open(datadir: &Path) -> Result<Self, ChainError> {
        Self::from_kernel(Kernel::open(datadir)?)
    }

    fn from_kernel(kernel: Kernel) -> Result<Self, ChainError> {
        let index = Self::index_kernel(&kernel)?;
        Ok(RegtestChain {
            kernel,
            index,
            mempool: Mempool::default(),
            stale: BTreeMap::new(),
            invalid: BTreeSet::new(),
        })
    }

    /// The index of the kernel's active chain, read back block by block.
    fn index_kernel(kernel: &Kernel) -> Result<ChainIndex, ChainError> {
        let mut index = ChainIndex::new(&kernel.block_at(0)?);
        for height in 1..=kernel.tip_height() {
            index.connect(&kernel.block_at(height)?)?;
        }
        Ok(index)
    }

    /// Whether `hash` or one of its stored ancestors is marked invalid.
    fn is_invalid(&self, hash: &BlockHash) -> bool {
        let mut at = *hash;
        loop {
            if self.invalid.contains(&at) {
                return true;
            }
            match self.stale.get(&at) {
                Some(block) => at = block.header.prev_blockhash,
                // Reached the active chain: an invalid active block was disconnected already.
                None => return false,
            }
        }
    }

    /// Stale blocks not marked invalid, parents before children.
    fn valid_stale_blocks(&self) -> Vec<Block> {
        let mut blocks: Vec<(u32, &Block)> = self
            .stale
            .iter()
            .filter(|(hash, _)| !self.is_invalid(hash))
            .map(|(hash, block)| {
                let mut depth = 0u32;
                let mut at = *hash;
                while let Some(b) = self.stale.get(&at) {
                    depth += 1;
                    at = b.header.prev_blockhash;
                }
                (depth, block)
            })
            .collect();
        blocks.sort_by_key(|(depth, _)| *depth);
        blocks.into_iter().map(|(_, b)| b.clone()).collect()
    }

    /// Marks `hash` and its descendants invalid (`invalidateblock`), as Bitcoin Core does: an
    /// active-chain block is disconnected with everything above it and the chain falls back
    /// to the most-work chain without invalid blocks. The transactions of the disconnected
    /// blocks go back to the mempool (ahead of the ones already there) when they are still
    /// valid, and the mempool is re-checked against the new tip.
    ///
    /// The kernel has no invalidation call, so the chainstate is rebuilt in memory from the
    /// blocks that stay valid; a chain kept in a data directory refuses.
    pub fn invalidate_block(&mut self, hash: &BlockHash) -> Result<(), ChainError> {
        let active = self.index.height_of(hash);
        if active.is_none() && !self.stale.contains_key(hash) {
            return Err(ChainError::UnknownBlock(*hash));
        }
        if active == Some(0) {
            return Err(ChainError::InvalidateGenesis);
        }
        let Some(height) = active else {
            // A block off the active chain: it and its descendants never come back.
            self.invalid.insert(*hash);
            return Ok(());
        };
        if self.kernel.is_persistent() {
            return Err(ChainError::InvalidatePersistent);
        }
        self.invalid.insert(*hash);
        let kernel = Kernel::in_memory()?;
        for h in 1..height {
            kernel.process_block(&self.kernel.block_at(h)?)?;
        }
        for h in height..=self.index.tip_height() {
            let block = self.kernel.block_at(h)?;
            self.stale.insert(block.block_hash(), block);
        }
        for block in self.valid_stale_blocks() {
            // A stale block the kernel refuses stays stale; it was valid before, so only a
            // block invalid in its own right (which Core would not have kept) can fail here.
            if let Err(e) = kernel.process_block(&block) {
                tracing::warn!("stale block not restored: {e}");
            }
        }
        self.kernel = kernel;
        self.follow_kernel()
    }

    /// Removes the invalid mark from `hash`, its ancestors and its descendants
    /// (`reconsiderblock`) and activates the most-work valid chain, as Bitcoin Core does.
    pub fn reconsider_block(&mut self, hash: &BlockHash) -> Result<(), ChainError> {
        if self.index.height_of(hash).is_none() && !self.stale.contains_key(hash) {
            return Err(ChainError::UnknownBlock(*hash));
        }
        // Ancestors of `hash` among the stale blocks, and `hash` itself.
        let mut at = *hash;
        self.invalid.remove(&at);
        while let Some(block) = self.stale.get(&at) {
            at = block.header.prev_blockhash;
            self.invalid.remove(&at);
        }
        // Descendants: invalid blocks whose stale ancestry reaches `hash`.
        let descendants: Vec<BlockHash> = self
            .invalid
            .iter()
            .filter(|bad| {
                let mut at = **bad;
                while let Some(block) = self.stale.get(&at) {
                    at = block.header.prev_blockhash;
                    if at == *hash {
                        return true;
                    }
                }
                false
            })
            .copied()
            .collect();
        for bad in descendants {
            self.invalid.remove(&bad);
        }
        for block in self.valid_stale_blocks() {
            if let Err(e) = self.kernel.process_block(&block) {
                tracing::warn!("reconsidered block refused: {e}");
            }
        }
        self.follow_kernel()
    }

    /// Brings the index, the stale blocks and the mempool in line with the kernel's active
    /// chain after a reorg.
    fn follow_kernel(&mut self) -> Result<(), ChainError> {
        let index = Self::index_kernel(&self.kernel)?;
        let fork = (0..=self.index.tip_height().min(index.tip_height()))
            .rev()
            .find(|h| self.index.entry(*h).map(|e| e.hash) == index.entry(*h).map(|e| e.hash))
            .unwrap_or(0);
        let mut disconnected = Vec::new();
        for h in fork + 1..=self.index.tip_height() {
            let Some(hash) = self.index.entry(h).map(|e| e.hash) else {
                continue;
            };
            let block = match self.stale.get(&hash) {
                Some(block) => block.clone(),
                None => match self.kernel.block(&hash)? {
                    Some(block) => block,
                    None => continue,
                },
            };
            self.stale.insert(hash, block.clone());
            disconnected.push(block);
        }
        for h in fork + 1..=index.tip_height() {
            if let Some(e) = index.entry(h) {
                self.stale.remove(&e.hash);
            }
        }
        self.index = index;
        let waiting: Vec<Transaction> = self.mempool.ordered().map(|e| e.tx.clone()).collect();
        self.mempool = Mempool::default();
        let returning = disconnected
            .iter()
            .flat_map(|b| b.txdata.iter().skip(1).cloned());
        for tx in returning.chain(waiting) {
            // What no longer fits the new chain (confirmed there, conflicting, immature)
            // leaves the mempool, as in Bitcoin Core.
            if let Err(e) = self.readmit(&tx) {
                tracing::debug!(txid = %e.txid, reason = %e.short_reason(), "dropped from the mempool by a reorg");
            }
        }
        Ok(())
    }

    /// Puts a transaction of a disconnected block (or one the mempool held) back after a
    /// reorg, as Bitcoin Core does: every check but the minimum relay fee, which Core
    /// bypasses there, so that a 0-fee package parent comes back with its child.
    fn readmit(&mut self, tx: &Transaction) -> Result<(), ReadmitError> {
        let txid = tx.compute_txid();
        if self.mempool.contains(&txid) {
            return Ok(());
        }
        let accepted = self
            .check_in(tx, &PackageView::default(), FeeCheck::Package)
            .map_err(|reject| ReadmitError { txid, reject })?;
        self.mempool.insert(MempoolEntry {
            tx: tx.clone(),
            fee: accepted.fee,
            vsize: accepted.vsize,
        });
        Ok(())
    }

    /// The UTXO and transaction index of the active chain.
    pub fn index(&self) -> &ChainIndex {
        &self.index
    }

    /// The mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// The tip of the active chain.
    pub fn tip(&self) -> ChainTip {
        ChainTip {
            height: self.index.tip_height(),
            hash: self.index.tip().hash,
        }
    }

    /// Height and median time the next block will have.
    pub fn next_block(&self) -> NextBlock {
        NextBlock {
            height: self.index.tip_height() + 1,
            median_time_past: self.index.tip().median_time_past,
        }
    }

    fn spent_coin(&self, outpoint: &OutPoint) -> Option<SpentCoin> {
        if let Some(coin) = self.index.coin(outpoint) {
            let prev_mtp = self
                .index
                .entry(coin.height.saturating_sub(1))
                .map_or(0, |e| e.median_time_past);
            return Some(SpentCoin {
                output: coin.output.clone(),
                height: coin.height,
                is_coinbase: coin.is_coinbase,
                prev_median_time_past: prev_mtp,
            });
        }
        self.mempool
            .output(outpoint)
            .map(|output| unconfirmed_coin(output, self.next_block()))
    }

    fn check_in(
        &self,
        tx: &Transaction,
        package: &PackageView,
        fee_check: FeeCheck,
    ) -> Result<Accepted, TxReject> {
        if self.mempool.contains(&tx.compute_txid()) {
            return Err(TxReject::AlreadyInMempool);
        }
        let next = self.next_block();
        check_transaction_with(
            tx,
            next,
            |op| {
                self.spent_coin(op)
                    .or_else(|| package.outputs.get(op).map(|o| unconfirmed_coin(o, next)))
            },
            |op| {
                self.mempool
                    .spender(op)
                    .map(|(txid, _)| txid)
                    .or_else(|| package.spends.get(op).copied())
            },
            fee_check,
        )
    }

    /// Runs every mempool check on `tx` without adding it (`testmempoolaccept`).
    pub fn test_accept(&self, tx: &Transaction) -> Result<Accepted, TxReject> {
        self.check_in(tx, &PackageView::default(), FeeCheck::Individual)
    }

    /// [`RegtestChain::test_accept`] for a list in which a transaction may spend outputs of
    /// earlier accepted ones (a parent-and-child package); nothing is added.
    pub fn test_accept_package(&self, txs: &[Transaction]) -> Vec<Result<Accepted, TxReject>> {
        let mut package = PackageView::default();
        let mut results = Vec::with_capacity(txs.len());
        for tx in txs {
            let result = self.check_in(tx, &package, FeeCheck::Individual);
            if result.is_ok() {
                package.add(tx);
            }
            results.push(result);
        }
        results
    }

    /// Whether some output of the mined transaction `txid` is still unspent.
    fn has_unspent_outputs(&self, tx: &Transaction) -> bool {
        let txid = tx.compute_txid();
        (0..tx.output.len()).any(|vout| {
            u32::try_from(vout)
                .is_ok_and(|vout| self.index.coin(&OutPoint::new(txid, vout)).is_some())
        })
    }

    /// Adds `tx` to the mempool with `sendrawtransaction`'s semantics: a transaction already
    /// in the mempool is accepted again; one whose outputs are in the UTXO set is
    /// `AlreadyConfirmed`; anything else must pass every policy check.
    pub fn submit_transaction(&mut self, tx: &Transaction) -> Result<Txid, Rejection> {
        self.submit_transaction_capped(tx, None)
    }

    /// [`RegtestChain::submit_transaction`], refusing a fee rate above `max_fee_rate`
    /// (`sendrawtransaction`'s `maxfeerate`) with Bitcoin Core's message.
    pub fn submit_transaction_capped(
        &mut self,
        tx: &Transaction,
        max_fee_rate: Option<FeeRate>,
    ) -> Result<Txid, Rejection> {
        let txid = tx.compute_txid();
        if self.mempool.contains(&txid) {
            return Ok(txid);
        }
        if self.index.location(&txid).is_some() && self.has_unspent_outputs(tx) {
            return Err(Rejection {
                txid,
                kind: RejectionKind::AlreadyConfirmed,
                reason: "Transaction outputs already in utxo set".into(),
            });
        }
        let accepted = self.test_accept(tx).map_err(|e| Rejection {
            txid,
            kind: e.kind(),
            reason: e.to_string(),
        })?;
        if let Some(max) = max_fee_rate {
            if fee_rate(&accepted) > max {
                return Err(Rejection {
                    txid,
                    kind: RejectionKind::FeeAboveMaximum,
                    reason: "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)"
                        .into(),
                });
            }
        }
        self.mempool.insert(MempoolEntry {
            tx: tx.clone(),
            fee: accepted.fee,
            vsize: accepted.vsize,
        });
        Ok(txid)
    }

    /// Adds a package (parents first, the child last) to the mempool with `submitpackage`'s
    /// rules: the topology and each member's own checks, except that a member below the
    /// minimum relay fee rate may be carried by the package's fee rate; then TRUC, ephemeral
    /// dust and `max_fee_rate` (per member). Members already in the mempool or mined are
    /// skipped. All or nothing: on any error the mempool is unchanged (Bitcoin Core may keep
    /// the members that pass alone; for a 0-fee parent, which cannot, the two agree).
    ///
    /// # Errors
    /// [`PackageError::Topology`] before any member is looked at; [`PackageError::Rejected`]
    /// naming the member to blame and Bitcoin Core's reason.
    pub fn submit_package(
        &mut self,
        txs: &[Transaction],
        max_fee_rate: Option<FeeRate>,
    ) -> Result<Vec<PackageTx>, PackageError> {
        check_topology(txs)?;
        // A package of one is that transaction alone, as in Bitcoin Core.
        let fee_check = if txs.len() == 1 {
            FeeCheck::Individual
        } else {
            FeeCheck::Package
        };
        let mut view = PackageView::default();
        let mut results = Vec::with_capacity(txs.len());
        let mut new = Vec::new();
        for tx in txs {
            let txid = tx.compute_txid();
            if let Some(entry) = self.mempool.get(&txid) {
                results.push(PackageTx::of(tx, entry.fee, entry.vsize, false));
                continue;
            }
            if self.index.location(&txid).is_some() && self.has_unspent_outputs(tx) {
                results.push(PackageTx::of(tx, Amount::ZERO, tx.vsize() as u64, false));
                continue;
            }
            let accepted = self.check_in(tx, &view, fee_check).map_err(|e| Rejection {
                txid,
                kind: e.kind(),
                reason: e.to_string(),
            })?;
            view.add(tx);
            results.push(PackageTx::of(tx, accepted.fee, accepted.vsize, true));
            new.push((tx, accepted));
        }
        let members: Vec<Member<'_>> = new
            .iter()
            .map(|(tx, accepted)| Member {
                tx,
                fee: accepted.fee,
                vsize: accepted.vsize,
                parents: self.unconfirmed_parents(tx, &view),
            })
            .collect();
        if let Err(e) = check_package_rules(&members) {
            return Err(Rejection {
                txid: e
                    .blame(&members)
                    .unwrap_or_else(|| txs[txs.len() - 1].compute_txid()),
                kind: RejectionKind::Rejected,
                reason: e.to_string(),
            }
            .into());
        }
        if let Some(max) = max_fee_rate {
            if let Some((tx, _)) = new.iter().find(|(_, a)| fee_rate(a) > max) {
                return Err(Rejection {
                    txid: tx.compute_txid(),
                    kind: RejectionKind::FeeAboveMaximum,
                    reason: "max feerate exceeded".into(),
                }
                .into());
            }
        }
        for (tx, accepted) in new {
            self.mempool.insert(MempoolEntry {
                tx: tx.clone(),
                fee: accepted.fee,
                vsize: accepted.vsize,
            });
        }
        Ok(results)
    }

    /// The unconfirmed transactions `tx` spends from, in the mempool or earlier in the
    /// package, as the TRUC and ephemeral dust rules see them.
    fn unconfirmed_parents(&self, tx: &Transaction, view: &PackageView) -> Vec<UnconfirmedParent> {
        let unconfirmed = |txid: &Txid| -> Option<Transaction> {
            self.mempool
                .get(txid)
                .map(|e| e.tx.clone())
                .or_else(|| view.txs.get(txid).cloned())
        };
        let parent_txids: BTreeSet<Txid> =
            tx.input.iter().map(|i| i.previous_output.txid).collect();
        parent_txids
            .iter()
            .filter_map(|txid| unconfirmed(txid).map(|p| (*txid, p)))
            .map(|(txid, parent)| {
                let grandparents: BTreeSet<Txid> = parent
                    .input
                    .iter()
                    .map(|i| i.previous_output.txid)
                    .filter(|t| unconfirmed(t).is_some())
                    .collect();
                let children: BTreeSet<Txid> = (0..parent.output.len())
                    .filter_map(|vout| u32::try_from(vout).ok())
                    .filter_map(|vout| self.mempool.spender(&OutPoint::new(txid, vout)))
                    .map(|(child, _)| child)
                    .collect();
                UnconfirmedParent {
                    txid,
                    truc: parent.version.0 == 3,
                    unconfirmed_parents: grandparents.len(),
                    other_children: children.len(),
                    dust: dust_outputs(&parent),
                }
            })
            .collect()
    }

    /// Submits a block. It becomes the tip only if Bitcoin Core connects it; the mempool
    /// then loses the block's transactions and whatever conflicts with them. Only blocks on
    /// the tip are taken: the embedded chain has a single miner and reorganizes only through
    /// [`invalidate_block`](Self::invalidate_block) and
    /// [`reconsider_block`](Self::reconsider_block), which keeps the index in step with the
    /// kernel.
    pub fn submit_block(&mut self, block: &Block) -> Result<u32, ChainError> {
        // Bitcoin Core remembers an invalidated block and refuses it when it comes again.
        if self.invalid.contains(&block.block_hash()) {
            return Err(BlockRejected {
                hash: block.block_hash(),
                reason: "duplicate-invalid".into(),
            }
            .into());
        }
        let tip = self.index.tip().hash;
        if block.header.prev_blockhash != tip {
            return Err(NotOnTip {
                hash: block.block_hash(),
                tip,
            }
            .into());
        }
        self.kernel.submit_block(block)?;
        let height = self.index.connect(block)?;
        self.mempool.remove_for_block(block);
        Ok(height)
    }

    /// Mempool transactions in arrival order that fit in one block, with their total fee.
    fn select_transactions(&self) -> (Vec<Transaction>, bitcoin::Amount) {
        let mut weight = COINBASE_WEIGHT_RESERVE;
        let mut fees = bitcoin::Amount::ZERO;
        let mut txs = Vec::new();
        let mut skipped = std::collections::BTreeSet::new();
        for entry in self.mempool.ordered() {
            let tx_weight = entry.tx.weight().to_wu();
            // A child of a skipped parent cannot go in either.
            let orphaned = entry
                .tx
                .input
                .iter()
                .any(|i| skipped.contains(&i.previous_output.txid));
            if orphaned || weight + tx_weight > MAX_BLOCK_WEIGHT {
                skipped.insert(entry.tx.compute_txid());
                continue;
            }
            weight += tx_weight;
            fees += entry.fee;
            txs.push(entry.tx.clone());
        }
        (txs, fees)
    }

    /// Mines one block on the tip paying `payout`, holding as many mempool transactions as
    /// fit. When Bitcoin Core refuses the block, the offending transaction (named in the
    /// kernel's reason; every candidate when none is named) and its descendants leave the
    /// mempool with that reason, and assembly is retried.
    pub fn mine_block(&mut self, payout: &ScriptBuf, now: u32) -> Result<Mined, ChainError> {
        let mut dropped = Vec::new();
        loop {
            let (txs, fees) = self.select_transactions();
            let tip = self.index.tip();
            let median_time_past = tip.median_time_past;
            let mut template = BlockTemplate {
                prev_hash: tip.hash,
                height: self.index.tip_height() + 1,
                time: next_block_time(now, median_time_past),
                payout_script: payout.clone(),
                fees,
            };
            let mut block = assemble_block(&template, txs.clone())?;
            // Re-mining the branch just invalidated within the same second would rebuild
            // an invalidated block byte for byte; a later timestamp makes a new one.
            while self.invalid.contains(&block.block_hash()) {
                template.time = template.time.saturating_add(1);
                block = assemble_block(&template, txs.clone())?;
            }
            match self.kernel.submit_block(&block) {
                Ok(()) => {
                    self.index.connect(&block)?;
                    self.mempool.remove_for_block(&block);
                    return Ok(Mined {
                        hashes: vec![block.block_hash()],
                        dropped,
                    });
                }
                Err(rejected) if !txs.is_empty() => {
                    tracing::warn!("{rejected}; dropping the offending transaction");
                    let victims =
                        offenders(&txs, &rejected.reason, template.height, median_time_past);
                    for victim in victims {
                        for txid in self.mempool.remove_with_descendants(&victim) {
                            dropped.push(DroppedTx {
                                txid,
                                reason: rejected.reason.clone(),
                            });
                        }
                    }
                }
                Err(rejected) => return Err(rejected.into()),
            }
        }
    }

    /// Mines one block on the tip paying `payout` and holding no mempool transaction
    /// (`generateblock <address> []`): the mempool keeps its transactions.
    pub fn mine_empty_block(
        &mut self,
        payout: &ScriptBuf,
        now: u32,
    ) -> Result<BlockHash, ChainError> {
        let tip = self.index.tip();
        let mut template = BlockTemplate {
            prev_hash: tip.hash,
            height: self.index.tip_height() + 1,
            time: next_block_time(now, tip.median_time_past),
            payout_script: payout.clone(),
            fees: bitcoin::Amount::ZERO,
        };
        let mut block = assemble_block(&template, Vec::new())?;
        while self.invalid.contains(&block.block_hash()) {
            template.time = template.time.saturating_add(1);
            block = assemble_block(&template, Vec::new())?;
        }
        self.submit_block(&block)?;
        Ok(block.block_hash())
    }

    /// Mines `count` blocks paying `payout` (`generatetoaddress`).
    pub fn mine(&mut self, count: u32, payout: &ScriptBuf, now: u32) -> Result<Mined, ChainError> {
        let mut mined = Mined::default();
        for _ in 0..count {
            let one = self.mine_block(payout, now)?;
            mined.hashes.extend(one.hashes);
            mined.dropped.extend(one.dropped);
        }
        Ok(mined)
    }

    /// An active-chain block by hash.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        match self.index.height_of(hash) {
            Some(height) => Ok(Some(self.kernel.block_at(height)?)),
            None => Ok(None),
        }
    }

    /// The outputs an active-chain block spends (Bitcoin Core's undo data): one list per
    /// non-coinbase transaction, in input order.
    pub fn spent_outputs(
        &self,
        hash: &BlockHash,
    ) -> Result<Option<Vec<Vec<SpentOutput>>>, ChainError> {
        match self.index.height_of(hash) {
            Some(height) => Ok(Some(self.kernel.spent_outputs_at(height)?)),
            None => Ok(None),
        }
    }

    /// The active-chain block at `height`.
    pub fn block_at(&self, height: u32) -> Result<Option<Block>, ChainError> {
        if height > self.index.tip_height() {
            return Ok(None);
        }
        Ok(Some(self.kernel.block_at(height)?))
    }

    /// A transaction from the mempool or the active chain, with where it was mined.
    pub fn transaction(
        &self,
        txid: &Txid,
    ) -> Result<Option<(Transaction, Option<TxLocation>)>, ChainError> {
        if let Some(entry) = self.mempool.get(txid) {
            return Ok(Some((entry.tx.clone(), None)));
        }
        let Some(location) = self.index.location(txid) else {
            return Ok(None);
        };
        let block = self.kernel.block_at(location.height)?;
        let tx = usize::try_from(location.position)
            .ok()
            .and_then(|p| block.txdata.get(p).cloned());
        Ok(tx.map(|tx| (tx, Some(location))))
    }

    /// Whether `txid` is unknown, in the mempool, or mined (with its Merkle proof).
    pub fn tx_status(&self, txid: &Txid) -> Result<TxStatus, ChainError> {
        if self.mempool.contains(txid) {
            return Ok(TxStatus::InMempool);
        }
        let Some(location) = self.index.location(txid) else {
            return Ok(TxStatus::Unknown);
        };
        let block = self.kernel.block_at(location.height)?;
        Ok(TxStatus::Confirmed {
            block_hash: block.block_hash(),
            height: location.height,
            confirmations: self.index.confirmations(location.height),
            proof: MerkleBlock::from_block_with_predicate(&block, |t| t == txid),
        })
    }

    /// Whether an outpoint is unspent, spent in the mempool, or spent in the chain.
    pub fn outpoint_status(&self, outpoint: &OutPoint) -> OutPointStatus {
        if let Some(spend) = self.index.spend(outpoint) {
            return OutPointStatus::Spent {
                txid: spend.txid,
                vin: spend.vin,
                height: spend.height,
            };
        }
        if let Some((txid, vin)) = self.mempool.spender(outpoint) {
            return OutPointStatus::SpentInMempool { txid, vin };
        }
        if let Some(coin) = self.index.coin(outpoint) {
            return OutPointStatus::Unspent {
                confirmations: self.index.confirmations(coin.height),
            };
        }
        if self.mempool.output(outpoint).is_some() {
            return OutPointStatus::Unspent { confirmations: 0 };
        }
        OutPointStatus::Unknown
    }
}

/// An unconfirmed output as a coin: it would be mined in the next block at the earliest.
fn unconfirmed_coin(output: &bitcoin::TxOut, next: NextBlock) -> SpentCoin {
    SpentCoin {
        output: output.clone(),
        height: next.height,
        is_coinbase: false,
        prev_median_time_past: next.median_time_past,
    }
}

/// Outputs created and outpoints spent by the accepted transactions of a package under test.
#[derive(Default)]
struct PackageView {
    outputs: std::collections::BTreeMap<OutPoint, bitcoin::TxOut>,
    spends: std::collections::BTreeMap<OutPoint, Txid>,
    txs: std::collections::BTreeMap<Txid, Transaction>,
}

/// A package member as `submitpackage` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageTx {
    /// Its txid.
    pub txid: Txid,
    /// Its wtxid.
    pub wtxid: bitcoin::Wtxid,
    /// Its fee (0 when it was mined before).
    pub fee: Amount,
    /// Its virtual size.
    pub vsize: u64,
    /// Whether this call added it (false: it was in the mempool or mined already).
    pub added: bool,
}

impl PackageTx {
    fn of(tx: &Transaction, fee: Amount, vsize: u64, added: bool) -> Self {
        PackageTx {
            txid: tx.compute_txid(),
            wtxid: tx.compute_wtxid(),
            fee,
            vsize,
            added,
        }
    }
}

/// Why a package was refused; the mempool is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    /// Not a child with its parents (Bitcoin Core: a JSON-RPC error).
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A member, or the package as a whole (blamed on the child), was refused.
    #[error(transparent)]
    Rejected(#[from] Rejection),
}

impl PackageView {
    fn add(&mut self, tx: &Transaction) {
        let txid = tx.compute_txid();
        self.txs.insert(txid, tx.clone());
        for input in &tx.input {
            self.spends.insert(input.previous_output, txid);
        }
        for (vout, output) in tx.output.iter().enumerate() {
            if let Ok(vout) = u32::try_from(vout) {
                self.outputs
                    .insert(OutPoint::new(txid, vout), output.clone());
            }
        }
    }
}

/// The fee rate of an accepted transaction.
pub fn fee_rate(accepted: &Accepted) -> FeeRate {
    FeeRate::from_sat_per_kwu(accepted.fee.to_sat().saturating_mul(250) / accepted.vsize.max(1))
}

/// The transactions to blame for Bitcoin Core refusing a block of `txs` at `height`.
///
/// Most reasons name the failing transaction, before any parent it spends (`input 0 of
/// <txid> ..., spending <parent>:0`): the first named one is the offender. The nLockTime
/// check (`bad-txns-nonfinal, non-final transaction`) names none, so the non-final ones are
/// found with the same rule. Failing both, every candidate is blamed.
fn offenders(txs: &[Transaction], reason: &str, height: u32, median_time_past: u32) -> Vec<Txid> {
    let named = txs
        .iter()
        .map(Transaction::compute_txid)
        .filter_map(|txid| reason.find(&txid.to_string()).map(|at| (at, txid)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, txid)| txid);
    if let Some(txid) = named {
        return vec![txid];
    }
    let next = NextBlock {
        height,
        median_time_past,
    };
    let non_final: Vec<Txid> = txs
        .iter()
        .filter(|tx| !is_final(tx, next))
        .map(Transaction::compute_txid)
        .collect();
    if non_final.is_empty() {
        txs.iter().map(Transaction::compute_txid).collect()
    } else {
        non_final
    }
}

/// Seconds since the Unix epoch, saturated into a block time field.
pub fn unix_now() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// A [`RegtestChain`] shared between tasks.
pub type SharedChain = Arc<RwLock<RegtestChain>>;

/// The embedded chain as a [`Backend`], plus mining for tests and the devnet.
#[derive(Clone)]
pub struct EmbeddedBackend {
    chain: SharedChain,
}

impl EmbeddedBackend {
    /// Wraps a chain.
    pub fn new(chain: RegtestChain) -> Self {
        EmbeddedBackend {
            chain: Arc::new(RwLock::new(chain)),
        }
    }

    /// The shared chain, e.g. to serve it over JSON-RPC.
    pub fn shared(&self) -> SharedChain {
        self.chain.clone()
    }

    /// Mines `count` blocks paying `payout`, timestamped from the system clock.
    pub async fn mine(&self, count: u32, payout: &ScriptBuf) -> Result<Mined, ChainError> {
        mine_shared(&self.chain, count, payout.clone()).await
    }
}

/// Mines on tokio's blocking pool, since block validation is CPU-bound work in the kernel.
pub async fn mine_shared(
    chain: &SharedChain,
    count: u32,
    payout: ScriptBuf,
) -> Result<Mined, ChainError> {
    let chain = chain.clone();
    tokio::task::spawn_blocking(move || chain.blocking_write().mine(count, &payout, unix_now()))
        .await
        .map_err(|e| ChainError::Task(e.to_string()))?
}

#[async_trait::async_trait]
impl Backend for EmbeddedBackend {
    async fn tip(&self) -> Result<ChainTip, BackendError> {
        Ok(self.chain.read().await.tip())
    }

    async fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, BackendError> {
        Ok(self
            .chain
            .read()
            .await
            .index()
            .entry(height)
            .map(|e| e.hash))
    }

    async fn header(&self, hash: &BlockHash) -> Result<Option<HeaderEntry>, BackendError> {
        let chain = self.chain.read().await;
        let index = chain.index();
        Ok(index.height_of(hash).and_then(|height| {
            index.entry(height).map(|e| HeaderEntry {
                header: e.header,
                height,
            })
        }))
    }

    async fn block(&self, hash: &BlockHash) -> Result<Option<Block>, BackendError> {
        Ok(self.chain.read().await.block(hash)?)
    }

    async fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, BackendError> {
        Ok(self.chain.read().await.transaction(txid)?.map(|(tx, _)| tx))
    }

    async fn tx_status(&self, txid: &Txid) -> Result<TxStatus, BackendError> {
        Ok(self.chain.read().await.tx_status(txid)?)
    }

    async fn outpoint_status(&self, outpoint: &OutPoint) -> Result<OutPointStatus, BackendError> {
        Ok(self.chain.read().await.outpoint_status(outpoint))
    }

    async fn broadcast(&self, tx: &Transaction) -> Result<Txid, BroadcastError> {
        Ok(self.chain.write().await.submit_transaction(tx)?)
    }

    async fn broadcast_package(&self, txs: &[Transaction]) -> Result<Vec<Txid>, BroadcastError> {
        match self.chain.write().await.submit_package(txs, None) {
            Ok(members) => Ok(members.into_iter().map(|m| m.txid).collect()),
            Err(PackageError::Rejected(r)) => Err(r.into()),
            Err(PackageError::Topology(e)) => Err(Rejection {
                txid: txs.last().map_or_else(
                    || Txid::from_raw_hash(bitcoin::hashes::Hash::all_zeros()),
                    Transaction::compute_txid,
                ),
                kind: RejectionKind::Rejected,
                reason: e.to_string(),
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tx::{anyone, spend};
    use bitcoin::{Amount, Sequence};

    fn coinbase_out(chain: &RegtestChain, height: u32) -> OutPoint {
        let block = chain.block_at(height).expect("read").expect("block");
        OutPoint::new(block.txdata[0].compute_txid(), 0)
    }

    const NOW: u32 = 1_750_000_000;

    #[test]
    fn mined_spend_is_confirmed_with_a_merkle_proof() {
        let mut chain = RegtestChain::in_memory().expect("chain");
        chain.mine(101, &anyone(), NOW).expect("mine");
        assert_eq!(chain.tip().height, 101);
        let coinbase = coinbase_out(&chain, 1);
        let tx = spend(coinbase, Amount::from_sat(49_9999_0000), Sequence::MAX);
        let txid = chain.submit_transaction(&tx).expect("accepted");
        assert_eq!(chain.tx_status(&txid).expect("status"), TxStatus::InMempool);
        assert_eq!(
            chain.outpoint_status(&coinbase),
            OutPointStatus::SpentInMempool { txid, vin: 0 }
        );
        let mined = chain.mine(1, &anyone(), NOW).expect("mine");
        assert!(mined.dropped.is_empty());
        match chain.tx_status(&txid).expect("status") {
            TxStatus::Confirmed {
                height,
                confirmations,
                proof,
                block_hash,
            } => {
                assert_eq!(
                    (height, confirmations, block_hash),
                    (102, 1, mined.hashes[0])
                );
                let mut matches = Vec::new();
                let mut indexes = Vec::new();
                let root = proof
                    .txn
                    .extract_matches(&mut matches, &mut indexes)
                    .expect("proof");
                assert_eq!(root, proof.header.merkle_root);
                assert_eq!(matches, vec![txid]);
            }
            other => panic!("not confirmed: {other:?}"),
        }
        assert_eq!(
            chain.outpoint_status(&coinbase),
            OutPointStatus::Spent {
                txid,
                vin: 0,
                height: 102
            }
        );
        // Spending it again: the input is gone.
        let again = spend(coinbase, Amount::from_sat(1_000), Sequence::MAX);
        let err = chain.submit_transaction(&again).unwrap_err();
        assert_eq!(err.kind, RejectionKind::MissingOrSpentInputs);
        // Sending the mined transaction again: its outputs are in the UTXO set.
        let err = chain.submit_transaction(&tx).unwrap_err();
        assert_eq!(err.kind, RejectionKind::AlreadyConfirmed);
    }

    #[test]
    fn block_core_refuses_never_becomes_tip_and_its_offender_is_dropped() {
        let mut chain = RegtestChain::in_memory().expect("chain");
        chain.mine(101, &anyone(), NOW).expect("mine");
        let good = spend(
            coinbase_out(&chain, 1),
            Amount::from_sat(49_0000_0000),
            Sequence::MAX,
        );
        chain.submit_transaction(&good).expect("good");
        // A relative lock of 50 blocks on a coin with 100 confirmations is met; of 200 is
        // not. The policy would refuse it, so slip it past the policy to reach the kernel.
        let locked = spend(
            coinbase_out(&chain, 2),
            Amount::from_sat(49_0000_0000),
            Sequence::from_height(200),
        );
        assert!(matches!(
            chain.test_accept(&locked),
            Err(TxReject::NonBip68Final { .. })
        ));
        let child = spend(
            OutPoint::new(locked.compute_txid(), 0),
            Amount::from_sat(48_0000_0000),
            Sequence::MAX,
        );
        for tx in [&locked, &child] {
            chain.mempool.insert(MempoolEntry {
                tx: tx.clone(),
                fee: Amount::ZERO,
                vsize: 0,
            });
        }
        let tip_before = chain.tip();
        let mined = chain.mine(1, &anyone(), NOW).expect("mine");
        let dropped: Vec<Txid> = mined.dropped.iter().map(|d| d.txid).collect();
        assert_eq!(dropped, vec![locked.compute_txid(), child.compute_txid()]);
        assert!(
            mined.dropped[0].reason.starts_with("bad-txns-nonfinal"),
            "{}",
            mined.dropped[0].reason
        );
        // The block that was finally mined builds on the old tip and holds the good spend.
        let block = chain.block(&mined.hashes[0]).expect("read").expect("block");
        assert_eq!(block.header.prev_blockhash, tip_before.hash);
        assert_eq!(block.txdata.len(), 2);
        assert_eq!(block.txdata[1].compute_txid(), good.compute_txid());
        assert!(chain.mempool().is_empty());
    }

    #[test]
    fn non_final_offender_is_found_though_core_does_not_name_it() {
        let mut chain = RegtestChain::in_memory().expect("chain");
        chain.mine(101, &anyone(), NOW).expect("mine");
        let mut locked = spend(
            coinbase_out(&chain, 1),
            Amount::from_sat(49_0000_0000),
            Sequence::ZERO,
        );
        locked.lock_time = bitcoin::absolute::LockTime::from_height(500).expect("height");
        let good = spend(
            coinbase_out(&chain, 2),
            Amount::from_sat(49_0000_0000),
            Sequence::MAX,
        );
        for tx in [&locked, &good] {
            chain.mempool.insert(MempoolEntry {
                tx: tx.clone(),
                fee: Amount::ZERO,
                vsize: 0,
            });
        }
        let mined = chain.mine(1, &anyone(), NOW).expect("mine");
        assert_eq!(mined.dropped.len(), 1);
        assert_eq!(mined.dropped[0].txid, locked.compute_txid());
        assert!(
            mined.dropped[0].reason.starts_with("bad-txns-nonfinal"),
            "{}",
            mined.dropped[0].reason
        );
        let block = chain.block(&mined.hashes[0]).expect("read").expect("block");
        assert_eq!(block.txdata[1].compute_txid(), good.compute_txid());
    }

    #[test]
    fn a_block_off_the_tip_never_reaches_the_kernel() {
        let mut chain = RegtestChain::in_memory().expect("chain");
        chain.mine(2, &anyone(), NOW).expect("mine");
        let genesis = chain.block_at(0).expect("read").expect("genesis");
        let fork = assemble_block(
            &BlockTemplate {
                prev_hash: genesis.block_hash(),
                height: 1,
                time: NOW + 1,
                payout_script: anyone(),
                fees: Amount::ZERO,
            },
            vec![],
        )
        .expect("assemble");
        let tip = chain.tip();
        assert!(matches!(
            chain.submit_block(&fork),
            Err(ChainError::Index(_))
        ));
        assert_eq!(chain.tip(), tip);
    }

    #[test]
    fn submit_block_refuses_a_bad_block_with_core_reason() {
        let mut chain = RegtestChain::in_memory().expect("chain");
        chain.mine(1, &anyone(), NOW).expect("mine");
        let tip = chain.tip();
        // Spends a coin that does not exist.
        let ghost = spend(
            OutPoint::new(Txid::from_raw_hash(bitcoin::hashes::Hash::all_zeros()), 3),
            Amount::from_sat(1),
            Sequence::MAX,
        );
        let block = assemble_block(
            &BlockTemplate {
                prev_hash: tip.hash,
                height: 2,
                time: NOW + 1,
                payout_script: anyone(),
                fees: Amount::ZERO,
            },
            vec![ghost],
        )
        .expect("assemble");
        let err = chain.submit_block(&block).unwrap_err();
        assert!(
            err.to_string().contains("bad-txns-inputs-missingorspent"),
            "{err}"
        );
        assert_eq!(chain.tip(), tip);
    }

    #[test]
    fn a_package_comes_back_to_the_mempool_when_its_block_is_invalidated() {
        let mut chain = RegtestChain::in_memory().expect("chain");
        chain.mine(102, &anyone(), NOW).expect("mine");
        let p2a = bitcoin::TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(vec![0x51, 0x02, 0x4e, 0x73]),
        };
        let mut parent = spend(
            coinbase_out(&chain, 1),
            Amount::from_sat(50 * 100_000_000),
            Sequence::MAX,
        );
        parent.version = bitcoin::transaction::Version(3);
        parent.output.push(p2a);
        let mut child = spend(
            coinbase_out(&chain, 2),
            Amount::from_sat(49_9999_0000),
            Sequence::MAX,
        );
        child.version = bitcoin::transaction::Version(3);
        child.input.push(bitcoin::TxIn {
            previous_output: OutPoint::new(parent.compute_txid(), 1),
            ..child.input[0].clone()
        });
        chain
            .submit_package(&[parent.clone(), child.clone()], None)
            .expect("package");
        let mined = chain.mine(1, &anyone(), NOW).expect("mine");
        assert!(chain.mempool().is_empty());
        chain
            .invalidate_block(&mined.hashes[0])
            .expect("invalidate");
        let back: Vec<Txid> = chain
            .mempool()
            .ordered()
            .map(|e| e.tx.compute_txid())
            .collect();
        assert_eq!(back, vec![parent.compute_txid(), child.compute_txid()]);
        // Alone, the 0-fee parent still is not admitted.
        let mut fresh = RegtestChain::in_memory().expect("chain");
        fresh.mine(102, &anyone(), NOW).expect("mine");
        assert!(fresh.submit_transaction(&parent).is_err());
    }

    #[test]
    fn datadir_chain_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("fiamma-restart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (tip, coinbase) = {
            let mut chain = RegtestChain::open(&dir).expect("open");
            chain.mine(3, &anyone(), NOW).expect("mine");
            (chain.tip(), coinbase_out(&chain, 2))
        };
        let chain = RegtestChain::open(&dir).expect("reopen");
        assert_eq!(chain.tip(), tip);
        assert_eq!(
            chain.outpoint_status(&coinbase),
            OutPointStatus::Unspent { confirmations: 2 }
        );
        drop(chain);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
