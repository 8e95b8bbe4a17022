//! The member's local store: what it signed (written and synced before the signatures leave
//! the process), what it refused and why, and how far it has followed the node.
//!
//! SQLite by default, PostgreSQL as an option (one set of statements through sqlx's `Any`
//! driver; the schema is in `migrations/{sqlite,postgres}`).

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::schnorr;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::TapSighash;
use fiamma_covenant::adaptor::AdaptorSignature;
use fiamma_covenant::signing::{CovenantSignatures, VerifierAdaptorSig};
use fiamma_role::store::unix_now as now;
use fiamma_role::store::{self as local, bounded, to_u64, Dialect, LocalStoreError};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");
/// The PostgreSQL schema of this role's tables.
const SCHEMA: &str = "fiamma_covenant";

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
    #[error("local store row for {staking_txid} is corrupt: {what}")]
    Corrupt {
        /// The delegation.
        staking_txid: String,
        /// Which column.
        what: &'static str,
    },
}

/// The three messages of a delegation, as signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedMessages {
    /// Staking slashing transaction.
    pub slashing: TapSighash,
    /// Unbonding transaction.
    pub unbonding: TapSighash,
    /// Unbonding slashing transaction.
    pub unbonding_slashing: TapSighash,
}

/// One delegation this member signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRecord {
    /// The staking txid the node files it under.
    pub staking_txid: String,
    /// The params version it was checked against.
    pub params_version: u32,
    /// What was signed.
    pub messages: SignedMessages,
    /// The signatures (one verifier, as the node registers).
    pub signatures: CovenantSignatures,
    /// Whether the node has them.
    pub delivered: bool,
}

/// Why a delegation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// It breaks a rule of the member's own params (final).
    Rule,
    /// Its fields do not decode (final).
    Decode,
    /// The node's params differ from the member's own, or it names a version the member lacks.
    Params,
    /// The node refused the member's signatures.
    Node,
    /// The signer refused or failed.
    Signer,
}

impl RefusalKind {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::Rule => "rule",
            RefusalKind::Decode => "decode",
            RefusalKind::Params => "params",
            RefusalKind::Node => "node",
            RefusalKind::Signer => "signer",
        }
    }

    /// Whether asking again can change the answer.
    pub fn is_final(self) -> bool {
        matches!(self, RefusalKind::Rule | RefusalKind::Decode)
    }
}

/// A stored refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The delegation.
    pub staking_txid: String,
    /// Why, in a word.
    pub kind: String,
    /// Why, in full.
    pub reason: String,
    /// How often it was refused.
    pub attempts: u64,
}

/// The member's progress, for `fiamma covenant status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Unix time of the last completed step.
    pub last_step_at: i64,
    /// Delegations the node listed as waiting for this member at the last step.
    pub pending_seen: u64,
    /// Newest node event the member has seen.
    pub last_event_sequence: u64,
    /// Why the member signs nothing right now, if it does.
    pub params_problem: Option<String>,
}

/// Counts for `fiamma covenant status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Delegations signed.
    pub signed: u64,
    /// Of those, delivered to the node.
    pub delivered: u64,
    /// The most recent refusals.
    pub refusals: Vec<Refusal>,
    /// Progress, if a step ever completed.
    pub progress: Option<Progress>,
}

/// The member's local store.
#[derive(Debug, Clone)]
pub struct MemberStore {
    pool: AnyPool,
    dialect: Dialect,
}

