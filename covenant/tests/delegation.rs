//! The transaction-level pieces on real Babylon delegations and on a delegation built here:
//! verifying covenant signature sets, signing them, and the slasher's complete witness checked
//! by Bitcoin Core's script interpreter.

mod common;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash as _;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxIn, Txid, Witness};
use common::{babylon_delegations, consensus_verify, BabylonDelegation};
use fiamma_covenant::adaptor::{AdaptorSignature, DecryptionKey};
use fiamma_covenant::delegation::{DelegationSighashes, DelegationTxs, SlashingTx};
use fiamma_covenant::evidence::{extract_verifier_key, EvidenceError};
use fiamma_covenant::signing::{sign_delegation, CovenantSignatures, VerifierAdaptorSig};
use fiamma_covenant::slashing::{signed_slashing_tx, SlashError};
use fiamma_covenant::verification::{verify_covenant_signatures, CovenantSignaturesError};
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::rate::SlashingRate;
use fiamma_staking::sighash::sign;
use fiamma_staking::slashing::{build_slashing_tx, SlashingTerms};
use fiamma_staking::taproot::TaprootOutput;
use fiamma_staking::unbonding::build_unbonding_tx;
use fiamma_staking::witness::unbonding_witness;
use rand::rngs::StdRng;
use rand::SeedableRng;
use secp256k1::{Keypair, SecretKey, XOnlyPublicKey, SECP256K1};

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

/// The adaptor signatures on `tx` encrypted to `verifier`, with their covenant keys.
fn sigs_for(
    members: &[CovenantSignatures],
    tx: SlashingTx,
    verifier: &XOnlyPublicKey,
) -> Vec<(XOnlyPublicKey, AdaptorSignature)> {
    members
        .iter()
        .flat_map(|m| {
            m.adaptor_sigs(tx)
                .iter()
                .filter(|e| e.verifier == *verifier)
                .map(|e| (m.covenant, e.signature))
        })
        .collect()
}

#[test]
fn babylon_covenant_signature_sets_verify() {
    for d in babylon_delegations() {
        let sighashes = d.sighashes();
        for member in &d.covenant_sigs {
            verify_covenant_signatures(&d.keys, &sighashes, member)
                .unwrap_or_else(|e| panic!("{}: {e}", d.name));
        }
    }
}

/// The delegation with two verifier keys.
fn two_verifier_delegation() -> BabylonDelegation {
    babylon_delegations()
        .into_iter()
        .find(|d| d.verifiers.len() == 2)
        .expect("btc_delegation_1_1_3 has two verifier keys")
}

