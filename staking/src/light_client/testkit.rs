//! Test support shared by the unit tests and `staking/tests/light_client*.rs` (included there
//! by path, with `crate::light_client` re-exported): regtest headers mined by grinding the
//! nonce, which at the regtest limit takes about two hashes.

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Target};
use bitcoin::{Network, TxMerkleNode};

use crate::light_client::{Checkpoint, HeaderChain};

/// A clock reading after every timestamp the helpers produce.
pub const NOW: u64 = 2_000_000_000;

/// nBits of the regtest proof-of-work limit.
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// A header on `prev` with `time`, a Merkle root derived from `salt` (so sibling headers
/// differ) and nBits `bits`, with a nonce that meets its target.
pub fn mine_with_bits(prev: &Header, time: u32, salt: u64, bits: u32) -> Header {
    grind(Header {
        version: Version::from_consensus(0x2000_0000),
        prev_blockhash: prev.block_hash(),
        merkle_root: TxMerkleNode::hash(&salt.to_le_bytes()),
        time,
        bits: CompactTarget::from_consensus(bits),
        nonce: 0,
    })
}

/// `header` with the first nonce from its current one that meets its own target.
pub fn grind(mut header: Header) -> Header {
    let target = Target::from_compact(header.bits);
    while !target.is_met_by(header.block_hash()) {
        header.nonce = header.nonce.wrapping_add(1);
    }
    header
}

/// A regtest header on `prev`, ten minutes later.
pub fn mine(prev: &Header, salt: u64) -> Header {
    mine_with_bits(prev, prev.time + 600, salt, REGTEST_BITS)
}

/// `count` regtest headers, each on the one before, starting on `base`.
pub fn mine_run(base: &Header, count: usize, salt: u64) -> Vec<Header> {
    let mut run: Vec<Header> = Vec::with_capacity(count);
    for i in 0..count {
        let prev = run.last().unwrap_or(base);
        let header = mine(prev, salt.wrapping_mul(1_000).wrapping_add(i as u64));
        run.push(header);
    }
    run
}

/// A header that fails its own target: the mined nonce moved until the hash is above it.
pub fn break_pow(header: &Header) -> Header {
    let mut broken = *header;
    let target = Target::from_compact(broken.bits);
    while target.is_met_by(broken.block_hash()) {
        broken.nonce = broken.nonce.wrapping_add(1);
    }
    broken
}

/// A regtest chain from genesis with `max_reorg_depth` that has accepted `headers` in order.
pub fn regtest_chain(max_reorg_depth: u32, headers: &[Header]) -> HeaderChain {
    let genesis = Checkpoint::genesis(Network::Regtest);
    let mut chain = HeaderChain::new(Network::Regtest, genesis, max_reorg_depth)
        .unwrap_or_else(|e| panic!("regtest genesis refused: {e}"));
    if let Err(e) = chain.accept_headers(headers, NOW) {
        panic!("test header refused: {e}");
    }
    chain
}

/// The regtest genesis header.
pub fn regtest_genesis() -> Header {
    Checkpoint::genesis(Network::Regtest).header
}
