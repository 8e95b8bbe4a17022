//! A staker's whole life against real processes (`fiamma regtest`, `fiamma node`, `fiamma
//! covenant` daemons): a new wallet funded by mining stakes twice; bad requests are refused
//! before any coin moves; the service broadcasts each staking transaction only once the
//! committee has signed, sees both ACTIVE, unbonds one and withdraws it after U, and withdraws
//! the other by the timelock path once it expired. A watch-only staker lives the same life with
//! a separate signer process, its planned stake surviving a restart before the signer answers.
//! Every transaction it broadcasts is mined by the embedded chain (Bitcoin Core's consensus
//! engine).

mod covenant_support;
mod node_process;
mod node_support;
mod staker_support;

use bitcoin::{Amount, Txid};
use fiamma_proto::staking::v1 as pb;
use fiamma_staker::plan::{PlanError, WithdrawFrom};
use fiamma_staker::staker::{Action, StakeOutcome, StakerError, StepReport};
use fiamma_staker::store::Step;
use fiamma_wallet::{WalletError, WalletKeys};
use sqlx::PgPool;
use staker_support::World;

fn action_of(report: &StepReport, txid: &str, pick: impl Fn(&Action) -> bool) -> Option<Action> {
    report
        .actions
        .iter()
        .find(|(t, a)| t == txid && pick(a))
        .map(|(_, a)| a.clone())
}

fn registered(outcome: StakeOutcome) -> String {
    match outcome {
        StakeOutcome::Registered { staking_txid } => staking_txid,
        other => panic!("not registered: {other:?}"),
    }
}

