//! The slasher component: `new`, `step` (one pass over every delegation of every slashed
//! verifier) and `run` (the daemon loop, woken by the node's finality and staking events).
//!
//! It also finds selective slashing: when the node sees a staking output spent by that
//! delegation's slashing transaction while its verifier is not slashed, the verifier broadcast
//! it, and the covenant signatures in its witness reveal the verifier's key; the slasher sends
//! that key to the node as evidence, and the node slashes the verifier.
//!
//! For each delegation it reads who spends the staking output (and, once the staker unbonded,
//! the unbonding output), lets [`plan::decide`] pick the output to slash, signs that output's
//! slashing transaction with the published key once, records it, and only then broadcasts it;
//! later passes re-broadcast the recorded bytes until the transaction is k deep. Every slasher
//! signs the same txid (a witness does not change it), so another slasher's transaction
//! confirming is this one's success.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bitcoin::secp256k1::{SecretKey, XOnlyPublicKey};
use bitcoin::Txid;
use fiamma_btc::{Backend, BackendError, OutPointStatus};
use fiamma_covenant::delegation::SlashingTx;
use fiamma_proto::client::{NodeError, ServedDelegation, SlashedVerifier, SlasherNode};
use fiamma_proto::codec;
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::staking::v1 as pb;
use fiamma_role::component::Component;
use fiamma_role::daemon::{Health, Metrics, Shutdown};
use fiamma_role::store::unix_now;
use tokio_stream::StreamExt;

use crate::plan::{
    self, checked_key, classify, decide, BroadcastVerdict, Decision, Payout, SlashableDelegation,
};
use crate::store::{output_word, DelegationRow, Progress, SlasherStore, StoreError, VerifierRow};

/// How a slasher runs, apart from its node, Bitcoin backend and store.
#[derive(Debug, Clone)]
pub struct SlasherSettings {
    /// Confirmations after which a slashing transaction is final (k).
    pub confirmations: u32,
    /// Longest wait between two passes when no event arrives (new blocks bring none).
    pub poll_interval: Duration,
    /// Delegations asked for per page.
    pub page_size: u32,
}

/// What became of one delegation in a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to slash yet: its staking transaction is not on the chain.
    Waiting,
    /// The slashing transaction of `which` output was broadcast (or broadcast again).
    Broadcast {
        /// The output slashed.
        which: SlashingTx,
        /// The slashing transaction.
        txid: Txid,
        /// What the Bitcoin node said.
        verdict: BroadcastVerdict,
        /// What it pays.
        payout: Payout,
    },
    /// A slashing transaction of `which` output is mined, fewer than k blocks deep.
    Confirming {
        /// The output slashed.
        which: SlashingTx,
        /// The slashing transaction.
        txid: Txid,
        /// Its confirmations.
        confirmations: u32,
    },
    /// A slashing transaction of `which` output is k deep: done.
    Slashed {
        /// The output slashed.
        which: SlashingTx,
        /// The slashing transaction.
        txid: Txid,
        /// Its confirmations.
        confirmations: u32,
    },
    /// Another transaction spends the output: out of reach (done once k deep).
    Escaped {
        /// The output it left.
        which: SlashingTx,
        /// The spending transaction.
        spender: Txid,
        /// Its confirmations (0 in the mempool).
        confirmations: u32,
    },
    /// The delegation cannot be slashed as served (malformed, or its signatures do not
    /// decrypt into a valid witness); looked at again next pass.
    Refused(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Waiting => "waiting",
            Outcome::Broadcast { .. } => "broadcast",
            Outcome::Confirming { .. } => "confirming",
            Outcome::Slashed { .. } => "slashed",
            Outcome::Escaped { .. } => "escaped",
            Outcome::Refused(_) => "refused",
        }
    }
}

