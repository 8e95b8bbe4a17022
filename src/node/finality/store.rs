//! The SQL of the finality tables (`migrations/0002_finality.sql`). Functions take a
//! connection, so they run inside the caller's transaction; none of them commits.

use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_finality::eots::{PublicRandomness, Signature};
use fiamma_finality::merkle::{Digest, Proof};
use fiamma_finality::rounds::{
    Candidate, LivenessRules, PowerTable, SigningWindow, VerifierRecord, VerifierStatus, Vote,
};
use fiamma_proto::finality::v1 as pb;
use prost::Message;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::node::store::StoreError;

/// A u64 into a BIGINT column.
pub fn to_i64(column: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        column,
        value: value.to_string(),
    })
}

/// A BIGINT column that holds a u64.
pub fn to_u64(column: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        column,
        reason: format!("negative value {value}"),
    })
}

fn corrupt(column: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        column,
        reason: reason.into(),
    }
}

/// A 32-byte column.
pub fn digest(column: &'static str, bytes: &[u8]) -> Result<Digest, StoreError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| corrupt(column, format!("{} bytes", bytes.len())))
}

/// A key column.
pub fn xonly(column: &'static str, bytes: &[u8]) -> Result<XOnlyPublicKey, StoreError> {
    XOnlyPublicKey::from_slice(bytes).map_err(|_| corrupt(column, "not an x-only key"))
}

/// The finality module's position: the latest closed round and its hash, and the last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The latest closed round, 0 before the first.
    pub latest_round: u64,
    /// Its round hash (zeros before the first round): the next round's prev_round_hash.
    pub latest_hash: Digest,
    /// The number of the last finality event.
    pub last_event_seq: u64,
}

/// How [`position`] locks the finality state row for the rest of the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// No lock: a snapshot read.
    None,
    /// Keeps a round from closing until the transaction ends (votes, unjailing, submitting a
    /// proof).
    Share,
    /// The finality writer lock: closing rounds, slashing (event numbers).
    Update,
}

/// The transaction-level advisory lock that batched first votes hold shared and every
/// [`Lock::Update`] holder holds exclusively ("fiamma" and 1). It keeps a round from closing
/// while a batch is in flight, as `FOR SHARE` on the state row does, without writing a row
/// lock (and a multixact when batches overlap) on every batch.
const ROUND_CLOSE_LOCK: i64 = 0x6669_616d_6d61_0001;

