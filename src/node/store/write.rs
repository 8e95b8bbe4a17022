//! One message applied as one database transaction.
//!
//! A [`WriteTx`] locks the single `node_state` row when it begins, so writers apply one at a
//! time in a single order, and the events they append get consecutive sequence numbers in
//! commit order. Locks are always taken `node_state` first, then delegation rows
//! ([`WriteTx::lock_delegation`]), so writers cannot deadlock. Dropping a [`WriteTx`] without
//! [`WriteTx::commit`] rolls everything back.
//!
//! The two busiest messages are each one statement, committed on its own, with the same
//! guarantees: [`register_delegation`] and [`add_covenant_sigs_ordered`] take the `node_state`
//! row lock inside the statement (first, then the rows they touch) and number their events
//! from that row as it is once locked, so the lock is held by the server alone, for that
//! statement and its commit. [`add_covenant_sigs_unordered`] takes no node-wide lock and appends
//! no events: a guarded `UPDATE` of the delegation row, which PostgreSQL re-checks on the row's latest
//! version, with the signature insert that depends on it.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{BlockHash, Txid};
use fiamma_staking::delegation::DelegationSighashes;
use fiamma_staking::state::{DelegationRecord, DelegationState, Transition, VerifierState};
use sqlx::postgres::PgArguments;
use sqlx::{Postgres, Row, Transaction};

use super::codec::{int, opt_int, sat, seq, uint};
use super::model::{
    CovenantSigs, Delegation, DelegationRef, DelegationStateRow, Event, EventKind, NewDelegation,
    NewVerifier, SlashingReason, Verifier,
};
use super::{read, StoreError};

/// An open write transaction holding the node-wide writer lock.
pub struct WriteTx {
    tx: Transaction<'static, Postgres>,
    tip: u32,
    last_seq: u64,
    events: Vec<Event>,
}

/// What [`register_delegation`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// The delegation and its registration event (returned) are stored.
    Inserted(Vec<Event>),
    /// The node's tip is not the one the registration was prepared at, but this one; nothing
    /// was written.
    TipMoved(u32),
    /// No verifier has the delegation's verifier key; nothing was written.
    UnknownVerifier,
    /// The verifier is slashed; nothing was written.
    VerifierSlashed,
    /// A delegation with this staking txid exists; nothing was written.
    Duplicate,
}

/// What [`add_covenant_sigs_ordered`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderedSigs {
    /// The signatures, the new state and the events (returned) are stored.
    Applied(Vec<Event>),
    /// The node's tip is not the one the change was decided at, but this one; nothing was
    /// written.
    TipMoved(u32),
    /// The delegation is no longer in the state the change was decided on, or the member's
    /// signatures are stored already; nothing was written.
    Changed,
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// The delegation columns a registration writes, in bind order (see [`bind_delegation`]).
const DELEGATION_INSERT_COLUMNS: &str = "staking_txid, staker_account, staker_btc_pk, \
     pop_type, pop_sig, verifier_btc_pk, staking_time_blocks, staking_value_sat, staking_tx, \
     staking_output_index, slashing_tx, staker_slashing_sig, unbonding_time_blocks, \
     unbonding_tx, unbonding_txid, unbonding_slashing_tx, staker_unbonding_slashing_sig, \
     params_version, status, verified_height, start_height, activated_height, ended_height, \
     covenant_sighashes";
const DELEGATION_INSERT_PARAMS: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
     $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24";

