//! The index the embedded chain keeps beside Bitcoin Core's chainstate: unspent outputs,
//! who spent each output, where each transaction was mined, and per-block metadata.
//!
//! It is derived data: it is rebuilt from the kernel's blocks on start and updated from each
//! block the kernel connects. Pure: blocks in, lookups out.

use std::collections::BTreeMap;

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, OutPoint, TxOut, Txid, Work};

use super::mining::median_time_past;

/// An unspent output with what lock and maturity checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    /// The output.
    pub output: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether a coinbase created it (spendable only after 100 confirmations).
    pub is_coinbase: bool,
}

/// A mined spend of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendRecord {
    /// The spending transaction.
    pub txid: Txid,
    /// The input of that transaction that spends the output.
    pub vin: u32,
    /// Height of the block that mined the spend.
    pub height: u32,
}

/// Where a transaction was mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    /// Height of the block.
    pub height: u32,
    /// Position of the transaction in the block (0 is the coinbase).
    pub position: u32,
}

/// Metadata of one active-chain block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    /// Its hash.
    pub hash: BlockHash,
    /// Its header.
    pub header: Header,
    /// Total work of the chain up to and including this block.
    pub chain_work: Work,
    /// Median time past of the chain ending at this block (BIP-113).
    pub median_time_past: u32,
    /// Serialized size in bytes.
    pub size: usize,
    /// Serialized size without witnesses.
    pub stripped_size: usize,
    /// Weight in weight units.
    pub weight: u64,
    /// Number of transactions.
    pub tx_count: usize,
}

/// A block did not extend the indexed tip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {hash} does not extend indexed tip {tip}")]
pub struct NotOnTip {
    /// The block.
    pub hash: BlockHash,
    /// The indexed tip.
    pub tip: BlockHash,
}

/// UTXO set, spends and transaction locations of the active chain.
#[derive(Debug, Clone)]
pub struct ChainIndex {
    blocks: Vec<BlockEntry>,
    heights: BTreeMap<BlockHash, u32>,
    utxos: BTreeMap<OutPoint, Coin>,
    spends: BTreeMap<OutPoint, SpendRecord>,
    txs: BTreeMap<Txid, TxLocation>,
}

impl ChainIndex {
    /// An index holding only `genesis`. Like Bitcoin Core, the genesis coinbase output is not
    /// added to the UTXO set: it can never be spent.
    pub fn new(genesis: &Block) -> Self {
        let mut index = ChainIndex {
            blocks: Vec::new(),
            heights: BTreeMap::new(),
            utxos: BTreeMap::new(),
            spends: BTreeMap::new(),
            txs: BTreeMap::new(),
        };
        index.push_entry(genesis);
        if let Some(coinbase) = genesis.txdata.first() {
            index.txs.insert(
                coinbase.compute_txid(),
                TxLocation {
                    height: 0,
                    position: 0,
                },
            );
        }
        index
    }

    fn push_entry(&mut self, block: &Block) -> u32 {
        let height = u32::try_from(self.blocks.len()).unwrap_or(u32::MAX);
        let prior_work = self.blocks.last().map(|b| b.chain_work);
        let chain_work = match prior_work {
            Some(w) => w + block.header.work(),
            None => block.header.work(),
        };
        let mut times: Vec<u32> = self
            .blocks
            .iter()
            .rev()
            .take(10)
            .map(|b| b.header.time)
            .collect();
        times.reverse();
        times.push(block.header.time);
        let hash = block.block_hash();
        let size = block.total_size();
        let weight = block.weight().to_wu();
        self.blocks.push(BlockEntry {
            hash,
            header: block.header,
            chain_work,
            median_time_past: median_time_past(&times),
            size,
            // weight = 3 × stripped size + total size (BIP-141).
            stripped_size: usize::try_from(weight)
                .unwrap_or(usize::MAX)
                .saturating_sub(size)
                / 3,
            weight,
            tx_count: block.txdata.len(),
        });
        self.heights.insert(hash, height);
        height
    }