/// Keeps rounds from closing until the transaction ends, for a batch of first votes; taken
/// before the batch's statement, so that statement's snapshot sees any close that committed.
pub async fn hold_rounds_open(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(ROUND_CLOSE_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

/// Reads the position, locking its row as `lock` says ([`Lock::Update`] first takes the
/// round-close lock exclusively, waiting for the vote batches in flight).
pub async fn position(conn: &mut PgConnection, lock: Lock) -> Result<Position, StoreError> {
    if lock == Lock::Update {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ROUND_CLOSE_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    let sql = match lock {
        Lock::None => "SELECT latest_round, latest_hash, last_event_seq FROM finality_state",
        Lock::Share => {
            "SELECT latest_round, latest_hash, last_event_seq FROM finality_state FOR SHARE"
        }
        Lock::Update => {
            "SELECT latest_round, latest_hash, last_event_seq FROM finality_state FOR UPDATE"
        }
    };
    let row = sqlx::query(sql).fetch_one(conn).await?;
    Ok(Position {
        latest_round: to_u64("latest_round", row.try_get("latest_round")?)?,
        latest_hash: digest("latest_hash", row.try_get("latest_hash")?)?,
        last_event_seq: to_u64("last_event_seq", row.try_get("last_event_seq")?)?,
    })
}

/// Events of one transaction, numbered after the locked [`Position`]; written by
/// [`EventLog::write`] just before the commit.
#[derive(Debug, Default)]
pub struct EventLog {
    last_seq: u64,
    events: Vec<pb::Event>,
}

impl EventLog {
    /// A log continuing after `position` (which must have been read with the lock).
    pub fn after(position: &Position) -> Self {
        EventLog {
            last_seq: position.last_event_seq,
            events: Vec::new(),
        }
    }

    /// Appends an event.
    pub fn push(&mut self, kind: pb::event::Kind) {
        self.last_seq += 1;
        self.events.push(pb::Event {
            sequence: self.last_seq,
            kind: Some(kind),
        });
    }

    /// Stores the events and the new last sequence; returns them for publishing after the
    /// commit.
    pub async fn write(self, conn: &mut PgConnection) -> Result<Vec<pb::Event>, StoreError> {
        for e in &self.events {
            sqlx::query("INSERT INTO finality_events (sequence, body) VALUES ($1, $2)")
                .bind(to_i64("sequence", e.sequence)?)
                .bind(e.encode_to_vec())
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query("UPDATE finality_state SET last_event_seq = $1")
            .bind(to_i64("last_event_seq", self.last_seq)?)
            .execute(&mut *conn)
            .await?;
        Ok(self.events)
    }
}

/// Up to `limit` events from sequence `from` on.
pub async fn events_from(
    conn: &mut PgConnection,
    from: u64,
    limit: u32,
) -> Result<Vec<pb::Event>, StoreError> {
    let rows = sqlx::query(
        "SELECT body FROM finality_events WHERE sequence >= $1 ORDER BY sequence LIMIT $2",
    )
    .bind(to_i64("sequence", from)?)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let body: Vec<u8> = r.try_get("body")?;
            pb::Event::decode(body.as_slice())
                .map_err(|e| corrupt("finality_events.body", e.to_string()))
        })
        .collect()
}

fn status(text: &str, since: Option<i64>) -> Result<VerifierStatus, StoreError> {
    let since = since.map(|s| to_u64("since_round", s)).transpose()?;
    match (text, since) {
        ("ACTIVE", None) => Ok(VerifierStatus::Active),
        ("JAILED", Some(since)) => Ok(VerifierStatus::Jailed { since }),
        ("SLASHED", Some(since)) => Ok(VerifierStatus::Slashed { since }),
        _ => Err(corrupt(
            "finality_verifiers.status",
            format!("{text} since {since:?}"),
        )),
    }
}

fn since(status: VerifierStatus) -> Option<u64> {
    match status {
        VerifierStatus::Active => None,
        VerifierStatus::Jailed { since } | VerifierStatus::Slashed { since } => Some(since),
    }
}

fn commitment_from_row(row: &PgRow) -> Result<RandomnessCommitment, StoreError> {
    let start = to_u64("start_round", row.try_get("start_round")?)?;
    let num = to_u64("num", row.try_get("num")?)?;
    let root = digest("root", row.try_get("root")?)?;
    RandomnessCommitment::new(start, num, root)
        .map_err(|e| corrupt("randomness_commitments", e.to_string()))
}

/// Gives a verifier registered in the staking module its finality row (ACTIVE, empty window)
/// if it has none. Does nothing for a key the staking module does not know.
pub async fn ensure_verifier(
    conn: &mut PgConnection,
    pk: &XOnlyPublicKey,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO finality_verifiers (verifier, status) \
         SELECT btc_pk, 'ACTIVE' FROM verifiers WHERE btc_pk = $1 ON CONFLICT DO NOTHING",
    )
    .bind(pk.serialize().as_slice())
    .execute(conn)
    .await?;
    Ok(())
}

// Covering a round: `start_round <= r AND r - start_round < num`, never `start_round + num - 1
// >= r`, whose sum overflows BIGINT for a range ending near the largest round.

/// What the pending proofs (the next round's) hold against the per-round limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingBudget {
    /// The number of pending proofs.
    pub proofs: u64,
    /// Their bytes (verifying keys, proofs and public inputs).
    pub bytes: u64,
}

/// The pending budget as of the statement.
pub async fn pending_budget(conn: &mut PgConnection) -> Result<PendingBudget, StoreError> {
    let row = sqlx::query("SELECT proofs, bytes FROM pending_budget")
        .fetch_one(conn)
        .await?;
    Ok(PendingBudget {
        proofs: to_u64("pending_budget.proofs", row.try_get("proofs")?)?,
        bytes: to_u64("pending_budget.bytes", row.try_get("bytes")?)?,
    })
}

