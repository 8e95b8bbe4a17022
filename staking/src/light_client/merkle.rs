//! Merkle inclusion proofs: a transaction id is committed to by a header's Merkle root.
//!
//! Two formats are accepted: a plain branch (sibling hashes from leaf to root plus the leaf
//! index, as Babylon's inclusion proof carries it) and Bitcoin Core's partial Merkle tree
//! (`gettxoutproof`, BIP-37 `merkleblock`).

use bitcoin::hashes::{Hash, HashEngine};
use bitcoin::merkle_tree::{MerkleBlockError, PartialMerkleTree};
use bitcoin::{Transaction, TxMerkleNode, Txid, Weight};
use serde::{Deserialize, Serialize};

/// Most transactions a block can hold: every transaction weighs at least 60 vbytes.
const MAX_BLOCK_TRANSACTIONS: u64 = Weight::MAX_BLOCK.to_wu() / Weight::MIN_TRANSACTION.to_wu();

/// Most levels a branch can have: the height of a tree over the largest possible block.
pub const MAX_BRANCH_LEN: usize =
    (u64::BITS - (MAX_BLOCK_TRANSACTIONS - 1).leading_zeros()) as usize;

// A tree of MAX_BRANCH_LEN levels holds the largest block, and one level fewer does not.
const _: () = assert!(1u64 << MAX_BRANCH_LEN >= MAX_BLOCK_TRANSACTIONS);
const _: () = assert!(1u64 << (MAX_BRANCH_LEN - 1) < MAX_BLOCK_TRANSACTIONS);

/// Why a Merkle proof does not show a transaction under a Merkle root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleProofError {
    /// The branch is deeper than any block's tree.
    #[error("merkle branch has {len} levels, more than the {max} any block can need")]
    BranchTooLong {
        /// Levels in the branch.
        len: usize,
        /// [`MAX_BRANCH_LEN`].
        max: usize,
    },
    /// The index has bits beyond the branch's levels.
    #[error("transaction index {index} does not fit a merkle branch of {len} levels")]
    IndexOutOfRange {
        /// Claimed leaf index.
        index: u32,
        /// Levels in the branch.
        len: usize,
    },
    /// A right-hand node equals its left sibling, which only the padding of an odd level can
    /// produce: the claimed position is a duplicate (CVE-2012-2459), not a real leaf.
    #[error("merkle branch level {level} pairs a right node with an identical left sibling")]
    DuplicatePadding {
        /// Level (0 = leaves) of the offending pair.
        level: usize,
    },
    /// The proof hashes up to a different root than the header commits to.
    #[error("merkle proof yields root {computed}, but the header commits to {expected}")]
    RootMismatch {
        /// Root the proof produced.
        computed: TxMerkleNode,
        /// Root in the header.
        expected: TxMerkleNode,
    },
    /// The partial Merkle tree is malformed.
    #[error("malformed partial merkle tree: {0}")]
    MalformedPartialTree(MerkleBlockError),
    /// The partial Merkle tree is valid but does not mark this transaction.
    #[error("partial merkle tree does not include transaction {txid}")]
    NotMatched {
        /// Transaction that was looked for.
        txid: Txid,
    },
    /// A 64-byte transaction (without witness) hashes like an inner tree node, so a proof for it
    /// could be forged from two real subtree hashes.
    #[error("transaction {txid} is 64 bytes without witness, indistinguishable from an inner merkle node")]
    SixtyFourByteTransaction {
        /// The refused transaction.
        txid: Txid,
    },
}

/// A Merkle branch: the sibling of each node on the path from a leaf up to the root, and the
/// leaf's position (bit `i` of `index` set means the path node at level `i` is a right child).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleBranch {
    /// Position of the transaction in its block (0 is the coinbase).
    pub index: u32,
    /// Sibling hashes, leaf level first.
    pub siblings: Vec<TxMerkleNode>,
}

