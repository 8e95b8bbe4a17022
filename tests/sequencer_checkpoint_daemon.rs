//! Checkpoints as an operator runs them, every part a real process: `fiamma regtest`, the
//! `fiamma node` with a `[checkpoint]` table (PostgreSQL), four `fiamma verifier run` daemons
//! signing checkpoint rounds, and the sequencer: `fiamma sequencer checkpoint genesis` funds
//! and registers the genesis (once, however often run), `fiamma sequencer run` broadcasts the
//! READY checkpoint as a package with its child, the node's base moves to it once k deep,
//! `fiamma sequencer checkpoint status` shows it, and the reader `fiamma checkpoint show`
//! finds it from Bitcoin alone.

mod btc_support;
mod covenant_support;
mod node_finality_support;
mod node_process;
mod sequencer_support;
mod slasher_support;
mod verifier_support;

use node_finality_support::node_support;

use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use bitcoin::Address;
use btc_support::Miner;
use fiamma::btc::Backend;
use fiamma_proto::client::{CheckpointNode, FinalityNode, GrpcNode};
use sequencer_support::{sequencer, spawn_sequencer, write_config, PASSPHRASE};
use slasher_support::{rpc, start_chain, RPC_PASSWORD, RPC_USER};
use sqlx::PgPool;
use verifier_support::{current_round, finality, registered_and_staked, round, spawn_verifier};

/// N.
const INTERVAL: u64 = 4;
/// R: within 2k..=U/2 for k = 2 and the U of [`params`].
const RECOVERY_BLOCKS: u32 = 4;
const VALUE_SAT: u64 = 1_000;

fn params() -> fiamma_staking::params::Params {
    let mut p = node_support::params();
    p.unbonding_time_blocks = 20;
    p
}

fn write_node(
    dir: &std::path::Path,
    db: &str,
    addr: std::net::SocketAddr,
    url: &str,
    checkpoint: &str,
) -> std::path::PathBuf {
    node_process::write_rpc_files(
        dir,
        db,
        addr,
        &params(),
        &node_process::RpcLogin {
            url,
            user: RPC_USER,
            password: RPC_PASSWORD,
        },
        &format!(
            "[finality]\nround_interval_ms = 400\nvote_expiry = 10\nmax_start_ahead = 1000\n\n\
             {checkpoint}"
        ),
    )
}

