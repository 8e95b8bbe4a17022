//! A role's local store: SQLite in a file by default, PostgreSQL as an option, reached through
//! sqlx's `Any` driver so that one set of statements serves both. Each role keeps its schema in
//! two migration folders (one per dialect) and migrates on start.
//!
//! On PostgreSQL each role keeps its tables, and its record of applied migrations, in a schema of
//! its own, so that roles (and the node) may share one database without their migrations
//! colliding.
//!
//! SQLite runs in WAL mode with `synchronous = FULL`: a commit is on disk before it returns,
//! which is what "recorded before it is sent" needs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

/// Which database a local store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why the local store cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum LocalStoreError {
    /// The URL names another database.
    #[error("local store URL must start with sqlite: or postgres:, not {0:?}")]
    Scheme(String),
    /// Connecting failed.
    #[error("cannot open the local store: {0}")]
    Connect(sqlx::Error),
    /// A migration failed.
    #[error("cannot migrate the local store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Dialect {
    /// The dialect of `url`.
    ///
    /// # Errors
    /// [`LocalStoreError::Scheme`] for anything but `sqlite:` and `postgres:`/`postgresql:`.
    pub fn of(url: &str) -> Result<Self, LocalStoreError> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Dialect::Postgres)
        } else {
            let scheme: String = url.chars().take_while(|c| *c != ':').take(32).collect();
            Err(LocalStoreError::Scheme(scheme))
        }
    }
}

/// Seconds since the Unix epoch, as the stores keep time (0 before 1970, `i64::MAX` far ahead).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Longest text a role keeps in a row (reasons, what a node answered).
pub const MAX_TEXT: usize = 512;

/// `text` cut to [`MAX_TEXT`] bytes at a character boundary, marked with `…` when cut: a
/// hostile peer cannot grow a store row.
pub fn bounded(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A count or round as a BIGINT column holds it (`i64::MAX` above it).
pub fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A BIGINT column read back as a count or round (0 below zero).
pub fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The SQLite URL of a file, created when missing.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Opens the store at `url` and applies the migrator of its dialect; on PostgreSQL inside
/// schema `schema` (created when missing; a fixed name of the role's, `[a-z_]+`).
///
/// # Errors
/// [`LocalStoreError`]: unknown scheme, unreachable database, failed migration.
pub async fn open(
    url: &str,
    schema: &'static str,
    sqlite: &Migrator,
    postgres: &Migrator,
) -> Result<(AnyPool, Dialect), LocalStoreError> {
    debug_assert!(
        !schema.is_empty() && schema.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    );
    sqlx::any::install_default_drivers();
    let dialect = Dialect::of(url)?;
    let options: AnyConnectOptions = url.parse().map_err(LocalStoreError::Connect)?;
    let pool = AnyPoolOptions::new()
        // One writer is all a role needs; SQLite serializes writers anyway.
        .max_connections(match dialect {
            Dialect::Sqlite => 1,
            Dialect::Postgres => 4,
        })
        .acquire_timeout(Duration::from_secs(10))
        // An in-memory SQLite database lives as long as its one connection: never recycle it.
        .idle_timeout(match dialect {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(Duration::from_secs(600)),
        })
        .max_lifetime(match dialect {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(Duration::from_secs(1800)),
        })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                match dialect {
                    Dialect::Sqlite => {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Dialect::Postgres => {
                        conn.execute(format!("SET search_path TO {schema}").as_str())
                            .await?;
                    }
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(LocalStoreError::Connect)?;
    let migrator = match dialect {
        Dialect::Sqlite => sqlite,
        Dialect::Postgres => {
            // Two roles starting at once may both try to create it; the loser's error is
            // harmless when the schema is there afterwards.
            let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
            if let Err(e) = pool.execute(create.as_str()).await {
                let exists: Option<(i32,)> =
                    sqlx::query_as("SELECT 1 FROM pg_namespace WHERE nspname = $1")
                        .bind(schema)
                        .fetch_optional(&pool)
                        .await
                        .map_err(LocalStoreError::Connect)?;
                if exists.is_none() {
                    return Err(LocalStoreError::Connect(e));
                }
            }
            postgres
        }
    };
    migrator.run(&pool).await?;
    Ok((pool, dialect))
}
