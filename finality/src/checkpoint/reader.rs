//! Reading the latest checkpoint from Bitcoin alone (§13.9).
//!
//! The reader starts from the genesis outpoint and follows spends. For each spend it checks
//! the block header's proof of work against its own target and the transaction's Merkle
//! inclusion, the candidate shape (§13.4), a larger round, and the spent leaf: for kind 0x01 a
//! `quorum(set)` with Σw ≤ Q and nSequence 0xffffffff, for kind 0x02 a recovery leaf whose R
//! is the input's nSequence. It then moves on to (txid, 0). Bitcoin consensus already checked
//! the signatures.
//!
//! A spend off the template ends the chain: it proves that more than 2/3 of the last set's
//! weight (or the committee after R) signed something else.
//!
//! The Bitcoin data comes through [`ChainSource`], so the reader stays pure; whether each
//! header is on the most-work chain is the source's to vouch for (a header-chain client).

use bitcoin::block::Header;
use bitcoin::merkle_tree::PartialMerkleTree;
use bitcoin::{Amount, BlockHash, OutPoint, Script, Sequence, Transaction, Txid};

use super::candidate::{check_shape, ShapeError};
use super::payload::{CheckpointKind, CheckpointPayload};
use super::script::{parse_quorum_script, RecoveryLeaf, ScriptParseError};
use super::weights::CheckpointSet;

/// A confirmed transaction spending an outpoint, with what proves its inclusion.
#[derive(Debug, Clone)]
pub struct ConfirmedSpend {
    /// The spending transaction.
    pub tx: Transaction,
    /// The header of the block that holds it.
    pub header: Header,
    /// The block's height.
    pub height: u32,
    /// The Merkle proof of the transaction in that block (a BIP-0037 partial Merkle tree).
    pub proof: PartialMerkleTree,
}

/// The Bitcoin data the reader needs: who spent an outpoint, in which block.
pub trait ChainSource {
    /// The source's failure.
    type Error: std::error::Error;

    /// The confirmed transaction that spends `outpoint` on the source's best chain, if any.
    ///
    /// # Errors
    /// The source's own failure (network, storage).
    fn spend_of(&self, outpoint: &OutPoint) -> Result<Option<ConfirmedSpend>, Self::Error>;
}

/// Where the reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderParams {
    /// `checkpoint_genesis`: the first checkpoint output.
    pub genesis: OutPoint,
    /// The round h₀ of the genesis set.
    pub genesis_round: u64,
    /// V.
    pub value: Amount,
}

/// One checkpoint of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointLink {
    /// The checkpoint transaction.
    pub txid: Txid,
    /// Its block.
    pub block_hash: BlockHash,
    /// Its block's height.
    pub height: u32,
    /// What it publishes; `payload.kind` flags a recovery checkpoint.
    pub payload: CheckpointPayload,
    /// The set whose signatures spent the base (quorum checkpoints).
    pub signed_by: Option<CheckpointSet>,
    /// The recovery leaf that spent the base (recovery checkpoints).
    pub recovered_by: Option<RecoveryLeaf>,
}

/// Why the chain ends where it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEnd {
    /// The last checkpoint output is unspent (on the source's chain).
    Unspent(OutPoint),
    /// A spend that does not fit the template.
    OffTemplate {
        /// The spending transaction.
        txid: Txid,
        /// Why it is off the template.
        reason: OffTemplate,
    },
}

/// How a spend leaves the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffTemplate {
    /// The transaction's shape.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// Its round is not larger than the previous checkpoint's.
    #[error("round {round} is not later than the previous round {previous}")]
    Round {
        /// Its round.
        round: u64,
        /// The previous checkpoint's round.
        previous: u64,
    },
    /// The witness is not a script-path spend (too short, or with an annex).
    #[error("the witness is not a script-path spend without annex")]
    Witness,
    /// The spent leaf does not parse as the leaf its kind names.
    #[error("spent leaf: {0}")]
    Leaf(#[from] ScriptParseError),
    /// A recovery checkpoint whose nSequence is not the leaf's R.
    #[error("recovery checkpoint with nSequence {sequence:#010x}, the leaf's R is {blocks}")]
    RecoverySequence {
        /// The input's nSequence.
        sequence: u32,
        /// R.
        blocks: u16,
    },
}

/// What the reader found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointChain {
    /// The checkpoints, oldest first.
    pub links: Vec<CheckpointLink>,
    /// Why the chain ends.
    pub end: ChainEnd,
}

impl CheckpointChain {
    /// The last checkpoint with at least `depth` confirmations at `tip_height` (§13.9: k).
    pub fn latest_confirmed(&self, tip_height: u32, depth: u32) -> Option<&CheckpointLink> {
        self.links
            .iter()
            .rev()
            .find(|l| tip_height >= l.height && tip_height - l.height + 1 >= depth)
    }
}