#[sqlx::test]
async fn the_sequencer_funds_the_genesis_and_its_daemon_broadcasts_checkpoints(pool: PgPool) {
    let dir = tempfile::tempdir().expect("dir");
    let (chain, rpc_url) = start_chain();
    let _chain = covenant_support::Killed(chain);
    let bitcoin = rpc(&rpc_url);

    // The node without checkpoints until the four verifiers are active.
    let addr = node_process::free_port();
    let db = node_process::database_url(&pool);
    let node_dir = dir.path().join("node");
    let first_node = covenant_support::Killed(node_process::spawn(&write_node(
        &node_dir, &db, addr, &rpc_url, "",
    )));
    let mut client = finality(addr).await;
    let configs = registered_and_staked(dir.path(), 1..=4, addr, &pool).await;
    let _verifiers: Vec<covenant_support::Killed> = configs
        .iter()
        .map(|c| covenant_support::Killed(spawn_verifier(c, true)))
        .collect();
    let mut active = false;
    for _ in 0..600 {
        let h = current_round(&mut client).await;
        if h > 0 && round(&mut client, h).await.active_set.len() == 4 {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(active, "the four verifiers never became active");
    let genesis_round = current_round(&mut client).await + 6;
    drop(first_node);
    let _node = covenant_support::Killed(node_process::spawn(&write_node(
        &node_dir,
        &db,
        addr,
        &rpc_url,
        &format!(
            "[checkpoint]\ngenesis_round = {genesis_round}\ninterval_rounds = {INTERVAL}\n\
             recovery_blocks = {RECOVERY_BLOCKS}\nvalue_sat = {VALUE_SAT}\n"
        ),
    )));
    let grpc = GrpcNode::connect_lazy(&format!("http://{addr}"), Duration::from_secs(5))
        .expect("endpoint");

    // The sequencer's wallet, made and funded with its CLI.
    let seq = dir.path().join("sequencer");
    let store = format!(
        "store = \"{}\"\nanchor_every = 1000000\nconfirmations = 2\n",
        node_process::database_url(&pool)
    );
    let config = write_config(&seq, addr, &rpc_url, &store);
    sequencer_support::ok(sequencer(
        &config,
        &["wallet", "create", "--work-factor", "10"],
    ));
    let address =
        Address::from_str(sequencer_support::ok(sequencer(&config, &["wallet", "address"])).trim())
            .expect("an address")
            .assume_checked();
    bitcoin.mine(110, &address).await;

    // The genesis, once the node serves its script: funded, k deep (blocks mined meanwhile),
    // registered.
    let mut script = None;
    for _ in 0..600 {
        if let Ok(Some(view)) = grpc.checkpoints().await {
            if view.genesis_script.is_some() {
                script = view.genesis_script;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (h0, _) = script.expect("the node serves the genesis script");
    let mut genesis_run = Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args([
            "sequencer",
            "checkpoint",
            "genesis",
            "--wait-secs",
            "120",
            "--config",
        ])
        .arg(&config)
        .env("FIAMMA_SEQUENCER_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("genesis runs");
    let mut exited = None;
    for _ in 0..600 {
        if let Some(status) = genesis_run.try_wait().expect("wait") {
            exited = Some(status);
            break;
        }
        bitcoin.mine(1, &address).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(exited.is_some(), "checkpoint genesis never returned");
    let out = genesis_run.wait_with_output().expect("output");
    let printed = sequencer_support::ok(out);
    let genesis = grpc
        .checkpoints()
        .await
        .expect("asked")
        .expect("checkpoints")
        .genesis
        .expect("registered");
    assert_eq!(printed.trim(), genesis.outpoint.to_string());
    assert_eq!(genesis.round, h0);
    // Again: nothing paid twice.
    let again = sequencer(&config, &["checkpoint", "genesis", "--wait-secs", "1"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("genesis already"));

    // The daemon broadcasts the first READY checkpoint; once mined k deep it is the base.
    let _daemon = covenant_support::Killed(spawn_sequencer(&config));
    let mut base = None;
    for _ in 0..900 {
        bitcoin.mine(1, &address).await;
        if let Ok(Some(view)) = grpc.checkpoints().await {
            if view.base.is_some_and(|b| b.round > h0) {
                base = view.base;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let base = base.unwrap_or_else(|| {
        panic!(
            "no checkpoint became the base: {}",
            String::from_utf8_lossy(&sequencer(&config, &["checkpoint", "status"]).stdout)
        )
    });
    assert_eq!(base.kind, 1);
    assert_eq!(base.round % INTERVAL, 0);
    let candidate = bitcoin
        .transaction(&base.outpoint.txid)
        .await
        .expect("read")
        .expect("mined");
    assert_eq!(candidate.input[0].previous_output, genesis.outpoint);
    let status = sequencer_support::ok(sequencer(&config, &["checkpoint", "status"]));
    assert!(
        status.contains(&format!("package {}", base.outpoint.txid)),
        "{status}"
    );
    assert!(
        status.contains(&format!("base: {}", base.outpoint)),
        "{status}"
    );
    assert!(grpc.latest_round().await.expect("round") > base.round);

    // The reader finds it from Bitcoin alone.
    std::fs::write(dir.path().join("rpc-password"), RPC_PASSWORD).expect("write");
    let shown = sequencer_support::ok(sequencer_support::fiamma(&[
        "checkpoint",
        "show",
        "--genesis",
        &genesis.outpoint.to_string(),
        "--genesis-round",
        &h0.to_string(),
        "--confirmations",
        "2",
        "--rpc-url",
        &rpc_url,
        "--rpc-user",
        RPC_USER,
        "--rpc-password-file",
        dir.path().join("rpc-password").to_str().expect("utf-8"),
    ]));
    assert!(shown.contains(&base.outpoint.txid.to_string()), "{shown}");
}
