//! Consensus: every spending path of the staking and unbonding outputs, assembled by this
//! library, is accepted by Bitcoin Core's script interpreter (libbitcoinkernel, all flags
//! including taproot, with the spent outputs), and each forbidden spend is rejected there.

mod common;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{schnorr, Keypair};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use common::{kernel_accepts, key, keypair};
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::sighash::{sign, tapscript_sighash};
use fiamma_staking::slashing::{build_slashing_tx, SlashingTerms};
use fiamma_staking::taproot::{Leaf, TaprootOutput};
use fiamma_staking::unbonding::build_unbonding_tx;
use fiamma_staking::witness::{
    slashing_witness, timelock_witness, unbonding_witness, KeySignature,
};

const STAKING_TIME: u32 = 1_000;
const UNBONDING_TIME: u32 = 144;
const VALUE: Amount = Amount::from_sat(1_000_000);
const STAKER: u8 = 1;
const VERIFIERS: [u8; 2] = [2, 3];
const COVENANTS: [u8; 5] = [11, 12, 13, 14, 15];
const QUORUM: u32 = 3;

struct Setup {
    keys: StakingKeys,
    staking: TaprootOutput,
    staking_prevout: TxOut,
    staking_outpoint: OutPoint,
}

fn setup() -> Setup {
    let verifiers: Vec<_> = VERIFIERS.iter().map(|i| key(*i)).collect();
    let covenants: Vec<_> = COVENANTS.iter().map(|i| key(*i)).collect();
    let keys = StakingKeys::new(key(STAKER), &verifiers, &covenants, QUORUM).expect("keys");
    let staking = TaprootOutput::staking(&keys, STAKING_TIME).expect("staking output");
    Setup {
        staking_prevout: staking.txout(VALUE),
        staking_outpoint: OutPoint::new(Txid::from_byte_array([0x5a; 32]), 0),
        keys,
        staking,
    }
}

fn spend(outpoint: OutPoint, sequence: Sequence, value: Amount) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: outpoint,
            script_sig: ScriptBuf::new(),
            sequence,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value,
            script_pubkey: ScriptBuf::new_p2tr_tweaked(
                TaprootOutput::slashing_change(&key(STAKER), 1)
                    .expect("output")
                    .output_key(),
            ),
        }],
    }
}

fn leaf_sig(
    tx: &Transaction,
    prevout: &TxOut,
    output: &TaprootOutput,
    leaf: Leaf,
    signer: &Keypair,
) -> schnorr::Signature {
    let script = output.leaf_script(leaf).expect("leaf");
    let sighash = tapscript_sighash(tx, 0, std::slice::from_ref(prevout), script).expect("sighash");
    sign(&sighash, signer)
}

fn covenant_sigs(
    tx: &Transaction,
    prevout: &TxOut,
    output: &TaprootOutput,
    leaf: Leaf,
    signers: &[u8],
) -> Vec<KeySignature> {
    signers
        .iter()
        .map(|i| (key(*i), leaf_sig(tx, prevout, output, leaf, &keypair(*i))))
        .collect()
}

fn with_witness(mut tx: Transaction, witness: Witness) -> Transaction {
    tx.input[0].witness = witness;
    tx
}

/// Replaces witness item `index` with `item`.
fn replace_item(witness: &Witness, index: usize, item: &[u8]) -> Witness {
    let mut items: Vec<Vec<u8>> = witness.iter().map(<[u8]>::to_vec).collect();
    items[index] = item.to_vec();
    Witness::from_slice(&items)
}

#[test]
fn timelock_path_after_staking_time() {
    let s = setup();
    for (sequence, accepted) in [(STAKING_TIME, true), (STAKING_TIME - 1, false)] {
        let tx = spend(
            s.staking_outpoint,
            Sequence::from_height(sequence as u16),
            Amount::from_sat(990_000),
        );
        let sig = leaf_sig(
            &tx,
            &s.staking_prevout,
            &s.staking,
            Leaf::Timelock,
            &keypair(STAKER),
        );
        let witness = timelock_witness(&s.staking, &sig).expect("witness");
        assert_eq!(
            kernel_accepts(&with_witness(tx, witness), &s.staking_prevout),
            accepted,
            "nSequence {sequence}"
        );
    }
}

