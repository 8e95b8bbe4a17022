//! The verifier component: `new`, `step` (one pass: randomness, jail, the closed rounds to vote
//! in) and `run` (the daemon loop).
//!
//! Safety first: a vote is signed only with the randomness of a commitment this store recorded
//! (bound to the network and the store's salt, PROTOCOL §9), and only after (network, round) →
//! message hash is durably recorded; a different message for a recorded round is refused, the
//! same one is re-sent as recorded. Liveness second: randomness is committed a configured margin
//! ahead, and every closed round of the catch-up window is re-verified from its proofs and voted
//! on only when this verifier computes the node's round hash itself.
//!
//! A checkpoint round (CHECKPOINTS.md §13.5–13.6) gets no §10 vote: its one message is the
//! checkpoint candidate's M, signed only when the candidate is byte-identical to the one this
//! verifier derives itself ([`crate::own_candidate`]), through the same slashing protection.
//! Members of the base set sign it even when they left round h's active set (outgoing duty).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_finality::checkpoint::{build_candidate, CheckpointRules, CheckpointSet};
use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_finality::eots::RandomnessDomain;
use fiamma_finality::merkle::Digest;
use fiamma_finality::round::{round_hash, RoundHash, RoundResult};
use fiamma_finality::rounds::Vote;
use fiamma_finality::vote::vote_message;
use fiamma_finality::zk::ZkProof;
use fiamma_proto::client::{
    CheckpointKind, CheckpointNode, CheckpointRoundView, ClosedRoundView, Code,
    FinalityEventStream, FinalityNode, NodeError, RoundStatus, StakingNode, VerifierRecord,
    VerifierStatus, VoteOutcome,
};
use fiamma_proto::codec::finality::{checkpoint_vote_to_pb, vote, vote_to_pb, VOTE};
use fiamma_proto::finality::v1 as fpb;
use fiamma_role::component::Component;
use fiamma_role::daemon::{Health, Metrics, Shutdown};
use fiamma_role::store::unix_now;
use fiamma_staking::context::SigningContexts;
use prost::Message;

use crate::checkpoint::{CheckpointDecision, CheckpointSignError, CheckpointSigner};
use crate::own_candidate::{compare, OwnCandidate, OwnView};
use crate::signer::{Signer, SignerError};
use crate::store::{Disagreement, Network, Progress, SignedRound, StoreError, VerifierStore};

/// What the verifier asks of the node: its finality module, the checkpoint chain, and the
/// staking params (the covenant committee of the checkpoint recovery leaf). [`GrpcNode`]
/// (fiamma_proto::client::GrpcNode) is all three over one channel.
pub trait VerifierNode: FinalityNode + CheckpointNode + StakingNode {}

impl<T: FinalityNode + CheckpointNode + StakingNode + ?Sized> VerifierNode for T {}

/// How a verifier runs, apart from its key, node and store.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// The network's signing contexts; its chain id and module address also bind the randomness.
    pub contexts: SigningContexts,
    /// Rounds per randomness commitment.
    pub commit_batch: u64,
    /// The next batch is committed when fewer rounds than this are committed ahead.
    pub commit_ahead: u64,
    /// How many closed rounds back the verifier looks for rounds to vote in.
    pub catch_up_rounds: u64,
    /// Longest wait between two passes when no event arrives.
    pub poll_interval: Duration,
    /// Whether to ask to be unjailed once `jail_duration` rounds have passed.
    pub unjail: bool,
    /// The node's jail duration, in rounds.
    pub jail_duration: u64,
}

/// What became of one closed round in a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundOutcome {
    /// Re-verified, agreed, signed, recorded and sent; the node's answer.
    Voted(VoteOutcome),
    /// Signed before (this run or an earlier one); the recorded vote was sent again.
    Resent(VoteOutcome),
    /// A checkpoint round: its candidate rebuilt byte for byte, M signed, recorded and sent;
    /// the node's answer.
    CheckpointSigned(VoteOutcome),
    /// A checkpoint round signed before for the same M: the same checkpoint vote sent again.
    CheckpointResent(VoteOutcome),
    /// The node already holds this verifier's vote.
    AlreadyCounted,
    /// Not in the round's active set (nor, on a checkpoint round, in the base set).
    NotActive,
    /// The round takes no votes any more.
    Expired,
    /// Its own verdicts or round hash differ from the node's: no vote.
    Disagrees(String),
    /// The proofs could not be checked (dropped, undecodable, not the ones listed): no vote.
    Unverifiable(String),
    /// Slashing protection, or the randomness rule, refused to sign.
    Refused(String),
    /// The node refused the vote for good.
    Rejected(String),
    /// The node could not be reached; the recorded vote is sent again next step.
    Undelivered(String),
}

impl RoundOutcome {
    /// Whether the round needs no further step.
    pub fn is_settled(&self) -> bool {
        !matches!(self, RoundOutcome::Undelivered(_))
    }

