//! `fiamma sequencer` as a rollup runs it: the real binary against the real `fiamma node`
//! binary (PostgreSQL), which follows the real `fiamma regtest` chain over JSON-RPC, with four
//! real `fiamma verifier` daemons voting; the sequencer's wallet made and funded with its CLI;
//! its daemon SIGKILLed mid-work and restarted.

mod btc_support;
mod covenant_support;
mod node_finality_support;
mod node_process;
mod sequencer_support;
mod slasher_support;
mod verifier_support;

// The support modules read the shared node support at the crate root.
use node_finality_support::node_support;

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::Address;
use btc_support::Miner;
use covenant_support::Killed;
use fiamma_proto::client::round_certificate_view;
use fiamma_proto::finality::v1 as fpb;
use node_process::{database_url, free_port};
use node_support::contexts;
use sequencer_support::{anchors_on_chain, failed, ok, sequencer, spawn_sequencer, write_config};
use slasher_support::{rpc, start_chain, write_node};
use sqlx::PgPool;
use verifier_support::{current_round, finality, registered, round, spawn_verifier, stake};

/// k of the sequencer.
const K: u32 = 2;
/// It anchors the final rounds divisible by this.
const EVERY: u64 = 2;
/// Due rounds that must be anchored k deep before the test ends.
const DUE_ROUNDS: u64 = 8;

fn proofs_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/zk/fiamma-arkworks-groth16-bn254"
    ))
}