fn unbonding(s: &Setup) -> (Transaction, TaprootOutput) {
    build_unbonding_tx(
        &s.keys,
        s.staking_outpoint,
        VALUE,
        UNBONDING_TIME,
        Amount::from_sat(1_000),
    )
    .expect("unbonding tx")
}

#[test]
fn unbonding_path_with_quorum_and_not_with_one_less() {
    let s = setup();
    let (tx, _) = unbonding(&s);
    let prevout = &s.staking_prevout;
    let staker = leaf_sig(&tx, prevout, &s.staking, Leaf::Unbonding, &keypair(STAKER));
    let sigs = covenant_sigs(&tx, prevout, &s.staking, Leaf::Unbonding, &[15, 11, 13]);
    let witness = unbonding_witness(&s.staking, &s.keys, &sigs, &staker).expect("witness");
    assert!(kernel_accepts(
        &with_witness(tx.clone(), witness.clone()),
        prevout
    ));

    // q − 1 covenant signatures: blank one of the three filled slots.
    let filled = witness
        .iter()
        .position(|item| item.len() == 64)
        .expect("a covenant signature");
    let short = replace_item(&witness, filled, &[]);
    assert!(!kernel_accepts(&with_witness(tx, short), prevout));
}

struct Slashing {
    tx: Transaction,
    prevout: TxOut,
    output: TaprootOutput,
}

fn slashing_of(s: &Setup, output: TaprootOutput, outpoint: OutPoint, value: Amount) -> Slashing {
    let slashing_pk_script = ScriptBuf::from_bytes(
        hex::decode("76a914356fde516750d3a7781eababc9fbba011dfdebd088ac").expect("hex"),
    );
    let terms = SlashingTerms {
        slashing_pk_script: &slashing_pk_script,
        slashing_rate: "0.1".parse().expect("rate"),
        min_fee: Amount::from_sat(1_000),
    };
    let change = TaprootOutput::slashing_change(&s.keys.staker(), UNBONDING_TIME)
        .expect("change output")
        .script_pubkey();
    let tx = build_slashing_tx(outpoint, value, &terms, Amount::from_sat(2_000), &change)
        .expect("slashing tx");
    Slashing {
        tx,
        prevout: output.txout(value),
        output,
    }
}

/// The slashing witness with verifier `verifier_signer` signing in the slot of verifier key
/// `VERIFIERS[0]`.
fn slashing_witness_for(s: &Setup, sl: &Slashing, verifier_signer: u8) -> Witness {
    let staker = leaf_sig(
        &sl.tx,
        &sl.prevout,
        &sl.output,
        Leaf::Slashing,
        &keypair(STAKER),
    );
    let verifier = leaf_sig(
        &sl.tx,
        &sl.prevout,
        &sl.output,
        Leaf::Slashing,
        &keypair(verifier_signer),
    );
    let sigs = covenant_sigs(
        &sl.tx,
        &sl.prevout,
        &sl.output,
        Leaf::Slashing,
        &[12, 13, 14],
    );
    slashing_witness(
        &sl.output,
        &s.keys,
        &sigs,
        &[(key(VERIFIERS[0]), verifier)],
        &staker,
    )
    .expect("witness")
}

#[test]
fn slashing_path_of_the_staking_output() {
    let s = setup();
    let sl = slashing_of(&s, s.staking.clone(), s.staking_outpoint, VALUE);
    let witness = slashing_witness_for(&s, &sl, VERIFIERS[0]);
    assert!(kernel_accepts(
        &with_witness(sl.tx.clone(), witness),
        &sl.prevout
    ));
}

#[test]
fn slashing_path_of_the_unbonding_output() {
    let s = setup();
    let (unbonding_tx, unbonding_output) = unbonding(&s);
    let outpoint = OutPoint::new(unbonding_tx.compute_txid(), 0);
    let value = unbonding_tx.output[0].value;
    let sl = slashing_of(&s, unbonding_output, outpoint, value);
    let witness = slashing_witness_for(&s, &sl, VERIFIERS[0]);
    assert!(kernel_accepts(
        &with_witness(sl.tx.clone(), witness),
        &sl.prevout
    ));
}