#[test]
fn tampered_signature_sets_name_what_failed() {
    let d = two_verifier_delegation();
    let sighashes = d.sighashes();
    let good = &d.covenant_sigs[0];
    let check = |sigs: &CovenantSignatures| verify_covenant_signatures(&d.keys, &sighashes, sigs);
    let (v0, v1) = (good.slashing[0].verifier, good.slashing[1].verifier);

    // Signatures swapped between the two verifier keys.
    let mut swapped = good.clone();
    swapped.unbonding_slashing[0].verifier = v1;
    swapped.unbonding_slashing[1].verifier = v0;
    assert!(matches!(
        check(&swapped),
        Err(CovenantSignaturesError::AdaptorSignature { tx: SlashingTx::Unbonding, verifier, .. }) if verifier == v1
    ));

    // The two slashing transactions' lists exchanged.
    let mut exchanged = good.clone();
    std::mem::swap(&mut exchanged.slashing, &mut exchanged.unbonding_slashing);
    assert!(matches!(
        check(&exchanged),
        Err(CovenantSignaturesError::AdaptorSignature {
            tx: SlashingTx::Staking,
            ..
        })
    ));

    let mut missing = good.clone();
    missing.slashing.pop();
    assert_eq!(
        check(&missing),
        Err(CovenantSignaturesError::MissingVerifier {
            tx: SlashingTx::Staking,
            verifier: v1
        })
    );

    let mut duplicate = good.clone();
    duplicate.slashing[1] = duplicate.slashing[0];
    assert_eq!(
        check(&duplicate),
        Err(CovenantSignaturesError::DuplicateVerifier {
            tx: SlashingTx::Staking,
            verifier: v0
        })
    );

    let stranger = SecretKey::from_slice(&[0x42; 32])
        .unwrap()
        .x_only_public_key(SECP256K1)
        .0;
    let mut unknown = good.clone();
    unknown.slashing.push(VerifierAdaptorSig {
        verifier: stranger,
        signature: good.slashing[0].signature,
    });
    assert_eq!(
        check(&unknown),
        Err(CovenantSignaturesError::UnknownVerifier {
            tx: SlashingTx::Staking,
            verifier: stranger
        })
    );

    let mut other_unbonding = good.clone();
    other_unbonding.unbonding = d.covenant_sigs[1].unbonding;
    assert!(matches!(
        check(&other_unbonding),
        Err(CovenantSignaturesError::UnbondingSignature { covenant, .. }) if covenant == good.covenant
    ));

    let mut outsider = good.clone();
    outsider.covenant = stranger;
    assert_eq!(
        check(&outsider),
        Err(CovenantSignaturesError::NotCovenantMember(stranger))
    );

    // A member's set checked against another member's key fails on its first adaptor signature.
    let mut impostor = good.clone();
    impostor.covenant = d.covenant_sigs[1].covenant;
    assert!(matches!(
        check(&impostor),
        Err(CovenantSignaturesError::AdaptorSignature { tx: SlashingTx::Staking, verifier, .. }) if verifier == v0
    ));
}

/// Selective slashing: the verifier's key is extracted from a slashing signature it made
/// itself, then the slasher completes both slashing transactions of every delegation.
#[test]
fn slasher_completes_babylon_slashing_transactions() {
    for d in babylon_delegations() {
        let sighashes = d.sighashes();
        let (verifier, _) = d.verifier_secret.x_only_public_key(SECP256K1);
        let leaked = {
            let entry = sigs_for(&d.covenant_sigs, SlashingTx::Staking, &verifier)[0].1;
            let t = DecryptionKey::from_verifier_secret(&d.verifier_secret);
            entry.extract(&entry.decrypt(&t).unwrap()).unwrap()
        };
        assert_eq!(leaked.x_only_public_key(), verifier);
        for (which, tx, staker_sig) in [
            (SlashingTx::Staking, &d.slashing_tx, &d.staker_slashing_sig),
            (
                SlashingTx::Unbonding,
                &d.unbonding_slashing_tx,
                &d.staker_unbonding_slashing_sig,
            ),
        ] {
            let covenant_sigs = sigs_for(&d.covenant_sigs, which, &verifier);
            // Both the normalized key and its negation (what Extract may return) work.
            for secret in [leaked.to_secret_key(), leaked.to_secret_key().negate()] {
                let signed = signed_slashing_tx(
                    &secret,
                    &d.keys,
                    &sighashes,
                    which,
                    tx,
                    &covenant_sigs,
                    staker_sig,
                    &mut rng(),
                )
                .unwrap_or_else(|e| panic!("{}, {which}: {e}", d.name));
                consensus_verify(&signed, sighashes.slashed_prevout(which))
                    .unwrap_or_else(|e| panic!("{}, {which}: script rejected: {e}", d.name));
                // The broadcast witness reveals the key again (selective-slashing evidence).
                let revealed = extract_verifier_key(
                    &d.keys,
                    &verifier,
                    &covenant_sigs,
                    &signed.input[0].witness,
                )
                .unwrap();
                assert_eq!(revealed.x_only_public_key(), verifier);
            }
        }
    }
}