/// The reader failed: the source failed or gave data that does not prove what it claims.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E: std::error::Error> {
    /// The source failed.
    #[error("bitcoin source: {0}")]
    Source(E),
    /// A header whose hash does not meet its own target.
    #[error("block {0} does not meet its proof-of-work target")]
    ProofOfWork(BlockHash),
    /// The Merkle proof does not put the transaction in the block.
    #[error("transaction {txid} is not proven in block {block}")]
    Inclusion {
        /// The transaction.
        txid: Txid,
        /// The block.
        block: BlockHash,
    },
    /// The source returned a transaction that does not spend the outpoint asked for.
    #[error("transaction {txid} does not spend {outpoint}")]
    NotASpend {
        /// The transaction.
        txid: Txid,
        /// The outpoint.
        outpoint: OutPoint,
    },
}

/// Follows the checkpoint chain from `params.genesis`.
///
/// # Errors
/// [`ReadError`] when the source fails or its data does not prove a spend; a spend off the
/// template is not an error but the chain's end.
pub fn follow<S: ChainSource>(
    source: &S,
    params: &ReaderParams,
) -> Result<CheckpointChain, ReadError<S::Error>> {
    let mut links = Vec::new();
    let mut current = params.genesis;
    let mut previous_round = params.genesis_round;
    loop {
        let Some(spend) = source.spend_of(&current).map_err(ReadError::Source)? else {
            return Ok(CheckpointChain {
                links,
                end: ChainEnd::Unspent(current),
            });
        };
        let txid = spend.tx.compute_txid();
        check_proof(&spend, txid)?;
        if !spend.tx.input.iter().any(|i| i.previous_output == current) {
            return Err(ReadError::NotASpend {
                txid,
                outpoint: current,
            });
        }
        match link(&spend, txid, params.value, previous_round) {
            Ok(link) => {
                previous_round = link.payload.round;
                current = OutPoint::new(txid, 0);
                links.push(link);
            }
            Err(reason) => {
                return Ok(CheckpointChain {
                    links,
                    end: ChainEnd::OffTemplate { txid, reason },
                })
            }
        }
    }
}

fn check_proof<E: std::error::Error>(
    spend: &ConfirmedSpend,
    txid: Txid,
) -> Result<(), ReadError<E>> {
    let block = spend.header.block_hash();
    spend
        .header
        .validate_pow(spend.header.target())
        .map_err(|_| ReadError::ProofOfWork(block))?;
    let mut matches = Vec::new();
    let mut indexes = Vec::new();
    let root = spend.proof.extract_matches(&mut matches, &mut indexes);
    if root.ok() != Some(spend.header.merkle_root) || !matches.contains(&txid) {
        return Err(ReadError::Inclusion { txid, block });
    }
    Ok(())
}

fn link(
    spend: &ConfirmedSpend,
    txid: Txid,
    value: Amount,
    previous_round: u64,
) -> Result<CheckpointLink, OffTemplate> {
    let shape = check_shape(&spend.tx, value)?;
    if shape.payload.round <= previous_round {
        return Err(OffTemplate::Round {
            round: shape.payload.round,
            previous: previous_round,
        });
    }
    let leaf = spent_leaf(&spend.tx)?;
    let (signed_by, recovered_by) = match shape.payload.kind {
        CheckpointKind::Quorum => (Some(parse_quorum_script(leaf)?), None),
        CheckpointKind::Recovery => {
            let recovery = RecoveryLeaf::parse(leaf)?;
            if shape.sequence != Sequence::from_height(recovery.blocks()) {
                return Err(OffTemplate::RecoverySequence {
                    sequence: shape.sequence.to_consensus_u32(),
                    blocks: recovery.blocks(),
                });
            }
            (None, Some(recovery))
        }
    };
    Ok(CheckpointLink {
        txid,
        block_hash: spend.header.block_hash(),
        height: spend.height,
        payload: shape.payload,
        signed_by,
        recovered_by,
    })
}

/// The leaf script of input 0's script-path spend: the second-to-last witness item when there
/// is no annex (BIP-0341: an annex is a last item starting with 0x50 among ≥ 2 items).
fn spent_leaf(tx: &Transaction) -> Result<&Script, OffTemplate> {
    let witness = &tx.input[0].witness;
    let n = witness.len();
    if n < 2
        || witness
            .last()
            .is_some_and(|last| last.first() == Some(&0x50))
    {
        return Err(OffTemplate::Witness);
    }
    witness
        .nth(n - 2)
        .map(Script::from_bytes)
        .ok_or(OffTemplate::Witness)
}