impl MerkleBranch {
    /// Builds the branch for the transaction at `index` in a block whose transaction ids, in
    /// block order, are `txids`. `None` if `index` is not a position in `txids`.
    pub fn from_txids(txids: &[Txid], index: u32) -> Option<Self> {
        let mut position = usize::try_from(index).ok()?;
        let mut level: Vec<TxMerkleNode> = txids.iter().map(|txid| leaf(*txid)).collect();
        level.get(position)?;
        let mut siblings = Vec::new();
        while level.len() > 1 {
            // The last node of an odd level is paired with itself.
            let sibling = level
                .get(position ^ 1)
                .or_else(|| level.get(position))
                .copied()?;
            siblings.push(sibling);
            level = level
                .chunks(2)
                .map(|pair| parent(&pair[0], pair.get(1).unwrap_or(&pair[0])))
                .collect();
            position /= 2;
        }
        Some(Self { index, siblings })
    }

    /// The Merkle root this branch commits `txid` to.
    pub fn compute_root(&self, txid: Txid) -> Result<TxMerkleNode, MerkleProofError> {
        let len = self.siblings.len();
        if len > MAX_BRANCH_LEN {
            return Err(MerkleProofError::BranchTooLong {
                len,
                max: MAX_BRANCH_LEN,
            });
        }
        // len ≤ MAX_BRANCH_LEN < 32, so the shift is in range.
        if self.index >> len != 0 {
            return Err(MerkleProofError::IndexOutOfRange {
                index: self.index,
                len,
            });
        }
        let mut node = leaf(txid);
        for (level, sibling) in self.siblings.iter().enumerate() {
            node = if (self.index >> level) & 1 == 1 {
                if *sibling == node {
                    return Err(MerkleProofError::DuplicatePadding { level });
                }
                parent(sibling, &node)
            } else {
                parent(&node, sibling)
            };
        }
        Ok(node)
    }
}

/// A proof that a transaction id is committed to by a Merkle root, in either accepted format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InclusionProof {
    /// A single branch with the leaf index.
    Branch(MerkleBranch),
    /// Bitcoin Core's partial Merkle tree (the `txn` of a `MerkleBlock`).
    PartialTree(PartialMerkleTree),
}

impl From<MerkleBranch> for InclusionProof {
    fn from(branch: MerkleBranch) -> Self {
        Self::Branch(branch)
    }
}

impl From<PartialMerkleTree> for InclusionProof {
    fn from(tree: PartialMerkleTree) -> Self {
        Self::PartialTree(tree)
    }
}

impl InclusionProof {
    /// Checks that `txid` sits under `merkle_root` and returns its position in the block.
    pub fn verify(&self, txid: Txid, merkle_root: TxMerkleNode) -> Result<u32, MerkleProofError> {
        match self {
            Self::Branch(branch) => {
                let computed = branch.compute_root(txid)?;
                check_root(computed, merkle_root)?;
                Ok(branch.index)
            }
            Self::PartialTree(tree) => {
                let (mut matches, mut indexes) = (Vec::new(), Vec::new());
                let computed = tree
                    .extract_matches(&mut matches, &mut indexes)
                    .map_err(MerkleProofError::MalformedPartialTree)?;
                check_root(computed, merkle_root)?;
                matches
                    .iter()
                    .zip(indexes)
                    .find_map(|(matched, index)| (*matched == txid).then_some(index))
                    .ok_or(MerkleProofError::NotMatched { txid })
            }
        }
    }

    /// Like [`verify`](Self::verify) for a whole transaction, refusing 64-byte transactions
    /// whose inclusion a Merkle proof cannot establish.
    pub fn verify_transaction(
        &self,
        tx: &Transaction,
        merkle_root: TxMerkleNode,
    ) -> Result<u32, MerkleProofError> {
        let txid = tx.compute_txid();
        if tx.base_size() == 64 {
            return Err(MerkleProofError::SixtyFourByteTransaction { txid });
        }
        self.verify(txid, merkle_root)
    }
}

fn check_root(computed: TxMerkleNode, expected: TxMerkleNode) -> Result<(), MerkleProofError> {
    if computed == expected {
        Ok(())
    } else {
        Err(MerkleProofError::RootMismatch { computed, expected })
    }
}

fn leaf(txid: Txid) -> TxMerkleNode {
    TxMerkleNode::from_raw_hash(txid.to_raw_hash())
}

