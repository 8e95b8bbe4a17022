//! Queries shared by reads on the pool and reads inside a write transaction.

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::Txid;
use fiamma_staking::delegation::DelegationSighashes;
use fiamma_staking::state::{DelegationRecord, DelegationState, DelegationStatus, VerifierState};
use sqlx::{PgConnection, Row};

use super::codec::{int, opt_uint, seq, txid, uint, unsat, xonly};
use super::model::{
    CovenantSigs, Delegation, DelegationFilter, DelegationRef, DelegationStateRow, Description,
    Event, EventKind, NewDelegation, NewVerifier, Pop, PopKind, SigningView, SlashingReason,
    Verifier, VotingPowerEntry,
};
use super::StoreError;

const VERIFIER_COLUMNS: &str = "btc_pk, account, moniker, identity, website, security_contact, \
     details, commission, pop_type, pop_sig, slashed_height, slashing_reason";

const DELEGATION_COLUMNS: &str = "staking_txid, staker_account, staker_btc_pk, pop_type, \
     pop_sig, verifier_btc_pk, staking_time_blocks, staking_value_sat, staking_tx, \
     staking_output_index, slashing_tx, staker_slashing_sig, unbonding_time_blocks, \
     unbonding_tx, unbonding_txid, unbonding_slashing_tx, staker_unbonding_slashing_sig, \
     params_version, status, verified_height, start_height, activated_height, ended_height, \
     spending_txid, covenant_sighashes, registered_height";

/// The columns of a delegation's state machine, without transactions or signatures.
const STATE_COLUMNS: &str = "staking_txid, verifier_btc_pk, params_version, status, \
     staking_time_blocks, unbonding_time_blocks, registered_height, verified_height, \
     start_height, activated_height, ended_height";

/// The columns of a [`DelegationRef`].
const REF_COLUMNS: &str = "staking_txid, staking_output_index, params_version, status, \
     start_height, activated_height";

/// A delegation's covenant signatures as four arrays in member-key order, so that one
/// delegation is read with its signatures in one round trip.
const SIGNATURE_ARRAYS: &str = "\
     ARRAY(SELECT c.covenant_pk FROM covenant_signatures c \
           WHERE c.staking_txid = d.staking_txid ORDER BY c.covenant_pk) AS sig_pks, \
     ARRAY(SELECT c.slashing_adaptor_sig FROM covenant_signatures c \
           WHERE c.staking_txid = d.staking_txid ORDER BY c.covenant_pk) AS sig_slashing, \
     ARRAY(SELECT c.unbonding_sig FROM covenant_signatures c \
           WHERE c.staking_txid = d.staking_txid ORDER BY c.covenant_pk) AS sig_unbonding, \
     ARRAY(SELECT c.unbonding_slashing_adaptor_sig FROM covenant_signatures c \
           WHERE c.staking_txid = d.staking_txid ORDER BY c.covenant_pk) AS sig_unbonding_slashing";

fn pop(code: i16, signature: Vec<u8>) -> Result<Pop, StoreError> {
    let kind = PopKind::from_code(code).ok_or_else(|| StoreError::Corrupt {
        column: "pop_type",
        reason: format!("unknown code {code}"),
    })?;
    Ok(Pop { kind, signature })
}

fn verifier_from_row(row: &sqlx::postgres::PgRow) -> Result<Verifier, StoreError> {
    let reason: Option<String> = row.try_get("slashing_reason")?;
    let slashing_reason = reason
        .map(|r| {
            SlashingReason::parse(&r).ok_or(StoreError::Corrupt {
                column: "slashing_reason",
                reason: format!("unknown reason {r:?}"),
            })
        })
        .transpose()?;
    Ok(Verifier {
        registration: NewVerifier {
            btc_pk: xonly("btc_pk", row.try_get("btc_pk")?)?,
            account: row.try_get("account")?,
            description: Description {
                moniker: row.try_get("moniker")?,
                identity: row.try_get("identity")?,
                website: row.try_get("website")?,
                security_contact: row.try_get("security_contact")?,
                details: row.try_get("details")?,
            },
            commission: row.try_get("commission")?,
            pop: pop(row.try_get("pop_type")?, row.try_get("pop_sig")?)?,
        },
        state: VerifierState::restore(opt_uint("slashed_height", row.try_get("slashed_height")?)?),
        slashing_reason,
    })
}

