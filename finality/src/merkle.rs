//! RFC-6962 Merkle trees (`PROTOCOL.md` §9, §10): leaf `sha256(0x00 ‖ x)`, inner
//! `sha256(0x01 ‖ L ‖ R)`, a tree over n > 1 leaves split at the largest power of two below n.
//! The root of no leaves is `sha256("")`.
//!
//! Leaves are arbitrary byte strings, so the same tree serves randomness commitments (leaves
//! are public randomness) and round hashes (leaves are `proof_id ‖ verdict`). Inclusion proofs
//! have the shape CometBFT and Babylon use: index, total, leaf hash and the aunts from the
//! leaf's sibling up to the root's child.

use bitcoin::hashes::{sha256, Hash, HashEngine};

/// A 32-byte SHA-256 digest: a node of the tree.
pub type Digest = [u8; 32];

/// The hash of a leaf: `sha256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Digest {
    let mut engine = sha256::Hash::engine();
    engine.input(&[0x00]);
    engine.input(leaf);
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// The hash of an inner node: `sha256(0x01 ‖ left ‖ right)`.
pub fn inner_hash(left: &Digest, right: &Digest) -> Digest {
    let mut engine = sha256::Hash::engine();
    engine.input(&[0x01]);
    engine.input(left);
    engine.input(right);
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// The root of a tree without leaves: `sha256("")`.
pub fn empty_root() -> Digest {
    sha256::Hash::hash(&[]).to_byte_array()
}

/// The number of leaves in the left subtree of a tree over `n ≥ 2` leaves: the largest power of
/// two below n.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The Merkle root over `leaves`, in order, without keeping the tree.
pub fn root<L: AsRef<[u8]>>(leaves: &[L]) -> Digest {
    fn subtree<L: AsRef<[u8]>>(leaves: &[L]) -> Digest {
        match leaves {
            [leaf] => leaf_hash(leaf.as_ref()),
            _ => {
                let (left, right) = leaves.split_at(split_point(leaves.len() as u64) as usize);
                inner_hash(&subtree(left), &subtree(right))
            }
        }
    }
    if leaves.is_empty() {
        return empty_root();
    }
    subtree(leaves)
}

/// A Merkle tree that keeps every node, so that inclusion proofs come out in O(log n).
///
/// Nodes are stored in post-order: the subtree over m leaves occupies 2m − 1 consecutive
/// entries, its left subtree first, then its right subtree, then its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    leaves: u64,
    nodes: Vec<Digest>,
}

impl MerkleTree {
    /// Builds the tree over `leaves`, in order.
    pub fn new<L: AsRef<[u8]>>(leaves: &[L]) -> Self {
        fn build<L: AsRef<[u8]>>(leaves: &[L], nodes: &mut Vec<Digest>) -> Digest {
            let node = match leaves {
                [leaf] => leaf_hash(leaf.as_ref()),
                _ => {
                    let (left, right) = leaves.split_at(split_point(leaves.len() as u64) as usize);
                    let l = build(left, nodes);
                    let r = build(right, nodes);
                    inner_hash(&l, &r)
                }
            };
            nodes.push(node);
            node
        }
        let mut nodes = Vec::with_capacity((2 * leaves.len()).saturating_sub(1));
        if !leaves.is_empty() {
            build(leaves, &mut nodes);
        }
        MerkleTree {
            leaves: leaves.len() as u64,
            nodes,
        }
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.leaves
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.leaves == 0
    }

    /// The root; equal to [`root`] over the same leaves.
    pub fn root(&self) -> Digest {
        self.nodes.last().copied().unwrap_or_else(empty_root)
    }

