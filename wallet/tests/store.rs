//! The wallet store against BDK's own persister test suite (`bdk_wallet::persist_test_utils`),
//! on SQLite and on a real PostgreSQL, through the blocking adapter BDK's suite drives.

use std::path::Path;
use std::sync::OnceLock;

use bdk_wallet::persist_test_utils as suite;
use fiamma_wallet::{BlockingWalletStore, WalletStore};
use sqlx::PgPool;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// A SQLite store in the suite's file, the wallet named `name`.
fn sqlite(path: &Path, name: &str) -> anyhow::Result<BlockingWalletStore> {
    let url = fiamma_role::store::sqlite_url(path);
    let store = runtime().block_on(WalletStore::open(&url, name))?;
    Ok(BlockingWalletStore::new(store, runtime().handle().clone()))
}

#[test]
fn sqlite_passes_bdks_persister_suite() {
    suite::persist_wallet_changeset("wallet.sqlite", |p| sqlite(p, "w"));
    suite::persist_multiple_wallet_changesets("wallets.sqlite", |p| {
        Ok((sqlite(p, "first")?, sqlite(p, "second")?))
    });
    suite::persist_network("network.sqlite", |p| sqlite(p, "w"));
    suite::persist_keychains("keychains.sqlite", |p| sqlite(p, "w"));
    suite::persist_single_keychain("single.sqlite", |p| sqlite(p, "w"));
}

/// The URL of the database behind a `#[sqlx::test]` pool.
fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set by .cargo/config.toml");
    let (server, _) = base.rsplit_once('/').expect("url with a database");
    let db = pool
        .connect_options()
        .get_database()
        .expect("test database")
        .to_owned();
    format!("{server}/{db}")
}

#[sqlx::test(migrations = false)]
async fn postgres_passes_bdks_persister_suite(pool: PgPool) {
    let url = database_url(&pool);
    // The suite blocks: run it off this runtime, each store on the shared one, each case's
    // wallets named after the suite's file so that no two cases share rows.
    tokio::task::spawn_blocking(move || {
        let store = |p: &Path, suffix: &str| -> anyhow::Result<BlockingWalletStore> {
            let name = format!("{}{suffix}", p.display());
            let store = runtime().block_on(WalletStore::open(&url, &name))?;
            Ok(BlockingWalletStore::new(store, runtime().handle().clone()))
        };
        suite::persist_wallet_changeset("a", |p| store(p, ""));
        suite::persist_multiple_wallet_changesets("b", |p| Ok((store(p, "/1")?, store(p, "/2")?)));
        suite::persist_network("c", |p| store(p, ""));
        suite::persist_keychains("d", |p| store(p, ""));
        suite::persist_single_keychain("e", |p| store(p, ""));
    })
    .await
    .expect("the suite passes");
}

#[tokio::test]
async fn a_long_history_is_compacted_into_one_row_that_loads_the_same() {
    use bdk_wallet::{KeychainKind, Wallet};
    let dir = tempfile::tempdir().expect("dir");
    let url = fiamma_role::store::sqlite_url(&dir.path().join("w.sqlite"));
    let mut store = WalletStore::open(&url, "w").await.expect("open");
    let keys = fiamma_wallet::WalletKeys::from_entropy(&[3; 16]).expect("keys");
    let pair = keys
        .descriptors(bitcoin::Network::Regtest)
        .expect("descriptors");
    let mut wallet = Wallet::create(pair.external.to_string(), pair.internal.to_string())
        .network(bitcoin::Network::Regtest)
        .create_wallet_async(&mut store)
        .await
        .expect("created");
    let mut addresses = Vec::new();
    for _ in 0..80 {
        addresses.push(wallet.reveal_next_address(KeychainKind::External).address);
        wallet.persist_async(&mut store).await.expect("persisted");
    }
    let first = store.load().await.expect("loads and compacts");
    let second = store.load().await.expect("loads the compacted row");
    assert_eq!(first, second);
    let reloaded = Wallet::load()
        .load_wallet_async(&mut store)
        .await
        .expect("loads")
        .expect("exists");
    assert_eq!(
        reloaded.derivation_index(KeychainKind::External),
        Some(79),
        "every revealed address survives compaction"
    );
}