/// The `status` column.
fn status_from_row(row: &sqlx::postgres::PgRow) -> Result<DelegationStatus, StoreError> {
    let status_text: String = row.try_get("status")?;
    status_text.parse().map_err(|_| StoreError::Corrupt {
        column: "status",
        reason: format!("unknown status {status_text:?}"),
    })
}

/// The state machine of a delegation row whose counted signers are `signers`.
fn state_from_row(
    row: &sqlx::postgres::PgRow,
    signers: BTreeSet<XOnlyPublicKey>,
) -> Result<DelegationState, StoreError> {
    let status = status_from_row(row)?;
    let record = DelegationRecord {
        status,
        staking_time_blocks: uint("staking_time_blocks", row.try_get("staking_time_blocks")?)?,
        unbonding_time_blocks: uint(
            "unbonding_time_blocks",
            row.try_get("unbonding_time_blocks")?,
        )?,
        registered_height: uint("registered_height", row.try_get("registered_height")?)?,
        covenant_signers: signers,
        verified_height: opt_uint("verified_height", row.try_get("verified_height")?)?,
        start_height: opt_uint("start_height", row.try_get("start_height")?)?,
        activated_height: opt_uint("activated_height", row.try_get("activated_height")?)?,
        ended_height: opt_uint("ended_height", row.try_get("ended_height")?)?,
    };
    DelegationState::restore(record).map_err(|e| StoreError::Corrupt {
        column: "status",
        reason: e.to_string(),
    })
}

/// The `covenant_sighashes` column.
fn sighashes_from_row(
    row: &sqlx::postgres::PgRow,
) -> Result<Option<DelegationSighashes>, StoreError> {
    let sighashes: Option<Vec<u8>> = row.try_get("covenant_sighashes")?;
    sighashes
        .map(|b| {
            DelegationSighashes::from_bytes(&b).ok_or(StoreError::Corrupt {
                column: "covenant_sighashes",
                reason: format!("expected 96 bytes, found {}", b.len()),
            })
        })
        .transpose()
}

fn delegation_from_row(
    row: &sqlx::postgres::PgRow,
    covenant_sigs: Vec<CovenantSigs>,
) -> Result<Delegation, StoreError> {
    let state = state_from_row(row, covenant_sigs.iter().map(|s| s.covenant_pk).collect())?;
    let staking_time_blocks = state.record().staking_time_blocks;
    let unbonding_time_blocks = state.record().unbonding_time_blocks;
    let covenant_sighashes = sighashes_from_row(row)?;
    let spending: Option<Vec<u8>> = row.try_get("spending_txid")?;
    Ok(Delegation {
        registration: NewDelegation {
            staking_txid: txid("staking_txid", row.try_get("staking_txid")?)?,
            staker_account: row.try_get("staker_account")?,
            staker_btc_pk: xonly("staker_btc_pk", row.try_get("staker_btc_pk")?)?,
            pop: pop(row.try_get("pop_type")?, row.try_get("pop_sig")?)?,
            verifier_btc_pk: xonly("verifier_btc_pk", row.try_get("verifier_btc_pk")?)?,
            staking_time_blocks,
            staking_value_sat: unsat("staking_value_sat", row.try_get("staking_value_sat")?)?,
            staking_tx: row.try_get("staking_tx")?,
            staking_output_index: uint(
                "staking_output_index",
                row.try_get("staking_output_index")?,
            )?,
            slashing_tx: row.try_get("slashing_tx")?,
            staker_slashing_sig: row.try_get("staker_slashing_sig")?,
            unbonding_time_blocks,
            unbonding_tx: row.try_get("unbonding_tx")?,
            unbonding_txid: txid("unbonding_txid", row.try_get("unbonding_txid")?)?,
            unbonding_slashing_tx: row.try_get("unbonding_slashing_tx")?,
            staker_unbonding_slashing_sig: row.try_get("staker_unbonding_slashing_sig")?,
            params_version: uint("params_version", row.try_get("params_version")?)?,
        },
        state,
        spending_txid: spending.map(|b| txid("spending_txid", &b)).transpose()?,
        covenant_sigs,
        covenant_sighashes,
    })
}