/// Binds $1..$24 of [`DELEGATION_INSERT_COLUMNS`].
fn bind_delegation<'q>(
    q: PgQuery<'q>,
    d: &'q NewDelegation,
    state: &DelegationState,
    sighashes: Option<&DelegationSighashes>,
) -> Result<PgQuery<'q>, StoreError> {
    let r = state.record();
    Ok(q.bind(d.staking_txid.as_byte_array().as_slice())
        .bind(&d.staker_account)
        .bind(d.staker_btc_pk.serialize().to_vec())
        .bind(d.pop.kind.code())
        .bind(&d.pop.signature)
        .bind(d.verifier_btc_pk.serialize().to_vec())
        .bind(int("staking_time_blocks", d.staking_time_blocks)?)
        .bind(sat("staking_value_sat", d.staking_value_sat)?)
        .bind(&d.staking_tx)
        .bind(int("staking_output_index", d.staking_output_index)?)
        .bind(&d.slashing_tx)
        .bind(&d.staker_slashing_sig)
        .bind(int("unbonding_time_blocks", d.unbonding_time_blocks)?)
        .bind(&d.unbonding_tx)
        .bind(d.unbonding_txid.as_byte_array().as_slice())
        .bind(&d.unbonding_slashing_tx)
        .bind(&d.staker_unbonding_slashing_sig)
        .bind(int("params_version", d.params_version)?)
        .bind(state.status().as_str())
        .bind(opt_int("verified_height", r.verified_height)?)
        .bind(opt_int("start_height", r.start_height)?)
        .bind(opt_int("activated_height", r.activated_height)?)
        .bind(opt_int("ended_height", r.ended_height)?)
        .bind(sighashes.map(|s| s.to_bytes().to_vec())))
}

