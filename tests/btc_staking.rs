//! The consensus story of the staking scripts on the embedded chain, judged by Bitcoin
//! Core's validation: a staking transaction is mined; its timelock spend is refused before
//! T blocks and mined after; the unbonding spend is refused with q−1 covenant signatures
//! (by the mempool and, inside a block, by Bitcoin Core's block validation) and mined with q;
//! a verifier that signs two votes for one round loses its key, which decrypts the covenant
//! adaptor signatures, so the slashing transaction is assembled and mined; its change output's
//! timelock is enforced.

mod btc_support;

use bitcoin::{Amount, OutPoint, Sequence, TxOut, Txid, Witness};
use btc_support::staking::{
    leaf_sighash, mine, setup, slashable_stake, stake, xonly, Setup, FEE, STAKE, STAKING_TIME,
    UNBONDING_TIME,
};
use btc_support::{mine_txs, unsigned};
use fiamma::btc::{Backend, BroadcastError, RejectionKind, TxStatus};
use fiamma_finality::eots;
use fiamma_staking::sighash::sign;
use fiamma_staking::taproot::Leaf;
use fiamma_staking::unbonding::build_unbonding_tx;
use fiamma_staking::witness::{timelock_witness, unbonding_witness};

fn rejection(result: Result<Txid, BroadcastError>) -> (RejectionKind, String) {
    match result {
        Err(BroadcastError::Rejected(r)) => (r.kind, r.reason),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staking_timelock_and_unbonding_paths_under_core_validation() {
    let Setup {
        backend,
        wallet,
        p,
        staking_output,
        staking_txout,
    } = setup(5).await;

    // Two staking transactions: one for the timelock story, one for unbonding.
    let for_timelock = stake(&backend, &wallet, 1, &staking_output).await;
    let for_unbonding = stake(&backend, &wallet, 2, &staking_output).await;
    mine(&backend, &wallet, 1).await;
    let staked_at = match backend.tx_status(&for_timelock.txid).await.expect("status") {
        TxStatus::Confirmed { height, .. } => height,
        other => panic!("staking tx not mined: {other:?}"),
    };

    // Timelock path: nSequence = T; the staker alone signs.
    let mut withdraw = unsigned(
        vec![(for_timelock, Sequence::from_height(STAKING_TIME))],
        vec![TxOut {
            value: STAKE - FEE,
            script_pubkey: wallet.script(),
        }],
    );
    let sig = sign(
        &leaf_sighash(&withdraw, &staking_txout, &staking_output, Leaf::Timelock),
        &p.staker,
    );
    withdraw.input[0].witness = timelock_witness(&staking_output, &sig).expect("witness");
    // The next block would give the staking output T−1 confirmations… refused until T.
    let tip = backend.tip().await.expect("tip").height;
    mine(
        &backend,
        &wallet,
        staked_at + u32::from(STAKING_TIME) - 2 - tip,
    )
    .await;
    let (kind, reason) = rejection(backend.broadcast(&withdraw).await);
    assert_eq!(kind, RejectionKind::Rejected);
    assert!(reason.starts_with("non-BIP68-final"), "{reason}");
    // …and with a shorter nSequence than the script's T, OP_CHECKSEQUENCEVERIFY refuses.
    let mut impatient = withdraw.clone();
    impatient.input[0].sequence = Sequence::from_height(STAKING_TIME - 1);
    let sig = sign(
        &leaf_sighash(&impatient, &staking_txout, &staking_output, Leaf::Timelock),
        &p.staker,
    );
    impatient.input[0].witness = timelock_witness(&staking_output, &sig).expect("witness");
    let (_, reason) = rejection(backend.broadcast(&impatient).await);
    assert!(
        reason.starts_with("mandatory-script-verify-flag-failed"),
        "{reason}"
    );
    mine(&backend, &wallet, 1).await;
    let withdrawn = backend
        .broadcast(&withdraw)
        .await
        .expect("timelock spend after T");
    mine(&backend, &wallet, 1).await;
    assert!(matches!(
        backend.tx_status(&withdrawn).await.expect("status"),
        TxStatus::Confirmed { .. }
    ));

    // Unbonding path: staker plus q = 2 of 3 covenant signatures.
    let (mut unbond, _unbonding_output) =
        build_unbonding_tx(&p.keys, for_unbonding, STAKE, UNBONDING_TIME, FEE)
            .expect("unbonding tx");
    let sighash = leaf_sighash(&unbond, &staking_txout, &staking_output, Leaf::Unbonding);
    let staker_sig = sign(&sighash, &p.staker);
    let covenant_sigs: Vec<_> = p
        .covenants
        .iter()
        .map(|k| (xonly(k), sign(&sighash, k)))
        .collect();
    let full =
        unbonding_witness(&staking_output, &p.keys, &covenant_sigs, &staker_sig).expect("witness");

    // q−1: blank one of the q covenant signature slots.
    let mut items = full.to_vec();
    let slot = items
        .iter()
        .take(p.covenants.len())
        .position(|item| !item.is_empty())
        .expect("a covenant signature");
    items[slot].clear();
    let mut short = unbond.clone();
    short.input[0].witness = Witness::from_slice(&items);
    let (kind, reason) = rejection(backend.broadcast(&short).await);
    assert_eq!(kind, RejectionKind::Rejected);
    assert!(
        reason.starts_with("mandatory-script-verify-flag-failed"),
        "{reason}"
    );
    // Forced into a block, Bitcoin Core's block validation refuses it and the tip stays.
    {
        let shared = backend.shared();
        let mut chain = shared.write().await;
        let tip = chain.tip();
        let err = mine_txs(&mut chain, &wallet.script(), vec![short.clone()], FEE)
            .expect_err("core refuses q-1 signatures");
        assert!(
            err.to_string().contains("block-script-verify-flag-failed"),
            "{err}"
        );
        assert_eq!(chain.tip(), tip);
    }

    unbond.input[0].witness = full;
    let unbonded = backend
        .broadcast(&unbond)
        .await
        .expect("unbonding with q signatures");
    mine(&backend, &wallet, 1).await;
    assert!(matches!(
        backend.tx_status(&unbonded).await.expect("status"),
        TxStatus::Confirmed { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivocation_slashes_the_stake_under_core_validation() {
    let s = setup(6).await;
    let (backend, wallet, p) = (&s.backend, &s.wallet, &s.p);
    // At registration: the slashing transaction, the staker's signature, and each covenant
    // member's adaptor signature encrypted to the verifier's key.
    let stake = slashable_stake(&s).await;

    // The verifier signs two different votes for one round with the same randomness.
    let sec_rand = eots::derive_secret_randomness(&p.verifier.secret_key(), "fiamma-regtest", 42);
    let (vote_a, vote_b) = (
        b"round 42: proof A".as_slice(),
        b"round 42: proof B".as_slice(),
    );
    let sig_a = eots::sign(&p.verifier, &sec_rand, vote_a);
    let sig_b = eots::sign(&p.verifier, &sec_rand, vote_b);
    let extracted = eots::extract(
        &xonly(&p.verifier),
        &sec_rand.public(),
        vote_a,
        &sig_a,
        vote_b,
        &sig_b,
    )
    .expect("key extracted");

    // Anyone holding the extracted key decrypts the covenant signatures and signs as the verifier.
    let (slash_txid, slashed_at) = stake.slash(&s, &extracted).await;
    let mined = backend
        .transaction(&slash_txid)
        .await
        .expect("tx")
        .expect("known");
    assert_eq!(mined.output[0].script_pubkey, stake.slashing_pk_script);
    assert_eq!(mined.output[0].value, Amount::from_sat(1_0000_0000));

    // The change output is the staker's only after the unbonding time.
    let change = OutPoint::new(slash_txid, 1);
    let change_value = mined.output[1].value;
    let mut reclaim = unsigned(
        vec![(change, Sequence::from_height(UNBONDING_TIME as u16))],
        vec![TxOut {
            value: change_value - FEE,
            script_pubkey: wallet.script(),
        }],
    );
    let sig = sign(
        &leaf_sighash(
            &reclaim,
            &mined.output[1],
            &stake.change_output,
            Leaf::Timelock,
        ),
        &p.staker,
    );
    reclaim.input[0].witness = timelock_witness(&stake.change_output, &sig).expect("witness");
    let tip = backend.tip().await.expect("tip").height;
    mine(backend, wallet, slashed_at + UNBONDING_TIME - 2 - tip).await;
    let (kind, reason) = rejection(backend.broadcast(&reclaim).await);
    assert_eq!(kind, RejectionKind::Rejected);
    assert!(reason.starts_with("non-BIP68-final"), "{reason}");
    mine(backend, wallet, 1).await;
    let reclaimed = backend
        .broadcast(&reclaim)
        .await
        .expect("change spend after U");
    mine(backend, wallet, 1).await;
    assert!(matches!(
        backend.tx_status(&reclaimed).await.expect("status"),
        TxStatus::Confirmed { .. }
    ));
}
