//! Cost of checking one submission: proof_id, decoding (point decompression and subgroup
//! checks), the pairing check, and both together, on Fiamma's valid Groth16 BN254 proof.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fiamma_finality::zk::{ProofSystem, ZkProof};

const VALID: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/zk/fiamma-arkworks-groth16-bn254/valid/"
);

fn valid_proof() -> ZkProof {
    let read = |name: &str| {
        std::fs::read(format!("{VALID}{name}")).unwrap_or_else(|e| panic!("{VALID}{name}: {e}"))
    };
    ZkProof::new(
        ProofSystem::Groth16Bn254,
        read("vk.bitvm"),
        read("proof.bitvm"),
        read("public_input.bitvm"),
    )
    .expect("the Fiamma set is within the caps")
}

fn bench(c: &mut Criterion) {
    let proof = valid_proof();
    let decoded = proof.decode().expect("the Fiamma set decodes");
    c.bench_function("zk/proof_id", |b| b.iter(|| black_box(&proof).proof_id()));
    c.bench_function("zk/decode", |b| {
        b.iter(|| black_box(&proof).decode().expect("decodes"))
    });
    c.bench_function("zk/pairing_check", |b| {
        b.iter(|| black_box(&decoded).verify())
    });
    c.bench_function("zk/decode_and_verify", |b| {
        b.iter(|| black_box(&proof).verify().expect("decodes"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