    fn label(&self) -> &'static str {
        match self {
            RoundOutcome::Voted(_) => "voted",
            RoundOutcome::Resent(_) => "resent",
            RoundOutcome::CheckpointSigned(_) => "checkpoint_signed",
            RoundOutcome::CheckpointResent(_) => "checkpoint_resent",
            RoundOutcome::AlreadyCounted => "already_counted",
            RoundOutcome::NotActive => "not_active",
            RoundOutcome::Expired => "expired",
            RoundOutcome::Disagrees(_) => "disagrees",
            RoundOutcome::Unverifiable(_) => "unverifiable",
            RoundOutcome::Refused(_) => "refused",
            RoundOutcome::Rejected(_) => "rejected",
            RoundOutcome::Undelivered(_) => "undelivered",
        }
    }
}

/// One round's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundDecision {
    /// The round.
    pub round: u64,
    /// What happened.
    pub outcome: RoundOutcome,
    /// The proofs re-verified and how many of them are valid, when they were.
    pub proofs: Option<(usize, usize)>,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepReport {
    /// The verifier's status on the node; `None` when the node does not know it.
    pub status: Option<VerifierStatus>,
    /// The newest closed round.
    pub current_round: u64,
    /// The last round its randomness covers on the node (after this step's commitment).
    pub committed_until: u64,
    /// The commitment made in this step, as (first, last) round.
    pub committed: Option<(u64, u64)>,
    /// The rounds looked at.
    pub rounds: Vec<RoundDecision>,
    /// The unjail request sent in this step and the node's answer.
    pub unjail: Option<Result<(), String>>,
}

/// Why a step (or the start) could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// The node could not be asked.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signer failed.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The store has no record of this network: it may have signed on it from another store.
    #[error("the local store has no slashing-protection record of network {network}; if this verifier never signed on it, start once with --new-network; if it did, import its slashing-protection file first")]
    NotJoined {
        /// The network.
        network: String,
    },
}

/// A verifier.
pub struct Verifier {
    settings: VerifierSettings,
    signer: Arc<dyn Signer>,
    node: Arc<dyn VerifierNode>,
    store: VerifierStore,
    network: Network,
    domain: RandomnessDomain,
    metrics: Metrics,
    health: Health,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The newest closed round seen.
    current: u64,
    /// Rounds settled in this run (pruned below the catch-up window).
    settled: BTreeSet<u64>,
    /// Newest finality event seen.
    seen_event: u64,
    /// The newest staking params version the node served (probed upwards from here).
    params_version: u32,
}

fn status_word(status: Option<VerifierStatus>) -> &'static str {
    match status {
        None => "NO FINALITY RECORD (not registered, or no commitment yet)",
        Some(VerifierStatus::Active) => "ACTIVE",
        Some(VerifierStatus::Jailed) => "JAILED",
        Some(VerifierStatus::Slashed) => "SLASHED",
        Some(VerifierStatus::Unspecified) => "UNSPECIFIED",
    }
}

/// The message hash slashing protection records for a vote.
pub fn message_hash(contexts: &SigningContexts, round: u64, round_hash: &Digest) -> [u8; 32] {
    sha256::Hash::hash(&vote_message(contexts, round, round_hash)).to_byte_array()
}

impl Verifier {
    /// A verifier signing with `signer`, asking `node`, protected by `store`.
    ///
    /// The store must hold this network's record (its randomness salt). When it does not, the
    /// verifier refuses to start unless `new_network` says this key never signed on this
    /// network; then a fresh salt is drawn and recorded.
    ///
    /// # Errors
    /// [`VerifierError::NotJoined`], or a store failure.
    pub async fn new(
        settings: VerifierSettings,
        signer: Arc<dyn Signer>,
        node: Arc<dyn VerifierNode>,
        store: VerifierStore,
        new_network: bool,
    ) -> Result<Self, VerifierError> {
        let network = Network {
            chain_id: settings.contexts.chain_id.clone(),
            module_address: settings.contexts.module_address.clone(),
        };
        let key = signer.public_key();
        let salt = match store.salt(&network, &key).await? {
            Some(salt) => salt,
            None if new_network => {
                let mut salt = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut salt);
                tracing::info!(network = %network, "joining a network new to this verifier");
                store.join(&network, &key, &salt).await?
            }
            None => {
                return Err(VerifierError::NotJoined {
                    network: network.to_string(),
                })
            }
        };
        let domain = RandomnessDomain::new(&network.chain_id, &network.module_address, &salt);
        let current = store.progress().await?.map_or(0, |p| p.current_round);
        Ok(Verifier {
            settings,
            signer,
            node,
            store,
            network,
            domain,
            metrics: Metrics::default(),
            health: Health::default(),
            state: Mutex::new(State {
                current,
                ..State::default()
            }),
        })
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
    pub fn store(&self) -> &VerifierStore {
        &self.store
    }

