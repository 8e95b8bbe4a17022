//! A slashed verifier (`PROTOCOL.md` §11): SLASHED in the finality registry (no power from
//! the next round on), the evidence and extracted key recorded, and the verifier marked slashed
//! in the staking module in the same transaction.
//!
//! The staking store has no entry point that joins another module's transaction, so the
//! staking side is written here with the staking module's own rules: the staking writer lock
//! (the `node_state` row) is taken first, `verifiers.slashed_height` is set to the node's BTC
//! tip with reason `equivocation`, the key goes to `slashing_evidence` (where the slasher
//! looks), and a `verifier_slashed` event is appended to the staking event log with the next
//! sequence number.

use bitcoin::consensus::deserialize;
use bitcoin::secp256k1::{SecretKey, XOnlyPublicKey};
use bitcoin::Transaction;
use fiamma_finality::rounds::{
    selective_slashing, LivenessRules, SlashError, Slashing, SlashingEvidence, VerifierRecord,
    Verifiers,
};
use fiamma_proto::finality::v1 as pb;
use prost::Message;
use sqlx::{PgConnection, Row};

use super::errors::CloseRoundError;
use super::store::{self, to_i64, EventLog, Lock};
use super::wire::{checkpoint_equivocation_to_pb, vote_to_pb};
use crate::node::store::{SlashingReason, StoreError};

