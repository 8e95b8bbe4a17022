//! `fiamma checkpoint show|follow` as a user runs them: the real binary against the real
//! `fiamma regtest` binary, serving a chain on which genesis → c₁ (quorum) → c₂ (recovery) were
//! mined by Bitcoin Core's consensus engine.

mod btc_support;
mod checkpoint_support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bitcoin::{Address, Amount, OutPoint, Sequence, TxOut};
use bitcoincore_rpc::RpcApi;
use btc_support::{mine_txs, unsigned, KeyWallet};
use checkpoint_support::*;
use fiamma::btc::regtest::unix_now;
use fiamma::btc::RegtestChain;
use fiamma_finality::checkpoint::{CheckpointKind, CheckpointOutput};

const USER: &str = "cli";
const PASSWORD: &str = "pw";

/// What the test chain holds.
struct Built {
    genesis: OutPoint,
    /// The coinbase output the genesis funding spent (a P2TR output spent off the template).
    spent_coin: OutPoint,
    c1: bitcoin::Txid,
    c2: bitcoin::Txid,
    c2_state: [u8; 32],
}

/// genesis (set A) → c₁ round 100 signed by A → c₂ round 200 by the committee after R; c₂ is
/// left with one confirmation.
fn build(dir: &Path) -> Built {
    let mut chain = RegtestChain::open(dir).expect("chain");
    let wallet = KeyWallet::new(0x62);
    chain.mine(110, &wallet.script(), unix_now()).expect("mine");
    let committee = committee();
    let a_members = verifiers(1, &[2, 1]);
    let b_members = verifiers(10, &[3, 3, 3, 1]);
    let (a, b) = (set_of(&a_members), set_of(&b_members));

    let block1 = chain.block_at(1).expect("read").expect("block");
    let coinbase = &block1.txdata[0];
    let spent_coin = OutPoint::new(coinbase.compute_txid(), 0);
    let genesis_output = CheckpointOutput::new(&a, &committee.leaf);
    let mut fund = unsigned(
        vec![(spent_coin, Sequence::MAX)],
        vec![
            genesis_output.txout(VALUE),
            TxOut {
                value: coinbase.output[0].value - VALUE - Amount::from_sat(1_000),
                script_pubkey: wallet.script(),
            },
        ],
    );
    wallet.sign(&mut fund, &[coinbase.output[0].clone()]);
    chain.submit_transaction(&fund).expect("funding accepted");
    chain.mine(1, &wallet.script(), unix_now()).expect("mine");
    let genesis = OutPoint::new(fund.compute_txid(), 0);

    let c1 = candidate(
        genesis,
        &a,
        &b,
        &committee.leaf,
        100,
        CheckpointKind::Quorum,
        0,
    );
    let c1_tx = signed(&c1, &a, &[&a_members[0].0, &a_members[1].0], 100);
    mine_txs(
        &mut chain,
        &wallet.script(),
        vec![c1_tx.clone()],
        Amount::ZERO,
    )
    .expect("c1");
    chain
        .mine(RECOVERY_BLOCKS - 1, &wallet.script(), unix_now())
        .expect("mine");
    let c2 = candidate(
        OutPoint::new(c1_tx.compute_txid(), 0),
        &b,
        &a,
        &committee.leaf,
        200,
        CheckpointKind::Recovery,
        7,
    );
    let c2_tx = recovery_complete(&c2, &committee, &[0, 1, 4]);
    mine_txs(
        &mut chain,
        &wallet.script(),
        vec![c2_tx.clone()],
        Amount::ZERO,
    )
    .expect("c2");
    Built {
        genesis,
        spent_coin,
        c1: c1_tx.compute_txid(),
        c2: c2_tx.compute_txid(),
        c2_state: [0x5a; 32],
    }
}

fn start_regtest(datadir: &Path) -> (Child, String) {
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

fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn checkpoint_cmd(verb: &str, url: &str, password_file: &Path, genesis: &str, k: u32) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fiamma"));
    cmd.args(["checkpoint", verb, "--genesis", genesis, "--rpc-url", url])
        .args(["--rpc-user", USER, "--confirmations", &k.to_string()])
        .arg("--rpc-password-file")
        .arg(password_file)
        .env_remove("FIAMMA_RPC_PASSWORD");
    cmd
}

fn show(url: &str, password_file: &Path, genesis: &str, k: u32) -> Output {
    checkpoint_cmd("show", url, password_file, genesis, k)
        .output()
        .expect("run show")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "show failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    assert!(out.stdout.is_empty());
    String::from_utf8(out.stderr.clone()).expect("utf-8")
}

