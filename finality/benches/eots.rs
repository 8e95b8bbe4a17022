//! EOTS verification against plain BIP-0340 verification of the `secp256k1` crate (measured in
//! the same run so their ratio is meaningful), and the Merkle work of a randomness commitment
//! over 10,000 rounds.

use bitcoin::hashes::{sha256, Hash};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fiamma_finality::eots::{self, SecretRandomness};
use fiamma_finality::merkle::{self, MerkleTree};
use fiamma_finality::vote::vote_message;
use fiamma_staking::context::SigningContexts;
use secp256k1::{Keypair, Message, SECP256K1};

const LEAVES: usize = 10_000;

fn verification(c: &mut Criterion) {
    let kp = Keypair::from_seckey_slice(SECP256K1, &[0x5a; 32]).expect("valid key");
    let (pk, _) = kp.x_only_public_key();
    let contexts = SigningContexts::new("bench-chain", "bench-address");
    let msg = vote_message(&contexts, 1_000, &[0x77; 32]);
    let sr = SecretRandomness::from_byte_array([0x3c; 32]).expect("valid scalar");
    let pr = sr.public();
    let sig = eots::sign(&kp, &sr, &msg);
    let digest = Message::from_digest(sha256::Hash::hash(&msg).to_byte_array());
    let bip340 = SECP256K1.sign_schnorr_no_aux_rand(&digest, &kp);

    let mut group = c.benchmark_group("verify");
    group.bench_function("bip340 (secp256k1 crate)", |b| {
        b.iter(|| SECP256K1.verify_schnorr(black_box(&bip340), black_box(&digest), &pk))
    });
    group.bench_function("eots (vote message)", |b| {
        b.iter(|| eots::verify(&pk, black_box(&pr), black_box(&msg), black_box(&sig)))
    });
    group.finish();

    c.bench_function("eots sign", |b| {
        b.iter(|| eots::sign(&kp, &sr, black_box(&msg)))
    });
    let other = vote_message(&contexts, 1_000, &[0x78; 32]);
    let sig2 = eots::sign(&kp, &sr, &other);
    c.bench_function("eots extract", |b| {
        b.iter(|| eots::extract(&pk, &pr, black_box(&msg), &sig, &other, &sig2))
    });
}

fn commitment(c: &mut Criterion) {
    let values: Vec<[u8; 32]> = (0..LEAVES as u64)
        .map(|i| sha256::Hash::hash(&i.to_be_bytes()).to_byte_array())
        .collect();
    let tree = MerkleTree::new(&values);
    let root = tree.root();
    let index = 6_789;
    let proof = tree.proof(index as u64).expect("in range");

    c.bench_function("merkle proof verify (10,000 leaves)", |b| {
        b.iter(|| black_box(&proof).verify(&root, black_box(&values[index])))
    });
    c.bench_function("merkle root (10,000 values)", |b| {
        b.iter(|| merkle::root(black_box(&values)))
    });
    c.bench_function("merkle tree with proofs (10,000 values)", |b| {
        b.iter(|| MerkleTree::new(black_box(&values)))
    });
}

criterion_group!(benches, verification, commitment);
criterion_main!(benches);
