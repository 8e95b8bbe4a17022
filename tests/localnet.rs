//! `fiamma devnet --keep-running` as a newcomer uses it (here `--no-story`): the test reads only what
//! the command printed, creates a staker wallet with the printed `staker.toml`, funds it over
//! the printed JSON-RPC, stakes with the `fiamma staker` CLI and service, sees the delegation
//! ACTIVE and the verifier's voting power include it in a later round (over the printed gRPC
//! address), then sends SIGINT and checks that nothing is left: processes, ports, the
//! directory it wrote, the database. A second run plays the story first, on a throwaway
//! PostgreSQL cluster that is gone after SIGINT.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoincore_rpc::{Auth, Client, RpcApi};
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::finality::v1::finality_client::FinalityClient;
use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use sqlx::{Connection, PgConnection};

const PASSPHRASE: &str = "localnet test passphrase";
/// Longest wait for any one thing to happen.
const PATIENCE: Duration = Duration::from_secs(90);

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A running `fiamma devnet --keep-running`, its stdout collected as it comes.
struct Localnet {
    child: Child,
    stdout: Arc<Mutex<String>>,
}

impl Localnet {
    /// `story`: play the devnet's story first, else `--no-story`.
    fn start(database_url: Option<&str>, story: bool) -> Localnet {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fiamma"));
        command.args(["devnet", "--keep-running", "--block-interval", "1"]);
        if !story {
            command.arg("--no-story");
        }
        match database_url {
            Some(url) => command.env("DATABASE_URL", url),
            None => command.env_remove("DATABASE_URL"),
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let pipe = child.stdout.take().expect("stdout piped");
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().expect("stdout lock");
                text.push_str(&line);
                text.push('\n');
            }
        });
        Localnet { child, stdout }
    }

    fn printed(&self) -> String {
        self.stdout.lock().expect("stdout lock").clone()
    }

    /// Waits until the joining instructions are printed; returns everything printed so far.
    fn wait_ready(&mut self) -> String {
        let started = Instant::now();
        loop {
            let text = self.printed();
            if text.contains("localnet:   9.") {
                return text;
            }
            if let Some(status) = self.child.try_wait().expect("poll") {
                panic!("fiamma devnet exited ({status}) before it was ready:\n{text}");
            }
            assert!(
                started.elapsed() < PATIENCE,
                "not ready within {PATIENCE:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends SIGINT and waits for the exit; returns everything it printed.
    fn interrupt(mut self) -> String {
        signal(self.child.id(), "INT");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll") {
                break status;
            }
            if started.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!("did not stop on SIGINT:\n{}", self.printed());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // Give the reader thread the last lines.
        std::thread::sleep(Duration::from_millis(300));
        let text = self.printed();
        assert!(status.success(), "exit {status} after SIGINT:\n{text}");
        text
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// The rest of the line printed as `localnet: <label> <value>`.
fn field(text: &str, label: &str) -> String {
    let prefix = format!("localnet: {label} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
}

/// Runs `fiamma <args>` with the staker's passphrase in the environment.
fn fiamma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(args)
        .env("FIAMMA_STAKER_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::null())
        .output()
        .expect("fiamma runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `fiamma <args>` until it succeeds and `done` accepts its output.
fn until(what: &str, args: &[&str], done: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let out = fiamma(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && done(&stdout) {
            return stdout;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}; last: {} {stdout} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn closed(addr: &str) -> bool {
    let addr: SocketAddr = addr
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("an address");
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
}

/// A running `fiamma staker run`, stopped on drop.
struct StakerService(Child);

impl Drop for StakerService {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(addr: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("the printed node address answers")
}

#[test]
fn a_newcomer_stakes_on_the_running_local_network_and_it_all_stops_on_sigint() {
    let url = database_url();
    let mut net = Localnet::start(Some(&url), false);
    let printed = net.wait_ready();
    let node = field(&printed, "node gRPC");
    let rpc_url = field(&printed, "bitcoin JSON-RPC");
    let rpc_user = field(&printed, "bitcoin JSON-RPC user");
    let rpc_password = field(&printed, "bitcoin JSON-RPC password");
    let config = PathBuf::from(field(&printed, "staker config"));
    let dir = PathBuf::from(field(&printed, "config dir"));
    let params = PathBuf::from(field(&printed, "params file"));
    let database = field(&printed, "database");
    let verifier_a = field(&printed, "verifier A");
    let verifier_a = verifier_a
        .split_whitespace()
        .next()
        .expect("verifier A's key")
        .to_owned();
    assert!(verifier_a.len() == 64, "{verifier_a}");
    assert!(params.is_file() && config.is_file());
    let config_arg = config.to_str().expect("utf-8 path");

    // The wallet, made with the printed config (a low work factor only to keep the test fast).
    ok(&fiamma(&[
        "staker",
        "wallet",
        "create",
        "--config",
        config_arg,
        "--work-factor",
        "10",
    ]));
    let service = StakerService(
        Command::new(env!("CARGO_BIN_EXE_fiamma"))
            .args(["staker", "run", "--config", config_arg])
            .env("FIAMMA_STAKER_PASSPHRASE", PASSPHRASE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the staker service starts"),
    );
    let address = until(
        "the staker service answers",
        &["staker", "wallet", "address", "--config", config_arg],
        |s| s.trim().starts_with("bcrt1"),
    );
    let address: bitcoin::Address = address
        .trim()
        .parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>()
        .expect("an address")
        .require_network(bitcoin::Network::Regtest)
        .expect("a regtest address");

    // Funding, as the printed text says: generatetoaddress over the printed JSON-RPC.
    let rpc = Client::new(&rpc_url, Auth::UserPass(rpc_user, rpc_password)).expect("rpc client");
    let mined = rpc
        .generate_to_address(101, &address)
        .expect("generatetoaddress");
    assert_eq!(mined.len(), 101);
    until(
        "the coinbase is spendable",
        &["staker", "wallet", "sync", "--config", config_arg],
        |_| {
            let out = fiamma(&["staker", "wallet", "balance", "--config", config_arg]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            out.status.success() && !text.starts_with("confirmed 0 BTC")
        },
    );

    let staking_txid = ok(&fiamma(&[
        "staker",
        "stake",
        "--config",
        config_arg,
        "--verifier",
        &verifier_a,
        "--amount",
        "1",
        "--time",
        "1000",
    ]))
    .trim()
    .to_owned();
    assert_eq!(staking_txid.len(), 64, "{staking_txid}");
    until(
        "the delegation ACTIVE for the staker",
        &["staker", "delegations", "--config", config_arg],
        |s| s.contains(&staking_txid) && s.contains("status=active"),
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let channel = connect(&node).await;
        let mut staking = StakingClient::new(channel.clone());
        let mut finality = FinalityClient::new(channel);
        let d = staking
            .delegation(pb::DelegationRequest {
                staking_txid: staking_txid.clone(),
            })
            .await
            .expect("Delegation")
            .into_inner()
            .delegation
            .expect("served");
        assert_eq!(d.status(), pb::DelegationStatus::Active);
        assert_eq!(d.staking_value_sat, 100_000_000);
        // The rounds closed from now on count the stake in verifier A's power, and its
        // daemon's votes make them final.
        let rounds = |from| fpb::RoundsRequest {
            from_round: from,
            limit: 1000,
        };
        let known = finality
            .rounds(rounds(1))
            .await
            .expect("Rounds")
            .into_inner()
            .rounds
            .iter()
            .map(|r| r.round)
            .max()
            .unwrap_or(0);
        let key = hex::decode(&verifier_a).expect("hex key");
        let started = Instant::now();
        loop {
            let later = finality
                .rounds(rounds(known + 1))
                .await
                .expect("Rounds")
                .into_inner()
                .rounds;
            let final_with_power = later.iter().find(|r| {
                r.status() == fpb::RoundStatus::Final && r.total_power_sat >= 100_000_000
            });
            if let Some(summary) = final_with_power {
                let round = finality
                    .round(fpb::RoundRequest {
                        round: summary.round,
                        ..Default::default()
                    })
                    .await
                    .expect("Round")
                    .into_inner()
                    .round
                    .expect("served");
                assert!(
                    round
                        .active_set
                        .iter()
                        .any(|e| e.verifier_btc_pk == key && e.power_sat >= 100_000_000),
                    "verifier A's power includes the stake: {round:?}"
                );
                break;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "no final round after {known} with verifier A's power: {later:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    // The joiner stops first, then the network.
    let mut service = service;
    signal(service.0.id(), "INT");
    let asked = Instant::now();
    while service.0.try_wait().expect("poll").is_none() && asked.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        service.0.try_wait().expect("poll").is_some(),
        "the staker service did not stop on SIGINT"
    );
    drop(service);
    let printed = net.interrupt();
    assert!(
        printed.contains(&format!("localnet: removed {}", dir.display())),
        "{printed}"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(closed(&node), "the node still listens on {node}");
    assert!(closed(&rpc_url), "the chain still listens on {rpc_url}");
    runtime.block_on(async {
        let mut conn = PgConnection::connect(&url).await.expect("server reachable");
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&database)
            .fetch_one(&mut conn)
            .await
            .expect("query");
        assert_eq!(left, 0, "database {database} was not dropped");
    });
}

/// The PostgreSQL server of the throwaway cluster of the devnet process `pid` (the first line
/// of its `postmaster.pid`): `pg_ctl` detaches it, so it is no child of the devnet's.
fn postmaster(pid: u32) -> u32 {
    let file = std::env::temp_dir()
        .join(format!("fiamma-devnet-pg-{pid}"))
        .join("data")
        .join("postmaster.pid");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("a pid")
}

/// Whether process `pid` runs: it exists and is no zombie (pg_ctl detaches the server, so it
/// is reaped by whichever process adopted it, maybe a moment later).
fn running(pid: u32) -> bool {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .unwrap_or_default();
    status.lines().any(|l| l.starts_with("State:")) && !status.contains("State:\tZ")
}

#[test]
fn after_the_story_without_a_database_url_its_throwaway_cluster_is_gone_after_sigint() {
    let mut net = Localnet::start(None, true);
    let printed = net.wait_ready();
    // The whole story was played before the network was left running for newcomers.
    let summary = printed
        .find("summary:")
        .expect("the story's summary printed");
    let joining = printed
        .find("localnet:   9.")
        .expect("joining instructions");
    assert!(summary < joining, "{printed}");
    let cluster = printed
        .split("started a throwaway cluster at ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("the cluster's url printed")
        .to_owned();
    let cluster_addr = cluster
        .trim_start_matches("postgres://postgres@")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();
    let node = field(&printed, "node gRPC");
    let dir = PathBuf::from(field(&printed, "config dir"));
    let server = postmaster(net.child.id());
    assert!(running(server), "PostgreSQL (process {server}) runs");
    assert!(!closed(&cluster_addr));
    let printed = net.interrupt();
    assert!(
        printed.contains("stopped and removed the throwaway cluster"),
        "{printed}"
    );
    assert!(
        !running(server),
        "PostgreSQL (process {server}) is still running"
    );
    assert!(closed(&cluster_addr), "PostgreSQL still listens");
    assert!(closed(&node), "the node still listens");
    assert!(!dir.exists());
}