#[sqlx::test]
async fn a_staker_stakes_unbonds_withdraws_and_withdraws_an_expired_stake(pool: PgPool) {
    let mut world = World::start(&pool).await;
    let url = fiamma_role::store::sqlite_url(&world.dir.path().join("staker.sqlite"));
    let keys = WalletKeys::generate().expect("keys");
    let staker = world
        .staker_with(&url, &keys, vec![world.params.clone()])
        .await;
    let address = staker.wallet().await.next_address().await.expect("address");
    // Two coinbases: two stakes can wait for the committee at once, each on its own coin.
    world.mine_to(2, &address).await;
    world.mine(100).await;
    staker.sync().await.expect("sync");
    let funded = staker.wallet().await.balance().confirmed;
    assert_eq!(funded, Amount::from_int_btc(100));

    // Refused before any coin moves, each with what to change.
    let verifier = world.verifier;
    let unknown =
        bitcoin::secp256k1::Keypair::from_seckey_slice(bitcoin::secp256k1::SECP256K1, &[77; 32])
            .expect("key")
            .x_only_public_key()
            .0;
    let refusals = [
        staker
            .stake(unknown, Amount::from_int_btc(1), 100, None)
            .await
            .expect_err("unknown verifier"),
        staker
            .stake(verifier, Amount::from_sat(5_000), 100, None)
            .await
            .expect_err("amount below the params"),
        staker
            .stake(verifier, Amount::from_int_btc(1), 5, None)
            .await
            .expect_err("time below the params"),
        staker
            .stake(verifier, Amount::from_int_btc(100), 100, None)
            .await
            .expect_err("insufficient funds"),
    ];
    assert!(
        matches!(refusals[0], StakerError::UnknownVerifier(_)),
        "{}",
        refusals[0]
    );
    assert!(
        matches!(refusals[1], StakerError::Plan(PlanError::Amount { .. })),
        "{}",
        refusals[1]
    );
    assert!(
        matches!(refusals[2], StakerError::Plan(PlanError::Time { .. })),
        "{}",
        refusals[2]
    );
    assert!(
        matches!(&refusals[3], StakerError::Wallet(WalletError::Build { reason, .. }) if reason.contains("nsufficient")),
        "{}",
        refusals[3]
    );
    assert!(refusals[0].to_string().contains(&unknown.to_string()));
    // A staker whose own params differ from the node's signs nothing.
    let mut other = world.params.clone();
    other.slashing_rate = "0.2".parse().expect("rate");
    let other_url = fiamma_role::store::sqlite_url(&world.dir.path().join("other.sqlite"));
    let mismatched = world.staker_with(&other_url, &keys, vec![other]).await;
    let e = mismatched
        .stake(verifier, Amount::from_int_btc(1), 100, None)
        .await
        .expect_err("params differ");
    assert!(e.to_string().contains("slashing_rate"), "{e}");
    assert!(staker.store().all().await.expect("store").is_empty());
    assert_eq!(staker.wallet().await.balance().confirmed, funded);

    // Two stakes: one to unbond, one to expire (T = 15 blocks, U = 5).
    let long = registered(
        staker
            .stake(verifier, Amount::from_int_btc(2), 100, None)
            .await
            .expect("stakes"),
    );
    let short = registered(
        staker
            .stake(verifier, Amount::from_int_btc(1), 15, None)
            .await
            .expect("stakes again, from other coins"),
    );
    assert_ne!(long, short);
    // Nothing is broadcast before the committee has signed.
    for txid in [&long, &short] {
        let id: Txid = txid.parse().expect("txid");
        assert_eq!(
            fiamma::btc::Backend::tx_status(&world.bitcoin, &id)
                .await
                .expect("status"),
            fiamma::btc::TxStatus::Unknown
        );
    }
    let mut broadcast = Vec::new();
    let mut active = Vec::new();
    world
        .step_until(&staker, "both stakes ACTIVE", 30, |r| {
            for t in [&long, &short] {
                if let Some(Action::Broadcast(id)) =
                    action_of(r, t, |a| matches!(a, Action::Broadcast(_)))
                {
                    broadcast.push(id);
                }
                if action_of(r, t, |a| *a == Action::Active).is_some() {
                    active.push(t.clone());
                }
            }
            active.len() == 2
        })
        .await;
    assert_eq!(
        broadcast.len(),
        2,
        "each staking transaction broadcast once"
    );
    for id in &broadcast {
        world.assert_mined(*id).await;
    }
    assert_eq!(world.status(&long).await, pb::DelegationStatus::Active);

    staker
        .request_unbond(&long)
        .await
        .expect("unbond requested");
    let mut unbonded = None;
    let mut withdrawn = Vec::new();
    let mut done = Vec::new();
    world
        .step_until(&staker, "both withdrawals confirmed", 40, |r| {
            if let Some(Action::Unbonded(id)) =
                action_of(r, &long, |a| matches!(a, Action::Unbonded(_)))
            {
                unbonded = Some(id);
            }
            for t in [&long, &short] {
                if let Some(Action::Withdrew(from, id)) =
                    action_of(r, t, |a| matches!(a, Action::Withdrew(..)))
                {
                    withdrawn.push((t.clone(), from, id));
                }
                if action_of(r, t, |a| *a == Action::Done).is_some() {
                    done.push(t.clone());
                }
            }
            done.len() == 2
        })
        .await;
    let unbonded = unbonded.expect("the unbonding transaction was broadcast");
    world.assert_mined(unbonded).await;
    assert_eq!(world.status(&long).await, pb::DelegationStatus::Unbonded);
    assert_eq!(world.status(&short).await, pb::DelegationStatus::Expired);
    withdrawn.sort_by_key(|(t, _, _)| t != &long);
    assert_eq!(withdrawn.len(), 2, "{withdrawn:?}");
    assert_eq!(withdrawn[0].1, WithdrawFrom::Unbonding);
    assert_eq!(withdrawn[1].1, WithdrawFrom::Staking);
    for (_, _, id) in &withdrawn {
        world.assert_mined(*id).await;
    }
    let views = staker.delegations().await.expect("list");
    assert!(views.iter().all(|v| v.step == Step::Done), "{views:?}");
    staker.sync().await.expect("sync");
    let end = staker.wallet().await.balance().confirmed;
    assert!(
        end > funded - Amount::from_sat(300_000) && end < funded,
        "only fees and the unbonding fee are gone: {end}"
    );
}

