//! Running a sequencer as the real `fiamma sequencer` binary: its config, its wallet made and
//! funded with the CLI, the daemon process, and reading the anchors back from the chain.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use bitcoin::Txid;
use fiamma::btc::{Backend, RpcBackend};
use fiamma_finality::round::anchor::Anchor;

use crate::node_support::contexts;
use crate::slasher_support::{RPC_PASSWORD, RPC_USER};

/// The passphrase of the test wallet.
pub const PASSPHRASE: &str = "test passphrase of the sequencer";

/// Runs `fiamma` with `args`, the wallet passphrase in the environment.
pub fn fiamma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(args)
        .env("FIAMMA_SEQUENCER_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::null())
        .output()
        .expect("fiamma runs")
}

/// Asserts `out` succeeded; its stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Asserts `out` failed; its stderr.
pub fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8")
}

/// Writes a sequencer config in `dir`: the node, the chain (password in a file), and `extra`.
pub fn write_config(dir: &Path, node: SocketAddr, rpc_url: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("rpc-password"), RPC_PASSWORD).expect("write");
    let c = contexts();
    let config = dir.join("sequencer.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"http://{node}\"\nchain_id = \"{}\"\nmodule_address = \"{}\"\n\
             network = \"regtest\"\nwallet_secret = \"wallet.age\"\npoll_interval_ms = 100\n\
             {extra}\n[bitcoin]\nrpc_url = \"{rpc_url}\"\nrpc_user = \"{RPC_USER}\"\n\
             rpc_password_file = \"rpc-password\"\n",
            c.chain_id, c.module_address
        ),
    )
    .expect("write");
    config
}

/// `fiamma sequencer <args…> --config <config>`.
pub fn sequencer(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["sequencer"];
    all.extend_from_slice(args);
    all.extend(["--config", config.to_str().expect("utf-8")]);
    fiamma(&all)
}

/// Starts `fiamma sequencer run --config <config>`.
pub fn spawn_sequencer(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(["sequencer", "run", "--config"])
        .arg(config)
        .env("FIAMMA_SEQUENCER_PASSPHRASE", PASSPHRASE)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sequencer starts")
}

/// Every anchor in the active chain from height `from` on: each round's anchors, with the
/// transaction and the confirmations of each.
pub async fn anchors_on_chain(
    chain: &RpcBackend,
    from: u32,
) -> BTreeMap<u64, Vec<(Anchor, Txid, u32)>> {
    let tip = chain.tip().await.expect("tip").height;
    let mut found: BTreeMap<u64, Vec<(Anchor, Txid, u32)>> = BTreeMap::new();
    for height in from..=tip {
        let hash = chain
            .block_hash(height)
            .await
            .expect("hash")
            .expect("in the chain");
        let block = chain.block(&hash).await.expect("block").expect("known");
        for tx in &block.txdata {
            for out in &tx.output {
                if let Ok(anchor) = Anchor::from_script(&out.script_pubkey) {
                    found.entry(anchor.round).or_default().push((
                        anchor,
                        tx.compute_txid(),
                        tip - height + 1,
                    ));
                }
            }
        }
    }
    found
}
