//! Bitcoin-checked checkpoints (`CHECKPOINTS.md` §13.12) under Bitcoin Core's script
//! interpreter (`bitcoinkernel` verify, all consensus flags) and on the embedded regtest chain
//! (Bitcoin Core's block validation): the threshold, rejected spends, rotation, EOTS votes as
//! tapscript signatures, reuse, recovery timing and the reader.

mod btc_support;
mod checkpoint_support;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, OutPoint, Sequence, TxOut, Witness};
use btc_support::{child, coinbase_coin, mine_txs, unsigned, KeyWallet};
use checkpoint_support::*;
use fiamma::btc::regtest::unix_now;
use fiamma::btc::RegtestChain;
use fiamma_finality::checkpoint::{
    check_complete, follow, ChainEnd, CheckpointKind, CheckpointLeaf, CheckpointOutput,
    CompletenessError, OffTemplate, ReaderParams, ShapeError, THRESHOLD,
};
use fiamma_finality::eots;
use fiamma_finality::rounds::has_quorum;
use proptest::prelude::*;

/// (a)–(d) of test 1: the kernel, the completeness check and the §10 rule side by side.
#[test]
fn threshold_cases_under_the_kernel() {
    let recovery = committee().leaf;
    let next = set_of(&verifiers(900, &[1]));
    // (powers, signer indexes, kernel accepts)
    let cases: &[(&[u64], &[usize], bool)] = &[
        (&[2, 1], &[0], false),
        (&[2, 1], &[0, 1], true),
        (&[1, 1, 1], &[0, 1], false),
        (&[1, 1, 1], &[0, 1, 2], true),
        (&[200_001, 100_000], &[0], true),
        (&[200_000_001, 100_000_000], &[0], false),
    ];
    for (powers, chosen, accepted) in cases {
        let members = verifiers(1, powers);
        let base_set = set_of(&members);
        let c = candidate(
            dummy_outpoint(1),
            &base_set,
            &next,
            &recovery,
            7,
            CheckpointKind::Quorum,
            0,
        );
        let signers: Vec<_> = chosen.iter().map(|i| &members[*i].0).collect();
        let tx = signed_raw(&c, &base_set, &signers, 7);
        assert_eq!(
            kernel_accepts(&tx, &c.spent_txout()),
            *accepted,
            "{powers:?} {chosen:?}"
        );
        let complete = check_complete(&base_set, &c.message.sighash(), &vote_sigs(&c, &signers, 7));
        assert_eq!(complete.is_ok(), *accepted, "{powers:?} {chosen:?}");
        let voted: u128 = chosen.iter().map(|i| u128::from(powers[*i])).sum();
        let total: u128 = powers.iter().map(|p| u128::from(*p)).sum();
        if *accepted {
            assert!(has_quorum(voted, total));
        }
    }
    // (d): §10 counts 200000001 of 300000001 as a quorum; the weight is one short of T.
    assert!(has_quorum(200_000_001, 300_000_001));
    let members = verifiers(1, &[200_000_001, 100_000_000]);
    let base_set = set_of(&members);
    assert_eq!(
        base_set.weight_of(&xonly(&members[0].0)),
        Some(THRESHOLD - 1)
    );
    let c = candidate(
        dummy_outpoint(1),
        &base_set,
        &next,
        &recovery,
        7,
        CheckpointKind::Quorum,
        0,
    );
    assert_eq!(
        check_complete(
            &base_set,
            &c.message.sighash(),
            &vote_sigs(&c, &[&members[0].0], 7)
        ),
        Err(CompletenessError::Incomplete {
            weight: THRESHOLD - 1,
            threshold: THRESHOLD
        })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// (e): the kernel accepts exactly the signer sets whose weight reaches T, and each of
    /// them holds more than 2/3 of the exact stake.
    #[test]
    fn kernel_accepts_exactly_the_qualifying_signer_sets(
        powers in proptest::collection::vec(prop_oneof![1u64..4, 1u64..1_000_000, 1u64..u64::MAX / 8], 1..7),
        mask in any::<u8>(),
    ) {
        let members = verifiers(1, &powers);
        let base_set = set_of(&members);
        let next = set_of(&verifiers(900, &[1]));
        let recovery = committee().leaf;
        let c = candidate(dummy_outpoint(2), &base_set, &next, &recovery, 9, CheckpointKind::Quorum, 0);
        let chosen: Vec<usize> = (0..members.len()).filter(|i| mask & (1 << i) != 0).collect();
        let signers: Vec<_> = chosen.iter().map(|i| &members[*i].0).collect();
        let keys: Vec<_> = signers.iter().map(|k| xonly(k)).collect();
        let qualifies = base_set.qualifies(keys.iter());
        let tx = signed_raw(&c, &base_set, &signers, 9);
        prop_assert_eq!(kernel_accepts(&tx, &c.spent_txout()), qualifies);
        if qualifies {
            let voted: u128 = chosen.iter().map(|i| u128::from(powers[*i])).sum();
            let total: u128 = powers.iter().map(|p| u128::from(*p)).sum();
            prop_assert!(has_quorum(voted, total));
        }
    }
}

/// Test 2: spends Bitcoin must refuse although a qualifying set signed something.
#[test]
fn rejected_spends() {
    let recovery = committee().leaf;
    let base_members = verifiers(1, &[1, 1, 1]);
    let next_members = verifiers(10, &[1, 1, 1]);
    let base_set = set_of(&base_members);
    let next_set = set_of(&next_members);
    let all: Vec<_> = base_members.iter().map(|(k, _)| k).collect();
    let c = candidate(
        dummy_outpoint(3),
        &base_set,
        &next_set,
        &recovery,
        5,
        CheckpointKind::Quorum,
        0,
    );
    let prevout = c.spent_txout();
    let good = signed(&c, &base_set, &all, 5);
    assert!(kernel_accepts(&good, &prevout));
    let sigs: Vec<(_, Vec<u8>)> = vote_sigs(&c, &all, 5)
        .into_iter()
        .map(|(k, s)| (k, s.as_ref().to_vec()))
        .collect();
    let with_witness = |witness: Witness| {
        let mut tx = c.tx.clone();
        tx.input[0].witness = witness;
        tx
    };

    // A next-set key's signature in a base member's slot.
    let intruder = vote_sigs(&c, &[&next_members[0].0], 5)[0]
        .1
        .as_ref()
        .to_vec();
    let mut forged = sigs.clone();
    forged[0].1 = intruder;
    assert!(!kernel_accepts(
        &with_witness(raw_quorum_witness(&c.base_output, &base_set, &forged)),
        &prevout
    ));

    // The right keys signing another candidate's sighash.
    let other = candidate(
        dummy_outpoint(3),
        &base_set,
        &next_set,
        &recovery,
        5,
        CheckpointKind::Quorum,
        1,
    );
    let mut replayed = other.tx.clone();
    replayed.input[0].witness = signed(&other, &base_set, &all, 5).input[0].witness.clone();
    assert!(kernel_accepts(&replayed, &prevout));
    let mut moved = c.tx.clone();
    moved.input[0].witness = replayed.input[0].witness.clone();
    assert!(!kernel_accepts(&moved, &prevout));

    // Slots in ascending order (the script consumes the last item first).
    let items: Vec<Vec<u8>> = good.input[0].witness.to_vec();
    let mut ascending = items.clone();
    ascending[..3].reverse();
    assert_ne!(ascending, items);
    assert!(!kernel_accepts(
        &with_witness(Witness::from_slice(&ascending)),
        &prevout
    ));

    // A 65-byte signature with an explicit SIGHASH_DEFAULT byte (BIP-0341 forbids it).
    let mut long = items.clone();
    long[0].push(0x00);
    assert!(!kernel_accepts(
        &with_witness(Witness::from_slice(&long)),
        &prevout
    ));

    // An extra witness item: the stack does not end with one element.
    let mut extra = vec![Vec::new()];
    extra.extend(items.iter().cloned());
    assert!(!kernel_accepts(
        &with_witness(Witness::from_slice(&extra)),
        &prevout
    ));

    // Another set's leaf with its own control block: not committed to by the base output.
    let attackers = verifiers(20, &[1]);
    let attacker_set = set_of(&attackers);
    let fake = CheckpointOutput::new(&attacker_set, &recovery);
    let fake_candidate = candidate(
        dummy_outpoint(3),
        &attacker_set,
        &next_set,
        &recovery,
        5,
        CheckpointKind::Quorum,
        0,
    );
    let fake_signed = signed(&fake_candidate, &attacker_set, &[&attackers[0].0], 5);
    assert!(kernel_accepts(&fake_signed, &fake.txout(VALUE)));
    assert!(!kernel_accepts(&fake_signed, &prevout));
}

/// Test 4 (first half): §9 Sign over M is the tapscript signature; over the sighash it is not.
#[test]
fn eots_over_m_is_accepted_and_over_the_sighash_refused() {
    let recovery = committee().leaf;
    let members = verifiers(1, &[1]);
    let base_set = set_of(&members);
    let c = candidate(
        dummy_outpoint(4),
        &base_set,
        &base_set,
        &recovery,
        11,
        CheckpointKind::Quorum,
        0,
    );
    let kp = &members[0].0;
    let k = eots::derive_secret_randomness(&kp.secret_key(), CHAIN_ID, 11);
    let over_m = eots::sign(kp, &k, c.message.as_bytes()).to_schnorr(&k.public());
    let sighash = c.message.sighash().to_byte_array();
    let over_sighash = eots::sign(kp, &k, &sighash).to_schnorr(&k.public());
    for (sig, accepted) in [(over_m, true), (over_sighash, false)] {
        let mut tx = c.tx.clone();
        tx.input[0].witness = raw_quorum_witness(
            &c.base_output,
            &base_set,
            &[(xonly(kp), sig.as_ref().to_vec())],
        );
        assert_eq!(kernel_accepts(&tx, &c.spent_txout()), accepted);
    }
}

/// Test 6 under the interpreter: q signatures with nSequence R pass; R − 1 fails CSV; q − 1
/// signatures fail NUMEQUALVERIFY.
#[test]
fn recovery_leaf_under_the_kernel() {
    let committee = committee();
    let base_set = set_of(&verifiers(1, &[1, 1]));
    let next_set = set_of(&verifiers(10, &[1]));
    let c = candidate(
        dummy_outpoint(5),
        &base_set,
        &next_set,
        &committee.leaf,
        13,
        CheckpointKind::Recovery,
        0,
    );
    let prevout = c.spent_txout();
    assert_eq!(
        c.tx.input[0].sequence,
        Sequence::from_height(RECOVERY_BLOCKS as u16)
    );
    assert!(kernel_accepts(
        &recovery_complete(&c, &committee, &[0, 2, 4]),
        &prevout
    ));
    assert!(!kernel_accepts(
        &recovery_signed(&c, &committee, &[0, 2]),
        &prevout
    ));
    assert!(!kernel_accepts(
        &recovery_signed(&c, &committee, &[0, 1, 2, 3]),
        &prevout
    ));
    let mut early = c.tx.clone();
    early.input[0].sequence = Sequence::from_height(RECOVERY_BLOCKS as u16 - 1);
    let early_c = fiamma_finality::checkpoint::Candidate {
        message: fiamma_finality::checkpoint::checkpoint_message(
            &early,
            &prevout,
            c.base_output.leaf_hash(CheckpointLeaf::Recovery),
        )
        .expect("message"),
        tx: early,
        ..c.clone()
    };
    assert!(!kernel_accepts(
        &recovery_signed(&early_c, &committee, &[0, 2, 4]),
        &prevout
    ));
}

fn rejected(result: Result<u32, fiamma::btc::regtest::ChainError>) -> String {
    result
        .expect_err("bitcoin core refuses the block")
        .to_string()
}

/// Tests 1, 3, 5, 6 and 10 on the embedded chain: genesis → c₁ (by the genesis set A, just
/// over 2/3; exactly 2/3 refused) → c₂ (by c₁'s set B; A refused: rotation) → reuse refused →
/// c₃ by the committee after R (R − 1 refused) → an off-template spend; the reader follows it
/// all from the genesis outpoint and returns c₃, flagged as a recovery checkpoint.
#[test]
fn checkpoint_chain_on_the_embedded_chain() {
    let mut chain = RegtestChain::in_memory().expect("chain");
    let wallet = KeyWallet::new(0x61);
    chain.mine(110, &wallet.script(), unix_now()).expect("mine");
    let committee = committee();
    let a_members = verifiers(1, &[2, 1]);
    let b_members = verifiers(10, &[3, 3, 3, 1]);
    let c_members = verifiers(20, &[5, 4]);
    let (a, b, c_set) = (set_of(&a_members), set_of(&b_members), set_of(&c_members));

    // Genesis: a checkpoint output of A funded from a coinbase.
    let (coin, coin_out) = coinbase_coin(&chain, 1);
    let genesis_output = CheckpointOutput::new(&a, &committee.leaf);
    let mut fund = unsigned(
        vec![(coin, Sequence::MAX)],
        vec![
            genesis_output.txout(VALUE),
            TxOut {
                value: coin_out.value - VALUE - Amount::from_sat(1_000),
                script_pubkey: wallet.script(),
            },
        ],
    );
    wallet.sign(&mut fund, &[coin_out]);
    chain.submit_transaction(&fund).expect("funding accepted");
    chain.mine(1, &wallet.script(), unix_now()).expect("mine");
    let genesis = OutPoint::new(fund.compute_txid(), 0);
    let fee = Amount::from_sat(5_000);

    // c₁ by A: the first member alone holds exactly 2/3 and is refused; both pass.
    let c1 = candidate(
        genesis,
        &a,
        &b,
        &committee.leaf,
        100,
        CheckpointKind::Quorum,
        0,
    );
    let two_thirds = signed_raw(&c1, &a, &[&a_members[0].0], 100);
    let reason = rejected(mine_txs(
        &mut chain,
        &wallet.script(),
        vec![two_thirds],
        Amount::ZERO,
    ));
    assert!(
        reason.contains("block-script-verify-flag-failed"),
        "{reason}"
    );
    let c1_tx = signed(&c1, &a, &[&a_members[0].0, &a_members[1].0], 100);
    let c1_child = child(&c1_tx, &wallet, coinbase_coin(&chain, 2), fee);
    mine_txs(
        &mut chain,
        &wallet.script(),
        vec![c1_tx.clone(), c1_child],
        fee,
    )
    .expect("c1 mined");
    let c1_out = OutPoint::new(c1_tx.compute_txid(), 0);

    // c₂ must be signed by B, c₁'s set: A's signatures are refused (rotation enforced).
    let c2 = candidate(
        c1_out,
        &b,
        &c_set,
        &committee.leaf,
        200,
        CheckpointKind::Quorum,
        0,
    );
    let mut by_a = c2.tx.clone();
    let c2_as_a = {
        let mut as_a = c2.clone();
        as_a.base_output = CheckpointOutput::new(&a, &committee.leaf);
        as_a.message = fiamma_finality::checkpoint::checkpoint_message(
            &c2.tx,
            &c2.spent_txout(),
            as_a.base_output.leaf_hash(CheckpointLeaf::Quorum),
        )
        .expect("message");
        as_a
    };
    by_a.input[0].witness = signed(&c2_as_a, &a, &[&a_members[0].0, &a_members[1].0], 200).input[0]
        .witness
        .clone();
    let reason = rejected(mine_txs(
        &mut chain,
        &wallet.script(),
        vec![by_a],
        Amount::ZERO,
    ));
    assert!(
        reason.contains("block-script-verify-flag-failed"),
        "{reason}"
    );
    // B's three largest (9 of 10) pass.
    let b_signers: Vec<_> = b_members[..3].iter().map(|(k, _)| k).collect();
    let c2_tx = signed(&c2, &b, &b_signers, 200);
    // Two conflicting candidates in one block are refused.
    let c2_other = candidate(
        c1_out,
        &b,
        &c_set,
        &committee.leaf,
        200,
        CheckpointKind::Quorum,
        1,
    );
    let c2_other_tx = signed(&c2_other, &b, &b_signers, 200);
    let reason = rejected(mine_txs(
        &mut chain,
        &wallet.script(),
        vec![c2_tx.clone(), c2_other_tx],
        Amount::ZERO,
    ));
    assert!(
        reason.contains("bad-txns-inputs-missingorspent"),
        "{reason}"
    );
    let c2_height = mine_txs(
        &mut chain,
        &wallet.script(),
        vec![c2_tx.clone()],
        Amount::ZERO,
    )
    .expect("c2 mined");
    let c2_out = OutPoint::new(c2_tx.compute_txid(), 0);

    // Reuse: spending the spent c₁ output again is refused.
    let again = candidate(
        c1_out,
        &b,
        &a,
        &committee.leaf,
        300,
        CheckpointKind::Quorum,
        0,
    );
    let again_tx = signed(&again, &b, &b_signers, 300);
    let reason = rejected(mine_txs(
        &mut chain,
        &wallet.script(),
        vec![again_tx],
        Amount::ZERO,
    ));
    assert!(
        reason.contains("bad-txns-inputs-missingorspent"),
        "{reason}"
    );

    // c₃ by the committee (C went silent): BIP-68 refuses it at depth R − 1, accepts at R.
    let c3 = candidate(
        c2_out,
        &c_set,
        &a,
        &committee.leaf,
        300,
        CheckpointKind::Recovery,
        0,
    );
    let c3_tx = recovery_complete(&c3, &committee, &[1, 2, 3]);
    assert!(kernel_accepts(&c3_tx, &c3.spent_txout()));
    let tip = chain.tip().height;
    let to_mine = c2_height + RECOVERY_BLOCKS - 2 - tip;
    chain
        .mine(to_mine, &wallet.script(), unix_now())
        .expect("mine");
    // The next block would be at depth R − 1 of c₂'s block.
    let reason = rejected(mine_txs(
        &mut chain,
        &wallet.script(),
        vec![c3_tx.clone()],
        Amount::ZERO,
    ));
    assert!(reason.contains("bad-txns-nonfinal"), "{reason}");
    chain.mine(1, &wallet.script(), unix_now()).expect("mine");
    let c3_height = mine_txs(
        &mut chain,
        &wallet.script(),
        vec![c3_tx.clone()],
        Amount::ZERO,
    )
    .expect("c3 mined at depth R");
    assert_eq!(c3_height, c2_height + RECOVERY_BLOCKS);

    // A spends c₃'s output off the template: a plain version-2 transfer.
    let c3_out = OutPoint::new(c3_tx.compute_txid(), 0);
    let a_output = CheckpointOutput::new(&a, &committee.leaf);
    let mut rogue = unsigned(
        vec![(c3_out, Sequence::MAX)],
        vec![TxOut {
            value: VALUE - Amount::from_sat(500),
            script_pubkey: wallet.script(),
        }],
    );
    let rogue_message = fiamma_finality::checkpoint::checkpoint_message(
        &rogue,
        &a_output.txout(VALUE),
        a_output.leaf_hash(CheckpointLeaf::Quorum),
    )
    .expect("message");
    let rogue_candidate = fiamma_finality::checkpoint::Candidate {
        tx: rogue.clone(),
        base_output: a_output,
        next_output: CheckpointOutput::new(&a, &committee.leaf),
        message: rogue_message,
    };
    rogue.input[0].witness = signed(
        &rogue_candidate,
        &a,
        &[&a_members[0].0, &a_members[1].0],
        400,
    )
    .input[0]
        .witness
        .clone();
    mine_txs(
        &mut chain,
        &wallet.script(),
        vec![rogue.clone()],
        Amount::from_sat(500),
    )
    .expect("rogue spend mined");
    chain.mine(2, &wallet.script(), unix_now()).expect("mine");

    // The reader, from the genesis outpoint alone.
    let read = follow(
        &ChainScan(&chain),
        &ReaderParams {
            genesis,
            genesis_round: 0,
            value: VALUE,
        },
    )
    .expect("read");
    let rounds: Vec<u64> = read.links.iter().map(|l| l.payload.round).collect();
    assert_eq!(rounds, vec![100, 200, 300]);
    assert_eq!(read.links[0].signed_by.as_ref(), Some(&a));
    assert_eq!(read.links[1].signed_by.as_ref(), Some(&b));
    assert_eq!(read.links[2].recovered_by.as_ref(), Some(&committee.leaf));
    let latest = read
        .latest_confirmed(chain.tip().height, 4)
        .expect("latest");
    assert_eq!(latest.payload.kind, CheckpointKind::Recovery);
    assert_eq!(latest.payload.round, 300);
    assert_eq!(latest.payload.state, [0x5a; 32]);
    assert_eq!(
        read.end,
        ChainEnd::OffTemplate {
            txid: rogue.compute_txid(),
            reason: OffTemplate::Shape(ShapeError::Version(2)),
        }
    );
    // c₃ has 4 confirmations: with k = 5 the latest confirmed checkpoint is still c₂.
    assert_eq!(chain.tip().height, c3_height + 3);
    assert_eq!(
        read.latest_confirmed(chain.tip().height, 5)
            .map(|l| l.payload.round),
        Some(200)
    );
}

/// Test 4 (second half): a verifier that signs two candidates for one checkpoint round with
/// its committed randomness gives its key away; the key decrypts the covenant adaptor
/// signatures of its delegation, and the slashing transaction is mined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivocation_on_a_checkpoint_round_slashes_the_stake() {
    use btc_support::staking::{parties_with, setup_with, slashable_stake};
    use fiamma::btc::Backend;

    let verifier = keypair(7);
    let s = setup_with(8, parties_with(verifier)).await;
    let stake = slashable_stake(&s).await;

    // The verifier is a member of the base set; two candidates for round 2160 on one base.
    let committee = committee();
    let members = vec![(verifier, 5), (keypair(8), 1)];
    let base_set = set_of(&members);
    let next_set = set_of(&verifiers(30, &[1]));
    let round = 2_160;
    let first = candidate(
        dummy_outpoint(9),
        &base_set,
        &next_set,
        &committee.leaf,
        round,
        CheckpointKind::Quorum,
        0,
    );
    let second = candidate(
        dummy_outpoint(9),
        &base_set,
        &next_set,
        &committee.leaf,
        round,
        CheckpointKind::Quorum,
        1,
    );
    let v1 = votes(&first, &[&verifier], round)[0];
    let v2 = votes(&second, &[&verifier], round)[0];
    assert_eq!(v1.public_randomness, v2.public_randomness);
    // Each is a valid tapscript signature of its candidate.
    for (c, v) in [(&first, v1), (&second, v2)] {
        let mut tx = c.tx.clone();
        tx.input[0].witness = raw_quorum_witness(
            &c.base_output,
            &base_set,
            &[(v.voter, v.key_signature().1.as_ref().to_vec())],
        );
        assert!(kernel_accepts(&tx, &c.spent_txout()));
    }
    let extracted = eots::extract(
        &xonly(&verifier),
        &v1.public_randomness,
        first.message.as_bytes(),
        &v1.signature,
        second.message.as_bytes(),
        &v2.signature,
    )
    .expect("key extracted");
    assert_eq!(
        extracted.x_only_public_key(bitcoin::secp256k1::SECP256K1).0,
        xonly(&verifier)
    );

    let (txid, _) = stake.slash(&s, &extracted).await;
    let mined = s
        .backend
        .transaction(&txid)
        .await
        .expect("tx")
        .expect("known");
    assert_eq!(mined.input[0].previous_output, stake.staked);
    assert_eq!(mined.output[0].script_pubkey, stake.slashing_pk_script);
}
