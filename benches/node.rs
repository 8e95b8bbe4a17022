//! Node benchmarks over gRPC on loopback into a real PostgreSQL (a fresh database per run):
//! - `create_delegation_5_of_9`: CreateDelegation plus five AddCovenantSigs, fully validated
//!   (PoP, transaction rules, staker signatures, adaptor EncVerify, BIP-340), eight
//!   delegations in flight; one element = one delegation through to VERIFIED.
//! - `voting_power_table`: the query over 100,000 ACTIVE delegations and 1,000 verifiers.
//!
//! Requires `DATABASE_URL` (set by .cargo/config.toml) pointing at a server where the user
//! may create databases.

#[path = "../tests/node_support/mod.rs"]
mod node_support;

use std::time::{Duration, Instant};

use bitcoin::secp256k1::{Keypair, SecretKey, SECP256K1};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fiamma_proto::staking::v1 as pb;
use node_support::*;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

const IN_FLIGHT: usize = 8;
const VERIFIERS: usize = 1_000;
const DELEGATIONS: i64 = 100_000;

/// Creates a fresh database and returns a pool on it, migrated. The names are fixed, so a
/// run replaces the previous run's database instead of adding one.
async fn fresh_database(name: &str) -> PgPool {
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
    let pool = PgPoolOptions::new()
        .max_connections(16)
        // As `Store::connect` configures the node's pool: no ping round trip per acquire.
        .test_before_acquire(false)
        .connect(&format!("{server}/{name}"))
        .await
        .expect("connect");
    fiamma::node::store::MIGRATOR
        .run(&pool)
        .await
        .expect("migrate");
    pool
}

fn delegation_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let node = rt.block_on(async {
        let pool = fresh_database("fiamma_bench_node").await;
        let mut node = start(pool).await;
        node.client
            .create_verifier(verifier_request(10))
            .await
            .expect("verifier");
        node
    });
    let verifier = xonly(&keypair(10));
    let mut nonce = 0u32;
    let mut group = c.benchmark_group("node");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.bench_function("create_delegation_5_of_9", |b| {
        b.iter_custom(|iters| {
            // The staker's and the covenant members' signing is theirs, not the node's: done
            // before the clock starts.
            let work: Vec<_> = (0..iters)
                .map(|_| {
                    nonce += 1;
                    let reg = registration(20, verifier, nonce);
                    let sigs: Vec<_> = (0..QUORUM as u8)
                        .map(|m| covenant_request(&reg, &covenant(m), verifier))
                        .collect();
                    (delegation_request(&reg), sigs)
                })
                .collect();
            let mut lanes: Vec<Vec<_>> = (0..IN_FLIGHT).map(|_| Vec::new()).collect();
            for (i, w) in work.into_iter().enumerate() {
                lanes[i % IN_FLIGHT].push(w);
            }
            rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = lanes
                    .into_iter()
                    .map(|lane| {
                        let mut client = node.client.clone();
                        tokio::spawn(async move {
                            for (create, sigs) in lane {
                                client.create_delegation(create).await.expect("accepted");
                                for s in sigs {
                                    client.add_covenant_sigs(s).await.expect("accepted");
                                }
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("lane");
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn voting_power_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut node = rt.block_on(async {
        let pool = fresh_database("fiamma_bench_vp").await;
        let node = start(pool.clone()).await;
        let keys: Vec<Vec<u8>> = (0..VERIFIERS)
            .map(|i| {
                let mut b = [1u8; 32];
                b[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
                let sk = SecretKey::from_slice(&b).expect("valid");
                Keypair::from_secret_key(SECP256K1, &sk)
                    .x_only_public_key()
                    .0
                    .serialize()
                    .to_vec()
            })
            .collect();
        sqlx::query(
            "INSERT INTO verifiers (btc_pk, account, moniker, identity, website, \
             security_contact, details, commission, pop_type, pop_sig, created_seq) \
             SELECT k, 'fmma1bench', 'v', '', '', '', '', '0.05', 1, '\\x00', 1000000000 + n \
             FROM UNNEST($1::BYTEA[]) WITH ORDINALITY AS t(k, n)",
        )
        .bind(&keys)
        .execute(&pool)
        .await
        .expect("verifiers");
        sqlx::query(
            "INSERT INTO delegations (staking_txid, staker_account, staker_btc_pk, pop_type, \
             pop_sig, verifier_btc_pk, staking_time_blocks, staking_value_sat, staking_tx, \
             staking_output_index, slashing_tx, staker_slashing_sig, unbonding_time_blocks, \
             unbonding_tx, unbonding_txid, unbonding_slashing_tx, \
             staker_unbonding_slashing_sig, params_version, status, verified_height, \
             start_height, activated_height, created_seq) \
             SELECT decode(lpad(to_hex(i), 64, '0'), 'hex'), 'fmma1bench', $1, 1, '\\x00', \
                    ($2::BYTEA[])[1 + i % $3], 1000, 10000 + i, '\\x00', 0, '\\x00', \
                    decode(repeat('11', 64), 'hex'), 5, '\\x00', \
                    decode(lpad(to_hex(i + $4), 64, '0'), 'hex'), '\\x00', \
                    decode(repeat('22', 64), 'hex'), 0, 'ACTIVE', 10, 10, 12, i \
             FROM generate_series(1, $4) AS i",
        )
        .bind(xonly(&keypair(20)).serialize().to_vec())
        .bind(&keys)
        .bind(VERIFIERS as i32)
        .bind(DELEGATIONS)
        .execute(&pool)
        .await
        .expect("delegations");
        // The table as autovacuum leaves it after a bulk of inserts: statistics and the
        // visibility map, so the index can answer without visiting the rows.
        sqlx::query("VACUUM ANALYZE")
            .execute(&pool)
            .await
            .expect("vacuum");
        node
    });
    let mut group = c.benchmark_group("node");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("voting_power_table_100k_delegations_1k_verifiers", |b| {
        b.iter(|| {
            rt.block_on(async {
                let t = node
                    .client
                    .voting_power_table(pb::VotingPowerTableRequest { btc_height: 500 })
                    .await
                    .expect("table")
                    .into_inner();
                assert_eq!(t.entries.len(), VERIFIERS);
            })
        })
    });
    group.finish();
}

criterion_group!(benches, delegation_bench, voting_power_bench);
criterion_main!(benches);
