//! Questions the node asks the header chain: where a block is, how deep it is on the best
//! chain, and whether a transaction sits in it.

use bitcoin::block::Header;
use bitcoin::merkle_tree::MerkleBlock;
use bitcoin::{BlockHash, Transaction, Txid};

use super::chain::{AcceptHeaderError, AcceptOutcome, Entry, HeaderChain};
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
