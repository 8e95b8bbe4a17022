//! Property tests of the light client on regtest-difficulty headers: random fork trees and
//! reorganisations keep the tip on the most-work branch, reorganisations beyond the limit are
//! refused without changing anything, and Merkle proofs hold exactly for the leaves they name.

// Helpers shared with the unit tests; each test file uses a subset.
#[allow(dead_code)]
#[path = "../src/light_client/testkit.rs"]
mod testkit;

/// The path the shared test kit imports the light client from.
mod light_client {
    pub use fiamma_staking::light_client::*;
}

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::merkle_tree::PartialMerkleTree;
use bitcoin::{BlockHash, TxMerkleNode, Txid};
use light_client::{AcceptHeaderError, AcceptOutcome, HeaderChain, InclusionProof, MerkleBranch};
use proptest::prelude::*;
use proptest::sample::Index;
use testkit::{mine_run, regtest_chain, regtest_genesis, NOW};

/// Height of the best-chain block that `header`'s branch leaves from, found through the public
/// API by walking back over held side-branch headers.
fn fork_height(chain: &HeaderChain, header: &Header) -> Option<u32> {
    let mut hash = header.prev_blockhash;
    while !chain.is_on_best_chain(&hash) {
        hash = chain.header(&hash)?.prev_blockhash;
    }
    chain.height_of(&hash)
}

