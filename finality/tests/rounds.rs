//! Rounds end to end through the pure API: four verifiers with stake, votes, the strict 2/3
//! rule, equivocation and slashing, liveness jailing.

mod rounds_support;

use std::collections::BTreeSet;

use bitcoin::hashes::Hash;
use bitcoin::Txid;
use fiamma_covenant::adaptor::{enc_sign, DecryptionKey, EncryptionKey};
use fiamma_finality::eots;
use fiamma_finality::round::{round_hash, RoundHash, RoundResult};
use fiamma_finality::rounds::{
    equivocation, selective_slashing, KeyMismatch, SlashingEvidence, UnjailError, VerifierStatus,
    VoteError, VoteOutcome,
};
use fiamma_finality::vote::vote_message;
use fiamma_finality::zk::{ProofId, Verdict};
use rounds_support::{close, contexts, env, liveness, network, powers, Verifier};
use secp256k1::{Keypair, SECP256K1};

/// The round hash of §10 over two results, chained to `prev`.
fn hash_of(round: u64, prev: [u8; 32]) -> [u8; 32] {
    let results = [
        RoundResult {
            proof_id: ProofId([round as u8; 32]),
            verdict: Verdict::Valid,
        },
        RoundResult {
            proof_id: ProofId([0xee; 32]),
            verdict: Verdict::Invalid,
        },
    ];
    round_hash(round, &RoundHash(prev), &results).0
}

fn add(
    round: &mut fiamma_finality::rounds::RoundVotes,
    v: &Verifier,
    hash: [u8; 32],
    latest: u64,
    registry: &fiamma_finality::rounds::Verifiers,
) -> Result<VoteOutcome, VoteError> {
    let c = contexts();
    let h = round.round().round;
    let commitment = registry
        .get(&v.key())
        .and_then(|r| r.commitment_covering(h));
    round.add_vote(v.vote(h, hash), commitment, &env(&c, latest))
}

#[test]
fn four_verifiers_final_just_over_two_thirds_and_not_at_exactly_two_thirds() {
    let (vs, registry) = network(4, 16);
    let (a, b, c, d) = (&vs[0], &vs[1], &vs[2], &vs[3]);

    // Round 1: powers 30 000, 30 000, 20 000, 10 000; a and b hold exactly two thirds.
    let p1 = powers(&vs, &[30_000, 30_000, 20_000, 10_000]);
    let h1 = hash_of(1, [0; 32]);
    let mut r1 = close(&registry, &p1, 1, h1);
    for v in [a, b] {
        assert_eq!(add(&mut r1, v, h1, 1, &registry), Ok(VoteOutcome::Counted));
    }
    let t = r1.tally();
    assert_eq!((t.voted_power, t.total_power), (60_000, 90_000));
    assert!(!t.is_final(), "exactly two thirds is not final");
    assert_eq!(t.certificate(), None);
    assert_eq!(add(&mut r1, d, h1, 1, &registry), Ok(VoteOutcome::Counted));
    assert!(r1.tally().is_final());

    // Round 2: d's stake grew by one sat; a, c and d hold 60 001 of 90 001.
    let p2 = powers(&vs, &[30_000, 30_000, 20_000, 10_001]);
    let h2 = hash_of(2, h1);
    let mut r2 = close(&registry, &p2, 2, h2);
    for v in [a, c, d] {
        assert_eq!(add(&mut r2, v, h2, 2, &registry), Ok(VoteOutcome::Counted));
    }
    // b computed another result: recorded, not counted.
    assert_eq!(
        add(&mut r2, b, [0xbb; 32], 2, &registry),
        Ok(VoteOutcome::Disagrees)
    );
    let t = r2.tally();
    assert_eq!((t.voted_power, t.total_power), (60_001, 90_001));
    let cert = t.certificate().expect("just over two thirds is final");
    assert_eq!((cert.round, cert.round_hash), (2, h2));
    let mut expected: Vec<_> = [a, c, d].iter().map(|v| v.key()).collect();
    expected.sort();
    let keys: Vec<_> = cert.entries.iter().map(|e| e.verifier).collect();
    assert_eq!(keys, expected);
    let msg = vote_message(&contexts(), 2, &h2);
    for e in &cert.entries {
        assert_eq!(
            eots::verify(&e.verifier, &e.public_randomness, &msg, &e.signature),
            Ok(())
        );
    }
    assert_eq!(cert.encode().len(), 3 * 96);
    assert_eq!(cert.verify(r2.table(), &contexts()), Ok(()));
}

#[test]
fn equivocation_slashes_the_verifier_and_its_power_is_gone_from_the_next_round() {
    let (vs, mut registry) = network(4, 16);
    let p = powers(&vs, &[30_000, 30_000, 20_000, 10_000]);
    let h1 = hash_of(1, [0; 32]);
    let mut r1 = close(&registry, &p, 1, h1);
    let c = &vs[2];
    assert_eq!(add(&mut r1, c, h1, 1, &registry), Ok(VoteOutcome::Counted));
    let Ok(VoteOutcome::Equivocation(slashing)) = add(&mut r1, c, [0x66; 32], 1, &registry) else {
        panic!("a second message is equivocation");
    };
    assert_eq!(slashing.verifier, c.key());
    assert_eq!(slashing.secret_key.x_only_public_key(SECP256K1).0, c.key());
    let SlashingEvidence::Equivocation(evidence) = &slashing.evidence else {
        panic!("equivocation evidence");
    };
    assert_eq!(evidence.first.round_hash, h1);
    assert_eq!(evidence.second.round_hash, [0x66; 32]);
    // Anyone holding the two votes reaches the same key.
    let from_anyone =
        equivocation(&evidence.first, &evidence.second, &contexts()).expect("evidence");
    assert_eq!(from_anyone.secret_key, slashing.secret_key);

    registry.slash(&slashing, 1).expect("first slashing");
    assert_eq!(
        registry.get(&c.key()).map(|r| r.status()),
        Some(VerifierStatus::Slashed { since: 1 })
    );
    // Round 1 keeps its table; from round 2 on c has no power.
    assert_eq!(r1.table().total_power(), 90_000);
    let h2 = hash_of(2, h1);
    let mut r2 = close(&registry, &p, 2, h2);
    assert!(!r2.table().contains(&c.key()));
    assert_eq!(r2.table().total_power(), 70_000);
    assert_eq!(
        add(&mut r2, c, h2, 2, &registry),
        Err(VoteError::NotInActiveSet {
            voter: c.key(),
            round: 2
        })
    );
    // The three honest verifiers are 70 000 of 70 000.
    for v in [&vs[0], &vs[1], &vs[3]] {
        assert_eq!(add(&mut r2, v, h2, 2, &registry), Ok(VoteOutcome::Counted));
    }
    assert!(r2.tally().is_final());
}

