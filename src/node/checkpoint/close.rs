//! Checkpoint rounds at the round close (§13.4, §13.6), inside the closing transaction:
//!
//! - [`on_round_closed`]: whether the new round h is a checkpoint round (scheduled, or a
//!   rotation round when the live part of the base set fell below 3/4), and if so its
//!   candidate on the current base: round h's set in output 0, its round hash in the payload;
//! - [`tally_checkpoint_rounds`]: the checkpoint votes of each round still signing, weighed
//!   both ways: final by §10 over round h's power (then the round is FINAL and its certificate
//!   lists the active-set signers), ready once also complete by the base set's weight (then
//!   the signed candidate is stored and announced).

use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use fiamma_finality::checkpoint::{
    build_candidate, CandidateSpec, CheckpointKind, CheckpointPayload, CheckpointRound,
    CheckpointSet, RoundKind,
};
use fiamma_finality::round::RoundHash;
use fiamma_finality::rounds::{Certificate, CertificateEntry, PowerTable};
use fiamma_proto::finality::v1 as pb;
use sqlx::PgConnection;

use super::store::{self, CheckpointRow};
use super::CheckpointSettings;
use crate::node::finality::store::{self as finality_store, to_i64, EventLog};
use crate::node::store::StoreError;

/// The payload state of a checkpoint: `checkpoint_state = none` (§13.4) publishes zeros.
pub const NO_STATE: [u8; 32] = [0; 32];

fn corrupt(reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        column: "checkpoint_rounds",
        reason: reason.into(),
    }
}

/// The wire kind of a round kind.
pub fn kind_to_pb(kind: RoundKind) -> pb::CheckpointKind {
    match kind {
        RoundKind::Ordinary => pb::CheckpointKind::None,
        RoundKind::Scheduled => pb::CheckpointKind::Scheduled,
        RoundKind::Rotation => pb::CheckpointKind::Rotation,
    }
}

/// The set round `round`'s power table gives (§13.2), from the store.
async fn set_of_round(conn: &mut PgConnection, round: u64) -> Result<CheckpointSet, StoreError> {
    let table = finality_store::power_table(conn, round).await?;
    CheckpointSet::from_power_table(&table)
        .map_err(|e| corrupt(format!("round {round} has no checkpoint set: {e}")))
}

/// Decides whether round `round` (closing now, with power table `table` and hash
/// `round_hash`) is a checkpoint round and stores its candidate. Returns its kind (NONE
/// before a genesis is registered, after the chain ended, or when the round's set is empty).
///
/// # Errors
/// [`StoreError`]; the caller's transaction is then rolled back.
pub async fn on_round_closed(
    conn: &mut PgConnection,
    settings: &CheckpointSettings,
    round: u64,
    round_hash: &RoundHash,
    table: &PowerTable,
) -> Result<pb::CheckpointKind, StoreError> {
    let Some(chain) = store::chain(&mut *conn).await? else {
        return Ok(pb::CheckpointKind::None);
    };
    if chain.ended.is_some() {
        return Ok(pb::CheckpointKind::None);
    }
    let base_set = set_of_round(&mut *conn, chain.base.round).await?;
    let kind = settings.rules.round_kind(
        round,
        chain.base.round,
        &base_set,
        |k| table.contains(k),
        chain.last_rotation,
    );
    if !kind.is_checkpoint() {
        return Ok(pb::CheckpointKind::None);
    }
    let next_set = match CheckpointSet::from_power_table(table) {
        Ok(set) => set,
        Err(e) => {
            tracing::warn!(round, error = %e, "checkpoint round without a set: no candidate");
            return Ok(pb::CheckpointKind::None);
        }
    };
    let candidate = match build_candidate(&CandidateSpec {
        base: chain.base.outpoint,
        base_round: chain.base.round,
        base_set: &base_set,
        next_set: &next_set,
        recovery: &settings.recovery,
        value: settings.value,
        payload: CheckpointPayload {
            kind: CheckpointKind::Quorum,
            round,
            round_hash: *round_hash,
            state: NO_STATE,
        },
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(round, error = %e, "no checkpoint candidate");
            return Ok(pb::CheckpointKind::None);
        }
    };
    let kind = kind_to_pb(kind);
    store::insert_checkpoint_round(
        &mut *conn,
        &CheckpointRow {
            round,
            kind,
            base: chain.base,
            candidate: candidate.tx,
            message: candidate.message.as_bytes().to_vec(),
            state: NO_STATE,
            base_weight: 0,
            signed_tx: None,
            status: pb::CheckpointStatus::Signing,
        },
    )
    .await?;
    if kind == pb::CheckpointKind::Rotation {
        store::set_last_rotation(&mut *conn, round).await?;
    }
    Ok(kind)
}

