//! Closing rounds (`PROTOCOL.md` §10–11), in one transaction under the finality writer lock:
//!
//! 1. tally every OPEN round by power ([`tally`]); one that passes 2/3 becomes FINAL with its
//!    certificate (fixed from then on);
//! 2. rounds whose votes expire with the new round become EXPIRED if not final, and their
//!    active members' liveness is recorded ([`Verifiers::record_round`]), jailing those that
//!    missed too many;
//! 3. the new round: the pending proofs with the verdicts computed when they were submitted
//!    (nothing is verified under the lock), the round hash over the results chained to the
//!    previous one, and the power table of the round from the staking module's ACTIVE
//!    delegations and the finality registry;
//! 4. the proof bytes of the round `proof_retention` rounds back are dropped (ids and
//!    verdicts stay).
//!
//! [`FinalityModule::close_round`] does it once (tests call it directly);
//! [`spawn_round_closer`] does it every `round_interval`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_finality::merkle::Digest;
use fiamma_finality::round::{round_hash, RoundHash, RoundResult};
use fiamma_finality::rounds::{tally, PowerTable, Verifiers};
use fiamma_finality::zk::{ProofId, ProofSystem, Verdict, ZkProof};
use fiamma_proto::finality::v1 as pb;
use sqlx::{PgConnection, Row};
use tokio::task::JoinHandle;

use super::errors::CloseRoundError;
use super::store::{self, to_i64, to_u64, EventLog, Lock};
use super::{slashing, FinalityModule};
use crate::node::checkpoint::close::{on_round_closed, tally_checkpoint_rounds};
use crate::node::checkpoint::store as checkpoint_store;
use crate::node::health::NodeHealth;
use crate::node::store::StoreError;

/// What closing a round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundClosed {
    /// The new round.
    pub round: u64,
    /// Its round hash.
    pub round_hash: Digest,
    /// The verdicts, in submission order.
    pub results: Vec<RoundResult>,
    /// Its active set and their powers.
    pub active_set: Vec<(XOnlyPublicKey, u64)>,
    /// Earlier rounds that became final in this step.
    pub finalized: Vec<u64>,
    /// Verifiers jailed in this step.
    pub jailed: Vec<XOnlyPublicKey>,
}

fn corrupt(column: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        column,
        reason: reason.into(),
    }
}

impl FinalityModule {
    /// Closes the next round now (see the module docs).
    ///
    /// # Errors
    /// [`CloseRoundError`]; nothing is written on error.
    pub async fn close_round(&self) -> Result<RoundClosed, CloseRoundError> {
        self.verify_unverified_pending().await?;
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        store::position(&mut tx, Lock::Update).await?;
        // Slashings adopted from the staking module write their own events, so the position
        // (and this round's event log) is read after them.
        let mut adopted =
            slashing::adopt_selective_slashings(&mut tx, &self.params.liveness).await?;
        let position = store::position(&mut tx, Lock::Update).await?;
        let round = position
            .latest_round
            .checked_add(1)
            .ok_or(CloseRoundError::RoundOverflow(position.latest_round))?;
        let mut log = EventLog::after(&position);
        let finalized = self.tally(&mut tx, &mut log, position.latest_round).await?;

        let loaded = store::all_records(&mut tx, round, &self.params.liveness).await?;
        let mut registry = Verifiers::new();
        for (pk, record) in loaded.iter().cloned() {
            registry.restore(pk, record);
        }
        let jailed = self
            .expire_rounds(&mut tx, &mut registry, &mut log, round)
            .await?;

        let (last_seq, results) = pending_results(&mut tx).await?;
        let hash = round_hash(round, &RoundHash(position.latest_hash), &results);
        let powers = staking_powers(&mut tx).await?;
        let table = registry.power_table(round, &powers, self.params.max_active_verifiers);
        insert_round(
            &mut tx,
            round,
            &hash,
            &position.latest_hash,
            &results,
            &table,
        )
        .await?;
        let checkpoint = match &self.checkpoints {
            Some(c) => on_round_closed(&mut tx, &c.settings, round, &hash, &table).await?,
            None => pb::CheckpointKind::None,
        };
        if let Some(last_seq) = last_seq {
            sqlx::query("DELETE FROM pending_proofs WHERE seq <= $1")
                .bind(last_seq)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        }
        // Every pending proof is in this round: no submission holds the shared lock now.
        sqlx::query("UPDATE pending_budget SET proofs = 0, bytes = 0")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        if let Some(through) = round.checked_sub(self.params.proof_retention) {
            store::drop_proof_bytes(&mut tx, through).await?;
        }
        for (pk, before) in &loaded {
            if let Some(after) = registry.get(pk).filter(|after| *after != before) {
                store::save_record(&mut tx, pk, after).await?;
            }
        }
        sqlx::query("UPDATE finality_state SET latest_round = $1, latest_hash = $2")
            .bind(to_i64("latest_round", round)?)
            .bind(hash.as_bytes().as_slice())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        let active_set: Vec<(XOnlyPublicKey, u64)> =
            table.members().map(|(k, p)| (*k, p)).collect();
        log.push(pb::event::Kind::RoundClosed(pb::RoundClosed {
            round,
            round_hash: hash.as_bytes().to_vec(),
            proofs: u32::try_from(results.len()).unwrap_or(u32::MAX),
            active_verifiers: u32::try_from(active_set.len()).unwrap_or(u32::MAX),
            total_power_sat: u64::try_from(table.total_power()).unwrap_or(u64::MAX),
            checkpoint: checkpoint as i32,
        }));
        adopted.extend(log.write(&mut tx).await?);
        tx.commit().await.map_err(StoreError::from)?;
        self.publish(adopted);
        Ok(RoundClosed {
            round,
            round_hash: hash.0,
            results,
            active_set,
            finalized,
            jailed,
        })
    }

