//! The finality module under load, over gRPC into PostgreSQL: AddFinalitySig ingest of a
//! round's votes from 100 and from 1,000 staked verifiers (each vote checked against the
//! round, the active set, the commitment's Merkle proof and EOTS, then stored durably before
//! its reply; first votes arriving together share one INSERT and one WAL flush), and the
//! tally latency of a round holding every vote.
//!
//! Client, server and PostgreSQL share the machine's cores. Only the ingest is timed: closing
//! the round and signing the votes happen before the clock starts.
//!
//! Needs PostgreSQL at DATABASE_URL (as the tests); uses a scratch database
//! `fiamma_bench_finality`, recreated on every run.

#[path = "../tests/node_finality_support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fiamma::node::store::{Store, MIGRATOR};
use fiamma_finality::committed::CommittedRandomness;
use fiamma_finality::rounds::Vote;
use fiamma_proto::finality::v1 as fpb;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use support::{contexts, finality_params, stake, start_with, vote_request, Node, TestVerifier};
use tokio::runtime::Runtime;

/// Votes in flight at once. Verifiers vote as soon as a round closes, so a node sees up to its
/// active set at once: all 100 of the small set, an eighth of the large one. (The node stores
/// the first votes in flight together, so throughput grows with this number until the CPU is
/// the limit.)
const CONCURRENCY: usize = 128;
/// gRPC connections the votes are spread over.
const CHANNELS: usize = 4;
/// Rounds each randomness commitment covers; a verifier recommits when they run out.
const COMMITTED_ROUNDS: u64 = 40;
const SCRATCH_DB: &str = "fiamma_bench_finality";

struct Bench {
    node: Node,
    clients: Vec<fpb::finality_client::FinalityClient<tonic::transport::Channel>>,
    verifiers: Vec<TestVerifier>,
    /// The latest closed round.
    round: u64,
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn scratch_pool() -> sqlx::PgPool {
    let admin = database_url();
    let mut conn = PgConnection::connect(&admin).await.expect("connect");
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)"
    ))
    .execute(&mut conn)
    .await
    .expect("drop scratch database");
    sqlx::query(&format!("CREATE DATABASE {SCRATCH_DB}"))
        .execute(&mut conn)
        .await
        .expect("create scratch database");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let pool = PgPoolOptions::new()
        .max_connections(48)
        .connect(&format!("{base}/{SCRATCH_DB}"))
        .await
        .expect("connect scratch database");
    MIGRATOR.run(&pool).await.expect("migrate");
    pool
}

/// Key seed of verifier `i`: 32 bytes from its index, far from the tests' one-byte seeds.
fn verifier(i: u32, start: u64) -> TestVerifier {
    let mut seed = [0x5au8; 32];
    seed[..4].copy_from_slice(&i.to_be_bytes());
    let sk = bitcoin::secp256k1::SecretKey::from_slice(&seed).expect("valid scalar");
    let keypair = bitcoin::secp256k1::Keypair::from_secret_key(bitcoin::secp256k1::SECP256K1, &sk);
    let randomness =
        CommittedRandomness::derive(&sk, &contexts().chain_id, start, COMMITTED_ROUNDS)
            .expect("valid range");
    TestVerifier {
        keypair,
        randomness,
    }
}

async fn setup(n: u32) -> Bench {
    let mut params = finality_params();
    params.max_active_verifiers = n;
    let node = start_with(scratch_pool().await, params).await;
    let store: Store = node.staking_module.store().clone();
    let mut verifiers = Vec::new();
    for i in 0..n {
        let v = verifier(i, 1);
        support::insert_verifier(&store, v.key()).await;
        stake(&store, v.key(), 10_000 + u64::from(i), i).await;
        node.module
            .commit_pub_rand(v.commit_request())
            .await
            .expect("commitment accepted");
        verifiers.push(v);
    }
    let addr = node_addr(&node);
    let mut clients = Vec::new();
    for _ in 0..CHANNELS {
        let channel = tonic::transport::Endpoint::from_shared(addr.clone())
            .expect("uri")
            .connect()
            .await
            .expect("connects");
        clients.push(fpb::finality_client::FinalityClient::new(channel));
    }
    Bench {
        node,
        clients,
        verifiers,
        round: 0,
    }
}

fn node_addr(node: &Node) -> String {
    node.addr.clone()
}

impl Bench {
    /// Closes the next round, recommitting randomness first when the round is not covered.
    async fn next_round(&mut self) -> (u64, [u8; 32]) {
        let upcoming = self.round + 1;
        if !self.verifiers[0].randomness.commitment().covers(upcoming) {
            for (i, v) in self.verifiers.iter_mut().enumerate() {
                *v = verifier(u32::try_from(i).expect("small"), upcoming);
                self.node
                    .module
                    .commit_pub_rand(v.commit_request())
                    .await
                    .expect("recommitment accepted");
            }
        }
        let closed = self.node.module.close_round().await.expect("round closes");
        assert_eq!(closed.active_set.len(), self.verifiers.len());
        self.round = closed.round;
        (closed.round, closed.round_hash)
    }

    /// Sends every vote over gRPC, CONCURRENCY at a time; returns the time taken.
    async fn ingest(&self, votes: Vec<Vote>) -> Duration {
        let mut chunks: Vec<Vec<Vote>> = (0..CONCURRENCY).map(|_| Vec::new()).collect();
        for (i, v) in votes.into_iter().enumerate() {
            chunks[i % CONCURRENCY].push(v);
        }
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut client = self.clients[i % CHANNELS].clone();
            tasks.spawn(async move {
                for v in chunk {
                    let outcome = client
                        .add_finality_sig(vote_request(&v))
                        .await
                        .expect("vote accepted")
                        .into_inner()
                        .outcome;
                    assert_eq!(outcome, fpb::VoteOutcome::Counted as i32);
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("sender task");
        }
        started.elapsed()
    }

    fn votes(&self, round: u64, hash: [u8; 32]) -> Vec<Vote> {
        self.verifiers.iter().map(|v| v.vote(round, hash)).collect()
    }
}

fn finality(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let mut ingest = c.benchmark_group("finality_add_finality_sig_grpc_postgres");
    ingest.sample_size(10);
    for n in [100u32, 1_000] {
        let mut bench = rt.block_on(setup(n));
        ingest.throughput(Throughput::Elements(u64::from(n)));
        ingest.bench_function(BenchmarkId::new("votes_of_one_round", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(async {
                        let (round, hash) = bench.next_round().await;
                        let votes = bench.votes(round, hash);
                        bench.ingest(votes).await
                    });
                }
                total
            })
        });
        ingest.bench_function(BenchmarkId::new("tally_of_a_full_round", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(async {
                        let (round, hash) = bench.next_round().await;
                        let votes = bench.votes(round, hash);
                        bench.ingest(votes).await;
                        let started = Instant::now();
                        let finalized = bench.node.module.tally_now().await.expect("tally");
                        let took = started.elapsed();
                        assert_eq!(finalized, vec![round]);
                        took
                    });
                }
                total
            })
        });
        drop(bench);
    }
    ingest.finish();
}

criterion_group!(benches, finality);
criterion_main!(benches);