/// Applies `slashing` inside the caller's transaction. `record` is the verifier's finality
/// record, already loaded and locked by the caller (`None` when it has none). Returns the
/// finality events to publish after the commit.
pub(crate) async fn apply<E>(
    conn: &mut PgConnection,
    slashing: &Slashing,
    record: Option<VerifierRecord>,
    rules: &LivenessRules,
) -> Result<Vec<pb::Event>, E>
where
    E: From<SlashError> + From<StoreError>,
{
    let pk = slashing.verifier;
    let position = store::position(&mut *conn, Lock::Update).await?;
    let record = match record {
        Some(r) => Some(r),
        None => {
            store::ensure_verifier(&mut *conn, &pk).await?;
            store::verifier_record(&mut *conn, &pk, store::Commitments::None, rules).await?
        }
    };
    let mut registry = Verifiers::new();
    if let Some(record) = record {
        registry.restore(pk, record);
    }
    registry.slash(slashing, position.latest_round)?;
    if let Some(record) = registry.get(&pk) {
        store::save_record(&mut *conn, &pk, record).await?;
    }
    let secret_key = slashing.secret_key.secret_bytes();
    let (reason, round, first, second, checkpoint) = match &slashing.evidence {
        SlashingEvidence::Equivocation(e) => (
            SlashingReason::Equivocation,
            Some(to_i64("round", e.first.round)?),
            Some(vote_to_pb(&e.first).encode_to_vec()),
            Some(vote_to_pb(&e.second).encode_to_vec()),
            None,
        ),
        SlashingEvidence::Checkpoint(e) => (
            SlashingReason::Equivocation,
            Some(to_i64("round", e.round)?),
            None,
            None,
            Some(checkpoint_equivocation_to_pb(e).encode_to_vec()),
        ),
        SlashingEvidence::SelectiveSlashing { .. } => {
            (SlashingReason::SelectiveSlashing, None, None, None, None)
        }
    };
    sqlx::query(
        "INSERT INTO slashing_records (verifier, reason, round, first_vote, second_vote, \
         checkpoint_evidence, secret_key, slashed_in_round) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(pk.serialize().as_slice())
    .bind(reason.as_str())
    .bind(round)
    .bind(first)
    .bind(second)
    .bind(checkpoint)
    .bind(secret_key.as_slice())
    .bind(to_i64("slashed_in_round", position.latest_round)?)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    mark_in_staking(&mut *conn, &pk, reason, &secret_key).await?;
    let mut log = EventLog::after(&position);
    log.push(pb::event::Kind::VerifierSlashed(pb::VerifierSlashed {
        verifier_btc_pk: pk.serialize().to_vec(),
        round: position.latest_round,
        extracted_secret_key: secret_key.to_vec(),
    }));
    Ok(log.write(conn).await?)
}

/// Verifiers the staking module slashed on selective slashing evidence (PROTOCOL §11) that the
/// finality registry has not slashed yet: each becomes SLASHED here too, with the key the
/// staking module recorded, through [`apply`] (whose staking side then finds nothing to do).
/// Runs under the finality writer lock; returns the finality events to publish after commit.
pub(super) async fn adopt_selective_slashings(
    conn: &mut PgConnection,
    rules: &LivenessRules,
) -> Result<Vec<pb::Event>, CloseRoundError> {
    let rows = sqlx::query(
        "SELECT v.btc_pk, e.secret_key, d.slashing_tx FROM verifiers v \
         JOIN slashing_evidence e ON e.verifier_btc_pk = v.btc_pk \
         JOIN delegations d ON d.staking_txid = e.staking_txid \
         LEFT JOIN slashing_records r ON r.verifier = v.btc_pk \
         WHERE v.slashing_reason = $1 AND r.verifier IS NULL ORDER BY v.btc_pk",
    )
    .bind(SlashingReason::SelectiveSlashing.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    let corrupt = |column: &'static str, reason: String| StoreError::Corrupt { column, reason };
    let mut events = Vec::new();
    for row in &rows {
        let pk = store::xonly(
            "verifiers.btc_pk",
            row.try_get("btc_pk").map_err(StoreError::from)?,
        )?;
        let key: Vec<u8> = row.try_get("secret_key").map_err(StoreError::from)?;
        let key = SecretKey::from_slice(&key)
            .map_err(|e| corrupt("slashing_evidence.secret_key", e.to_string()))?;
        let tx: Vec<u8> = row.try_get("slashing_tx").map_err(StoreError::from)?;
        let slashing_tx: Transaction =
            deserialize(&tx).map_err(|e| corrupt("delegations.slashing_tx", e.to_string()))?;
        let slashing = selective_slashing(&pk, key, slashing_tx.compute_txid())
            .map_err(|e| corrupt("slashing_evidence.secret_key", e.to_string()))?;
        events.extend(apply::<CloseRoundError>(&mut *conn, &slashing, None, rules).await?);
    }
    Ok(events)
}

/// Marks `pk` slashed in the staking module, unless it is already.
async fn mark_in_staking(
    conn: &mut PgConnection,
    pk: &XOnlyPublicKey,
    reason: SlashingReason,
    secret_key: &[u8; 32],
) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT tip_height, last_event_seq FROM node_state FOR UPDATE")
        .fetch_one(&mut *conn)
        .await?;
    let tip: i32 = row.try_get("tip_height")?;
    let last_seq: i64 = row.try_get("last_event_seq")?;
    let updated = sqlx::query(
        "UPDATE verifiers SET slashed_height = $2, slashing_reason = $3 \
         WHERE btc_pk = $1 AND slashed_height IS NULL",
    )
    .bind(pk.serialize().as_slice())
    .bind(tip)
    .bind(reason.as_str())
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO slashing_evidence (verifier_btc_pk, staking_txid, secret_key, btc_height) \
         VALUES ($1, NULL, $2, $3) ON CONFLICT (verifier_btc_pk) DO NOTHING",
    )
    .bind(pk.serialize().as_slice())
    .bind(secret_key.as_slice())
    .bind(tip)
    .execute(&mut *conn)
    .await?;
    let seq = last_seq + 1;
    sqlx::query(
        "INSERT INTO events (sequence, kind, staking_txid, verifier_btc_pk, btc_height, reason) \
         VALUES ($1, 'verifier_slashed', NULL, $2, $3, $4)",
    )
    .bind(seq)
    .bind(pk.serialize().as_slice())
    .bind(tip)
    .bind(reason.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE node_state SET last_event_seq = $1")
        .bind(seq)
        .execute(conn)
        .await?;
    Ok(())
}