/// Covenant signatures of the given delegations, grouped per delegation in member-key order.
async fn covenant_sigs_of(
    conn: &mut PgConnection,
    txids: &[Vec<u8>],
) -> Result<Vec<(Vec<u8>, CovenantSigs)>, StoreError> {
    let rows = sqlx::query(
        "SELECT staking_txid, covenant_pk, slashing_adaptor_sig, unbonding_sig, \
         unbonding_slashing_adaptor_sig FROM covenant_signatures \
         WHERE staking_txid = ANY($1) ORDER BY staking_txid, covenant_pk",
    )
    .bind(txids)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("staking_txid")?,
                CovenantSigs {
                    covenant_pk: xonly("covenant_pk", row.try_get("covenant_pk")?)?,
                    slashing_adaptor_sig: row.try_get("slashing_adaptor_sig")?,
                    unbonding_sig: row.try_get("unbonding_sig")?,
                    unbonding_slashing_adaptor_sig: row
                        .try_get("unbonding_slashing_adaptor_sig")?,
                },
            ))
        })
        .collect()
}

/// Decodes delegation rows and attaches their covenant signatures.
async fn delegations_with_sigs(
    conn: &mut PgConnection,
    rows: Vec<sqlx::postgres::PgRow>,
) -> Result<Vec<Delegation>, StoreError> {
    let ids = rows
        .iter()
        .map(|r| r.try_get::<Vec<u8>, _>("staking_txid"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut by_delegation: BTreeMap<Vec<u8>, Vec<CovenantSigs>> = BTreeMap::new();
    for (id, sigs) in covenant_sigs_of(conn, &ids).await? {
        by_delegation.entry(id).or_default().push(sigs);
    }
    rows.iter()
        .zip(ids)
        .map(|(row, id)| delegation_from_row(row, by_delegation.remove(&id).unwrap_or_default()))
        .collect()
}

/// The keyset-pagination key for "after this txid": empty sorts before every txid.
fn txid_page_key(after: Option<&Txid>) -> Vec<u8> {
    after
        .map(|t| t.as_byte_array().to_vec())
        .unwrap_or_default()
}

/// One verifier by key.
pub(crate) async fn verifier(
    conn: &mut PgConnection,
    pk: &XOnlyPublicKey,
) -> Result<Option<Verifier>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {VERIFIER_COLUMNS} FROM verifiers WHERE btc_pk = $1"
    ))
    .bind(pk.serialize().as_slice())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(verifier_from_row).transpose()
}

/// Verifiers ordered by key, after `after`.
pub(crate) async fn verifiers(
    conn: &mut PgConnection,
    after: Option<&XOnlyPublicKey>,
    limit: u32,
) -> Result<Vec<Verifier>, StoreError> {
    let after = after.map(|pk| pk.serialize().to_vec()).unwrap_or_default();
    let rows = sqlx::query(&format!(
        "SELECT {VERIFIER_COLUMNS} FROM verifiers WHERE btc_pk > $1 ORDER BY btc_pk LIMIT $2"
    ))
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.iter().map(verifier_from_row).collect()
}

