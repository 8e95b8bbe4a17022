//! Bitcoin bytes from the network: transactions of a registration, inclusion proofs.

use std::sync::OnceLock;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::merkle_tree::calculate_root;
use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::{MerkleBlock, TxMerkleNode, Txid};
use fiamma_proto::staking::v1 as pb;
use fiamma_staking::light_client::{InclusionProof, MerkleBranch, MerkleProofError};
use fiamma_staking::params::Params;
use fiamma_staking::staking_tx::identify_staking_tx;
use prost::Message;

use super::split;
use crate::devnet::setup;
use crate::node::grpc::convert;

/// The params the checks validate against: the devnet's, a valid version of §7.
///
/// # Panics
/// If the devnet constants break a rule of §7 (a bug the devnet tests catch first).
pub(super) fn params() -> &'static Params {
    static PARAMS: OnceLock<Params> = OnceLock::new();
    PARAMS.get_or_init(|| setup::params().expect("the devnet params are valid"))
}

/// A transaction field of a request (`convert::transaction`): a decoded transaction
/// re-encodes to exactly the bytes it came from (consensus encoding is canonical: minimal
/// compact sizes, no witness flag without witnesses), and recognising it as an identifiable
/// staking transaction (with the tag of any OP_RETURN it carries) gives a value or an error.
pub fn transaction(data: &[u8]) {
    let Ok(tx) = convert::transaction("staking_tx", data) else {
        return;
    };
    assert_eq!(
        serialize(&tx),
        data,
        "a decoded transaction re-encodes to other bytes"
    );
    let p = params();
    for out in &tx.output {
        let script = out.script_pubkey.as_bytes();
        if let [op, _, a, b, c, d, ..] = script {
            if *op == OP_RETURN.to_u8() {
                let tag = [*a, *b, *c, *d];
                let _ = identify_staking_tx(&tx, &tag, &p.covenant_pks, p.covenant_quorum);
            }
        }
    }
}

/// An inclusion proof, by the first byte:
/// - `0`: a BIP-37 `merkleblock` (what `gettxoutproof` returns): it re-encodes to the same
///   bytes, and each transaction it matches under its header's root verifies at its index;
/// - `1`: AddInclusionProof's `InclusionProof` message: decoded by the node's conversion, the
///   branch computes a root for the transaction id carried after the message or refuses;
/// - else: a block of up to 64 transaction ids: the branch of each position leads to the
///   block's Merkle root (or is refused as duplicate padding when two ids are equal).
pub fn inclusion_proof(data: &[u8]) {
    match data.split_first() {
        Some((0, rest)) => merkle_block(rest),
        Some((1, rest)) => branch_message(rest),
        Some((_, rest)) => branches_of_block(rest),
        None => {}
    }
}

fn merkle_block(data: &[u8]) {
    let Ok(block) = deserialize::<MerkleBlock>(data) else {
        return;
    };
    assert_eq!(
        serialize(&block),
        data,
        "a decoded merkleblock re-encodes to other bytes"
    );
    let root = block.header.merkle_root;
    let proof = InclusionProof::PartialTree(block.txn.clone());
    let (mut matches, mut indexes) = (Vec::new(), Vec::new());
    if block.txn.extract_matches(&mut matches, &mut indexes) == Ok(root) {
        for (txid, index) in matches.iter().zip(&indexes) {
            // A txid matched twice verifies at its first position.
            let first = matches
                .iter()
                .zip(&indexes)
                .find_map(|(m, i)| (m == txid).then_some(*i));
            assert_eq!(
                proof.verify(*txid, root).ok(),
                first,
                "the txid matched at position {index} does not verify there"
            );
        }
    }
    let _ = proof.verify(Txid::all_zeros(), root);
}

fn branch_message(data: &[u8]) {
    let (message, txid) = split(data);
    let Ok(message) = pb::InclusionProof::decode(message) else {
        return;
    };
    let Ok((_, branch)) = convert::merkle_branch(Some(&message)) else {
        return;
    };
    let txid = <[u8; 32]>::try_from(txid)
        .map(Txid::from_byte_array)
        .unwrap_or_else(|_| Txid::all_zeros());
    if let Ok(root) = branch.compute_root(txid) {
        let proof = InclusionProof::Branch(branch.clone());
        assert_eq!(proof.verify(txid, root), Ok(branch.index));
    }
}

fn branches_of_block(data: &[u8]) {
    let txids: Vec<Txid> = data
        .chunks_exact(32)
        .take(64)
        .map(|c| Txid::from_byte_array(c.try_into().unwrap_or([0; 32])))
        .collect();
    let Some(root) = calculate_root(
        txids
            .iter()
            .map(|t| TxMerkleNode::from_raw_hash(t.to_raw_hash())),
    ) else {
        return;
    };
    let distinct = txids
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        == txids.len();
    for (index, txid) in (0u32..).zip(&txids) {
        let branch = MerkleBranch::from_txids(&txids, index)
            .unwrap_or_else(|| panic!("no branch for position {index} of {}", txids.len()));
        match branch.compute_root(*txid) {
            Ok(computed) => assert_eq!(computed, root, "branch of position {index}"),
            Err(MerkleProofError::DuplicatePadding { .. }) if !distinct => {}
            Err(e) => panic!("branch of position {index} of distinct txids refused: {e}"),
        }
    }
}
