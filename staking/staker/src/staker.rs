//! The staker component: `new`, `step` (one pass carrying each delegation through its steps)
//! and `run` (the daemon loop), plus the owner's requests (stake, PSBT import, unbond,
//! withdraw, list) that the gRPC service and the devnet call.
//!
//! Nothing is broadcast before the committee has signed: a stake is planned, signed (by the
//! wallet, or by an external signer through PSBTs), checked with `validate_delegation`,
//! recorded, and registered; a later step broadcasts the staking transaction once the node
//! reports the delegation VERIFIED.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bdk_bitcoind_rpc::bitcoincore_rpc::{Client, RpcApi};
use bitcoin::psbt::Psbt;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Amount, FeeRate, Network, OutPoint, Transaction, Txid};
use fiamma_btc::{Backend, BackendError, OutPointStatus, TxStatus};
use fiamma_proto::client::{EventStream, FinalityNode, NodeError, StakerNode};
use fiamma_proto::codec::{self, params::differing_fields, params_to_pb};
use fiamma_proto::finality::v1::VerifierStatus as FinalityStatus;
use fiamma_proto::staking::v1 as pb;
use fiamma_role::component::Component;
use fiamma_role::daemon::{Health, Metrics, Shutdown};
use fiamma_staking::context::SigningContexts;
use fiamma_staking::params::{Params, ParamsVersions};
use fiamma_staking::registration::Registration;
use fiamma_wallet::{KeyOrigin, Wallet, WalletError};
use tokio::sync::Mutex;

use crate::plan::{self, PlanError, PsbtBundle, StakePlan, StakePsbts, StakeTerms, WithdrawFrom};
use crate::store::{PlannedStake, StakeRecord, StakerStore, Step, StoreError};

/// The receive index of the staker's BTC key in its wallet.
pub const STAKER_KEY_INDEX: u32 = 0;

/// A test-only fault hook, compiled in always and inert unless set: the process aborts right
/// after the named step of the stake flow is persisted (or done), as a SIGKILL there would.
/// The steps: `planned` (a watch-only plan stored), `recorded` (the delegation stored, not yet
/// registered), `submitted` (registered with the node), `broadcast-sent` (the staking
/// transaction sent, its step not yet stored), `broadcast` (its step stored).
pub const CRASH_AFTER_ENV: &str = "FIAMMA_STAKER_CRASH_AFTER";

fn crash_point(step: &str) {
    if std::env::var(CRASH_AFTER_ENV).is_ok_and(|s| s == step) {
        tracing::error!(step, "{CRASH_AFTER_ENV} is set: aborting the process");
        std::process::abort();
    }
}

/// How a staker runs, apart from its wallet, node, chain and store.
#[derive(Debug, Clone)]
pub struct StakerSettings {
    /// The staker's own params versions (from its own file, never the node's).
    pub params: ParamsVersions,
    /// The signing contexts of the proof of possession.
    pub contexts: SigningContexts,
    /// The Bitcoin network.
    pub network: Network,
    /// The fee rate when the backend cannot estimate one.
    pub fee_rate: FeeRate,
    /// Whether a step withdraws what became spendable on its own.
    pub auto_withdraw: bool,
    /// Longest wait between two passes.
    pub poll_interval: Duration,
}

/// Why a request or a step failed. Nothing moved unless the message says so.
#[derive(Debug, thiserror::Error)]
pub enum StakerError {
    /// The node could not be asked or refused.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The local store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The wallet.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The plan or the signatures.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Bitcoin.
    #[error("bitcoin backend: {0}")]
    Bitcoin(String),
    /// The staker's params have no version for the tip.
    #[error("this staker's params have no version in force at height {0}")]
    NoParams(u32),
    /// The node's params differ from the staker's own.
    #[error("the node's params (version {version}) differ from this staker's own in: {fields}; nothing was signed")]
    ParamsMismatch {
        /// The version.
        version: u32,
        /// The fields.
        fields: String,
    },
    /// The verifier is unknown to the node.
    #[error("verifier {0} is not registered with the node")]
    UnknownVerifier(XOnlyPublicKey),
    /// The verifier is slashed.
    #[error("verifier {0} is slashed: a stake with it would have no voting power")]
    SlashedVerifier(XOnlyPublicKey),
    /// The verifier is jailed.
    #[error("verifier {0} is jailed: it votes again only after it is unjailed")]
    JailedVerifier(XOnlyPublicKey),
    /// No such delegation.
    #[error("no delegation {0} in this staker's store")]
    UnknownDelegation(String),
    /// The delegation is not in a state for the request.
    #[error("delegation {staking_txid}: {reason}")]
    NotNow {
        /// The delegation.
        staking_txid: String,
        /// Why.
        reason: String,
    },
    /// No stake waits for these signatures.
    #[error("no stake waits for a signed funding transaction {0}: stake again (nothing was sent)")]
    NoPendingPlan(String),
}