/// Takes a place of `bytes` in the next round if it has one left under `max_proofs` and
/// `max_bytes`; returns whether it did. The budget row stays locked until the transaction
/// ends, so concurrent submissions take places one at a time and never exceed the limits.
pub async fn take_pending_place(
    conn: &mut PgConnection,
    bytes: u64,
    max_proofs: u32,
    max_bytes: u64,
) -> Result<bool, StoreError> {
    // A limit beyond BIGINT is no limit on what BIGINT columns can hold.
    let max_bytes = i64::try_from(max_bytes).unwrap_or(i64::MAX);
    // `bytes <= max - new` rather than `bytes + new <= max`: neither side can overflow.
    let done = sqlx::query(
        "UPDATE pending_budget SET proofs = proofs + 1, bytes = bytes + $1 \
         WHERE proofs < $2 AND bytes <= $3 - $1",
    )
    .bind(to_i64("bytes", bytes)?)
    .bind(i64::from(max_proofs))
    .bind(max_bytes)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a proof with this id waits for the next round.
pub async fn is_pending(conn: &mut PgConnection, proof_id: &[u8; 32]) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM pending_proofs WHERE proof_id = $1")
            .bind(proof_id.as_slice())
            .fetch_optional(conn)
            .await?
            .is_some(),
    )
}