    /// Verifies the pending proofs that have no verdict (submitted before verdicts were
    /// computed on submission) and stores their verdicts, outside the finality lock. Does
    /// nothing, in one query, when there are none.
    async fn verify_unverified_pending(&self) -> Result<(), CloseRoundError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let rows = sqlx::query(
            "SELECT proof_id, proof_system, verifying_key, proof, public_inputs \
             FROM pending_proofs WHERE valid IS NULL",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        let mut proofs = Vec::with_capacity(rows.len());
        for row in &rows {
            let code: i16 = row.try_get("proof_system").map_err(StoreError::from)?;
            let system = u8::try_from(code)
                .ok()
                .and_then(|c| ProofSystem::try_from(c).ok())
                .ok_or_else(|| corrupt("pending_proofs.proof_system", format!("code {code}")))?;
            let proof = ZkProof::new(
                system,
                row.try_get("verifying_key").map_err(StoreError::from)?,
                row.try_get("proof").map_err(StoreError::from)?,
                row.try_get("public_inputs").map_err(StoreError::from)?,
            )
            .map_err(|e| corrupt("pending_proofs", e.to_string()))?;
            proofs.push(proof);
        }
        if proofs.is_empty() {
            return Ok(());
        }
        let verdicts = tokio::task::spawn_blocking(move || {
            proofs
                .iter()
                .map(|p| (p.proof_id(), p.round_verdict()))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| CloseRoundError::Verification(e.to_string()))?;
        for (id, verdict) in verdicts {
            sqlx::query("UPDATE pending_proofs SET valid = $2 WHERE proof_id = $1")
                .bind(id.as_bytes().as_slice())
                .bind(verdict.is_valid())
                .execute(&mut *conn)
                .await
                .map_err(StoreError::from)?;
        }
        Ok(())
    }

    /// Tallies the OPEN rounds now, without closing a new one; returns the rounds that became
    /// final.
    ///
    /// # Errors
    /// [`CloseRoundError`]; nothing is written on error.
    pub async fn tally_now(&self) -> Result<Vec<u64>, CloseRoundError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let position = store::position(&mut tx, Lock::Update).await?;
        let mut log = EventLog::after(&position);
        let finalized = self.tally(&mut tx, &mut log, position.latest_round).await?;
        let events = log.write(&mut tx).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.publish(events);
        Ok(finalized)
    }

    /// Tallies the OPEN rounds by their §10 votes and the checkpoint rounds still signing by
    /// their checkpoint votes, at `latest_round`; returns the rounds that became final.
    async fn tally(
        &self,
        conn: &mut PgConnection,
        log: &mut EventLog,
        latest_round: u64,
    ) -> Result<Vec<u64>, CloseRoundError> {
        let mut finalized = tally_open_rounds(&mut *conn, log).await?;
        if let Some(c) = &self.checkpoints {
            finalized
                .extend(tally_checkpoint_rounds(&mut *conn, &c.settings, log, latest_round).await?);
            finalized.sort_unstable();
        }
        Ok(finalized)
    }