impl WriteTx {
    pub(super) async fn begin(pool: &sqlx::PgPool) -> Result<Self, StoreError> {
        let mut tx = pool.begin().await?;
        let row = sqlx::query("SELECT tip_height, last_event_seq FROM node_state FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
        let tip = uint("tip_height", row.try_get("tip_height")?)?;
        let last_seq = seq(row.try_get("last_event_seq")?)?;
        Ok(WriteTx {
            tx,
            tip,
            last_seq,
            events: Vec::new(),
        })
    }

    /// The BTC tip height recorded by the node when this transaction began (or as set by
    /// [`WriteTx::set_tip`]).
    pub fn tip(&self) -> u32 {
        self.tip
    }

    /// One verifier by key, as seen inside this transaction.
    pub async fn verifier(&mut self, pk: &XOnlyPublicKey) -> Result<Option<Verifier>, StoreError> {
        read::verifier(&mut self.tx, pk).await
    }

    /// One delegation by staking txid, as seen inside this transaction.
    pub async fn delegation(
        &mut self,
        staking_txid: &Txid,
    ) -> Result<Option<Delegation>, StoreError> {
        read::delegation(&mut self.tx, staking_txid).await
    }

    /// Locks one delegation's row until commit and reads it with its signatures as committed
    /// by then.
    pub async fn lock_delegation(
        &mut self,
        staking_txid: &Txid,
    ) -> Result<Option<Delegation>, StoreError> {
        let found =
            sqlx::query("SELECT 1 AS one FROM delegations WHERE staking_txid = $1 FOR UPDATE")
                .bind(staking_txid.as_byte_array().as_slice())
                .fetch_optional(&mut *self.tx)
                .await?;
        if found.is_none() {
            return Ok(None);
        }
        read::delegation(&mut self.tx, staking_txid).await
    }

    /// The state machines of every delegation that has not ended, locked until commit,
    /// without transactions or signatures (see [`DelegationStateRow`]).
    pub async fn open_states(&mut self) -> Result<Vec<DelegationStateRow>, StoreError> {
        read::open_states(&mut self.tx).await
    }

    /// Delegations a reorg keeping the blocks up to `fork` may have affected, as seen inside
    /// this transaction (see [`crate::node::store::Store::reorg_candidates`]).
    pub async fn reorg_candidates(&mut self, fork: u32) -> Result<Vec<DelegationRef>, StoreError> {
        read::reorg_candidates(&mut self.tx, fork).await
    }

    /// Frees what a delegation that expired before inclusion holds: its covenant signatures
    /// and the staking, unbonding and unbonding slashing transactions (the row keeps its ids,
    /// keys, status and heights). It can never be signed or included again. The staking
    /// slashing transaction stays: selective slashing evidence may still name the delegation
    /// and the round closer reads it.
    pub async fn free_expired(&mut self, staking_txid: &Txid) -> Result<(), StoreError> {
        let id = staking_txid.as_byte_array().as_slice();
        sqlx::query("DELETE FROM covenant_signatures WHERE staking_txid = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "UPDATE delegations SET covenant_sig_count = 0, covenant_sighashes = NULL, \
             staking_tx = '', unbonding_tx = '', unbonding_slashing_tx = '' \
             WHERE staking_txid = $1 AND status = 'EXPIRED' AND start_height IS NULL",
        )
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Forgets the spend recorded for a delegation whose spending block a reorg took away.
    pub async fn clear_spend(&mut self, staking_txid: &Txid) -> Result<(), StoreError> {
        sqlx::query("UPDATE delegations SET spending_txid = NULL WHERE staking_txid = $1")
            .bind(staking_txid.as_byte_array().as_slice())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    fn push_event(&mut self, btc_height: u32, kind: EventKind) {
        self.last_seq += 1;
        self.events.push(Event {
            sequence: self.last_seq,
            btc_height,
            kind,
        });
    }

    /// Inserts a registered verifier and its `verifier_created` event.
    pub async fn insert_verifier(&mut self, v: &NewVerifier) -> Result<(), StoreError> {
        let created = self.last_seq + 1;
        sqlx::query(
            "INSERT INTO verifiers (btc_pk, account, moniker, identity, website, \
             security_contact, details, commission, pop_type, pop_sig, created_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(v.btc_pk.serialize().as_slice())
        .bind(&v.account)
        .bind(&v.description.moniker)
        .bind(&v.description.identity)
        .bind(&v.description.website)
        .bind(&v.description.security_contact)
        .bind(&v.description.details)
        .bind(&v.commission)
        .bind(v.pop.kind.code())
        .bind(&v.pop.signature)
        .bind(seq_column(created)?)
        .execute(&mut *self.tx)
        .await?;
        self.push_event(self.tip, EventKind::VerifierCreated { verifier: v.btc_pk });
        Ok(())
    }

    /// Inserts a registered delegation in `state` (normally a new PENDING one) and its
    /// registration event.
    pub async fn insert_delegation(
        &mut self,
        d: &NewDelegation,
        state: &DelegationState,
    ) -> Result<(), StoreError> {
        let created = self.last_seq + 1;
        let sql = format!(
            "INSERT INTO delegations ({DELEGATION_INSERT_COLUMNS}, created_seq, \
             registered_height) VALUES ({DELEGATION_INSERT_PARAMS}, $25, $26)"
        );
        bind_delegation(sqlx::query(&sql), d, state, None)?
            .bind(seq_column(created)?)
            .bind(int("registered_height", self.tip)?)
            .execute(&mut *self.tx)
            .await?;
        self.push_event(
            self.tip,
            EventKind::DelegationStatusChanged {
                staking_txid: d.staking_txid,
                verifier: d.verifier_btc_pk,
                from: None,
                to: state.status(),
            },
        );
        Ok(())
    }

    /// Stores a covenant member's verified signatures on a delegation.
    pub async fn insert_covenant_sigs(
        &mut self,
        staking_txid: &Txid,
        sigs: &CovenantSigs,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "WITH ins AS (INSERT INTO covenant_signatures (staking_txid, covenant_pk, \
             slashing_adaptor_sig, unbonding_sig, unbonding_slashing_adaptor_sig) \
             VALUES ($1, $2, $3, $4, $5)) \
             UPDATE delegations SET covenant_sig_count = covenant_sig_count + 1 \
             WHERE staking_txid = $1",
        )
        .bind(staking_txid.as_byte_array().as_slice())
        .bind(sigs.covenant_pk.serialize().as_slice())
        .bind(&sigs.slashing_adaptor_sig)
        .bind(&sigs.unbonding_sig)
        .bind(&sigs.unbonding_slashing_adaptor_sig)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Writes a delegation's state-machine facts, and the spending transaction when one was
    /// observed. The covenant signers are stored by [`WriteTx::insert_covenant_sigs`].
    pub async fn save_state(
        &mut self,
        staking_txid: &Txid,
        state: &DelegationState,
        spending_txid: Option<&Txid>,
    ) -> Result<(), StoreError> {
        let r = state.record();
        let updated = sqlx::query(
            "UPDATE delegations SET status = $2, verified_height = $3, start_height = $4, \
             activated_height = $5, ended_height = $6, \
             spending_txid = COALESCE($7, spending_txid) WHERE staking_txid = $1",
        )
        .bind(staking_txid.as_byte_array().as_slice())
        .bind(r.status.as_str())
        .bind(opt_int("verified_height", r.verified_height)?)
        .bind(opt_int("start_height", r.start_height)?)
        .bind(opt_int("activated_height", r.activated_height)?)
        .bind(opt_int("ended_height", r.ended_height)?)
        .bind(spending_txid.map(|t| t.as_byte_array().to_vec()))
        .execute(&mut *self.tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::Missing {
                what: format!("delegation {staking_txid}"),
            });
        }
        Ok(())
    }

    /// Appends one `delegation_status_changed` event per transition, in order.
    pub fn record_transitions(
        &mut self,
        staking_txid: &Txid,
        verifier: &XOnlyPublicKey,
        transitions: &[Transition],
    ) {
        for (height, kind) in transition_events(staking_txid, verifier, transitions) {
            self.push_event(height, kind);
        }
    }

    /// Marks a verifier slashed (its `state` already moved by the state machine), keeps the
    /// revealed secret key as public evidence, and appends the `verifier_slashed` event.
    pub async fn slash_verifier(
        &mut self,
        verifier: &XOnlyPublicKey,
        state: &VerifierState,
        reason: SlashingReason,
        evidence: Option<(&Txid, &[u8; 32])>,
    ) -> Result<(), StoreError> {
        let height = state.slashed_height().ok_or(StoreError::Missing {
            what: format!("slashing height of verifier {verifier}"),
        })?;
        sqlx::query(
            "UPDATE verifiers SET slashed_height = $2, slashing_reason = $3 WHERE btc_pk = $1",
        )
        .bind(verifier.serialize().as_slice())
        .bind(int("slashed_height", height)?)
        .bind(reason.as_str())
        .execute(&mut *self.tx)
        .await?;
        if let Some((staking_txid, secret_key)) = evidence {
            sqlx::query(
                "INSERT INTO slashing_evidence (verifier_btc_pk, staking_txid, secret_key, \
                 btc_height) VALUES ($1, $2, $3, $4)",
            )
            .bind(verifier.serialize().as_slice())
            .bind(staking_txid.as_byte_array().as_slice())
            .bind(secret_key.as_slice())
            .bind(int("btc_height", height)?)
            .execute(&mut *self.tx)
            .await?;
        }
        self.push_event(
            height,
            EventKind::VerifierSlashed {
                verifier: *verifier,
                reason,
            },
        );
        Ok(())
    }

    /// Records the node's BTC tip and, when given, the light client's encoded header chain.
    pub async fn set_tip(
        &mut self,
        height: u32,
        hash: &BlockHash,
        light_client: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE node_state SET tip_height = $1, tip_hash = $2, \
             light_client = COALESCE($3, light_client)",
        )
        .bind(int("tip_height", height)?)
        .bind(hash.as_byte_array().as_slice())
        .bind(light_client)
        .execute(&mut *self.tx)
        .await?;
        self.tip = height;
        Ok(())
    }

    /// Writes the events and commits; returns the events, now durable, for publishing.
    pub async fn commit(mut self) -> Result<Vec<Event>, StoreError> {
        if !self.events.is_empty() {
            write_events(&mut self.tx, &self.events, self.last_seq).await?;
        }
        self.tx.commit().await?;
        Ok(self.events)
    }
}

fn seq_column(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        column: "sequence",
        value: value.to_string(),
    })
}

