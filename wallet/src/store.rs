//! BDK's persister traits over sqlx: each changeset the wallet stages is appended as one JSON
//! row, and loading merges the rows in order (as BDK's own file store does); a long history is
//! compacted into one row on load. One table serves many wallets, keyed by name, so a role
//! keeps its wallet in its own local store.
//!
//! Migrations are versioned from 1001 and run with `ignore_missing`, so they share a database
//! (and sqlx's migration table) with the role holding the wallet, whose own migrations count
//! from 1 (run those with [`role_migrator`] too).

use std::future::Future;
use std::pin::Pin;

use bdk_wallet::chain::Merge;
use bdk_wallet::{AsyncWalletPersister, ChangeSet, WalletPersister};
use fiamma_role::store::{self as local, Dialect, LocalStoreError};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

/// Rows after which loading compacts a wallet's history into one.
const COMPACT_AFTER: usize = 64;

/// Why the wallet store failed.
#[derive(Debug, thiserror::Error)]
pub enum WalletStoreError {
    /// Opening or migrating failed.
    #[error(transparent)]
    Open(#[from] LocalStoreError),
    /// A statement failed.
    #[error("wallet store: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrating the wallet's table failed.
    #[error("cannot migrate the wallet store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored changeset does not decode.
    #[error("wallet store row {id} of wallet {wallet:?} is corrupt: {reason}")]
    Corrupt {
        /// The wallet.
        wallet: String,
        /// The row.
        id: i64,
        /// What is wrong.
        reason: String,
    },
    /// A changeset does not encode.
    #[error("wallet {wallet:?}: cannot encode a changeset: {reason}")]
    Encode {
        /// The wallet.
        wallet: String,
        /// What is wrong.
        reason: String,
    },
}

/// The wallet table's migrator for `dialect`, tolerant of the holding role's migrations.
pub fn migrator(dialect: Dialect) -> Migrator {
    let mut migrator = match dialect {
        Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Dialect::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    migrator.set_ignore_missing(true);
    migrator
}

/// `migrator` made tolerant of the wallet's migrations in the same database: a role holding
/// a wallet runs its own migrations through this.
pub fn role_migrator(mut migrator: Migrator) -> Migrator {
    migrator.set_ignore_missing(true);
    migrator
}

/// One wallet's changesets in a local store.
#[derive(Debug, Clone)]
pub struct WalletStore {
    pool: AnyPool,
    wallet: String,
}

impl WalletStore {
    /// Opens the store at `url` (`sqlite:` or `postgres:`; there in schema `fiamma_wallet`),
    /// migrates the wallet table, and serves the wallet named `wallet`.
    ///
    /// # Errors
    /// [`WalletStoreError::Open`] or [`WalletStoreError::Migrate`].
    pub async fn open(url: &str, wallet: &str) -> Result<Self, WalletStoreError> {
        let dialect = Dialect::of(url)?;
        let m = migrator(dialect);
        let (pool, _) = local::open(url, "fiamma_wallet", &m, &m).await?;
        Ok(WalletStore {
            pool,
            wallet: wallet.to_owned(),
        })
    }

    /// The wallet named `wallet` in a role's already open store: migrates the wallet table.
    ///
    /// # Errors
    /// [`WalletStoreError::Migrate`].
    pub async fn on_pool(
        pool: AnyPool,
        dialect: Dialect,
        wallet: &str,
    ) -> Result<Self, WalletStoreError> {
        migrator(dialect).run(&pool).await?;
        Ok(WalletStore {
            pool,
            wallet: wallet.to_owned(),
        })
    }

    /// The wallet's name.
    pub fn wallet(&self) -> &str {
        &self.wallet
    }

    /// Whether the store holds any changeset of this wallet.
    ///
    /// # Errors
    /// [`WalletStoreError::Database`].
    pub async fn exists(&self) -> Result<bool, WalletStoreError> {
        let row = sqlx::query("SELECT id FROM wallet_changeset WHERE wallet = $1 LIMIT 1")
            .bind(&self.wallet)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Every changeset of the wallet merged in order; compacts a long history into one row.
    ///
    /// # Errors
    /// [`WalletStoreError::Database`] or [`WalletStoreError::Corrupt`].
    pub async fn load(&self) -> Result<ChangeSet, WalletStoreError> {
        let rows =
            sqlx::query("SELECT id, changeset FROM wallet_changeset WHERE wallet = $1 ORDER BY id")
                .bind(&self.wallet)
                .fetch_all(&self.pool)
                .await?;
        let mut merged = ChangeSet::default();
        let mut last = None;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let text: String = row.try_get("changeset")?;
            let changeset: ChangeSet =
                serde_json::from_str(&text).map_err(|e| WalletStoreError::Corrupt {
                    wallet: self.wallet.clone(),
                    id,
                    reason: e.to_string(),
                })?;
            merged.merge(changeset);
            last = Some(id);
        }
        if let Some(last) = last.filter(|_| rows.len() > COMPACT_AFTER) {
            self.compact(&merged, last).await?;
        }
        Ok(merged)
    }

    /// Replaces the rows up to `last` by `merged`, in one transaction.
    async fn compact(&self, merged: &ChangeSet, last: i64) -> Result<(), WalletStoreError> {
        let text = self.encode(merged)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM wallet_changeset WHERE wallet = $1 AND id <= $2")
            .bind(&self.wallet)
            .bind(last)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO wallet_changeset (wallet, changeset) VALUES ($1, $2)")
            .bind(&self.wallet)
            .bind(text)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    fn encode(&self, changeset: &ChangeSet) -> Result<String, WalletStoreError> {
        serde_json::to_string(changeset).map_err(|e| WalletStoreError::Encode {
            wallet: self.wallet.clone(),
            reason: e.to_string(),
        })
    }

    /// Appends `changeset` (nothing when it is empty).
    ///
    /// # Errors
    /// [`WalletStoreError::Database`] or [`WalletStoreError::Encode`].
    pub async fn append(&self, changeset: &ChangeSet) -> Result<(), WalletStoreError> {
        if changeset.is_empty() {
            return Ok(());
        }
        let text = self.encode(changeset)?;
        sqlx::query("INSERT INTO wallet_changeset (wallet, changeset) VALUES ($1, $2)")
            .bind(&self.wallet)
            .bind(text)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

type FutureResult<'a, T> = Pin<Box<dyn Future<Output = Result<T, WalletStoreError>> + Send + 'a>>;

impl AsyncWalletPersister for WalletStore {
    type Error = WalletStoreError;

    fn initialize<'a>(persister: &'a mut Self) -> FutureResult<'a, ChangeSet>
    where
        Self: 'a,
    {
        Box::pin(persister.load())
    }

    fn persist<'a>(persister: &'a mut Self, changeset: &'a ChangeSet) -> FutureResult<'a, ()>
    where
        Self: 'a,
    {
        Box::pin(persister.append(changeset))
    }
}

/// [`WalletStore`] behind BDK's blocking [`WalletPersister`], for code off the async runtime
/// (tokio's blocking pool, or a thread of its own): each call blocks on the runtime handle.
#[derive(Debug, Clone)]
pub struct BlockingWalletStore {
    store: WalletStore,
    runtime: tokio::runtime::Handle,
}

impl BlockingWalletStore {
    /// `store`, driven by `runtime`. Never call its methods on a runtime worker thread.
    pub fn new(store: WalletStore, runtime: tokio::runtime::Handle) -> Self {
        BlockingWalletStore { store, runtime }
    }
}

impl WalletPersister for BlockingWalletStore {
    type Error = WalletStoreError;

    fn initialize(persister: &mut Self) -> Result<ChangeSet, Self::Error> {
        persister.runtime.block_on(persister.store.load())
    }

    fn persist(persister: &mut Self, changeset: &ChangeSet) -> Result<(), Self::Error> {
        persister
            .runtime
            .block_on(persister.store.append(changeset))
    }
}
