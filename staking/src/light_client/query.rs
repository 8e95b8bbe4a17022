//! Questions the node asks the header chain: where a block is, how deep it is on the best
//! chain, and whether a transaction sits in it.

use bitcoin::block::Header;
use bitcoin::merkle_tree::MerkleBlock;
use bitcoin::{BlockHash, Transaction, Txid};

use super::accept::{AcceptHeaderError, AcceptOutcome};
use super::chain::{Entry, HeaderChain};
use super::merkle::{InclusionProof, MerkleProofError};

/// Why a block is not on the best chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BestChainError {
    /// The chain holds no such header.
    #[error("block {hash} is unknown to the header chain")]
    UnknownBlock {
        /// The block asked about.
        hash: BlockHash,
    },
    /// The header is held but on a side branch.
    #[error("block {hash} at height {height} is not on the best chain")]
    OnSideBranch {
        /// The block asked about.
        hash: BlockHash,
        /// Its height on its side branch.
        height: u32,
    },
}

/// Why a block is not k-deep on the best chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepthError {
    /// The block is not on the best chain.
    #[error(transparent)]
    NotOnBestChain(#[from] BestChainError),
    /// Fewer than k blocks are built on it.
    #[error("block {hash} has depth {depth}, below the required {k}")]
    NotDeepEnough {
        /// The block asked about.
        hash: BlockHash,
        /// Blocks built on it.
        depth: u32,
        /// Required depth.
        k: u32,
    },
}

/// Why a transaction is not shown to sit in a best-chain block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InclusionError {
    /// The block named by the proof is not on the best chain.
    #[error(transparent)]
    NotOnBestChain(#[from] BestChainError),
    /// The Merkle proof fails against the block's Merkle root.
    #[error("bad merkle proof against block {hash}: {source}")]
    BadMerkleProof {
        /// The block named by the proof.
        hash: BlockHash,
        /// Why the proof fails.
        source: MerkleProofError,
    },
}

/// A transaction shown to sit in a block of the best chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inclusion {
    /// The including block.
    pub block_hash: BlockHash,
    /// Its height.
    pub height: u32,
    /// The transaction's position in the block (0 is the coinbase).
    pub index: u32,
    /// Blocks built on the including block when checked (0 at the tip).
    pub depth: u32,
}

impl Inclusion {
    /// Babylon's k-deep: at least `k` blocks are built on the including block.
    pub fn is_k_deep(&self, k: u32) -> bool {
        self.depth >= k
    }
}

/// A batch of headers stopped at a refused one; the headers before it were applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header {index} of the batch was refused: {source}")]
pub struct AcceptHeadersError {
    /// Position in the batch of the refused header.
    pub index: usize,
    /// What was applied before it, in order.
    pub applied: Vec<AcceptOutcome>,
    /// Why it was refused.
    pub source: AcceptHeaderError,
}

impl HeaderChain {
    /// Accepts `headers` in order (as a backend returns them), stopping at the first refused
    /// one. Headers before it stay applied, as if each had been given to
    /// [`accept_header`](Self::accept_header).
    pub fn accept_headers(
        &mut self,
        headers: &[Header],
        now: u64,
    ) -> Result<Vec<AcceptOutcome>, AcceptHeadersError> {
        let mut applied = Vec::with_capacity(headers.len());
        for (index, header) in headers.iter().enumerate() {
            match self.accept_header(header, now) {
                Ok(outcome) => applied.push(outcome),
                Err(source) => {
                    return Err(AcceptHeadersError {
                        index,
                        applied,
                        source,
                    })
                }
            }
        }
        Ok(applied)
    }

    /// The held header with this hash, on the best chain or a side branch.
    pub fn header(&self, hash: &BlockHash) -> Option<Header> {
        self.entries.get(hash).map(|e| e.header)
    }

