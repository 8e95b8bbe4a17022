//! A verifier daemon's reaction time: from a round closing on the node to the verifier's vote
//! being counted on it, with 10 proofs in the round (2 valid, 8 invalid), each fetched with
//! RoundProofs and re-verified by the verifier before it signs, records the signature durably
//! (fsync'd SQLite) and sends it. One element = one round.
//!
//! The node (staking and finality services over a real PostgreSQL) and the verifier component
//! in its daemon loop run in this process; they talk over loopback gRPC, and the verifier
//! learns of the close from the node's event stream, as `fiamma verifier run` does. The proofs
//! are submitted before the clock starts; the clock starts when the round's close is committed
//! and stops when the node shows the vote on the round. After the criterion run the median
//! and the 99th percentile of every round measured are printed.
//!
//! Needs PostgreSQL at DATABASE_URL (as the tests); uses a scratch database
//! `fiamma_bench_verifier`, recreated on every run.

#[path = "../tests/node_finality_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use fiamma::node::store::{Store, MIGRATOR};
use fiamma_proto::client::GrpcNode;
use fiamma_proto::finality::v1 as fpb;
use fiamma_role::daemon::Shutdown;
use fiamma_verifier::signer::KeystoreSigner;
use fiamma_verifier::store::VerifierStore;
use fiamma_verifier::verifier::{Verifier, VerifierSettings};
use sqlx::{Connection, PgConnection};
use support::{
    contexts, create_verifier, fiamma_proof, finality_params, keypair, proof_request, stake,
    start_with, xonly, Node,
};

const SCRATCH_DB: &str = "fiamma_bench_verifier";
const PROOFS_PER_ROUND: usize = 10;
const VERIFIER_SEED: u8 = 1;

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn scratch_pool() -> sqlx::PgPool {
    let admin = database_url();
    let mut conn = PgConnection::connect(&admin).await.expect("connect");
    for sql in [
        format!("DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)"),
        format!("CREATE DATABASE {SCRATCH_DB}"),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.expect("scratch");
    }
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let pool = sqlx::PgPool::connect(&format!("{base}/{SCRATCH_DB}"))
        .await
        .expect("connect scratch database");
    MIGRATOR.run(&pool).await.expect("migrate");
    pool
}

struct Bench {
    node: Node,
    /// Makes each invalid proof's public input new, so that no proof repeats.
    variant: u16,
    took: Vec<Duration>,
}

impl Bench {
    async fn submit_round_of_proofs(&mut self) {
        let (vk, proof, inputs) = fiamma_proof("valid");
        let mut batch = vec![
            (vk.clone(), proof.clone(), inputs.clone()),
            fiamma_proof("challenge"),
        ];
        while batch.len() < PROOFS_PER_ROUND {
            // The low bytes of the first scalar (after the 8-byte count): a well-formed input
            // the proof does not verify for.
            self.variant = self.variant.wrapping_add(1);
            let mut bad = inputs.clone();
            bad[8..10].copy_from_slice(&self.variant.to_le_bytes());
            batch.push((vk.clone(), proof.clone(), bad));
        }
        for parts in batch {
            self.node
                .finality
                .submit_proof(proof_request(parts))
                .await
                .expect("proof taken");
        }
    }

    /// Closes the open round and waits until the verifier's vote is on it.
    async fn close_and_wait_for_vote(&mut self) -> Duration {
        let closed = self.node.module.close_round().await.expect("round closes");
        let started = Instant::now();
        self.wait_for_vote(closed.round, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("no vote on round {}", closed.round));
        started.elapsed()
    }

    /// Whether a vote is on round `round` within `limit`.
    async fn wait_for_vote(&mut self, round: u64, limit: Duration) -> Option<()> {
        let started = Instant::now();
        while started.elapsed() < limit {
            let votes = self
                .node
                .finality
                .round(fpb::RoundRequest {
                    round,
                    ..Default::default()
                })
                .await
                .expect("round")
                .into_inner()
                .round
                .map_or(0, |r| r.votes.len());
            if votes > 0 {
                return Some(());
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        None
    }
}

async fn setup(dir: &std::path::Path) -> (Bench, Arc<Verifier>) {
    let mut node = start_with(scratch_pool().await, finality_params()).await;
    create_verifier(&mut node, VERIFIER_SEED).await;
    let store: Store = node.staking_module.store().clone();
    stake(&store, xonly(&keypair(VERIFIER_SEED)), 1_000_000, 0).await;
    let verifier_store =
        VerifierStore::open(&fiamma_role::store::sqlite_url(&dir.join("verifier.db")))
            .await
            .expect("verifier store");
    let channel = tonic::transport::Endpoint::from_shared(node.addr.clone())
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let verifier = Verifier::new(
        VerifierSettings {
            contexts: contexts(),
            commit_batch: 1000,
            commit_ahead: 300,
            catch_up_rounds: 10,
            poll_interval: Duration::from_secs(5),
            unjail: false,
            jail_duration: 0,
        },
        Arc::new(KeystoreSigner::new(keypair(VERIFIER_SEED))),
        Arc::new(GrpcNode::from_channel(channel)),
        verifier_store,
        true,
    )
    .await
    .expect("verifier starts");
    let bench = Bench {
        node,
        variant: 0,
        took: Vec::new(),
    };
    (bench, Arc::new(verifier))
}

fn vote_latency(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let (trigger, shutdown) = Shutdown::new();
    let mut bench = rt.block_on(async {
        let (mut bench, verifier) = setup(dir.path()).await;
        tokio::spawn(async move { verifier.run(shutdown).await });
        // Rounds close until the verifier's commitment covers them and it votes.
        let mut warm = false;
        for _ in 0..50 {
            let closed = bench.node.module.close_round().await.expect("closes");
            let limit = Duration::from_millis(500);
            if bench.wait_for_vote(closed.round, limit).await.is_some() {
                warm = true;
                break;
            }
        }
        assert!(warm, "the verifier never became active");
        bench
    });
    let mut group = c.benchmark_group("verifier");
    group.throughput(Throughput::Elements(1));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("round_close_to_vote_counted_10_proofs", |b| {
        b.iter_custom(|rounds| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..rounds {
                    bench.submit_round_of_proofs().await;
                    let took = bench.close_and_wait_for_vote().await;
                    bench.took.push(took);
                    total += took;
                }
                total
            })
        });
    });
    group.finish();
    trigger.fire();
    let mut took = std::mem::take(&mut bench.took);
    took.sort_unstable();
    if !took.is_empty() {
        let median = took[took.len() / 2];
        let p99 = took[(took.len() * 99).div_ceil(100) - 1];
        println!(
            "verifier: round close -> vote counted, {PROOFS_PER_ROUND} proofs, {} rounds: median {median:?}, p99 {p99:?}",
            took.len()
        );
    }
}

criterion_group!(benches, vote_latency);
criterion_main!(benches);
