//! One covenant member's throughput: delegations checked with `validate_delegation` against its
//! own params, adaptor-signed, recorded durably in its SQLite store and delivered to a local
//! node over gRPC (real PostgreSQL), per second. One element = one delegation.
//!
//! Each sample registers its delegations first (the node's work, untimed); the clock runs over
//! the member's `step()` that finds them pending and signs them all.
//!
//! Requires `DATABASE_URL` (set by .cargo/config.toml) pointing at a server where the user
//! may create databases.

#[path = "../tests/node_support/mod.rs"]
mod node_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fiamma_covenant_member::member::{CovenantMember, MemberSettings, Outcome};
use fiamma_covenant_member::signer::KeystoreSigner;
use fiamma_covenant_member::store::MemberStore;
use fiamma_proto::client::GrpcNode;
use fiamma_staking::params::ParamsVersions;
use node_support::*;
use sqlx::{Connection, PgConnection};

async fn fresh_database(name: &str) -> sqlx::PgPool {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let (server, _) = base.rsplit_once('/').expect("url with a database");
    let mut admin = PgConnection::connect(&base).await.expect("database server");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create");
    let pool = sqlx::PgPool::connect(&format!("{server}/{name}"))
        .await
        .expect("connect");
    fiamma::node::store::MIGRATOR
        .run(&pool)
        .await
        .expect("migrate");
    pool
}

fn member_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = std::env::temp_dir().join(format!("fiamma-bench-covenant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (node, member) = rt.block_on(async {
        let node = start(fresh_database("fiamma_bench_covenant").await).await;
        node.client
            .clone()
            .create_verifier(verifier_request(10))
            .await
            .expect("verifier");
        let store = MemberStore::open(&fiamma_role::store::sqlite_url(&dir.join("covenant.db")))
            .await
            .expect("store");
        let member = CovenantMember::new(
            MemberSettings {
                params: ParamsVersions::new(vec![params()]).expect("params"),
                contexts: contexts(),
                page_size: 1000,
                poll_interval: Duration::from_secs(1),
                max_retry: Duration::from_secs(10),
            },
            Arc::new(KeystoreSigner::new(covenant(0))),
            Arc::new(GrpcNode::from_channel(node.channel.clone())),
            store,
        );
        (node, member)
    });
    let verifier = xonly(&keypair(10));
    let mut nonce = 0u32;
    let mut group = c.benchmark_group("covenant_member");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.bench_function("check_sign_record_deliver", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut client = node.client.clone();
                for _ in 0..iters {
                    nonce += 1;
                    let reg = registration(20, verifier, nonce);
                    client
                        .create_delegation(delegation_request(&reg))
                        .await
                        .expect("registers");
                }
                let start = Instant::now();
                let report = member.step().await.expect("step");
                let elapsed = start.elapsed();
                let signed = report.count(|o| matches!(o, Outcome::Signed(_)));
                assert_eq!(signed as u64, iters, "every delegation signed");
                elapsed
            })
        })
    });
    group.finish();
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, member_bench);
criterion_main!(benches);