    /// The network it votes on.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// What its randomness is bound to (no secret: the key is needed to derive from it).
    pub fn randomness_domain(&self) -> &RandomnessDomain {
        &self.domain
    }

    /// Its key.
    pub fn public_key(&self) -> bitcoin::secp256k1::XOnlyPublicKey {
        self.signer.public_key()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One pass: the node's record of this verifier, randomness kept committed ahead, unjail
    /// when due, and every unsettled closed round of the catch-up window decided.
    ///
    /// # Errors
    /// [`VerifierError`] when the node cannot be asked or the store fails; each round's own
    /// trouble is in the report instead.
    pub async fn step(&self) -> Result<StepReport, VerifierError> {
        let key = self.signer.public_key();
        let record = self.node.verifier(key).await?;
        let current = self.current_round().await?;
        let mut report = StepReport {
            status: record.as_ref().map(|r| r.status),
            current_round: current,
            ..StepReport::default()
        };
        let mut power = 0;
        // The finality module knows a verifier from its first commitment on: a registered
        // verifier without a record commits; the node refuses it if it is not registered.
        let known = record.clone().unwrap_or(VerifierRecord {
            status: VerifierStatus::Unspecified,
            since_round: 0,
            commitments: Vec::new(),
            missed_rounds: 0,
        });
        report.committed_until = known.committed_until();
        match known.status {
            VerifierStatus::Slashed => {
                self.health.failing("this verifier is slashed");
            }
            status => {
                if let Some(c) = self.keep_randomness(&known, current).await? {
                    report.committed = Some((c.start(), c.last()));
                    report.committed_until = report.committed_until.max(c.last());
                }
                if status == VerifierStatus::Jailed {
                    report.unjail = self.maybe_unjail(&known, current).await;
                }
                if matches!(status, VerifierStatus::Active | VerifierStatus::Jailed) {
                    let from = current
                        .saturating_sub(self.settings.catch_up_rounds)
                        .saturating_add(1)
                        .max(1);
                    // A jailed verifier votes in no round, but a member of a checkpoint's base
                    // set still signs its checkpoint rounds (outgoing duty, §13.6.2).
                    let only = if status == VerifierStatus::Jailed {
                        Some(self.checkpoint_rounds(from, current).await?)
                    } else {
                        None
                    };
                    for round in from..=current {
                        if self.state().settled.contains(&round)
                            || only.as_ref().is_some_and(|o| !o.contains(&round))
                        {
                            continue;
                        }
                        let (outcome, round_power, proofs) = self.decide(round, &known).await?;
                        power = power.max(round_power);
                        self.account(round, &outcome);
                        if outcome.is_settled() {
                            self.state().settled.insert(round);
                        }
                        report.rounds.push(RoundDecision {
                            round,
                            outcome,
                            proofs,
                        });
                    }
                }
                self.health.ok();
            }
        }
        {
            let mut state = self.state();
            let keep_from = current.saturating_sub(self.settings.catch_up_rounds);
            state.settled = state.settled.split_off(&keep_from);
        }
        let missed = record.as_ref().map_or(0, |r| r.missed_rounds);
        self.metrics
            .set("fiamma_verifier_current_round", &[], current as f64);
        self.metrics.set(
            "fiamma_verifier_committed_until",
            &[],
            report.committed_until as f64,
        );
        self.metrics.set(
            "fiamma_verifier_randomness_rounds_left",
            &[],
            report.committed_until.saturating_sub(current) as f64,
        );
        self.metrics
            .set("fiamma_verifier_missed_rounds", &[], missed as f64);
        self.metrics.set(
            "fiamma_verifier_jailed",
            &[],
            f64::from(u8::from(report.status == Some(VerifierStatus::Jailed))),
        );
        let previous = self.store.progress().await?.unwrap_or_default();
        self.store
            .record_progress(&Progress {
                last_step_at: unix_now(),
                current_round: current,
                processed_round: current,
                committed_until: report.committed_until,
                status: status_word(report.status).to_owned(),
                power_sat: if power > 0 { power } else { previous.power_sat },
                missed_rounds: missed,
            })
            .await?;
        Ok(report)
    }

    /// The newest closed round. Never lower than one seen before: a node that answers with
    /// an older round (a lagging replica, a restore) does not send the verifier back.
    async fn current_round(&self) -> Result<u64, VerifierError> {
        let latest = self.node.latest_round().await?;
        let mut state = self.state();
        state.current = state.current.max(latest);
        Ok(state.current)
    }

    /// Commits the next batch of randomness when fewer than `commit_ahead` rounds are left;
    /// re-sends a recorded commitment the node does not hold. Returns the commitment made.
    async fn keep_randomness(
        &self,
        record: &VerifierRecord,
        current: u64,
    ) -> Result<Option<RandomnessCommitment>, VerifierError> {
        let ours = self.store.commitments(&self.network).await?;
        for c in &ours {
            let on_node = record.commitments.contains(c);
            let clashes = record.commitments.iter().any(|n| n.overlaps(c));
            if !on_node && !clashes && c.last() > current {
                self.send_commitment(c.start(), c.num()).await?;
            }
        }
        let until = record.committed_until().max(
            ours.iter()
                .map(RandomnessCommitment::last)
                .max()
                .unwrap_or(0),
        );
        if until >= current.saturating_add(self.settings.commit_ahead) {
            return Ok(None);
        }
        let start = until.max(current).saturating_add(1);
        let c = self
            .send_commitment(start, self.settings.commit_batch)
            .await?;
        Ok(Some(c))
    }

    /// Derives, records (durably) and sends the commitment of `num` rounds from `start`.
    async fn send_commitment(
        &self,
        start: u64,
        num: u64,
    ) -> Result<RandomnessCommitment, VerifierError> {
        let (c, signature) = self
            .signer
            .commit(&self.domain, &self.settings.contexts, start, num)
            .await?;
        self.store.record_commitment(&self.network, &c).await?;
        match self
            .node
            .commit_pub_rand(self.signer.public_key(), &c, &signature)
            .await
        {
            Ok(()) => {
                tracing::info!(start = c.start(), last = c.last(), "randomness committed");
                self.metrics.inc("fiamma_verifier_commitments_total", &[]);
            }
            Err(e) => {
                tracing::warn!(start = c.start(), error = %e, "randomness commitment not taken; sent again next step");
                self.metrics
                    .inc("fiamma_verifier_commitment_errors_total", &[]);
            }
        }
        Ok(c)
    }

    async fn maybe_unjail(
        &self,
        record: &VerifierRecord,
        current: u64,
    ) -> Option<Result<(), String>> {
        if !self.settings.unjail
            || current
                < record
                    .since_round
                    .saturating_add(self.settings.jail_duration)
        {
            return None;
        }
        let result = match self
            .signer
            .unjail(&self.settings.contexts, record.since_round)
            .await
        {
            Ok(sig) => self
                .node
                .unjail(self.signer.public_key(), &sig)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match &result {
            Ok(()) => tracing::info!(since = record.since_round, "unjailed"),
            Err(e) => tracing::warn!(error = %e, "unjail refused; asked again next step"),
        }
        Some(result)
    }

    /// Decides closed round `round`; also returns this verifier's power in it and, when it
    /// re-verified the proofs, how many there are and how many it found valid.
    async fn decide(
        &self,
        round: u64,
        record: &VerifierRecord,
    ) -> Result<(RoundOutcome, u64, Option<(usize, usize)>), VerifierError> {
        let Some(view) = self.node.round(round).await? else {
            return Ok((
                RoundOutcome::Undelivered(format!("round {round} not served")),
                0,
                None,
            ));
        };
        if view.checkpoint != CheckpointKind::None {
            return self.decide_checkpoint(&view, record).await;
        }
        let key = self.signer.public_key();
        let Some(&(_, power)) = view.active_set.iter().find(|(k, _)| *k == key) else {
            return Ok((RoundOutcome::NotActive, 0, None));
        };
        if view.status == RoundStatus::Expired {
            return Ok((RoundOutcome::Expired, power, None));
        }
        // Only a vote that verifies is this key's: a node cannot make the store record a
        // message this key never signed.
        let contexts = &self.settings.contexts;
        if let Some(mine) = view
            .votes
            .iter()
            .find(|v| v.vote.voter == key && v.vote.verify_signature(contexts).is_ok())
        {
            // The node holds a vote of this key (sent before a restart, or from a restored
            // store's lost rounds): it is the one message for the round from now on.
            let hash = message_hash(&self.settings.contexts, round, &mine.vote.round_hash);
            let record = SignedRound {
                round,
                message_hash: hash,
                vote: vote_to_pb(&mine.vote).encode_to_vec(),
            };
            return Ok(match self.store.protect(&self.network, &record).await {
                Ok(()) => (RoundOutcome::AlreadyCounted, power, None),
                Err(StoreError::Conflict { .. }) => {
                    tracing::error!(round, "the node holds a vote by this key for another message than the one this store recorded: is the key used elsewhere?");
                    self.metrics.inc("fiamma_verifier_foreign_votes_total", &[]);
                    (
                        RoundOutcome::Refused(format!(
                            "the node holds a vote of this key on round {round} for another message than the recorded one"
                        )),
                        power,
                        None,
                    )
                }
                Err(e) => return Err(e.into()),
            });
        }
        let counts = match self.own_round_hash(&view).await? {
            Ok((_, counts)) => counts,
            Err((outcome, counts)) => return Ok((outcome, power, counts)),
        };
        Ok((
            self.vote_for(round, view.round_hash, record).await?,
            power,
            Some(counts),
        ))
    }

    /// Round `view`'s hash as this verifier computes it from the proofs, when it is the node's
    /// (with how many proofs there are and how many are valid); else the outcome (recorded as
    /// a disagreement) and the counts when the proofs were checked.
    async fn own_round_hash(
        &self,
        view: &ClosedRoundView,
    ) -> Result<
        Result<(Digest, (usize, usize)), (RoundOutcome, Option<(usize, usize)>)>,
        VerifierError,
    > {
        let round = view.round;
        let ours = match self.reverify(view).await? {
            Ok(ours) => ours,
            Err(why) => {
                self.disagree(round, "unverifiable", &why).await?;
                return Ok(Err((RoundOutcome::Unverifiable(why), None)));
            }
        };
        let counts = (
            ours.len(),
            ours.iter().filter(|r| r.verdict.is_valid()).count(),
        );
        let differing: Vec<String> = ours
            .iter()
            .zip(&view.results)
            .filter(|(r, (_, valid))| r.verdict.is_valid() != *valid)
            .map(|(r, _)| r.proof_id.to_string())
            .collect();
        let recomputed = round_hash(round, &RoundHash(view.prev_round_hash), &ours);
        if !differing.is_empty() || recomputed.0 != view.round_hash {
            let why = if differing.is_empty() {
                format!(
                    "round hash {recomputed} recomputed, the node says {}",
                    hex::encode(view.round_hash)
                )
            } else {
                format!("verdicts differ on proofs {}", differing.join(", "))
            };
            self.disagree(round, "disagree", &why).await?;
            return Ok(Err((RoundOutcome::Disagrees(why), Some(counts))));
        }
        Ok(Ok((recomputed.0, counts)))
    }

    /// The closed rounds in `from..=to` that the node serves as checkpoint rounds.
    async fn checkpoint_rounds(&self, from: u64, to: u64) -> Result<BTreeSet<u64>, VerifierError> {
        let mut found = BTreeSet::new();
        let mut next = from;
        while next <= to {
            let limit = u32::try_from(to - next + 1).unwrap_or(u32::MAX).min(1_000);
            let page = self.node.rounds(next, limit).await?;
            let Some(last) = page.last().map(|r| r.round) else {
                break;
            };
            found.extend(
                page.iter()
                    .filter(|r| r.round <= to && r.checkpoint != CheckpointKind::None)
                    .map(|r| r.round),
            );
            next = last.saturating_add(1).max(next.saturating_add(1));
        }
        Ok(found)
    }

    /// The last rotation round the node declared in the `vote_expiry` rounds before `round`.
    async fn last_rotation(
        &self,
        round: u64,
        vote_expiry: u64,
    ) -> Result<Option<u64>, VerifierError> {
        let from = round.saturating_sub(vote_expiry.max(1)).max(1);
        if from >= round {
            return Ok(None);
        }
        let limit = u32::try_from(round - from).unwrap_or(u32::MAX).min(10_000);
        Ok(self
            .node
            .rounds(from, limit)
            .await?
            .iter()
            .filter(|r| r.round < round && r.checkpoint == CheckpointKind::Rotation)
            .map(|r| r.round)
            .max())
    }

    /// The covenant committee and its quorum in the node's latest staking params version
    /// (probed upwards from the newest one seen); `Err` says why there is none.
    async fn committee(&self) -> Result<Result<(Vec<XOnlyPublicKey>, u32), String>, VerifierError> {
        // Bounded: a node that never says NOT_FOUND cannot keep the step probing.
        const MAX_PROBES: u32 = 1_000;
        let first = self.state().params_version;
        let mut latest = None;
        for version in first..first.saturating_add(MAX_PROBES) {
            match self.node.params(version).await {
                Ok(p) => latest = Some((version, p)),
                Err(NodeError::Status {
                    code: Code::NotFound,
                    ..
                }) => break,
                Err(e) => return Err(e.into()),
            }
        }
        let Some((version, params)) = latest else {
            return Ok(Err(format!(
                "the node serves no staking params version {first}"
            )));
        };
        if version == first.saturating_add(MAX_PROBES - 1) {
            return Ok(Err(format!(
                "the node serves params versions {first}..={version} and more: no latest one"
            )));
        }
        // The version asked for, not the one the node wrote in the answer.
        self.state().params_version = version;
        let keys: Result<Vec<XOnlyPublicKey>, _> = params
            .covenant_pks
            .iter()
            .map(|k| fiamma_proto::codec::key("params.covenant_pks", k))
            .collect();
        Ok(keys
            .map(|keys| (keys, params.covenant_quorum))
            .map_err(|e| format!("params version {version}: {e}")))
    }

    /// Decides checkpoint round `view` (§13.5–13.6): signers are round h's active set and the
    /// base set; the candidate is rebuilt from this verifier's own view and M is signed only
    /// for a byte-identical one, through slashing protection; no §10 vote is ever sent.
    async fn decide_checkpoint(
        &self,
        view: &ClosedRoundView,
        record: &VerifierRecord,
    ) -> Result<(RoundOutcome, u64, Option<(usize, usize)>), VerifierError> {
        let round = view.round;
        let key = self.signer.public_key();
        let power = view
            .active_set
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, p)| *p);
        let undelivered = |why: String| Ok((RoundOutcome::Undelivered(why), power, None));
        let Some(served) = self.node.checkpoint_round(round).await? else {
            return undelivered(format!(
                "round {round} is a checkpoint round but its candidate is not served"
            ));
        };
        let Some(chain) = self.node.checkpoints().await? else {
            return undelivered(format!(
                "round {round} is a checkpoint round but the node serves no checkpoint params"
            ));
        };
        let Some(base_view) = self.node.round(served.base.round).await? else {
            return undelivered(format!(
                "the base round {} of checkpoint round {round} is not served",
                served.base.round
            ));
        };
        let in_base = CheckpointSet::from_powers(base_view.active_set.iter().copied())
            .is_ok_and(|s| s.contains(&key));
        if power == 0 && !in_base {
            return Ok((RoundOutcome::NotActive, 0, None));
        }
        if view.status == RoundStatus::Expired {
            return Ok((RoundOutcome::Expired, power, None));
        }
        let (own_hash, counts) = match self.own_round_hash(view).await? {
            Ok(own) => own,
            Err((outcome, counts)) => return Ok((outcome, power, counts)),
        };
        let (committee, quorum) = match self.committee().await? {
            Ok(c) => c,
            Err(why) => {
                self.disagree(round, "checkpoint", &why).await?;
                return Ok((RoundOutcome::Disagrees(why), power, Some(counts)));
            }
        };
        let params = chain.params;
        let own_view = OwnView {
            round,
            round_hash: own_hash,
            active_set: &view.active_set,
            base: served.base.outpoint,
            base_round: served.base.round,
            base_active_set: &base_view.active_set,
            committee: &committee,
            committee_quorum: quorum,
            recovery_blocks: params.recovery_blocks,
            value: params.value,
            rules: CheckpointRules {
                interval_rounds: params.interval_rounds,
                vote_expiry: params.vote_expiry,
            },
            last_rotation: self.last_rotation(round, params.vote_expiry).await?,
        };
        let outcome = match self.sign_checkpoint(&own_view, &served, record).await? {
            Ok(outcome) => outcome,
            Err(why) => {
                self.disagree(round, "checkpoint", &why).await?;
                RoundOutcome::Disagrees(why)
            }
        };
        Ok((outcome, power, Some(counts)))
    }

