//! Checkpoints and CheckpointRound: the chain as the node follows it and each checkpoint
//! round with its candidate, votes and (once ready) signed transaction.

use bitcoin::consensus::serialize;
use fiamma_finality::checkpoint::THRESHOLD;
use fiamma_proto::finality::v1 as pb;
use sqlx::PgConnection;

use super::errors::CheckpointError;
use super::genesis::genesis_script;
use super::store::{self, CheckpointRow};
use crate::node::finality::store as finality_store;
use crate::node::finality::{wire, FinalityModule};
use crate::node::store::StoreError;

impl FinalityModule {
    /// Checkpoints: the parameters, genesis, base, the newest checkpoint round, the script
    /// the genesis must pay (once h₀ is closed) and why the chain ended (if it did).
    ///
    /// # Errors
    /// [`CheckpointError::Disabled`] or a store failure.
    pub async fn checkpoints_view(&self) -> Result<pb::CheckpointsResponse, CheckpointError> {
        let checkpoints = self.checkpoint_config()?;
        let s = &checkpoints.settings;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let chain = store::chain(&mut conn).await?;
        let latest = match store::latest_checkpoint_round(&mut conn).await? {
            Some(row) => Some(round_to_pb(&mut conn, &row).await?),
            None => None,
        };
        let (genesis_script_round, genesis_script_pubkey) = match genesis_script(&mut conn, s).await
        {
            Ok((round, script)) => (round, script.into_bytes()),
            Err(
                CheckpointError::GenesisRoundOpen { .. } | CheckpointError::GenesisNoSet { .. },
            ) => (0, Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(pb::CheckpointsResponse {
            params: Some(pb::CheckpointParams {
                genesis_round: s.genesis_round,
                value_sat: s.value.to_sat(),
                interval_rounds: s.rules.interval_rounds,
                recovery_blocks: s.recovery_blocks,
                confirmation_depth: s.confirmation_depth,
                vote_expiry: s.rules.vote_expiry,
            }),
            genesis: chain.as_ref().map(|c| c.genesis.to_pb()),
            base: chain.as_ref().map(|c| c.base.to_pb()),
            latest,
            genesis_script_pubkey,
            genesis_script_round,
            ended: chain.and_then(|c| c.ended).unwrap_or_default(),
        })
    }

    /// CheckpointRound: round `round` if it is a checkpoint round.
    ///
    /// # Errors
    /// [`CheckpointError::NotCheckpointRound`], [`CheckpointError::Disabled`] or a store
    /// failure.
    pub async fn checkpoint_round_view(
        &self,
        round: u64,
    ) -> Result<pb::CheckpointRound, CheckpointError> {
        self.checkpoint_config()?;
        let round = wire::round_number("round", round)?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let row = store::checkpoint_round(&mut conn, round)
            .await?
            .ok_or(CheckpointError::NotCheckpointRound { round })?;
        Ok(round_to_pb(&mut conn, &row).await?)
    }
}

async fn round_to_pb(
    conn: &mut PgConnection,
    row: &CheckpointRow,
) -> Result<pb::CheckpointRound, StoreError> {
    let closed = finality_store::round(&mut *conn, row.round)
        .await?
        .ok_or_else(|| StoreError::Missing {
            what: format!("round {}", row.round),
        })?;
    let votes = store::votes_of_round(&mut *conn, row.round).await?;
    Ok(pb::CheckpointRound {
        round: row.round,
        kind: row.kind as i32,
        status: row.status as i32,
        base: Some(row.base.to_pb()),
        candidate: serialize(&row.candidate),
        message: row.message.clone(),
        round_hash: closed.round_hash.to_vec(),
        state: row.state.to_vec(),
        voted_power_sat: closed.voted_power,
        total_power_sat: closed.total_power,
        base_weight_signed: row.base_weight,
        threshold: THRESHOLD,
        votes: votes
            .iter()
            .map(|(v, p)| wire::checkpoint_vote_to_pb(row.round, v, p))
            .collect(),
        signed_transaction: row.signed_tx.as_ref().map(serialize).unwrap_or_default(),
    })
}
