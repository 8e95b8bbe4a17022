//! The consensus story of the staking scripts on the embedded chain, judged by Bitcoin
//! Core's validation: a staking transaction is mined; its timelock spend is refused before
//! T blocks and mined after; the unbonding spend is refused with q−1 covenant signatures
//! (by the mempool and, inside a block, by Bitcoin Core's block validation) and mined with q;
//! a verifier that signs two votes for one round loses its key, which decrypts the covenant
//! adaptor signatures, so the slashing transaction is assembled and mined; its change output's
//! timelock is enforced.

mod btc_support;

use bitcoin::hashes::Hash;
use bitcoin::key::Keypair;
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Amount, OutPoint, Sequence, Transaction, TxOut, Txid, Witness, XOnlyPublicKey};
use btc_support::{unsigned, KeyWallet};
use fiamma::btc::mining::{assemble_block, next_block_time, BlockTemplate};
use fiamma::btc::regtest::unix_now;
use fiamma::btc::{
    Backend, BroadcastError, EmbeddedBackend, RegtestChain, RejectionKind, TxStatus,
};
use fiamma_covenant::adaptor::{enc_sign, DecryptionKey, EncryptionKey};
use fiamma_finality::eots;
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::rate::SlashingRate;
use fiamma_staking::sighash::{sign, tapscript_sighash};
use fiamma_staking::slashing::{build_slashing_tx, SlashingTerms};
use fiamma_staking::taproot::{Leaf, TaprootOutput};
use fiamma_staking::unbonding::build_unbonding_tx;
use fiamma_staking::witness::{slashing_witness, timelock_witness, unbonding_witness};

const STAKING_TIME: u16 = 10;
const UNBONDING_TIME: u32 = 5;
const STAKE: Amount = Amount::from_sat(10_0000_0000);
const FEE: Amount = Amount::from_sat(2_000);

fn keypair(byte: u8) -> Keypair {
    Keypair::from_secret_key(
        &Secp256k1::new(),
        &SecretKey::from_slice(&[byte; 32]).expect("key"),
    )
}

fn xonly(k: &Keypair) -> XOnlyPublicKey {
    k.x_only_public_key().0
}

struct Parties {
    staker: Keypair,
    verifier: Keypair,
    covenants: Vec<Keypair>,
    keys: StakingKeys,
}

fn parties() -> Parties {
    let staker = keypair(0x11);
    let verifier = keypair(0x22);
    let covenants: Vec<Keypair> = [0x31, 0x32, 0x33].into_iter().map(keypair).collect();
    let covenant_keys: Vec<XOnlyPublicKey> = covenants.iter().map(xonly).collect();
    let keys =
        StakingKeys::new(xonly(&staker), &[xonly(&verifier)], &covenant_keys, 2).expect("keys");
    Parties {
        staker,
        verifier,
        covenants,
        keys,
    }
}

