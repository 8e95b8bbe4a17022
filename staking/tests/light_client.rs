//! The light client on real mainnet data and through its public API.
//!
//! Mainnet data is used only where the test can verify it: the headers link, one by one, to
//! rust-bitcoin's genesis header and each meets the mainnet target, which no invented header
//! could do without the work; block 1 and the two recent headers are those Bitcoin Core's own
//! kernel tests assert (vendored in `libbitcoinkernel-sys`, `src/test/kernel/test_kernel.cpp`).

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
use bitcoin::merkle_tree::{MerkleBlock, PartialMerkleTree};
use bitcoin::{Block, BlockHash, Network, TxMerkleNode};
use light_client::{
    target_from_bits, AcceptHeaderError, AcceptOutcome, BestChainError, Checkpoint, HeaderChain,
    InclusionError, InclusionProof, MerkleBranch, MerkleProofError,
};
use testkit::{break_pow, mine, mine_run, regtest_chain, regtest_genesis, NOW};

/// Mainnet headers at heights 0 through 9, consensus-encoded.
const MAINNET_HEADERS: [&str; 10] = [
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
    "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299",
    "010000004860eb18bf1b1620e37e9490fc8a427514416fd75159ab86688e9a8300000000d5fdcc541e25de1c7a5addedf24858b8bb665c9f36ef744ee42c316022c90f9bb0bc6649ffff001d08d2bd61",
    "01000000bddd99ccfda39da1b108ce1a5d70038d0a967bacb68b6b63065f626a0000000044f672226090d85db9a9f2fbfe5f0f9609b387af7be5b7fbb7a1767c831c9e995dbe6649ffff001d05e0ed6d",
    "010000004944469562ae1c2c74d9a535e00b6f3e40ffbad4f2fda3895501b582000000007a06ea98cd40ba2e3288262b28638cec5337c1456aaf5eedc8e9e5a20f062bdf8cc16649ffff001d2bfee0a9",
    "0100000085144a84488ea88d221c8bd6c059da090e88f8a2c99690ee55dbba4e00000000e11c48fecdd9e72510ca84f023370c9a38bf91ac5cae88019bee94d24528526344c36649ffff001d1d03e477",
    "01000000fc33f596f822a0a1951ffdbf2a897b095636ad871707bf5d3162729b00000000379dfb96a5ea8c81700ea4ac6b97ae9a9312b2d4301a29580e924ee6761a2520adc46649ffff001d189c4c97",
    "010000008d778fdc15a2d3fb76b7122a3b5582bea4f21f5a0c693537e7a03130000000003f674005103b42f984169c7d008370967e91920a6a5d64fd51282f75bc73a68af1c66649ffff001d39a59c86",
    "010000004494c8cf4154bdcc0720cd4a59d9c9b285e4b146d45f061d2b6c967100000000e3855ed886605b6d4a99d5fa2ef2e9b0b164e63df3c4136bebf2d0dac0f1f7a667c86649ffff001d1c4b5666",
    "01000000c60ddef1b7618ca2348a46e868afc26e3efc68226c78aa47f8488c4000000000c997a5e56e104102fa209c6a852dd90660a20b2d9c352423edce25857fcd37047fca6649ffff001d28404f53",
];

/// Mainnet block 1 in full (its only transaction is the coinbase).
const MAINNET_BLOCK_1: &str = "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e362990101000000010000000000000000000000000000000000000000000000000000000000000000ffffffff0704ffff001d0104ffffffff0100f2052a0100000043410496b538e853519c726a2c91e61ec11600ae1390813a627c66fb8be7947be63c52da7589379515d4e0a604f8141781e62294721166bf621e73a82cbf2342c858eeac00000000";

fn decode<T: bitcoin::consensus::Decodable>(hex_str: &str) -> T {
    let bytes = hex::decode(hex_str).unwrap_or_else(|e| panic!("hex: {e}"));
    bitcoin::consensus::deserialize(&bytes).unwrap_or_else(|e| panic!("decode: {e}"))
}