    /// Adds a block that the consensus engine connected on top of the indexed tip.
    pub fn connect(&mut self, block: &Block) -> Result<u32, NotOnTip> {
        let tip = self.tip().hash;
        if block.header.prev_blockhash != tip {
            return Err(NotOnTip {
                hash: block.block_hash(),
                tip,
            });
        }
        let height = self.push_entry(block);
        for (position, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            let is_coinbase = tx.is_coinbase();
            if !is_coinbase {
                for (vin, input) in tx.input.iter().enumerate() {
                    self.utxos.remove(&input.previous_output);
                    self.spends.insert(
                        input.previous_output,
                        SpendRecord {
                            txid,
                            vin: u32::try_from(vin).unwrap_or(u32::MAX),
                            height,
                        },
                    );
                }
            }
            for (vout, output) in tx.output.iter().enumerate() {
                // Provably unspendable outputs never enter Bitcoin Core's UTXO set.
                if output.script_pubkey.is_op_return() {
                    continue;
                }
                self.utxos.insert(
                    OutPoint::new(txid, u32::try_from(vout).unwrap_or(u32::MAX)),
                    Coin {
                        output: output.clone(),
                        height,
                        is_coinbase,
                    },
                );
            }
            self.txs.insert(
                txid,
                TxLocation {
                    height,
                    position: u32::try_from(position).unwrap_or(u32::MAX),
                },
            );
        }
        Ok(height)
    }

    /// The indexed tip.
    pub fn tip(&self) -> &BlockEntry {
        // `new` pushes the genesis entry and entries are never removed.
        &self.blocks[self.blocks.len() - 1]
    }

    /// Height of the indexed tip.
    pub fn tip_height(&self) -> u32 {
        u32::try_from(self.blocks.len() - 1).unwrap_or(u32::MAX)
    }

    /// The block at `height`, if the chain is that long.
    pub fn entry(&self, height: u32) -> Option<&BlockEntry> {
        self.blocks.get(usize::try_from(height).ok()?)
    }

    /// Height of an active-chain block.
    pub fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        self.heights.get(hash).copied()
    }

    /// An unspent output of the active chain.
    pub fn coin(&self, outpoint: &OutPoint) -> Option<&Coin> {
        self.utxos.get(outpoint)
    }

    /// The mined spend of an output.
    pub fn spend(&self, outpoint: &OutPoint) -> Option<&SpendRecord> {
        self.spends.get(outpoint)
    }

    /// Where a transaction was mined.
    pub fn location(&self, txid: &Txid) -> Option<TxLocation> {
        self.txs.get(txid).copied()
    }

    /// Confirmations of a block at `height`: 1 for the tip.
    pub fn confirmations(&self, height: u32) -> u32 {
        self.tip_height().saturating_sub(height) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mining::{assemble_block, BlockTemplate};
    use bitcoin::hashes::Hash;
    use bitcoin::{
        absolute, transaction, Amount, Network, ScriptBuf, Sequence, Transaction, TxIn, Witness,
    };

    fn mine_on(index: &ChainIndex, txs: Vec<Transaction>) -> Block {
        let tip = index.tip();
        assemble_block(
            &BlockTemplate {
                prev_hash: tip.hash,
                height: index.tip_height() + 1,
                time: tip.header.time + 1,
                payout_script: ScriptBuf::from_bytes(vec![0x51]),
                fees: Amount::ZERO,
            },
            txs,
        )
        .expect("assemble")
    }

    #[test]
    fn connect_tracks_coins_spends_and_locations() {
        let genesis = bitcoin::constants::genesis_block(Network::Regtest);
        let mut index = ChainIndex::new(&genesis);
        let b1 = mine_on(&index, vec![]);
        index.connect(&b1).expect("connect");
        let coinbase = OutPoint::new(b1.txdata[0].compute_txid(), 0);
        let coin = index.coin(&coinbase).expect("coin");
        assert!(coin.is_coinbase);
        assert_eq!(coin.height, 1);
        // The witness commitment output is OP_RETURN and never becomes a coin.
        assert!(index.coin(&OutPoint::new(coinbase.txid, 1)).is_none());

        let spend = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: coinbase,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![],
        };
        let b2 = mine_on(&index, vec![spend.clone()]);
        index.connect(&b2).expect("connect");
        assert!(index.coin(&coinbase).is_none());
        let record = index.spend(&coinbase).expect("spend");
        assert_eq!(
            (record.txid, record.vin, record.height),
            (spend.compute_txid(), 0, 2)
        );
        assert_eq!(
            index.location(&spend.compute_txid()),
            Some(TxLocation {
                height: 2,
                position: 1
            })
        );
        assert_eq!(index.confirmations(1), 2);
        assert!(index.tip().chain_work > index.entry(1).expect("b1").chain_work);
    }

    #[test]
    fn connect_refuses_a_block_off_the_tip() {
        let genesis = bitcoin::constants::genesis_block(Network::Regtest);
        let mut index = ChainIndex::new(&genesis);
        let b1 = mine_on(&index, vec![]);
        index.connect(&b1).expect("connect");
        let mut stale = b1.clone();
        stale.header.prev_blockhash = BlockHash::all_zeros();
        assert!(index.connect(&stale).is_err());
    }
}
