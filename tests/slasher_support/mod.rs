//! Running slashers as the real `fiamma slasher` binary: the chain as the real `fiamma regtest`
//! binary (the embedded chain over JSON-RPC), a node following it over RPC, stakes paid from
//! real coinbase outputs and unbonded with the committee's signatures, and slasher configs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Amount, OutPoint, Sequence, Transaction, TxOut, Txid};
use fiamma::btc::{Backend, RpcBackend};
use fiamma_proto::codec;
use fiamma_proto::staking::v1 as pb;
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::registration::{build_registration, Registration, StakerChoices};
use fiamma_staking::sighash::{sign, tapscript_sighash};
use fiamma_staking::taproot::{Leaf, TaprootOutput};
use fiamma_staking::witness::unbonding_witness;

use crate::btc_support::{unsigned, KeyWallet};
use crate::covenant_support::params;
use crate::node_support::{self as ns, account, contexts, keypair, xonly};

/// The chain's JSON-RPC user and password.
pub const RPC_USER: &str = "fiamma";
pub const RPC_PASSWORD: &str = "slasher test password";
/// What each stake locks.
pub const VALUE: u64 = 1_000_000;

/// Starts `fiamma regtest` on a free port; returns it and its JSON-RPC URL once it listens.
pub fn start_chain() -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(["regtest", "--rpc-port", "0", "--rpc-user", RPC_USER])
        .env("FIAMMA_RPC_PASSWORD", RPC_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fiamma regtest starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("fiamma regtest announces its address")
            .expect("utf-8");
        if let Some(addr) = line.strip_prefix("fiamma regtest: JSON-RPC listening on ") {
            break addr.trim().to_owned();
        }
    };
    // Keep reading so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://{addr}"))
}

/// A JSON-RPC client of the chain.
pub fn rpc(url: &str) -> RpcBackend {
    RpcBackend::new(url, RPC_USER, RPC_PASSWORD).expect("client")
}

/// Writes the node's params file and a config following the chain at `rpc_url`.
pub fn write_node(
    dir: &Path,
    db: &str,
    addr: SocketAddr,
    rpc_url: &str,
    finality: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let params_file = dir.join("params.json");
    crate::covenant_support::write_params(&params_file, &params());
    let c = contexts();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{db}\"\ngrpc_addr = \"{addr}\"\nnetwork = \"regtest\"\n\
             params_file = \"{}\"\nchain_id = \"{}\"\nmodule_address = \"{}\"\n\n\
             [bitcoin]\nbackend = \"rpc\"\nrpc_url = \"{rpc_url}\"\nrpc_user = \"{RPC_USER}\"\n\
             rpc_password = \"{RPC_PASSWORD}\"\npoll_interval_ms = 100\n\n[finality]\n{finality}",
            params_file.display(),
            c.chain_id,
            c.module_address
        ),
    )
    .expect("write");
    config
}

/// The coinbase output of the block at `height`.
pub async fn coinbase(chain: &RpcBackend, height: u32) -> (OutPoint, Amount) {
    let hash = chain
        .block_hash(height)
        .await
        .expect("block hash")
        .expect("mined");
    let block = chain.block(&hash).await.expect("block").expect("known");
    let cb = &block.txdata[0];
    (OutPoint::new(cb.compute_txid(), 0), cb.output[0].value)
}

/// A staker's stake: its registration and the signed staking transaction paying it from
/// `funding` (a coinbase output of `wallet`).
pub struct Stake {
    pub seed: u8,
    pub registration: Registration,
    pub signed: Transaction,
}

impl Stake {
    /// Staker `seed` stakes [`VALUE`] with `verifier`, paid from `funding` worth `value`.
    pub fn new(
        seed: u8,
        verifier: XOnlyPublicKey,
        wallet: &KeyWallet,
        funding: (OutPoint, Amount),
    ) -> Self {
        let p = params();
        let staker = keypair(seed);
        let keys = StakingKeys::new(
            xonly(&staker),
            &[verifier],
            &p.covenant_pks,
            p.covenant_quorum,
        )
        .expect("distinct keys");
        let output = TaprootOutput::staking(&keys, ns::STAKING_TIME).expect("valid time");
        let (outpoint, value) = funding;
        let mut tx = unsigned(
            vec![(outpoint, Sequence::MAX)],
            vec![
                output.txout(Amount::from_sat(VALUE)),
                TxOut {
                    value: value - Amount::from_sat(VALUE) - Amount::from_sat(10_000),
                    script_pubkey: wallet.script(),
                },
            ],
        );
        let registration = build_registration(
            &p,
            &contexts(),
            StakerChoices {
                staker: &staker,
                account: account(seed),
                verifier_pks: vec![verifier],
                staking_tx: tx.clone(),
                staking_output_index: 0,
                staking_time: ns::STAKING_TIME,
                slashing_fee: Amount::from_sat(2_000),
            },
        )
        .expect("registration builds");
        wallet.sign(
            &mut tx,
            &[TxOut {
                value,
                script_pubkey: wallet.script(),
            }],
        );
        Stake {
            seed,
            registration,
            signed: tx,
        }
    }

    pub fn txid(&self) -> Txid {
        self.registration.staking_tx.compute_txid()
    }

    /// The unbonding transaction signed by the staker and the committee members whose
    /// signatures `served` carries.
    pub fn unbonding(&self, served: &pb::Delegation) -> Transaction {
        let p = params();
        let reg = &self.registration;
        let keys = StakingKeys::new(
            reg.staker_pk,
            &reg.verifier_pks,
            &p.covenant_pks,
            p.covenant_quorum,
        )
        .expect("keys");
        let output = TaprootOutput::staking(&keys, reg.staking_time).expect("output");
        let leaf = output.leaf_script(Leaf::Unbonding).expect("leaf");
        let staked = output.txout(Amount::from_sat(reg.staking_value_sat));
        let sighash = tapscript_sighash(&reg.unbonding_tx, 0, &[staked], leaf).expect("sighash");
        let covenant: Vec<_> = served
            .covenant_sigs
            .iter()
            .map(|s| {
                (
                    codec::key("covenant_pk", &s.covenant_pk).expect("key"),
                    codec::schnorr_sig("unbonding_sig", &s.unbonding_sig).expect("sig"),
                )
            })
            .collect();
        let staker_sig = sign(&sighash, &keypair(self.seed));
        let mut tx = reg.unbonding_tx.clone();
        tx.input[0].witness =
            unbonding_witness(&output, &keys, &covenant, &staker_sig).expect("witness");
        tx
    }
}

/// Writes a slasher config in `dir`: the node, the chain (password in a file), k, and `extra`.
pub fn write_slasher(
    dir: &Path,
    node: SocketAddr,
    rpc_url: &str,
    confirmations: u32,
    extra: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("rpc-password"), RPC_PASSWORD).expect("write");
    let config = dir.join("slasher.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"http://{node}\"\nconfirmations = {confirmations}\npoll_interval_ms = 100\n\
             {extra}\n[bitcoin]\nrpc_url = \"{rpc_url}\"\nrpc_user = \"{RPC_USER}\"\n\
             rpc_password_file = \"rpc-password\"\n"
        ),
    )
    .expect("write");
    config
}

/// Starts `fiamma slasher run --config <config>`.
pub fn spawn_slasher(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(["slasher", "run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("slasher starts")
}

/// `fiamma slasher status --config <config>`'s output.
pub fn status(config: &Path) -> String {
    let config = config.to_str().expect("utf-8");
    let out = crate::covenant_support::fiamma(&["slasher", "status", "--config", config]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}