/// The events' columns, one vector per column, for one multi-row insert.
#[derive(Default)]
struct EventColumns {
    sequence: Vec<i64>,
    kind: Vec<&'static str>,
    staking_txid: Vec<Option<Vec<u8>>>,
    verifier: Vec<Vec<u8>>,
    from: Vec<Option<&'static str>>,
    to: Vec<Option<&'static str>>,
    btc_height: Vec<i32>,
    reason: Vec<Option<&'static str>>,
}

impl EventColumns {
    fn push(&mut self, e: &Event) -> Result<(), StoreError> {
        let (kind, staking_txid, verifier, from, to, reason) = match &e.kind {
            EventKind::DelegationStatusChanged {
                staking_txid,
                verifier,
                from,
                to,
            } => (
                "delegation_status_changed",
                Some(staking_txid.as_byte_array().to_vec()),
                verifier,
                from.map(|s| s.as_str()),
                Some(to.as_str()),
                None,
            ),
            EventKind::VerifierCreated { verifier } => {
                ("verifier_created", None, verifier, None, None, None)
            }
            EventKind::VerifierSlashed { verifier, reason } => (
                "verifier_slashed",
                None,
                verifier,
                None,
                None,
                Some(reason.as_str()),
            ),
        };
        self.sequence.push(seq_column(e.sequence)?);
        self.kind.push(kind);
        self.staking_txid.push(staking_txid);
        self.verifier.push(verifier.serialize().to_vec());
        self.from.push(from);
        self.to.push(to);
        self.btc_height.push(int("btc_height", e.btc_height)?);
        self.reason.push(reason);
        Ok(())
    }
}

