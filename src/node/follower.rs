//! The chain follower: keeps the light client's header chain in step with a Bitcoin backend
//! and turns what it sees into [`ChainUpdate`]s for the staking module: k-deep staking
//! transactions (checked by Merkle proof against the light client, not taken on the backend's
//! word), spends of staking outputs, and the new tip for activation and expiry.
//!
//! ACTIVE delegations, the many, cost nothing per delegation: their spends are found by reading
//! the new blocks' inputs (each block checked against its header's Merkle root). Delegations
//! not yet ACTIVE are looked up one by one, and only when the tip or the staking state moved;
//! only their ids and outpoints are read from the store, never their transactions.
//!
//! Reorgs: one up to the reorg limit (the largest k) is followed, and what it took back is
//! re-checked on the new chain: inclusions above the fork are undone and proved again, spends
//! no longer in a block are undone. A deeper one, a backend more than the limit behind our
//! tip, or a backend that does not answer for the stall timeout, marks the node NOT_SERVING
//! ([`NodeHealth`]) so that rounds stop closing on a stake table that no longer follows
//! Bitcoin; the first step that succeeds again marks it SERVING.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::block::Header;
use std::collections::BTreeMap;

use bitcoin::{BlockHash, Network, OutPoint, Txid};
use fiamma_staking::light_client::{
    AcceptHeadersError, ChainSnapshot, Checkpoint, HeaderChain, NewChainError, RestoreError,
};
use fiamma_staking::state::DelegationStatus;

use crate::btc::{Backend, BackendError, OutPointStatus, TxStatus};
use crate::node::health::NodeHealth;
use crate::node::module::{ChainUpdate, Reorg, StakingModule};
use crate::node::store::{DelegationRef, StoreError};

/// Most headers fetched in one step, so a long catch-up commits progress as it goes.
const HEADERS_PER_STEP: u32 = 2000;

/// How long the follower may fail (or hang) before the node stops closing rounds, by default.
pub const DEFAULT_STALL_TIMEOUT: Duration =
    Duration::from_millis(crate::node::config::DEFAULT_STALL_TIMEOUT_MS);

/// Why one follower step failed; the follower logs it and retries on the next poll.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The header chain could not start.
    #[error("cannot start the header chain: {0}")]
    NewChain(#[from] NewChainError),
    /// The stored header chain could not be restored.
    #[error("cannot restore the stored header chain: {0}")]
    Restore(String),
    /// The light client refused a header from the backend.
    #[error(transparent)]
    Headers(#[from] AcceptHeadersError),
    /// The backend's chain and the light client's share no block within the reorg limit.
    #[error(
        "the backend's chain forks from ours below height {height}, deeper than the reorg limit"
    )]
    NoCommonBlock {
        /// Lowest height compared.
        height: u32,
    },
    /// The backend lost a block it had just named.
    #[error("the backend has no header for block at height {0}")]
    MissingHeader(u32),
    /// The backend has no body for a block of the chain.
    #[error("the backend has no block {0}")]
    MissingBlock(BlockHash),
    /// The backend's block does not match its header.
    #[error("block {0} from the backend does not match its header's merkle root")]
    BadBlock(BlockHash),
    /// The backend's best chain ends more than the reorg limit below our tip: our blocks
    /// above it were reorganized away (or the backend fell behind).
    #[error(
        "the backend's tip {theirs} is {behind} blocks below ours ({ours}), more than the reorg \
         limit {limit}"
    )]
    BackendBehind {
        /// Our tip height.
        ours: u32,
        /// The backend's tip height.
        theirs: u32,
        /// `ours − theirs`.
        behind: u32,
        /// The reorg limit.
        limit: u32,
    },
    /// One step took longer than the stall timeout.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

impl FollowError {
    /// Whether the chain itself is not sane (a reorg deeper than the limit): the node must
    /// stop at once, not only after the stall timeout.
    fn is_deep_reorg(&self) -> bool {
        matches!(
            self,
            FollowError::NoCommonBlock { .. } | FollowError::BackendBehind { .. }
        )
    }
}

