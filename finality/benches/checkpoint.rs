//! A checkpoint of 100 equal-stake verifiers, all signing: building the candidate, assembling
//! its witness from the 100 EOTS votes (the completeness check verifies each signature), and
//! Bitcoin Core's script interpreter verifying the result. Baseline in the same run: 100 plain
//! BIP-0340 verifications of the `secp256k1` crate, the floor of both.

#[path = "../tests/checkpoint_fixture/mod.rs"]
mod checkpoint_fixture;

use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, SECP256K1};
use checkpoint_fixture::Fixture;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fiamma_finality::checkpoint::{
    build_candidate, check_complete, quorum_witness, CheckpointKind,
};

fn checkpoint(c: &mut Criterion) {
    let f = Fixture::equal_stakes(100, CheckpointKind::Quorum);
    let candidate = &f.candidate;
    let sighash = candidate.message.sighash();
    let votes = f.votes();
    let complete = check_complete(&f.set, &sighash, &votes).expect("complete");
    let mut signed = candidate.tx.clone();
    signed.input[0].witness = quorum_witness(&candidate.base_output, &f.set, &complete);
    let spent = candidate.spent_txout();
    let spec = Fixture::spec(&f.set, &f.recovery, f.spec_base, CheckpointKind::Quorum);

    let mut group = c.benchmark_group("checkpoint 100 verifiers");
    group.sample_size(20);
    group.bench_function("baseline: 100 bip340 verifications", |b| {
        let digest = Message::from_digest(sighash.to_byte_array());
        b.iter(|| {
            for (key, sig) in &votes {
                SECP256K1
                    .verify_schnorr(black_box(sig), &digest, key)
                    .expect("valid");
            }
        })
    });
    group.bench_function("build candidate (outputs, M)", |b| {
        b.iter(|| build_candidate(black_box(&spec)).expect("candidate"))
    });
    group.bench_function("assemble witness (completeness check + slots)", |b| {
        b.iter(|| {
            let complete = check_complete(&f.set, &sighash, black_box(&votes)).expect("complete");
            quorum_witness(&candidate.base_output, &f.set, &complete)
        })
    });
    let tx_bytes = serialize(&signed);
    let script = bitcoinkernel::ScriptPubkey::new(spent.script_pubkey.as_bytes()).expect("script");
    let amount = i64::try_from(spent.value.to_sat()).expect("amount");
    group.bench_function("bitcoin core verifies the witness (VERIFY_ALL)", |b| {
        b.iter(|| {
            let tx = bitcoinkernel::Transaction::new(black_box(&tx_bytes)).expect("tx");
            let outputs = [bitcoinkernel::TxOut::new(&script, amount)];
            let data = bitcoinkernel::PrecomputedTransactionData::new(&tx, &outputs).expect("data");
            bitcoinkernel::verify(
                &script,
                Some(amount),
                &tx,
                0,
                Some(bitcoinkernel::VERIFY_ALL),
                &data,
            )
            .expect("valid")
        })
    });
    group.finish();
}

criterion_group!(benches, checkpoint);
criterion_main!(benches);
