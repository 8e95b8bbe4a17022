//! The header chain: every header accepted since a trusted checkpoint, the side branches that
//! could still win, and the most-work best chain.

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::block::Header;
use bitcoin::consensus::Params;
use bitcoin::pow::{CompactTarget, Work};
use bitcoin::{BlockHash, Network};
use serde::{Deserialize, Serialize};

use super::rules::{self, Ancestry, BitsError};

/// The trusted starting point: a header and its height. Nothing before it is checked or held.
///
/// On networks that retarget (mainnet, testnet, signet) the height must be a multiple of 2016,
/// so that every difficulty rule after it can be evaluated from headers the chain holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Height of `header` on the Bitcoin chain.
    pub height: u32,
    /// The trusted header.
    pub header: Header,
}

impl Checkpoint {
    /// The checkpoint at `height` with `header`.
    pub fn new(height: u32, header: Header) -> Self {
        Self { height, header }
    }

    /// The network's genesis header at height 0.
    pub fn genesis(network: Network) -> Self {
        Self::new(0, bitcoin::constants::genesis_block(network).header)
    }
}

/// The best chain's tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    /// Hash of the tip header.
    pub hash: BlockHash,
    /// Height of the tip.
    pub height: u32,
    /// Work of the checkpoint and every header after it up to the tip.
    pub chain_work: Work,
}

/// Why a chain cannot start from a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewChainError {
    /// The network retargets and the checkpoint is not at a period start.
    #[error("checkpoint {hash} at height {height} is not at a retarget boundary (every {interval} blocks)")]
    NotAtRetargetBoundary {
        /// Checkpoint hash.
        hash: BlockHash,
        /// Checkpoint height.
        height: u32,
        /// Blocks per retarget period.
        interval: u32,
    },
    /// The checkpoint's nBits is unusable on this network.
    #[error("checkpoint {hash}: {source}")]
    InvalidBits {
        /// Checkpoint hash.
        hash: BlockHash,
        /// What is wrong with nBits.
        source: BitsError,
    },
    /// The checkpoint does not meet its own target: it is not a real header.
    #[error("checkpoint {hash} does not meet the target of its nbits {bits:#010x}")]
    BadProofOfWork {
        /// Checkpoint hash.
        hash: BlockHash,
        /// Its nBits.
        bits: CompactTarget,
    },
}

/// A held header with what the chain derived for it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) hash: BlockHash,
    pub(super) header: Header,
    pub(super) height: u32,
    pub(super) chain_work: Work,
    /// [`rules::difficulty_anchor`] of this header.
    pub(super) anchor_bits: CompactTarget,
}

/// A Bitcoin header chain from a checkpoint: validates each header against its network's
/// consensus rules, keeps side branches, follows the most-work branch, and refuses to reorganise
/// deeper than a fixed limit.
///
/// Invariants: the best chain runs from the checkpoint to the held header with the most work
/// (the first seen among equals); every held side-branch header forks off the best chain at most
/// `max_reorg_depth` blocks below the tip; a refused header leaves the chain unchanged.
#[derive(Debug, Clone)]
pub struct HeaderChain {
    pub(super) params: Params,
    pub(super) max_reorg_depth: u32,
    pub(super) checkpoint: Checkpoint,
    pub(super) entries: BTreeMap<BlockHash, Entry>,
    /// Best-chain hashes; index `i` is height `checkpoint.height + i`. Never empty.
    pub(super) best: Vec<BlockHash>,
    /// Held headers that are not on the best chain.
    pub(super) side: BTreeSet<BlockHash>,
}

/// The headers before a candidate on its branch: the side-branch part, then the best chain.
pub(super) struct Branch<'a> {
    chain: &'a HeaderChain,
    pub(super) fork_height: u32,
    /// Side-branch entries at heights `fork_height + 1 ..`, lowest first.
    pub(super) side: Vec<&'a Entry>,
}

impl Ancestry for Branch<'_> {
    fn header_at(&self, height: u32) -> Option<&Header> {
        match height.checked_sub(self.fork_height + 1) {
            Some(offset) => self.side.get(offset as usize).map(|e| &e.header),
            None => self.chain.best_entry_at(height).map(|e| &e.header),
        }
    }
}

impl HeaderChain {
    /// Starts a chain at `checkpoint` on `network` that reorganises at most `max_reorg_depth`
    /// blocks below its tip.
    pub fn new(
        network: Network,
        checkpoint: Checkpoint,
        max_reorg_depth: u32,
    ) -> Result<Self, NewChainError> {
        let params = Params::new(network);
        let header = checkpoint.header;
        let hash = header.block_hash();
        let interval = rules::retarget_interval(&params);
        if !params.no_pow_retargeting && checkpoint.height % interval != 0 {
            return Err(NewChainError::NotAtRetargetBoundary {
                hash,
                height: checkpoint.height,
                interval,
            });
        }
        let target = rules::target_from_bits(header.bits, &params)
            .map_err(|source| NewChainError::InvalidBits { hash, source })?;
        if !target.is_met_by(hash) {
            return Err(NewChainError::BadProofOfWork {
                hash,
                bits: header.bits,
            });
        }
        let entry = Entry {
            hash,
            header,
            height: checkpoint.height,
            chain_work: target.to_work(),
            anchor_bits: rules::difficulty_anchor(&params, checkpoint.height, header.bits, None),
        };
        Ok(Self {
            params,
            max_reorg_depth,
            checkpoint,
            entries: BTreeMap::from([(hash, entry)]),
            best: vec![hash],
            side: BTreeSet::new(),
        })
    }