    /// Derives its own candidate from `own`, compares the node's `served` one with it, and
    /// signs (or re-sends) M through slashing protection. `Err` says why the node's candidate
    /// is not its own (nothing signed).
    async fn sign_checkpoint(
        &self,
        own: &OwnView<'_>,
        served: &CheckpointRoundView,
        record: &VerifierRecord,
    ) -> Result<Result<RoundOutcome, String>, VerifierError> {
        let round = own.round;
        let mine = match OwnCandidate::derive(own, served.kind) {
            Ok(mine) => mine,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let built = match build_candidate(&mine.spec()) {
            Ok(built) => built,
            Err(e) => return Ok(Err(format!("cannot build its own candidate: {e}"))),
        };
        if let Err(d) = compare(&built, &served.candidate, &served.message) {
            return Ok(Err(d.to_string()));
        }
        let key = self.signer.public_key();
        // Only a vote that verifies over its own M is this key's: a node cannot make the store
        // record a message this key never signed.
        if let Some((held, proof)) = served
            .votes
            .iter()
            .find(|(v, _)| v.voter == key && v.verify(&built.message).is_ok())
        {
            let entry = SignedRound {
                round,
                message_hash: built.message.sighash().to_byte_array(),
                vote: checkpoint_vote_to_pb(round, held, proof).encode_to_vec(),
            };
            return Ok(Ok(match self.store.protect(&self.network, &entry).await {
                Ok(()) => RoundOutcome::AlreadyCounted,
                Err(StoreError::Conflict { .. }) => {
                    self.metrics.inc("fiamma_verifier_foreign_votes_total", &[]);
                    self.refuse(
                        round,
                        format!("the node holds a checkpoint vote of this key on round {round} while this store recorded another message"),
                    )
                    .await?
                }
                Err(e) => return Err(e.into()),
            }));
        }
        let ours = self.store.commitments(&self.network).await?;
        let held: Vec<_> = ours
            .into_iter()
            .filter(|c| record.commitments.contains(c))
            .collect();
        let signer = CheckpointSigner {
            store: &self.store,
            network: &self.network,
            signer: self.signer.as_ref(),
            domain: &self.domain,
            commitments: &held,
        };
        let decision = signer
            .decide(&mine.spec(), &served.candidate)
            .await
            .map_err(|e| match e {
                CheckpointSignError::Store(e) => VerifierError::Store(e),
                CheckpointSignError::Signer(e) => VerifierError::Signer(e),
            })?;
        Ok(Ok(match decision {
            CheckpointDecision::Signed { vote, proof } => {
                match self.send_checkpoint(round, &vote, &proof).await {
                    Ok(o) => RoundOutcome::CheckpointSigned(o),
                    Err(other) => other,
                }
            }
            CheckpointDecision::Resent { vote, proof } => {
                match self.send_checkpoint(round, &vote, &proof).await {
                    Ok(o) => RoundOutcome::CheckpointResent(o),
                    Err(other) => other,
                }
            }
            CheckpointDecision::Disagrees(why) => RoundOutcome::Disagrees(why),
            CheckpointDecision::Refused(why) => {
                self.metrics
                    .inc("fiamma_verifier_protection_refusals_total", &[]);
                RoundOutcome::Refused(why)
            }
        }))
    }

    async fn send_checkpoint(
        &self,
        round: u64,
        vote: &fiamma_finality::checkpoint::CheckpointVote,
        proof: &fiamma_finality::merkle::Proof,
    ) -> Result<VoteOutcome, RoundOutcome> {
        match self.node.add_checkpoint_sig(round, vote, proof).await {
            Ok(o) => {
                if o == VoteOutcome::Counted {
                    self.metrics
                        .set("fiamma_verifier_last_checkpoint_round", &[], round as f64);
                }
                Ok(o)
            }
            Err(e) if e.is_transient() => Err(RoundOutcome::Undelivered(e.to_string())),
            Err(e) => Err(RoundOutcome::Rejected(e.to_string())),
        }
    }

    async fn disagree(&self, round: u64, kind: &str, why: &str) -> Result<(), VerifierError> {
        tracing::warn!(round, kind, reason = %why, "not voting");
        self.metrics
            .inc("fiamma_verifier_disagreements_total", &[("kind", kind)]);
        self.store
            .record_disagreement(
                &self.network,
                &Disagreement {
                    round,
                    kind: kind.to_owned(),
                    reason: why.to_owned(),
                },
            )
            .await?;
        Ok(())
    }

    /// The verdicts of the round's proofs, computed here from their bytes as the node serves
    /// them: each must be the proof the round lists at its position. `Err` says why the round
    /// cannot be checked.
    async fn reverify(
        &self,
        view: &ClosedRoundView,
    ) -> Result<Result<Vec<RoundResult>, String>, VerifierError> {
        let h = view.round;
        let mut proofs: Vec<ZkProof> = Vec::with_capacity(view.results.len());
        while proofs.len() < view.results.len() {
            let from = u32::try_from(proofs.len()).unwrap_or(u32::MAX);
            let page = self.node.round_proofs(h, from).await?;
            if page.proofs.is_empty() {
                return Ok(Err(format!(
                    "round {h} lists {} proofs, the node served {}",
                    view.results.len(),
                    proofs.len()
                )));
            }
            for served in page.proofs {
                let position = proofs.len();
                let Some((listed, _)) = view.results.get(position) else {
                    return Ok(Err(format!("round {h}: more proofs served than listed")));
                };
                let id = hex::encode(listed);
                let proof = match served.proof {
                    None => return Ok(Err(format!("proof {id}: the node dropped its bytes"))),
                    Some(Err(e)) => return Ok(Err(format!("proof {id}: {e}"))),
                    Some(Ok(p)) => p,
                };
                if served.position as usize != position || proof.proof_id().as_bytes() != listed {
                    return Ok(Err(format!(
                        "round {h}: the proof served at position {position} is not {id}, the one listed"
                    )));
                }
                proofs.push(proof);
            }
        }
        let verified = tokio::task::spawn_blocking(move || {
            proofs
                .iter()
                .map(|p| RoundResult {
                    proof_id: p.proof_id(),
                    verdict: p.round_verdict(),
                })
                .collect::<Vec<_>>()
        })
        .await;
        Ok(verified.map_err(|e| format!("verification task: {e}")))
    }

    /// Signs (or re-sends) this verifier's vote on `round_hash` for `round`, through slashing
    /// protection: a different message for a recorded round is refused, and a vote only uses
    /// the randomness of a commitment this store made and the node holds.
    ///
    /// # Errors
    /// [`VerifierError`] when the store or the signer fails (then nothing was sent).
    pub async fn vote_for(
        &self,
        round: u64,
        round_hash: Digest,
        record: &VerifierRecord,
    ) -> Result<RoundOutcome, VerifierError> {
        let hash = message_hash(&self.settings.contexts, round, &round_hash);
        if let Some(signed) = self.store.signed(&self.network, round).await? {
            if signed.message_hash != hash {
                return self
                    .refuse(
                        round,
                        format!(
                            "slashing protection: round {round} was signed for another message"
                        ),
                    )
                    .await;
            }
            let pb_vote = fpb::FinalityVote::decode(signed.vote.as_slice()).ok();
            let decoded = vote(&VOTE, pb_vote.as_ref()).ok();
            if let Some(v) = decoded {
                return Ok(match self.send(&v).await {
                    Ok(o) => RoundOutcome::Resent(o),
                    Err(other) => other,
                });
            }
            // An imported record without the vote: the same message is re-signed below with
            // the same randomness, which gives the same signature.
        }
        let ours = self.store.commitments(&self.network).await?;
        let Some(c) = ours
            .iter()
            .find(|c| c.covers(round) && record.commitments.contains(c))
        else {
            return self.refuse(
                round,
                format!("round {round} is covered by no commitment this store made and the node holds (store restored from an older backup?)"),
            ).await;
        };
        let signed: Vote = self
            .signer
            .vote(
                &self.domain,
                &self.settings.contexts,
                (c.start(), c.num()),
                round,
                round_hash,
            )
            .await?;
        let entry = SignedRound {
            round,
            message_hash: hash,
            vote: vote_to_pb(&signed).encode_to_vec(),
        };
        // Durable before the vote leaves the process.
        match self.store.protect(&self.network, &entry).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => {
                return self
                    .refuse(
                        round,
                        format!(
                            "slashing protection: round {round} was signed for another message"
                        ),
                    )
                    .await
            }
            Err(e) => return Err(e.into()),
        }
        Ok(match self.send(&signed).await {
            Ok(o) => RoundOutcome::Voted(o),
            Err(other) => other,
        })
    }