/// Decodes the arrays of [`SIGNATURE_ARRAYS`].
fn sigs_from_arrays(row: &sqlx::postgres::PgRow) -> Result<Vec<CovenantSigs>, StoreError> {
    let pks: Vec<Vec<u8>> = row.try_get("sig_pks")?;
    let slashing: Vec<Vec<u8>> = row.try_get("sig_slashing")?;
    let unbonding: Vec<Vec<u8>> = row.try_get("sig_unbonding")?;
    let unbonding_slashing: Vec<Vec<u8>> = row.try_get("sig_unbonding_slashing")?;
    if [slashing.len(), unbonding.len(), unbonding_slashing.len()] != [pks.len(); 3] {
        return Err(StoreError::Corrupt {
            column: "covenant_signatures",
            reason: "signature arrays of different lengths".into(),
        });
    }
    pks.iter()
        .zip(slashing)
        .zip(unbonding)
        .zip(unbonding_slashing)
        .map(|(((pk, slashing), unbonding), unbonding_slashing)| {
            Ok(CovenantSigs {
                covenant_pk: xonly("covenant_pk", pk)?,
                slashing_adaptor_sig: slashing,
                unbonding_sig: unbonding,
                unbonding_slashing_adaptor_sig: unbonding_slashing,
            })
        })
        .collect()
}

/// One delegation by staking txid, with its signatures, in one statement.
pub(crate) async fn delegation(
    conn: &mut PgConnection,
    staking_txid: &Txid,
) -> Result<Option<Delegation>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {DELEGATION_COLUMNS}, {SIGNATURE_ARRAYS} FROM delegations d \
         WHERE staking_txid = $1"
    ))
    .bind(staking_txid.as_byte_array().as_slice())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| delegation_from_row(&row, sigs_from_arrays(&row)?))
        .transpose()
}

/// What a covenant member's signatures are checked and counted against, without the
/// transactions and the signatures themselves.
pub(crate) async fn signing_view(
    conn: &mut PgConnection,
    staking_txid: &Txid,
) -> Result<Option<SigningView>, StoreError> {
    let row = sqlx::query(
        "SELECT staker_btc_pk, verifier_btc_pk, params_version, status, staking_time_blocks, \
         unbonding_time_blocks, registered_height, verified_height, start_height, \
         activated_height, ended_height, covenant_sighashes, ARRAY(SELECT c.covenant_pk FROM covenant_signatures c \
                                   WHERE c.staking_txid = d.staking_txid) AS signers \
         FROM delegations d WHERE staking_txid = $1",
    )
    .bind(staking_txid.as_byte_array().as_slice())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let signers: Vec<Vec<u8>> = row.try_get("signers")?;
    let signers = signers
        .iter()
        .map(|pk| xonly("covenant_pk", pk))
        .collect::<Result<_, _>>()?;
    Ok(Some(SigningView {
        staking_txid: *staking_txid,
        staker_btc_pk: xonly("staker_btc_pk", row.try_get("staker_btc_pk")?)?,
        verifier_btc_pk: xonly("verifier_btc_pk", row.try_get("verifier_btc_pk")?)?,
        params_version: uint("params_version", row.try_get("params_version")?)?,
        state: state_from_row(&row, signers)?,
        covenant_sighashes: sighashes_from_row(&row)?,
    }))
}

/// Delegations matching `filter`, ordered by staking txid (internal byte order), after `after`.
pub(crate) async fn delegations(
    conn: &mut PgConnection,
    filter: &DelegationFilter,
    after: Option<&Txid>,
    limit: u32,
) -> Result<Vec<Delegation>, StoreError> {
    let after = txid_page_key(after);
    let rows = sqlx::query(&format!(
        "SELECT {DELEGATION_COLUMNS} FROM delegations \
         WHERE staking_txid > $1 \
           AND ($2::TEXT IS NULL OR status = $2) \
           AND ($3::BYTEA IS NULL OR staker_btc_pk = $3) \
           AND ($4::BYTEA IS NULL OR verifier_btc_pk = $4) \
         ORDER BY staking_txid LIMIT $5"
    ))
    .bind(after)
    .bind(filter.status.map(DelegationStatus::as_str))
    .bind(filter.staker.map(|pk| pk.serialize().to_vec()))
    .bind(filter.verifier.map(|pk| pk.serialize().to_vec()))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    delegations_with_sigs(conn, rows).await
}

