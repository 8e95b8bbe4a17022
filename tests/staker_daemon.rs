//! `fiamma staker run` as anyone runs it, driven only through the `fiamma staker` CLI verbs
//! that call its gRPC API, against real processes (`fiamma regtest`, `fiamma node`, `fiamma
//! covenant` daemons):
//! - a wallet created by the CLI, funded by mining, stakes; the service broadcasts once the
//!   committee has signed and the delegation turns ACTIVE;
//! - bad input is refused before any coin moves, each with a message naming what to change
//!   (insufficient funds, amount or time outside the params, an unknown, a slashed and a
//!   jailed verifier, a node whose params differ, a wrong passphrase);
//! - the stake of a verifier slashed on Bitcoin: the change output is withdrawn after U;
//! - the service SIGKILLed (aborted by its fault hook) after each step of the stake flow and
//!   restarted: one staking transaction per stake, never two, and every delegation ACTIVE.
//!
//! Every transaction the service broadcasts is mined by the embedded chain (Bitcoin Core's
//! consensus engine).

mod covenant_support;
mod node_finality_support;
mod node_process;
mod staker_support;

// `node_process`, `covenant_support` and `staker_support` read the shared node support at the
// crate root.
use node_finality_support::node_support;

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Address, Amount, Network, OutPoint, Txid};
use fiamma::btc::{Backend, OutPointStatus};
use fiamma_covenant::delegation::SlashingTx;
use fiamma_proto::client::served_delegation;
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::finality::v1::finality_client::FinalityClient;
use fiamma_proto::staking::v1 as pb;
use fiamma_slasher::plan::SlashableDelegation;
use fiamma_staker::plan::WithdrawFrom;
use fiamma_staker::store::{StakerStore, Step};
use node_finality_support::{vote_request, TestVerifier};
use node_process::connect;
use node_support::{keypair, verifier_request, xonly};
use sqlx::PgPool;
use staker_support::{
    cli_err, cli_ok, confirmed_balance, delegation_line, spawn_staker, wait_for_api, write_staker,
    World,
};
use tonic::transport::Channel;

/// A child killed (SIGKILL) when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A wallet for `config` made by the CLI, and its service running; returns the service.
async fn wallet_and_service(config: &Path) -> Daemon {
    cli_ok(config, &["wallet", "create", "--work-factor", "10"]);
    let daemon = Daemon(spawn_staker(config, None));
    wait_for_api(config).await;
    daemon
}

fn address_of(config: &Path) -> Address {
    cli_ok(config, &["wallet", "address"])
        .trim()
        .parse::<Address<bitcoin::address::NetworkUnchecked>>()
        .expect("an address")
        .require_network(Network::Regtest)
        .expect("regtest")
}

/// `fiamma staker stake` to `verifier` of `btc` for `time` blocks, to its end.
fn stake_call(
    config: &Path,
    verifier: &XOnlyPublicKey,
    btc: &str,
    time: u32,
) -> std::process::Output {
    let (verifier, time) = (verifier.to_string(), time.to_string());
    staker_support::staker_cli(
        config,
        &[
            "stake",
            "--verifier",
            &verifier,
            "--amount",
            btc,
            "--time",
            &time,
        ],
    )
}

