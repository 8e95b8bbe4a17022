//! `fiamma regtest` as a user runs it: the real binary, JSON-RPC over loopback, and a data
//! directory that keeps the chain across restarts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use bitcoin::{Address, Network};
use fiamma::btc::{Backend, RpcBackend};

const USER: &str = "cli";
const PASSWORD: &str = "pw";

/// Starts the binary on a free port and returns it with its JSON-RPC URL.
fn start(datadir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args([
            "regtest",
            "--rpc-port",
            "0",
            "--rpc-user",
            USER,
            "--rpc-password",
            PASSWORD,
        ])
        .arg("--datadir")
        .arg(datadir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn fiamma regtest");
    let stdout = child.stdout.take().expect("stdout");
    let addr = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.split("listening on ").nth(1).map(str::to_owned))
        .expect("listening line");
    (child, format!("http://{addr}"))
}

/// Stops the binary with `signal` (INT: Ctrl-C; TERM: a service manager) and waits for it.
fn stop(mut child: Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "fiamma regtest exited with {exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regtest_binary_serves_rpc_and_keeps_its_chain() {
    let dir = std::env::temp_dir().join(format!("fiamma-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let payout: Address = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
        .parse::<Address<_>>()
        .expect("address")
        .require_network(Network::Regtest)
        .expect("regtest");

    let (child, url) = start(&dir);
    let backend = RpcBackend::new(&url, USER, PASSWORD).expect("client");
    assert_eq!(backend.tip().await.expect("tip").height, 0);
    let client = backend.client();
    let hashes = tokio::task::spawn_blocking(move || {
        use bitcoincore_rpc::RpcApi;
        client.generate_to_address(5, &payout).expect("mine")
    })
    .await
    .expect("join");
    let tip = backend.tip().await.expect("tip");
    assert_eq!((tip.height, tip.hash), (5, hashes[4]));
    stop(child, "-INT");

    let (child, url) = start(&dir);
    let backend = RpcBackend::new(&url, USER, PASSWORD).expect("client");
    assert_eq!(backend.tip().await.expect("tip"), tip);
    let block = backend
        .block(&hashes[2])
        .await
        .expect("block")
        .expect("kept");
    assert_eq!(block.block_hash(), hashes[2]);
    stop(child, "-TERM");

    // Stopped by SIGTERM, it kept the chain as well.
    let (child, url) = start(&dir);
    let backend = RpcBackend::new(&url, USER, PASSWORD).expect("client");
    assert_eq!(backend.tip().await.expect("tip"), tip);
    stop(child, "-INT");
    let _ = std::fs::remove_dir_all(&dir);
}
