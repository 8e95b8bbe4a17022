//! The covenant member component: `new`, `step` (one pass over the delegations waiting for this
//! member) and `run` (the daemon loop).
//!
//! Every delegation is decided on its own, with the member's **own** params and the one
//! validation library (`validate_delegation`); one bad delegation never blocks the others.
//! Signatures are recorded in the local store before they are sent, so a restart re-sends the
//! same signatures and never signs a delegation twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fiamma_covenant::delegation::DelegationSighashes;
use fiamma_proto::client::{
    Code, CovenantSigsAck, EventStream, NodeError, PendingDelegation, StakingNode,
};
use fiamma_proto::codec::params_to_pb;
use fiamma_proto::staking::v1 as pb;
use fiamma_role::component::Component;
use fiamma_role::daemon::{Health, Metrics, Shutdown};
use fiamma_role::store::unix_now;
use fiamma_staking::context::SigningContexts;
use fiamma_staking::delegation::validate_delegation;
use fiamma_staking::params::ParamsVersions;
use futures::StreamExt;

use crate::signer::{SignRequest, Signer};
use crate::store::{MemberStore, Progress, RefusalKind, SignedMessages, SignedRecord, StoreError};
use fiamma_proto::codec::params::differing_fields;

/// Signatures sent to the node at once.
const SENDS_IN_FLIGHT: usize = 16;
/// First wait before re-sending to a node that refused or failed.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// How a member runs, apart from its keys, node and store.
#[derive(Debug, Clone)]
pub struct MemberSettings {
    /// The member's own params versions (from its own file, never the node's).
    pub params: ParamsVersions,
    /// The signing contexts the staker's proof of possession is checked in.
    pub contexts: SigningContexts,
    /// Delegations asked for per PendingDelegations page.
    pub page_size: u32,
    /// Longest wait between two passes when no event arrives.
    pub poll_interval: Duration,
    /// Longest wait before retrying a delegation whose signatures the node did not take.
    pub max_retry: Duration,
}

/// What became of one delegation in a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Checked, signed, recorded and delivered now.
    Signed(CovenantSigsAck),
    /// Signed in an earlier step (or before a restart); the recorded signatures were delivered now.
    Resent(CovenantSigsAck),
    /// Signed and recorded, but the node did not take them yet; they are re-sent later.
    Undelivered(String),
    /// Not signed, for this reason (recorded).
    Refused {
        /// Why, in a word.
        kind: RefusalKind,
        /// Why, in full.
        reason: String,
    },
    /// Refused for good in an earlier step; not looked at again.
    AlreadyRefused,
    /// Waiting out a retry delay.
    Backoff,
}

/// A recorded delegation to send: its index in the page, what was signed, and the outcome a
/// delivery makes of the node's answer.
type Delivery = (usize, SignedRecord, fn(CovenantSigsAck) -> Outcome);

/// One delegation's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The delegation.
    pub staking_txid: String,
    /// What happened.
    pub outcome: Outcome,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepReport {
    /// Why nothing was signed, when the node's params differ from the member's own.
    pub params_problem: Option<String>,
    /// The delegations the node listed as waiting for this member.
    pub decisions: Vec<Decision>,
}

impl StepReport {
    /// How many delegations reached `outcome`'s kind.
    pub fn count(&self, matches: impl Fn(&Outcome) -> bool) -> usize {
        self.decisions
            .iter()
            .filter(|d| matches(&d.outcome))
            .count()
    }
}

/// Why a step could not run at all (a single delegation's trouble is an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// The node could not be asked.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store holds signatures by another key for a delegation.
    #[error("the local store holds signatures of {staking_txid} by another covenant key; this store belongs to another member")]
    ForeignStore {
        /// The delegation.
        staking_txid: String,
    },
}

/// A covenant committee member.
pub struct CovenantMember {
    settings: MemberSettings,
    signer: Arc<dyn Signer>,
    node: Arc<dyn StakingNode>,
    store: MemberStore,
    metrics: Metrics,
    health: Health,
    retry: Mutex<HashMap<String, (Instant, Duration)>>,
    events: Mutex<EventCursor>,
}