#[test]
fn slashing_fails_with_a_wrong_verifier_key() {
    let s = setup();
    let sl = slashing_of(&s, s.staking.clone(), s.staking_outpoint, VALUE);
    // Signed by a key that is not in the script, placed in a verifier's slot.
    let witness = slashing_witness_for(&s, &sl, 42);
    assert!(!kernel_accepts(
        &with_witness(sl.tx.clone(), witness),
        &sl.prevout
    ));
}

#[test]
fn slashing_fails_without_the_staker_signature() {
    let s = setup();
    let sl = slashing_of(&s, s.staking.clone(), s.staking_outpoint, VALUE);
    let witness = slashing_witness_for(&s, &sl, VERIFIERS[0]);
    // The staker's slot is the last item before the leaf script and control block.
    let staker_slot = witness.len() - 3;
    let unsigned = replace_item(&witness, staker_slot, &[]);
    assert!(!kernel_accepts(
        &with_witness(sl.tx.clone(), unsigned),
        &sl.prevout
    ));
}

#[test]
fn slashing_fails_with_slots_out_of_order() {
    let s = setup();
    let sl = slashing_of(&s, s.staking.clone(), s.staking_outpoint, VALUE);
    let witness = slashing_witness_for(&s, &sl, VERIFIERS[0]);
    // Reverse the covenant slots: ascending instead of descending.
    let mut items: Vec<Vec<u8>> = witness.iter().map(<[u8]>::to_vec).collect();
    items[..COVENANTS.len()].reverse();
    let reordered = Witness::from_slice(&items);
    assert!(!kernel_accepts(
        &with_witness(sl.tx.clone(), reordered),
        &sl.prevout
    ));
}

#[test]
fn timelock_path_of_the_unbonding_output() {
    let s = setup();
    let (unbonding_tx, unbonding_output) = unbonding(&s);
    let prevout = unbonding_tx.output[0].clone();
    let outpoint = OutPoint::new(unbonding_tx.compute_txid(), 0);
    for (sequence, accepted) in [(UNBONDING_TIME, true), (UNBONDING_TIME - 1, false)] {
        let tx = spend(
            outpoint,
            Sequence::from_height(sequence as u16),
            Amount::from_sat(980_000),
        );
        let sig = leaf_sig(
            &tx,
            &prevout,
            &unbonding_output,
            Leaf::Timelock,
            &keypair(STAKER),
        );
        let witness = timelock_witness(&unbonding_output, &sig).expect("witness");
        assert_eq!(
            kernel_accepts(&with_witness(tx, witness), &prevout),
            accepted,
            "nSequence {sequence}"
        );
    }
}

#[test]
fn timelock_path_of_the_slashing_change_output() {
    let s = setup();
    let sl = slashing_of(&s, s.staking.clone(), s.staking_outpoint, VALUE);
    let change_output =
        TaprootOutput::slashing_change(&s.keys.staker(), UNBONDING_TIME).expect("change output");
    let prevout = sl.tx.output[1].clone();
    assert_eq!(prevout.script_pubkey, change_output.script_pubkey());
    let outpoint = OutPoint::new(sl.tx.compute_txid(), 1);
    for (sequence, accepted) in [(UNBONDING_TIME, true), (UNBONDING_TIME - 1, false)] {
        let tx = spend(
            outpoint,
            Sequence::from_height(sequence as u16),
            Amount::from_sat(800_000),
        );
        let sig = leaf_sig(
            &tx,
            &prevout,
            &change_output,
            Leaf::Timelock,
            &keypair(STAKER),
        );
        let witness = timelock_witness(&change_output, &sig).expect("witness");
        assert_eq!(
            kernel_accepts(&with_witness(tx, witness), &prevout),
            accepted,
            "nSequence {sequence}"
        );
    }
}