/// Checks the chain against the accepted headers (hash and height, in acceptance order,
/// pruned ones included): on regtest every block carries the same work, so the tip must be the
/// first accepted header of the greatest height, its work must be that many blocks' worth, and
/// the best chain must link from the tip down to genesis.
fn check_most_work(
    chain: &HeaderChain,
    accepted: &[(BlockHash, u32)],
) -> Result<(), TestCaseError> {
    let mut best = accepted[0];
    for &(hash, height) in accepted {
        if height > best.1 {
            best = (hash, height);
        }
    }
    let tip = chain.tip();
    prop_assert_eq!((tip.hash, tip.height), best);
    let per_block = regtest_genesis().work();
    let work = (0..tip.height).fold(per_block, |sum, _| sum + per_block);
    prop_assert_eq!(tip.chain_work, work);
    for h in 1..=tip.height {
        let header = chain.hash_at(h).and_then(|hash| chain.header(&hash));
        prop_assert_eq!(header.map(|h| h.prev_blockhash), chain.hash_at(h - 1));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Grows a random tree: each step mines one to four headers on a random held header.
    #[test]
    fn the_tip_is_always_the_first_seen_most_work_header(
        steps in prop::collection::vec((any::<Index>(), 1usize..=4), 1..24),
        max_depth in 0u32..5,
    ) {
        let mut chain = regtest_chain(max_depth, &[]);
        let genesis = regtest_genesis();
        let mut accepted = vec![(genesis.block_hash(), 0)];
        for (salt, (pick, len)) in steps.into_iter().enumerate() {
            let held: Vec<Header> = accepted
                .iter()
                .filter_map(|(hash, _)| chain.header(hash))
                .collect();
            let parent = *pick.get(&held);
            for header in mine_run(&parent, len, salt as u64) {
                let before = chain.snapshot();
                let tip_height = chain.tip().height;
                let fork = fork_height(&chain, &header)
                    .ok_or_else(|| TestCaseError::fail("parent of a mined header is not held"))?;
                match chain.accept_header(&header, NOW) {
                    Ok(outcome) => {
                        prop_assert!(tip_height - fork <= max_depth, "accepted a fork {} deep", tip_height - fork);
                        if let AcceptOutcome::Reorganized { fork_height, connected, disconnected, .. } = &outcome {
                            prop_assert_eq!(*fork_height, fork);
                            prop_assert!(disconnected.len() as u32 <= max_depth);
                            for (i, hash) in connected.iter().enumerate() {
                                prop_assert_eq!(chain.hash_at(fork + 1 + i as u32), Some(*hash));
                            }
                        }
                        let height = chain.height_of(&header.block_hash())
                            .ok_or_else(|| TestCaseError::fail("accepted header not held"))?;
                        accepted.push((header.block_hash(), height));
                    }
                    Err(AcceptHeaderError::ReorgTooDeep { depth, max_depth: limit, fork_height, .. }) => {
                        prop_assert_eq!((depth, limit, fork_height), (tip_height - fork, max_depth, fork));
                        prop_assert!(depth > max_depth);
                        prop_assert_eq!(chain.snapshot(), before);
                        // The rest of this run builds on the refused header.
                        break;
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected refusal: {e}"))),
                }
                check_most_work(&chain, &accepted)?;
            }
        }
        let snapshot = chain.snapshot();
        let restored = HeaderChain::restore(&snapshot).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(restored.snapshot(), snapshot);
    }

    /// A main chain, then a longer branch forking `fork_depth` blocks below its tip.
    #[test]
    fn reorgs_happen_within_the_limit_and_are_refused_beyond_it(
        main_len in 1usize..12,
        fork_back in 0usize..12,
        extra in 1usize..4,
        max_depth in 0u32..8,
    ) {
        let genesis = regtest_genesis();
        let main = mine_run(&genesis, main_len, 1);
        let mut chain = regtest_chain(max_depth, &main);
        let fork_depth = fork_back.min(main_len);
        let fork_base = if fork_depth == main_len { genesis } else { main[main_len - 1 - fork_depth] };
        let branch = mine_run(&fork_base, fork_depth + extra, 2);
        let before = chain.snapshot();
        let result = chain.accept_headers(&branch, NOW);
        if fork_depth as u32 <= max_depth {
            prop_assert!(result.is_ok());
            prop_assert_eq!(chain.tip().hash, branch[branch.len() - 1].block_hash());
            prop_assert_eq!(chain.tip().height as usize, main_len + extra);
        } else {
            let err = result.err().ok_or_else(|| TestCaseError::fail("deep reorg accepted"))?;
            prop_assert_eq!(err.index, 0);
            let refused_as_too_deep = matches!(err.source, AcceptHeaderError::ReorgTooDeep { .. });
            prop_assert!(refused_as_too_deep);
            prop_assert_eq!(chain.snapshot(), before);
        }
    }

    /// Every leaf of a random tree proves with its branch, and any changed index, sibling or
    /// transaction id fails.
    #[test]
    fn merkle_branches_prove_exactly_their_leaf(
        seeds in prop::collection::vec(any::<[u8; 32]>(), 1..300),
        pick in any::<Index>(),
        other in any::<Index>(),
        level in any::<Index>(),
    ) {
        let ids: Vec<Txid> = seeds.iter().map(|s| Txid::from_byte_array(*s)).collect();
        prop_assume!(ids.iter().collect::<std::collections::BTreeSet<_>>().len() == ids.len());
        let leaves = ids.iter().map(|t| TxMerkleNode::from_raw_hash(t.to_raw_hash()));
        let root = bitcoin::merkle_tree::calculate_root(leaves)
            .ok_or_else(|| TestCaseError::fail("empty tree"))?;
        let index = pick.index(ids.len());
        let branch = MerkleBranch::from_txids(&ids, index as u32)
            .ok_or_else(|| TestCaseError::fail("no branch"))?;
        let proof = InclusionProof::from(branch.clone());
        prop_assert_eq!(proof.verify(ids[index], root), Ok(index as u32));

        let other_index = other.index(ids.len());
        if other_index != index {
            prop_assert!(proof.verify(ids[other_index], root).is_err());
            let moved = MerkleBranch { index: other_index as u32, ..branch.clone() };
            prop_assert!(InclusionProof::from(moved).verify(ids[index], root).is_err());
        }
        if !branch.siblings.is_empty() {
            let mut bent = branch.clone();
            let at = level.index(bent.siblings.len());
            let mut bytes = bent.siblings[at].to_byte_array();
            bytes[0] ^= 1;
            bent.siblings[at] = TxMerkleNode::from_byte_array(bytes);
            prop_assert!(InclusionProof::from(bent).verify(ids[index], root).is_err());
        }

        let matches: Vec<bool> = (0..ids.len()).map(|i| i == index || i == other_index).collect();
        let tree = InclusionProof::from(PartialMerkleTree::from_txids(&ids, &matches));
        prop_assert_eq!(tree.verify(ids[index], root), Ok(index as u32));
        prop_assert_eq!(tree.verify(ids[other_index], root), Ok(other_index as u32));
    }
}
