//! The staking module's PostgreSQL store (schema in `migrations/`).
//!
//! Reads go straight to the pool. Every change is one database transaction per message: a
//! [`WriteTx`], or for registrations and covenant signatures one statement (see `write`), so a
//! crash leaves either the state before the message or the state after it; every writer that
//! appends events holds the node-wide writer lock until it commits, so the event log is
//! gapless and in commit order.

mod codec;
pub mod model;
mod read;
mod write;

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{BlockHash, Txid};
use fiamma_staking::delegation::DelegationSighashes;
use fiamma_staking::state::{DelegationRecord, DelegationState, Transition};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Postgres;
use sqlx::Row;

pub use model::{
    CovenantSigs, Delegation, DelegationFilter, DelegationRef, DelegationStateRow, Description,
    Event, EventKind, NewDelegation, NewVerifier, Pop, PopKind, SigningView, SlashingReason,
    Verifier, VotingPowerEntry,
};
pub use write::{OrderedSigs, Registered, WriteTx};

/// The schema migrations compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A store failure. Database errors are the server's or the connection's; the others mean a
/// stored row or a value does not fit its column.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or the connection failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value does not fit its column.
    #[error("value {value} does not fit column {column}")]
    OutOfRange {
        /// The column.
        column: &'static str,
        /// The value.
        value: String,
    },
    /// A stored value cannot be decoded.
    #[error("corrupt column {column}: {reason}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A row the operation relies on is absent.
    #[error("{what} is missing from the database")]
    Missing {
        /// What was looked for.
        what: String,
    },
    /// A write without the node-wide order was asked to change a delegation's status, which
    /// appends events (a bug in the caller).
    #[error("a write without the node-wide order would append {events} events")]
    EventsWithoutOrder {
        /// How many.
        events: usize,
    },
    /// The params file changed a version the database already holds.
    #[error(
        "params version {version} differs from the one recorded in the database; a recorded \
         version cannot change, add a new version with a later activation height instead"
    )]
    ParamsChanged {
        /// The version.
        version: u32,
    },
}