/// One delegation's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationReport {
    /// The staking txid, as the node files it.
    pub staking_txid: String,
    /// The slashed verifier.
    pub verifier: XOnlyPublicKey,
    /// What happened.
    pub outcome: Outcome,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepReport {
    /// The Bitcoin tip height.
    pub tip: u32,
    /// Verifiers the node published as slashed.
    pub slashed_verifiers: usize,
    /// Verifiers whose published key was refused (not their key, or undecodable).
    pub refused_keys: Vec<String>,
    /// The delegations looked at (those already done are skipped).
    pub delegations: Vec<DelegationReport>,
    /// Selective slashing evidence found and sent to the node in this step.
    pub evidence: Vec<EvidenceReport>,
}

/// Selective slashing found on Bitcoin: a verifier broadcast the slashing transaction of one
/// of its delegations itself, which reveals its key; the slasher sends the key to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceReport {
    /// The delegation whose slashing transaction the verifier broadcast.
    pub staking_txid: String,
    /// The verifier.
    pub verifier: XOnlyPublicKey,
    /// The node's answer (a refusal when another slasher's evidence came first).
    pub result: Result<(), String>,
}

/// Why a step could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum SlasherError {
    /// The node could not be asked.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The Bitcoin node could not be asked.
    #[error("bitcoin: {0}")]
    Bitcoin(#[from] BackendError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A slasher.
pub struct Slasher {
    settings: SlasherSettings,
    node: Arc<dyn SlasherNode>,
    bitcoin: Arc<dyn Backend>,
    store: SlasherStore,
    metrics: Metrics,
    health: Health,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Newest finality event seen.
    seen_finality: u64,
    /// Newest staking event seen.
    seen_staking: u64,
    /// Delegations the node saw unbonded since the last step: their staking output may have
    /// been spent by a slashing transaction its verifier broadcast.
    spent: BTreeSet<String>,
}

/// An event of the node's finality or staking module.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeEvent {
    /// From the finality module.
    Finality(fpb::Event),
    /// From the staking module.
    Staking(pb::Event),
}

/// The node's finality and staking events, merged.
pub type NodeEvents =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<NodeEvent, NodeError>> + Send>>;

/// The committee of one params version.
type Committee = (Vec<XOnlyPublicKey>, u32);

