//! Block assembly and regtest proof of work. Pure: the caller passes the parent, the time
//! and the transactions; nothing here reads a clock or touches the chain.

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::{
    absolute, transaction, Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxMerkleNode, TxOut, Witness,
};

/// Regtest's proof-of-work limit in compact form, which is also the difficulty of every
/// regtest block (regtest never retargets).
pub const REGTEST_BITS_U32: u32 = 0x207f_ffff;

/// [`REGTEST_BITS_U32`] as a [`CompactTarget`].
pub fn regtest_bits() -> CompactTarget {
    CompactTarget::from_consensus(REGTEST_BITS_U32)
}

/// Blocks between subsidy halvings on regtest.
pub const REGTEST_HALVING_INTERVAL: u32 = 150;

/// Consensus limit on block weight.
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;

/// Weight kept free for the coinbase when selecting transactions.
pub const COINBASE_WEIGHT_RESERVE: u64 = 4_000;

/// The block subsidy at `height` on regtest.
pub fn regtest_subsidy(height: u32) -> Amount {
    let halvings = height / REGTEST_HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat((50 * 100_000_000) >> halvings)
}

/// Everything a new block needs besides its transactions.
#[derive(Debug, Clone)]
pub struct BlockTemplate {
    /// Hash of the parent block (the current tip).
    pub prev_hash: BlockHash,
    /// Height of the new block.
    pub height: u32,
    /// Block time; must exceed the median time of the last 11 blocks.
    pub time: u32,
    /// Where the subsidy and the fees go.
    pub payout_script: ScriptBuf,
    /// Sum of the fees of the included transactions.
    pub fees: Amount,
}

/// Block assembly failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    /// Every nonce and extra-nonce was tried without meeting the target.
    #[error("no proof of work found for block at height {0}")]
    NoProofOfWork(u32),
    /// The coinbase script would exceed Bitcoin's 100-byte limit.
    #[error("coinbase script for height {0} does not fit")]
    CoinbaseScript(u32),
}

/// The coinbase for `template`: BIP-34 height first in its script, the subsidy plus
/// fees to the payout script, and the BIP-141 witness reserved value in its witness.
fn coinbase(template: &BlockTemplate, extra_nonce: u32) -> Result<Transaction, AssembleError> {
    let mut extra = PushBytesBuf::new();
    extra
        .extend_from_slice(&extra_nonce.to_le_bytes())
        .map_err(|_| AssembleError::CoinbaseScript(template.height))?;
    let script_sig = Builder::new()
        .push_int(i64::from(template.height))
        .push_slice(extra)
        .into_script();
    let mut witness = Witness::new();
    witness.push([0u8; 32]);
    Ok(Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::MAX,
            witness,
        }],
        output: vec![TxOut {
            value: regtest_subsidy(template.height) + template.fees,
            script_pubkey: template.payout_script.clone(),
        }],
    })
}

/// Builds a block on `template` with `txs` (already ordered parents first) and grinds its
/// nonce until the header meets the regtest target. The block carries a BIP-141 witness
/// commitment, which Bitcoin Core requires as soon as any transaction has a witness.
pub fn assemble_block(
    template: &BlockTemplate,
    txs: Vec<Transaction>,
) -> Result<Block, AssembleError> {
    let target = regtest_bits().into();
    for extra_nonce in 0..u32::MAX {
        let mut block = Block {
            header: Header {
                version: Version::from_consensus(0x2000_0000),
                prev_blockhash: template.prev_hash,
                merkle_root: TxMerkleNode::all_zeros(),
                time: template.time,
                bits: regtest_bits(),
                nonce: 0,
            },
            txdata: std::iter::once(coinbase(template, extra_nonce)?)
                .chain(txs.iter().cloned())
                .collect(),
        };
        if let Some(witness_root) = block.witness_root() {
            let commitment = Block::compute_witness_commitment(&witness_root, &[0u8; 32]);
            let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
            script.extend_from_slice(commitment.as_byte_array());
            block.txdata[0].output.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: ScriptBuf::from_bytes(script),
            });
        }
        if let Some(root) = block.compute_merkle_root() {
            block.header.merkle_root = root;
        }
        for nonce in 0..=u32::MAX {
            block.header.nonce = nonce;
            if block.header.validate_pow(target).is_ok() {
                return Ok(block);
            }
        }
    }
    Err(AssembleError::NoProofOfWork(template.height))
}

/// The median of the last (up to) 11 block times, as BIP-113 defines it.
pub fn median_time_past(times: &[u32]) -> u32 {
    let start = times.len().saturating_sub(11);
    let mut last: Vec<u32> = times[start..].to_vec();
    last.sort_unstable();
    last.get(last.len() / 2).copied().unwrap_or(0)
}

/// The time for a new block: `now`, but strictly after the median time past.
pub fn next_block_time(now: u32, median_time_past: u32) -> u32 {
    now.max(median_time_past.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::Network;

    fn template(height: u32) -> BlockTemplate {
        BlockTemplate {
            prev_hash: bitcoin::constants::genesis_block(Network::Regtest).block_hash(),
            height,
            time: 1_700_000_000,
            payout_script: ScriptBuf::new_op_return([1u8; 4]),
            fees: Amount::from_sat(1234),
        }
    }

    #[test]
    fn assembled_block_meets_target_and_commits_to_height_and_witnesses() {
        // Heights 1..=16 are OP_1..OP_16 (as Bitcoin Core encodes them); rust-bitcoin's
        // BIP-34 reader only parses data pushes, so check a higher height.
        let block = assemble_block(&template(140), vec![]).expect("assemble");
        assert!(block.header.validate_pow(regtest_bits().into()).is_ok());
        assert!(block.check_merkle_root());
        assert!(block.check_witness_commitment());
        assert_eq!(block.bip34_block_height().expect("bip34"), 140);
        assert_eq!(
            block.txdata[0].output[0].value,
            Amount::from_sat(50 * 100_000_000 + 1234)
        );
        let low = assemble_block(&template(1), vec![]).expect("assemble");
        assert_eq!(low.txdata[0].input[0].script_sig.as_bytes()[0], 0x51);
    }

    #[test]
    fn subsidy_halves_every_150_blocks() {
        assert_eq!(regtest_subsidy(149), Amount::from_sat(5_000_000_000));
        assert_eq!(regtest_subsidy(150), Amount::from_sat(2_500_000_000));
        assert_eq!(regtest_subsidy(150 * 64), Amount::ZERO);
    }

    #[test]
    fn median_time_past_uses_last_eleven() {
        let times: Vec<u32> = (0..20).collect();
        assert_eq!(median_time_past(&times), 14);
        assert_eq!(median_time_past(&[5]), 5);
        assert_eq!(next_block_time(10, 14), 15);
        assert_eq!(next_block_time(100, 14), 100);
    }
}