/// A stake that must be accepted: the staking txid it prints.
fn stake(config: &Path, verifier: &XOnlyPublicKey, btc: &str, time: u32) -> String {
    let out = stake_call(config, verifier, btc, time);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The refusal of a stake.
fn refused(config: &Path, verifier: &XOnlyPublicKey, btc: &str, time: u32) -> String {
    let out = stake_call(config, verifier, btc, time);
    assert!(
        !out.status.success(),
        "accepted: {btc} BTC for {time} blocks"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Mines a block at a time until `fiamma staker delegations` shows `want` on each of `txids`.
async fn mine_until(world: &World, config: &Path, txids: &[&str], want: &str, blocks: u32) {
    for _ in 0..blocks {
        for _ in 0..10 {
            if txids
                .iter()
                .all(|t| delegation_line(config, t).is_some_and(|l| l.contains(want)))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        world.mine(1).await;
    }
    panic!(
        "{txids:?} never showed {want:?}:\n{}\n{}",
        cli_ok(config, &["delegations"]),
        std::fs::read_to_string(config.with_file_name("daemon.log")).unwrap_or_default()
    );
}

async fn finality_status(
    finality: &mut FinalityClient<Channel>,
    key: &XOnlyPublicKey,
) -> fpb::VerifierStatus {
    finality
        .verifier(fpb::VerifierRequest {
            verifier_btc_pk: key.serialize().to_vec(),
        })
        .await
        .expect("verifier")
        .into_inner()
        .verifier
        .expect("served")
        .status()
}

async fn latest_round(finality: &mut FinalityClient<Channel>) -> u64 {
    finality
        .rounds(fpb::RoundsRequest {
            from_round: 1,
            limit: 1,
        })
        .await
        .expect("rounds")
        .into_inner()
        .latest_round
}

/// The first closed round from `from` on whose active set holds `key`, and its hash.
async fn round_with(
    finality: &mut FinalityClient<Channel>,
    key: &XOnlyPublicKey,
    from: u64,
) -> (u64, [u8; 32]) {
    let mut next = from;
    for _ in 0..600 {
        while next <= latest_round(finality).await {
            let round = finality
                .round(fpb::RoundRequest {
                    round: next,
                    ..Default::default()
                })
                .await
                .expect("round")
                .into_inner()
                .round
                .expect("served");
            if round
                .active_set
                .iter()
                .any(|e| e.verifier_btc_pk == key.serialize())
            {
                return (next, round.round_hash.try_into().expect("32 bytes"));
            }
            next += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{key} never entered the active set");
}

/// Rounds every 300 ms; a verifier missing more than 2 of 4 rounds is jailed.
const FINALITY: &str = "round_interval_ms = 300\nvote_expiry = 10\nmax_start_ahead = 1000\n\
                        liveness_window = 4\nliveness_min_signed = 2\njail_duration = 1000\n";

#[sqlx::test]
async fn the_service_stakes_through_its_cli_and_refuses_bad_input_before_any_coin_moves(
    pool: PgPool,
) {
    let mut world = World::start_with(&pool, FINALITY).await;
    // Verifier 2 will be jailed (silent), verifier 3 slashed (it equivocates).
    for seed in [2, 3] {
        world
            .client
            .create_verifier(verifier_request(seed))
            .await
            .expect("verifier registers");
    }
    let (silent, equivocating) = (xonly(&keypair(2)), xonly(&keypair(3)));
    let config = write_staker(&world.dir.path().join("staker"), &world, &world.params, "");
    let _service = wallet_and_service(&config).await;
    let address = address_of(&config);
    world.mine_to(1, &address).await;
    world.mine(100).await;
    cli_ok(&config, &["wallet", "sync"]);
    let funded = confirmed_balance(&config);
    assert_eq!(funded, Amount::from_int_btc(50));

    // Refused before any coin moves, each naming what to change.
    let verifier = world.verifier;
    let unknown = xonly(&keypair(77));
    let e = refused(&config, &unknown, "1", 100);
    assert!(
        e.contains(&format!(
            "verifier {unknown} is not registered with the node"
        )),
        "{e}"
    );
    let e = refused(&config, &verifier, "0.00005", 100);
    assert!(
        e.contains("staking amount 0.00005000 BTC is outside the node's params: between"),
        "{e}"
    );
    let e = refused(&config, &verifier, "1", 5);
    assert!(
        e.contains("staking time 5 blocks is outside the node's params: between 10 and"),
        "{e}"
    );
    let e = refused(&config, &verifier, "60", 100);
    assert!(
        e.contains("cannot build the transaction") && e.contains("nsufficient funds"),
        "{e}"
    );
    let e = cli_err(
        &config,
        &[
            "stake",
            "--verifier",
            "beef",
            "--amount",
            "1",
            "--time",
            "100",
        ],
    );
    assert!(e.contains("--verifier is not an x-only key in hex"), "{e}");
    // A staker whose own params differ from the node's: its service signs nothing.
    let mut other = world.params.clone();
    other.slashing_rate = "0.2".parse().expect("rate");
    let mismatched = write_staker(&world.dir.path().join("mismatched"), &world, &other, "");
    let _mismatched_service = wallet_and_service(&mismatched).await;
    let e = refused(&mismatched, &verifier, "1", 100);
    assert!(
        e.contains("differ from this staker's own in: slashing_rate; nothing was signed"),
        "{e}"
    );
    // A wrong passphrase: the service does not start, and says why.
    let wrong = world.dir.path().join("staker").join("wrong.toml");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(&config).expect("read").replace(
            "passphrase_file = \"passphrase\"",
            "passphrase_file = \"wrong\"",
        ),
    )
    .expect("write");
    std::fs::write(wrong.with_file_name("wrong"), "not the passphrase").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(["staker", "run", "--config"])
        .arg(&wrong)
        .env_remove("FIAMMA_STAKER_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("wrong passphrase for keystore"), "{e}");
    assert!(e.contains("wallet.age"), "{e}");
    assert!(!e.contains("not the passphrase"), "{e}");

    cli_ok(&config, &["wallet", "sync"]);
    assert_eq!(confirmed_balance(&config), funded, "no coin moved");
    assert_eq!(cli_ok(&config, &["delegations"]), "", "nothing recorded");

    // Three stakes: to verifier 1, and to the two that will be jailed and slashed.
    world.mine_to(2, &address).await;
    world.mine(100).await;
    let main = stake(&config, &verifier, "2", 100);
    let to_silent = stake(&config, &silent, "1", 100);
    let to_equivocating = stake(&config, &equivocating, "1", 100);
    // Nothing is broadcast before the committee has signed (it may have signed already).
    let line = delegation_line(&config, &main).expect("listed");
    assert!(
        line.contains("step=submitted") || line.contains("step=broadcast"),
        "{line}"
    );
    mine_until(
        &world,
        &config,
        &[main.as_str(), to_silent.as_str(), to_equivocating.as_str()],
        "status=active",
        30,
    )
    .await;
    for t in [&main, &to_silent, &to_equivocating] {
        world.assert_mined(t.parse().expect("txid")).await;
        assert_eq!(world.status(t).await, pb::DelegationStatus::Active);
    }
    let line = delegation_line(&config, &main).expect("listed");
    assert!(
        line.contains("step=broadcast") && line.contains("next: unbond"),
        "{line}"
    );

    // Both commit randomness; once in the active set, one equivocates and the other stays
    // silent until it is jailed.
    let mut finality =
        FinalityClient::new(connect(world.node_addr, "fiamma.finality.v1.Finality").await);
    let start = latest_round(&mut finality).await + 2;
    for seed in [2, 3] {
        finality
            .commit_pub_rand_list(TestVerifier::new(seed, start, 500).commit_request())
            .await
            .expect("commitment accepted");
    }
    let raw = TestVerifier::new(3, start, 500);
    let (round, hash) = round_with(&mut finality, &equivocating, start).await;
    let mut outcomes = Vec::new();
    for h in [hash, [0xee; 32]] {
        outcomes.push(
            finality
                .add_finality_sig(vote_request(&raw.vote(round, h)))
                .await
                .expect("vote")
                .into_inner()
                .outcome(),
        );
    }
    assert_eq!(
        outcomes,
        [fpb::VoteOutcome::Counted, fpb::VoteOutcome::Equivocation]
    );
    for _ in 0..300 {
        if finality_status(&mut finality, &silent).await == fpb::VerifierStatus::Jailed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        finality_status(&mut finality, &silent).await,
        fpb::VerifierStatus::Jailed
    );
    cli_ok(&config, &["wallet", "sync"]);
    let before = confirmed_balance(&config);
    let e = refused(&config, &equivocating, "1", 100);
    assert!(
        e.contains(&format!(
            "verifier {equivocating} is slashed: a stake with it would have no voting power"
        )),
        "{e}"
    );
    let e = refused(&config, &silent, "1", 100);
    assert!(
        e.contains(&format!(
            "verifier {silent} is jailed: it votes again only after it is unjailed"
        )),
        "{e}"
    );
    assert_eq!(confirmed_balance(&config), before, "no coin moved");
    assert_eq!(cli_ok(&config, &["delegations"]).lines().count(), 3);

    // The slashed verifier's stake is slashed on Bitcoin (as a slasher would, here by the
    // verifier's own key): after U the service withdraws the slashing transaction's change.
    let served = world
        .client
        .delegation(pb::DelegationRequest {
            staking_txid: to_equivocating.clone(),
        })
        .await
        .expect("delegation")
        .into_inner()
        .delegation
        .expect("served");
    let store_url = fiamma_role::store::sqlite_url(&config.with_file_name("staker.db"));
    let record = StakerStore::open(&store_url)
        .await
        .expect("store")
        .get(&to_equivocating)
        .await
        .expect("reads")
        .expect("recorded");
    let slashable = SlashableDelegation::new(
        &equivocating,
        record.registration.clone(),
        &world.params.covenant_pks,
        world.params.covenant_quorum,
        served_delegation(&served)
            .covenant_sigs
            .expect("covenant signatures"),
    )
    .expect("slashable");
    let slashing = slashable
        .signed_slashing_tx(
            &keypair(3).secret_key(),
            SlashingTx::Staking,
            &mut rand::thread_rng(),
        )
        .expect("signed");
    world
        .bitcoin
        .broadcast(&slashing)
        .await
        .expect("slashing broadcast");
    mine_until(
        &world,
        &config,
        &[to_equivocating.as_str()],
        "step=done",
        20,
    )
    .await;
    let record = StakerStore::open(&store_url)
        .await
        .expect("store")
        .get(&to_equivocating)
        .await
        .expect("reads")
        .expect("recorded");
    assert_eq!(record.step, Step::Done);
    assert_eq!(record.withdraw_from, Some(WithdrawFrom::SlashingChange));
    let withdrawal = record.withdraw_tx.expect("withdrawal");
    let change = withdrawal.input[0].previous_output;
    assert_eq!(change.txid, slashing.compute_txid());
    world.assert_mined(withdrawal.compute_txid()).await;
    // Spent no earlier than U blocks after the slashing transaction.
    let spent_at = |s: OutPointStatus| match s {
        OutPointStatus::Spent { height, .. } => height,
        other => panic!("not spent in a block: {other:?}"),
    };
    let slashed_at = spent_at(
        world
            .bitcoin
            .outpoint_status(&OutPoint::new(
                to_equivocating.parse().expect("txid"),
                record.registration.staking_output_index,
            ))
            .await
            .expect("status"),
    );
    let withdrawn_at = spent_at(
        world
            .bitcoin
            .outpoint_status(&change)
            .await
            .expect("status"),
    );
    assert!(
        withdrawn_at >= slashed_at + world.params.unbonding_time_blocks,
        "withdrawn at {withdrawn_at}, slashed at {slashed_at}"
    );
}

/// Each step after which the service aborts, in the order of the stake flow.
const CRASH_STEPS: [&str; 4] = ["recorded", "submitted", "broadcast-sent", "broadcast"];

#[sqlx::test]
async fn a_service_killed_after_each_step_of_a_stake_funds_it_once_and_sees_it_active(
    pool: PgPool,
) {
    let mut world = World::start(&pool).await;
    let config = write_staker(&world.dir.path().join("staker"), &world, &world.params, "");
    let mut service = wallet_and_service(&config).await;
    let address = address_of(&config);
    let coinbases: Vec<Txid> = {
        let rpc = world.rpc.clone();
        let to = address.clone();
        let hashes = tokio::task::spawn_blocking(move || {
            bdk_bitcoind_rpc::bitcoincore_rpc::RpcApi::generate_to_address(&*rpc, 6, &to)
                .expect("mine")
        })
        .await
        .expect("task");
        let mut txids = Vec::new();
        for h in hashes {
            let rpc = world.rpc.clone();
            let block = tokio::task::spawn_blocking(move || {
                bdk_bitcoind_rpc::bitcoincore_rpc::RpcApi::get_block(&*rpc, &h).expect("block")
            })
            .await
            .expect("task");
            txids.push(block.txdata[0].compute_txid());
        }
        txids
    };
    world.mine(100).await;
    cli_ok(&config, &["wallet", "sync"]);
    let funded = confirmed_balance(&config);

    let mut stakes: Vec<String> = Vec::new();
    for step in CRASH_STEPS {
        drop(service);
        let mut crashing = Daemon(spawn_staker(&config, Some(step)));
        wait_for_api(&config).await;
        let out = stake_call(&config, &world.verifier, "1", 100);
        // It aborts inside the request (recorded, submitted) or in a later step, once the
        // committee has signed (broadcast-sent, broadcast).
        let mut exited = None;
        for _ in 0..600 {
            if let Some(status) = crashing.0.try_wait().expect("wait") {
                exited = Some(status);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = exited.unwrap_or_else(|| panic!("the service did not abort after {step}"));
        assert!(!status.success(), "{step}: {status}");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(6),
            "aborted after {step}"
        );
        if step.starts_with("broadcast") {
            assert!(out.status.success(), "{step}");
        } else {
            assert!(
                !out.status.success(),
                "{step}: the request died with the service"
            );
        }
        service = Daemon(spawn_staker(&config, None));
        wait_for_api(&config).await;
        let listed = cli_ok(&config, &["delegations"]);
        let new: Vec<String> = listed
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|t| !stakes.iter().any(|s| s == t))
            .map(str::to_owned)
            .collect();
        assert_eq!(new.len(), 1, "after {step}: one new delegation: {listed}");
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), new[0]);
        }
        stakes.push(new[0].clone());
        mine_until(&world, &config, &[new[0].as_str()], "status=active", 30).await;
    }

    // One staking transaction per stake, mined; each spent coinbase went to exactly one of
    // them; the node holds these four delegations and no other; the wallet paid four stakes
    // and their fees, nothing more.
    let staking: Vec<Txid> = stakes.iter().map(|t| t.parse().expect("txid")).collect();
    for (t, id) in stakes.iter().zip(&staking) {
        world.assert_mined(*id).await;
        assert_eq!(world.status(t).await, pb::DelegationStatus::Active);
    }
    for cb in &coinbases {
        match world
            .bitcoin
            .outpoint_status(&OutPoint::new(*cb, 0))
            .await
            .expect("status")
        {
            OutPointStatus::Unspent { .. } => {}
            OutPointStatus::Spent { txid, .. } => {
                assert!(staking.contains(&txid), "{cb} spent by {txid}, not a stake")
            }
            other => panic!("{cb}: {other:?}"),
        }
    }
    let all = node_support::all_delegations(&mut world.client).await;
    assert_eq!(all.len(), CRASH_STEPS.len(), "{all:?}");
    cli_ok(&config, &["wallet", "sync"]);
    let spent = funded - confirmed_balance(&config);
    let staked = Amount::from_int_btc(CRASH_STEPS.len() as u64);
    assert!(
        spent >= staked && spent < staked + Amount::from_sat(100_000),
        "spent {spent} for {staked} of stakes"
    );
    drop(service);
}
