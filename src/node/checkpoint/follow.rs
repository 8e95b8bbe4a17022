//! Following the checkpoint chain on Bitcoin (§13.9): from the base, the reader finds each
//! spend that fits the template; every one at least k deep whose output 0 is its round's
//! checkpoint output (round h's set, this node's recovery leaf) becomes the new base, its
//! round CONFIRMED and the rounds still on the old base SUPERSEDED. A k-deep spend off the
//! template, or one whose output 0 is not what the node would build, ends the chain: the node
//! builds no more candidates, and says why.
//!
//! The reader checks proof of work and Merkle inclusion of every spend; a reorg deeper than k
//! is the follower's to report (the node stops closing rounds, see [`NodeHealth`]).
//!
//! [`NodeHealth`]: crate::node::health::NodeHealth

use std::future::Future;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::OutPoint;
use fiamma_finality::checkpoint::{
    ChainEnd, CheckpointOutput, CheckpointSet, ReadError, ReaderParams,
};
use fiamma_proto::finality::v1 as pb;
use tokio::task::JoinHandle;

use super::source::read_chain;
use super::store::{self, ChainOutput};
use crate::btc::{BackendError, TxStatus};
use crate::node::finality::store::{self as finality_store, EventLog, Lock};
use crate::node::finality::FinalityModule;
use crate::node::store::StoreError;

/// Why one step of following the chain failed; it is logged and retried.
#[derive(Debug, thiserror::Error)]
pub enum FollowCheckpointError {
    /// The reader failed.
    #[error("reading the checkpoint chain: {0}")]
    Read(#[from] ReadError<BackendError>),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FinalityModule {
    /// One step: adopts every k-deep checkpoint after the base, in order. Returns the new
    /// bases (none when there is nothing new, no genesis, or the chain ended).
    ///
    /// # Errors
    /// [`FollowCheckpointError`]; what was adopted before the failure stays.
    pub async fn follow_checkpoints(&self) -> Result<Vec<ChainOutput>, FollowCheckpointError> {
        let Some(checkpoints) = self.checkpoints.clone() else {
            return Ok(Vec::new());
        };
        let settings = &checkpoints.settings;
        let chain = {
            let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
            store::chain(&mut conn).await?
        };
        let Some(chain) = chain.filter(|c| c.ended.is_none()) else {
            return Ok(Vec::new());
        };
        let read = read_chain(
            checkpoints.backend.clone(),
            ReaderParams {
                genesis: chain.base.outpoint,
                genesis_round: chain.base.round,
                value: settings.value,
            },
        )
        .await?;
        let tip = checkpoints.backend.tip().await?.height;
        let deep = |height: u32| tip >= height && tip - height + 1 >= settings.confirmation_depth;
        let mut base = chain.base;
        let mut adopted = Vec::new();
        for link in read.links.iter().take_while(|l| deep(l.height)) {
            let next = ChainOutput {
                outpoint: OutPoint::new(link.txid, 0),
                round: link.payload.round,
                height: link.height,
                kind: link.payload.kind.byte(),
            };
            let tx = checkpoints
                .backend
                .transaction(&link.txid)
                .await?
                .ok_or_else(|| {
                    BackendError::Malformed(format!("checkpoint {} vanished", link.txid))
                })?;
            let mut db = self.pool.begin().await.map_err(StoreError::from)?;
            let position = finality_store::position(&mut db, Lock::Update).await?;
            let current = store::chain(&mut db).await?;
            if current.as_ref().map(|c| c.base) != Some(base) {
                // Moved meanwhile (another follower): the next step starts from there.
                return Ok(adopted);
            }
            if next.round > position.latest_round {
                let reason = format!(
                    "checkpoint {} is for round {}, which this node has not closed",
                    link.txid, next.round
                );
                end(db, &reason).await?;
                return Ok(adopted);
            }
            let table = finality_store::power_table(&mut db, next.round).await?;
            let expected = CheckpointSet::from_power_table(&table)
                .map(|set| CheckpointOutput::new(&set, &settings.recovery).script_pubkey());
            if expected.as_ref().ok() != Some(&tx.output[0].script_pubkey) {
                let reason = format!(
                    "checkpoint {} does not pay round {}'s checkpoint output",
                    link.txid, next.round
                );
                end(db, &reason).await?;
                return Ok(adopted);
            }
            store::advance_base(&mut db, &base.outpoint, &next).await?;
            let mut log = EventLog::after(&position);
            log.push(pb::event::Kind::CheckpointConfirmed(
                pb::CheckpointConfirmed {
                    round: next.round,
                    txid: next.outpoint.txid.to_byte_array().to_vec(),
                    height: next.height,
                    kind: u32::from(next.kind),
                },
            ));
            let events = log.write(&mut db).await?;
            db.commit().await.map_err(StoreError::from)?;
            self.publish(events);
            tracing::info!(
                round = next.round,
                txid = %next.outpoint.txid,
                height = next.height,
                "checkpoint confirmed: the new base"
            );
            base = next;
            adopted.push(next);
        }
        if adopted.len() == read.links.len() {
            if let ChainEnd::OffTemplate { txid, reason } = &read.end {
                if let TxStatus::Confirmed { height, .. } =
                    checkpoints.backend.tx_status(txid).await?
                {
                    if deep(height) {
                        let mut db = self.pool.begin().await.map_err(StoreError::from)?;
                        finality_store::position(&mut db, Lock::Update).await?;
                        end(
                            db,
                            &format!(
                                "{txid} spends the base off the checkpoint template: {reason}"
                            ),
                        )
                        .await?;
                    }
                }
            }
        }
        Ok(adopted)
    }
}

/// Ends the chain in `db` (which holds the writer lock) and commits.
async fn end(
    mut db: sqlx::Transaction<'_, sqlx::Postgres>,
    reason: &str,
) -> Result<(), StoreError> {
    store::end_chain(&mut db, reason).await?;
    db.commit().await?;
    tracing::error!(%reason, "the checkpoint chain ended: no more candidates");
    Ok(())
}

/// Follows the chain every `interval` until `shutdown` completes. A failed step is logged and
/// retried at the next tick.
pub fn spawn_checkpoint_follower(
    module: FinalityModule,
    interval: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if let Err(e) = module.follow_checkpoints().await {
                        tracing::warn!(error = %e, "following the checkpoint chain failed");
                    }
                }
                () = &mut shutdown => return,
            }
        }
    })
}
