//! Applying what the chain follower saw on Bitcoin: a new tip, k-deep staking transactions
//! and spends of staking outputs, all in one database transaction.

use bitcoin::{BlockHash, Txid};

use super::{rules, StakingModule};
use crate::node::store::{Event, StoreError};

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

impl StakingModule {
    /// Applies `update`: spends make delegations UNBONDED, inclusions are recorded, then every
    /// open delegation is advanced to the new tip (activation at k depth, expiry). Returns the
    /// committed events. An inclusion the state machine refuses is logged and skipped: the
    /// chain is a fact, not a request.
    pub async fn apply_chain_update(&self, update: &ChainUpdate) -> Result<Vec<Event>, StoreError> {
        let mut tx = self.store.begin().await?;
        tx.set_tip(
            update.tip_height,
            &update.tip_hash,
            update.light_client.as_deref(),
        )
        .await?;
        let tip = update.tip_height;
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
        for mut d in tx.open_delegations().await? {
            let Some(params) = self.params.get(d.registration.params_version) else {
                continue;
            };
            let transitions = d.state.advance(tip, &rules(params));
            if !transitions.is_empty() {
                let staking_txid = d.registration.staking_txid;
                tx.save_state(&staking_txid, &d.state, None).await?;
                tx.record_transitions(&staking_txid, &d.registration.verifier_btc_pk, &transitions);
            }
        }
        self.commit(tx).await
    }
}