#[test]
fn show_and_follow_read_the_chain_from_the_genesis_outpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let datadir = dir.path().join("chain");
    let built = build(&datadir);
    let (regtest, url) = start_regtest(&datadir);
    let password_file = dir.path().join("rpc-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("write");
    let genesis = built.genesis.to_string();

    // k = 1: c₂ is the latest, a recovery checkpoint, with its state root.
    let out = stdout(&show(&url, &password_file, &genesis, 1));
    assert!(out.contains("2 checkpoints"), "{out}");
    assert!(out.contains("checkpoint round: 200\n"), "{out}");
    assert!(out.contains("kind: recovery (0x02)"), "{out}");
    assert!(out.contains(&format!("txid: {}\n", built.c2)), "{out}");
    assert!(
        out.contains(&format!("state root: {}\n", hex::encode(built.c2_state))),
        "{out}"
    );
    assert!(
        out.contains("recovered by: 3 of 5 committee keys after 6 blocks"),
        "{out}"
    );
    assert!(
        out.contains(&format!("chain end: {}:0 unspent", built.c2)),
        "{out}"
    );

    // k = 2: c₂ has one confirmation, so c₁ is the latest, signed by A's two keys.
    let out = stdout(&show(&url, &password_file, &genesis, 2));
    assert!(out.contains("checkpoint round: 100\n"), "{out}");
    assert!(out.contains("kind: quorum (0x01)"), "{out}");
    assert!(out.contains(&format!("txid: {}\n", built.c1)), "{out}");
    assert!(out.contains("signed by: a set of 2 verifiers"), "{out}");
    assert!(out.contains("(7 confirmations)"), "{out}");
    assert!(
        out.contains(&format!(
            "pending: round 200 in {} (1 of 2 confirmations)",
            built.c2
        )),
        "{out}"
    );
    // k = 8: nothing is deep enough yet.
    let out = stdout(&show(&url, &password_file, &genesis, 8));
    assert!(
        out.contains("no checkpoint has 8 confirmations yet"),
        "{out}"
    );
    assert!(!out.contains("checkpoint round:"), "{out}");

    // Bad genesis outpoints and a bad backend fail with what is wrong.
    let err = failure(&show(&url, &password_file, "not-an-outpoint", 1));
    assert!(err.contains("--genesis"), "{err}");
    let unknown = format!("{}:0", "ab".repeat(32));
    let err = failure(&show(&url, &password_file, &unknown, 1));
    assert!(err.contains("knows no such transaction"), "{err}");
    let err = failure(&show(&url, &password_file, &format!("{}:9", built.c1), 1));
    assert!(err.contains("has only 3 outputs"), "{err}");
    let err = failure(&show(&url, &password_file, &format!("{}:1", built.c1), 1));
    assert!(err.contains("is not a checkpoint genesis"), "{err}");
    assert!(err.contains("not P2TR"), "{err}");
    let err = failure(&show(
        &url,
        &password_file,
        &built.spent_coin.to_string(),
        1,
    ));
    assert!(err.contains("is not a checkpoint genesis"), "{err}");
    assert!(err.contains("off the checkpoint template"), "{err}");
    let err = failure(&show("http://127.0.0.1:1", &password_file, &genesis, 1));
    assert!(err.contains("unreachable"), "{err}");
    let wrong = dir.path().join("wrong-password");
    std::fs::write(&wrong, "nope").expect("write");
    let err = failure(&show(&url, &wrong, &genesis, 1));
    assert!(
        err.contains("refused the JSON-RPC user and password"),
        "{err}"
    );
    let err = failure(&show(&url, &dir.path().join("missing"), &genesis, 1));
    assert!(
        err.contains("cannot read the JSON-RPC password file"),
        "{err}"
    );

    // follow with k = 2 prints c₁, then c₂ once a block buries it.
    let mut follower = checkpoint_cmd("follow", &url, &password_file, &genesis, 2)
        .args(["--poll-interval-ms", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn follow");
    let lines = line_channel(follower.stdout.take().expect("stdout"));
    wait_for(&lines, "checkpoint round: 100");
    let backend = fiamma::btc::RpcBackend::new(&url, USER, PASSWORD).expect("client");
    let payout: Address = KeyWallet::new(0x62).address;
    backend
        .client()
        .generate_to_address(1, &payout)
        .expect("mine");
    wait_for(&lines, "checkpoint round: 200");
    interrupt(&follower);
    let status = follower.wait().expect("wait");
    let mut err = String::new();
    follower
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    assert!(status.success(), "follow exited with {status}: {err}");

    interrupt(&regtest);
    let mut regtest = regtest;
    assert!(regtest.wait().expect("wait").success());
}

fn line_channel(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for(lines: &mpsc::Receiver<String>, wanted: &str) {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line == wanted => return,
            Ok(line) => seen.push(line),
            Err(e) => panic!("no line {wanted:?} ({e}); saw {seen:#?}"),
        }
    }
}