/// Runs `fiamma staker psbt sign` (the external signer, a process of its own that holds the
/// sealed keys and sees nothing but the PSBT file).
fn external_sign(secret: &std::path::Path, input: &std::path::Path, output: &std::path::Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(["staker", "psbt", "sign", "--network", "regtest", "--secret"])
        .arg(secret)
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(output)
        .env("FIAMMA_STAKER_PASSPHRASE", "signer passphrase")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the signer runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[sqlx::test]
async fn a_watch_only_staker_lives_the_same_life_with_a_separate_signer(pool: PgPool) {
    let world = World::start(&pool).await;
    // The signer's sealed keys; the staker holds only the public descriptors.
    let keys = WalletKeys::generate().expect("keys");
    let secret = world.dir.path().join("signer.age");
    keys.seal(
        &secret,
        bitcoin::Network::Regtest,
        &fiamma_role::SecretString::from("signer passphrase".to_owned()),
        fiamma_role::keystore::MIN_WORK_FACTOR,
    )
    .expect("sealed");
    let pair = keys
        .descriptors(bitcoin::Network::Regtest)
        .expect("descriptors");
    let public = |text: &str| {
        let (d, _) = bdk_wallet::miniscript::Descriptor::parse_descriptor(
            bitcoin::secp256k1::SECP256K1,
            text,
        )
        .expect("parses");
        d.to_string()
    };
    let watch = WalletKeys::from_descriptors(&public(&pair.external), &public(&pair.internal))
        .expect("public descriptors");
    let url = fiamma_role::store::sqlite_url(&world.dir.path().join("watch.sqlite"));
    let staker = world
        .staker_with(&url, &watch, vec![world.params.clone()])
        .await;
    assert!(staker.wallet().await.is_watch_only());
    let address = staker.wallet().await.next_address().await.expect("address");
    world.mine_to(1, &address).await;
    world.mine(100).await;

    let StakeOutcome::NeedsSignatures {
        staking_txid,
        bundle,
    } = staker
        .stake(world.verifier, Amount::from_int_btc(3), 100, None)
        .await
        .expect("planned")
    else {
        panic!("a watch-only wallet cannot sign");
    };
    assert!(staker.store().all().await.expect("store").is_empty());
    // A restart between the plan and the signed PSBTs loses nothing: the plan is in the store,
    // and so is the lock on its coin (the wallet's only one), which no other stake may take.
    drop(staker);
    let staker = world
        .staker_with(&url, &watch, vec![world.params.clone()])
        .await;
    let plans = staker.store().plans().await.expect("plans");
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].staking_txid, staking_txid);
    let e = staker
        .stake(world.verifier, Amount::from_int_btc(1), 100, None)
        .await
        .expect_err("the only coin is held by the planned stake");
    assert!(
        matches!(&e, StakerError::Wallet(WalletError::Build { reason, .. }) if reason.contains("nsufficient")),
        "{e}"
    );
    let unsigned = world.dir.path().join("stake.json");
    let signed = world.dir.path().join("stake.signed.json");
    std::fs::write(&unsigned, serde_json::to_string(&bundle).expect("json")).expect("write");
    external_sign(&secret, &unsigned, &signed);
    let signed_bundle: fiamma_staker::plan::PsbtBundle =
        serde_json::from_str(&std::fs::read_to_string(&signed).expect("read")).expect("bundle");
    // The unsigned bundle does not register anything.
    assert!(staker.import_stake(&bundle).await.is_err());
    let registered = staker.import_stake(&signed_bundle).await.expect("imported");
    assert_eq!(registered, staking_txid);
    assert!(staker.store().plans().await.expect("plans").is_empty());

    world
        .step_until(&staker, "the stake ACTIVE", 30, |r| {
            action_of(r, &staking_txid, |a| *a == Action::Active).is_some()
        })
        .await;
    staker.request_unbond(&staking_txid).await.expect("unbond");
    world
        .step_until(&staker, "a withdrawal PSBT", 40, |r| {
            action_of(r, &staking_txid, |a| {
                matches!(a, Action::WithdrawalNeedsSignature(WithdrawFrom::Unbonding))
            })
            .is_some()
        })
        .await;
    let record = staker
        .store()
        .get(&staking_txid)
        .await
        .expect("store")
        .expect("recorded");
    let psbt_in = world.dir.path().join("withdraw.psbt");
    let psbt_out = world.dir.path().join("withdraw.signed.psbt");
    std::fs::write(&psbt_in, record.withdraw_psbt.expect("psbt")).expect("write");
    external_sign(&secret, &psbt_in, &psbt_out);
    let signed = fiamma_wallet::psbt::read_file(&psbt_out).expect("signed psbt");
    let withdrawal = staker.import_withdraw(&signed).await.expect("withdrawn");
    world
        .step_until(&staker, "the withdrawal confirmed", 10, |r| {
            action_of(r, &staking_txid, |a| *a == Action::Done).is_some()
        })
        .await;
    world.assert_mined(withdrawal).await;
}