fn parent(left: &TxMerkleNode, right: &TxMerkleNode) -> TxMerkleNode {
    let mut engine = TxMerkleNode::engine();
    engine.input(left.as_byte_array());
    engine.input(right.as_byte_array());
    TxMerkleNode::from_engine(engine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::merkle_tree;

    fn txids(n: u8) -> Vec<Txid> {
        (0..n).map(|i| Txid::hash(&[i])).collect()
    }

    fn root(txids: &[Txid]) -> TxMerkleNode {
        let leaves = txids.iter().map(|t| leaf(*t));
        merkle_tree::calculate_root(leaves).unwrap_or_else(|| leaf(Txid::all_zeros()))
    }

    #[test]
    fn max_branch_len_is_the_height_of_the_largest_block() {
        assert_eq!(MAX_BRANCH_LEN, 15);
    }

    #[test]
    fn every_leaf_of_every_small_tree_proves_against_rust_bitcoins_root() {
        for n in 1..=17 {
            let ids = txids(n);
            let expected = root(&ids);
            for (index, txid) in ids.iter().enumerate() {
                let index = index as u32;
                let branch = MerkleBranch::from_txids(&ids, index);
                let proof =
                    InclusionProof::from(branch.clone().unwrap_or_else(|| panic!("{n}/{index}")));
                assert_eq!(
                    proof.verify(*txid, expected),
                    Ok(index),
                    "{n} txs, index {index}"
                );
            }
            assert_eq!(MerkleBranch::from_txids(&ids, u32::from(n)), None);
        }
    }

    #[test]
    fn a_wrong_txid_sibling_or_index_is_refused() {
        let ids = txids(6);
        let expected = root(&ids);
        let branch = MerkleBranch::from_txids(&ids, 3).unwrap_or_else(|| panic!("branch"));
        let other = Txid::hash(b"not in the block");
        assert!(matches!(
            InclusionProof::from(branch.clone()).verify(other, expected),
            Err(MerkleProofError::RootMismatch { .. })
        ));
        let mut bent = branch.clone();
        bent.siblings[1] = leaf(other);
        assert!(matches!(
            InclusionProof::from(bent).verify(ids[3], expected),
            Err(MerkleProofError::RootMismatch { .. })
        ));
        let moved = MerkleBranch {
            index: 2,
            ..branch.clone()
        };
        assert!(matches!(
            InclusionProof::from(moved).verify(ids[3], expected),
            Err(MerkleProofError::RootMismatch { .. })
        ));
        let wide = MerkleBranch { index: 8, ..branch };
        assert_eq!(
            InclusionProof::from(wide).verify(ids[3], expected),
            Err(MerkleProofError::IndexOutOfRange { index: 8, len: 3 })
        );
    }

    #[test]
    fn padding_duplicates_are_not_leaves() {
        // With three transactions the third is paired with itself; claiming the phantom fourth
        // position reproduces the root but must be refused.
        let ids = txids(3);
        let expected = root(&ids);
        let real = MerkleBranch::from_txids(&ids, 2).unwrap_or_else(|| panic!("branch"));
        let phantom = MerkleBranch { index: 3, ..real };
        assert_eq!(
            InclusionProof::from(phantom).verify(ids[2], expected),
            Err(MerkleProofError::DuplicatePadding { level: 0 })
        );
    }

    #[test]
    fn overlong_branches_are_refused() {
        let branch = MerkleBranch {
            index: 0,
            siblings: vec![leaf(Txid::all_zeros()); MAX_BRANCH_LEN + 1],
        };
        assert_eq!(
            branch.compute_root(Txid::all_zeros()),
            Err(MerkleProofError::BranchTooLong {
                len: MAX_BRANCH_LEN + 1,
                max: MAX_BRANCH_LEN
            })
        );
    }

    #[test]
    fn partial_trees_prove_matched_transactions_only() {
        let ids = txids(7);
        let expected = root(&ids);
        let matches: Vec<bool> = (0..7).map(|i| i == 4).collect();
        let proof = InclusionProof::from(PartialMerkleTree::from_txids(&ids, &matches));
        assert_eq!(proof.verify(ids[4], expected), Ok(4));
        assert_eq!(
            proof.verify(ids[5], expected),
            Err(MerkleProofError::NotMatched { txid: ids[5] })
        );
        let elsewhere = root(&ids[..6]);
        assert!(matches!(
            proof.verify(ids[4], elsewhere),
            Err(MerkleProofError::RootMismatch { .. })
        ));
    }
}