    /// Rounds whose votes are no longer accepted once `new_round` is the latest: not final
    /// ones become EXPIRED, and the liveness of their members is recorded. Returns the
    /// verifiers jailed.
    ///
    /// Every vote holds the finality state row `FOR SHARE` from its check to its commit and
    /// this runs under `FOR UPDATE` of it, so the votes read here are every vote the round
    /// will ever have: a vote answered COUNTED is recorded as signed, and one arriving after
    /// this commit is refused as expired.
    async fn expire_rounds(
        &self,
        conn: &mut PgConnection,
        registry: &mut Verifiers,
        log: &mut EventLog,
        new_round: u64,
    ) -> Result<Vec<XOnlyPublicKey>, CloseRoundError> {
        // Votes on h are accepted while latest_round <= h + vote_expiry.
        let Some(last_expired) = new_round.checked_sub(self.params.vote_expiry.saturating_add(1))
        else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT round, round_hash FROM rounds WHERE NOT liveness_done AND round <= $1 ORDER BY round",
        )
        .bind(to_i64("round", last_expired)?)
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        let mut jailed = Vec::new();
        for row in &rows {
            let round = to_u64("round", row.try_get("round").map_err(StoreError::from)?)?;
            let hash = store::digest(
                "round_hash",
                row.try_get("round_hash").map_err(StoreError::from)?,
            )?;
            let table = store::power_table(&mut *conn, round).await?;
            // Agreeing §10 votes, or checkpoint votes on a checkpoint round (whose §10 votes
            // are recorded as not agreeing).
            let mut signers: BTreeSet<XOnlyPublicKey> = store::votes_of_round(&mut *conn, round)
                .await?
                .into_iter()
                .filter(|(v, agrees)| *agrees && v.round_hash == hash)
                .map(|(v, _)| v.voter)
                .collect();
            signers.extend(checkpoint_store::signers(&mut *conn, round).await?);
            for pk in registry.record_round(&table, &signers, &self.params.liveness) {
                log.push(pb::event::Kind::VerifierJailed(pb::VerifierJailed {
                    verifier_btc_pk: pk.serialize().to_vec(),
                    round,
                }));
                jailed.push(pk);
            }
            sqlx::query(
                "UPDATE rounds SET liveness_done = TRUE, \
                 status = CASE WHEN status = 'OPEN' THEN 'EXPIRED' ELSE status END WHERE round = $1",
            )
            .bind(to_i64("round", round)?)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from)?;
        }
        Ok(jailed)
    }
}

/// Tallies every OPEN round; a final one gets its certificate and a RoundFinal event.
async fn tally_open_rounds(
    conn: &mut PgConnection,
    log: &mut EventLog,
) -> Result<Vec<u64>, CloseRoundError> {
    let mut finalized = Vec::new();
    for round in store::open_rounds(&mut *conn).await? {
        // A checkpoint round is tallied by its checkpoint votes.
        if round.checkpoint != pb::CheckpointKind::None {
            continue;
        }
        let table = store::power_table(&mut *conn, round.round).await?;
        let votes = store::votes_of_round(&mut *conn, round.round).await?;
        let t = tally(&table, &round.round_hash, votes.iter().map(|(v, _)| v));
        let voted = to_i64(
            "voted_power",
            u64::try_from(t.voted_power).unwrap_or(u64::MAX),
        )?;
        match t.certificate() {
            Some(certificate) => {
                sqlx::query(
                    "UPDATE rounds SET status = 'FINAL', voted_power = $2, certificate = $3 \
                     WHERE round = $1",
                )
                .bind(to_i64("round", round.round)?)
                .bind(voted)
                .bind(certificate.encode())
                .execute(&mut *conn)
                .await
                .map_err(StoreError::from)?;
                log.push(pb::event::Kind::RoundFinal(pb::RoundFinal {
                    round: round.round,
                    round_hash: round.round_hash.to_vec(),
                    voted_power_sat: u64::try_from(t.voted_power).unwrap_or(u64::MAX),
                    total_power_sat: u64::try_from(t.total_power).unwrap_or(u64::MAX),
                    certificate_digest: certificate.digest().to_vec(),
                }));
                finalized.push(round.round);
            }
            None => {
                sqlx::query("UPDATE rounds SET voted_power = $2 WHERE round = $1")
                    .bind(to_i64("round", round.round)?)
                    .bind(voted)
                    .execute(&mut *conn)
                    .await
                    .map_err(StoreError::from)?;
            }
        }
    }
    Ok(finalized)
}

