//! Cost of checking one submission: proof_id, decoding (point decompression and subgroup
//! checks), the pairing check, and both together, on Fiamma's valid Groth16 BN254 proof; the
//! same with the verifying key decoded and prepared once; and the round hash over 1,000
//! results.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fiamma_finality::round::{round_hash, RoundHash, RoundResult};
use fiamma_finality::zk::{PreparedKey, ProofId, ProofSystem, Verdict, ZkProof};

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
    c.bench_function("zk/prepare_key", |b| {
        b.iter(|| PreparedKey::decode(black_box(proof.verifying_key())).expect("decodes"))
    });
    let key = PreparedKey::decode(proof.verifying_key()).expect("decodes");
    c.bench_function("zk/verify_with_prepared_key", |b| {
        b.iter(|| {
            key.verify(black_box(proof.proof()), black_box(proof.public_inputs()))
                .expect("decodes")
        })
    });
    let results: Vec<RoundResult> = (0..1000u32)
        .map(|i| {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            RoundResult {
                proof_id: ProofId(id),
                verdict: Verdict::Valid,
            }
        })
        .collect();
    c.bench_function("round/round_hash_1000_results", |b| {
        b.iter(|| round_hash(7, &RoundHash([0; 32]), black_box(&results)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