/// Drops the proof bytes of every round up to `through` (proof ids, systems and verdicts
/// stay). Finds them through the partial index of rounds that still have bytes, so the cost
/// is that of the rows dropped.
pub async fn drop_proof_bytes(conn: &mut PgConnection, through: u64) -> Result<u64, StoreError> {
    let through = i64::try_from(through).unwrap_or(i64::MAX);
    let done = sqlx::query(
        "UPDATE round_results SET verifying_key = NULL, proof = NULL, public_inputs = NULL \
         WHERE round <= $1 AND proof IS NOT NULL",
    )
    .bind(through)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Which commitments of a verifier to load with its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commitments {
    /// None (status and liveness only).
    None,
    /// All of them (for the overlap rule).
    All,
    /// Only the one covering this round, if any.
    Covering(u64),
}

/// The finality record of `pk`, locked for the rest of the transaction; `None` when it has no
/// finality row.
pub async fn verifier_record(
    conn: &mut PgConnection,
    pk: &XOnlyPublicKey,
    commitments: Commitments,
    rules: &LivenessRules,
) -> Result<Option<VerifierRecord>, StoreError> {
    let Some(row) = sqlx::query(
        // NO KEY UPDATE: serializes the verifier's votes, commitments and slashing, and does
        // not block the key-share lock a vote's foreign key takes on this row (a batch of
        // first votes holds one while it waits for its commit; FOR UPDATE could deadlock with
        // it).
        "SELECT status, since_round, signed_window FROM finality_verifiers WHERE verifier = $1 \
         FOR NO KEY UPDATE",
    )
    .bind(pk.serialize().as_slice())
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let status = status(row.try_get("status")?, row.try_get("since_round")?)?;
    let window: Vec<bool> = row.try_get("signed_window")?;
    let list = match commitments {
        Commitments::None => Vec::new(),
        Commitments::All => {
            sqlx::query(
                "SELECT start_round, num, root FROM randomness_commitments WHERE verifier = $1",
            )
            .bind(pk.serialize().as_slice())
            .fetch_all(&mut *conn)
            .await?
        }
        Commitments::Covering(round) => {
            let round = to_i64("round", round)?;
            sqlx::query(
                "SELECT start_round, num, root FROM randomness_commitments \
                 WHERE verifier = $1 AND start_round <= $2 AND $2 - start_round < num",
            )
            .bind(pk.serialize().as_slice())
            .bind(round)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let list = list
        .iter()
        .map(commitment_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(VerifierRecord::restore(
        status,
        list,
        SigningWindow::from_flags(window, rules),
    )))
}

/// Every finality record, each with only the commitment covering `round` (what eligibility
/// for that round needs).
pub async fn all_records(
    conn: &mut PgConnection,
    round: u64,
    rules: &LivenessRules,
) -> Result<Vec<(XOnlyPublicKey, VerifierRecord)>, StoreError> {
    let round = to_i64("round", round)?;
    let rows = sqlx::query(
        "SELECT f.verifier, f.status, f.since_round, f.signed_window, c.start_round, c.num, c.root \
         FROM finality_verifiers f LEFT JOIN randomness_commitments c \
           ON c.verifier = f.verifier AND c.start_round <= $1 AND $1 - c.start_round < c.num \
         ORDER BY f.verifier",
    )
    .bind(round)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let pk = xonly("verifier", row.try_get("verifier")?)?;
            let status = status(row.try_get("status")?, row.try_get("since_round")?)?;
            let window: Vec<bool> = row.try_get("signed_window")?;
            let start: Option<i64> = row.try_get("start_round")?;
            let commitments = match start {
                Some(_) => vec![commitment_from_row(row)?],
                None => Vec::new(),
            };
            Ok((
                pk,
                VerifierRecord::restore(
                    status,
                    commitments,
                    SigningWindow::from_flags(window, rules),
                ),
            ))
        })
        .collect()
}

/// Writes a record's status and liveness window (commitments are inserted on their own).
pub async fn save_record(
    conn: &mut PgConnection,
    pk: &XOnlyPublicKey,
    record: &VerifierRecord,
) -> Result<(), StoreError> {
    let window: Vec<bool> = record.signing_window().flags().collect();
    sqlx::query(
        "UPDATE finality_verifiers SET status = $2, since_round = $3, signed_window = $4 WHERE verifier = $1",
    )
    .bind(pk.serialize().as_slice())
    .bind(record.status().as_str())
    .bind(since(record.status()).map(|s| to_i64("since_round", s)).transpose()?)
    .bind(window)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores an accepted commitment with its signature.
pub async fn insert_commitment(
    conn: &mut PgConnection,
    pk: &XOnlyPublicKey,
    c: &RandomnessCommitment,
    signature: &[u8; 64],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO randomness_commitments (verifier, start_round, num, root, signature) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(pk.serialize().as_slice())
    .bind(to_i64("start_round", c.start())?)
    .bind(to_i64("num", c.num())?)
    .bind(c.root().as_slice())
    .bind(signature.as_slice())
    .execute(conn)
    .await?;
    Ok(())
}

/// A closed round as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRow {
    /// The round number.
    pub round: u64,
    /// Its round hash.
    pub round_hash: Digest,
    /// The previous round's hash.
    pub prev_round_hash: Digest,
    /// OPEN, FINAL or EXPIRED.
    pub status: String,
    /// The total power of its active set.
    pub total_power: u64,
    /// The agreeing power at the last tally.
    pub voted_power: u64,
    /// The encoded certificate, once final.
    pub certificate: Option<Vec<u8>>,
    /// Whether it is a checkpoint round, and which kind.
    pub checkpoint: pb::CheckpointKind,
}

fn round_from_row(row: &PgRow) -> Result<RoundRow, StoreError> {
    Ok(RoundRow {
        round: to_u64("round", row.try_get("round")?)?,
        round_hash: digest("round_hash", row.try_get("round_hash")?)?,
        prev_round_hash: digest("prev_round_hash", row.try_get("prev_round_hash")?)?,
        status: row.try_get("status")?,
        total_power: to_u64("total_power", row.try_get("total_power")?)?,
        voted_power: to_u64("voted_power", row.try_get("voted_power")?)?,
        certificate: row.try_get("certificate")?,
        checkpoint: match row
            .try_get::<Option<String>, _>("checkpoint_kind")?
            .as_deref()
        {
            None => pb::CheckpointKind::None,
            Some("SCHEDULED") => pb::CheckpointKind::Scheduled,
            Some("ROTATION") => pb::CheckpointKind::Rotation,
            Some(other) => return Err(corrupt("checkpoint_rounds.kind", other)),
        },
    })
}

/// The columns of a [`RoundRow`], over `rounds r`.
const ROUND_COLUMNS: &str = "r.round, r.round_hash, r.prev_round_hash, r.status, \
     r.total_power, r.voted_power, r.certificate, \
     (SELECT k.kind FROM checkpoint_rounds k WHERE k.round = r.round) AS checkpoint_kind";

/// One closed round.
pub async fn round(conn: &mut PgConnection, round: u64) -> Result<Option<RoundRow>, StoreError> {
    // A round number beyond BIGINT was never closed.
    let Ok(round) = i64::try_from(round) else {
        return Ok(None);
    };
    sqlx::query(&format!(
        "SELECT {ROUND_COLUMNS} FROM rounds r WHERE r.round = $1"
    ))
    .bind(round)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(round_from_row)
    .transpose()
}

/// Up to `limit` rounds from `from` on, in order.
pub async fn rounds_from(
    conn: &mut PgConnection,
    from: u64,
    limit: u32,
) -> Result<Vec<(RoundRow, u32)>, StoreError> {
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let rows = sqlx::query(&format!(
        "SELECT {ROUND_COLUMNS}, (SELECT COUNT(*) FROM round_results x WHERE x.round = r.round) AS proofs \
         FROM rounds r WHERE r.round >= $1 ORDER BY r.round LIMIT $2"
    ))
    .bind(from)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let proofs: i64 = row.try_get("proofs")?;
            Ok((
                round_from_row(row)?,
                u32::try_from(proofs).unwrap_or(u32::MAX),
            ))
        })
        .collect()
}

