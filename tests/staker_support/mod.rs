//! A staker's world of real processes: `fiamma regtest` (the embedded chain, Bitcoin Core's
//! consensus engine, over JSON-RPC), `fiamma node` following it over JSON-RPC, a quorum of
//! `fiamma covenant` daemons, one registered verifier; and a staker component on a fresh
//! wallet, in this process, that talks to them as the `fiamma staker` service does.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bdk_bitcoind_rpc::bitcoincore_rpc::{Auth, Client, RpcApi};
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Address, FeeRate, Network, Txid};
use fiamma::btc::{Backend, RpcBackend, TxStatus};
use fiamma_proto::client::GrpcNode;
use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use fiamma_staker::staker::{Staker, StakerSettings, StepReport};
use fiamma_staker::store::StakerStore;
use fiamma_staking::params::{Params, ParamsVersions};
use fiamma_wallet::{Wallet, WalletKeys};
use sqlx::PgPool;
use tonic::transport::Channel;

use crate::covenant_support::{self as cs, import_key, spawn_member, write_member, Killed};
use crate::node_process::{connect, database_url, free_port, spawn};
use crate::node_support::{contexts, keypair, verifier_request, xonly};

pub const RPC_USER: &str = "staker-test";
pub const RPC_PASSWORD: &str = "staker-test-password";

/// The world.
pub struct World {
    pub dir: tempfile::TempDir,
    pub params: Params,
    pub rpc_url: String,
    pub rpc: Arc<Client>,
    pub bitcoin: RpcBackend,
    pub node_addr: SocketAddr,
    pub client: StakingClient<Channel>,
    pub verifier: XOnlyPublicKey,
    /// A verifier's address to mine to (coins nobody here spends).
    pub miner: Address,
    _processes: Vec<Killed>,
}

/// Starts `fiamma regtest` on a free port.
fn spawn_regtest(port: u16) -> Killed {
    Killed(crate::node_process::spawn_regtest(
        port,
        RPC_USER,
        RPC_PASSWORD,
    ))
}

fn write_node(dir: &Path, db: &str, addr: SocketAddr, rpc_url: &str, finality: &str) -> PathBuf {
    crate::node_process::write_rpc_files(
        dir,
        db,
        addr,
        &cs::params(),
        &crate::node_process::RpcLogin {
            url: rpc_url,
            user: RPC_USER,
            password: RPC_PASSWORD,
        },
        &format!("[finality]\n{finality}"),
    )
}

impl World {
    /// Starts everything: the chain, the node, `cs::QUORUM` covenant members, and registers
    /// verifier 1.
    pub async fn start(pool: &PgPool) -> World {
        World::start_with(pool, "").await
    }

