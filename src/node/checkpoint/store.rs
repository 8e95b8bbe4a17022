//! The SQL of the checkpoint tables (`migrations/0007_checkpoints.sql`). Functions take a
//! connection, so they run inside the caller's transaction; none of them commits.

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{OutPoint, Transaction, Txid};
use fiamma_finality::checkpoint::CheckpointVote;
use fiamma_finality::eots::{PublicRandomness, Signature};
use fiamma_finality::merkle::{Digest, Proof};
use fiamma_proto::finality::v1 as pb;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::node::finality::store::{digest, proof_from_row, to_i64, to_u64, xonly};
use crate::node::store::StoreError;

fn corrupt(column: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        column,
        reason: reason.into(),
    }
}

fn to_i32(column: &'static str, value: u32) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| StoreError::OutOfRange {
        column,
        value: value.to_string(),
    })
}

fn to_u32(column: &'static str, value: i32) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt(column, format!("negative value {value}")))
}

/// A confirmed checkpoint output: the genesis, or output 0 of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainOutput {
    /// The output.
    pub outpoint: OutPoint,
    /// The round whose set it encodes.
    pub round: u64,
    /// The block of its transaction.
    pub height: u32,
    /// 0 for the genesis, else the payload kind byte.
    pub kind: u8,
}

impl ChainOutput {
    /// Its wire form.
    pub fn to_pb(&self) -> pb::CheckpointOutput {
        pb::CheckpointOutput {
            txid: self.outpoint.txid.to_byte_array().to_vec(),
            vout: self.outpoint.vout,
            round: self.round,
            height: self.height,
            kind: u32::from(self.kind),
        }
    }
}

fn output_from_row(row: &PgRow, prefix: &'static str) -> Result<ChainOutput, StoreError> {
    let (txid, vout, round, height, kind) = match prefix {
        "genesis" => (
            "genesis_txid",
            "genesis_vout",
            Some("genesis_round"),
            "genesis_height",
            None,
        ),
        _ => (
            "base_txid",
            "base_vout",
            Some("base_round"),
            "base_height",
            Some("base_kind"),
        ),
    };
    let kind = match kind {
        Some(column) => u8::try_from(row.try_get::<i16, _>(column)?)
            .map_err(|_| corrupt("base_kind", "not a kind byte"))?,
        None => 0,
    };
    Ok(ChainOutput {
        outpoint: OutPoint::new(
            Txid::from_byte_array(digest(txid, row.try_get(txid)?)?),
            to_u32(vout, row.try_get(vout)?)?,
        ),
        round: match round {
            Some(column) => to_u64(column, row.try_get(column)?)?,
            None => 0,
        },
        height: to_u32(height, row.try_get(height)?)?,
        kind,
    })
}

/// The chain row: the genesis, the base, the last rotation round and why it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    /// The genesis output (its round is h₀).
    pub genesis: ChainOutput,
    /// The base.
    pub base: ChainOutput,
    /// The latest rotation round.
    pub last_rotation: Option<u64>,
    /// Set once the base was spent off the template.
    pub ended: Option<String>,
}

/// The chain row, `None` before a genesis is registered.
pub async fn chain(conn: &mut PgConnection) -> Result<Option<ChainRow>, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT genesis_txid, genesis_vout, genesis_height, genesis_round, base_txid, base_vout, base_round, \
         base_height, base_kind, last_rotation, ended FROM checkpoint_chain",
    )
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let last_rotation: Option<i64> = row.try_get("last_rotation")?;
    let ended: Option<String> = row.try_get("ended")?;
    Ok(Some(ChainRow {
        genesis: output_from_row(&row, "genesis")?,
        base: output_from_row(&row, "base")?,
        last_rotation: last_rotation
            .map(|r| to_u64("last_rotation", r))
            .transpose()?,
        ended,
    }))
}

/// Records the genesis, which is also the first base. Returns `false` when a genesis is
/// recorded already (nothing written).
pub async fn insert_genesis(
    conn: &mut PgConnection,
    genesis: &ChainOutput,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO checkpoint_chain (genesis_txid, genesis_vout, genesis_height, \
         genesis_round, base_txid, base_vout, base_round, base_height, base_kind) \
         VALUES ($1, $2, $3, $4, $1, $2, $4, $3, 0) ON CONFLICT (id) DO NOTHING",
    )
    .bind(genesis.outpoint.txid.to_byte_array().as_slice())
    .bind(to_i32("genesis_vout", genesis.outpoint.vout)?)
    .bind(to_i32("genesis_height", genesis.height)?)
    .bind(to_i64("base_round", genesis.round)?)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves the base to `base`: its checkpoint round (if the node built it) becomes CONFIRMED,