/// Checkpoint round `row` as the pure core holds it: its candidate rebuilt from the stored
/// base and round (and checked against the stored bytes), the base set and round h's table.
///
/// # Errors
/// [`StoreError::Corrupt`] when the rebuilt candidate is not the stored one.
pub async fn checkpoint_round(
    conn: &mut PgConnection,
    settings: &CheckpointSettings,
    row: &CheckpointRow,
) -> Result<CheckpointRound, StoreError> {
    let base_set = set_of_round(&mut *conn, row.base.round).await?;
    let table = finality_store::power_table(&mut *conn, row.round).await?;
    let next_set = CheckpointSet::from_power_table(&table)
        .map_err(|e| corrupt(format!("round {} has no checkpoint set: {e}", row.round)))?;
    let hash = finality_store::round(&mut *conn, row.round)
        .await?
        .ok_or_else(|| StoreError::Missing {
            what: format!("round {}", row.round),
        })?
        .round_hash;
    let candidate = build_candidate(&CandidateSpec {
        base: row.base.outpoint,
        base_round: row.base.round,
        base_set: &base_set,
        next_set: &next_set,
        recovery: &settings.recovery,
        value: settings.value,
        payload: CheckpointPayload {
            kind: CheckpointKind::Quorum,
            round: row.round,
            round_hash: RoundHash(hash),
            state: row.state,
        },
    })
    .map_err(|e| corrupt(format!("round {}: {e}", row.round)))?;
    if serialize(&candidate.tx) != serialize(&row.candidate) {
        return Err(corrupt(format!(
            "round {}: the stored candidate is not the one its base and round give",
            row.round
        )));
    }
    Ok(CheckpointRound {
        candidate,
        base_set,
        table,
    })
}

/// Tallies the checkpoint rounds still signing whose votes are accepted at `latest_round`
/// (those from `latest_round − vote_expiry` on); returns the rounds that became final.
///
/// # Errors
/// [`StoreError`]; the caller's transaction is then rolled back.
pub async fn tally_checkpoint_rounds(
    conn: &mut PgConnection,
    settings: &CheckpointSettings,
    log: &mut EventLog,
    latest_round: u64,
) -> Result<Vec<u64>, StoreError> {
    let oldest = latest_round.saturating_sub(settings.rules.vote_expiry);
    let mut finalized = Vec::new();
    for row in store::signing_rounds(&mut *conn).await? {
        if row.round < oldest {
            continue;
        }
        let round = checkpoint_round(&mut *conn, settings, &row).await?;
        let votes = store::votes_of_round(&mut *conn, row.round).await?;
        let tally = round.tally(votes.iter().map(|(v, _)| v));
        let voted = u64::try_from(tally.voted_power).unwrap_or(u64::MAX);
        let closed = finality_store::round(&mut *conn, row.round)
            .await?
            .ok_or_else(|| StoreError::Missing {
                what: format!("round {}", row.round),
            })?;
        let status = closed.status.as_str();
        if status == "OPEN" && tally.is_final() {
            let mut entries: Vec<CertificateEntry> = votes
                .iter()
                .filter(|(v, _)| round.table.contains(&v.voter))
                .map(|(v, _)| CertificateEntry {
                    verifier: v.voter,
                    public_randomness: v.public_randomness,
                    signature: v.signature,
                })
                .collect();
            entries.sort_by_key(|e| e.verifier.serialize());
            let certificate = Certificate {
                round: row.round,
                round_hash: closed.round_hash,
                entries,
            };
            sqlx::query(
                "UPDATE rounds SET status = 'FINAL', voted_power = $2, certificate = $3 \
                 WHERE round = $1",
            )
            .bind(to_i64("round", row.round)?)
            .bind(to_i64("voted_power", voted)?)
            .bind(certificate.encode())
            .execute(&mut *conn)
            .await?;
            log.push(pb::event::Kind::RoundFinal(pb::RoundFinal {
                round: row.round,
                round_hash: certificate.round_hash.to_vec(),
                voted_power_sat: voted,
                total_power_sat: u64::try_from(tally.total_power).unwrap_or(u64::MAX),
                certificate_digest: certificate.digest().to_vec(),
            }));
            finalized.push(row.round);
        } else if status == "OPEN" {
            sqlx::query("UPDATE rounds SET voted_power = $2 WHERE round = $1")
                .bind(to_i64("round", row.round)?)
                .bind(to_i64("voted_power", voted)?)
                .execute(&mut *conn)
                .await?;
        }
        let base_weight = round
            .base_set
            .signed_weight(votes.iter().map(|(v, _)| &v.voter));
        let signed = match (&tally.complete, tally.is_ready()) {
            (Some(complete), true) => Some(round.signed_transaction(complete)),
            _ => None,
        };
        store::record_tally(&mut *conn, row.round, base_weight, signed.as_ref()).await?;
        if let Some(tx) = signed {
            log.push(pb::event::Kind::CheckpointReady(pb::CheckpointReady {
                round: row.round,
                txid: tx.compute_txid().to_byte_array().to_vec(),
            }));
        }
    }
    Ok(finalized)
}