    /// As [`World::start`], with `finality` as the node's `[finality]` table.
    pub async fn start_with(pool: &PgPool, finality: &str) -> World {
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port().port();
        let mut processes = vec![spawn_regtest(port)];
        let rpc_url = format!("http://127.0.0.1:{port}");
        let rpc = Arc::new(
            Client::new(
                &rpc_url,
                Auth::UserPass(RPC_USER.into(), RPC_PASSWORD.into()),
            )
            .expect("client"),
        );
        let bitcoin = RpcBackend::new(&rpc_url, RPC_USER, RPC_PASSWORD).expect("backend");
        for _ in 0..100 {
            if bitcoin.tip().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let node_addr = free_port();
        processes.push(Killed(spawn(&write_node(
            &dir.path().join("node"),
            &database_url(pool),
            node_addr,
            &rpc_url,
            finality,
        ))));
        let mut client = StakingClient::new(connect(node_addr, "fiamma.staking.v1.Staking").await);
        client
            .create_verifier(verifier_request(1))
            .await
            .expect("verifier registers");
        for i in 0..cs::QUORUM as u8 {
            let member_dir = dir.path().join(format!("member{i}"));
            import_key(&member_dir, i);
            let config = write_member(&member_dir, node_addr, &cs::params(), "");
            processes.push(Killed(spawn_member(&config)));
        }
        let miner = Address::p2tr(
            bitcoin::secp256k1::SECP256K1,
            xonly(&keypair(99)),
            None,
            Network::Regtest,
        );
        World {
            dir,
            params: cs::params(),
            rpc_url,
            rpc,
            bitcoin,
            node_addr,
            client,
            verifier: xonly(&keypair(1)),
            miner,
            _processes: processes,
        }
    }

    /// Mines `n` blocks to `to`.
    pub async fn mine_to(&self, n: u64, to: &Address) {
        let (rpc, to) = (self.rpc.clone(), to.clone());
        tokio::task::spawn_blocking(move || rpc.generate_to_address(n, &to).expect("mine"))
            .await
            .expect("task");
    }

    /// Mines `n` blocks to the miner.
    pub async fn mine(&self, n: u64) {
        self.mine_to(n, &self.miner).await;
    }

    /// The staker settings of this world.
    pub fn settings(&self, params: Vec<Params>) -> StakerSettings {
        StakerSettings {
            params: ParamsVersions::new(params).expect("params"),
            contexts: contexts(),
            network: Network::Regtest,
            fee_rate: FeeRate::from_sat_per_vb(2).expect("rate"),
            auto_withdraw: true,
            poll_interval: Duration::from_millis(200),
        }
    }

    /// A staker on a new wallet (from `keys`) in a store at `url`, with `params` as its own.
    pub async fn staker_with(&self, url: &str, keys: &WalletKeys, params: Vec<Params>) -> Staker {
        let store = StakerStore::open(url).await.expect("store");
        let wallet_store = store.wallet("staker").await.expect("wallet store");
        let wallet = if wallet_store.exists().await.expect("reads") {
            Wallet::load(wallet_store, Network::Regtest, Some(keys))
                .await
                .expect("wallet loads")
        } else {
            Wallet::create(wallet_store, Network::Regtest, keys, None)
                .await
                .expect("wallet")
        };
        let node = Arc::new(
            GrpcNode::connect_lazy(
                &format!("http://{}", self.node_addr),
                Duration::from_secs(10),
            )
            .expect("node"),
        );
        Staker::new(
            self.settings(params),
            wallet,
            store,
            node.clone(),
            Some(node),
            Arc::new(self.bitcoin.clone()),
            self.rpc.clone(),
        )
    }

    /// The node's status of `staking_txid`.
    pub async fn status(&mut self, staking_txid: &str) -> pb::DelegationStatus {
        self.client
            .delegation(pb::DelegationRequest {
                staking_txid: staking_txid.to_owned(),
            })
            .await
            .expect("delegation")
            .into_inner()
            .delegation
            .expect("served")
            .status()
    }

    /// Mines a block and steps `staker` until `done` holds for a report (`blocks` at most).
    pub async fn step_until(
        &self,
        staker: &Staker,
        what: &str,
        blocks: u32,
        mut done: impl FnMut(&StepReport) -> bool,
    ) -> StepReport {
        for _ in 0..blocks {
            for _ in 0..20 {
                let report = staker.step().await.expect("step");
                if done(&report) {
                    return report;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.mine(1).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// Checks `txid` is mined in the active chain: accepted by the consensus engine.
    pub async fn assert_mined(&self, txid: Txid) {
        match self.bitcoin.tx_status(&txid).await.expect("status") {
            TxStatus::Confirmed { .. } => {}
            other => panic!("{txid} is not mined: {other:?}"),
        }
    }
}

/// The passphrase of the staker daemon's wallet in these tests.
pub const STAKER_PASSPHRASE: &str = "staker daemon passphrase";

/// Writes a `fiamma staker run` config in `dir` for `world`: its own params file (`params`),
/// the wallet's passphrase and the chain's RPC password in files beside it, the API on a free
/// loopback port, `extra` TOML appended before the `[bitcoin]` table.
pub fn write_staker(dir: &Path, world: &World, params: &Params, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    cs::write_params(&dir.join("params.json"), params);
    std::fs::write(dir.join("passphrase"), STAKER_PASSPHRASE).expect("write");
    std::fs::write(dir.join("rpc-password"), format!("{RPC_PASSWORD}\n")).expect("write");
    let c = contexts();
    let config = dir.join("staker.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"http://{}\"\nparams_file = \"params.json\"\nchain_id = \"{}\"\n\
             module_address = \"{}\"\nnetwork = \"regtest\"\nwallet_secret = \"wallet.age\"\n\
             passphrase_file = \"passphrase\"\ngrpc_addr = \"{}\"\nfee_rate_sat_vb = 2\n\
             poll_interval_ms = 200\n{extra}\n[bitcoin]\nrpc_url = \"{}\"\n\
             rpc_user = \"{RPC_USER}\"\nrpc_password_file = \"rpc-password\"\n",
            world.node_addr,
            c.chain_id,
            c.module_address,
            free_port(),
            world.rpc_url,
        ),
    )
    .expect("write");
    config
}

/// Runs `fiamma staker <args> --config <config>` to its end.
pub fn staker_cli(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .arg("staker")
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("FIAMMA_STAKER_PASSPHRASE")
        .env_remove("FIAMMA_STAKER_RPC_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("fiamma staker runs")
}

/// The standard output of a `fiamma staker` call that must succeed.
pub fn cli_ok(config: &Path, args: &[&str]) -> String {
    let out = staker_cli(config, args);
    assert!(
        out.status.success(),
        "fiamma staker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The error of a `fiamma staker` call that must fail.
pub fn cli_err(config: &Path, args: &[&str]) -> String {
    let out = staker_cli(config, args);
    assert!(
        !out.status.success(),
        "fiamma staker {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8")
}

/// Starts `fiamma staker run` on `config` (its log in `daemon.log` beside it), with the
/// fault hook set to `crash_after` when given.
pub fn spawn_staker(config: &Path, crash_after: Option<&str>) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("daemon.log"))
        .expect("log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fiamma"));
    cmd.args(["staker", "run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env_remove("FIAMMA_STAKER_PASSPHRASE")
        .env_remove("FIAMMA_STAKER_RPC_PASSWORD")
        .env_remove(fiamma_staker::staker::CRASH_AFTER_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(step) = crash_after {
        cmd.env(fiamma_staker::staker::CRASH_AFTER_ENV, step);
    }
    cmd.spawn().expect("fiamma staker run starts")
}

/// Waits until the staker service of `config` answers (30 s at most).
pub async fn wait_for_api(config: &Path) {
    for _ in 0..300 {
        if staker_cli(config, &["wallet", "balance"]).status.success() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the staker service never answered:\n{}",
        std::fs::read_to_string(config.with_file_name("daemon.log")).unwrap_or_default()
    );
}

/// The confirmed balance `fiamma staker wallet balance` shows.
pub fn confirmed_balance(config: &Path) -> bitcoin::Amount {
    let out = cli_ok(config, &["wallet", "balance"]);
    let text = out
        .strip_prefix("confirmed ")
        .and_then(|r| r.split(" BTC").next())
        .unwrap_or_else(|| panic!("balance line: {out}"));
    bitcoin::Amount::from_str_in(text, bitcoin::Denomination::Bitcoin).expect("an amount")
}

/// The line of `fiamma staker delegations` about `staking_txid`.
pub fn delegation_line(config: &Path, staking_txid: &str) -> Option<String> {
    cli_ok(config, &["delegations"])
        .lines()
        .find(|l| l.starts_with(staking_txid))
        .map(str::to_owned)
}
