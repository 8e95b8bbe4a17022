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

/// What accepting a valid header did to the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// The header was already held; nothing changed.
    AlreadyKnown {
        /// The header's hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The header extends the best chain and is the new tip.
    Extended {
        /// The header's hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The header completes a branch with more work than the old best chain, which the chain
    /// switched to.
    Reorganized {
        /// The header's hash, the new tip.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Height of the last block both chains share.
        fork_height: u32,
        /// Blocks that left the best chain, lowest first.
        disconnected: Vec<BlockHash>,
        /// Blocks that joined the best chain, lowest first (ending with `hash`).
        connected: Vec<BlockHash>,
    },
    /// The header is held on a side branch with no more work than the best chain.
    SideBranch {
        /// The header's hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
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

/// Why a header was refused. The chain is unchanged after any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptHeaderError {
    /// The header's nBits is unusable on this network.
    #[error("header {hash}: {source}")]
    InvalidBits {
        /// Header hash.
        hash: BlockHash,
        /// What is wrong with nBits.
        source: BitsError,
    },
    /// The header's hash is above the target its nBits claims.
    #[error("header {hash} does not meet the target of its nbits {bits:#010x}")]
    BadProofOfWork {
        /// Header hash.
        hash: BlockHash,
        /// Its nBits.
        bits: CompactTarget,
    },
    /// The previous block is not held (never seen, below the checkpoint, or pruned).
    #[error("header {hash} builds on unknown block {prev}")]
    UnknownPrevious {
        /// Header hash.
        hash: BlockHash,
        /// Its previous-block hash.
        prev: BlockHash,
    },
    /// The header leaves the best chain further below the tip than reorganisations may reach.
    #[error("header {hash} forks {depth} blocks below the tip at height {fork_height}; the reorg limit is {max_depth}")]
    ReorgTooDeep {
        /// Header hash.
        hash: BlockHash,
        /// Height of the best-chain block the header's branch starts from.
        fork_height: u32,
        /// Best-chain blocks that a switch to this branch would disconnect.
        depth: u32,
        /// The configured limit.
        max_depth: u32,
    },
    /// nBits is not the difficulty the network requires at this height.
    #[error("header {hash} at height {height} has nbits {got:#010x}, the network requires {expected:#010x}")]
    BadDifficultyBits {
        /// Header hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// nBits in the header.
        got: CompactTarget,
        /// nBits required.
        expected: CompactTarget,
    },
    /// The header's time is not after the median time of the eleven before it.
    #[error("header {hash} time {time} is not after the median time past {median_time_past}")]
    TimeTooOld {
        /// Header hash.
        hash: BlockHash,
        /// Its timestamp.
        time: u32,
        /// Median of the preceding timestamps.
        median_time_past: u32,
    },
    /// The header's time is more than two hours after the caller's clock.
    #[error("header {hash} time {time} is more than two hours after the current time {now}")]
    TimeTooNew {
        /// Header hash.
        hash: BlockHash,
        /// Its timestamp.
        time: u32,
        /// The caller's clock.
        now: u64,
    },
    /// BIP-94: a period's first header is more than ten minutes older than its parent.
    #[error("header {hash} time {time} starts a retarget period more than 600 s before its parent's time {parent_time}")]
    TimeWarp {
        /// Header hash.
        hash: BlockHash,
        /// Its timestamp.
        time: u32,
        /// The parent's timestamp.
        parent_time: u32,
    },
    /// The version predates a soft fork active at this height (BIP-34, BIP-66, BIP-65).
    #[error(
        "header {hash} at height {height} has version {version}, below the required {required}"
    )]
    ObsoleteVersion {
        /// Header hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Its version.
        version: i32,
        /// Lowest version allowed at this height.
        required: i32,
    },
    /// A rule needs an ancestor the chain does not hold (a checkpoint off a retarget boundary).
    #[error("header {hash} at height {height} needs the ancestor at height {missing}, which is below the checkpoint")]
    MissingAncestor {
        /// Header hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Height of the ancestor the rule needs.
        missing: u32,
    },
    /// Cumulative work or height no longer fits its integer type.
    #[error("header {hash} overflows the chain's height or cumulative work")]
    Overflow {
        /// Header hash.
        hash: BlockHash,
    },
}