    async fn refuse(&self, round: u64, why: String) -> Result<RoundOutcome, VerifierError> {
        tracing::error!(round, reason = %why, "refusing to sign");
        self.metrics
            .inc("fiamma_verifier_protection_refusals_total", &[]);
        self.store
            .record_disagreement(
                &self.network,
                &Disagreement {
                    round,
                    kind: "refused".to_owned(),
                    reason: why.clone(),
                },
            )
            .await?;
        Ok(RoundOutcome::Refused(why))
    }

    async fn send(&self, v: &Vote) -> Result<VoteOutcome, RoundOutcome> {
        match self.node.add_finality_sig(v).await {
            Ok(o) => {
                if o == VoteOutcome::Counted {
                    self.metrics
                        .set("fiamma_verifier_last_voted_round", &[], v.round as f64);
                }
                Ok(o)
            }
            Err(e) if e.is_transient() => Err(RoundOutcome::Undelivered(e.to_string())),
            Err(e) => Err(RoundOutcome::Rejected(e.to_string())),
        }
    }

    fn account(&self, round: u64, outcome: &RoundOutcome) {
        let label = outcome.label();
        self.metrics
            .inc("fiamma_verifier_rounds_total", &[("outcome", label)]);
        match outcome {
            RoundOutcome::NotActive | RoundOutcome::AlreadyCounted => {
                tracing::debug!(round, outcome = label, "round decided")
            }
            _ => tracing::info!(round, outcome = label, "round decided"),
        }
    }