impl From<RestoreError> for FollowError {
    fn from(e: RestoreError) -> Self {
        FollowError::Restore(e.to_string())
    }
}

/// Follows one backend for one module.
pub struct Follower {
    backend: Arc<dyn Backend>,
    module: StakingModule,
    network: Network,
    max_reorg_depth: u32,
    /// The tip and the last staking event of the last scan that found nothing: the open
    /// delegations are scanned again only when either moved (only mined transactions count).
    quiet_at: Mutex<Option<(BlockHash, u64)>>,
    /// How long steps may fail before the node is marked NOT_SERVING.
    stall_timeout: Duration,
    /// When a step last succeeded.
    last_ok: Mutex<Instant>,
}

impl Follower {
    /// A follower of `backend` on `network`, accepting reorgs up to the largest k of the params.
    pub fn new(backend: Arc<dyn Backend>, module: StakingModule, network: Network) -> Self {
        let max_reorg_depth = module
            .params()
            .versions()
            .iter()
            .map(|p| p.btc_confirmation_depth)
            .max()
            .unwrap_or(6)
            .max(1);
        Follower {
            backend,
            module,
            network,
            max_reorg_depth,
            quiet_at: Mutex::new(None),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            last_ok: Mutex::new(Instant::now()),
        }
    }

    /// The same follower, marking the node NOT_SERVING once its steps have failed (or hung)
    /// for `timeout`.
    pub fn with_stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// The node health this follower sets.
    pub fn health(&self) -> &NodeHealth {
        self.module.health()
    }