    /// The network whose rules the chain applies.
    pub fn network(&self) -> Network {
        self.params.network
    }

    /// The deepest reorganisation the chain accepts, in disconnected blocks.
    pub fn max_reorg_depth(&self) -> u32 {
        self.max_reorg_depth
    }

    /// The checkpoint the chain started from.
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }

    /// The tip of the most-work chain.
    pub fn tip(&self) -> ChainTip {
        let tip = self.tip_entry();
        ChainTip {
            hash: tip.hash,
            height: tip.height,
            chain_work: tip.chain_work,
        }
    }

    /// The ancestry of a header whose parent is `parent`: walks side-branch parents down to the
    /// best chain. Side entries always have a held parent (pruning removes whole subtrees) and
    /// the checkpoint is on the best chain, so the walk ends there.
    pub(super) fn branch_to<'a>(&'a self, parent: &'a Entry) -> Branch<'a> {
        let mut side = Vec::new();
        let mut cursor = Some(parent);
        while let Some(entry) = cursor {
            if self.is_best(entry) {
                break;
            }
            side.push(entry);
            cursor = self.entries.get(&entry.header.prev_blockhash);
        }
        side.reverse();
        let fork_height = side
            .first()
            .map_or(parent.height, |lowest| lowest.height - 1);
        Branch {
            chain: self,
            fork_height,
            side,
        }
    }

    /// Drops side-branch headers that fork off more than `max_reorg_depth` blocks below the tip:
    /// no switch to them can ever be accepted.
    pub(super) fn prune_side_branches(&mut self) {
        let Some(lowest_fork) = self.tip_entry().height.checked_sub(self.max_reorg_depth) else {
            return;
        };
        let mut by_height: Vec<(u32, BlockHash, BlockHash)> = self
            .side
            .iter()
            .filter_map(|hash| self.entries.get(hash))
            .map(|e| (e.height, e.hash, e.header.prev_blockhash))
            .collect();
        // Parents sort before children, so each fork height is known when a child needs it.
        by_height.sort_unstable();
        let mut fork_of: BTreeMap<BlockHash, u32> = BTreeMap::new();
        let mut doomed = Vec::new();
        for (height, hash, prev) in by_height {
            let fork = fork_of.get(&prev).copied().unwrap_or(height - 1);
            fork_of.insert(hash, fork);
            if fork < lowest_fork {
                doomed.push(hash);
            }
        }
        for hash in doomed {
            self.side.remove(&hash);
            self.entries.remove(&hash);
        }
    }

    pub(super) fn tip_entry(&self) -> &Entry {
        // `best` is never empty (it starts with the checkpoint and reorgs only replace blocks
        // above a fork point) and every hash in it is held.
        let tip = self.best.last().and_then(|hash| self.entries.get(hash));
        match tip {
            Some(entry) => entry,
            None => unreachable!("the best chain always holds at least the checkpoint"),
        }
    }

    pub(super) fn best_index(&self, height: u32) -> usize {
        (height - self.checkpoint.height) as usize
    }

    pub(super) fn best_entry_at(&self, height: u32) -> Option<&Entry> {
        let index = height.checked_sub(self.checkpoint.height)? as usize;
        self.best.get(index).and_then(|hash| self.entries.get(hash))
    }

    pub(super) fn is_best(&self, entry: &Entry) -> bool {
        self.best_entry_at(entry.height)
            .is_some_and(|best| best.hash == entry.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::break_pow;
    use super::*;

    #[test]
    fn checkpoints_must_sit_on_a_retarget_boundary_where_difficulty_moves() {
        let genesis = Checkpoint::genesis(Network::Bitcoin);
        assert!(HeaderChain::new(Network::Bitcoin, genesis, 6).is_ok());
        let off = Checkpoint::new(2017, genesis.header);
        assert_eq!(
            HeaderChain::new(Network::Bitcoin, off, 6).err(),
            Some(NewChainError::NotAtRetargetBoundary {
                hash: genesis.header.block_hash(),
                height: 2017,
                interval: 2016
            })
        );
        // Regtest never retargets, so any height will do.
        let regtest = Checkpoint::new(7, Checkpoint::genesis(Network::Regtest).header);
        assert!(HeaderChain::new(Network::Regtest, regtest, 6).is_ok());
    }

    #[test]
    fn a_checkpoint_without_its_work_is_refused() {
        let forged = break_pow(&Checkpoint::genesis(Network::Regtest).header);
        let err = HeaderChain::new(Network::Regtest, Checkpoint::new(0, forged), 6).err();
        assert!(matches!(err, Some(NewChainError::BadProofOfWork { .. })));
        // The regtest genesis does not meet mainnet's limit.
        let easy = Checkpoint::genesis(Network::Regtest);
        let err = HeaderChain::new(Network::Bitcoin, easy, 6).err();
        assert!(matches!(err, Some(NewChainError::InvalidBits { .. })));
    }
}
