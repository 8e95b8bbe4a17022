//! Adaptor signature costs next to BIP-0340 verification of the `secp256k1` crate, measured in
//! one run so that the ratio EncVerify ÷ BIP-0340 verify is meaningful (target ≤ 2.0).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fiamma_covenant::adaptor::{
    enc_sign, AdaptorSignature, DecryptionKey, EncryptionKey, SignerKey,
};
use secp256k1::{Keypair, Message, Parity, Scalar, SecretKey, SECP256K1};

fn bench_adaptor(c: &mut Criterion) {
    let signing_key = SecretKey::from_slice(&[0x11; 32]).expect("valid key");
    let verifier_key = SecretKey::from_slice(&[0x22; 32]).expect("valid key");
    let (signer_x, _) = signing_key.x_only_public_key(SECP256K1);
    let (verifier_x, _) = verifier_key.x_only_public_key(SECP256K1);
    let encryption_key = EncryptionKey::from_verifier_key(&verifier_x);
    let decryption_key = DecryptionKey::from_verifier_secret(&verifier_key);
    let signer = SignerKey::new(signer_x);
    let msg = [0x33; 32];
    let aux = [0x44; 32];
    let keypair = Keypair::from_secret_key(SECP256K1, &signing_key);
    let presig = enc_sign(&keypair, &encryption_key, &msg, &aux).expect("signs");
    let encoded = presig.to_bytes();

    let message = Message::from_digest(msg);
    let bip340 = SECP256K1.sign_schnorr_with_aux_rand(&message, &keypair, &aux);

    let mut group = c.benchmark_group("adaptor");
    group.bench_function("bip340_verify", |b| {
        b.iter(|| {
            SECP256K1.verify_schnorr(
                black_box(&bip340),
                black_box(&message),
                black_box(&signer_x),
            )
        })
    });
    group.bench_function("enc_verify", |b| {
        b.iter(|| {
            black_box(&presig).enc_verify(
                black_box(&signer),
                black_box(&msg),
                black_box(&encryption_key),
            )
        })
    });
    // What EncVerify costs when the signer key is lifted from x-only each time (one square
    // root) instead of once per covenant key.
    group.bench_function("lift_signer_and_enc_verify", |b| {
        b.iter(|| presig.enc_verify(&SignerKey::new(black_box(signer_x)), &msg, &encryption_key))
    });
    // The route EncVerify avoids: s'G − eP as two separate library multiplications.
    let (s, e) = (
        Scalar::from_be_bytes([0x55; 32]).expect("< n"),
        Scalar::from_be_bytes([0x66; 32]).expect("< n"),
    );
    let p = signer_x.public_key(Parity::Even);
    group.bench_function("reference_two_multiplications", |b| {
        b.iter(|| {
            black_box(p)
                .negate(SECP256K1)
                .mul_tweak(SECP256K1, black_box(&e))
                .and_then(|ep| ep.add_exp_tweak(SECP256K1, black_box(&s)))
        })
    });
    group.bench_function("parse_and_enc_verify", |b| {
        b.iter(|| {
            AdaptorSignature::from_bytes(black_box(&encoded))
                .map(|sig| sig.enc_verify(&signer, &msg, &encryption_key))
        })
    });
    group.bench_function("enc_sign", |b| {
        b.iter(|| {
            enc_sign(
                black_box(&keypair),
                black_box(&encryption_key),
                black_box(&msg),
                black_box(&aux),
            )
        })
    });
    group.bench_function("decrypt", |b| {
        b.iter(|| black_box(&presig).decrypt(black_box(&decryption_key)))
    });
    group.bench_function("bip340_sign", |b| {
        b.iter(|| {
            SECP256K1.sign_schnorr_with_aux_rand(
                black_box(&message),
                black_box(&keypair),
                black_box(&aux),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_adaptor);
criterion_main!(benches);
