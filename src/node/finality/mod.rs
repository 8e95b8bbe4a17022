//! The finality module's service layer (`PROTOCOL.md` §9–11) over the pure cores of
//! `fiamma_finality`: ZK proofs in, rounds closed over them, randomness commitments, votes
//! tallied by stake, equivocation turned into a slashed verifier with its key published.
//!
//! Every message is one PostgreSQL transaction: load the state it needs, call the pure core
//! (`fiamma_finality::rounds`, `::zk`, `::round`), write the result, commit, then reply. The
//! common vote (a first vote on a recent round) is checked against facts in memory and stored
//! in one transaction together with the first votes that arrive with it ([`ingest`]): each
//! vote is still all or nothing and answered after the commit.
//!
//! # Lock order
//!
//! Every transaction takes its locks in this order, so none waits in a cycle:
//!
//! 1. the round-close advisory lock: shared by a batch of first votes
//!    ([`store::hold_rounds_open`], its only lock before its one statement), exclusive by
//!    every `FOR UPDATE` holder of 2 just before it ([`store::position`]);
//! 2. the finality state row ([`store::position`]):
//!    - `FOR SHARE` ([`Lock::Share`](store::Lock::Share)) by votes decided in a transaction,
//!      UnjailVerifier and SubmitProof: no round closes while one of them (or a batch of first
//!      votes, through 1) runs,
//!      so a vote answered COUNTED is in the store before the next close tallies the round
//!      and records liveness, and a vote after a close sees its expiries and jailings;
//!    - `FOR UPDATE` ([`Lock::Update`](store::Lock::Update)) by the round close, the tally,
//!      EquivocationEvidence and a vote that turns out to be equivocation (slashing numbers
//!      events). A transaction never upgrades `FOR SHARE` to `FOR UPDATE` (two upgrading
//!      at once deadlock): such a vote is rolled back and decided again under `FOR UPDATE`.
//! 3. the verifier's finality row `FOR NO KEY UPDATE` ([`store::verifier_record`]), one
//!    verifier per message; the close writes several, in key order, under `FOR UPDATE` of 2;
//!    the votes' foreign keys take `KEY SHARE` on it, which conflicts with neither.
//! 4. the staking writer lock (`node_state FOR UPDATE`), then the staking `verifiers` row:
//!    only slashing ([`slashing`]) reaches into the staking module, after 1 to 3. The
//!    staking module's own messages (SelectiveSlashingEvidence) take 4 alone, never 1 to 3;
//!    its slashing is read by every vote (refused from its commit on) and adopted by the
//!    next close.
//!
//! CommitPubRandList reads the state row without a lock and takes only 3.
//!
//! - [`wire`]: protobuf fields to domain values, with a [`FieldError`] naming the field.
//! - [`errors`]: one error enum per operation and its gRPC status.
//! - [`store`]: the SQL of the finality tables (migration `0002_finality.sql`).
//! - [`messages`]: SubmitProof, CommitPubRandList, AddFinalitySig, EquivocationEvidence,
//!   UnjailVerifier.
//! - [`ingest`]: the common vote cheap: recent rounds' facts in memory, first votes batched.
//! - [`slashing`]: a slashed verifier, in the finality registry and in the staking module.
//! - [`closer`]: closing a round (verify, round hash, power table), tally, liveness; the timer.
//! - [`queries`]: rounds, verifiers, evidence, slashed verifiers.
//! - [`grpc`]: the `fiamma.finality.v1.Finality` service and its event stream.
//!
//! [`FieldError`]: crate::node::grpc::convert::FieldError

pub mod closer;
pub mod errors;
pub mod grpc;
mod ingest;
pub mod messages;
pub mod queries;
pub(crate) mod slashing;
pub mod store;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use fiamma_finality::rounds::{CommitmentRules, LivenessRules};
use fiamma_proto::finality::v1 as pb;
use fiamma_staking::context::SigningContexts;
use fiamma_staking::params::ResourceLimits;
use sqlx::PgPool;
use tokio::sync::broadcast;

use crate::node::checkpoint::Checkpoints;

/// Events kept for live subscribers that fall behind before they must re-read the store.
const EVENT_BUFFER: usize = 4096;

/// The finality parameters of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalityParams {
    /// How often the node closes a round.
    pub round_interval: Duration,
    /// For how many rounds after round h votes on h are accepted.
    pub vote_expiry: u64,
    /// The size cap of a round's active set.
    pub max_active_verifiers: u32,
    /// The rules for randomness commitments.
    pub commitment: CommitmentRules,
    /// Liveness jailing.
    pub liveness: LivenessRules,
    /// The resource limits of the latest params version (proof sizes, proofs per round).
    pub limits: ResourceLimits,
    /// For how many rounds after its close a round keeps its proof bytes for RoundProofs.
    pub proof_retention: u64,
}

/// The finality module: database pool, parameters, signing contexts and the live event feed.
/// Cheap to clone.
#[derive(Clone)]
pub struct FinalityModule {
    pub(crate) pool: PgPool,
    pub(crate) params: Arc<FinalityParams>,
    pub(crate) contexts: Arc<SigningContexts>,
    events: broadcast::Sender<pb::Event>,
    ingest: Arc<ingest::Ingest>,
    /// Bitcoin-checked checkpoints, when the node runs them.
    pub(crate) checkpoints: Option<Arc<Checkpoints>>,
}

impl FinalityModule {
    /// A module over `pool`, whose schema must be migrated (the staking module's migrations
    /// include the finality tables).
    pub fn new(pool: PgPool, params: FinalityParams, contexts: SigningContexts) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        FinalityModule {
            pool,
            params: Arc::new(params),
            contexts: Arc::new(contexts),
            events,
            ingest: Arc::default(),
            checkpoints: None,
        }
    }

    /// The same module running Bitcoin-checked checkpoints (`CHECKPOINTS.md`) with
    /// `checkpoints`.
    pub fn with_checkpoints(self, checkpoints: Checkpoints) -> Self {
        FinalityModule {
            checkpoints: Some(Arc::new(checkpoints)),
            ..self
        }
    }

    /// The same module (parameters, event feed, ingest state) working through `pool`: gives
    /// a task such as the round closer connections of its own.
    pub fn with_pool(&self, pool: PgPool) -> Self {
        FinalityModule {
            pool,
            ..self.clone()
        }
    }

    /// The parameters.
    pub fn params(&self) -> &FinalityParams {
        &self.params
    }

    /// The signing contexts votes and commitments are checked in.
    pub fn contexts(&self) -> &SigningContexts {
        &self.contexts
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A live feed of committed events (subscribers that lag re-read the store).
    pub fn subscribe(&self) -> broadcast::Receiver<pb::Event> {
        self.events.subscribe()
    }

    /// Publishes events that are committed.
    pub(crate) fn publish(&self, events: Vec<pb::Event>) {
        for e in events {
            // No subscriber is not an error: the events are in the store.
            let _ = self.events.send(e);
        }
    }
}