/// Rounds still OPEN, oldest first.
pub async fn open_rounds(conn: &mut PgConnection) -> Result<Vec<RoundRow>, StoreError> {
    sqlx::query(&format!(
        "SELECT {ROUND_COLUMNS} FROM rounds r WHERE r.status = 'OPEN' ORDER BY r.round"
    ))
    .fetch_all(conn)
    .await?
    .iter()
    .map(round_from_row)
    .collect()
}

/// Whether `pk` is in the active set of `round`.
pub async fn is_member(
    conn: &mut PgConnection,
    round: u64,
    pk: &XOnlyPublicKey,
) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM round_members WHERE round = $1 AND verifier = $2")
            .bind(to_i64("round", round)?)
            .bind(pk.serialize().as_slice())
            .fetch_optional(conn)
            .await?
            .is_some(),
    )
}

/// The active set of `round` and each member's power, ordered by key.
pub async fn members(
    conn: &mut PgConnection,
    round: u64,
) -> Result<Vec<(XOnlyPublicKey, u64)>, StoreError> {
    sqlx::query("SELECT verifier, power FROM round_members WHERE round = $1 ORDER BY verifier")
        .bind(to_i64("round", round)?)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| {
            Ok((
                xonly("verifier", r.try_get("verifier")?)?,
                to_u64("power", r.try_get("power")?)?,
            ))
        })
        .collect()
}

/// The power table of a closed round, as it was when the round closed: its stored members
/// and powers, each eligible through its commitment covering the round (commitments are never
/// removed, and later jailing or slashing does not change a closed round's table).
pub async fn power_table(conn: &mut PgConnection, round: u64) -> Result<PowerTable, StoreError> {
    let members = members(&mut *conn, round).await?;
    let r = to_i64("round", round)?;
    let rows = sqlx::query(
        "SELECT c.verifier, c.start_round, c.num, c.root FROM randomness_commitments c \
         JOIN round_members m ON m.verifier = c.verifier AND m.round = $1 \
         WHERE c.start_round <= $1 AND $1 - c.start_round < c.num",
    )
    .bind(r)
    .fetch_all(conn)
    .await?;
    // By key bytes: the members' keys are parsed already, and parsing one costs a square root.
    let mut covering = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        covering.insert(
            digest("verifier", row.try_get("verifier")?)?,
            commitment_from_row(row)?,
        );
    }
    let candidates: Vec<Candidate<'_>> = members
        .iter()
        .map(|(key, power)| Candidate {
            key: *key,
            status: VerifierStatus::Active,
            power: *power,
            commitments: covering
                .get(&key.serialize())
                .map(std::slice::from_ref)
                .unwrap_or(&[]),
        })
        .collect();
    PowerTable::compute(round, &candidates, u32::MAX)
        .map_err(|e| corrupt("round_members", e.to_string()))
}

