//! Applying what the chain follower saw on Bitcoin: a new tip, k-deep staking transactions
//! and spends of staking outputs, what a reorg took back, and the expiry of delegations
//! never included, all in one database transaction.

use bitcoin::{BlockHash, Txid};

use super::{rules, StakingModule};
use crate::node::store::{Event, StoreError, WriteTx};

/// What the follower observed since its last update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainUpdate {
    /// The new tip height.
    pub tip_height: u32,
    /// The new tip hash.
    pub tip_hash: BlockHash,
    /// The light client's encoded header chain, to resume from after a restart.
    pub light_client: Option<Vec<u8>>,
    /// Staking transactions seen in k-deep best-chain blocks: (staking txid, block height).
    pub inclusions: Vec<(Txid, u32)>,
    /// Staking outputs seen spent: (staking txid, spending txid).
    pub spends: Vec<(Txid, Txid)>,
}

/// What a reorg (at most k deep) took back, applied before the rest of an update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reorg {
    /// The highest block the old and the new chain share: every block above it was replaced.
    pub fork: u32,
    /// UNBONDED delegations whose spend is in no block of the new chain.
    pub unspent: Vec<Txid>,
}

impl StakingModule {
    /// Applies `update`: spends make delegations UNBONDED, inclusions are recorded, then every
    /// open delegation is advanced to the new tip (activation at k depth, expiry) and those
    /// never included within `pending_expiry_blocks` of their registration expire. Returns the
    /// committed events. An inclusion the state machine refuses is logged and skipped: the
    /// chain is a fact, not a request.
    pub async fn apply_chain_update(&self, update: &ChainUpdate) -> Result<Vec<Event>, StoreError> {
        self.apply_followed(update, None).await
    }

    /// [`apply_chain_update`](Self::apply_chain_update) after a reorg: first every inclusion
    /// above `reorg.fork` is taken back (the activation and any expiry that followed from it
    /// with it; the update's inclusions re-prove those still on the new chain) and the spends
    /// in `reorg.unspent` are forgotten, in the same transaction as the update.
    pub async fn apply_followed(
        &self,
        update: &ChainUpdate,
        reorg: Option<&Reorg>,
    ) -> Result<Vec<Event>, StoreError> {
        let mut tx = self.store.begin().await?;
        tx.set_tip(
            update.tip_height,
            &update.tip_hash,
            update.light_client.as_deref(),
        )
        .await?;
        let tip = update.tip_height;
        if let Some(reorg) = reorg {
            self.undo_reorged(&mut tx, reorg, tip).await?;
        }
        for (staking_txid, spender) in &update.spends {
            let Some(mut d) = tx.lock_delegation(staking_txid).await? else {
                continue;
            };
            if let Some(t) = d.state.observe_spend(tip) {
                tx.save_state(staking_txid, &d.state, Some(spender)).await?;
                tx.record_transitions(staking_txid, &d.registration.verifier_btc_pk, &[t]);
                tracing::info!(%staking_txid, %spender, from = %t.from, "staking output spent");
            }
        }
        for (staking_txid, height) in &update.inclusions {
            let Some(mut d) = tx.lock_delegation(staking_txid).await? else {
                continue;
            };
            if d.state.start_height().is_some() || d.state.status().is_terminal() {
                continue;
            }
            let registered = d.registration.params_version;
            let Some(params) = self.params.get(registered) else {
                tracing::error!(%staking_txid, registered, "params version of delegation missing");
                continue;
            };
            match self.params.at_height(*height) {
                Ok((v, _)) if v == registered => {}
                other => {
                    tracing::warn!(%staking_txid, height, registered, at_inclusion = ?other.map(|(v, _)| v), "staking transaction included under another params version; not activated");
                    continue;
                }
            }
            match d.state.record_inclusion(*height, &rules(params), tip) {
                Ok(transitions) => {
                    tx.save_state(staking_txid, &d.state, None).await?;
                    tx.record_transitions(
                        staking_txid,
                        &d.registration.verifier_btc_pk,
                        &transitions,
                    );
                }
                Err(e) => {
                    tracing::warn!(%staking_txid, height, error = %e, "inclusion not recorded")
                }
            }
        }
        // Only the state columns: advancing needs no transaction bytes or signatures.
        for mut d in tx.open_states().await? {
            let Some(params) = self.params.get(d.params_version) else {
                continue;
            };
            let mut transitions = d.state.advance(tip, &rules(params));
            let expired = d
                .state
                .expire_unincluded(tip, params.limits.pending_expiry_blocks);
            transitions.extend(expired);
            if !transitions.is_empty() {
                tx.save_state(&d.staking_txid, &d.state, None).await?;
                tx.record_transitions(&d.staking_txid, &d.verifier_btc_pk, &transitions);
            }
            if expired.is_some() {
                tracing::info!(staking_txid = %d.staking_txid, tip, "delegation never included; expired");
                tx.free_expired(&d.staking_txid).await?;
            }
        }
        self.commit(tx).await
    }

    /// Takes back the spends the new chain does not hold and the inclusions above the fork.
    async fn undo_reorged(
        &self,
        tx: &mut WriteTx,
        reorg: &Reorg,
        tip: u32,
    ) -> Result<(), StoreError> {
        // Spends first: a delegation whose spend and inclusion both left the chain is then
        // open again and its inclusion is taken back below.
        for staking_txid in &reorg.unspent {
            let Some(mut d) = tx.lock_delegation(staking_txid).await? else {
                continue;
            };
            if let Some(t) = d.state.undo_spend(tip) {
                tracing::warn!(%staking_txid, to = %t.to, "spend reorged out");
                tx.save_state(staking_txid, &d.state, None).await?;
                tx.clear_spend(staking_txid).await?;
                tx.record_transitions(staking_txid, &d.registration.verifier_btc_pk, &[t]);
            }
        }
        for candidate in tx.reorg_candidates(reorg.fork).await? {
            let staking_txid = candidate.staking_txid;
            let Some(mut d) = tx.lock_delegation(&staking_txid).await? else {
                continue;
            };
            let before = d.state.record().clone();
            let undone = d.state.undo_inclusion(reorg.fork, tip);
            if *d.state.record() != before {
                tracing::warn!(%staking_txid, fork = reorg.fork, "inclusion reorged out; re-checking");
                tx.save_state(&staking_txid, &d.state, None).await?;
                tx.record_transitions(
                    &staking_txid,
                    &d.registration.verifier_btc_pk,
                    undone.as_slice(),
                );
            }
        }
        Ok(())
    }
}
