//! Property tests over random keys, covenant quorums 1..=20 of n and 1..=10 verifier keys:
//! outputs commit to every leaf, keys are sorted and unique, every assembled path is accepted
//! by Bitcoin Core and one covenant signature short is not.

mod common;

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{Keypair, SecretKey, XOnlyPublicKey, SECP256K1};
use bitcoin::{Amount, OutPoint, ScriptBuf, Txid};
use common::kernel_accepts;
use fiamma_staking::identifiable::IdentifiableStaking;
use fiamma_staking::keys::{parse_xonly, KeyError, StakingKeys};
use fiamma_staking::rate::SlashingRate;
use fiamma_staking::sighash::{sign, tapscript_sighash};
use fiamma_staking::taproot::{Leaf, TaprootOutput};
use fiamma_staking::unbonding::build_unbonding_tx;
use fiamma_staking::witness::{slashing_witness, unbonding_witness, KeySignature, WitnessError};
use proptest::prelude::*;

/// `count` key pairs derived from `seed` (distinct with overwhelming probability).
fn keypairs(seed: &[u8; 32], label: u8, count: usize) -> Vec<Keypair> {
    (0..count)
        .map(|i| {
            let mut engine = sha256::Hash::engine();
            engine.input(seed);
            engine.input(&[label, i as u8]);
            let digest = sha256::Hash::from_engine(engine).to_byte_array();
            let sk = SecretKey::from_slice(&digest).expect("a hash is a valid scalar");
            Keypair::from_secret_key(SECP256K1, &sk)
        })
        .collect()
}

fn xonly(pairs: &[Keypair]) -> Vec<XOnlyPublicKey> {
    pairs.iter().map(|k| k.x_only_public_key().0).collect()
}

/// (seed, covenant count n, quorum q ≤ n, verifier count, indices choosing signers)
fn setup() -> impl Strategy<Value = ([u8; 32], usize, u32, usize, u64)> {
    (any::<[u8; 32]>(), 1usize..=20, 1usize..=10, any::<u64>()).prop_flat_map(
        |(seed, n, verifiers, pick)| {
            (
                Just(seed),
                Just(n),
                1u32..=n as u32,
                Just(verifiers),
                Just(pick),
            )
        },
    )
}

struct World {
    staker: Keypair,
    verifiers: Vec<Keypair>,
    covenants: Vec<Keypair>,
    keys: StakingKeys,
}

fn world(seed: &[u8; 32], n: usize, q: u32, v: usize) -> World {
    let staker = keypairs(seed, 0, 1)[0];
    let verifiers = keypairs(seed, 1, v);
    let covenants = keypairs(seed, 2, n);
    let keys = StakingKeys::new(
        staker.x_only_public_key().0,
        &xonly(&verifiers),
        &xonly(&covenants),
        q,
    )
    .expect("random keys are distinct");
    World {
        staker,
        verifiers,
        covenants,
        keys,
    }
}