/// Appends `events` and records `last_seq` in one statement (one round trip under the lock,
/// which this transaction holds already; the events were numbered on from the same row).
async fn write_events(
    tx: &mut Transaction<'static, Postgres>,
    events: &[Event],
    last_seq: u64,
) -> Result<(), StoreError> {
    let sql = format!(
        "WITH {LOCK_CTE}, {} SELECT (SELECT last_event_seq FROM lock) AS base",
        locked_events_ctes(1, "")
    );
    let row = bind_locked_events(sqlx::query(&sql), events)?
        .fetch_one(&mut **tx)
        .await?;
    let base = seq(row.try_get("base")?)?;
    if base + events.len() as u64 != last_seq {
        return Err(StoreError::Corrupt {
            column: "last_event_seq",
            reason: format!("events numbered up to {last_seq} were written after sequence {base}"),
        });
    }
    Ok(())
}

/// The node-wide writer lock taken inside a statement: the `node_state` row, locked first,
/// as every ordered writer does. A row locked `FOR UPDATE` is returned in its latest version,
/// so `tip_height` and `last_event_seq` are current, whatever the statement's snapshot.
const LOCK_CTE: &str =
    "lock AS MATERIALIZED (SELECT tip_height, last_event_seq FROM node_state FOR UPDATE)";