async fn insert_signed(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    r: &SignedRecord,
) -> Result<(), StoreError> {
    let (slashing, unbonding_slashing) = match (
        r.signatures.slashing.first(),
        r.signatures.unbonding_slashing.first(),
    ) {
        (Some(s), Some(u)) => (s, u),
        _ => {
            return Err(StoreError::Corrupt {
                staking_txid: r.staking_txid.clone(),
                what: "adaptor signatures",
            })
        }
    };
    sqlx::query(
        "INSERT INTO signed (staking_txid, params_version, covenant_pk, slashing_sighash, \
         unbonding_sighash, unbonding_slashing_sighash, verifier_pk, slashing_adaptor_sig, \
         unbonding_slashing_adaptor_sig, unbonding_sig, signed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&r.staking_txid)
    .bind(i64::from(r.params_version))
    .bind(r.signatures.covenant.serialize().to_vec())
    .bind(r.messages.slashing.to_byte_array().to_vec())
    .bind(r.messages.unbonding.to_byte_array().to_vec())
    .bind(r.messages.unbonding_slashing.to_byte_array().to_vec())
    .bind(slashing.verifier.serialize().to_vec())
    .bind(slashing.signature.to_bytes().to_vec())
    .bind(unbonding_slashing.signature.to_bytes().to_vec())
    .bind(r.signatures.unbonding.as_ref().to_vec())
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_refusal(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    staking_txid: &str,
    kind: RefusalKind,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refused (staking_txid, kind, reason, attempts, first_at, last_at) \
         VALUES ($1, $2, $3, 1, $4, $4) \
         ON CONFLICT (staking_txid) DO UPDATE SET kind = excluded.kind, \
         reason = excluded.reason, attempts = refused.attempts + 1, last_at = excluded.last_at",
    )
    .bind(staking_txid)
    .bind(kind.as_str())
    .bind(bounded(reason))
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl MemberStore {
    /// Opens (creating a SQLite file when missing) and migrates the store at `url`.
    ///
    /// # Errors
    /// [`StoreError::Open`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let (pool, dialect) = local::open(url, SCHEMA, &SQLITE, &POSTGRES).await?;
        Ok(MemberStore { pool, dialect })
    }

    /// Which database it runs on.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The record of `staking_txid`, if this member signed it.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn signed(&self, staking_txid: &str) -> Result<Option<SignedRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT params_version, covenant_pk, slashing_sighash, unbonding_sighash, \
             unbonding_slashing_sighash, verifier_pk, slashing_adaptor_sig, \
             unbonding_slashing_adaptor_sig, unbonding_sig, delivered \
             FROM signed WHERE staking_txid = $1",
        )
        .bind(staking_txid)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let corrupt = |what| StoreError::Corrupt {
            staking_txid: staking_txid.to_owned(),
            what,
        };
        let hash = |column: &'static str| -> Result<TapSighash, StoreError> {
            let bytes: Vec<u8> = row.try_get(column)?;
            TapSighash::from_slice(&bytes).map_err(|_| corrupt(column))
        };
        let adaptor = |column: &'static str| -> Result<AdaptorSignature, StoreError> {
            let bytes: Vec<u8> = row.try_get(column)?;
            AdaptorSignature::from_slice(&bytes).map_err(|_| corrupt(column))
        };
        let key = |column: &'static str| -> Result<XOnlyPublicKey, StoreError> {
            let bytes: Vec<u8> = row.try_get(column)?;
            XOnlyPublicKey::from_slice(&bytes).map_err(|_| corrupt(column))
        };
        let verifier = key("verifier_pk")?;
        let unbonding_bytes: Vec<u8> = row.try_get("unbonding_sig")?;
        let unbonding = schnorr::Signature::from_slice(&unbonding_bytes)
            .map_err(|_| corrupt("unbonding_sig"))?;
        let version: i64 = row.try_get("params_version")?;
        let delivered: i64 = row.try_get("delivered")?;
        Ok(Some(SignedRecord {
            staking_txid: staking_txid.to_owned(),
            params_version: u32::try_from(version).map_err(|_| corrupt("params_version"))?,
            messages: SignedMessages {
                slashing: hash("slashing_sighash")?,
                unbonding: hash("unbonding_sighash")?,
                unbonding_slashing: hash("unbonding_slashing_sighash")?,
            },
            signatures: CovenantSignatures {
                covenant: key("covenant_pk")?,
                slashing: vec![VerifierAdaptorSig {
                    verifier,
                    signature: adaptor("slashing_adaptor_sig")?,
                }],
                unbonding_slashing: vec![VerifierAdaptorSig {
                    verifier,
                    signature: adaptor("unbonding_slashing_adaptor_sig")?,
                }],
                unbonding,
            },
            delivered: delivered != 0,
        }))
    }

    /// Records what was signed. Never replaces an earlier record: a second record for one
    /// delegation is an error, so one delegation never gets two different signatures.
    ///
    /// # Errors
    /// [`StoreError::Database`], including a unique violation when a record exists.
    pub async fn record_signed(&self, r: &SignedRecord) -> Result<(), StoreError> {
        self.record_decisions(std::slice::from_ref(r), &[]).await
    }

    /// Records new signatures and refusals in one transaction: one durable write per page of
    /// delegations, before any of the signatures is sent.
    ///
    /// # Errors
    /// [`StoreError`]; nothing is recorded then.
    pub async fn record_decisions(
        &self,
        signed: &[SignedRecord],
        refused: &[(String, RefusalKind, String)],
    ) -> Result<(), StoreError> {
        if signed.is_empty() && refused.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for r in signed {
            insert_signed(&mut tx, r).await?;
        }
        for (txid, kind, reason) in refused {
            upsert_refusal(&mut tx, txid, *kind, reason).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks signatures as held by the node and records the node's refusals, in one write.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn record_delivered(
        &self,
        delivered: &[String],
        refused: &[(String, RefusalKind, String)],
    ) -> Result<(), StoreError> {
        if delivered.is_empty() && refused.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for txid in delivered {
            sqlx::query("UPDATE signed SET delivered = 1 WHERE staking_txid = $1")
                .bind(txid)
                .execute(&mut *tx)
                .await?;
        }
        for (txid, kind, reason) in refused {
            upsert_refusal(&mut tx, txid, *kind, reason).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The refusal of `staking_txid`, if any.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn refusal(&self, staking_txid: &str) -> Result<Option<Refusal>, StoreError> {
        let row = sqlx::query("SELECT kind, reason, attempts FROM refused WHERE staking_txid = $1")
            .bind(staking_txid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(Refusal {
                staking_txid: staking_txid.to_owned(),
                kind: row.try_get("kind")?,
                reason: row.try_get("reason")?,
                attempts: to_u64(row.try_get("attempts")?),
            })
        })
        .transpose()
    }

    /// Records (or counts again) a refusal of `staking_txid`.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn record_refusal(
        &self,
        staking_txid: &str,
        kind: RefusalKind,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.record_decisions(&[], &[(staking_txid.to_owned(), kind, reason.to_owned())])
            .await
    }

    /// Records the state of the last completed step.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn record_progress(&self, p: &Progress) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO progress (id, last_step_at, pending_seen, last_event_sequence, \
             params_problem) VALUES (1, $1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET last_step_at = excluded.last_step_at, \
             pending_seen = excluded.pending_seen, \
             last_event_sequence = excluded.last_event_sequence, \
             params_problem = excluded.params_problem",
        )
        .bind(p.last_step_at)
        .bind(i64::try_from(p.pending_seen).unwrap_or(i64::MAX))
        .bind(i64::try_from(p.last_event_sequence).unwrap_or(i64::MAX))
        .bind(p.params_problem.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Counts, the `limit` most recent refusals and the progress.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn summary(&self, limit: u32) -> Result<Summary, StoreError> {
        let counts = sqlx::query(
            "SELECT COUNT(*) AS signed, CAST(COALESCE(SUM(delivered), 0) AS BIGINT) AS delivered \
             FROM signed",
        )
        .fetch_one(&self.pool)
        .await?;
        let refusals = sqlx::query(
            "SELECT staking_txid, kind, reason, attempts FROM refused \
             ORDER BY last_at DESC, staking_txid LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok(Refusal {
                staking_txid: row.try_get("staking_txid")?,
                kind: row.try_get("kind")?,
                reason: row.try_get("reason")?,
                attempts: to_u64(row.try_get("attempts")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let progress = sqlx::query(
            "SELECT last_step_at, pending_seen, last_event_sequence, params_problem \
             FROM progress WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .map(|row| {
            Ok::<_, sqlx::Error>(Progress {
                last_step_at: row.try_get("last_step_at")?,
                pending_seen: to_u64(row.try_get("pending_seen")?),
                last_event_sequence: to_u64(row.try_get("last_event_sequence")?),
                params_problem: row.try_get("params_problem")?,
            })
        })
        .transpose()?;
        Ok(Summary {
            signed: to_u64(counts.try_get("signed")?),
            delivered: to_u64(counts.try_get("delivered")?),
            refusals,
            progress,
        })
    }
}