/// PENDING delegations under one of `params_versions` that `covenant_pk` has not signed.
pub(crate) async fn pending_for_covenant(
    conn: &mut PgConnection,
    covenant_pk: &XOnlyPublicKey,
    params_versions: &[u32],
    after: Option<&Txid>,
    limit: u32,
) -> Result<Vec<Delegation>, StoreError> {
    let after = txid_page_key(after);
    let versions = params_versions
        .iter()
        .map(|v| int("params_version", *v))
        .collect::<Result<Vec<_>, _>>()?;
    let rows = sqlx::query(&format!(
        "SELECT {DELEGATION_COLUMNS} FROM delegations d \
         WHERE status = 'PENDING' AND staking_txid > $1 AND params_version = ANY($2) \
           AND NOT EXISTS (SELECT 1 FROM covenant_signatures c \
                           WHERE c.staking_txid = d.staking_txid AND c.covenant_pk = $3) \
         ORDER BY staking_txid LIMIT $4"
    ))
    .bind(after)
    .bind(versions)
    .bind(covenant_pk.serialize().as_slice())
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    delegations_with_sigs(conn, rows).await
}

fn ref_from_row(row: &sqlx::postgres::PgRow) -> Result<DelegationRef, StoreError> {
    Ok(DelegationRef {
        staking_txid: txid("staking_txid", row.try_get("staking_txid")?)?,
        staking_output_index: uint("staking_output_index", row.try_get("staking_output_index")?)?,
        params_version: uint("params_version", row.try_get("params_version")?)?,
        status: status_from_row(row)?,
        start_height: opt_uint("start_height", row.try_get("start_height")?)?,
        activated_height: opt_uint("activated_height", row.try_get("activated_height")?)?,
    })
}

/// Ids, outpoints and heights of every delegation that has not ended, ordered by staking
/// txid; no transaction bytes or signatures are read.
pub(crate) async fn open_delegation_refs(
    conn: &mut PgConnection,
) -> Result<Vec<DelegationRef>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {REF_COLUMNS} FROM delegations \
         WHERE status IN ('PENDING', 'VERIFIED', 'ACTIVE') ORDER BY staking_txid"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(ref_from_row).collect()
}

/// Delegations a reorg that kept blocks up to `fork` may have taken something from: an
/// inclusion above the fork (of one not UNBONDED) or, for an UNBONDED one, a spend observed
/// at a tip above it (the spend's block may be gone).
pub(crate) async fn reorg_candidates(
    conn: &mut PgConnection,
    fork: u32,
) -> Result<Vec<DelegationRef>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {REF_COLUMNS} FROM delegations \
         WHERE (start_height > $1 AND status <> 'UNBONDED') \
            OR (status = 'UNBONDED' AND ended_height > $1) ORDER BY staking_txid"
    ))
    .bind(int("fork", fork)?)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(ref_from_row).collect()
}

/// The state machines of every delegation that has not ended, ordered by staking txid,
/// without transactions or signatures (their signer sets are empty); inside a transaction
/// their rows stay locked until it ends.
pub(crate) async fn open_states(
    conn: &mut PgConnection,
) -> Result<Vec<DelegationStateRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {STATE_COLUMNS} FROM delegations \
         WHERE status IN ('PENDING', 'VERIFIED', 'ACTIVE') ORDER BY staking_txid FOR UPDATE"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DelegationStateRow {
                staking_txid: txid("staking_txid", row.try_get("staking_txid")?)?,
                verifier_btc_pk: xonly("verifier_btc_pk", row.try_get("verifier_btc_pk")?)?,
                params_version: uint("params_version", row.try_get("params_version")?)?,
                state: state_from_row(row, BTreeSet::new())?,
            })
        })
        .collect()
}