fn mainnet_headers() -> Vec<Header> {
    MAINNET_HEADERS.iter().map(|h| decode(h)).collect()
}

fn mainnet_chain() -> HeaderChain {
    HeaderChain::new(Network::Bitcoin, Checkpoint::genesis(Network::Bitcoin), 6)
        .unwrap_or_else(|e| panic!("mainnet genesis refused: {e}"))
}

/// A clock reading just after block 9 was mined.
fn mainnet_now(headers: &[Header]) -> u64 {
    u64::from(headers[9].time) + 60
}

#[test]
fn the_first_mainnet_headers_validate_under_mainnet_rules() {
    let headers = mainnet_headers();
    assert_eq!(headers[0], Checkpoint::genesis(Network::Bitcoin).header);
    let mut chain = mainnet_chain();
    let outcomes = chain
        .accept_headers(&headers[1..], mainnet_now(&headers))
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, outcome) in outcomes.iter().enumerate() {
        let height = i as u32 + 1;
        let hash = headers[i + 1].block_hash();
        assert_eq!(*outcome, AcceptOutcome::Extended { hash, height });
        assert_eq!(chain.hash_at(height), Some(hash));
    }
    let tip = chain.tip();
    assert_eq!(tip.height, 9);
    // Ten difficulty-1 blocks: 10 × 0x1_0001_0001 expected hashes each.
    let expected_work = headers.iter().map(Header::work).reduce(|a, b| a + b);
    assert_eq!(Some(tip.chain_work), expected_work);
    let block_1: BlockHash = "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(chain.hash_at(1), Some(block_1));
    assert_eq!(chain.check_k_deep(&block_1, 8), Ok(8));
}

#[test]
fn mainnet_headers_out_of_order_or_altered_are_refused() {
    let headers = mainnet_headers();
    let now = mainnet_now(&headers);
    let mut chain = mainnet_chain();
    assert_eq!(
        chain.accept_header(&headers[2], now),
        Err(AcceptHeaderError::UnknownPrevious {
            hash: headers[2].block_hash(),
            prev: headers[1].block_hash()
        })
    );
    let mut altered = headers[1];
    altered.nonce = altered.nonce.wrapping_add(1);
    assert_eq!(
        chain.accept_header(&altered, now),
        Err(AcceptHeaderError::BadProofOfWork {
            hash: altered.block_hash(),
            bits: altered.bits
        })
    );
    // Block 1 was mined in January 2009: a clock two hours before it refuses it.
    let early = u64::from(headers[1].time) - 7201;
    assert!(matches!(
        chain.accept_header(&headers[1], early),
        Err(AcceptHeaderError::TimeTooNew { .. })
    ));
    assert_eq!(chain.tip().height, 0);
}

#[test]
fn recent_mainnet_headers_meet_their_targets() {
    // Two 2025 headers from Bitcoin Core's kernel tests, with the hash Core asserts for the first.
    let first: Header = decode("00e07a26beaaeee2e71d7eb19279545edbaf15de0999983626ec00000000000000000000579cf78b65229bfb93f4a11463af2eaa5ad91780f27f5d147a423bea5f7e4cdf2a47e268b4dd01173a9662ee");
    let second: Header = decode("00c00020e7cb7b4de21d26d55bd384017b8bb9333ac3b2b55bed00000000000000000000d91b4484f801b99f03d36b9d26cfa83420b67f81da12d7e6c1e7f364e743c5ba9946e268b4dd011799c8533d");
    assert_eq!(
        first.block_hash().to_string(),
        "00000000000000000000325c7e14a4ee3b4fcb2343089a839287308a0ddbee4f"
    );
    let mainnet = bitcoin::consensus::Params::new(Network::Bitcoin);
    for header in [first, second] {
        let target = target_from_bits(header.bits, &mainnet).unwrap_or_else(|e| panic!("{e}"));
        assert!(target.is_met_by(header.block_hash()));
        let mut altered = header;
        altered.time += 1;
        assert!(!target.is_met_by(altered.block_hash()));
    }
}

