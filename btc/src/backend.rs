//! The Bitcoin backend trait: what the node, the staker and the slasher ask of a Bitcoin chain.
//!
//! Two implementations sit behind it: the embedded regtest chain
//! ([`super::regtest::EmbeddedBackend`]) and any Bitcoin Core node over JSON-RPC
//! ([`super::rpc_backend::RpcBackend`]). Callers cannot tell them apart.

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, MerkleBlock, OutPoint, Transaction, Txid};

/// A block of the active chain, named by height and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    /// Height of the block (genesis is 0).
    pub height: u32,
    /// Hash of the block.
    pub hash: BlockHash,
}

/// A header of the active chain with its height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderEntry {
    /// The 80-byte header.
    pub header: Header,
    /// Height of the block in the active chain.
    pub height: u32,
}

/// Where a transaction is, as seen by the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// Neither in the mempool nor in the active chain.
    Unknown,
    /// Accepted into the mempool, not yet mined.
    InMempool,
    /// Mined in the active chain.
    Confirmed {
        /// Block that contains the transaction.
        block_hash: BlockHash,
        /// Height of that block.
        height: u32,
        /// 1 when the block is the tip; tip height − height + 1 in general.
        confirmations: u32,
        /// Merkle inclusion proof of the transaction in that block (BIP-37 `merkleblock`).
        proof: MerkleBlock,
    },
}

/// Who spends an outpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutPointStatus {
    /// The transaction or the output index is not known.
    Unknown,
    /// The output exists and nothing spends it (neither mined nor in the mempool).
    Unspent {
        /// Confirmations of the funding transaction; 0 when it is still in the mempool.
        confirmations: u32,
    },
    /// A mempool transaction spends the output.
    SpentInMempool {
        /// The spending transaction.
        txid: Txid,
        /// Its input index that spends the output.
        vin: u32,
    },
    /// A mined transaction spends the output.
    Spent {
        /// The spending transaction.
        txid: Txid,
        /// Its input index that spends the output.
        vin: u32,
        /// Height of the block that contains the spending transaction.
        height: u32,
    },
}

/// Why a node refused a transaction, in Bitcoin Core's categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// The bytes are not a transaction (JSON-RPC -22).
    Decode,
    /// An input does not exist or is already spent (JSON-RPC -25).
    MissingOrSpentInputs,
    /// Consensus or policy refused it: scripts, locks, fees, conflicts (JSON-RPC -26).
    Rejected,
    /// Its outputs are already in the UTXO set: it is mined (JSON-RPC -27).
    AlreadyConfirmed,
    /// Its fee rate is above the caller's `maxfeerate` (JSON-RPC -25).
    FeeAboveMaximum,
}

impl RejectionKind {
    /// Bitcoin Core's JSON-RPC error code for this kind of rejection.
    pub fn rpc_code(self) -> i64 {
        match self {
            RejectionKind::Decode => -22,
            RejectionKind::MissingOrSpentInputs | RejectionKind::FeeAboveMaximum => -25,
            RejectionKind::Rejected => -26,
            RejectionKind::AlreadyConfirmed => -27,
        }
    }

    /// The kind for a Bitcoin Core JSON-RPC error, if it is a transaction rejection. Core
    /// uses -25 for both missing inputs and a fee above `maxfeerate`; the message tells them apart.
    pub fn from_rpc_error(code: i64, message: &str) -> Option<Self> {
        match code {
            -22 => Some(RejectionKind::Decode),
            -25 if message.starts_with("Fee exceeds maximum") => {
                Some(RejectionKind::FeeAboveMaximum)
            }
            -25 => Some(RejectionKind::MissingOrSpentInputs),
            -26 => Some(RejectionKind::Rejected),
            -27 => Some(RejectionKind::AlreadyConfirmed),
            _ => None,
        }
    }
}

/// A refused transaction: the category and Bitcoin Core's reason string
/// (e.g. `non-BIP68-final`, `bad-txns-inputs-missingorspent`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction {txid} rejected: {reason}")]
pub struct Rejection {
    /// The refused transaction.
    pub txid: Txid,
    /// Bitcoin Core's category.
    pub kind: RejectionKind,
    /// Bitcoin Core's reject reason, with its debug detail when there is one.
    pub reason: String,
}

/// A backend could not answer: it is unreachable or answered something unexpected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The node could not be reached or the call failed in transport.
    #[error("bitcoin node unreachable: {0}")]
    Transport(String),
    /// The node answered with an error the caller cannot act on.
    #[error("bitcoin node error {code}: {message}")]
    Node {
        /// Bitcoin Core's JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The node answered data that does not decode or contradicts itself.
    #[error("bitcoin node answered malformed data: {0}")]
    Malformed(String),
    /// The embedded chain's storage or consensus engine failed.
    #[error("embedded chain failure: {0}")]
    Chain(String),
}

/// Why a broadcast did not put the transaction into the node's mempool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastError {
    /// The node refused the transaction.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The node could not be asked.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A Bitcoin chain as the node, the staker and the slasher see it.
///
/// Every method reads the node's current active chain; answers to two calls may
/// straddle a new block.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// The tip of the active chain.
    async fn tip(&self) -> Result<ChainTip, BackendError>;

    /// Hash of the active-chain block at `height`, or `None` above the tip.
    async fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, BackendError>;

    /// Header and height of an active-chain block, or `None` when the hash is unknown
    /// or not in the active chain.
    async fn header(&self, hash: &BlockHash) -> Result<Option<HeaderEntry>, BackendError>;

    /// A full block by hash, or `None` when unknown.
    async fn block(&self, hash: &BlockHash) -> Result<Option<Block>, BackendError>;

    /// A transaction from the mempool or the active chain, or `None` when unknown.
    async fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, BackendError>;

    /// Whether a transaction is unknown, in the mempool, or mined (with a Merkle proof).
    async fn tx_status(&self, txid: &Txid) -> Result<TxStatus, BackendError>;

    /// Whether an outpoint is unspent, and if not, which transaction spends it.
    async fn outpoint_status(&self, outpoint: &OutPoint) -> Result<OutPointStatus, BackendError>;

    /// Submits a transaction to the node's mempool; returns its txid once accepted.
    async fn broadcast(&self, tx: &Transaction) -> Result<Txid, BroadcastError>;

    /// Submits a package, parents first and their child last, to be accepted by its fee rate
    /// as a whole (Bitcoin Core ≥ 29's `submitpackage`): a 0-fee TRUC parent enters the
    /// mempool with a child that pays for both. Returns the txids, in package order, once
    /// every member is in the mempool (members already there or mined count as accepted).
    ///
    /// # Errors
    /// [`BroadcastError::Rejected`] naming the member refused (the child when the package as
    /// a whole is, e.g. `package-fee-too-low`); [`BroadcastError::Backend`].
    async fn broadcast_package(&self, txs: &[Transaction]) -> Result<Vec<Txid>, BroadcastError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_codes_round_trip_and_minus_25_is_told_apart_by_message() {
        for kind in [
            RejectionKind::Decode,
            RejectionKind::MissingOrSpentInputs,
            RejectionKind::Rejected,
            RejectionKind::AlreadyConfirmed,
        ] {
            assert_eq!(
                RejectionKind::from_rpc_error(kind.rpc_code(), "x"),
                Some(kind)
            );
        }
        assert_eq!(
            RejectionKind::from_rpc_error(
                -25,
                "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)"
            ),
            Some(RejectionKind::FeeAboveMaximum)
        );
        assert_eq!(
            RejectionKind::from_rpc_error(-5, "No such transaction"),
            None
        );
    }
}