/// Voting power per verifier at BTC height `h`: delegations active at `h` of verifiers not
/// slashed by `h`, ordered by power descending, then key ascending. Mirrors
/// `DelegationState::is_active_at` and `VerifierState::has_power_at`.
pub(crate) async fn voting_power_table(
    conn: &mut PgConnection,
    h: u32,
) -> Result<Vec<VotingPowerEntry>, StoreError> {
    // Summed per verifier first (an index-only scan of delegations_by_activation), then
    // joined with the verifiers: one probe per verifier rather than one per delegation.
    let rows = sqlx::query(
        "SELECT p.verifier_btc_pk, p.power \
         FROM (SELECT verifier_btc_pk, SUM(staking_value_sat)::BIGINT AS power \
               FROM delegations \
               WHERE activated_height <= $1 AND (ended_height IS NULL OR ended_height > $1) \
               GROUP BY verifier_btc_pk) p \
         JOIN verifiers v ON v.btc_pk = p.verifier_btc_pk \
         WHERE v.slashed_height IS NULL OR v.slashed_height > $1 \
         ORDER BY p.power DESC, p.verifier_btc_pk",
    )
    .bind(int("btc_height", h)?)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(VotingPowerEntry {
                verifier: xonly("verifier_btc_pk", row.try_get("verifier_btc_pk")?)?,
                power_sat: unsat("power", row.try_get("power")?)?,
            })
        })
        .collect()
}

fn event_from_row(row: &sqlx::postgres::PgRow) -> Result<Event, StoreError> {
    let kind: String = row.try_get("kind")?;
    let verifier = xonly("verifier_btc_pk", row.try_get("verifier_btc_pk")?)?;
    let status = |column: &'static str, text: Option<String>| {
        text.map(|t| {
            t.parse::<DelegationStatus>()
                .map_err(|_| StoreError::Corrupt {
                    column,
                    reason: format!("unknown status {t:?}"),
                })
        })
        .transpose()
    };
    let kind = match kind.as_str() {
        "delegation_status_changed" => {
            let id: Option<Vec<u8>> = row.try_get("staking_txid")?;
            let id = id.ok_or(StoreError::Corrupt {
                column: "staking_txid",
                reason: "missing on a delegation event".into(),
            })?;
            EventKind::DelegationStatusChanged {
                staking_txid: txid("staking_txid", &id)?,
                verifier,
                from: status("from_status", row.try_get("from_status")?)?,
                to: status("to_status", row.try_get("to_status")?)?.ok_or(StoreError::Corrupt {
                    column: "to_status",
                    reason: "missing on a delegation event".into(),
                })?,
            }
        }
        "verifier_created" => EventKind::VerifierCreated { verifier },
        "verifier_slashed" => {
            let reason: Option<String> = row.try_get("reason")?;
            let reason =
                reason
                    .as_deref()
                    .and_then(SlashingReason::parse)
                    .ok_or(StoreError::Corrupt {
                        column: "reason",
                        reason: format!("bad slashing reason {reason:?}"),
                    })?;
            EventKind::VerifierSlashed { verifier, reason }
        }
        other => {
            return Err(StoreError::Corrupt {
                column: "kind",
                reason: format!("unknown event kind {other:?}"),
            })
        }
    };
    Ok(Event {
        sequence: seq(row.try_get("sequence")?)?,
        btc_height: uint("btc_height", row.try_get("btc_height")?)?,
        kind,
    })
}

/// Up to `limit` events with sequence ≥ `from`, in order.
pub(crate) async fn events_from(
    conn: &mut PgConnection,
    from: u64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT sequence, kind, staking_txid, verifier_btc_pk, from_status, to_status, \
         btc_height, reason FROM events WHERE sequence >= $1 ORDER BY sequence LIMIT $2",
    )
    .bind(from)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.iter().map(event_from_row).collect()
}