/// The results of the pending proofs in submission order, from their stored verdicts, and
/// the last sequence number among them.
async fn pending_results(
    conn: &mut PgConnection,
) -> Result<(Option<i64>, Vec<RoundResult>), StoreError> {
    let rows = sqlx::query("SELECT seq, proof_id, valid FROM pending_proofs ORDER BY seq")
        .fetch_all(conn)
        .await?;
    let mut last = None;
    let mut results = Vec::with_capacity(rows.len());
    for row in &rows {
        last = Some(row.try_get::<i64, _>("seq")?);
        let id = store::digest("pending_proofs.proof_id", row.try_get("proof_id")?)?;
        // Every proof got its verdict on submission or in `verify_unverified_pending`.
        let valid: bool = row
            .try_get::<Option<bool>, _>("valid")?
            .ok_or_else(|| corrupt("pending_proofs.valid", "no verdict"))?;
        results.push(RoundResult {
            proof_id: ProofId(id),
            verdict: if valid {
                Verdict::Valid
            } else {
                Verdict::Invalid
            },
        });
    }
    Ok((last, results))
}

/// Each verifier's voting power from the staking module: the sum of its ACTIVE delegations'
/// values, for verifiers the staking module has not slashed.
pub async fn staking_powers(
    conn: &mut PgConnection,
) -> Result<BTreeMap<XOnlyPublicKey, u64>, StoreError> {
    let rows = sqlx::query(
        "SELECT d.verifier_btc_pk, SUM(d.staking_value_sat)::BIGINT AS power \
         FROM delegations d JOIN verifiers v ON v.btc_pk = d.verifier_btc_pk \
         WHERE d.status = 'ACTIVE' AND v.slashed_height IS NULL \
         GROUP BY d.verifier_btc_pk",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                store::xonly("verifier_btc_pk", r.try_get("verifier_btc_pk")?)?,
                to_u64("power", r.try_get("power")?)?,
            ))
        })
        .collect()
}

async fn insert_round(
    conn: &mut PgConnection,
    round: u64,
    hash: &RoundHash,
    prev: &Digest,
    results: &[RoundResult],
    table: &PowerTable,
) -> Result<(), CloseRoundError> {
    let r = to_i64("round", round)?;
    let total = to_i64(
        "total_power",
        u64::try_from(table.total_power()).unwrap_or(u64::MAX),
    )?;
    sqlx::query(
        "INSERT INTO rounds (round, round_hash, prev_round_hash, status, total_power) \
         VALUES ($1, $2, $3, 'OPEN', $4)",
    )
    .bind(r)
    .bind(hash.as_bytes().as_slice())
    .bind(prev.as_slice())
    .bind(total)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    sqlx::query(
        "INSERT INTO round_results (round, position, proof_id, valid, proof_system, \
         verifying_key, proof, public_inputs) \
         SELECT $1, p.position - 1, p.seq_proof_id, p.valid, s.proof_system, s.verifying_key, \
                s.proof, s.public_inputs \
         FROM UNNEST($2::BYTEA[], $3::BOOLEAN[]) WITH ORDINALITY AS p(seq_proof_id, valid, position) \
         JOIN pending_proofs s ON s.proof_id = p.seq_proof_id",
    )
    .bind(r)
    .bind(results.iter().map(|x| x.proof_id.as_bytes().to_vec()).collect::<Vec<_>>())
    .bind(results.iter().map(|x| x.verdict.is_valid()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    for (pk, power) in table.members() {
        sqlx::query("INSERT INTO round_members (round, verifier, power) VALUES ($1, $2, $3)")
            .bind(r)
            .bind(pk.serialize().as_slice())
            .bind(to_i64("power", power)?)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from)?;
    }
    Ok(())
}

/// Closes a round every `round_interval` until `shutdown` completes. A failed close is logged
/// and retried at the next tick (it wrote nothing).
pub fn spawn_round_closer(
    module: FinalityModule,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    spawn_round_closer_with_health(module, NodeHealth::new(), shutdown)
}

/// [`spawn_round_closer`], skipping every close while `health` is NOT_SERVING (a reorg deeper
/// than k or a dead Bitcoin backend): the stake table would be frozen or wrong.
pub fn spawn_round_closer_with_health(
    module: FinalityModule,
    health: NodeHealth,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(module.params.round_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once; a round closes one interval after start.
        ticks.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if let Some(reason) = health.not_serving_reason() {
                        tracing::warn!(%reason, "node not serving: round not closed");
                        continue;
                    }
                    match module.close_round().await {
                        Ok(c) => tracing::info!(
                            round = c.round,
                            proofs = c.results.len(),
                            active = c.active_set.len(),
                            finalized = ?c.finalized,
                            "round closed"
                        ),
                        Err(e) => tracing::error!(error = %e, "closing a round failed"),
                    }
                }
                () = &mut shutdown => return,
            }
        }
    })
}
