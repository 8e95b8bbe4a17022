//! The slasher's local store: the verifiers it saw slashed, every slashing transaction it
//! signed (recorded before its first broadcast, so that a restart sends the same bytes and
//! never a second witness), and where each delegation stands.
//!
//! SQLite by default (WAL, `synchronous = FULL`), PostgreSQL as an option; one set of
//! statements through sqlx's `Any` driver, the schema in `migrations/{sqlite,postgres}`.

use std::collections::BTreeSet;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::Transaction;
use fiamma_covenant::delegation::SlashingTx;
use fiamma_role::store::unix_now as now;
use fiamma_role::store::{self as local, bounded, int, to_u64, Dialect, LocalStoreError};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");
/// The PostgreSQL schema of this role's tables.
const SCHEMA: &str = "fiamma_slasher";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening or migrating failed.
    #[error(transparent)]
    Open(#[from] LocalStoreError),
    /// A statement failed.
    #[error("local store: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row does not decode: the file was changed by hand or is corrupt.
    #[error("local store row is corrupt: {0}")]
    Corrupt(&'static str),
}

/// The word stored for an output.
pub fn output_word(which: SlashingTx) -> &'static str {
    match which {
        SlashingTx::Staking => "staking",
        SlashingTx::Unbonding => "unbonding",
    }
}

/// A slashed verifier as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierRow {
    /// Its key.
    pub verifier: XOnlyPublicKey,
    /// `equivocation` or `selective_slashing`.
    pub reason: String,
    /// The round it was slashed in.
    pub slashed_in_round: u64,
}

/// Where a delegation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationRow {
    /// The staking txid.
    pub staking_txid: String,
    /// The slashed verifier.
    pub verifier: XOnlyPublicKey,
    /// waiting, broadcast, confirming, slashed, escaped or refused.
    pub state: String,
    /// `staking`, `unbonding`, or empty.
    pub output: String,
    /// The transaction that spends the output, or empty.
    pub spender_txid: String,
    /// Its confirmations.
    pub confirmations: u32,
    /// Whether nothing is left to do.
    pub done: bool,
    /// A word for a person.
    pub detail: String,
}

/// A recorded slashing transaction and its broadcasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashingTxRow {
    /// The delegation.
    pub staking_txid: String,
    /// `staking` or `unbonding`.
    pub output: String,
    /// Its txid.
    pub txid: String,
    /// How often it was broadcast.
    pub broadcasts: u64,
    /// What the Bitcoin node said last; empty when it accepted it.
    pub last_result: String,
}

/// The slasher's progress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Unix time of the last completed step.
    pub last_step_at: i64,
    /// The Bitcoin tip it saw.
    pub tip_height: u32,
    /// Slashed verifiers the node published.
    pub slashed_verifiers: u64,
    /// Delegations with something left to do.
    pub open_delegations: u64,
}

/// Everything `fiamma slasher status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Progress, if a step ever completed.
    pub progress: Option<Progress>,
    /// The slashed verifiers.
    pub verifiers: Vec<VerifierRow>,
    /// Their delegations.
    pub delegations: Vec<DelegationRow>,
    /// The slashing transactions signed.
    pub transactions: Vec<SlashingTxRow>,
}

/// The slasher's local store.
#[derive(Debug, Clone)]
pub struct SlasherStore {
    pool: AnyPool,
    dialect: Dialect,
}

fn key(bytes: &[u8], what: &'static str) -> Result<XOnlyPublicKey, StoreError> {
    XOnlyPublicKey::from_slice(bytes).map_err(|_| StoreError::Corrupt(what))
}