/// Common table expressions appending events numbered on from the locked `last_event_seq`
/// (columns bound from `$first` on by [`bind_locked_events`]) and moving it past them, when
/// `condition` (a `WHERE` clause) holds. Each array is read through a sub-select: the planner
/// then estimates its length the same with or without the bound values, so PostgreSQL keeps
/// one generic plan for the statement instead of planning it at every execution.
fn locked_events_ctes(first: usize, condition: &str) -> String {
    let p: Vec<String> = (first..first + 8).map(|i| format!("${i}")).collect();
    format!(
        "appended AS (INSERT INTO events (sequence, kind, staking_txid, verifier_btc_pk, \
         from_status, to_status, btc_height, reason) \
         SELECT l.last_event_seq + e.n, e.kind, e.staking_txid, e.verifier_btc_pk, \
                e.from_status, e.to_status, e.btc_height, e.reason \
         FROM lock l, UNNEST((SELECT {}::TEXT[]), (SELECT {}::BYTEA[]), (SELECT {}::BYTEA[]), \
              (SELECT {}::TEXT[]), (SELECT {}::TEXT[]), (SELECT {}::INTEGER[]), \
              (SELECT {}::TEXT[])) WITH ORDINALITY \
              AS e(kind, staking_txid, verifier_btc_pk, from_status, to_status, btc_height, \
                   reason, n) {condition}), \
         sequenced AS (UPDATE node_state SET last_event_seq = last_event_seq + {}::BIGINT \
                       {condition})",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
    )
}

/// Binds the eight parameters of [`locked_events_ctes`] for `events` (sequence ignored).
fn bind_locked_events<'q>(q: PgQuery<'q>, events: &[Event]) -> Result<PgQuery<'q>, StoreError> {
    let mut c = EventColumns::default();
    for e in events {
        c.push(e)?;
    }
    Ok(q.bind(c.kind)
        .bind(c.staking_txid)
        .bind(c.verifier)
        .bind(c.from)
        .bind(c.to)
        .bind(c.btc_height)
        .bind(c.reason)
        .bind(seq_column(events.len() as u64)?))
}

/// One `delegation_status_changed` event (height, kind) per transition, in order.
fn transition_events(
    staking_txid: &Txid,
    verifier: &XOnlyPublicKey,
    transitions: &[Transition],
) -> Vec<(u32, EventKind)> {
    transitions
        .iter()
        .map(|t| {
            (
                t.height,
                EventKind::DelegationStatusChanged {
                    staking_txid: *staking_txid,
                    verifier: *verifier,
                    from: Some(t.from),
                    to: t.to,
                },
            )
        })
        .collect()
}

/// Numbers `kinds` after `last_seq`.
fn numbered(last_seq: u64, kinds: Vec<(u32, EventKind)>) -> Vec<Event> {
    (last_seq + 1..)
        .zip(kinds)
        .map(|(sequence, (btc_height, kind))| Event {
            sequence,
            btc_height,
            kind,
        })
        .collect()
}

/// The statement that counts one covenant member's signatures (see
/// [`add_covenant_sigs_ordered`]): the `UPDATE` re-checks its guard on the row's latest
/// version, and the signatures (and events) are written only when it matched. The ordered
/// form takes the node-wide lock first and also requires the tip the change was decided at.
fn covenant_sigs_sql(ordered: bool) -> String {
    let (lock, tip_guard, events, result) =
        if ordered {
            (
            format!("{LOCK_CTE}, "),
            "AND (SELECT tip_height FROM lock) = $17 ",
            format!(", {}", locked_events_ctes(18, "WHERE EXISTS (SELECT 1 FROM ins)")),
            "(SELECT tip_height FROM lock) AS tip, (SELECT last_event_seq FROM lock) AS last_seq, ",
        )
        } else {
            (String::new(), "", String::new(), "")
        };
    format!(
        "WITH {lock}d AS (UPDATE delegations SET covenant_sig_count = covenant_sig_count + 1, \
                    status = $6, verified_height = $7, start_height = $8, \
                    activated_height = $9, ended_height = $10 \
                    WHERE staking_txid = $1 AND covenant_sig_count = $11 AND status = $12 \
                      AND verified_height IS NOT DISTINCT FROM $13 \
                      AND start_height IS NOT DISTINCT FROM $14 \
                      AND activated_height IS NOT DISTINCT FROM $15 \
                      AND ended_height IS NOT DISTINCT FROM $16 {tip_guard}\
                    RETURNING staking_txid), \
              ins AS (INSERT INTO covenant_signatures (staking_txid, covenant_pk, \
                      slashing_adaptor_sig, unbonding_sig, unbonding_slashing_adaptor_sig) \
                      SELECT staking_txid, $2, $3, $4, $5 FROM d RETURNING 1){events} \
         SELECT {result}EXISTS (SELECT 1 FROM ins) AS applied"
    )
}