impl Slasher {
    /// A slasher asking `node`, watching Bitcoin through `bitcoin`, keeping its progress in
    /// `store`.
    pub fn new(
        settings: SlasherSettings,
        node: Arc<dyn SlasherNode>,
        bitcoin: Arc<dyn Backend>,
        store: SlasherStore,
    ) -> Self {
        Slasher {
            settings,
            node,
            bitcoin,
            store,
            metrics: Metrics::default(),
            health: Health::default(),
            state: Mutex::new(State::default()),
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
    pub fn store(&self) -> &SlasherStore {
        &self.store
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One pass: every delegation of every slashed verifier that is not done yet is decided
    /// and acted on.
    ///
    /// # Errors
    /// [`SlasherError`] when the node, Bitcoin or the store cannot be asked; a delegation's own
    /// trouble is in the report instead.
    pub async fn step(&self) -> Result<StepReport, SlasherError> {
        let tip = self.bitcoin.tip().await?.height;
        let slashed = self.node.slashed_verifiers().await?;
        let done = self.store.done().await?;
        let mut report = StepReport {
            tip,
            slashed_verifiers: slashed.len(),
            ..StepReport::default()
        };
        let mut committees: BTreeMap<u32, Committee> = BTreeMap::new();
        let spent: Vec<String> = std::mem::take(&mut self.state().spent)
            .into_iter()
            .collect();
        for (i, txid) in spent.iter().enumerate() {
            match self.selective(txid, &slashed, &mut committees).await {
                Ok(Some(e)) => report.evidence.push(e),
                Ok(None) => {}
                Err(e) => {
                    // Looked at again next step.
                    self.state().spent.extend(spent[i..].iter().cloned());
                    return Err(e);
                }
            }
        }
        for v in &slashed {
            let key = match self.published_key(v) {
                Ok(key) => key,
                Err(why) => {
                    tracing::error!(verifier = %v.verifier, reason = %why, "published key refused");
                    self.metrics.inc("fiamma_slasher_refused_keys_total", &[]);
                    report.refused_keys.push(why);
                    continue;
                }
            };
            self.store
                .note_verifier(&VerifierRow {
                    verifier: v.verifier,
                    reason: v.reason.clone(),
                    slashed_in_round: v.slashed_in_round,
                })
                .await?;
            let mut token = None;
            loop {
                let page = self
                    .node
                    .verifier_delegations(v.verifier, token.take(), self.settings.page_size)
                    .await?;
                for served in &page.delegations {
                    if done.contains(&served.staking_txid) {
                        continue;
                    }
                    let outcome = self
                        .delegation(&v.verifier, &key, served, tip, &mut committees)
                        .await?;
                    self.account(&served.staking_txid, &outcome);
                    report.delegations.push(DelegationReport {
                        staking_txid: served.staking_txid.clone(),
                        verifier: v.verifier,
                        outcome,
                    });
                }
                match page.next_page_token {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        }
        let open = report
            .delegations
            .iter()
            .filter(|d| !matches!(d.outcome, Outcome::Slashed { .. }))
            .filter(|d| {
                !matches!(d.outcome, Outcome::Escaped { confirmations, .. }
                    if confirmations >= self.settings.confirmations)
            })
            .count() as u64;
        self.metrics
            .set("fiamma_slasher_bitcoin_tip", &[], f64::from(tip));
        self.metrics.set(
            "fiamma_slasher_slashed_verifiers",
            &[],
            report.slashed_verifiers as f64,
        );
        self.metrics
            .set("fiamma_slasher_open_delegations", &[], open as f64);
        self.store
            .record_progress(&Progress {
                last_step_at: unix_now(),
                tip_height: tip,
                slashed_verifiers: report.slashed_verifiers as u64,
                open_delegations: open,
            })
            .await?;
        if report.refused_keys.is_empty() {
            self.health.ok();
        } else {
            self.health.failing(report.refused_keys.join("; "));
        }
        Ok(report)
    }

    /// Looks at delegation `txid`, whose staking output the node saw spent: when its own
    /// verifier (not slashed yet) spent it with the slashing transaction, the key that reveals
    /// goes to the node as selective slashing evidence.
    async fn selective(
        &self,
        txid: &str,
        slashed: &[SlashedVerifier],
        committees: &mut BTreeMap<u32, Committee>,
    ) -> Result<Option<EvidenceReport>, SlasherError> {
        let Some(served) = self.node.delegation(txid).await? else {
            return Ok(None);
        };
        let (Some(spender), Ok(reg)) = (&served.spending_txid, &served.registration) else {
            return Ok(None);
        };
        let Some(verifier) = reg.verifier_pks.first().copied() else {
            return Ok(None);
        };
        if slashed.iter().any(|v| v.verifier == verifier)
            || *spender != reg.slashing_tx.compute_txid().to_string()
        {
            // Slashed already, or an unbonding or a withdrawal: nothing revealed.
            return Ok(None);
        }
        let d = match self.checked(&verifier, &served, committees).await? {
            Ok(d) => d,
            Err(why) => {
                tracing::warn!(delegation = txid, reason = %why, "cannot check a spent delegation");
                return Ok(None);
            }
        };
        let slashing_txid = d.slashing_txid(SlashingTx::Staking);
        let Some(tx) = self.bitcoin.transaction(&slashing_txid).await? else {
            // Not visible to this Bitcoin node yet: look again next step.
            self.state().spent.insert(txid.to_owned());
            return Ok(None);
        };
        let Some(key) = d.revealed_key(&verifier, SlashingTx::Staking, &tx) else {
            tracing::warn!(delegation = txid, %slashing_txid, "slashing transaction reveals no key");
            return Ok(None);
        };
        tracing::warn!(delegation = txid, %verifier, %slashing_txid, "selective slashing: the verifier broadcast a slashing transaction itself");
        let result = match self.node.selective_slashing_evidence(txid, &key).await {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.is_transient() {
                    self.state().spent.insert(txid.to_owned());
                }
                Err(e.to_string())
            }
        };
        self.metrics.inc(
            "fiamma_slasher_selective_slashing_evidence_total",
            &[(
                "result",
                if result.is_ok() {
                    "accepted"
                } else {
                    "refused"
                },
            )],
        );
        Ok(Some(EvidenceReport {
            staking_txid: txid.to_owned(),
            verifier,
            result,
        }))
    }

    /// The key the node published for `v`, checked to be its key.
    fn published_key(&self, v: &SlashedVerifier) -> Result<SecretKey, String> {
        let key = v
            .extracted_key
            .clone()
            .map_err(|e| format!("verifier {}: {e}", v.verifier))?;
        checked_key(&v.verifier, key).map_err(|e| e.to_string())
    }

    /// The committee of params `version`, asked of the node once per step.
    async fn committee(
        &self,
        version: u32,
        committees: &mut BTreeMap<u32, Committee>,
    ) -> Result<Result<Committee, String>, SlasherError> {
        if let Some(c) = committees.get(&version) {
            return Ok(Ok(c.clone()));
        }
        let params = self.node.params(version).await?;
        let keys = params
            .covenant_pks
            .iter()
            .map(|k| codec::key("covenant_pks", k))
            .collect::<Result<Vec<_>, _>>();
        Ok(match keys {
            Ok(keys) => {
                let committee = (keys, params.covenant_quorum);
                committees.insert(version, committee.clone());
                Ok(committee)
            }
            Err(e) => Err(format!("params version {version}: {e}")),
        })
    }

    /// Decides and acts on one delegation, and records where it stands.
    async fn delegation(
        &self,
        verifier: &XOnlyPublicKey,
        key: &SecretKey,
        served: &ServedDelegation,
        tip: u32,
        committees: &mut BTreeMap<u32, Committee>,
    ) -> Result<Outcome, SlasherError> {
        let txid = &served.staking_txid;
        let checked = match self.checked(verifier, served, committees).await? {
            Ok(d) => d,
            Err(why) => {
                let outcome = Outcome::Refused(why);
                self.record(verifier, txid, &outcome).await?;
                return Ok(outcome);
            }
        };
        let staking = self
            .bitcoin
            .outpoint_status(&checked.staking_outpoint())
            .await?;
        let unbonding = match &staking {
            OutPointStatus::Spent { txid, .. } | OutPointStatus::SpentInMempool { txid, .. }
                if *txid == checked.unbonding_txid() =>
            {
                Some(
                    self.bitcoin
                        .outpoint_status(&checked.unbonding_outpoint())
                        .await?,
                )
            }
            _ => None,
        };
        let k = self.settings.confirmations;
        let outcome = match decide(&checked, &staking, unbonding.as_ref()) {
            Decision::NotOnChain => Outcome::Waiting,
            Decision::Slash(which) => self.slash(key, &checked, which).await?,
            Decision::Slashed {
                which,
                txid: spender,
                height: None,
            } => {
                // In the mempool: keep it there with the recorded bytes, when this slasher has
                // them (another slasher's transaction is that slasher's to keep alive).
                if self.store.slashing_tx(txid, which).await?.is_some() {
                    self.slash(key, &checked, which).await?
                } else {
                    Outcome::Confirming {
                        which,
                        txid: spender,
                        confirmations: 0,
                    }
                }
            }
            Decision::Slashed {
                which,
                txid: spender,
                height: Some(height),
            } => {
                let confirmations = plan::depth(tip, height);
                if confirmations >= k {
                    Outcome::Slashed {
                        which,
                        txid: spender,
                        confirmations,
                    }
                } else {
                    Outcome::Confirming {
                        which,
                        txid: spender,
                        confirmations,
                    }
                }
            }
            Decision::Escaped {
                which,
                spender,
                height,
            } => Outcome::Escaped {
                which,
                spender,
                confirmations: height.map_or(0, |h| plan::depth(tip, h)),
            },
        };
        self.record(verifier, txid, &outcome).await?;
        Ok(outcome)
    }

    /// The served delegation checked against its params, or why it cannot be slashed.
    async fn checked(
        &self,
        verifier: &XOnlyPublicKey,
        served: &ServedDelegation,
        committees: &mut BTreeMap<u32, Committee>,
    ) -> Result<Result<SlashableDelegation, String>, SlasherError> {
        let txid = &served.staking_txid;
        let registration = match &served.registration {
            Ok(r) => r.clone(),
            Err(e) => return Ok(Err(format!("delegation {txid}: {e}"))),
        };
        let sigs = match &served.covenant_sigs {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(format!("delegation {txid}: {e}"))),
        };
        let (covenant_pks, quorum) = match self.committee(served.params_version, committees).await?
        {
            Ok(c) => c,
            Err(why) => return Ok(Err(why)),
        };
        Ok(
            SlashableDelegation::new(verifier, registration, &covenant_pks, quorum, sigs)
                .map_err(|e| e.to_string()),
        )
    }

    /// Broadcasts the slashing transaction of `which` output: the recorded one, or a new one
    /// signed and recorded first.
    async fn slash(
        &self,
        key: &SecretKey,
        d: &SlashableDelegation,
        which: SlashingTx,
    ) -> Result<Outcome, SlasherError> {
        let txid = d.staking_txid.to_string();
        let tx = match self.store.slashing_tx(&txid, which).await? {
            Some(tx) => tx,
            None => {
                let signed = match d.signed_slashing_tx(key, which, &mut rand::thread_rng()) {
                    Ok(tx) => tx,
                    Err(e) => {
                        return Ok(Outcome::Refused(format!("delegation {txid}: {which}: {e}")))
                    }
                };
                // Durable before it leaves the process.
                self.store.record_slashing_tx(&txid, which, &signed).await?
            }
        };
        let result = self.bitcoin.broadcast(&tx).await;
        let verdict = classify(&result);
        let said = match &verdict {
            BroadcastVerdict::Accepted => String::new(),
            BroadcastVerdict::AlreadyThere => "already in the mempool or mined".to_owned(),
            BroadcastVerdict::Conflict(why)
            | BroadcastVerdict::Unreachable(why)
            | BroadcastVerdict::Refused(why) => why.clone(),
        };
        self.store.note_broadcast(&txid, which, &said).await?;
        Ok(Outcome::Broadcast {
            which,
            txid: tx.compute_txid(),
            verdict,
            payout: d.payout(which),
        })
    }

    async fn record(
        &self,
        verifier: &XOnlyPublicKey,
        staking_txid: &str,
        outcome: &Outcome,
    ) -> Result<(), SlasherError> {
        let k = self.settings.confirmations;
        let (output, spender, confirmations, done, detail) = match outcome {
            Outcome::Waiting => (
                "",
                String::new(),
                0,
                false,
                "the staking transaction is not on the chain".to_owned(),
            ),
            Outcome::Broadcast {
                which,
                txid,
                verdict,
                ..
            } => (
                output_word(*which),
                txid.to_string(),
                0,
                false,
                format!("{verdict:?}"),
            ),
            Outcome::Confirming {
                which,
                txid,
                confirmations,
            }
            | Outcome::Slashed {
                which,
                txid,
                confirmations,
            } => (
                output_word(*which),
                txid.to_string(),
                *confirmations,
                *confirmations >= k,
                format!("{which} {confirmations} of {k} confirmations"),
            ),
            Outcome::Escaped {
                which,
                spender,
                confirmations,
            } => (
                output_word(*which),
                spender.to_string(),
                *confirmations,
                *confirmations >= k,
                "spent by another transaction than its slashing transaction".to_owned(),
            ),
            Outcome::Refused(why) => ("", String::new(), 0, false, why.clone()),
        };
        self.store
            .set_delegation(&DelegationRow {
                staking_txid: staking_txid.to_owned(),
                verifier: *verifier,
                state: outcome.label().to_owned(),
                output: output.to_owned(),
                spender_txid: spender,
                confirmations,
                done,
                detail,
            })
            .await?;
        Ok(())
    }

    fn account(&self, staking_txid: &str, outcome: &Outcome) {
        let label = outcome.label();
        self.metrics
            .inc("fiamma_slasher_decisions_total", &[("outcome", label)]);
        match outcome {
            Outcome::Broadcast {
                which,
                txid,
                verdict,
                ..
            } => {
                let result = match verdict {
                    BroadcastVerdict::Accepted => "accepted",
                    BroadcastVerdict::AlreadyThere => "already_there",
                    BroadcastVerdict::Conflict(_) => "conflict",
                    BroadcastVerdict::Unreachable(_) => "unreachable",
                    BroadcastVerdict::Refused(_) => "refused",
                };
                self.metrics
                    .inc("fiamma_slasher_broadcasts_total", &[("result", result)]);
                tracing::info!(delegation = staking_txid, output = %which, %txid, ?verdict, "slashing transaction broadcast");
            }
            Outcome::Slashed {
                txid,
                confirmations,
                ..
            } => {
                tracing::info!(delegation = staking_txid, %txid, confirmations, "slashed")
            }
            Outcome::Refused(why) => {
                tracing::warn!(delegation = staking_txid, reason = %why, "cannot slash")
            }
            _ => tracing::debug!(delegation = staking_txid, outcome = label, "decided"),
        }
    }

    /// The daemon loop ([`fiamma_role::component::run`]): a step, then a wait for an event
    /// that may bring work (a verifier slashed, a staking output spent) or for the poll
    /// interval (new blocks bring no event), until `shutdown`.
    pub async fn run(&self, shutdown: Shutdown) {
        fiamma_role::component::run(self, shutdown).await;
    }
}

#[async_trait::async_trait]
impl Component for Slasher {
    type Event = NodeEvent;
    type StreamError = NodeError;
    type Events = NodeEvents;
    type Report = StepReport;
    type Error = SlasherError;
    const STEP_ERRORS: &'static str = "fiamma_slasher_step_errors_total";
    const DEBOUNCE: Duration = Duration::from_millis(20);

    async fn step(&self) -> Result<StepReport, SlasherError> {
        Slasher::step(self).await
    }

    /// The node's finality and staking events after the last ones seen, as one stream.
    async fn subscribe(&self) -> Option<NodeEvents> {
        let (finality_from, staking_from) = {
            let state = self.state();
            (state.seen_finality + 1, state.seen_staking + 1)
        };
        let finality = self.node.finality_events(finality_from).await.ok()?;
        let staking = self.node.events(staking_from).await.ok()?;
        Some(Box::pin(
            finality
                .map(|e| e.map(NodeEvent::Finality))
                .merge(staking.map(|e| e.map(NodeEvent::Staking))),
        ))
    }

    /// Records an event's sequence; true when it may bring work: a verifier slashed, or a
    /// delegation's staking output spent (the staker's unbonding may have won a race, or the
    /// verifier broadcast a slashing transaction itself, which the next step looks at).
    fn note_event(&self, event: &NodeEvent) -> bool {
        let mut state = self.state();
        match event {
            NodeEvent::Finality(e) => {
                let fresh = e.sequence > state.seen_finality;
                state.seen_finality = state.seen_finality.max(e.sequence);
                fresh && matches!(&e.kind, Some(fpb::event::Kind::VerifierSlashed(_)))
            }
            NodeEvent::Staking(e) => {
                let fresh = e.sequence > state.seen_staking;
                state.seen_staking = state.seen_staking.max(e.sequence);
                fresh
                    && match &e.kind {
                        Some(pb::event::Kind::VerifierSlashed(_)) => true,
                        Some(pb::event::Kind::DelegationStatusChanged(c))
                            if c.to() == pb::DelegationStatus::Unbonded =>
                        {
                            state.spent.insert(c.staking_txid.clone());
                            true
                        }
                        _ => false,
                    }
            }
        }
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