#[sqlx::test]
async fn each_due_final_round_is_anchored_once_with_its_round_hash_and_certificate_across_a_sigkill(
    pool: PgPool,
) {
    let dir = tempfile::tempdir().expect("dir");
    let (chain, rpc_url) = start_chain();
    let _chain = Killed(chain);
    let bitcoin = Arc::new(rpc(&rpc_url));

    let addr = free_port();
    let _node = Killed(node_process::spawn(&write_node(
        &dir.path().join("node"),
        &database_url(&pool),
        addr,
        &rpc_url,
        "round_interval_ms = 400\nvote_expiry = 10\nmax_start_ahead = 1000\n\
         liveness_window = 1000\nliveness_min_signed = 1\n",
    )));
    let mut client = finality(addr).await;
    let mut verifiers = Vec::new();
    for seed in 1..=4u8 {
        let config = registered(&dir.path().join(format!("v{seed}")), seed, addr);
        stake(&pool, seed, 1_000_000).await;
        verifiers.push(Killed(spawn_verifier(&config, true)));
    }

    // The sequencer's wallet, made and funded with its CLI; its store on PostgreSQL.
    let seq = dir.path().join("sequencer");
    let store = format!("store = \"{}\"\n", database_url(&pool));
    let mut config = write_config(&seq, addr, &rpc_url, &store);
    let words = ok(sequencer(
        &config,
        &["wallet", "create", "--work-factor", "10"],
    ));
    assert_eq!(words.split_whitespace().count(), 24, "{words}");
    let again = failed(sequencer(
        &config,
        &["wallet", "create", "--work-factor", "10"],
    ));
    assert!(again.contains("exists"), "{again}");
    let address = Address::from_str(ok(sequencer(&config, &["wallet", "address"])).trim())
        .expect("an address")
        .assume_checked();
    bitcoin.mine(110, &address).await;
    let first_height = bitcoin_tip(&bitcoin).await;
    let balance = ok(sequencer(&config, &["wallet", "balance"]));
    // Eleven coinbases of 50 BTC are 100 deep at height 110.
    assert!(balance.starts_with("confirmed 550 BTC"), "{balance}");

    // Bad input is refused, naming what is wrong.
    let missing = failed(sequencer(&config, &["submit", "/nonexistent/proof"]));
    assert!(missing.contains("/nonexistent/proof"), "{missing}");
    let junk = dir.path().join("junk");
    std::fs::create_dir_all(&junk).expect("dir");
    for f in ["vk.bitvm", "proof.bitvm", "public_input.bitvm"] {
        std::fs::write(junk.join(f), b"not a proof").expect("write");
    }
    let malformed = failed(sequencer(
        &config,
        &["submit", junk.to_str().expect("utf-8")],
    ));
    assert!(malformed.contains("malformed proof"), "{malformed}");
    let zero = failed(sequencer(&config, &["anchor", "--round", "0"]));
    assert!(zero.contains("numbered from 1"), "{zero}");
    let far = failed(sequencer(
        &config,
        &["anchor", "--round", "99999999", "--wait-secs", "1"],
    ));
    assert!(far.contains("unknown"), "{far}");

    // Once the four verifiers vote, rounds become final.
    // (The newest closed round is usually still collecting votes: look a few back.)
    let mut live = 0;
    let mut seen = String::new();
    'wait: for _ in 0..900 {
        let h = current_round(&mut client).await;
        for back in h.saturating_sub(3).max(1)..=h {
            let r = round(&mut client, back).await;
            seen = format!(
                "round {back}: {:?}, {} active",
                r.status(),
                r.active_set.len()
            );
            if r.active_set.len() == 4 && r.status() == fpb::RoundStatus::Final {
                live = back;
                break 'wait;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        live > 0,
        "no round became final with the four verifiers; last: {seen}"
    );
    let start = live + 1;
    // The first round to anchor is only known now; the daemon reads it at its first start.
    config = write_config(
        &seq,
        addr,
        &rpc_url,
        &format!(
            "{store}anchor_every = {EVERY}\nstart_round = {start}\nconfirmations = {K}\n\
             max_pending = 10\n"
        ),
    );

    // Both proofs (a directory of proof directories), and their ids as the node lists them.
    let submitted = ok(sequencer(
        &config,
        &["submit", proofs_dir().to_str().expect("utf-8")],
    ));
    let lines: Vec<&str> = submitted.lines().collect();
    assert_eq!(lines.len(), 2, "{submitted}");
    for line in &lines {
        let mut words = line.split_whitespace();
        let id = hex::decode(words.next().expect("id")).expect("hex");
        assert_eq!(words.next(), Some("round"));
        let h: u64 = words.next().expect("round").parse().expect("number");
        verifier_support::wait_for_round(&mut client, h, 30).await;
        let r = round(&mut client, h).await;
        assert!(r.results.iter().any(|p| p.proof_id == id), "{line}");
    }

    // Blocks keep coming, as on a live chain.
    let mining = Arc::new(AtomicBool::new(true));
    let miner = {
        let (bitcoin, mining, address) = (bitcoin.clone(), mining.clone(), address.clone());
        tokio::spawn(async move {
            while mining.load(Ordering::SeqCst) {
                bitcoin.mine(1, &address).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    // The daemon runs until a few anchors are out, is SIGKILLed in the middle of its work,
    // and is restarted.
    let mut daemon = Killed(spawn_sequencer(&config));
    let mut anchored = 0;
    for _ in 0..600 {
        anchored = anchors_on_chain(&bitcoin, first_height).await.len();
        if anchored >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(anchored >= 3, "the sequencer anchored {anchored} rounds");
    daemon.0.kill().expect("SIGKILL");
    daemon.0.wait().expect("reaped");
    tokio::time::sleep(Duration::from_millis(800)).await;
    daemon = Killed(spawn_sequencer(&config));

    // Every due final round up to `end` anchored k deep.
    let end = start + EVERY * DUE_ROUNDS;
    let due = |h: u64| h >= start && h % EVERY == 0;
    let mut settled = false;
    for _ in 0..1200 {
        if current_round(&mut client).await >= end {
            let on_chain = anchors_on_chain(&bitcoin, first_height).await;
            let mut all = true;
            for h in (start..=end).filter(|h| due(*h)) {
                // An open round may still become final: wait for it to settle either way.
                let status = round(&mut client, h).await.status();
                let deep = on_chain
                    .get(&h)
                    .is_some_and(|a| a.iter().any(|(_, _, c)| *c >= K));
                if status == fpb::RoundStatus::Open || (status == fpb::RoundStatus::Final && !deep)
                {
                    all = false;
                }
            }
            if all {
                settled = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        settled,
        "the due final rounds up to {end} were not all anchored {K} deep"
    );
    drop(daemon);
    mining.store(false, Ordering::SeqCst);
    miner.await.expect("miner");
    // Whatever was left in the mempool is mined too: a second anchor would show.
    bitcoin.mine(3, &address).await;

    let on_chain = anchors_on_chain(&bitcoin, first_height).await;
    let mut finals = 0;
    for (h, anchors) in &on_chain {
        assert_eq!(
            anchors.len(),
            1,
            "round {h} anchored {} times: {anchors:?}",
            anchors.len()
        );
        assert!(due(*h), "round {h} is not due but was anchored");
        let (anchor, txid, _) = &anchors[0];
        let served = round(&mut client, *h).await;
        assert_eq!(served.status(), fpb::RoundStatus::Final, "round {h}");
        assert_eq!(
            anchor.round_hash.0.as_slice(),
            served.round_hash.as_slice(),
            "round {h}"
        );
        let cert = served
            .certificate
            .as_ref()
            .expect("a final round's certificate");
        assert_eq!(
            anchor.certificate_hash,
            sha256::Hash::hash(&cert.encoded).to_byte_array(),
            "round {h}"
        );
        assert_eq!(anchor.certificate_hash.as_slice(), cert.digest.as_slice());
        // The certificate itself proves the round final under its active set.
        let view = round_certificate_view(&served).expect("decodes");
        let checked = fiamma_sequencer::plan::check(&view, &contexts()).expect("checks");
        assert_eq!(&checked.anchor, anchor);
        // Anchoring it again by hand gives the recorded transaction, not a second one.
        let shown = ok(sequencer(&config, &["anchor", "--round", &h.to_string()]));
        assert_eq!(shown.trim(), txid.to_string(), "round {h}");
        if *h <= end {
            finals += 1;
        }
    }
    let due_finals = {
        let mut n = 0;
        for h in (start..=end).filter(|h| due(*h)) {
            if round(&mut client, h).await.status() == fpb::RoundStatus::Final {
                n += 1;
            }
        }
        n
    };
    assert_eq!(finals, due_finals, "anchored {on_chain:?}");
    assert!(
        due_finals >= DUE_ROUNDS / 2,
        "only {due_finals} due rounds were final"
    );

    let status = ok(sequencer(&config, &["status"]));
    assert!(
        status.lines().filter(|l| l.contains(", done,")).count() >= due_finals as usize,
        "{status}"
    );
    assert_eq!(
        status.lines().filter(|l| l.starts_with("proof ")).count(),
        2,
        "{status}"
    );
    drop(verifiers);
}

async fn bitcoin_tip(bitcoin: &fiamma::btc::RpcBackend) -> u32 {
    use fiamma::btc::Backend;
    bitcoin.tip().await.expect("tip").height
}

/// The BIP-39 test mnemonic of twelve words.
const TEST_MNEMONIC: &str = "abandon abandon abandon abandon abandon abandon abandon abandon \
                             abandon abandon abandon about";

#[tokio::test]
async fn a_wallet_imported_from_a_mnemonic_receives_at_the_mnemonics_own_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Importing and showing an address need neither the node nor the chain.
    let config = write_config(
        dir.path(),
        "127.0.0.1:9".parse().expect("addr"),
        "http://127.0.0.1:9",
        "",
    );
    let words = dir.path().join("words.txt");
    let import = |file: &Path| {
        sequencer(
            &config,
            &[
                "wallet",
                "import",
                "--work-factor",
                "10",
                "--mnemonic-file",
                file.to_str().expect("utf-8"),
            ],
        )
    };

    let missing = failed(import(&words));
    assert!(missing.contains("words.txt"), "{missing}");
    std::fs::write(&words, "abandon abandon abandon").expect("write");
    let short = failed(import(&words));
    assert!(short.contains("words.txt"), "{short}");
    assert!(!dir.path().join("wallet.age").exists(), "nothing sealed");

    std::fs::write(&words, format!("{TEST_MNEMONIC}\n")).expect("write");
    assert_eq!(ok(import(&words)).trim(), "wallet imported");
    let again = failed(import(&words));
    assert!(again.contains("exists"), "{again}");

    let keys = fiamma_wallet::WalletKeys::from_mnemonic(TEST_MNEMONIC).expect("mnemonic");
    let store = fiamma_wallet::WalletStore::open("sqlite::memory:", "expected")
        .await
        .expect("store");
    let mut expected = fiamma_wallet::Wallet::create(store, bitcoin::Network::Regtest, &keys, None)
        .await
        .expect("wallet");
    let expected = expected.next_address().await.expect("address");
    let shown = ok(sequencer(&config, &["wallet", "address"]));
    assert_eq!(shown.trim(), expected.to_string());
}