impl SlasherStore {
    /// Opens (creating a SQLite file when missing) and migrates the store at `url`.
    ///
    /// # Errors
    /// [`StoreError::Open`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let (pool, dialect) = local::open(url, SCHEMA, &SQLITE, &POSTGRES).await?;
        Ok(SlasherStore { pool, dialect })
    }

    /// Which database it runs on.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Records a slashed verifier; recording it again changes nothing.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn note_verifier(&self, v: &VerifierRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO verifier (verifier_pk, reason, slashed_in_round, seen_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (verifier_pk) DO NOTHING",
        )
        .bind(v.verifier.serialize().to_vec())
        .bind(bounded(&v.reason))
        .bind(int(v.slashed_in_round))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The staking txids of the delegations with nothing left to do.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn done(&self) -> Result<BTreeSet<String>, StoreError> {
        sqlx::query("SELECT staking_txid FROM delegation WHERE done = 1")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| Ok(row.try_get("staking_txid")?))
            .collect()
    }

    /// The slashing transaction recorded for `which` output of `staking_txid`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn slashing_tx(
        &self,
        staking_txid: &str,
        which: SlashingTx,
    ) -> Result<Option<Transaction>, StoreError> {
        let row = sqlx::query("SELECT tx FROM slashing_tx WHERE staking_txid = $1 AND output = $2")
            .bind(staking_txid)
            .bind(output_word(which))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let bytes: Vec<u8> = row.try_get("tx")?;
            deserialize(&bytes).map_err(|_| StoreError::Corrupt("slashing_tx.tx"))
        })
        .transpose()
    }

    /// Records the signed slashing transaction `tx` before it is broadcast, unless one is
    /// recorded for that output already; returns the recorded one (which is the one to send).
    ///
    /// # Errors
    /// [`StoreError`]; then nothing may be broadcast.
    pub async fn record_slashing_tx(
        &self,
        staking_txid: &str,
        which: SlashingTx,
        tx: &Transaction,
    ) -> Result<Transaction, StoreError> {
        sqlx::query(
            "INSERT INTO slashing_tx (staking_txid, output, txid, tx, recorded_at, broadcasts, \
             last_broadcast_at, last_result) VALUES ($1, $2, $3, $4, $5, 0, 0, '') \
             ON CONFLICT (staking_txid, output) DO NOTHING",
        )
        .bind(staking_txid)
        .bind(output_word(which))
        .bind(tx.compute_txid().to_string())
        .bind(serialize(tx))
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.slashing_tx(staking_txid, which)
            .await?
            .ok_or(StoreError::Corrupt("slashing_tx row"))
    }

    /// Counts a broadcast of the recorded transaction and what the node said (`""`: accepted).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn note_broadcast(
        &self,
        staking_txid: &str,
        which: SlashingTx,
        result: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE slashing_tx SET broadcasts = broadcasts + 1, last_broadcast_at = $1, \
             last_result = $2 WHERE staking_txid = $3 AND output = $4",
        )
        .bind(now())
        .bind(bounded(result))
        .bind(staking_txid)
        .bind(output_word(which))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records where a delegation stands.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn set_delegation(&self, d: &DelegationRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO delegation (staking_txid, verifier_pk, state, output, spender_txid, \
             confirmations, done, detail, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (staking_txid) DO UPDATE SET state = excluded.state, \
             output = excluded.output, spender_txid = excluded.spender_txid, \
             confirmations = excluded.confirmations, done = excluded.done, \
             detail = excluded.detail, updated_at = excluded.updated_at",
        )
        .bind(&d.staking_txid)
        .bind(d.verifier.serialize().to_vec())
        .bind(&d.state)
        .bind(&d.output)
        .bind(&d.spender_txid)
        .bind(i64::from(d.confirmations))
        .bind(i64::from(u8::from(d.done)))
        .bind(bounded(&d.detail))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the progress row.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn record_progress(&self, p: &Progress) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO progress (id, last_step_at, tip_height, slashed_verifiers, \
             open_delegations) VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
             last_step_at = excluded.last_step_at, tip_height = excluded.tip_height, \
             slashed_verifiers = excluded.slashed_verifiers, \
             open_delegations = excluded.open_delegations",
        )
        .bind(p.last_step_at)
        .bind(i64::from(p.tip_height))
        .bind(int(p.slashed_verifiers))
        .bind(int(p.open_delegations))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Everything `fiamma slasher status` shows.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn summary(&self) -> Result<Summary, StoreError> {
        let progress = sqlx::query(
            "SELECT last_step_at, tip_height, slashed_verifiers, open_delegations \
             FROM progress WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .map(|row| {
            Ok::<_, StoreError>(Progress {
                last_step_at: row.try_get("last_step_at")?,
                tip_height: u32::try_from(row.try_get::<i64, _>("tip_height")?)
                    .map_err(|_| StoreError::Corrupt("progress.tip_height"))?,
                slashed_verifiers: to_u64(row.try_get("slashed_verifiers")?),
                open_delegations: to_u64(row.try_get("open_delegations")?),
            })
        })
        .transpose()?;
        let verifiers = sqlx::query(
            "SELECT verifier_pk, reason, slashed_in_round FROM verifier ORDER BY verifier_pk",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let pk: Vec<u8> = row.try_get("verifier_pk")?;
            Ok(VerifierRow {
                verifier: key(&pk, "verifier.verifier_pk")?,
                reason: row.try_get("reason")?,
                slashed_in_round: to_u64(row.try_get("slashed_in_round")?),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let delegations = sqlx::query(
            "SELECT staking_txid, verifier_pk, state, output, spender_txid, confirmations, \
             done, detail FROM delegation ORDER BY staking_txid",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let pk: Vec<u8> = row.try_get("verifier_pk")?;
            Ok(DelegationRow {
                staking_txid: row.try_get("staking_txid")?,
                verifier: key(&pk, "delegation.verifier_pk")?,
                state: row.try_get("state")?,
                output: row.try_get("output")?,
                spender_txid: row.try_get("spender_txid")?,
                confirmations: u32::try_from(row.try_get::<i64, _>("confirmations")?)
                    .map_err(|_| StoreError::Corrupt("delegation.confirmations"))?,
                done: row.try_get::<i64, _>("done")? == 1,
                detail: row.try_get("detail")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let transactions = sqlx::query(
            "SELECT staking_txid, output, txid, broadcasts, last_result FROM slashing_tx \
             ORDER BY staking_txid, output",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(SlashingTxRow {
                staking_txid: row.try_get("staking_txid")?,
                output: row.try_get("output")?,
                txid: row.try_get("txid")?,
                broadcasts: to_u64(row.try_get("broadcasts")?),
                last_result: row.try_get("last_result")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Summary {
            progress,
            verifiers,
            delegations,
            transactions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::secp256k1::{SecretKey, SECP256K1};

    fn verifier() -> XOnlyPublicKey {
        SecretKey::from_slice(&[7; 32])
            .expect("key")
            .x_only_public_key(SECP256K1)
            .0
    }

    fn tx(witness_byte: u8) -> Transaction {
        Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![bitcoin::TxIn {
                previous_output: bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array([1; 32]), 0),
                witness: bitcoin::Witness::from_slice(&[vec![witness_byte; 64]]),
                ..bitcoin::TxIn::default()
            }],
            output: vec![bitcoin::TxOut {
                value: bitcoin::Amount::from_sat(1000),
                script_pubkey: bitcoin::ScriptBuf::new(),
            }],
        }
    }

    /// SQLite here; the daemon test runs a slasher on PostgreSQL.
    async fn stores() -> Vec<SlasherStore> {
        vec![SlasherStore::open("sqlite::memory:").await.expect("sqlite")]
    }

    #[tokio::test]
    async fn the_first_recorded_witness_is_the_one_kept() {
        for store in stores().await {
            let first = store
                .record_slashing_tx("aa", SlashingTx::Staking, &tx(1))
                .await
                .expect("recorded");
            assert_eq!(first, tx(1));
            // A second signing (after a crash between signing and recording elsewhere) gives
            // another witness of the same txid: the recorded one stays.
            let again = store
                .record_slashing_tx("aa", SlashingTx::Staking, &tx(2))
                .await
                .expect("kept");
            assert_eq!(again, tx(1), "{:?}", store.dialect());
            store
                .note_broadcast("aa", SlashingTx::Staking, "")
                .await
                .expect("noted");
            store
                .note_broadcast("aa", SlashingTx::Staking, "txn-mempool-conflict")
                .await
                .expect("noted");
            store
                .note_verifier(&VerifierRow {
                    verifier: verifier(),
                    reason: "equivocation".into(),
                    slashed_in_round: 9,
                })
                .await
                .expect("verifier");
            let row = DelegationRow {
                staking_txid: "aa".into(),
                verifier: verifier(),
                state: "confirming".into(),
                output: "staking".into(),
                spender_txid: tx(1).compute_txid().to_string(),
                confirmations: 1,
                done: false,
                detail: "1 of 2".into(),
            };
            store.set_delegation(&row).await.expect("set");
            assert!(store.done().await.expect("done").is_empty());
            let done = DelegationRow {
                state: "slashed".into(),
                confirmations: 2,
                done: true,
                ..row
            };
            store.set_delegation(&done).await.expect("set");
            assert!(store.done().await.expect("done").contains("aa"));
            store
                .record_progress(&Progress {
                    last_step_at: 5,
                    tip_height: 120,
                    slashed_verifiers: 1,
                    open_delegations: 0,
                })
                .await
                .expect("progress");
            let s = store.summary().await.expect("summary");
            assert_eq!(s.delegations, vec![done]);
            assert_eq!(s.verifiers.len(), 1);
            assert_eq!(s.transactions.len(), 1);
            assert_eq!(s.transactions[0].broadcasts, 2);
            assert_eq!(s.transactions[0].last_result, "txn-mempool-conflict");
            assert_eq!(s.progress.expect("progress").tip_height, 120);
        }
    }
}