/// One params version to record: its number, activation height and canonical JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamsRecord {
    /// Version number.
    pub version: u32,
    /// BTC height from which it is in force.
    pub btc_activation_height: u32,
    /// The full version as JSON.
    pub body: serde_json::Value,
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects to `url` with up to `max_connections` connections.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        // No ping before each acquire: it is one more round trip per message, and a
        // connection that died fails its statement, which is answered as retryable.
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .test_before_acquire(false)
            .connect(url)
            .await?;
        Ok(Store { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Store { pool }
    }

    /// Applies the pending schema migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Records the params versions; a version already recorded must be identical.
    pub async fn record_params(&self, versions: &[ParamsRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for p in versions {
            let version = codec::int("version", p.version)?;
            sqlx::query(
                "INSERT INTO params_versions (version, btc_activation_height, body) \
                 VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
            )
            .bind(version)
            .bind(codec::int(
                "btc_activation_height",
                p.btc_activation_height,
            )?)
            .bind(&p.body)
            .execute(&mut *tx)
            .await?;
            let same: bool = sqlx::query(
                "SELECT body = $2 AND btc_activation_height = $3 AS same \
                 FROM params_versions WHERE version = $1",
            )
            .bind(version)
            .bind(&p.body)
            .bind(codec::int(
                "btc_activation_height",
                p.btc_activation_height,
            )?)
            .fetch_one(&mut *tx)
            .await?
            .try_get("same")?;
            if !same {
                return Err(StoreError::ParamsChanged { version: p.version });
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Begins a write transaction; it waits for any other writer to finish.
    pub async fn begin(&self) -> Result<WriteTx, StoreError> {
        WriteTx::begin(&self.pool).await
    }

    /// One pooled connection, for a message that reads and then writes without the
    /// node-wide lock: one acquire instead of one per statement.
    pub async fn connection(&self) -> Result<StoreConn, StoreError> {
        Ok(StoreConn {
            conn: self.pool.acquire().await?,
        })
    }

    /// Registers a validated delegation in one statement under the node-wide writer lock
    /// (see [`Registered`]); `tip` is the node tip it was validated at.
    pub async fn register_delegation(
        &self,
        d: &NewDelegation,
        state: &DelegationState,
        sighashes: &DelegationSighashes,
        tip: u32,
    ) -> Result<Registered, StoreError> {
        let mut conn = self.pool.acquire().await?;
        write::register_delegation(&mut conn, d, state, sighashes, tip).await
    }

    /// The node's recorded BTC tip (height 0 and no hash before the first block is followed).
    pub async fn tip(&self) -> Result<(u32, Option<BlockHash>), StoreError> {
        let row = sqlx::query("SELECT tip_height, tip_hash FROM node_state")
            .fetch_one(&self.pool)
            .await?;
        let hash: Option<Vec<u8>> = row.try_get("tip_hash")?;
        Ok((
            codec::uint("tip_height", row.try_get("tip_height")?)?,
            hash.map(|h| codec::block_hash("tip_hash", &h))
                .transpose()?,
        ))
    }

    /// The light client's stored header chain, if any.
    pub async fn light_client(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query("SELECT light_client FROM node_state")
            .fetch_one(&self.pool)
            .await?
            .try_get("light_client")?)
    }

    /// The number of the last event written.
    pub async fn last_event_sequence(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT last_event_seq FROM node_state")
            .fetch_one(&self.pool)
            .await?;
        codec::seq(row.try_get("last_event_seq")?)
    }

    /// One verifier by key.
    pub async fn verifier(&self, pk: &XOnlyPublicKey) -> Result<Option<Verifier>, StoreError> {
        read::verifier(&mut *self.pool.acquire().await?, pk).await
    }

    /// Up to `limit` verifiers ordered by key, after `after`.
    pub async fn verifiers(
        &self,
        after: Option<&XOnlyPublicKey>,
        limit: u32,
    ) -> Result<Vec<Verifier>, StoreError> {
        read::verifiers(&mut *self.pool.acquire().await?, after, limit).await
    }

    /// One delegation by staking txid, with its covenant signatures.
    pub async fn delegation(&self, staking_txid: &Txid) -> Result<Option<Delegation>, StoreError> {
        read::delegation(&mut *self.pool.acquire().await?, staking_txid).await
    }

    /// Up to `limit` delegations matching `filter`, ordered by staking txid bytes, after `after`.
    pub async fn delegations(
        &self,
        filter: &DelegationFilter,
        after: Option<&Txid>,
        limit: u32,
    ) -> Result<Vec<Delegation>, StoreError> {
        read::delegations(&mut *self.pool.acquire().await?, filter, after, limit).await
    }

    /// PENDING delegations under `params_versions` that `covenant_pk` has not signed.
    pub async fn pending_for_covenant(
        &self,
        covenant_pk: &XOnlyPublicKey,
        params_versions: &[u32],
        after: Option<&Txid>,
        limit: u32,
    ) -> Result<Vec<Delegation>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        read::pending_for_covenant(&mut conn, covenant_pk, params_versions, after, limit).await
    }

    /// Ids, outpoints and heights of every delegation that has not ended, without their
    /// transactions: what the chain follower looks up.
    pub async fn open_delegation_refs(&self) -> Result<Vec<DelegationRef>, StoreError> {
        read::open_delegation_refs(&mut *self.pool.acquire().await?).await
    }

    /// Delegations a reorg keeping the blocks up to `fork` may have affected (see
    /// [`read::reorg_candidates`]).
    pub async fn reorg_candidates(&self, fork: u32) -> Result<Vec<DelegationRef>, StoreError> {
        read::reorg_candidates(&mut *self.pool.acquire().await?, fork).await
    }

    /// Voting power per verifier at BTC height `h`.
    pub async fn voting_power_table(&self, h: u32) -> Result<Vec<VotingPowerEntry>, StoreError> {
        read::voting_power_table(&mut *self.pool.acquire().await?, h).await
    }

    /// Up to `limit` events from sequence `from` on.
    pub async fn events_from(&self, from: u64, limit: u32) -> Result<Vec<Event>, StoreError> {
        read::events_from(&mut *self.pool.acquire().await?, from, limit).await
    }
}

/// A connection taken from the store's pool (see [`Store::connection`]); each statement on
/// it commits on its own.
pub struct StoreConn {
    conn: PoolConnection<Postgres>,
}

impl StoreConn {
    /// One delegation by staking txid, with its covenant signatures.
    pub async fn delegation(
        &mut self,
        staking_txid: &Txid,
    ) -> Result<Option<Delegation>, StoreError> {
        read::delegation(&mut self.conn, staking_txid).await
    }

    /// What a covenant member's signatures on a delegation are checked and counted against.
    pub async fn signing_view(
        &mut self,
        staking_txid: &Txid,
    ) -> Result<Option<SigningView>, StoreError> {
        read::signing_view(&mut self.conn, staking_txid).await
    }

    /// Counts a covenant member's verified signatures that move the delegation to no other
    /// status, in one statement: no transaction block and no node-wide lock, since such a
    /// change commutes with every message except those on the same delegation, and the
    /// statement's guard (the delegation is still `before`) catches those. `after` must have
    /// the status and heights of `before`. Returns `false`, having written nothing, when the
    /// delegation changed since `before` was read or the member's signatures are stored.
    pub async fn add_covenant_sigs(
        &mut self,
        staking_txid: &Txid,
        sigs: &CovenantSigs,
        before: &DelegationRecord,
        after: &DelegationState,
    ) -> Result<bool, StoreError> {
        write::add_covenant_sigs_unordered(&mut self.conn, staking_txid, sigs, before, after).await
    }

    /// Counts a covenant member's verified signatures that move the delegation (the quorum),
    /// with its events, in one statement under the node-wide writer lock; `after` and
    /// `transitions` were decided on `before` at tip `tip` (see [`OrderedSigs`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn add_covenant_sigs_ordered(
        &mut self,
        staking_txid: &Txid,
        verifier: &XOnlyPublicKey,
        sigs: &CovenantSigs,
        before: &DelegationRecord,
        after: &DelegationState,
        transitions: &[Transition],
        tip: u32,
    ) -> Result<OrderedSigs, StoreError> {
        write::add_covenant_sigs_ordered(
            &mut self.conn,
            staking_txid,
            verifier,
            sigs,
            before,
            after,
            transitions,
            tip,
        )
        .await
    }
}

#[cfg(test)]
mod tests;