#[test]
fn the_coinbase_of_mainnet_block_1_is_proven_in_both_formats() {
    let block: Block = decode(MAINNET_BLOCK_1);
    assert!(block.check_merkle_root());
    let headers = mainnet_headers();
    assert_eq!(block.header, headers[1]);
    let mut chain = mainnet_chain();
    chain
        .accept_headers(&headers[1..], mainnet_now(&headers))
        .unwrap_or_else(|e| panic!("{e}"));
    let txids: Vec<_> = block.txdata.iter().map(|tx| tx.compute_txid()).collect();
    let branch = MerkleBranch::from_txids(&txids, 0).unwrap_or_else(|| panic!("branch"));
    let inclusion = chain
        .verify_transaction_inclusion(&block.block_hash(), &block.txdata[0], &branch.into())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (inclusion.height, inclusion.index, inclusion.depth),
        (1, 0, 8)
    );
    let merkle_block = MerkleBlock::from_block_with_predicate(&block, |txid| *txid == txids[0]);
    let inclusion = chain
        .verify_merkle_block(&merkle_block, txids[0])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inclusion.height, 1);
    // The same coinbase does not sit in block 2.
    let proof = InclusionProof::PartialTree(merkle_block.txn.clone());
    assert!(matches!(
        chain.verify_inclusion(&headers[2].block_hash(), txids[0], &proof),
        Err(InclusionError::BadMerkleProof {
            source: MerkleProofError::RootMismatch { .. },
            ..
        })
    ));
}

#[test]
fn a_bad_merkle_proof_is_refused() {
    let ids: Vec<bitcoin::Txid> = (0u8..9).map(|i| bitcoin::Txid::hash(&[i])).collect();
    let root = bitcoin::merkle_tree::calculate_root(
        ids.iter()
            .map(|t| TxMerkleNode::from_raw_hash(t.to_raw_hash())),
    )
    .unwrap_or_else(|| panic!("root"));
    let mut header = mine(&regtest_genesis(), 1);
    header.merkle_root = root;
    let header = testkit::grind(header);
    let chain = regtest_chain(6, &[header]);
    let hash = header.block_hash();
    let good = MerkleBranch::from_txids(&ids, 6).unwrap_or_else(|| panic!("branch"));
    assert!(chain
        .verify_inclusion(&hash, ids[6], &good.clone().into())
        .is_ok());
    let mut bad = good.clone();
    bad.siblings[2] = TxMerkleNode::all_zeros();
    assert!(matches!(
        chain.verify_inclusion(&hash, ids[6], &bad.into()),
        Err(InclusionError::BadMerkleProof {
            hash: at,
            source: MerkleProofError::RootMismatch { expected, .. }
        }) if at == hash && expected == root
    ));
    let no_match = PartialMerkleTree::from_txids(&ids, &[false; 9]);
    assert_eq!(
        chain.verify_inclusion(&hash, ids[6], &no_match.into()),
        Err(InclusionError::BadMerkleProof {
            hash,
            source: MerkleProofError::NotMatched { txid: ids[6] }
        })
    );
    let unknown = BlockHash::all_zeros();
    assert_eq!(
        chain.verify_inclusion(&unknown, ids[6], &good.into()),
        Err(InclusionError::NotOnBestChain(
            BestChainError::UnknownBlock { hash: unknown }
        ))
    );
}

#[test]
fn a_wrong_previous_hash_or_bad_work_is_refused_on_regtest() {
    let run = mine_run(&regtest_genesis(), 3, 1);
    let mut chain = regtest_chain(6, &run[..1]);
    let before = chain.snapshot();
    assert!(matches!(
        chain.accept_header(&run[2], NOW),
        Err(AcceptHeaderError::UnknownPrevious { .. })
    ));
    let broken = break_pow(&run[1]);
    assert!(matches!(
        chain.accept_header(&broken, NOW),
        Err(AcceptHeaderError::BadProofOfWork { .. })
    ));
    assert_eq!(chain.snapshot(), before);
}