/// What a stake request became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StakeOutcome {
    /// Signed, checked, recorded and registered (PENDING); the staking transaction is
    /// broadcast once the committee has signed.
    Registered {
        /// The delegation's id.
        staking_txid: String,
    },
    /// The wallet is watch-only: these PSBTs go to its signer, then back through
    /// [`Staker::import_stake`].
    NeedsSignatures {
        /// The funding transaction's id (the delegation's id to be).
        staking_txid: String,
        /// The PSBTs.
        bundle: PsbtBundle,
    },
}

/// A delegation as `fiamma staker delegations` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationView {
    /// The delegation's id.
    pub staking_txid: String,
    /// The verifier.
    pub verifier: XOnlyPublicKey,
    /// The staked value.
    pub value: Amount,
    /// Staking time `T`.
    pub staking_time: u32,
    /// The staker's step.
    pub step: Step,
    /// The node's status (lower-case), empty before the node answered.
    pub node_status: String,
    /// The node's start and end heights (0 before ACTIVE).
    pub start_height: u32,
    /// End height.
    pub end_height: u32,
    /// What the owner can do next.
    pub next: String,
}

/// What one step did to one delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Registered with the node (again, after a restart).
    Registered,
    /// The staking transaction was broadcast.
    Broadcast(Txid),
    /// The node reports it ACTIVE.
    Active,
    /// The co-signed unbonding transaction was broadcast.
    Unbonded(Txid),
    /// A withdrawal was broadcast.
    Withdrew(WithdrawFrom, Txid),
    /// A withdrawal PSBT waits for the external signer.
    WithdrawalNeedsSignature(WithdrawFrom),
    /// The withdrawal is confirmed.
    Done,
    /// This delegation's step failed (the others went on).
    Failed(String),
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepReport {
    /// The height the wallet synced to.
    pub synced_height: u32,
    /// What happened, per delegation.
    pub actions: Vec<(String, Action)>,
}

/// The staker.
pub struct Staker {
    settings: StakerSettings,
    wallet: Mutex<Wallet>,
    store: StakerStore,
    node: Arc<dyn StakerNode>,
    finality: Option<Arc<dyn FinalityNode>>,
    bitcoin: Arc<dyn Backend>,
    rpc: Arc<Client>,
    metrics: Metrics,
    health: Health,
    /// The last staking event seen on the node's stream.
    seen_event: AtomicU64,
}

fn status_word(s: pb::DelegationStatus) -> &'static str {
    match s {
        pb::DelegationStatus::Unspecified => "",
        pb::DelegationStatus::Pending => "pending",
        pb::DelegationStatus::Verified => "verified",
        pb::DelegationStatus::Active => "active",
        pb::DelegationStatus::Unbonded => "unbonded",
        pb::DelegationStatus::Expired => "expired",
    }
}

fn bitcoin_err(e: BackendError) -> StakerError {
    StakerError::Bitcoin(e.to_string())
}

