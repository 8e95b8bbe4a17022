//! The staking module's service layer: loads state from the store, calls the pure cores
//! (`fiamma_staking` validation and state machine, `fiamma_covenant` signature checks) and
//! commits each message in one database transaction before it answers (ARCHITECTURE rule 3).
//!
//! Checks run in the order of ARCHITECTURE rule 4: stateless ones (encodings, rules,
//! signatures) before the writer lock is taken, state checks inside the transaction.

mod chain;
mod delegation;
pub mod errors;
mod signing_cache;
mod verifier;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::Txid;
use fiamma_staking::context::SigningContexts;
use fiamma_staking::light_client::HeaderChain;
use fiamma_staking::params::{Params, ParamsVersions};
use fiamma_staking::state::Rules;
use tokio::sync::broadcast;

use crate::node::health::NodeHealth;
use crate::node::store::{
    Delegation, DelegationFilter, Event, ParamsRecord, Store, StoreError, Verifier,
    VotingPowerEntry, WriteTx,
};
pub use chain::{ChainUpdate, Reorg};
pub use delegation::CovenantSigsInput;
pub use errors::*;
use signing_cache::SigningCache;
pub use verifier::VerifierRegistration;

/// Events kept for live subscribers that fall behind before they must re-read the store.
const EVENT_BUFFER: usize = 4096;

/// The staking module: store, params versions, signing contexts, the header chain and the
/// live event feed. Cheap to clone.
#[derive(Clone)]
pub struct StakingModule {
    store: Store,
    params: Arc<ParamsVersions>,
    contexts: Arc<SigningContexts>,
    header_chain: Arc<RwLock<Option<HeaderChain>>>,
    events: broadcast::Sender<Event>,
    /// The BTC tip as of the last commit: which params version a registration is checked
    /// against first. Only a hint; the version is checked again under the writer lock.
    tip_hint: Arc<AtomicU32>,
    /// The last known signing view of recent delegations (see [`signing_cache`]).
    signing_cache: Arc<SigningCache>,
    /// Whether the node's view of Bitcoin can be acted on (set by the chain follower).
    health: NodeHealth,
}

/// The state-machine view of a params version.
pub(crate) fn rules(params: &Params) -> Rules<'_> {
    Rules {
        covenant_pks: &params.covenant_pks,
        covenant_quorum: params.covenant_quorum,
        confirmation_depth: params.btc_confirmation_depth,
    }
}

impl StakingModule {
    /// Records the params versions in the store (refusing changed ones) and builds the module.
    pub async fn new(
        store: Store,
        params: ParamsVersions,
        contexts: SigningContexts,
    ) -> Result<Self, StoreError> {
        let records = params
            .versions()
            .iter()
            .zip(0u32..)
            .map(|(p, version)| {
                let body = serde_json::to_value(p).map_err(|e| StoreError::Corrupt {
                    column: "params_versions.body",
                    reason: e.to_string(),
                })?;
                Ok(ParamsRecord {
                    version,
                    btc_activation_height: p.btc_activation_height,
                    body,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        store.record_params(&records).await?;
        let (tip, _) = store.tip().await?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(StakingModule {
            store,
            params: Arc::new(params),
            contexts: Arc::new(contexts),
            header_chain: Arc::new(RwLock::new(None)),
            events,
            tip_hint: Arc::new(AtomicU32::new(tip)),
            signing_cache: Arc::new(SigningCache::default()),
            health: NodeHealth::new(),
        })
    }

    /// The same module (params, header chain, event feed, caches) working through `store`:
    /// gives a task such as the chain follower connections of its own.
    pub fn with_store(&self, store: Store) -> Self {
        StakingModule {
            store,
            ..self.clone()
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The params versions.
    pub fn params(&self) -> &ParamsVersions {
        &self.params
    }

    /// The node's health, set by the chain follower and read by the round closer and gRPC.
    pub fn health(&self) -> &NodeHealth {
        &self.health
    }

    /// The shared header chain, set by the chain follower.
    pub fn header_chain(&self) -> &Arc<RwLock<Option<HeaderChain>>> {
        &self.header_chain
    }

    /// A live feed of committed events (subscribers that lag re-read the store).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Commits `tx` and publishes its events to live subscribers.
    async fn commit(&self, tx: WriteTx) -> Result<Vec<Event>, StoreError> {
        let tip = tx.tip();
        let events = tx.commit().await?;
        self.tip_hint.store(tip, Ordering::Relaxed);
        self.publish(&events);
        Ok(events)
    }

    /// Publishes committed events to live subscribers.
    fn publish(&self, events: &[Event]) {
        for e in events {
            // No subscriber is not an error: the events are in the store.
            let _ = self.events.send(e.clone());
        }
    }

    /// One verifier.
    pub async fn verifier(&self, pk: &XOnlyPublicKey) -> Result<Verifier, QueryError> {
        self.store
            .verifier(pk)
            .await?
            .ok_or_else(|| QueryError::NotFound(format!("verifier {pk}")))
    }

    /// One delegation.
    pub async fn delegation(&self, txid: &Txid) -> Result<Delegation, QueryError> {
        self.store
            .delegation(txid)
            .await?
            .ok_or_else(|| QueryError::NotFound(format!("delegation {txid}")))
    }

    /// Delegations matching `filter`, a page after `after`.
    pub async fn delegations(
        &self,
        filter: &DelegationFilter,
        after: Option<&Txid>,
        limit: u32,
    ) -> Result<Vec<Delegation>, QueryError> {
        Ok(self.store.delegations(filter, after, limit).await?)
    }

    /// PENDING delegations `covenant_pk` may sign (its committee's versions) and has not.
    pub async fn pending_for_covenant(
        &self,
        covenant_pk: &XOnlyPublicKey,
        after: Option<&Txid>,
        limit: u32,
    ) -> Result<Vec<Delegation>, QueryError> {
        let versions: Vec<u32> = self
            .params
            .versions()
            .iter()
            .zip(0u32..)
            .filter(|(p, _)| p.covenant_pks.contains(covenant_pk))
            .map(|(_, v)| v)
            .collect();
        Ok(self
            .store
            .pending_for_covenant(covenant_pk, &versions, after, limit)
            .await?)
    }

    /// The voting power table at BTC height `h`.
    pub async fn voting_power_table(&self, h: u32) -> Result<Vec<VotingPowerEntry>, QueryError> {
        Ok(self.store.voting_power_table(h).await?)
    }

    /// The params version in force at `height`, with its number.
    pub fn params_at(&self, height: u32) -> Result<(u32, &Params), QueryError> {
        Ok(self.params.at_height(height)?)
    }

    /// Params version `version`.
    pub fn params_version(&self, version: u32) -> Result<&Params, QueryError> {
        self.params
            .get(version)
            .ok_or_else(|| QueryError::NotFound(format!("params version {version}")))
    }
}