#[test]
fn slasher_refuses_what_would_not_confirm() {
    let d = two_verifier_delegation();
    let sighashes = d.sighashes();
    let (verifier, _) = d.verifier_secret.x_only_public_key(SECP256K1);
    let which = SlashingTx::Staking;
    let covenant_sigs = sigs_for(&d.covenant_sigs, which, &verifier);
    let slash = |secret: &SecretKey, sigs: &[(XOnlyPublicKey, AdaptorSignature)], staker_sig| {
        signed_slashing_tx(
            secret,
            &d.keys,
            &sighashes,
            which,
            &d.slashing_tx,
            sigs,
            staker_sig,
            &mut rng(),
        )
    };

    let quorum = d.keys.covenant_quorum() as usize;
    assert!(matches!(
        slash(&d.verifier_secret, &covenant_sigs[..quorum - 1], &d.staker_slashing_sig),
        Err(SlashError::CovenantQuorum { valid, .. }) if valid == quorum - 1
    ));
    // Signatures encrypted to the other verifier do not decrypt with this key.
    let other = d.verifiers.iter().find(|v| **v != verifier).unwrap();
    let wrong = sigs_for(&d.covenant_sigs, which, other);
    match slash(&d.verifier_secret, &wrong, &d.staker_slashing_sig) {
        Err(SlashError::CovenantQuorum {
            valid: 0, rejected, ..
        }) => assert_eq!(rejected.len(), wrong.len()),
        other => panic!("expected a quorum failure, got {other:?}"),
    }
    assert!(matches!(
        slash(
            &d.verifier_secret,
            &covenant_sigs,
            &d.staker_unbonding_slashing_sig
        ),
        Err(SlashError::StakerSignature(_))
    ));
    let stranger = SecretKey::from_slice(&[0x42; 32]).unwrap();
    assert!(matches!(
        slash(&stranger, &covenant_sigs, &d.staker_slashing_sig),
        Err(SlashError::NotAVerifier(_))
    ));
    let mut no_input = d.slashing_tx.clone();
    no_input.input.clear();
    assert_eq!(
        signed_slashing_tx(
            &d.verifier_secret,
            &d.keys,
            &sighashes,
            which,
            &no_input,
            &covenant_sigs,
            &d.staker_slashing_sig,
            &mut rng(),
        ),
        Err(SlashError::NoInput(which))
    );
}

fn key(i: u8) -> SecretKey {
    SecretKey::from_slice(&[i; 32]).unwrap()
}

fn x(sk: &SecretKey) -> XOnlyPublicKey {
    sk.x_only_public_key(SECP256K1).0
}

