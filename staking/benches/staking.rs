//! Throughput of the staking library's hot paths on one core: deriving a staking output (the
//! three leaves and the taproot tweak) and `validate_delegation` (three taproot tweaks, three
//! BIP-0340 verifications, every transaction rule).

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Keypair, SecretKey, XOnlyPublicKey, SECP256K1};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, Txid};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fiamma_staking::account::Account;
use fiamma_staking::context::SigningContexts;
use fiamma_staking::delegation::validate_delegation;
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::params::Params;
use fiamma_staking::registration::{build_registration, StakerChoices};
use fiamma_staking::taproot::TaprootOutput;

fn keypair(i: u8) -> Keypair {
    let sk = SecretKey::from_slice(&[i; 32]).expect("valid scalar");
    Keypair::from_secret_key(SECP256K1, &sk)
}

fn key(i: u8) -> XOnlyPublicKey {
    keypair(i).x_only_public_key().0
}

/// Mainnet-like parameters: a 6-of-9 committee.
fn params() -> Params {
    Params {
        covenant_pks: (11..20).map(key).collect(),
        covenant_quorum: 6,
        min_staking_value_sat: 50_000,
        max_staking_value_sat: 500_000_000_000,
        min_staking_time_blocks: 64_000,
        max_staking_time_blocks: 64_000,
        slashing_pk_script: ScriptBuf::from_bytes(
            hex::decode("0014f87283ca8ad7ed6c2d1b4b8e3b0cb93d5bf16ed1").expect("hex"),
        ),
        min_slashing_tx_fee_sat: 5_000,
        slashing_rate: "0.1".parse().expect("rate"),
        unbonding_time_blocks: 1_008,
        unbonding_fee_sat: 9_000,
        btc_confirmation_depth: 10,
        max_active_verifiers: 100,
        min_pub_rand: 500,
        identifiable_staking_tag: Some(*b"fmma"),
        btc_activation_height: 0,
        max_verifiers_per_delegation: 1,
        limits: fiamma_staking::params::ResourceLimits::default(),
    }
}

fn bench(c: &mut Criterion) {
    let params = params();
    let keys = StakingKeys::new(key(1), &[key(2)], &params.covenant_pks, 6).expect("keys");

    let mut group = c.benchmark_group("staking");
    group.throughput(Throughput::Elements(1));
    group.bench_function("staking_output_derivation", |b| {
        b.iter(|| {
            let output = TaprootOutput::staking(black_box(&keys), 64_000).expect("output");
            black_box(output.script_pubkey())
        })
    });

    let contexts = SigningContexts::new("fiamma-bench", "fmma1staking");
    let staking_output = TaprootOutput::staking(&keys, 64_000).expect("output");
    let staking_tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([1; 32]), 0),
            ..TxIn::default()
        }],
        output: vec![
            staking_output.txout(Amount::from_sat(5_000_000)),
            TxOut {
                value: Amount::from_sat(100_000),
                script_pubkey: params.slashing_pk_script.clone(),
            },
        ],
    };
    let staker = keypair(1);
    let registration = build_registration(
        &params,
        &contexts,
        StakerChoices {
            staker: &staker,
            account: Account([7; 20]),
            verifier_pks: vec![key(2)],
            staking_tx,
            staking_output_index: 0,
            staking_time: 64_000,
            slashing_fee: Amount::from_sat(6_000),
        },
    )
    .expect("registration");
    validate_delegation(&params, &contexts, &registration).expect("valid registration");
    group.bench_function("validate_delegation", |b| {
        b.iter(|| {
            validate_delegation(
                black_box(&params),
                black_box(&contexts),
                black_box(&registration),
            )
            .expect("valid")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