impl Staker {
    /// A staker holding `wallet`, asking `node` (and `finality`, for jailing), watching
    /// `bitcoin` (with `rpc`, the same node's JSON-RPC client, for the wallet's sync),
    /// remembering in `store`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: StakerSettings,
        wallet: Wallet,
        store: StakerStore,
        node: Arc<dyn StakerNode>,
        finality: Option<Arc<dyn FinalityNode>>,
        bitcoin: Arc<dyn Backend>,
        rpc: Arc<Client>,
    ) -> Self {
        Staker {
            settings,
            wallet: Mutex::new(wallet),
            store,
            node,
            finality,
            bitcoin,
            rpc,
            metrics: Metrics::default(),
            health: Health::default(),
            seen_event: AtomicU64::new(0),
        }
    }

    /// Its metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Its health.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Its local store.
    pub fn store(&self) -> &StakerStore {
        &self.store
    }

    /// The wallet, locked.
    pub async fn wallet(&self) -> tokio::sync::MutexGuard<'_, Wallet> {
        self.wallet.lock().await
    }

    /// The staker's BTC key and its origin in the wallet.
    ///
    /// # Errors
    /// [`StakerError::Wallet`] when the wallet is not a taproot wallet.
    pub async fn staker_key(&self) -> Result<KeyOrigin, StakerError> {
        Ok(self.wallet.lock().await.key_origin(STAKER_KEY_INDEX)?)
    }

    /// Syncs the wallet.
    ///
    /// # Errors
    /// [`StakerError::Wallet`].
    pub async fn sync(&self) -> Result<u32, StakerError> {
        Ok(self.wallet.lock().await.sync(self.rpc.clone()).await?)
    }

    /// The fee rate: Bitcoin Core's `estimatesmartfee` when it has one, else the configured.
    pub async fn fee_rate(&self) -> FeeRate {
        let rpc = self.rpc.clone();
        let estimated = tokio::task::spawn_blocking(move || rpc.estimate_smart_fee(6, None))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|e| e.fee_rate)
            .and_then(|per_kvb| FeeRate::from_sat_per_vb(per_kvb.to_sat() / 1000));
        estimated
            .filter(|r| *r >= FeeRate::from_sat_per_vb_u32(1))
            .unwrap_or(self.settings.fee_rate)
    }

    /// The staker's own params in force at the tip, checked against the node's.
    async fn params(&self) -> Result<(u32, Params), StakerError> {
        let tip = self.bitcoin.tip().await.map_err(bitcoin_err)?.height;
        let (version, own) = self
            .settings
            .params
            .at_height(tip)
            .map_err(|_| StakerError::NoParams(tip))?;
        let theirs = self.node.params_at(tip).await?;
        let ours = params_to_pb(version, own);
        let differ = differing_fields(&ours, &theirs);
        if !differ.is_empty() || theirs.version != version {
            let mut fields = differ.join(", ");
            if theirs.version != version {
                fields = format!("version {} vs {version} {fields}", theirs.version);
            }
            return Err(StakerError::ParamsMismatch { version, fields });
        }
        Ok((version, own.clone()))
    }

    /// Checks the verifier with the node: registered, not slashed, not jailed.
    async fn check_verifier(&self, verifier: XOnlyPublicKey) -> Result<(), StakerError> {
        let v = self
            .node
            .staking_verifier(verifier)
            .await?
            .ok_or(StakerError::UnknownVerifier(verifier))?;
        if v.status() == pb::VerifierStatus::Slashed {
            return Err(StakerError::SlashedVerifier(verifier));
        }
        if let Some(finality) = &self.finality {
            if let Some(record) = finality.verifier(verifier).await? {
                match record.status {
                    FinalityStatus::Jailed => return Err(StakerError::JailedVerifier(verifier)),
                    FinalityStatus::Slashed => return Err(StakerError::SlashedVerifier(verifier)),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Coins the wallet must not spend: the inputs of stakes not yet broadcast, and of the
    /// stakes a watch-only wallet's signer holds.
    async fn locked_coins(&self) -> Result<Vec<OutPoint>, StakerError> {
        let mut locked: Vec<OutPoint> = self
            .store
            .all()
            .await?
            .iter()
            .filter(|r| r.step < Step::Broadcast)
            .flat_map(StakeRecord::funding_inputs)
            .collect();
        for plan in self.store.plans().await? {
            locked.extend(plan.funding_inputs());
        }
        Ok(locked)
    }

    /// The stake plan a watch-only wallet's signer holds, rebuilt from what the store kept
    /// (the plan is a pure function of the terms, the funding PSBT and the staker key).
    async fn rebuild_plan(&self, planned: &PlannedStake) -> Result<StakePlan, StakerError> {
        let params = self.params_version(planned.params_version)?;
        let staker = self.staker_key().await?;
        let terms = StakeTerms {
            verifier: planned.verifier,
            value: planned.value,
            staking_time: planned.staking_time,
            slashing_fee: planned.slashing_fee,
        };
        Ok(self.plan(&params, &staker, &terms, planned.funding.clone())?)
    }

    /// The stake of `terms` by `staker` funded by `funding`, under this staker's network and
    /// signing contexts.
    fn plan(
        &self,
        params: &Params,
        staker: &KeyOrigin,
        terms: &StakeTerms,
        funding: Psbt,
    ) -> Result<StakePlan, PlanError> {
        plan::plan_stake(
            params,
            &self.settings.contexts,
            self.settings.network,
            staker,
            plan::account_of(&staker.key),
            terms,
            funding,
        )
    }

    fn params_version(&self, version: u32) -> Result<Params, StakerError> {
        self.settings
            .params
            .versions()
            .get(version as usize)
            .cloned()
            .ok_or(StakerError::NoParams(version))
    }

    /// Stakes `value` with `verifier` for `staking_time` blocks (PROTOCOL §8, pre-approval
    /// flow). Checks the node's params against the staker's own, the verifier, the terms and
    /// the funds before anything is signed; signs with the wallet, or returns the PSBTs for
    /// the external signer of a watch-only wallet.
    ///
    /// # Errors
    /// [`StakerError`], each naming what to change; no coin moved.
    pub async fn stake(
        &self,
        verifier: XOnlyPublicKey,
        value: Amount,
        staking_time: u32,
        fee_rate: Option<FeeRate>,
    ) -> Result<StakeOutcome, StakerError> {
        let (version, params) = self.params().await?;
        let fee_rate = match fee_rate {
            Some(r) => r,
            None => self.fee_rate().await,
        };
        let terms = StakeTerms {
            verifier,
            value,
            staking_time,
            slashing_fee: plan::slashing_fee(&params, fee_rate),
        };
        plan::check_terms(&params, &terms)?;
        self.check_verifier(verifier).await?;
        let locked = self.locked_coins().await?;
        let mut wallet = self.wallet.lock().await;
        wallet.sync(self.rpc.clone()).await?;
        let staker = wallet.key_origin(STAKER_KEY_INDEX)?;
        let (_, output) = plan::staking_output(&params, staker.key, verifier, staking_time)?;
        let funding = wallet
            .build_payment_excluding(&[(output.script_pubkey(), value)], fee_rate, &locked)
            .await?;
        let stake_plan = self.plan(&params, &staker, &terms, funding)?;
        let staking_txid = stake_plan.unsigned.staking_tx.compute_txid().to_string();
        if wallet.is_watch_only() {
            let bundle = stake_plan.psbts.to_bundle();
            self.store
                .record_plan(&PlannedStake {
                    staking_txid: staking_txid.clone(),
                    params_version: version,
                    verifier,
                    value,
                    staking_time,
                    slashing_fee: terms.slashing_fee,
                    funding: stake_plan.psbts.funding.clone(),
                })
                .await?;
            crash_point("planned");
            return Ok(StakeOutcome::NeedsSignatures {
                staking_txid,
                bundle,
            });
        }
        let mut signed = stake_plan.psbts.clone();
        for (_, psbt) in signed.each_mut() {
            wallet.sign(psbt)?;
        }
        drop(wallet);
        let staking_txid = self.complete(version, &stake_plan, signed).await?;
        Ok(StakeOutcome::Registered { staking_txid })
    }

    /// Pays `amount` to `address` from the wallet, never from coins a stake waits to spend.
    /// Returns the broadcast txid, or the PSBT for a watch-only wallet's signer.
    ///
    /// # Errors
    /// [`StakerError::Wallet`] (insufficient funds), [`StakerError::Bitcoin`].
    pub async fn send(
        &self,
        address: &bitcoin::Address,
        amount: Amount,
        fee_rate: Option<FeeRate>,
    ) -> Result<Result<Txid, Psbt>, StakerError> {
        let fee_rate = match fee_rate {
            Some(r) => r,
            None => self.fee_rate().await,
        };
        let locked = self.locked_coins().await?;
        let mut wallet = self.wallet.lock().await;
        let mut psbt = wallet
            .build_payment_excluding(&[(address.script_pubkey(), amount)], fee_rate, &locked)
            .await?;
        if wallet.is_watch_only() {
            return Ok(Err(psbt));
        }
        let tx = wallet.sign_payment(&mut psbt)?;
        drop(wallet);
        let txid = self
            .bitcoin
            .broadcast(&tx)
            .await
            .map_err(|e| StakerError::Bitcoin(e.to_string()))?;
        Ok(Ok(txid))
    }

    /// Completes a stake whose PSBTs a watch-only wallet's signer signed.
    ///
    /// # Errors
    /// [`StakerError::NoPendingPlan`] when no stake waits for them, or as [`Staker::stake`].
    pub async fn import_stake(&self, bundle: &PsbtBundle) -> Result<String, StakerError> {
        let signed = StakePsbts::from_bundle(bundle)?;
        let txid = signed.funding.unsigned_tx.compute_txid().to_string();
        let planned = self
            .store
            .plan(&txid)
            .await?
            .ok_or_else(|| StakerError::NoPendingPlan(txid.clone()))?;
        let stake_plan = self.rebuild_plan(&planned).await?;
        let staking_txid = self
            .complete(planned.params_version, &stake_plan, signed)
            .await?;
        self.store.forget_plan(&txid).await?;
        Ok(staking_txid)
    }

    /// Checks the signatures, records the delegation, registers it.
    async fn complete(
        &self,
        version: u32,
        stake_plan: &StakePlan,
        mut signed: StakePsbts,
    ) -> Result<String, StakerError> {
        let params = self.params_version(version)?;
        let stake = plan::complete_stake(
            stake_plan,
            &signed,
            &params,
            &self.settings.contexts,
            self.settings.network,
        )?;
        let staking_tx = self.wallet.lock().await.finalize(&mut signed.funding)?;
        let staking_txid = self
            .store
            .record(
                &stake.registration,
                version,
                &staking_tx,
                &stake.unbonding_sig,
            )
            .await?;
        crash_point("recorded");
        tracing::info!(staking_txid = %staking_txid, "stake recorded; registering it with the node");
        self.metrics.inc("fiamma_staker_stakes_total", &[]);
        self.register(&stake.registration, &staking_txid).await?;
        Ok(staking_txid)
    }

    async fn register(&self, reg: &Registration, staking_txid: &str) -> Result<(), StakerError> {
        self.node.create_delegation(reg).await?;
        self.store.set_step(staking_txid, Step::Submitted).await?;
        crash_point("submitted");
        Ok(())
    }

    /// Asks to unbond `staking_txid`; the next step broadcasts the co-signed unbonding
    /// transaction once the staking transaction is confirmed.
    ///
    /// # Errors
    /// [`StakerError::UnknownDelegation`] or [`StakerError::NotNow`].
    pub async fn request_unbond(&self, staking_txid: &str) -> Result<(), StakerError> {
        let record = self
            .store
            .get(staking_txid)
            .await?
            .ok_or_else(|| StakerError::UnknownDelegation(staking_txid.to_owned()))?;
        if record.step >= Step::Unbonding {
            return Err(StakerError::NotNow {
                staking_txid: staking_txid.to_owned(),
                reason: format!("it is {} already", record.step.as_str()),
            });
        }
        self.store.request_unbond(staking_txid).await?;
        Ok(())
    }

    /// Each delegation with the node's view and what the owner can do next.
    ///
    /// # Errors
    /// [`StakerError::Store`].
    pub async fn delegations(&self) -> Result<Vec<DelegationView>, StakerError> {
        let mut views = Vec::new();
        for r in self.store.all().await? {
            let served = self.node.delegation(&r.staking_txid).await.ok().flatten();
            let (start, end) = served
                .as_ref()
                .map_or((0, 0), |d| (d.start_height, d.end_height));
            let node_status = served.as_ref().map_or(r.node_status.clone(), |d| {
                status_word(d.status()).to_owned()
            });
            let next = match (r.step, node_status.as_str()) {
                (Step::Done, _) => "nothing: withdrawn".to_owned(),
                (Step::Withdrawing, _) => "wait: the withdrawal confirms".to_owned(),
                (Step::Unbonding, _) => {
                    "withdraw once the unbonding output is U blocks deep".to_owned()
                }
                (_, "pending") | (Step::Registered, _) => {
                    "wait: the covenant committee signs".to_owned()
                }
                (_, "verified") => "wait: the staking transaction confirms".to_owned(),
                (_, "active") if r.unbond_requested => "wait: unbonding".to_owned(),
                (_, "active") => "unbond".to_owned(),
                (_, "expired") | (_, "unbonded") => "withdraw".to_owned(),
                _ => "wait".to_owned(),
            };
            views.push(DelegationView {
                verifier: r
                    .registration
                    .verifier_pks
                    .first()
                    .copied()
                    .unwrap_or(r.registration.staker_pk),
                value: Amount::from_sat(r.registration.staking_value_sat),
                staking_time: r.registration.staking_time,
                step: r.step,
                node_status,
                start_height: start,
                end_height: end,
                next,
                staking_txid: r.staking_txid,
            });
        }
        Ok(views)
    }

    /// One pass: syncs the wallet, then carries each delegation one step further.
    ///
    /// # Errors
    /// [`StakerError`] when the wallet or the store fail; a delegation's own trouble is in
    /// the report.
    pub async fn step(&self) -> Result<StepReport, StakerError> {
        let synced_height = self.sync().await?;
        let mut report = StepReport {
            synced_height,
            actions: Vec::new(),
        };
        for record in self.store.all().await? {
            if record.step == Step::Done {
                continue;
            }
            let txid = record.staking_txid.clone();
            match self.advance(record).await {
                Ok(actions) => report
                    .actions
                    .extend(actions.into_iter().map(|a| (txid.clone(), a))),
                Err(e) => {
                    tracing::warn!(staking_txid = %txid, error = %e, "delegation step failed");
                    report.actions.push((txid, Action::Failed(e.to_string())));
                }
            }
        }
        self.health.ok();
        Ok(report)
    }

    async fn tx_status(&self, txid: &Txid) -> Result<TxStatus, StakerError> {
        self.bitcoin.tx_status(txid).await.map_err(bitcoin_err)
    }

    /// Broadcasts `tx` unless the chain or the mempool has it.
    async fn ensure_broadcast(&self, tx: &Transaction) -> Result<Option<Txid>, StakerError> {
        let txid = tx.compute_txid();
        if self.tx_status(&txid).await? != TxStatus::Unknown {
            return Ok(None);
        }
        self.bitcoin
            .broadcast(tx)
            .await
            .map_err(|e| StakerError::Bitcoin(e.to_string()))?;
        Ok(Some(txid))
    }

    fn params_of(&self, record: &StakeRecord) -> Result<Params, StakerError> {
        self.params_version(record.params_version)
    }

    async fn advance(&self, record: StakeRecord) -> Result<Vec<Action>, StakerError> {
        let mut actions = Vec::new();
        let txid = record.staking_txid.clone();
        let mut step = record.step;
        if step == Step::Registered {
            self.register(&record.registration, &txid).await?;
            actions.push(Action::Registered);
            step = Step::Submitted;
        }
        let served = self.node.delegation(&txid).await?;
        let status = served
            .as_ref()
            .map_or(pb::DelegationStatus::Unspecified, pb::Delegation::status);
        let word = status_word(status);
        if word != record.node_status {
            self.store.set_node_status(&txid, word).await?;
            if status == pb::DelegationStatus::Active {
                actions.push(Action::Active);
            }
        }
        if step == Step::Submitted
            && matches!(
                status,
                pb::DelegationStatus::Verified | pb::DelegationStatus::Active
            )
        {
            if let Some(sent) = self.ensure_broadcast(&record.staking_tx).await? {
                actions.push(Action::Broadcast(sent));
            }
            crash_point("broadcast-sent");
            self.store.set_step(&txid, Step::Broadcast).await?;
            crash_point("broadcast");
            step = Step::Broadcast;
        }
        if step == Step::Broadcast && status == pb::DelegationStatus::Verified {
            // Keep the staking transaction in the mempool until the node sees it k-deep.
            self.ensure_broadcast(&record.staking_tx).await?;
        }
        let params = self.params_of(&record)?;
        if step == Step::Broadcast && record.unbond_requested {
            if let Some(d) = &served {
                if let Some(sent) = self.unbond(&params, &record, d).await? {
                    actions.push(Action::Unbonded(sent));
                    step = Step::Unbonding;
                }
            }
        }
        if matches!(step, Step::Broadcast | Step::Unbonding)
            && (self.settings.auto_withdraw || record.withdraw_from.is_some())
        {
            if let Some(action) = self.try_withdraw(&params, &record).await? {
                actions.push(action);
            }
        }
        if step == Step::Withdrawing {
            if let (Some(tx), Some(input)) = (
                &record.withdraw_tx,
                record.withdraw_tx.as_ref().and_then(|t| t.input.first()),
            ) {
                let spent = self
                    .bitcoin
                    .outpoint_status(&input.previous_output)
                    .await
                    .map_err(bitcoin_err)?;
                match spent {
                    OutPointStatus::Spent { txid: by, .. } if by == tx.compute_txid() => {
                        self.store.set_step(&txid, Step::Done).await?;
                        actions.push(Action::Done);
                    }
                    OutPointStatus::Unspent { .. } => {
                        self.ensure_broadcast(tx).await?;
                    }
                    _ => {}
                }
            }
        }
        Ok(actions)
    }

    async fn unbond(
        &self,
        params: &Params,
        record: &StakeRecord,
        served: &pb::Delegation,
    ) -> Result<Option<Txid>, StakerError> {
        let staking = OutPoint::new(
            record.registration.staking_tx.compute_txid(),
            record.registration.staking_output_index,
        );
        match self
            .bitcoin
            .outpoint_status(&staking)
            .await
            .map_err(bitcoin_err)?
        {
            OutPointStatus::Unspent { confirmations } if confirmations > 0 => {}
            _ => return Ok(None),
        }
        let mut covenant = Vec::new();
        for s in &served.covenant_sigs {
            let (Ok(key), Ok(sig)) = (
                codec::key("covenant_pk", &s.covenant_pk),
                codec::schnorr_sig("unbonding_sig", &s.unbonding_sig),
            ) else {
                continue;
            };
            covenant.push((key, sig));
        }
        let tx = plan::cosigned_unbonding(
            params,
            &record.registration,
            &record.unbonding_sig,
            &covenant,
        )?;
        let txid = self.ensure_broadcast(&tx).await?;
        self.store
            .set_step(&record.staking_txid, Step::Unbonding)
            .await?;
        Ok(Some(txid.unwrap_or_else(|| tx.compute_txid())))
    }

    /// Which output of `record` is spendable by its timelock path now, if any.
    async fn withdrawable(
        &self,
        params: &Params,
        record: &StakeRecord,
    ) -> Result<Option<WithdrawFrom>, StakerError> {
        let reg = &record.registration;
        let confirmed_for = |status: &OutPointStatus, timelock: u32| matches!(status, OutPointStatus::Unspent { confirmations } if *confirmations >= timelock);
        let (staking, _, _, _) = plan::withdraw_source(params, reg, WithdrawFrom::Staking)?;
        let status = self
            .bitcoin
            .outpoint_status(&staking)
            .await
            .map_err(bitcoin_err)?;
        let spender = match status {
            OutPointStatus::Unspent { .. } => {
                return Ok(confirmed_for(&status, reg.staking_time).then_some(WithdrawFrom::Staking))
            }
            OutPointStatus::Spent { txid, .. } => txid,
            OutPointStatus::SpentInMempool { .. } | OutPointStatus::Unknown => return Ok(None),
        };
        let candidates = if spender == reg.unbonding_tx.compute_txid() {
            let (unbonding, _, _, _) = plan::withdraw_source(params, reg, WithdrawFrom::Unbonding)?;
            let status = self
                .bitcoin
                .outpoint_status(&unbonding)
                .await
                .map_err(bitcoin_err)?;
            match status {
                OutPointStatus::Unspent { .. } => {
                    return Ok(confirmed_for(&status, reg.unbonding_time)
                        .then_some(WithdrawFrom::Unbonding))
                }
                OutPointStatus::Spent { txid, .. }
                    if txid == reg.unbonding_slashing_tx.compute_txid() =>
                {
                    WithdrawFrom::UnbondingSlashingChange
                }
                _ => return Ok(None),
            }
        } else if spender == reg.slashing_tx.compute_txid() {
            WithdrawFrom::SlashingChange
        } else {
            return Ok(None);
        };
        let (change, _, _, _) = plan::withdraw_source(params, reg, candidates)?;
        let status = self
            .bitcoin
            .outpoint_status(&change)
            .await
            .map_err(bitcoin_err)?;
        Ok(confirmed_for(&status, reg.unbonding_time).then_some(candidates))
    }

    async fn try_withdraw(
        &self,
        params: &Params,
        record: &StakeRecord,
    ) -> Result<Option<Action>, StakerError> {
        let Some(from) = self.withdrawable(params, record).await? else {
            return Ok(None);
        };
        if record.withdraw_psbt.is_some() && record.withdraw_from == Some(from) {
            // Exported already: the signer has it.
            return Ok(Some(Action::WithdrawalNeedsSignature(from)));
        }
        let fee_rate = self.fee_rate().await;
        let mut wallet = self.wallet.lock().await;
        let to = wallet.next_address().await?.script_pubkey();
        let staker = wallet.key_origin(STAKER_KEY_INDEX)?;
        let mut psbt =
            plan::withdraw_psbt(params, &record.registration, from, to, fee_rate, &staker)?;
        if wallet.is_watch_only() {
            self.store
                .set_withdraw_psbt(&record.staking_txid, from, &psbt.to_string())
                .await?;
            return Ok(Some(Action::WithdrawalNeedsSignature(from)));
        }
        wallet.sign(&mut psbt)?;
        drop(wallet);
        let tx = plan::complete_withdraw(params, &record.registration, from, &psbt)?;
        Ok(Some(self.send_withdraw(record, from, &tx).await?))
    }

    async fn send_withdraw(
        &self,
        record: &StakeRecord,
        from: WithdrawFrom,
        tx: &Transaction,
    ) -> Result<Action, StakerError> {
        self.store
            .record_withdraw(&record.staking_txid, from, tx)
            .await?;
        self.ensure_broadcast(tx).await?;
        self.metrics.inc("fiamma_staker_withdrawals_total", &[]);
        Ok(Action::Withdrew(from, tx.compute_txid()))
    }

    /// Asks to withdraw `staking_txid` as soon as an output becomes spendable (the next steps
    /// do it), or does it now when one is.
    ///
    /// # Errors
    /// [`StakerError`].
    pub async fn withdraw(&self, staking_txid: &str) -> Result<Option<Action>, StakerError> {
        let record = self
            .store
            .get(staking_txid)
            .await?
            .ok_or_else(|| StakerError::UnknownDelegation(staking_txid.to_owned()))?;
        let params = self.params_of(&record)?;
        self.try_withdraw(&params, &record).await
    }

    /// Completes a withdrawal whose PSBT the external signer signed.
    ///
    /// # Errors
    /// [`StakerError`].
    pub async fn import_withdraw(&self, signed: &Psbt) -> Result<Txid, StakerError> {
        for record in self.store.all().await? {
            let (Some(from), Some(text)) = (record.withdraw_from, &record.withdraw_psbt) else {
                continue;
            };
            let exported: Psbt = text.parse().map_err(|e| {
                StakerError::Plan(PlanError::Build(format!("stored withdrawal PSBT: {e}")))
            })?;
            if exported.unsigned_tx != signed.unsigned_tx {
                continue;
            }
            let params = self.params_of(&record)?;
            let tx = plan::complete_withdraw(&params, &record.registration, from, signed)?;
            self.send_withdraw(&record, from, &tx).await?;
            return Ok(tx.compute_txid());
        }
        Err(StakerError::NoPendingPlan(
            signed.unsigned_tx.compute_txid().to_string(),
        ))
    }

    /// The daemon loop ([`fiamma_role::component::run`]): a step, then a wait for a change of
    /// a delegation's status on the node's event stream (or the poll interval, which also
    /// brings new blocks), until `shutdown`.
    pub async fn run(&self, shutdown: Shutdown) {
        fiamma_role::component::run(self, shutdown).await;
    }
}

#[async_trait::async_trait]
impl Component for Staker {
    type Event = pb::Event;
    type StreamError = NodeError;
    type Events = EventStream;
    type Report = StepReport;
    type Error = StakerError;
    const STEP_ERRORS: &'static str = "fiamma_staker_step_errors_total";
    const DEBOUNCE: Duration = Duration::from_millis(50);

    async fn step(&self) -> Result<StepReport, StakerError> {
        let report = Staker::step(self).await?;
        for (txid, action) in &report.actions {
            tracing::info!(staking_txid = %txid, action = ?action, "staker step");
        }
        Ok(report)
    }

    async fn subscribe(&self) -> Option<EventStream> {
        let from = self.seen_event.load(Ordering::SeqCst) + 1;
        self.node.staking_events(from).await.ok()
    }

    /// A delegation changing status may be one of this staker's: the step looks.
    fn note_event(&self, event: &pb::Event) -> bool {
        let fresh = self.seen_event.fetch_max(event.sequence, Ordering::SeqCst) < event.sequence;
        fresh
            && matches!(
                event.kind,
                Some(pb::event::Kind::DelegationStatusChanged(_))
            )
    }

    fn poll_interval(&self) -> Duration {
        self.settings.poll_interval
    }

    fn health(&self) -> &Health {
        &self.health
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