    /// The daemon loop ([`fiamma_role::component::run`]): a step, then a wait for a round to
    /// close on the node's event stream (or the poll interval), until `shutdown`.
    pub async fn run(&self, shutdown: Shutdown) {
        fiamma_role::component::run(self, shutdown).await;
    }
}

#[async_trait::async_trait]
impl Component for Verifier {
    type Event = fpb::Event;
    type StreamError = NodeError;
    type Events = FinalityEventStream;
    type Report = StepReport;
    type Error = VerifierError;
    const STEP_ERRORS: &'static str = "fiamma_verifier_step_errors_total";
    const DEBOUNCE: Duration = Duration::from_millis(20);

    async fn step(&self) -> Result<StepReport, VerifierError> {
        Verifier::step(self).await
    }

    async fn subscribe(&self) -> Option<FinalityEventStream> {
        let from = self.state().seen_event + 1;
        self.node.finality_events(from).await.ok()
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

    /// Records the event's sequence; true when it may bring work (a round closed, or this
    /// verifier was jailed).
    fn note_event(&self, event: &fpb::Event) -> bool {
        let mut state = self.state();
        let fresh = event.sequence > state.seen_event;
        state.seen_event = state.seen_event.max(event.sequence);
        fresh
            && matches!(
                &event.kind,
                Some(fpb::event::Kind::RoundClosed(_)) | Some(fpb::event::Kind::VerifierJailed(_))
            )
    }
}