/// `count` distinct indices below `n`, chosen by `pick`.
fn choose(n: usize, count: usize, pick: u64) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..n).collect();
    let mut state = pick;
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        indices.swap(i, (state >> 33) as usize % (i + 1));
    }
    indices.truncate(count);
    indices
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn outputs_commit_to_every_leaf_with_sorted_keys((seed, n, q, v, _) in setup()) {
        let w = world(&seed, n, q, v);
        prop_assert!(w.keys.covenants().windows(2).all(|p| p[0].serialize() < p[1].serialize()));
        prop_assert!(w.keys.verifiers().windows(2).all(|p| p[0].serialize() < p[1].serialize()));
        let staking = TaprootOutput::staking(&w.keys, 1 + (seed[0] as u32) * 200).unwrap();
        let unbonding = TaprootOutput::unbonding(&w.keys, 1 + seed[1] as u32).unwrap();
        for (output, leaves) in [
            (&staking, vec![Leaf::Timelock, Leaf::Unbonding, Leaf::Slashing]),
            (&unbonding, vec![Leaf::Timelock, Leaf::Slashing]),
        ] {
            for leaf in leaves {
                let cb = output.control_block(leaf).unwrap();
                let script = output.leaf_script(leaf).unwrap();
                prop_assert!(cb.verify_taproot_commitment(
                    SECP256K1,
                    output.output_key().to_x_only_public_key(),
                    script
                ));
            }
        }
        // 34 bytes per key, plus the quorum push and NUMEQUAL(VERIFY) for every multi-key set.
        let slashing = staking.leaf_script(Leaf::Slashing).unwrap();
        let quorum_len = |keys: usize, q: u32| match (keys, q) {
            (1, _) => 0,
            (_, 1..=16) => 2,
            _ => 3,
        };
        let expected = 34 * (1 + v + n) + quorum_len(v, 1) + quorum_len(n, q);
        prop_assert_eq!(slashing.len(), expected);
    }

    #[test]
    fn compressed_keys_reduce_to_xonly_and_duplicates_are_rejected(
        (seed, n, q, v, pick) in setup()
    ) {
        let w = world(&seed, n, q, v);
        let pk = w.covenants[0].public_key();
        prop_assert_eq!(parse_xonly(&pk.serialize()).unwrap(), pk.x_only_public_key().0);
        // A verifier key that is also a covenant key.
        let mut verifiers = xonly(&w.verifiers);
        let stolen = w.keys.covenants()[pick as usize % n];
        verifiers[pick as usize % v] = stolen;
        prop_assert_eq!(
            StakingKeys::new(w.keys.staker(), &verifiers, w.keys.covenants(), q),
            Err(KeyError::Duplicate(stolen))
        );
    }

    #[test]
    fn assembled_paths_pass_bitcoin_core_and_one_signature_short_does_not(
        (seed, n, q, v, pick) in setup()
    ) {
        let w = world(&seed, n, q, v);
        let staking = TaprootOutput::staking(&w.keys, 500).unwrap();
        let prevout = staking.txout(Amount::from_sat(200_000));
        let outpoint = OutPoint::new(Txid::from_byte_array(seed), 0);
        let (mut tx, _) =
            build_unbonding_tx(&w.keys, outpoint, prevout.value, 100, Amount::from_sat(500))
                .unwrap();
        let signers = choose(n, q as usize, pick);
        let sig_of = |kp: &Keypair, tx: &bitcoin::Transaction, leaf: Leaf| {
            let script = staking.leaf_script(leaf).unwrap();
            let sighash = tapscript_sighash(tx, 0, std::slice::from_ref(&prevout), script).unwrap();
            sign(&sighash, kp)
        };
        let covenant: Vec<KeySignature> = signers
            .iter()
            .map(|i| (w.covenants[*i].x_only_public_key().0, sig_of(&w.covenants[*i], &tx, Leaf::Unbonding)))
            .collect();
        let staker = sig_of(&w.staker, &tx, Leaf::Unbonding);
        tx.input[0].witness = unbonding_witness(&staking, &w.keys, &covenant, &staker).unwrap();
        prop_assert!(kernel_accepts(&tx, &prevout));
        prop_assert_eq!(
            unbonding_witness(&staking, &w.keys, &covenant[1..], &staker),
            Err(WitnessError::CovenantQuorum { got: q as usize - 1, quorum: q })
        );

        // Slashing (same transaction shape suffices for the script path): staker, one random
        // verifier and the same covenant signers.
        let mut slash = tx.clone();
        slash.output[0].script_pubkey = ScriptBuf::from_bytes(vec![0x51]);
        let verifier = &w.verifiers[pick as usize % v];
        let covenant: Vec<KeySignature> = signers
            .iter()
            .map(|i| (w.covenants[*i].x_only_public_key().0, sig_of(&w.covenants[*i], &slash, Leaf::Slashing)))
            .collect();
        let witness = slashing_witness(
            &staking,
            &w.keys,
            &covenant,
            &[(verifier.x_only_public_key().0, sig_of(verifier, &slash, Leaf::Slashing))],
            &sig_of(&w.staker, &slash, Leaf::Slashing),
        )
        .unwrap();
        slash.input[0].witness = witness.clone();
        prop_assert!(kernel_accepts(&slash, &prevout));
        // Blank one covenant signature in the witness: Bitcoin Core must refuse.
        let mut items: Vec<Vec<u8>> = witness.iter().map(<[u8]>::to_vec).collect();
        let filled = items.iter().position(|i| i.len() == 64).unwrap();
        items[filled].clear();
        slash.input[0].witness = bitcoin::Witness::from_slice(&items);
        prop_assert!(!kernel_accepts(&slash, &prevout));
    }

    #[test]
    fn slashing_rates_round_trip_and_round_half_up(bps in 1u16..=9999, value in 0u64..=2_100_000_000_000_000) {
        let rate = SlashingRate::from_ten_thousandths(bps).unwrap();
        prop_assert_eq!(rate.to_string().parse::<SlashingRate>().unwrap(), rate);
        let padded = format!("0.{:04}00000000000000", bps);
        prop_assert_eq!(padded.parse::<SlashingRate>().unwrap(), rate);
        // round_half_up(value × bps / 10^4): the remainder decides, exactly.
        let exact = u128::from(value) * u128::from(bps);
        let floor = exact / 10_000;
        let expected = if exact % 10_000 >= 5_000 { floor + 1 } else { floor };
        prop_assert_eq!(u128::from(rate.slashed_amount(Amount::from_sat(value)).to_sat()), expected);
    }

    #[test]
    fn identifiable_op_returns_round_trip((seed, _, _, _, pick) in setup(), time in 1u16..=u16::MAX) {
        let keys = xonly(&keypairs(&seed, 3, 2));
        let tag = pick.to_be_bytes()[..4].try_into().unwrap();
        let data = IdentifiableStaking { tag, staker: keys[0], verifier: keys[1], staking_time: time };
        let script = data.script();
        prop_assert_eq!(script.len(), 73);
        prop_assert_eq!(IdentifiableStaking::parse(&script, &tag), Ok(data));
    }
}
