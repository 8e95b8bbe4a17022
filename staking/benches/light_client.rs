//! Light-client throughput: accepting regtest headers, restoring a snapshot, and checking a
//! Merkle branch and a k-deep inclusion.

#[allow(dead_code)]
#[path = "../src/light_client/testkit.rs"]
mod testkit;

mod light_client {
    pub use fiamma_staking::light_client::*;
}

use bitcoin::hashes::Hash;
use bitcoin::{TxMerkleNode, Txid};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use light_client::{HeaderChain, InclusionProof, MerkleBranch};
use testkit::{mine_run, regtest_chain, regtest_genesis, NOW};

fn accept(c: &mut Criterion) {
    let headers = mine_run(&regtest_genesis(), 2_000, 1);
    let mut group = c.benchmark_group("light_client");
    group.throughput(Throughput::Elements(headers.len() as u64));
    group.bench_function("accept 2000 regtest headers", |b| {
        b.iter_batched(
            || regtest_chain(6, &[]),
            |mut chain| chain.accept_headers(&headers, NOW).map(|o| o.len()),
            BatchSize::SmallInput,
        )
    });
    let snapshot = regtest_chain(6, &headers).snapshot();
    group.bench_function("restore a 2000-header snapshot", |b| {
        b.iter(|| HeaderChain::restore(&snapshot).map(|c| c.tip().height))
    });
    group.finish();
}

fn inclusion(c: &mut Criterion) {
    let txids: Vec<Txid> = (0u32..4_000)
        .map(|i| Txid::hash(&i.to_le_bytes()))
        .collect();
    let root = bitcoin::merkle_tree::calculate_root(
        txids
            .iter()
            .map(|t| TxMerkleNode::from_raw_hash(t.to_raw_hash())),
    );
    let root = root.unwrap_or_else(|| panic!("root"));
    let proof = InclusionProof::from(
        MerkleBranch::from_txids(&txids, 2_777).unwrap_or_else(|| panic!("branch")),
    );
    c.bench_function("verify a 12-level merkle branch", |b| {
        b.iter(|| proof.verify(txids[2_777], root))
    });
}

criterion_group!(benches, accept, inclusion);
criterion_main!(benches);