    /// Polls every `interval` until `shutdown` fires; failures are logged and retried.
    pub async fn run(self, interval: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            match self.poll().await {
                Ok(Some(tip)) => tracing::debug!(tip, "followed bitcoin"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "chain follower step failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One [`step`](Self::step), bounded by the stall timeout, that keeps the node's health:
    /// SERVING after a success; NOT_SERVING with the reason at once on a reorg deeper than
    /// the limit, and after any other failure once no step has succeeded for the stall
    /// timeout (a dead or hanging backend, say).
    pub async fn poll(&self) -> Result<Option<u32>, FollowError> {
        let result = match tokio::time::timeout(self.stall_timeout, self.step()).await {
            Ok(result) => result,
            Err(_) => Err(FollowError::TimedOut(self.stall_timeout)),
        };
        let health = self.module.health();
        match &result {
            Ok(_) => {
                if let Ok(mut last) = self.last_ok.lock() {
                    *last = Instant::now();
                }
                health.set_serving();
            }
            Err(e) if e.is_deep_reorg() => {
                health.set_not_serving(format!("bitcoin reorg deeper than the limit: {e}"));
            }
            Err(e) => {
                let since = self.last_ok.lock().map_or(Duration::ZERO, |t| t.elapsed());
                if since >= self.stall_timeout {
                    health.set_not_serving(format!(
                        "bitcoin not followed for {}s (stall timeout {}s): {e}",
                        since.as_secs(),
                        self.stall_timeout.as_secs()
                    ));
                }
            }
        }
        result
    }

    fn quiet_at(&self) -> Option<(BlockHash, u64)> {
        self.quiet_at.lock().ok().and_then(|q| *q)
    }

    /// Loads the header chain from the store, or starts it at genesis.
    async fn load_chain(&self) -> Result<HeaderChain, FollowError> {
        if let Some(bytes) = self.module.store().light_client().await? {
            let snapshot: ChainSnapshot =
                serde_json::from_slice(&bytes).map_err(|e| FollowError::Restore(e.to_string()))?;
            return Ok(HeaderChain::restore(&snapshot)?);
        }
        Ok(HeaderChain::new(
            self.network,
            Checkpoint::genesis(self.network),
            self.max_reorg_depth,
        )?)
    }

    /// One poll: new headers, then inclusions and spends of open delegations, applied in one
    /// transaction. Returns the new tip height, or `None` when nothing changed.
    pub async fn step(&self) -> Result<Option<u32>, FollowError> {
        // Work on a copy: the shared chain changes only once the update is committed.
        let existing = self
            .module
            .header_chain()
            .read()
            .ok()
            .and_then(|g| g.clone());
        let mut chain = match existing {
            Some(chain) => chain,
            None => self.load_chain().await?,
        };
        let mut inclusions = Vec::new();
        let (old_tip, old_hash) = (chain.tip().height, chain.tip().hash);
        let (first_height, headers) = self.new_headers(&chain).await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        chain.accept_headers(&headers, now)?;
        let tip = chain.tip();
        // The light client switched branches when our old tip left its best chain; every
        // block above `fork` was then replaced.
        let fork = first_height.saturating_sub(1);
        let reorg = if chain.hash_at(old_tip) != Some(old_hash) {
            tracing::warn!(fork, old_tip, new_tip = tip.height, "bitcoin reorg");
            Some(self.reorged(&chain, fork, &mut inclusions).await?)
        } else {
            None
        };
        let (stored_tip, stored_hash) = self.module.store().tip().await?;

        let last_event = self.module.store().last_event_sequence().await?;
        let unchanged =
            headers.is_empty() && stored_tip == tip.height && stored_hash == Some(tip.hash);
        if unchanged && self.quiet_at() == Some((tip.hash, last_event)) {
            return Ok(None);
        }

        let mut spends = Vec::new();
        let open = self.module.store().open_delegation_refs().await?;
        // One that became ACTIVE at the last tip the follower scanned or later (by an
        // inclusion proof, say) is looked up once more: earlier blocks were not read for it.
        let (active, others): (Vec<_>, Vec<_>) = open.iter().partition(|d| {
            d.status == DelegationStatus::Active
                && d.activated_height
                    .is_some_and(|a| a < first_height.saturating_sub(1))
        });
        self.spends_in_blocks(&active, first_height, &headers, &mut spends)
            .await?;
        for d in others {
            if d.start_height.is_none() {
                self.prove_inclusion(&chain, d, &mut inclusions).await?;
            }
            let outpoint = OutPoint::new(d.staking_txid, d.staking_output_index);
            if let OutPointStatus::Spent { txid, .. } =
                self.backend.outpoint_status(&outpoint).await?
            {
                spends.push((d.staking_txid, txid));
            }
        }
        if unchanged && reorg.is_none() && inclusions.is_empty() && spends.is_empty() {
            if let Ok(mut quiet) = self.quiet_at.lock() {
                *quiet = Some((tip.hash, last_event));
            }
            return Ok(None);
        }
        let snapshot = serde_json::to_vec(&chain.snapshot())
            .map_err(|e| FollowError::Restore(e.to_string()))?;
        let update = ChainUpdate {
            tip_height: tip.height,
            tip_hash: tip.hash,
            light_client: Some(snapshot),
            inclusions,
            spends,
        };
        let events = self.module.apply_followed(&update, reorg.as_ref()).await?;
        if let Ok(mut guard) = self.module.header_chain().write() {
            *guard = Some(chain);
        }
        tracing::info!(
            tip = tip.height,
            events = events.len(),
            "applied bitcoin update"
        );
        Ok(Some(tip.height))
    }

    /// Looks up `d`'s staking transaction at the backend and, when its Merkle proof checks
    /// against `chain` at k depth (and not as the coinbase), adds it to `inclusions`.
    async fn prove_inclusion(
        &self,
        chain: &HeaderChain,
        d: &DelegationRef,
        inclusions: &mut Vec<(Txid, u32)>,
    ) -> Result<(), FollowError> {
        let Some(params) = self.module.params().get(d.params_version) else {
            return Ok(());
        };
        if let TxStatus::Confirmed { proof, .. } = self.backend.tx_status(&d.staking_txid).await? {
            match chain.verify_merkle_block(&proof, d.staking_txid) {
                Ok(inc) if inc.index != 0 && inc.is_k_deep(params.btc_confirmation_depth) => {
                    inclusions.push((d.staking_txid, inc.height));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(txid = %d.staking_txid, error = %e, "backend inclusion proof refused")
                }
            }
        }
        Ok(())
    }

    /// What a reorg that kept the blocks up to `fork` took back, checked on the new chain:
    /// the UNBONDED delegations whose spend is in no block any more, and (into `inclusions`)
    /// new proofs for the staking transactions whose inclusion was above the fork.
    async fn reorged(
        &self,
        chain: &HeaderChain,
        fork: u32,
        inclusions: &mut Vec<(Txid, u32)>,
    ) -> Result<Reorg, FollowError> {
        let mut unspent = Vec::new();
        for d in self.module.store().reorg_candidates(fork).await? {
            if d.status == DelegationStatus::Unbonded {
                let outpoint = OutPoint::new(d.staking_txid, d.staking_output_index);
                match self.backend.outpoint_status(&outpoint).await? {
                    OutPointStatus::Spent { .. } => {}
                    _ => unspent.push(d.staking_txid),
                }
            } else {
                self.prove_inclusion(chain, &d, inclusions).await?;
            }
        }
        Ok(Reorg { fork, unspent })
    }

    /// Spends of `active` delegations' staking outputs in the new blocks `headers` (the first at
    /// `first_height`), read from the blocks' inputs; blocks below every start height are not
    /// fetched.
    async fn spends_in_blocks(
        &self,
        active: &[&DelegationRef],
        first_height: u32,
        headers: &[Header],
        spends: &mut Vec<(Txid, Txid)>,
    ) -> Result<(), FollowError> {
        let Some(earliest) = active.iter().filter_map(|d| d.start_height).min() else {
            return Ok(());
        };
        let watched: BTreeMap<OutPoint, Txid> = active
            .iter()
            .map(|d| {
                (
                    OutPoint::new(d.staking_txid, d.staking_output_index),
                    d.staking_txid,
                )
            })
            .collect();
        for (height, header) in (first_height..).zip(headers) {
            if height < earliest {
                continue;
            }
            let hash = header.block_hash();
            let block = self
                .backend
                .block(&hash)
                .await?
                .ok_or(FollowError::MissingBlock(hash))?;
            if block.header != *header || !block.check_merkle_root() {
                return Err(FollowError::BadBlock(hash));
            }
            for tx in &block.txdata {
                for input in &tx.input {
                    if let Some(staking_txid) = watched.get(&input.previous_output) {
                        spends.push((*staking_txid, tx.compute_txid()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Headers the backend has beyond the fork point with `chain`, oldest first, with the
    /// height of the first.
    async fn new_headers(&self, chain: &HeaderChain) -> Result<(u32, Vec<Header>), FollowError> {
        let ours = chain.tip();
        let theirs = self.backend.tip().await?;
        let behind = ours.height.saturating_sub(theirs.height);
        if behind > self.max_reorg_depth {
            return Err(FollowError::BackendBehind {
                ours: ours.height,
                theirs: theirs.height,
                behind,
                limit: self.max_reorg_depth,
            });
        }
        // Walk back from our tip to the highest block the backend also has.
        let mut fork = ours.height.min(theirs.height);
        let lowest = ours.height.saturating_sub(self.max_reorg_depth);
        loop {
            let same = match (chain.hash_at(fork), self.backend.block_hash(fork).await?) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            };
            if same {
                break;
            }
            if fork <= lowest {
                return Err(FollowError::NoCommonBlock { height: fork });
            }
            fork -= 1;
        }
        let last = theirs.height.min(fork.saturating_add(HEADERS_PER_STEP));
        let mut headers = Vec::new();
        for height in fork + 1..=last {
            let hash = self
                .backend
                .block_hash(height)
                .await?
                .ok_or(FollowError::MissingHeader(height))?;
            let entry = self
                .backend
                .header(&hash)
                .await?
                .ok_or(FollowError::MissingHeader(height))?;
            headers.push(entry.header);
        }
        Ok((fork + 1, headers))
    }
}