const VOTE_COLUMNS: &str = "verifier, round, round_hash, public_randomness, proof_index, \
     proof_total, leaf_hash, aunts, signature, agrees";

/// A randomness proof stored as `proof_index, proof_total, leaf_hash, aunts` columns.
pub fn proof_from_row(row: &PgRow) -> Result<Proof, StoreError> {
    let aunts: Vec<Vec<u8>> = row.try_get("aunts")?;
    Ok(Proof {
        index: to_u64("proof_index", row.try_get("proof_index")?)?,
        total: to_u64("proof_total", row.try_get("proof_total")?)?,
        leaf_hash: digest("leaf_hash", row.try_get("leaf_hash")?)?,
        aunts: aunts
            .iter()
            .map(|a| digest("aunts", a))
            .collect::<Result<_, _>>()?,
    })
}

fn vote_from_row(row: &PgRow) -> Result<(Vote, bool), StoreError> {
    let vote = Vote {
        voter: xonly("verifier", row.try_get("verifier")?)?,
        round: to_u64("round", row.try_get("round")?)?,
        round_hash: digest("round_hash", row.try_get("round_hash")?)?,
        public_randomness: PublicRandomness::from_byte_array(digest(
            "public_randomness",
            row.try_get("public_randomness")?,
        )?),
        proof: proof_from_row(row)?,
        signature: Signature::from_byte_array(digest("signature", row.try_get("signature")?)?),
    };
    Ok((vote, row.try_get("agrees")?))
}

/// Whether the staking module has slashed `pk` (selective slashing evidence is recorded there
/// first and adopted by the finality registry at the next round close; its votes are refused
/// from the staking module's commit on).
pub async fn slashed_in_staking(
    conn: &mut PgConnection,
    pk: &XOnlyPublicKey,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "SELECT 1 AS one FROM verifiers WHERE btc_pk = $1 AND slashed_height IS NOT NULL",
    )
    .bind(pk.serialize().as_slice())
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// The vote `pk` cast in `round`, if any.
pub async fn vote_of(
    conn: &mut PgConnection,
    round: u64,
    pk: &XOnlyPublicKey,
) -> Result<Option<Vote>, StoreError> {
    sqlx::query(&format!(
        "SELECT {VOTE_COLUMNS} FROM votes WHERE round = $1 AND verifier = $2"
    ))
    .bind(to_i64("round", round)?)
    .bind(pk.serialize().as_slice())
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(|r| vote_from_row(r).map(|(v, _)| v))
    .transpose()
}

/// Every vote of `round` with whether it agrees with the round hash, ordered by voter.
pub async fn votes_of_round(
    conn: &mut PgConnection,
    round: u64,
) -> Result<Vec<(Vote, bool)>, StoreError> {
    sqlx::query(&format!(
        "SELECT {VOTE_COLUMNS} FROM votes WHERE round = $1 ORDER BY verifier"
    ))
    .bind(to_i64("round", round)?)
    .fetch_all(conn)
    .await?
    .iter()
    .map(vote_from_row)
    .collect()
}

/// Stores an accepted first vote, unless the voter has a vote in the round already (one
/// stored since the caller read [`vote_of`]: [`insert_first_votes`] does not lock the
/// verifier row). Returns whether it was stored.
pub async fn insert_vote(
    conn: &mut PgConnection,
    v: &Vote,
    agrees: bool,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO votes (round, verifier, round_hash, public_randomness, proof_index, \
         proof_total, leaf_hash, aunts, signature, agrees) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (round, verifier) DO NOTHING",
    )
    .bind(to_i64("round", v.round)?)
    .bind(v.voter.serialize())
    .bind(v.round_hash)
    .bind(v.public_randomness.to_byte_array())
    .bind(to_i64("proof_index", v.proof.index)?)
    .bind(to_i64("proof_total", v.proof.total)?)
    .bind(v.proof.leaf_hash)
    .bind(&v.proof.aunts)
    .bind(v.signature.to_byte_array())
    .bind(agrees)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A first vote for [`insert_first_votes`]: checked against the facts of its round that never
