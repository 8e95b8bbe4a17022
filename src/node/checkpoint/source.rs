//! The checkpoint reader's [`ChainSource`] over a Bitcoin [`Backend`]: the mined spend of an
//! outpoint with its block header and Merkle proof. A spend only in the mempool is not a
//! checkpoint yet. Used by the node to follow its chain and by `fiamma checkpoint`.

use std::sync::Arc;

use bitcoin::OutPoint;
use fiamma_finality::checkpoint::{
    follow, ChainSource, CheckpointChain, ConfirmedSpend, ReadError, ReaderParams,
};

use crate::btc::{Backend, BackendError, OutPointStatus, TxStatus};

/// A [`ChainSource`] answering from `backend` on the runtime it was made on.
pub struct BackendSource {
    backend: Arc<dyn Backend>,
    runtime: tokio::runtime::Handle,
}

impl ChainSource for BackendSource {
    type Error = BackendError;

    fn spend_of(&self, outpoint: &OutPoint) -> Result<Option<ConfirmedSpend>, BackendError> {
        self.runtime
            .block_on(confirmed_spend(self.backend.as_ref(), outpoint))
    }
}

/// Follows the chain from `start` on `backend`. The pure reader asks its source
/// synchronously, so it runs on a blocking thread while the backend answers on this runtime.
///
/// # Errors
/// [`ReadError`] when the backend fails or answers data that does not prove itself.
pub async fn read_chain(
    backend: Arc<dyn Backend>,
    start: ReaderParams,
) -> Result<CheckpointChain, ReadError<BackendError>> {
    let source = BackendSource {
        backend,
        runtime: tokio::runtime::Handle::current(),
    };
    tokio::task::spawn_blocking(move || follow(&source, &start))
        .await
        .map_err(|e| {
            ReadError::Source(BackendError::Transport(format!("reader task failed: {e}")))
        })?
}

async fn confirmed_spend(
    backend: &dyn Backend,
    outpoint: &OutPoint,
) -> Result<Option<ConfirmedSpend>, BackendError> {
    let OutPointStatus::Spent { txid, .. } = backend.outpoint_status(outpoint).await? else {
        return Ok(None);
    };
    let TxStatus::Confirmed {
        block_hash,
        height,
        proof,
        ..
    } = backend.tx_status(&txid).await?
    else {
        // Reorganized away between the two calls: unspent for this read, the next one sees it.
        return Ok(None);
    };
    if proof.header.block_hash() != block_hash {
        return Err(BackendError::Malformed(format!(
            "the Merkle proof of {txid} is for block {}, not its block {block_hash}",
            proof.header.block_hash()
        )));
    }
    let tx = backend
        .transaction(&txid)
        .await?
        .ok_or_else(|| BackendError::Malformed(format!("spend {txid} of {outpoint} vanished")))?;
    Ok(Some(ConfirmedSpend {
        tx,
        header: proof.header,
        height,
        proof: proof.txn,
    }))
}