    /// Height of a held header, on the best chain or a side branch.
    pub fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        self.entries.get(hash).map(|e| e.height)
    }

    /// Hash of the best-chain block at `height`, if the chain reaches it.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.best_entry_at(height).map(|e| e.hash)
    }

    /// Whether `hash` is on the best chain.
    pub fn is_on_best_chain(&self, hash: &BlockHash) -> bool {
        self.entries.get(hash).is_some_and(|e| self.is_best(e))
    }

    /// Blocks built on `hash` along the best chain (0 for the tip), or `None` when it is not on
    /// the best chain.
    pub fn depth(&self, hash: &BlockHash) -> Option<u32> {
        self.best_entry(hash).ok().map(|(_, depth)| depth)
    }

    /// Bitcoin Core's confirmation count of `hash` (depth + 1), or `None` when it is not on
    /// the best chain.
    pub fn confirmations(&self, hash: &BlockHash) -> Option<u32> {
        self.depth(hash).map(|depth| depth + 1)
    }

    /// Checks that `hash` is on the best chain with at least `k` blocks built on it (Babylon's
    /// k-deep: `tip height − block height ≥ k`) and returns its depth.
    pub fn check_k_deep(&self, hash: &BlockHash, k: u32) -> Result<u32, DepthError> {
        let (_, depth) = self.best_entry(hash)?;
        if depth < k {
            return Err(DepthError::NotDeepEnough {
                hash: *hash,
                depth,
                k,
            });
        }
        Ok(depth)
    }

    /// Block hashes from the tip back to the checkpoint, dense for the last ten and then at
    /// doubling gaps: what a backend needs to find where its chain and this one part.
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut hashes = Vec::new();
        let mut index = self.best.len() - 1;
        let mut step = 1;
        loop {
            hashes.push(self.best[index]);
            if index == 0 {
                break;
            }
            if hashes.len() >= 10 {
                step *= 2;
            }
            index = index.saturating_sub(step);
        }
        hashes
    }

    /// Checks that `txid` sits in best-chain block `block_hash` by `proof`.
    pub fn verify_inclusion(
        &self,
        block_hash: &BlockHash,
        txid: Txid,
        proof: &InclusionProof,
    ) -> Result<Inclusion, InclusionError> {
        self.verify_with(block_hash, |root| proof.verify(txid, root))
    }

    /// Like [`verify_inclusion`](Self::verify_inclusion) for a whole transaction; refuses
    /// 64-byte transactions, whose inclusion a Merkle proof cannot establish.
    pub fn verify_transaction_inclusion(
        &self,
        block_hash: &BlockHash,
        tx: &Transaction,
        proof: &InclusionProof,
    ) -> Result<Inclusion, InclusionError> {
        self.verify_with(block_hash, |root| proof.verify_transaction(tx, root))
    }

    /// Checks that `txid` is among the matches of a BIP-37 Merkle block (what Bitcoin Core's
    /// `gettxoutproof` returns) whose header is on the best chain.
    pub fn verify_merkle_block(
        &self,
        merkle_block: &MerkleBlock,
        txid: Txid,
    ) -> Result<Inclusion, InclusionError> {
        let proof = InclusionProof::PartialTree(merkle_block.txn.clone());
        self.verify_inclusion(&merkle_block.header.block_hash(), txid, &proof)
    }

    fn verify_with(
        &self,
        block_hash: &BlockHash,
        check: impl FnOnce(bitcoin::TxMerkleNode) -> Result<u32, MerkleProofError>,
    ) -> Result<Inclusion, InclusionError> {
        let (entry, depth) = self.best_entry(block_hash)?;
        let hash = entry.hash;
        let index = check(entry.header.merkle_root)
            .map_err(|source| InclusionError::BadMerkleProof { hash, source })?;
        Ok(Inclusion {
            block_hash: hash,
            height: entry.height,
            index,
            depth,
        })
    }

    /// The best-chain entry for `hash` and its depth below the tip.
    fn best_entry(&self, hash: &BlockHash) -> Result<(&Entry, u32), BestChainError> {
        let entry = self
            .entries
            .get(hash)
            .ok_or(BestChainError::UnknownBlock { hash: *hash })?;
        if !self.is_best(entry) {
            return Err(BestChainError::OnSideBranch {
                hash: *hash,
                height: entry.height,
            });
        }
        Ok((entry, self.tip_entry().height - entry.height))
    }
}

#[cfg(test)]
mod tests {
    use super::super::merkle::MerkleBranch;
    use super::super::testkit::{
        break_pow, grind, mine, mine_run, regtest_chain, regtest_genesis, NOW,
    };
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::merkle_tree::PartialMerkleTree;
    use bitcoin::TxMerkleNode;

    /// A regtest chain of `len` headers on genesis, and the headers.
    fn chain_of(len: usize) -> (HeaderChain, Vec<Header>) {
        let run = mine_run(&regtest_genesis(), len, 1);
        (regtest_chain(6, &run), run)
    }

    fn txids(n: u8) -> Vec<Txid> {
        (0..n).map(|i| Txid::hash(&[i, 0xaa])).collect()
    }

    /// A regtest header on `prev` committing to `txids`.
    fn block_with(prev: &Header, txids: &[Txid]) -> Header {
        let leaves = txids
            .iter()
            .map(|t| TxMerkleNode::from_raw_hash(t.to_raw_hash()));
        let mut header = mine(prev, 99);
        header.merkle_root =
            bitcoin::merkle_tree::calculate_root(leaves).unwrap_or(header.merkle_root);
        grind(header)
    }

    #[test]
    fn depth_and_confirmations_count_from_the_tip() {
        let (chain, run) = chain_of(5);
        let third = run[2].block_hash();
        assert_eq!(chain.height_of(&third), Some(3));
        assert_eq!(chain.hash_at(3), Some(third));
        assert_eq!(chain.hash_at(6), None);
        assert_eq!(chain.depth(&third), Some(2));
        assert_eq!(chain.confirmations(&third), Some(3));
        assert_eq!(chain.depth(&run[4].block_hash()), Some(0));
        assert_eq!(chain.check_k_deep(&third, 2), Ok(2));
        assert_eq!(
            chain.check_k_deep(&third, 3),
            Err(DepthError::NotDeepEnough {
                hash: third,
                depth: 2,
                k: 3
            })
        );
        let unknown = BlockHash::all_zeros();
        assert_eq!(
            chain.check_k_deep(&unknown, 0),
            Err(DepthError::NotOnBestChain(BestChainError::UnknownBlock {
                hash: unknown
            }))
        );
    }