/// change (round hash, active set, covering commitment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstVote {
    /// The vote.
    pub vote: Vote,
    /// Whether it is on the node's round hash.
    pub agrees: bool,
    /// The latest round up to which its round takes votes (h + vote_expiry).
    pub last_accepting: u64,
}

/// Stores first votes, each checked against the facts of its round that never change, in one
/// transaction that first takes the finality state row `FOR SHARE` (no round closes until it
/// commits) and then checks for each vote, in one statement whose snapshot follows that lock,
/// what may change: its round still takes votes (the latest round is at most
/// `last_accepting`), the voter is ACTIVE in the finality registry (not jailed, not slashed),
/// not slashed in the staking module, and it has no vote in the round. Returns, for each vote
/// in order, whether it was stored; a vote not stored changed nothing, and the caller finds
/// out in a transaction which rule it broke. Of two votes with the same voter and round, only
/// the first is tried.
///
/// Because the lock comes before the statement's snapshot, a stored vote is in the store
/// before the next round close reads the votes (tally and liveness), and a close that
/// committed first (expiring the round, jailing the voter) is seen by the checks.
///
/// One transaction for all of them: a few round trips and one WAL flush for the batch, where
/// a transaction per vote is a flush per vote (the cost that bounded ingest).
pub async fn insert_first_votes(
    pool: &sqlx::PgPool,
    votes: &[FirstVote],
) -> Result<Vec<bool>, StoreError> {
    let mut keys = std::collections::HashSet::with_capacity(votes.len());
    let tried: Vec<bool> = votes
        .iter()
        .map(|v| keys.insert((v.vote.round, v.vote.voter.serialize())))
        .collect();
    // Rows go in in key order, so two batches that both hold a vote of A and one of B (a
    // replayed vote) wait for each other in one order only and cannot deadlock.
    let mut sorted: Vec<&FirstVote> = votes
        .iter()
        .zip(&tried)
        .filter(|(_, t)| **t)
        .map(|(v, _)| v)
        .collect();
    sorted.sort_unstable_by_key(|v| (v.vote.round, v.vote.voter.serialize()));
    let batch = || sorted.iter().copied();
    let ints = |f: fn(&FirstVote) -> u64, column| {
        batch()
            .map(|v| to_i64(column, f(v)))
            .collect::<Result<Vec<_>, _>>()
    };
    let rounds = ints(|v| v.vote.round, "round")?;
    let indexes = ints(|v| v.vote.proof.index, "proof_index")?;
    let totals = ints(|v| v.vote.proof.total, "proof_total")?;
    // Beyond BIGINT no stored round number can be larger.
    let last: Vec<i64> = batch()
        .map(|v| i64::try_from(v.last_accepting).unwrap_or(i64::MAX))
        .collect();
    let voters: Vec<[u8; 32]> = batch().map(|v| v.vote.voter.serialize()).collect();
    let hashes: Vec<Digest> = batch().map(|v| v.vote.round_hash).collect();
    let prs: Vec<[u8; 32]> = batch()
        .map(|v| v.vote.public_randomness.to_byte_array())
        .collect();
    let leaves: Vec<Digest> = batch().map(|v| v.vote.proof.leaf_hash).collect();
    // Aunt lists differ in length, and arrays of arrays must be rectangular: each list goes
    // as one concatenation and is cut back into 32-byte aunts in SQL.
    let aunts: Vec<Vec<u8>> = batch().map(|v| v.vote.proof.aunts.concat()).collect();
    let signatures: Vec<[u8; 32]> = batch().map(|v| v.vote.signature.to_byte_array()).collect();
    let agrees: Vec<bool> = batch().map(|v| v.agrees).collect();
    let mut tx = pool.begin().await?;
    hold_rounds_open(&mut tx).await?;
    let stored = sqlx::query(
        "INSERT INTO votes (round, verifier, round_hash, public_randomness, proof_index, \
           proof_total, leaf_hash, aunts, signature, agrees) \
         SELECT v.round, v.verifier, v.round_hash, v.pr, v.proof_index, v.proof_total, \
           v.leaf_hash, ARRAY(SELECT substring(v.aunts FROM i * 32 + 1 FOR 32) \
             FROM generate_series(0, length(v.aunts) / 32 - 1) AS i ORDER BY i), \
           v.signature, v.agrees \
         FROM UNNEST($1::BIGINT[], $2::BYTEA[], $3::BYTEA[], $4::BYTEA[], $5::BIGINT[], \
           $6::BIGINT[], $7::BYTEA[], $8::BYTEA[], $9::BYTEA[], $10::BOOLEAN[], $11::BIGINT[]) \
           AS v(round, verifier, round_hash, pr, proof_index, proof_total, leaf_hash, aunts, \
             signature, agrees, last_accepting) \
         WHERE (SELECT latest_round FROM finality_state) <= v.last_accepting \
           AND EXISTS (SELECT 1 FROM finality_verifiers f \
             WHERE f.verifier = v.verifier AND f.status = 'ACTIVE') \
           AND NOT EXISTS (SELECT 1 FROM verifiers s \
             WHERE s.btc_pk = v.verifier AND s.slashed_height IS NOT NULL) \
         ORDER BY v.round, v.verifier \
         ON CONFLICT (round, verifier) DO NOTHING \
         RETURNING round, verifier",
    )
    .bind(rounds)
    .bind(voters)
    .bind(hashes)
    .bind(prs)
    .bind(indexes)
    .bind(totals)
    .bind(leaves)
    .bind(aunts)
    .bind(signatures)
    .bind(agrees)
    .bind(last)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut inserted = std::collections::HashSet::with_capacity(stored.len());
    for row in &stored {
        let round = to_u64("round", row.try_get("round")?)?;
        inserted.insert((round, digest("verifier", row.try_get("verifier")?)?));
    }
    Ok(votes
        .iter()
        .zip(tried)
        .map(|(v, tried)| tried && inserted.contains(&(v.vote.round, v.vote.voter.serialize())))
        .collect())
}