/// Binds $1..$16 of [`covenant_sigs_sql`].
fn bind_covenant_sigs<'q>(
    q: PgQuery<'q>,
    staking_txid: &Txid,
    sigs: &'q CovenantSigs,
    before: &DelegationRecord,
    after: &DelegationState,
) -> Result<PgQuery<'q>, StoreError> {
    let a = after.record();
    let count =
        i32::try_from(before.covenant_signers.len()).map_err(|_| StoreError::OutOfRange {
            column: "covenant_sig_count",
            value: before.covenant_signers.len().to_string(),
        })?;
    Ok(q.bind(staking_txid.as_byte_array().to_vec())
        .bind(sigs.covenant_pk.serialize().to_vec())
        .bind(&sigs.slashing_adaptor_sig)
        .bind(&sigs.unbonding_sig)
        .bind(&sigs.unbonding_slashing_adaptor_sig)
        .bind(a.status.as_str())
        .bind(opt_int("verified_height", a.verified_height)?)
        .bind(opt_int("start_height", a.start_height)?)
        .bind(opt_int("activated_height", a.activated_height)?)
        .bind(opt_int("ended_height", a.ended_height)?)
        .bind(count)
        .bind(before.status.as_str())
        .bind(opt_int("verified_height", before.verified_height)?)
        .bind(opt_int("start_height", before.start_height)?)
        .bind(opt_int("activated_height", before.activated_height)?)
        .bind(opt_int("ended_height", before.ended_height)?))
}

/// A refused insert of a row whose key exists.
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