#[derive(Debug, Clone, Copy, Default)]
struct EventCursor {
    /// Newest event seen on the stream.
    seen: u64,
    /// `seen` when the last completed step began: everything up to it has been acted on.
    acted: u64,
}

impl CovenantMember {
    /// A member signing with `signer`, asking `node`, remembering in `store`.
    pub fn new(
        settings: MemberSettings,
        signer: Arc<dyn Signer>,
        node: Arc<dyn StakingNode>,
        store: MemberStore,
    ) -> Self {
        CovenantMember {
            settings,
            signer,
            node,
            store,
            metrics: Metrics::default(),
            health: Health::default(),
            retry: Mutex::default(),
            events: Mutex::default(),
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
    pub fn store(&self) -> &MemberStore {
        &self.store
    }

    /// One pass: checks the node's params against the member's own, then decides every
    /// delegation the node lists as waiting for this member.
    ///
    /// # Errors
    /// [`MemberError`] when the node cannot be asked for the list or the store fails; each
    /// delegation's own trouble is in the report instead.
    pub async fn step(&self) -> Result<StepReport, MemberError> {
        let started_at = self.cursor().seen;
        let mut report = StepReport {
            params_problem: self.params_problem().await?,
            decisions: Vec::new(),
        };
        if let Some(problem) = &report.params_problem {
            tracing::error!(problem = %problem, "refusing to sign: the node's params differ from this member's own");
            self.metrics
                .set("fiamma_covenant_params_mismatch", &[], 1.0);
            self.health.failing(format!("params mismatch: {problem}"));
        } else {
            self.metrics
                .set("fiamma_covenant_params_mismatch", &[], 0.0);
            let mut token = None;
            loop {
                let page = self
                    .node
                    .pending_delegations(self.signer.public_key(), token, self.settings.page_size)
                    .await?;
                report
                    .decisions
                    .extend(self.decide_page(&page.delegations).await?);
                match page.next_page_token {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
            self.health.ok();
        }
        let lag = {
            let mut cursor = self.events.lock().unwrap_or_else(PoisonError::into_inner);
            cursor.acted = cursor.acted.max(started_at);
            cursor.seen.saturating_sub(cursor.acted)
        };
        self.metrics
            .set("fiamma_covenant_event_lag", &[], lag as f64);
        self.metrics.set(
            "fiamma_covenant_pending",
            &[],
            report.decisions.len() as f64,
        );
        self.store
            .record_progress(&Progress {
                last_step_at: unix_now(),
                pending_seen: report.decisions.len() as u64,
                last_event_sequence: started_at,
                params_problem: report.params_problem.clone(),
            })
            .await?;
        Ok(report)
    }

    fn cursor(&self) -> EventCursor {
        *self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `None` when every params version the member has is the node's too, byte for byte on
    /// the wire; else what differs.
    async fn params_problem(&self) -> Result<Option<String>, MemberError> {
        for (version, own) in self.settings.params.versions().iter().enumerate() {
            let version = u32::try_from(version).unwrap_or(u32::MAX);
            let ours = params_to_pb(version, own);
            let theirs = match self.node.params(version).await {
                Ok(p) => p,
                Err(NodeError::Status {
                    code: Code::NotFound,
                    ..
                }) => return Ok(Some(format!("the node has no params version {version}"))),
                Err(e) => return Err(e.into()),
            };
            let fields = differing_fields(&ours, &theirs);
            if !fields.is_empty() {
                return Ok(Some(format!(
                    "params version {version} differs in {}",
                    fields.join(", ")
                )));
            }
        }
        Ok(None)
    }

    /// Decides one page: each delegation on its own, the new signatures and refusals recorded
    /// in one durable write, then every recorded signature not yet with the node sent, a few
    /// at a time.
    async fn decide_page(&self, page: &[PendingDelegation]) -> Result<Vec<Decision>, MemberError> {
        let mut decided: Vec<Option<Outcome>> = Vec::with_capacity(page.len());
        let mut to_send: Vec<Delivery> = Vec::new();
        let mut new_records = Vec::new();
        let mut refusals = Vec::new();
        for (i, d) in page.iter().enumerate() {
            if let Some(record) = self.store.signed(&d.staking_txid).await? {
                if record.signatures.covenant != self.signer.public_key() {
                    return Err(MemberError::ForeignStore {
                        staking_txid: d.staking_txid.clone(),
                    });
                }
                to_send.push((i, record, Outcome::Resent));
                decided.push(None);
                continue;
            }
            if let Some(refusal) = self.store.refusal(&d.staking_txid).await? {
                let is_final = refusal.kind == RefusalKind::Rule.as_str()
                    || refusal.kind == RefusalKind::Decode.as_str();
                if is_final {
                    decided.push(Some(Outcome::AlreadyRefused));
                    continue;
                }
            }
            match self.check_and_sign(d).await {
                Ok(record) => {
                    new_records.push(record.clone());
                    to_send.push((i, record, Outcome::Signed));
                    decided.push(None);
                }
                Err((kind, reason)) => {
                    tracing::warn!(staking_txid = %d.staking_txid, kind = kind.as_str(), reason = %reason, "delegation refused");
                    refusals.push((d.staking_txid.clone(), kind, reason.clone()));
                    decided.push(Some(Outcome::Refused { kind, reason }));
                }
            }
        }
        // Durable before any of the new signatures leaves the process.
        self.store.record_decisions(&new_records, &refusals).await?;
        let sent: Vec<(usize, Result<Outcome, StoreError>)> = futures::stream::iter(
            to_send
                .into_iter()
                .map(|(i, record, done)| async move { (i, self.deliver(&record, done).await) }),
        )
        .buffer_unordered(SENDS_IN_FLIGHT)
        .collect()
        .await;
        let mut delivered = Vec::new();
        let mut node_refusals = Vec::new();
        for (i, outcome) in sent {
            let outcome = outcome?;
            let txid = &page[i].staking_txid;
            match &outcome {
                Outcome::Signed(_) | Outcome::Resent(_) => delivered.push(txid.clone()),
                Outcome::Refused { kind, reason } => {
                    node_refusals.push((txid.clone(), *kind, reason.clone()))
                }
                _ => {}
            }
            decided[i] = Some(outcome);
        }
        self.store
            .record_delivered(&delivered, &node_refusals)
            .await?;
        Ok(page
            .iter()
            .zip(decided)
            .map(|(d, outcome)| {
                let outcome = outcome.unwrap_or(Outcome::Backoff);
                self.account(&d.staking_txid, &outcome);
                Decision {
                    staking_txid: d.staking_txid.clone(),
                    outcome,
                }
            })
            .collect())
    }

    /// The member's own checks, then the signatures; a refusal says why.
    async fn check_and_sign(
        &self,
        d: &PendingDelegation,
    ) -> Result<SignedRecord, (RefusalKind, String)> {
        let reg = d
            .registration
            .as_ref()
            .map_err(|e| (RefusalKind::Decode, e.to_string()))?;
        let txid = reg.staking_tx.compute_txid().to_string();
        if txid != d.staking_txid {
            return Err((
                RefusalKind::Decode,
                format!(
                    "served under txid {} but its staking transaction is {txid}",
                    d.staking_txid
                ),
            ));
        }
        let params = self.settings.params.get(d.params_version).ok_or_else(|| {
            (
                RefusalKind::Params,
                format!(
                    "params version {} is not in this member's params file",
                    d.params_version
                ),
            )
        })?;
        let checked = validate_delegation(params, &self.settings.contexts, reg)
            .map_err(|e| (RefusalKind::Rule, e.to_string()))?;
        let sighashes = DelegationSighashes::of_registration(reg, &checked.keys)
            .map_err(|e| (RefusalKind::Rule, e.to_string()))?;
        let signatures = self
            .signer
            .sign(SignRequest {
                staking_txid: &d.staking_txid,
                params_version: d.params_version,
                registration: reg,
                sighashes: &sighashes,
                verifiers: checked.keys.verifiers(),
            })
            .await
            .map_err(|e| (RefusalKind::Signer, e.to_string()))?;
        Ok(SignedRecord {
            staking_txid: d.staking_txid.clone(),
            params_version: d.params_version,
            messages: SignedMessages {
                slashing: sighashes.slashing,
                unbonding: sighashes.unbonding,
                unbonding_slashing: sighashes.unbonding_slashing,
            },
            signatures,
            delivered: false,
        })
    }

    /// Sends recorded signatures, unless a retry delay runs. What the node answered is
    /// recorded by the caller, for the whole page at once.
    async fn deliver(
        &self,
        record: &SignedRecord,
        done: fn(CovenantSigsAck) -> Outcome,
    ) -> Result<Outcome, StoreError> {
        let txid = &record.staking_txid;
        if self.waiting(txid) {
            return Ok(Outcome::Backoff);
        }
        match self.node.add_covenant_sigs(txid, &record.signatures).await {
            Ok(ack) => {
                self.clear_retry(txid);
                Ok(done(ack))
            }
            Err(NodeError::Status {
                code: Code::AlreadyExists,
                ..
            }) => {
                // The node holds this member's signatures already (sent before a crash).
                self.clear_retry(txid);
                Ok(done(CovenantSigsAck {
                    status: pb::DelegationStatus::Unspecified,
                    signatures: 0,
                }))
            }
            Err(e) => {
                self.schedule_retry(txid);
                if e.is_transient() {
                    Ok(Outcome::Undelivered(e.to_string()))
                } else {
                    Ok(Outcome::Refused {
                        kind: RefusalKind::Node,
                        reason: e.to_string(),
                    })
                }
            }
        }
    }

    fn waiting(&self, txid: &str) -> bool {
        let retry = self.retry.lock().unwrap_or_else(PoisonError::into_inner);
        retry.get(txid).is_some_and(|(at, _)| Instant::now() < *at)
    }

    fn schedule_retry(&self, txid: &str) {
        let mut retry = self.retry.lock().unwrap_or_else(PoisonError::into_inner);
        let delay = retry
            .get(txid)
            .map(|(_, d)| (*d * 2).min(self.settings.max_retry))
            .unwrap_or(FIRST_RETRY);
        retry.insert(txid.to_owned(), (Instant::now() + delay, delay));
    }

    fn clear_retry(&self, txid: &str) {
        self.retry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(txid);
    }

    fn account(&self, txid: &str, outcome: &Outcome) {
        let label = match outcome {
            Outcome::Signed(_) => "signed",
            Outcome::Resent(_) => "resent",
            Outcome::Undelivered(_) => "undelivered",
            Outcome::Refused { kind, .. } => kind.as_str(),
            Outcome::AlreadyRefused | Outcome::Backoff => return,
        };
        match outcome {
            Outcome::Refused { .. } => self
                .metrics
                .inc("fiamma_covenant_refused_total", &[("kind", label)]),
            _ => self
                .metrics
                .inc("fiamma_covenant_delegations_total", &[("outcome", label)]),
        }
        tracing::info!(staking_txid = %txid, outcome = label, "delegation decided");
    }

    /// The daemon loop ([`fiamma_role::component::run`]): a step, then a wait for a new
    /// registration on the node's event stream (or the poll interval), until `shutdown`.
    pub async fn run(&self, shutdown: Shutdown) {
        fiamma_role::component::run(self, shutdown).await;
    }
}

#[async_trait::async_trait]
impl Component for CovenantMember {
    type Event = pb::Event;
    type StreamError = NodeError;
    type Events = EventStream;
    type Report = StepReport;
    type Error = MemberError;
    const STEP_ERRORS: &'static str = "fiamma_covenant_step_errors_total";
    const DEBOUNCE: Duration = Duration::from_millis(50);

    async fn step(&self) -> Result<StepReport, MemberError> {
        CovenantMember::step(self).await
    }

    async fn subscribe(&self) -> Option<EventStream> {
        self.node.events(self.cursor().seen + 1).await.ok()
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

    /// Records the event's sequence; true when it may bring work (a new PENDING delegation).
    fn note_event(&self, event: &pb::Event) -> bool {
        let mut cursor = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        cursor.seen = cursor.seen.max(event.sequence);
        matches!(
            &event.kind,
            Some(pb::event::Kind::DelegationStatusChanged(c)) if c.to == pb::DelegationStatus::Pending as i32
        )
    }
}