/// A held header with what the chain derived for it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) hash: BlockHash,
    pub(super) header: Header,
    pub(super) height: u32,
    pub(super) chain_work: Work,
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
struct Branch<'a> {
    chain: &'a HeaderChain,
    fork_height: u32,
    /// Side-branch entries at heights `fork_height + 1 ..`, lowest first.
    side: Vec<&'a Entry>,
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

    /// Validates `header` and adds it, switching to its branch if that now has the most work.
    ///
    /// `now` is the caller's clock in Unix seconds, used only to refuse headers more than two
    /// hours in the future. On error nothing changes.
    pub fn accept_header(
        &mut self,
        header: &Header,
        now: u64,
    ) -> Result<AcceptOutcome, AcceptHeaderError> {
        self.accept(header, Some(now))
    }

    pub(super) fn accept(
        &mut self,
        header: &Header,
        now: Option<u64>,
    ) -> Result<AcceptOutcome, AcceptHeaderError> {
        let hash = header.block_hash();
        if let Some(known) = self.entries.get(&hash) {
            return Ok(AcceptOutcome::AlreadyKnown {
                hash,
                height: known.height,
            });
        }
        // Context-free and cheapest to check: a header without its work is dismissed first.
        let target = rules::target_from_bits(header.bits, &self.params)
            .map_err(|source| AcceptHeaderError::InvalidBits { hash, source })?;
        if !target.is_met_by(hash) {
            return Err(AcceptHeaderError::BadProofOfWork {
                hash,
                bits: header.bits,
            });
        }
        let prev = header.prev_blockhash;
        let parent = *self
            .entries
            .get(&prev)
            .ok_or(AcceptHeaderError::UnknownPrevious { hash, prev })?;
        let height = parent
            .height
            .checked_add(1)
            .ok_or(AcceptHeaderError::Overflow { hash })?;
        let branch = self.branch_to(&parent);
        let tip = self.tip_entry();
        let depth = tip.height - branch.fork_height;
        if depth > self.max_reorg_depth {
            return Err(AcceptHeaderError::ReorgTooDeep {
                hash,
                fork_height: branch.fork_height,
                depth,
                max_depth: self.max_reorg_depth,
            });
        }
        self.check_context(&branch, &parent, header, hash, height, now)?;
        let chain_work = rules::checked_add_work(parent.chain_work, target.to_work())
            .ok_or(AcceptHeaderError::Overflow { hash })?;

        let fork_height = branch.fork_height;
        let mut connected: Vec<BlockHash> = branch.side.iter().map(|e| e.hash).collect();
        connected.push(hash);
        let (tip_hash, tip_work) = (tip.hash, tip.chain_work);
        let entry = Entry {
            hash,
            header: *header,
            height,
            chain_work,
        };
        self.entries.insert(hash, entry);

        if prev == tip_hash {
            self.best.push(hash);
            self.prune_side_branches();
            return Ok(AcceptOutcome::Extended { hash, height });
        }
        if chain_work > tip_work {
            let disconnected = self.best.split_off(self.best_index(fork_height) + 1);
            for gone in &disconnected {
                self.side.insert(*gone);
            }
            for joined in &connected {
                self.side.remove(joined);
            }
            self.best.extend(connected.iter().copied());
            self.prune_side_branches();
            return Ok(AcceptOutcome::Reorganized {
                hash,
                height,
                fork_height,
                disconnected,
                connected,
            });
        }
        self.side.insert(hash);
        Ok(AcceptOutcome::SideBranch { hash, height })
    }

    /// The rules that depend on the header's ancestors and the caller's clock.
    fn check_context(
        &self,
        branch: &Branch<'_>,
        parent: &Entry,
        header: &Header,
        hash: BlockHash,
        height: u32,
        now: Option<u64>,
    ) -> Result<(), AcceptHeaderError> {
        let params = &self.params;
        let expected =
            rules::next_work_required(params, branch, parent.height, &parent.header, header.time)
                .map_err(|missing| AcceptHeaderError::MissingAncestor {
                hash,
                height,
                missing,
            })?;
        if header.bits != expected {
            return Err(AcceptHeaderError::BadDifficultyBits {
                hash,
                height,
                got: header.bits,
                expected,
            });
        }
        let median_time_past = rules::median_time_past(branch, parent.height, &parent.header);
        if header.time <= median_time_past {
            return Err(AcceptHeaderError::TimeTooOld {
                hash,
                time: header.time,
                median_time_past,
            });
        }
        if let Some(now) = now {
            if u64::from(header.time) > now.saturating_add(rules::MAX_FUTURE_BLOCK_TIME) {
                return Err(AcceptHeaderError::TimeTooNew {
                    hash,
                    time: header.time,
                    now,
                });
            }
        }
        if rules::is_time_warp(params, height, header.time, parent.header.time) {
            return Err(AcceptHeaderError::TimeWarp {
                hash,
                time: header.time,
                parent_time: parent.header.time,
            });
        }
        if let Some(required) = rules::minimum_version(params, height) {
            let version = header.version.to_consensus();
            if version < required {
                return Err(AcceptHeaderError::ObsoleteVersion {
                    hash,
                    height,
                    version,
                    required,
                });
            }
        }
        Ok(())
    }

    /// The ancestry of a header whose parent is `parent`: walks side-branch parents down to the
    /// best chain. Side entries always have a held parent (pruning removes whole subtrees) and
    /// the checkpoint is on the best chain, so the walk ends there.
    fn branch_to<'a>(&'a self, parent: &'a Entry) -> Branch<'a> {
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
    fn prune_side_branches(&mut self) {
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

    fn best_index(&self, height: u32) -> usize {
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
    use super::super::testkit::{
        break_pow, grind, mine, mine_run, mine_with_bits, regtest_chain, regtest_genesis, NOW,
        REGTEST_BITS,
    };
    use super::*;

    fn regtest(max_reorg_depth: u32) -> (HeaderChain, Header) {
        (regtest_chain(max_reorg_depth, &[]), regtest_genesis())
    }

    fn accept_all(chain: &mut HeaderChain, headers: &[Header]) {
        if let Err(e) = chain.accept_headers(headers, NOW) {
            panic!("header refused: {e}");
        }
    }

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

    #[test]
    fn headers_extend_the_tip_and_repeat_harmlessly() {
        let (mut chain, genesis) = regtest(6);
        let run = mine_run(&genesis, 3, 1);
        let outcome = chain.accept_header(&run[0], NOW);
        assert_eq!(
            outcome,
            Ok(AcceptOutcome::Extended {
                hash: run[0].block_hash(),
                height: 1
            })
        );
        accept_all(&mut chain, &run[1..]);
        assert_eq!(chain.tip().height, 3);
        assert_eq!(chain.tip().hash, run[2].block_hash());
        assert_eq!(
            chain.accept_header(&run[1], NOW),
            Ok(AcceptOutcome::AlreadyKnown {
                hash: run[1].block_hash(),
                height: 2
            })
        );
        // Equal work per regtest block: the tip's work is four blocks' worth.
        let per_block = genesis.work();
        let four = [per_block; 3]
            .into_iter()
            .try_fold(per_block, rules::checked_add_work);
        assert_eq!(Some(chain.tip().chain_work), four);
    }

    #[test]
    fn bad_proof_of_work_and_unknown_parents_are_refused() {
        let (mut chain, genesis) = regtest(6);
        let good = mine(&genesis, 1);
        let broken = break_pow(&good);
        assert_eq!(
            chain.accept_header(&broken, NOW),
            Err(AcceptHeaderError::BadProofOfWork {
                hash: broken.block_hash(),
                bits: broken.bits
            })
        );
        let orphan = mine(&good, 2);
        assert_eq!(
            chain.accept_header(&orphan, NOW),
            Err(AcceptHeaderError::UnknownPrevious {
                hash: orphan.block_hash(),
                prev: good.block_hash()
            })
        );
        assert_eq!(chain.tip().height, 0);
    }

    #[test]
    fn regtest_requires_the_pow_limit_bits() {
        let (mut chain, genesis) = regtest(6);
        // Harder than required still fails: nBits must equal the rule's value.
        let harder = mine_with_bits(&genesis, genesis.time + 600, 1, 0x2000_ffff);
        assert_eq!(
            chain.accept_header(&harder, NOW),
            Err(AcceptHeaderError::BadDifficultyBits {
                hash: harder.block_hash(),
                height: 1,
                got: CompactTarget::from_consensus(0x2000_ffff),
                expected: CompactTarget::from_consensus(REGTEST_BITS),
            })
        );
    }

    #[test]
    fn timestamps_must_pass_the_median_and_not_run_ahead_of_the_clock() {
        let (mut chain, genesis) = regtest(6);
        let run = mine_run(&genesis, 11, 1);
        accept_all(&mut chain, &run);
        // The median of heights 1..=11 is height 6's time.
        let median = run[5].time;
        let tip = run[10];
        let stale = mine_with_bits(&tip, median, 2, REGTEST_BITS);
        assert_eq!(
            chain.accept_header(&stale, NOW),
            Err(AcceptHeaderError::TimeTooOld {
                hash: stale.block_hash(),
                time: median,
                median_time_past: median
            })
        );
        let just_after = mine_with_bits(&tip, median + 1, 3, REGTEST_BITS);
        assert!(chain.accept_header(&just_after, NOW).is_ok());
        let now = u64::from(just_after.time);
        let early = mine_with_bits(&just_after, just_after.time + 7201, 4, REGTEST_BITS);
        assert_eq!(
            chain.accept_header(&early, now),
            Err(AcceptHeaderError::TimeTooNew {
                hash: early.block_hash(),
                time: early.time,
                now
            })
        );
        let on_limit = mine_with_bits(&just_after, just_after.time + 7200, 5, REGTEST_BITS);
        assert!(chain.accept_header(&on_limit, now).is_ok());
    }

    #[test]
    fn a_heavier_branch_takes_over_and_an_equal_one_does_not() {
        let (mut chain, genesis) = regtest(6);
        let main = mine_run(&genesis, 3, 1);
        accept_all(&mut chain, &main);
        let fork = mine_run(&main[0], 3, 2);
        assert_eq!(
            chain.accept_header(&fork[0], NOW),
            Ok(AcceptOutcome::SideBranch {
                hash: fork[0].block_hash(),
                height: 2
            })
        );
        // Same height as the tip: first seen wins.
        assert!(matches!(
            chain.accept_header(&fork[1], NOW),
            Ok(AcceptOutcome::SideBranch { height: 3, .. })
        ));
        assert_eq!(chain.tip().hash, main[2].block_hash());
        assert_eq!(
            chain.accept_header(&fork[2], NOW),
            Ok(AcceptOutcome::Reorganized {
                hash: fork[2].block_hash(),
                height: 4,
                fork_height: 1,
                disconnected: vec![main[1].block_hash(), main[2].block_hash()],
                connected: fork.iter().map(Header::block_hash).collect(),
            })
        );
        assert_eq!(chain.tip().hash, fork[2].block_hash());
        // The old branch is still held and can win back.
        let revenge = mine_run(&main[2], 2, 3);
        assert!(matches!(
            chain.accept_header(&revenge[0], NOW),
            Ok(AcceptOutcome::SideBranch { .. })
        ));
        assert!(matches!(
            chain.accept_header(&revenge[1], NOW),
            Ok(AcceptOutcome::Reorganized { fork_height: 1, .. })
        ));
    }

    #[test]
    fn forks_deeper_than_the_limit_are_refused_and_change_nothing() {
        let (mut chain, genesis) = regtest(2);
        let main = mine_run(&genesis, 5, 1);
        accept_all(&mut chain, &main);
        let before = chain.snapshot();
        // Forking off height 2 would disconnect heights 3..=5: three blocks.
        let deep = mine(&main[1], 2);
        assert_eq!(
            chain.accept_header(&deep, NOW),
            Err(AcceptHeaderError::ReorgTooDeep {
                hash: deep.block_hash(),
                fork_height: 2,
                depth: 3,
                max_depth: 2
            })
        );
        assert_eq!(chain.snapshot(), before);
        // Off height 3 is two blocks deep: allowed.
        let shallow = mine(&main[2], 3);
        assert!(matches!(
            chain.accept_header(&shallow, NOW),
            Ok(AcceptOutcome::SideBranch { .. })
        ));
    }

    #[test]
    fn side_branches_beyond_the_limit_are_pruned() {
        let (mut chain, genesis) = regtest(1);
        let main = mine_run(&genesis, 2, 1);
        accept_all(&mut chain, &main);
        let side = mine(&main[0], 2);
        accept_all(&mut chain, &[side]);
        assert_eq!(chain.height_of(&side.block_hash()), Some(2));
        let more = mine(&main[1], 3);
        accept_all(&mut chain, &[more]);
        // The side header forks at height 1, now two below the tip: it can never win.
        assert_eq!(chain.header(&side.block_hash()), None);
        let on_side = mine(&side, 4);
        assert!(matches!(
            chain.accept_header(&on_side, NOW),
            Err(AcceptHeaderError::UnknownPrevious { .. })
        ));
    }

    #[test]
    fn versions_below_the_soft_fork_floor_are_refused() {
        // On regtest, rust-bitcoin's activation heights put the BIP-65 floor at 1351.
        let (mut chain, genesis) = regtest(6);
        let run = mine_run(&genesis, 1350, 1);
        accept_all(&mut chain, &run);
        let tip = run[1349];
        let mut old = mine(&tip, 2);
        old.version = bitcoin::block::Version::from_consensus(3);
        let old = grind(old);
        assert_eq!(
            chain.accept_header(&old, NOW),
            Err(AcceptHeaderError::ObsoleteVersion {
                hash: old.block_hash(),
                height: 1351,
                version: 3,
                required: 4
            })
        );
    }

    #[test]
    fn regtest_crosses_a_retarget_boundary_at_the_pow_limit() {
        let (mut chain, genesis) = regtest(6);
        let run = mine_run(&genesis, 2017, 1);
        accept_all(&mut chain, &run);
        assert_eq!(chain.tip().height, 2017);
        let boundary = chain.best_entry_at(2016).map(|e| e.header.bits);
        assert_eq!(boundary, Some(CompactTarget::from_consensus(REGTEST_BITS)));
    }
}