#[test]
fn a_silent_verifier_is_jailed_and_returns_after_the_jail_duration() {
    let (vs, mut registry) = network(4, 32);
    let p = powers(&vs, &[10, 10, 10, 10]);
    let rules = liveness();
    let mut prev = [0; 32];
    let mut jailed_at = None;
    for round in 1..=3 {
        let h = hash_of(round, prev);
        let mut r = close(&registry, &p, round, h);
        for v in &vs[..3] {
            assert_eq!(
                add(&mut r, v, h, round, &registry),
                Ok(VoteOutcome::Counted)
            );
        }
        assert!(r.tally().is_final());
        let jailed = registry.record_round(r.table(), &r.signers(), &rules);
        if !jailed.is_empty() {
            assert_eq!(jailed, [vs[3].key()]);
            jailed_at = Some(round);
        }
        prev = h;
    }
    // Window 4, at least 2 signed: the third miss jails.
    assert_eq!(jailed_at, Some(3));
    let r4 = close(&registry, &p, 4, hash_of(4, prev));
    assert_eq!(r4.table().total_power(), 30);
    assert_eq!(
        registry.unjail(
            &vs[3].key(),
            &vs[3].unjail_signature(3),
            5,
            &rules,
            &contexts()
        ),
        Err(UnjailError::TooEarly {
            verifier: vs[3].key(),
            round: 5,
            allowed_from: 6
        })
    );
    assert_eq!(
        registry.unjail(
            &vs[3].key(),
            &vs[3].unjail_signature(3),
            6,
            &rules,
            &contexts()
        ),
        Ok(())
    );
    let r7 = close(&registry, &p, 7, hash_of(7, prev));
    assert_eq!(r7.table().total_power(), 40);
    let signers: BTreeSet<_> = vs.iter().map(Verifier::key).collect();
    assert!(registry
        .record_round(r7.table(), &signers, &rules)
        .is_empty());
}

#[test]
fn votes_on_a_round_are_accepted_until_it_expires() {
    let (vs, registry) = network(2, 16);
    let p = powers(&vs, &[1, 1]);
    let h = hash_of(3, [0; 32]);
    let mut r = close(&registry, &p, 3, h);
    assert_eq!(
        add(
            &mut r,
            &vs[0],
            h,
            3 + rounds_support::VOTE_EXPIRY,
            &registry
        ),
        Ok(VoteOutcome::Counted)
    );
    assert_eq!(
        add(
            &mut r,
            &vs[1],
            h,
            4 + rounds_support::VOTE_EXPIRY,
            &registry
        ),
        Err(VoteError::Expired {
            round: 3,
            latest_round: 4 + rounds_support::VOTE_EXPIRY,
            vote_expiry: rounds_support::VOTE_EXPIRY
        })
    );
}

#[test]
fn a_key_revealed_by_selective_slashing_slashes_the_verifier() {
    let (vs, mut registry) = network(4, 16);
    let p = powers(&vs, &[10, 10, 10, 10]);
    let verifier = &vs[1];
    // A covenant member's pre-signature on a slashing sighash, encrypted to the verifier.
    let covenant = Keypair::from_seckey_slice(SECP256K1, &[0xc0; 32]).expect("valid key");
    let presig = enc_sign(
        &covenant,
        &EncryptionKey::from_verifier_key(&verifier.key()),
        &[0x3d; 32],
        &[1; 32],
    )
    .expect("pre-signature");
    // The verifier decrypts it to broadcast the slashing transaction itself; the signature
    // lands on Bitcoin and anyone extracts the key.
    let signature = presig
        .decrypt(&DecryptionKey::from_verifier_secret(
            &verifier.keypair.secret_key(),
        ))
        .expect("decrypts");
    let revealed = presig
        .extract(&signature)
        .expect("extracts")
        .to_secret_key();
    let txid = Txid::from_byte_array([0x51; 32]);

    assert_eq!(
        selective_slashing(&vs[0].key(), revealed, txid),
        Err(KeyMismatch {
            got: verifier.key()
        })
    );
    let slashing = selective_slashing(&verifier.key(), revealed, txid).expect("its key");
    assert_eq!(
        slashing.secret_key.x_only_public_key(SECP256K1).0,
        verifier.key()
    );
    assert_eq!(
        slashing.evidence,
        SlashingEvidence::SelectiveSlashing {
            slashing_txid: txid
        }
    );
    registry.slash(&slashing, 3).expect("first slashing");
    let next = close(&registry, &p, 4, hash_of(4, [0; 32]));
    assert!(!next.table().contains(&verifier.key()));
    assert_eq!(next.table().total_power(), 30);
}