    #[test]
    fn side_branch_blocks_are_neither_deep_nor_proof_anchors() {
        let (mut chain, run) = chain_of(3);
        let ids = txids(2);
        let side = block_with(&run[0], &ids);
        assert!(chain.accept_header(&side, NOW).is_ok());
        let hash = side.block_hash();
        assert!(!chain.is_on_best_chain(&hash));
        let not_best = BestChainError::OnSideBranch { hash, height: 2 };
        assert_eq!(chain.depth(&hash), None);
        assert_eq!(
            chain.check_k_deep(&hash, 0),
            Err(DepthError::NotOnBestChain(not_best.clone()))
        );
        let proof = MerkleBranch::from_txids(&ids, 1).map(InclusionProof::from);
        let proof = proof.unwrap_or_else(|| panic!("branch"));
        assert_eq!(
            chain.verify_inclusion(&hash, ids[1], &proof),
            Err(InclusionError::NotOnBestChain(not_best))
        );
    }

    #[test]
    fn inclusion_is_proven_against_best_chain_headers() {
        let (mut chain, run) = chain_of(2);
        let ids = txids(5);
        let block = block_with(&run[1], &ids);
        assert!(chain.accept_header(&block, NOW).is_ok());
        let after = mine_run(&block, 2, 7);
        assert!(chain.accept_headers(&after, NOW).is_ok());
        let hash = block.block_hash();

        let branch = MerkleBranch::from_txids(&ids, 3).map(InclusionProof::from);
        let branch = branch.unwrap_or_else(|| panic!("branch"));
        let inclusion = chain.verify_inclusion(&hash, ids[3], &branch);
        assert_eq!(
            inclusion,
            Ok(Inclusion {
                block_hash: hash,
                height: 3,
                index: 3,
                depth: 2
            })
        );
        assert!(inclusion.is_ok_and(|i| i.is_k_deep(2) && !i.is_k_deep(3)));

        let matches: Vec<bool> = (0..5).map(|i| i == 3).collect();
        let merkle_block = MerkleBlock {
            header: block,
            txn: PartialMerkleTree::from_txids(&ids, &matches),
        };
        assert_eq!(
            chain
                .verify_merkle_block(&merkle_block, ids[3])
                .map(|i| i.index),
            Ok(3)
        );

        // The same proof under another block's root is a bad proof.
        let other = run[1].block_hash();
        assert!(matches!(
            chain.verify_inclusion(&other, ids[3], &branch),
            Err(InclusionError::BadMerkleProof { hash, source: MerkleProofError::RootMismatch { .. } }) if hash == other
        ));
    }

    #[test]
    fn sixty_four_byte_transactions_are_refused() {
        // version 2, one input spending the null outpoint with an empty script, one output of
        // 1 sat to a 4-byte script, lock time 0: 64 bytes.
        let raw = "02000000010000000000000000000000000000000000000000000000000000000000000000ffffffff00ffffffff0101000000000000000451515151\
                   00000000";
        let bytes = hex::decode(raw).unwrap_or_default();
        let tx: Transaction =
            bitcoin::consensus::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tx.base_size(), 64);
        let (mut chain, run) = chain_of(1);
        let ids = [Txid::hash(b"coinbase"), tx.compute_txid()];
        let block = block_with(&run[0], &ids);
        assert!(chain.accept_header(&block, NOW).is_ok());
        let proof = MerkleBranch::from_txids(&ids, 1).map(InclusionProof::from);
        let proof = proof.unwrap_or_else(|| panic!("branch"));
        assert_eq!(
            chain.verify_transaction_inclusion(&block.block_hash(), &tx, &proof),
            Err(InclusionError::BadMerkleProof {
                hash: block.block_hash(),
                source: MerkleProofError::SixtyFourByteTransaction { txid: ids[1] }
            })
        );
        // The txid alone is what the proof shows.
        assert!(chain
            .verify_inclusion(&block.block_hash(), ids[1], &proof)
            .is_ok());
    }

    #[test]
    fn a_batch_stops_at_the_first_refused_header_keeping_the_rest() {
        let (mut chain, run) = chain_of(1);
        let more = mine_run(&run[0], 3, 5);
        let more = [more[0], break_pow(&more[1]), more[2]];
        let err = chain.accept_headers(&more, NOW).err();
        assert_eq!(err.as_ref().map(|e| e.index), Some(1));
        assert_eq!(err.map(|e| e.applied.len()), Some(1));
        assert_eq!(chain.tip().hash, more[0].block_hash());
    }

    #[test]
    fn the_locator_is_dense_near_the_tip_and_ends_at_the_checkpoint() {
        let (chain, run) = chain_of(40);
        let locator = chain.locator();
        let heights: Vec<u32> = locator.iter().filter_map(|h| chain.height_of(h)).collect();
        assert_eq!(
            heights,
            vec![40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 29, 25, 17, 1, 0]
        );
        assert_eq!(locator[0], run[39].block_hash());
    }
}