/// What every vote on a closed round is checked against and that never changes once the
/// round is closed: its hash and its active set, with each member's randomness commitment
/// covering the round (commitments are never removed and do not overlap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundFacts {
    /// The round number.
    pub round: u64,
    /// Its round hash.
    pub round_hash: Digest,
    /// The latest closed round when the facts were read (this one or a later one).
    pub latest_round: u64,
    /// Whether it is a checkpoint round (its §10 votes are not the common case).
    pub checkpoint: bool,
    /// The members by key bytes, each with its commitment covering the round (`None` only if
    /// the store lost it: the closer admits only members with one).
    pub members: std::collections::HashMap<[u8; 32], Option<RandomnessCommitment>>,
}

/// The [`RoundFacts`] of a closed round, in one query; `None` when the round is not closed.
pub async fn round_facts(
    pool: &sqlx::PgPool,
    round: u64,
) -> Result<Option<RoundFacts>, StoreError> {
    let Ok(r) = i64::try_from(round) else {
        return Ok(None);
    };
    // One row per member (one row with a NULL member for an empty active set).
    let rows = sqlx::query(
        "SELECT r.round_hash, s.latest_round, m.verifier, c.start_round, c.num, c.root, \
         EXISTS (SELECT 1 FROM checkpoint_rounds k WHERE k.round = r.round) AS checkpoint \
         FROM rounds r CROSS JOIN finality_state s \
         LEFT JOIN round_members m ON m.round = r.round \
         LEFT JOIN randomness_commitments c ON c.verifier = m.verifier \
           AND c.start_round <= r.round AND r.round - c.start_round < c.num \
         WHERE r.round = $1",
    )
    .bind(r)
    .fetch_all(pool)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut members = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let Some(key) = row.try_get::<Option<Vec<u8>>, _>("verifier")? else {
            continue;
        };
        let key = digest("round_members.verifier", &key)?;
        let commitment = match row.try_get::<Option<i64>, _>("start_round")? {
            Some(_) => Some(commitment_from_row(row)?),
            None => None,
        };
        members.insert(key, commitment);
    }
    Ok(Some(RoundFacts {
        round,
        round_hash: digest("round_hash", first.try_get("round_hash")?)?,
        latest_round: to_u64("latest_round", first.try_get("latest_round")?)?,
        checkpoint: first.try_get("checkpoint")?,
        members,
    }))
}