/// Counts a covenant member's signatures that move no status, in one statement outside any
/// transaction and without the node-wide lock (see [`crate::node::store::Store::add_covenant_sigs`]).
pub(super) async fn add_covenant_sigs_unordered(
    conn: &mut sqlx::PgConnection,
    staking_txid: &Txid,
    sigs: &CovenantSigs,
    before: &DelegationRecord,
    after: &DelegationState,
) -> Result<bool, StoreError> {
    let a = after.record();
    let same_facts = a.status == before.status
        && a.verified_height == before.verified_height
        && a.start_height == before.start_height
        && a.activated_height == before.activated_height
        && a.ended_height == before.ended_height;
    if !same_facts {
        // A change of status or heights has events or may race with the chain follower:
        // it takes the ordered path.
        return Err(StoreError::EventsWithoutOrder { events: 1 });
    }
    let sql = covenant_sigs_sql(false);
    match bind_covenant_sigs(sqlx::query(&sql), staking_txid, sigs, before, after)?
        .fetch_one(conn)
        .await
    {
        Ok(row) => Ok(row.try_get("applied")?),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Counts a covenant member's signatures that move the delegation, in one statement that
/// takes the node-wide writer lock, checks that the delegation is still `before` and the tip
/// still `tip` (what `after` and `transitions` were decided on), and stores the signatures,
/// the state `after` and one event per transition. The lock is held by that statement and
/// its commit only: no round trip to the node happens while it is held.
#[allow(clippy::too_many_arguments)]
pub(super) async fn add_covenant_sigs_ordered(
    conn: &mut sqlx::PgConnection,
    staking_txid: &Txid,
    verifier: &XOnlyPublicKey,
    sigs: &CovenantSigs,
    before: &DelegationRecord,
    after: &DelegationState,
    transitions: &[Transition],
    tip: u32,
) -> Result<OrderedSigs, StoreError> {
    let kinds = transition_events(staking_txid, verifier, transitions);
    let unnumbered = numbered(0, kinds.clone());
    let sql = covenant_sigs_sql(true);
    let q = bind_covenant_sigs(sqlx::query(&sql), staking_txid, sigs, before, after)?
        .bind(int("tip_height", tip)?);
    let row = match bind_locked_events(q, &unnumbered)?.fetch_one(conn).await {
        Ok(row) => row,
        Err(e) if is_unique_violation(&e) => return Ok(OrderedSigs::Changed),
        Err(e) => return Err(e.into()),
    };
    let tip_now = uint("tip_height", row.try_get("tip")?)?;
    if row.try_get("applied")? {
        Ok(OrderedSigs::Applied(numbered(
            seq(row.try_get("last_seq")?)?,
            kinds,
        )))
    } else if tip_now != tip {
        Ok(OrderedSigs::TipMoved(tip_now))
    } else {
        Ok(OrderedSigs::Changed)
    }
}

/// Registers a new delegation in one statement that takes the node-wide writer lock, checks
/// that the tip is still `tip` (the params version and event height were chosen at it), that
/// the verifier is registered and not slashed (its row is locked `FOR SHARE`, so the check
/// reads its latest version) and that the staking txid is new, then stores the delegation in
/// `state` with the messages the committee will sign and its registration event. When a check
/// fails nothing is written. The lock is held by that statement and its commit only.
pub(super) async fn register_delegation(
    conn: &mut sqlx::PgConnection,
    d: &NewDelegation,
    state: &DelegationState,
    sighashes: &DelegationSighashes,
    tip: u32,
) -> Result<Registered, StoreError> {
    let kinds = vec![(
        tip,
        EventKind::DelegationStatusChanged {
            staking_txid: d.staking_txid,
            verifier: d.verifier_btc_pk,
            from: None,
            to: state.status(),
        },
    )];
    let unnumbered = numbered(0, kinds.clone());
    let sql = format!(
        "WITH {LOCK_CTE}, \
              v AS MATERIALIZED (SELECT slashed_height FROM verifiers \
                                 WHERE btc_pk = $6 AND (SELECT tip_height FROM lock) = $25 \
                                 FOR SHARE), \
              ins AS (INSERT INTO delegations ({DELEGATION_INSERT_COLUMNS}, created_seq, \
                                               registered_height) \
                      SELECT {DELEGATION_INSERT_PARAMS}, l.last_event_seq + 1, $25 \
                      FROM v, lock l \
                      WHERE v.slashed_height IS NULL \
                        AND NOT EXISTS (SELECT 1 FROM delegations WHERE staking_txid = $1) \
                      RETURNING 1), \
              {} \
         SELECT (SELECT tip_height FROM lock) AS tip, \
                (SELECT last_event_seq FROM lock) AS last_seq, \
                EXISTS (SELECT 1 FROM v) AS known, \
                EXISTS (SELECT 1 FROM v WHERE slashed_height IS NOT NULL) AS slashed, \
                EXISTS (SELECT 1 FROM ins) AS inserted",
        locked_events_ctes(26, "WHERE EXISTS (SELECT 1 FROM ins)")
    );
    let q = bind_delegation(sqlx::query(&sql), d, state, Some(sighashes))?
        .bind(int("tip_height", tip)?);
    let row = match bind_locked_events(q, &unnumbered)?.fetch_one(conn).await {
        Ok(row) => row,
        // Registered by a message that committed after this statement's snapshot was taken.
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("delegations_pkey") => {
            return Ok(Registered::Duplicate)
        }
        Err(e) => return Err(e.into()),
    };
    let tip_now = uint("tip_height", row.try_get("tip")?)?;
    Ok(if tip_now != tip {
        Registered::TipMoved(tip_now)
    } else if row.try_get("inserted")? {
        Registered::Inserted(numbered(seq(row.try_get("last_seq")?)?, kinds))
    } else if !row.try_get::<bool, _>("known")? {
        Registered::UnknownVerifier
    } else if row.try_get("slashed")? {
        Registered::VerifierSlashed
    } else {
        Registered::Duplicate
    })
}