    /// The inclusion proof of leaf `index`, which verifies against [`MerkleTree::root`].
    ///
    /// # Errors
    /// [`ProofIndexError`] when `index` is not below the number of leaves.
    pub fn proof(&self, index: u64) -> Result<Proof, ProofIndexError> {
        if index >= self.leaves {
            return Err(ProofIndexError {
                index,
                total: self.leaves,
            });
        }
        // Walk down from the root; `start` is where the current subtree begins in `nodes`.
        let (mut first, mut size, mut start) = (0u64, self.leaves, 0usize);
        let mut aunts = Vec::new();
        while size > 1 {
            let k = split_point(size);
            let left_root = start + 2 * k as usize - 2;
            let right_root = start + 2 * size as usize - 3;
            if index - first < k {
                aunts.push(self.nodes[right_root]);
                size = k;
            } else {
                aunts.push(self.nodes[left_root]);
                first += k;
                size -= k;
                start = left_root + 1;
            }
        }
        aunts.reverse();
        Ok(Proof {
            index,
            total: self.leaves,
            leaf_hash: self.nodes[start],
            aunts,
        })
    }
}

/// The requested leaf is not in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("leaf index {index} is not below the tree size {total}")]
pub struct ProofIndexError {
    /// The requested index.
    pub index: u64,
    /// The number of leaves.
    pub total: u64,
}

/// An inclusion proof of one leaf in a tree of `total` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The leaf's position, from 0.
    pub index: u64,
    /// The number of leaves in the tree.
    pub total: u64,
    /// `sha256(0x00 ‖ leaf)`.
    pub leaf_hash: Digest,
    /// The siblings on the path from the leaf to the root, the leaf's sibling first.
    pub aunts: Vec<Digest>,
}

impl Proof {
    /// Checks that `leaf` is at `index` of a tree of `total` leaves with root `root`.
    ///
    /// # Errors
    /// [`ProofError`] for a leaf that does not match `leaf_hash`, an index not below `total`,
    /// a wrong number of aunts, or a computed root other than `root`.
    pub fn verify(&self, root: &Digest, leaf: &[u8]) -> Result<(), ProofError> {
        let got = leaf_hash(leaf);
        if got != self.leaf_hash {
            return Err(ProofError::LeafMismatch {
                got,
                expected: self.leaf_hash,
            });
        }
        let computed = self.compute_root()?;
        if computed != *root {
            return Err(ProofError::RootMismatch {
                computed,
                expected: *root,
            });
        }
        Ok(())
    }

    /// The root this proof leads to from `leaf_hash`.
    ///
    /// # Errors
    /// [`ProofError::IndexOutOfRange`] or [`ProofError::AuntCount`] for a malformed proof.
    pub fn compute_root(&self) -> Result<Digest, ProofError> {
        if self.index >= self.total {
            return Err(ProofError::IndexOutOfRange {
                index: self.index,
                total: self.total,
            });
        }
        // Directions from the root down, as bits (1 = the path goes right); a tree of at most
        // 2^64 leaves is at most 64 levels deep.
        let (mut index, mut size, mut depth, mut right_turns) =
            (self.index, self.total, 0usize, 0u64);
        while size > 1 {
            let k = split_point(size);
            right_turns <<= 1;
            if index < k {
                size = k;
            } else {
                right_turns |= 1;
                index -= k;
                size -= k;
            }
            depth += 1;
        }
        if self.aunts.len() != depth {
            return Err(ProofError::AuntCount {
                index: self.index,
                total: self.total,
                got: self.aunts.len(),
                expected: depth,
            });
        }
        // The lowest bit is the last turn, whose sibling is the first aunt.
        let mut node = self.leaf_hash;
        for aunt in &self.aunts {
            node = if right_turns & 1 == 1 {
                inner_hash(aunt, &node)
            } else {
                inner_hash(&node, aunt)
            };
            right_turns >>= 1;
        }
        Ok(node)
    }
}