/// A committee of three (quorum two), two verifiers: every member signs with
/// [`sign_delegation`], the sets verify, the unbonding transaction with two covenant
/// signatures and both slashing transactions completed by the slasher pass Bitcoin Core's
/// script interpreter.
#[test]
fn signed_delegation_spends_on_chain() {
    let staker = key(1);
    let verifier_keys = [key(2), key(3)];
    let covenant_keys = [key(4), key(5), key(6)];
    let keys = StakingKeys::new(
        x(&staker),
        &verifier_keys.iter().map(x).collect::<Vec<_>>(),
        &covenant_keys.iter().map(x).collect::<Vec<_>>(),
        2,
    )
    .unwrap();
    let (staking_time, unbonding_time) = (1000, 100);
    let value = Amount::from_sat(1_000_000);
    let staking_tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([9; 32]), 0),
            ..TxIn::default()
        }],
        output: vec![TaprootOutput::staking(&keys, staking_time)
            .unwrap()
            .txout(value)],
    };
    let staking_outpoint = OutPoint::new(staking_tx.compute_txid(), 0);
    let (unbonding_tx, _) = build_unbonding_tx(
        &keys,
        staking_outpoint,
        value,
        unbonding_time,
        Amount::from_sat(10_000),
    )
    .unwrap();
    let slashing_pk_script =
        ScriptBuf::from_hex("76a914356fde516750d3a7781eababc9fbba011dfdebd088ac").unwrap();
    let terms = SlashingTerms {
        slashing_pk_script: &slashing_pk_script,
        slashing_rate: SlashingRate::from_ten_thousandths(1000).unwrap(),
        min_fee: Amount::from_sat(1000),
    };
    let change = TaprootOutput::slashing_change(&x(&staker), unbonding_time)
        .unwrap()
        .script_pubkey();
    let fee = Amount::from_sat(2000);
    let slashing_tx = build_slashing_tx(staking_outpoint, value, &terms, fee, &change).unwrap();
    let unbonding_slashing_tx = build_slashing_tx(
        OutPoint::new(unbonding_tx.compute_txid(), 0),
        unbonding_tx.output[0].value,
        &terms,
        fee,
        &change,
    )
    .unwrap();
    let txs = DelegationTxs {
        keys: &keys,
        staking_time,
        unbonding_time,
        staking_tx: &staking_tx,
        staking_output_index: 0,
        slashing_tx: &slashing_tx,
        unbonding_tx: &unbonding_tx,
        unbonding_slashing_tx: &unbonding_slashing_tx,
    };
    let sighashes = DelegationSighashes::compute(&txs).unwrap();

    let mut rng = rng();
    let members: Vec<CovenantSignatures> = covenant_keys
        .iter()
        .map(|sk| {
            let keypair = Keypair::from_secret_key(SECP256K1, sk);
            sign_delegation(&keypair, &sighashes, keys.verifiers(), &mut rng).unwrap()
        })
        .collect();
    for member in &members {
        verify_covenant_signatures(&keys, &sighashes, member).unwrap();
    }

    // The unbonding path with the members' plain signatures.
    let staker_pair = Keypair::from_secret_key(SECP256K1, &staker);
    let unbonding_sigs: Vec<(XOnlyPublicKey, _)> =
        members.iter().map(|m| (m.covenant, m.unbonding)).collect();
    let mut unbonding = unbonding_tx.clone();
    unbonding.input[0].witness = unbonding_witness(
        &sighashes.staking_output,
        &keys,
        &unbonding_sigs,
        &sign(&sighashes.unbonding, &staker_pair),
    )
    .unwrap();
    consensus_verify(&unbonding, &sighashes.staking_prevout).unwrap();

    // The slasher with the second verifier's key.
    let verifier = x(&verifier_keys[1]);
    for (which, tx) in [
        (SlashingTx::Staking, &slashing_tx),
        (SlashingTx::Unbonding, &unbonding_slashing_tx),
    ] {
        let staker_sig = sign(sighashes.slashing_sighash(which), &staker_pair);
        let covenant_sigs = sigs_for(&members, which, &verifier);
        let mut slash = |secret: &SecretKey| {
            signed_slashing_tx(
                secret,
                &keys,
                &sighashes,
                which,
                tx,
                &covenant_sigs,
                &staker_sig,
                &mut rng,
            )
        };
        let signed = slash(&verifier_keys[1]).unwrap();
        consensus_verify(&signed, sighashes.slashed_prevout(which))
            .unwrap_or_else(|e| panic!("{which}: script rejected: {e}"));
        // Covenant signatures encrypted to one verifier do not decrypt with another's key.
        assert!(matches!(
            slash(&verifier_keys[0]),
            Err(SlashError::CovenantQuorum { valid: 0, .. })
        ));
        // Evidence: this witness reveals verifier 1's key, not verifier 0's, and a witness of
        // another shape is refused.
        let witness = &signed.input[0].witness;
        assert_eq!(
            extract_verifier_key(&keys, &verifier, &covenant_sigs, witness)
                .unwrap()
                .x_only_public_key(),
            verifier
        );
        let other = x(&verifier_keys[0]);
        assert_eq!(
            extract_verifier_key(&keys, &other, &sigs_for(&members, which, &other), witness)
                .unwrap_err(),
            EvidenceError::NoReveal(other)
        );
        assert!(matches!(
            extract_verifier_key(&keys, &verifier, &covenant_sigs, &Witness::new()),
            Err(EvidenceError::WitnessShape { found: 0, .. })
        ));
        // The interpreter does reject: a witness with the staker signature altered fails.
        let mut items: Vec<Vec<u8>> = signed.input[0].witness.iter().map(<[u8]>::to_vec).collect();
        let staker_slot = items.len() - 3;
        items[staker_slot][0] ^= 1;
        let mut tampered = signed.clone();
        tampered.input[0].witness = Witness::from_slice(&items);
        assert!(consensus_verify(&tampered, sighashes.slashed_prevout(which)).is_err());
    }
}