/// every other round still signing or ready on the old base is SUPERSEDED.
pub async fn advance_base(
    conn: &mut PgConnection,
    old: &OutPoint,
    base: &ChainOutput,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE checkpoint_chain SET base_txid = $1, base_vout = $2, base_round = $3, \
         base_height = $4, base_kind = $5",
    )
    .bind(base.outpoint.txid.to_byte_array().as_slice())
    .bind(to_i32("base_vout", base.outpoint.vout)?)
    .bind(to_i64("base_round", base.round)?)
    .bind(to_i32("base_height", base.height)?)
    .bind(i16::from(base.kind))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE checkpoint_rounds SET status = CASE WHEN round = $3 AND status = 'READY' \
         THEN 'CONFIRMED' ELSE 'SUPERSEDED' END \
         WHERE base_txid = $1 AND base_vout = $2 AND status IN ('SIGNING', 'READY')",
    )
    .bind(old.txid.to_byte_array().as_slice())
    .bind(to_i32("base_vout", old.vout)?)
    .bind(to_i64("round", base.round)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Ends the chain: the base was spent off the template.
pub async fn end_chain(conn: &mut PgConnection, reason: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE checkpoint_chain SET ended = $1")
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records `round` as the latest rotation round.
pub async fn set_last_rotation(conn: &mut PgConnection, round: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE checkpoint_chain SET last_rotation = $1")
        .bind(to_i64("last_rotation", round)?)
        .execute(conn)
        .await?;
    Ok(())
}

/// A checkpoint round as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    /// Round h.
    pub round: u64,
    /// SCHEDULED or ROTATION.
    pub kind: pb::CheckpointKind,
    /// The base it spends.
    pub base: ChainOutput,
    /// The unsigned candidate.
    pub candidate: Transaction,
    /// M.
    pub message: Vec<u8>,
    /// The payload's state.
    pub state: Digest,
    /// Base-set weight signed at the last tally.
    pub base_weight: u32,
    /// The signed candidate, once ready.
    pub signed_tx: Option<Transaction>,
    /// SIGNING, READY, CONFIRMED or SUPERSEDED.
    pub status: pb::CheckpointStatus,
}

const CHECKPOINT_COLUMNS: &str = "round, kind, base_txid, base_vout, base_round, base_height, \
     base_kind, candidate, message, state, base_weight, signed_tx, status";

fn kind_to_str(kind: pb::CheckpointKind) -> &'static str {
    match kind {
        pb::CheckpointKind::Rotation => "ROTATION",
        _ => "SCHEDULED",
    }
}

fn checkpoint_from_row(row: &PgRow) -> Result<CheckpointRow, StoreError> {
    let kind = match row.try_get::<String, _>("kind")?.as_str() {
        "SCHEDULED" => pb::CheckpointKind::Scheduled,
        "ROTATION" => pb::CheckpointKind::Rotation,
        other => return Err(corrupt("checkpoint_rounds.kind", other)),
    };
    let status = match row.try_get::<String, _>("status")?.as_str() {
        "SIGNING" => pb::CheckpointStatus::Signing,
        "READY" => pb::CheckpointStatus::Ready,
        "CONFIRMED" => pb::CheckpointStatus::Confirmed,
        "SUPERSEDED" => pb::CheckpointStatus::Superseded,
        other => return Err(corrupt("checkpoint_rounds.status", other)),
    };
    let tx = |column: &'static str, bytes: &[u8]| {
        deserialize::<Transaction>(bytes).map_err(|e| corrupt(column, e.to_string()))
    };
    let signed: Option<Vec<u8>> = row.try_get("signed_tx")?;
    let weight: i64 = row.try_get("base_weight")?;
    Ok(CheckpointRow {
        round: to_u64("round", row.try_get("round")?)?,
        kind,
        base: output_from_row(row, "base")?,
        candidate: tx("candidate", row.try_get("candidate")?)?,
        message: row.try_get("message")?,
        state: digest("state", row.try_get("state")?)?,
        base_weight: u32::try_from(weight).map_err(|_| corrupt("base_weight", "out of range"))?,
        signed_tx: signed.as_deref().map(|b| tx("signed_tx", b)).transpose()?,
        status,
    })
}

/// Checkpoint round `round`, `None` when it is not one.
pub async fn checkpoint_round(
    conn: &mut PgConnection,
    round: u64,
) -> Result<Option<CheckpointRow>, StoreError> {
    let Ok(round) = i64::try_from(round) else {
        return Ok(None);
    };
    sqlx::query(&format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM checkpoint_rounds WHERE round = $1"
    ))
    .bind(round)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(checkpoint_from_row)
    .transpose()
}

/// The newest checkpoint round.
pub async fn latest_checkpoint_round(
    conn: &mut PgConnection,
) -> Result<Option<CheckpointRow>, StoreError> {
    sqlx::query(&format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM checkpoint_rounds ORDER BY round DESC LIMIT 1"
    ))
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(checkpoint_from_row)
    .transpose()
}

/// Checkpoint rounds still collecting signatures, oldest first.
pub async fn signing_rounds(conn: &mut PgConnection) -> Result<Vec<CheckpointRow>, StoreError> {
    sqlx::query(&format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM checkpoint_rounds WHERE status = 'SIGNING' ORDER BY round"
    ))
    .fetch_all(conn)
    .await?
    .iter()
    .map(checkpoint_from_row)
    .collect()
}

