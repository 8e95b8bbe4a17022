//! Accepting one header: the checks in Bitcoin Core's order (known, proof of work, parent,
//! reorg depth, then the contextual rules), and the fork choice that follows.

use bitcoin::block::Header;
use bitcoin::pow::CompactTarget;
use bitcoin::BlockHash;

use super::chain::{Branch, Entry, HeaderChain};
use super::rules::{self, BitsError};

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

impl HeaderChain {
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
            anchor_bits: rules::difficulty_anchor(
                &self.params,
                height,
                header.bits,
                Some(parent.anchor_bits),
            ),
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
        let expected = rules::next_work_required(
            params,
            branch,
            parent.height,
            &parent.header,
            parent.anchor_bits,
            header.time,
        )
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
    fn median_time_past_follows_the_headers_own_branch() {
        let (mut chain, genesis) = regtest(20);
        accept_all(&mut chain, &mine_run(&genesis, 12, 1));
        // A lighter side branch from genesis whose blocks are a day apart.
        let mut side = vec![genesis];
        for i in 1..=11u32 {
            let prev = side[side.len() - 1];
            side.push(mine_with_bits(
                &prev,
                genesis.time + i * 86_400,
                100 + u64::from(i),
                REGTEST_BITS,
            ));
        }
        accept_all(&mut chain, &side[1..]);
        assert_eq!(chain.tip().height, 12);
        // Heights 1..=11 of the side branch have the median of height 6.
        let median = genesis.time + 6 * 86_400;
        let on_side = mine_with_bits(&side[11], median, 200, REGTEST_BITS);
        assert_eq!(
            chain.accept_header(&on_side, NOW),
            Err(AcceptHeaderError::TimeTooOld {
                hash: on_side.block_hash(),
                time: median,
                median_time_past: median
            })
        );
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