fn rejection(result: Result<Txid, BroadcastError>) -> (RejectionKind, String) {
    match result {
        Err(BroadcastError::Rejected(r)) => (r.kind, r.reason),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

async fn mine(backend: &EmbeddedBackend, wallet: &KeyWallet, blocks: u32) {
    backend.mine(blocks, &wallet.script()).await.expect("mine");
}

/// Locks `STAKE` in `output` from a mature coinbase of `wallet`; returns the staking outpoint.
async fn stake(
    backend: &EmbeddedBackend,
    wallet: &KeyWallet,
    height: u32,
    output: &TaprootOutput,
) -> OutPoint {
    let hash = backend
        .block_hash(height)
        .await
        .expect("hash")
        .expect("block");
    let coinbase = backend
        .block(&hash)
        .await
        .expect("block")
        .expect("block")
        .txdata[0]
        .clone();
    let funds = coinbase.output[0].clone();
    let mut tx = unsigned(
        vec![(OutPoint::new(coinbase.compute_txid(), 0), Sequence::MAX)],
        vec![
            output.txout(STAKE),
            TxOut {
                value: funds.value - STAKE - FEE,
                script_pubkey: wallet.script(),
            },
        ],
    );
    wallet.sign(&mut tx, &[funds]);
    let txid = backend.broadcast(&tx).await.expect("staking tx accepted");
    OutPoint::new(txid, 0)
}

fn leaf_sighash(
    tx: &Transaction,
    spent: &TxOut,
    output: &TaprootOutput,
    leaf: Leaf,
) -> bitcoin::TapSighash {
    tapscript_sighash(
        tx,
        0,
        std::slice::from_ref(spent),
        output.leaf_script(leaf).expect("leaf"),
    )
    .expect("sighash")
}

/// A chain with 101 blocks mined to `wallet`, and the parties' staking output.
struct Setup {
    backend: EmbeddedBackend,
    wallet: KeyWallet,
    p: Parties,
    staking_output: TaprootOutput,
    staking_txout: TxOut,
}

async fn setup(wallet_seed: u8) -> Setup {
    let backend = EmbeddedBackend::new(RegtestChain::in_memory().expect("chain"));
    let wallet = KeyWallet::new(wallet_seed);
    let p = parties();
    let staking_output = TaprootOutput::staking(&p.keys, u32::from(STAKING_TIME)).expect("output");
    let staking_txout = staking_output.txout(STAKE);
    mine(&backend, &wallet, 101).await;
    Setup {
        backend,
        wallet,
        p,
        staking_output,
        staking_txout,
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
        let block = assemble_block(
            &BlockTemplate {
                prev_hash: tip.hash,
                height: tip.height + 1,
                time: next_block_time(unix_now(), chain.index().tip().median_time_past),
                payout_script: wallet.script(),
                fees: FEE,
            },
            vec![short.clone()],
        )
        .expect("assemble");
        let err = chain
            .submit_block(&block)
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
    let Setup {
        backend,
        wallet,
        p,
        staking_output,
        staking_txout,
    } = setup(6).await;
    let staked = stake(&backend, &wallet, 1, &staking_output).await;
    mine(&backend, &wallet, 1).await;

    // At registration: the slashing transaction, the staker's signature, and each covenant
    // member's adaptor signature encrypted to the verifier's key.
    let slashing_pk_script = KeyWallet::new(42).script();
    let terms = SlashingTerms {
        slashing_pk_script: &slashing_pk_script,
        slashing_rate: SlashingRate::from_ten_thousandths(1_000).expect("10%"),
        min_fee: FEE,
    };
    let change_output =
        TaprootOutput::slashing_change(&xonly(&p.staker), UNBONDING_TIME).expect("change output");
    let mut slash = build_slashing_tx(staked, STAKE, &terms, FEE, &change_output.script_pubkey())
        .expect("slashing tx");
    let sighash = leaf_sighash(&slash, &staking_txout, &staking_output, Leaf::Slashing);
    let staker_sig = sign(&sighash, &p.staker);
    let encryption_key = EncryptionKey::from_verifier_key(&xonly(&p.verifier));
    let presigs: Vec<_> = p
        .covenants
        .iter()
        .map(|k| {
            let presig = enc_sign(k, &encryption_key, &sighash.to_byte_array(), &[7; 32])
                .expect("adaptor signature");
            (xonly(k), presig)
        })
        .collect();

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
    let decryption_key = DecryptionKey::from_verifier_secret(&extracted);
    let covenant_sigs: Vec<_> = presigs
        .iter()
        .map(|(pk, presig)| (*pk, presig.decrypt(&decryption_key).expect("decrypt")))
        .collect();
    let verifier_keypair = Keypair::from_secret_key(&Secp256k1::new(), &extracted);
    let verifier_sig = sign(&sighash, &verifier_keypair);
    slash.input[0].witness = slashing_witness(
        &staking_output,
        &p.keys,
        &covenant_sigs,
        &[(xonly(&p.verifier), verifier_sig)],
        &staker_sig,
    )
    .expect("slashing witness");
    let slash_txid = backend
        .broadcast(&slash)
        .await
        .expect("slashing tx accepted");
    mine(&backend, &wallet, 1).await;
    let slashed_at = match backend.tx_status(&slash_txid).await.expect("status") {
        TxStatus::Confirmed { height, .. } => height,
        other => panic!("slashing tx not mined: {other:?}"),
    };
    let mined = backend
        .transaction(&slash_txid)
        .await
        .expect("tx")
        .expect("known");
    assert_eq!(mined.output[0].script_pubkey, slashing_pk_script);
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
        &leaf_sighash(&reclaim, &mined.output[1], &change_output, Leaf::Timelock),
        &p.staker,
    );
    reclaim.input[0].witness = timelock_witness(&change_output, &sig).expect("witness");
    let tip = backend.tip().await.expect("tip").height;
    mine(&backend, &wallet, slashed_at + UNBONDING_TIME - 2 - tip).await;
    let (kind, reason) = rejection(backend.broadcast(&reclaim).await);
    assert_eq!(kind, RejectionKind::Rejected);
    assert!(reason.starts_with("non-BIP68-final"), "{reason}");
    mine(&backend, &wallet, 1).await;
    let reclaimed = backend
        .broadcast(&reclaim)
        .await
        .expect("change spend after U");
    mine(&backend, &wallet, 1).await;
    assert!(matches!(
        backend.tx_status(&reclaimed).await.expect("status"),
        TxStatus::Confirmed { .. }
    ));
}