/// Why an inclusion proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The proof's index is outside its tree.
    #[error("proof index {index} is not below the tree size {total}")]
    IndexOutOfRange {
        /// The proof's index.
        index: u64,
        /// The proof's tree size.
        total: u64,
    },
    /// The number of aunts does not match the depth of the leaf.
    #[error("proof for leaf {index} of {total} has {got} aunts, expected {expected}")]
    AuntCount {
        /// The proof's index.
        index: u64,
        /// The proof's tree size.
        total: u64,
        /// The number of aunts in the proof.
        got: usize,
        /// The depth of leaf `index` in a tree of `total` leaves.
        expected: usize,
    },
    /// The leaf does not hash to the proof's leaf hash.
    #[error("leaf hashes to {}, the proof has {}", hex::encode(.got), hex::encode(.expected))]
    LeafMismatch {
        /// The hash of the given leaf.
        got: Digest,
        /// The proof's leaf hash.
        expected: Digest,
    },
    /// The proof leads to another root.
    #[error("proof leads to root {}, expected {}", hex::encode(.computed), hex::encode(.expected))]
    RootMismatch {
        /// The root the proof leads to.
        computed: Digest,
        /// The root it was checked against.
        expected: Digest,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
    }

    #[test]
    fn split_point_is_the_largest_power_of_two_below_n() {
        let cases = [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1000, 512),
            (1024, 512),
        ];
        for (n, k) in cases {
            assert_eq!(split_point(n), k, "n = {n}");
        }
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn small_trees_have_the_rfc_6962_shape() {
        let l = leaves(3);
        let h: Vec<Digest> = l.iter().map(|x| leaf_hash(x)).collect();
        assert_eq!(root::<Vec<u8>>(&[]), empty_root());
        assert_eq!(root(&l[..1]), h[0]);
        assert_eq!(root(&l[..2]), inner_hash(&h[0], &h[1]));
        assert_eq!(root(&l), inner_hash(&inner_hash(&h[0], &h[1]), &h[2]));
        // sha256 of the empty string
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut expected_leaf = vec![0u8];
        expected_leaf.extend_from_slice(b"leaf 0");
        assert_eq!(h[0], sha256::Hash::hash(&expected_leaf).to_byte_array());
    }

    #[test]
    fn proof_outside_the_tree_is_refused() {
        let tree = MerkleTree::new(&leaves(5));
        assert_eq!(tree.proof(5), Err(ProofIndexError { index: 5, total: 5 }));
        assert!(MerkleTree::new::<Vec<u8>>(&[]).proof(0).is_err());
        assert_eq!(MerkleTree::new::<Vec<u8>>(&[]).root(), empty_root());
    }

    #[test]
    fn malformed_proofs_have_typed_errors() {
        let l = leaves(5);
        let tree = MerkleTree::new(&l);
        let mut proof = tree.proof(4).expect("in range");
        assert_eq!(proof.aunts.len(), 1);
        proof.aunts.push([0; 32]);
        assert!(matches!(
            proof.verify(&tree.root(), &l[4]),
            Err(ProofError::AuntCount {
                got: 2,
                expected: 1,
                ..
            })
        ));
        proof.index = 5;
        assert!(matches!(
            proof.verify(&tree.root(), &l[4]),
            Err(ProofError::IndexOutOfRange { index: 5, total: 5 })
        ));
        assert!(matches!(
            tree.proof(0).expect("in range").verify(&tree.root(), &l[1]),
            Err(ProofError::LeafMismatch { .. })
        ));
        assert!(matches!(
            tree.proof(0).expect("in range").verify(&[0; 32], &l[0]),
            Err(ProofError::RootMismatch { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_proof_verifies_and_any_change_breaks_it(
            n in 1usize..200,
            pick in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let l = leaves(n);
            let tree = MerkleTree::new(&l);
            prop_assert_eq!(tree.root(), root(&l));
            let index = pick.index(n);
            for (i, leaf) in l.iter().enumerate() {
                let proof = tree.proof(i as u64).expect("in range");
                prop_assert_eq!(proof.verify(&tree.root(), leaf), Ok(()));
            }
            let proof = tree.proof(index as u64).expect("in range");

            // another leaf
            let mut changed = l[index].clone();
            changed.push(0);
            prop_assert!(proof.verify(&tree.root(), &changed).is_err());

            // a flipped bit in an aunt
            if !proof.aunts.is_empty() {
                let mut bad = proof.clone();
                let a = flip.index(bad.aunts.len());
                bad.aunts[a][usize::from(bit) * 4] ^= 1 << bit;
                prop_assert!(bad.verify(&tree.root(), &l[index]).is_err());
            }

            // another index (same leaf and aunts)
            for other in 0..n as u64 {
                if other != index as u64 {
                    let mut bad = proof.clone();
                    bad.index = other;
                    prop_assert!(bad.verify(&tree.root(), &l[index]).is_err());
                }
            }
        }
    }
}
