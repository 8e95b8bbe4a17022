//! What makes the common AddFinalitySig cheap: a first vote on a recent round.
//!
//! - [`RoundCache`]: the facts of recent closed rounds every vote is checked against, kept in
//!   memory: a closed round's hash, active set and its members' covering commitments never
//!   change ([`store::RoundFacts`]), so such a vote needs no read at all.
//! - [`VoteWriter`]: first votes that arrive at about the same time are stored by one
//!   transaction ([`store::insert_first_votes`]) under the shared finality lock, so they share
//!   its round trips and one WAL flush, and no round close falls between their check and
//!   their commit; each vote is still all or nothing, and its sender gets its answer after
//!   the commit.
//!
//! The cache is bounded: only rounds that still take votes are kept (the newest
//! [`MAX_ROUNDS`] of them at most), each as large as its active set. A round is read once however many votes for it
//! arrive at the same time; a round that is not closed is not remembered, so votes for made-up
//! rounds leave nothing behind, and a vote for a round too old to be kept is not served here
//! (it would cost reading the whole active set for one vote).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, OnceCell, OwnedSemaphorePermit, Semaphore};

use super::store::{self, FirstVote, RoundFacts};
use crate::node::store::StoreError;

/// The round cache and the vote writer of one finality module.
#[derive(Default)]
pub struct Ingest {
    /// Recent rounds' facts.
    pub rounds: RoundCache,
    /// Batched first votes.
    pub writer: VoteWriter,
}

/// The most rounds kept, whatever `vote_expiry` is.
pub const MAX_ROUNDS: usize = 64;

type Slot = Arc<OnceCell<Arc<RoundFacts>>>;

/// Why a slot stayed empty.
enum Miss {
    NotClosed,
    Store(StoreError),
}

/// Recent rounds' [`RoundFacts`], shared by every AddFinalitySig.
#[derive(Default)]
pub struct RoundCache {
    rounds: Mutex<BTreeMap<u64, Slot>>,
    /// The latest closed round seen in any read (it only grows).
    latest_seen: AtomicU64,
}

/// Whether `round` is worth keeping once `latest_round` is the latest closed round: it still
/// takes votes (while latest_round <= round + vote_expiry) and is among the newest
/// [`MAX_ROUNDS`].
fn keeps(round: u64, latest_round: u64, vote_expiry: u64) -> bool {
    let window = vote_expiry.min(MAX_ROUNDS as u64 - 1);
    round.saturating_add(window) >= latest_round
}

impl RoundCache {
    /// The facts of `round`, read from `pool` unless kept; `None` when it is not closed, or too
    /// old to be kept (the caller checks such a vote in a transaction).
    ///
    /// # Errors
    /// [`StoreError`] when reading failed (nothing is kept then).
    pub async fn round(
        &self,
        pool: &PgPool,
        round: u64,
        vote_expiry: u64,
    ) -> Result<Option<Arc<RoundFacts>>, StoreError> {
        if !keeps(round, self.latest_seen.load(Ordering::Relaxed), vote_expiry) {
            return Ok(None);
        }
        let slot = self.slots().entry(round).or_default().clone();
        let loaded = slot
            .get_or_try_init(|| async {
                match store::round_facts(pool, round).await {
                    Ok(Some(facts)) => Ok(Arc::new(facts)),
                    Ok(None) => Err(Miss::NotClosed),
                    Err(e) => Err(Miss::Store(e)),
                }
            })
            .await
            .cloned();
        match loaded {
            Ok(facts) => {
                let before = self
                    .latest_seen
                    .fetch_max(facts.latest_round, Ordering::Relaxed);
                if facts.latest_round > before {
                    self.evict(facts.latest_round, vote_expiry);
                }
                if !keeps(round, facts.latest_round, vote_expiry) {
                    self.slots().remove(&round);
                    return Ok(None);
                }
                Ok(Some(facts))
            }
            Err(miss) => {
                let mut slots = self.slots();
                if slots
                    .get(&round)
                    .is_some_and(|s| Arc::ptr_eq(s, &slot) && !s.initialized())
                {
                    slots.remove(&round);
                }
                match miss {
                    Miss::NotClosed => Ok(None),
                    Miss::Store(e) => Err(e),
                }
            }
        }
    }

    /// Drops the rounds not worth keeping once `latest_round` is the latest.
    fn evict(&self, latest_round: u64, vote_expiry: u64) {
        self.slots()
            .retain(|round, _| keeps(*round, latest_round, vote_expiry));
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Slot>> {
        // The map is consistent after any panic (single inserts and removals).
        self.rounds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Votes waiting for the writer at most; senders wait beyond (back pressure).
const QUEUE: usize = 8192;
/// The most votes in one statement.
const MAX_BATCH: usize = 512;
/// Statements in flight at once: while they wait for their commit, the next votes gather.
const WRITERS: usize = 2;

struct Pending {
    vote: FirstVote,
    stored: oneshot::Sender<bool>,
}

/// Stores first votes in batches: whatever votes are waiting when a writer is free go in one
/// statement. Started on first use, on the runtime of that use; it stops when the module is
/// dropped.
#[derive(Default)]
pub struct VoteWriter {
    queue: OnceLock<mpsc::Sender<Pending>>,
}

impl VoteWriter {
    /// Stores `vote` (see [`store::insert_first_votes`]) with the votes sent at about the same
    /// time; returns whether it was stored once that is committed. `false` also when the
    /// statement failed (nothing of it was applied; the caller decides the vote in a
    /// transaction, which reports the failure if it persists).
    pub async fn store(&self, pool: &PgPool, vote: FirstVote) -> bool {
        let queue = self.queue.get_or_init(|| spawn_writer(pool.clone()));
        let (stored, answer) = oneshot::channel();
        if queue.send(Pending { vote, stored }).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

fn spawn_writer(pool: PgPool) -> mpsc::Sender<Pending> {
    let (queue, mut waiting) = mpsc::channel::<Pending>(QUEUE);
    let writers = Arc::new(Semaphore::new(WRITERS));
    tokio::spawn(async move {
        loop {
            // A free writer first, then the votes: those arriving while every writer waits
            // for its commit all go in the next batch.
            let Ok(permit) = writers.clone().acquire_owned().await else {
                return;
            };
            let Some(first) = waiting.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match waiting.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            tokio::spawn(write(pool.clone(), batch, permit));
        }
    });
    queue
}

async fn write(pool: PgPool, batch: Vec<Pending>, _permit: OwnedSemaphorePermit) {
    let votes: Vec<FirstVote> = batch.iter().map(|p| p.vote.clone()).collect();
    let stored = match store::insert_first_votes(&pool, &votes).await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!(error = %e, votes = votes.len(), "storing a batch of votes failed; each is retried on its own");
            vec![false; votes.len()]
        }
    };
    for (p, stored) in batch.into_iter().zip(stored) {
        // A sender that went away (its request was cancelled) needs no answer.
        let _ = p.stored.send(stored);
    }
}
