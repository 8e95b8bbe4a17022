//! Running covenant members as the real `fiamma covenant` binary against the real `fiamma node`
//! binary: a 3-of-5 committee's params, registrations built for it, keystores made with the
//! CLI, member configs, and the processes.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::Amount;
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::params::Params;
use fiamma_staking::registration::{build_registration, Registration, StakerChoices};
use fiamma_staking::taproot::TaprootOutput;

use crate::node_support::{self as ns, account, contexts, covenant, keypair, xonly};

/// Committee size and quorum.
pub const MEMBERS: u8 = 5;
pub const QUORUM: u32 = 3;
/// The passphrase of every test keystore.
pub const PASSPHRASE: &str = "test passphrase of the committee";

/// The test params with a 3-of-5 committee.
pub fn params() -> Params {
    Params {
        covenant_pks: (0..MEMBERS).map(|i| xonly(&covenant(i))).collect(),
        covenant_quorum: QUORUM,
        ..ns::params()
    }
}

/// A registration by staker `staker_seed` to `verifier` from made-up outpoint `nonce`.
pub fn registration(staker_seed: u8, verifier: XOnlyPublicKey, nonce: u32) -> Registration {
    let p = params();
    let staker = keypair(staker_seed);
    let keys = StakingKeys::new(
        xonly(&staker),
        &[verifier],
        &p.covenant_pks,
        p.covenant_quorum,
    )
    .expect("distinct keys");
    let mut staking_tx = ns::staking_tx(xonly(&staker), verifier, ns::VALUE, nonce);
    staking_tx.output[0] = TaprootOutput::staking(&keys, ns::STAKING_TIME)
        .expect("valid time")
        .txout(Amount::from_sat(ns::VALUE));
    build_registration(
        &p,
        &contexts(),
        StakerChoices {
            staker: &staker,
            account: account(staker_seed),
            verifier_pks: vec![verifier],
            staking_tx,
            staking_output_index: 0,
            staking_time: ns::STAKING_TIME,
            slashing_fee: Amount::from_sat(2_000),
        },
    )
    .expect("registration builds")
}

/// Writes `params` as a params file at `path`.
pub fn write_params(path: &Path, params: &Params) {
    std::fs::write(path, serde_json::to_string(&vec![params]).expect("json")).expect("write");
}

/// Writes the node's params file and config in `dir`; returns the config's path.
pub fn write_node(dir: &Path, db: &str, addr: SocketAddr) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let params_file = dir.join("params.json");
    write_params(&params_file, &params());
    let c = contexts();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{db}\"\ngrpc_addr = \"{addr}\"\nnetwork = \"regtest\"\n\
             params_file = \"{}\"\nchain_id = \"{}\"\nmodule_address = \"{}\"\n\n\
             [bitcoin]\nbackend = \"embedded\"\npoll_interval_ms = 200\n",
            params_file.display(),
            c.chain_id,
            c.module_address
        ),
    )
    .expect("write");
    config
}

/// Runs `fiamma` with `args`, the passphrase in the environment.
pub fn fiamma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(args)
        .env("FIAMMA_COVENANT_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::null())
        .output()
        .expect("fiamma runs")
}

/// Member `i`'s keystore in `dir`, imported with the CLI from its secret key (in a file).
pub fn import_key(dir: &Path, i: u8) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let secret_file = dir.join("secret.hex");
    std::fs::write(
        &secret_file,
        hex::encode(covenant(i).secret_key().secret_bytes()),
    )
    .expect("write");
    let keystore = dir.join("covenant.age");
    let out = fiamma(&[
        "covenant",
        "keys",
        "import",
        "--keystore",
        keystore.to_str().expect("utf-8"),
        "--secret-file",
        secret_file.to_str().expect("utf-8"),
        "--work-factor",
        "10",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&secret_file).expect("remove");
    let shown = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(shown.trim(), xonly(&covenant(i)).to_string());
    keystore
}

/// Writes member `i`'s config in `dir` (keystore already there), signing under `params`.
pub fn write_member(dir: &Path, node: SocketAddr, params: &Params, extra: &str) -> PathBuf {
    let params_file = dir.join("params.json");
    write_params(&params_file, params);
    let c = contexts();
    let config = dir.join("covenant.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"http://{node}\"\nparams_file = \"params.json\"\nchain_id = \"{}\"\n\
             module_address = \"{}\"\nkeystore = \"covenant.age\"\npoll_interval_ms = 200\n{extra}",
            c.chain_id, c.module_address
        ),
    )
    .expect("write");
    config
}

/// Starts `fiamma covenant run --config <config>`.
pub fn spawn_member(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(["covenant", "run", "--config"])
        .arg(config)
        .env("FIAMMA_COVENANT_PASSPHRASE", PASSPHRASE)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("member starts")
}

/// `fiamma covenant status --config <config>`'s output.
pub fn status(config: &Path) -> String {
    let out = fiamma(&[
        "covenant",
        "status",
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Kills a child on drop, so a failing test leaves no process behind.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