/// The kind of checkpoint round `round`; NONE when it is not one.
pub async fn kind_of(
    conn: &mut PgConnection,
    round: u64,
) -> Result<pb::CheckpointKind, StoreError> {
    Ok(checkpoint_round(conn, round)
        .await?
        .map_or(pb::CheckpointKind::None, |c| c.kind))
}

/// Stores a new checkpoint round.
pub async fn insert_checkpoint_round(
    conn: &mut PgConnection,
    row: &CheckpointRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO checkpoint_rounds (round, kind, base_txid, base_vout, base_round, \
         base_height, base_kind, candidate, message, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(to_i64("round", row.round)?)
    .bind(kind_to_str(row.kind))
    .bind(row.base.outpoint.txid.to_byte_array().as_slice())
    .bind(to_i32("base_vout", row.base.outpoint.vout)?)
    .bind(to_i64("base_round", row.base.round)?)
    .bind(to_i32("base_height", row.base.height)?)
    .bind(i16::from(row.base.kind))
    .bind(serialize(&row.candidate))
    .bind(row.message.as_slice())
    .bind(row.state.as_slice())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a tally: the base weight signed and, once ready, the signed transaction.
pub async fn record_tally(
    conn: &mut PgConnection,
    round: u64,
    base_weight: u32,
    signed: Option<&Transaction>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE checkpoint_rounds SET base_weight = $2, signed_tx = COALESCE($3, signed_tx), \
         status = CASE WHEN $3::BYTEA IS NULL THEN status ELSE 'READY' END WHERE round = $1",
    )
    .bind(to_i64("round", round)?)
    .bind(i64::from(base_weight))
    .bind(signed.map(serialize))
    .execute(conn)
    .await?;
    Ok(())
}

const VOTE_COLUMNS: &str =
    "verifier, public_randomness, proof_index, proof_total, leaf_hash, aunts, signature";

fn vote_from_row(row: &PgRow) -> Result<(CheckpointVote, Proof), StoreError> {
    Ok((
        CheckpointVote {
            voter: xonly("verifier", row.try_get("verifier")?)?,
            public_randomness: PublicRandomness::from_byte_array(digest(
                "public_randomness",
                row.try_get("public_randomness")?,
            )?),
            signature: Signature::from_byte_array(digest("signature", row.try_get("signature")?)?),
        },
        proof_from_row(row)?,
    ))
}

/// The checkpoint votes of `round`, ordered by voter.
pub async fn votes_of_round(
    conn: &mut PgConnection,
    round: u64,
) -> Result<Vec<(CheckpointVote, Proof)>, StoreError> {
    sqlx::query(&format!(
        "SELECT {VOTE_COLUMNS} FROM checkpoint_votes WHERE round = $1 ORDER BY verifier"
    ))
    .bind(to_i64("round", round)?)
    .fetch_all(conn)
    .await?
    .iter()
    .map(vote_from_row)
    .collect()
}

/// The checkpoint vote of `pk` on `round`, if any.
pub async fn vote_of(
    conn: &mut PgConnection,
    round: u64,
    pk: &XOnlyPublicKey,
) -> Result<Option<(CheckpointVote, Proof)>, StoreError> {
    let Ok(round) = i64::try_from(round) else {
        return Ok(None);
    };
    sqlx::query(&format!(
        "SELECT {VOTE_COLUMNS} FROM checkpoint_votes WHERE round = $1 AND verifier = $2"
    ))
    .bind(round)
    .bind(pk.serialize().as_slice())
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(vote_from_row)
    .transpose()
}

/// Stores an accepted checkpoint vote; `false` when the voter has one on the round already.
pub async fn insert_vote(
    conn: &mut PgConnection,
    round: u64,
    vote: &CheckpointVote,
    proof: &Proof,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO checkpoint_votes (round, verifier, public_randomness, proof_index, \
         proof_total, leaf_hash, aunts, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (round, verifier) DO NOTHING",
    )
    .bind(to_i64("round", round)?)
    .bind(vote.voter.serialize().as_slice())
    .bind(vote.public_randomness.as_bytes().as_slice())
    .bind(to_i64("proof_index", proof.index)?)
    .bind(to_i64("proof_total", proof.total)?)
    .bind(proof.leaf_hash.as_slice())
    .bind(proof.aunts.iter().map(|a| a.to_vec()).collect::<Vec<_>>())
    .bind(vote.signature.to_byte_array().as_slice())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The verifiers with a checkpoint vote on `round`.
pub async fn signers(
    conn: &mut PgConnection,
    round: u64,
) -> Result<Vec<XOnlyPublicKey>, StoreError> {
    sqlx::query("SELECT verifier FROM checkpoint_votes WHERE round = $1")
        .bind(to_i64("round", round)?)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| xonly("verifier", r.try_get("verifier")?))
        .collect()
}
