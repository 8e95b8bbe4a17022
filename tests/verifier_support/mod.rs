//! Running verifiers as the real `fiamma verifier` binary against the real `fiamma node` binary:
//! a node whose rounds close quickly, keystores made with the CLI, verifier configs, stake, and
//! the processes.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use fiamma::node::store::Store;
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::finality::v1::finality_client::FinalityClient;
use sqlx::PgPool;
use tonic::transport::Channel;

use crate::node_finality_support::{self as nfs, contexts, keypair, xonly};
use crate::node_process;

/// The passphrase of every test keystore.
pub const PASSPHRASE: &str = "test passphrase of the verifier";
/// Milliseconds between two round closings.
pub const ROUND_MS: u64 = 250;

/// Starts the node binary on `pool`'s database with quick rounds; returns it and its address.
pub fn start_node(dir: &Path, pool: &PgPool) -> (Child, SocketAddr) {
    start_node_with(dir, pool, ROUND_MS, "")
}

/// [`start_node`] with rounds every `round_ms` and more `[finality]` settings.
pub fn start_node_with(
    dir: &Path,
    pool: &PgPool,
    round_ms: u64,
    finality: &str,
) -> (Child, SocketAddr) {
    let addr = node_process::free_port();
    let config = node_process::write_files(
        &dir.join("node"),
        &node_process::database_url(pool),
        addr,
        &format!(
            "[finality]\nround_interval_ms = {round_ms}\nvote_expiry = 10\n\
             max_start_ahead = 1000\n{finality}"
        ),
    );
    (node_process::spawn(&config), addr)
}

/// A finality client once the node serves.
pub async fn finality(addr: SocketAddr) -> FinalityClient<Channel> {
    FinalityClient::new(node_process::connect(addr, "fiamma.finality.v1.Finality").await)
}

/// Runs `fiamma` with `args`, the passphrase in the environment.
pub fn fiamma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(args)
        .env("FIAMMA_VERIFIER_PASSPHRASE", PASSPHRASE)
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

/// Verifier `seed`'s keystore in `dir`, imported with the CLI from its secret key (in a file).
pub fn import_key(dir: &Path, seed: u8) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let secret_file = dir.join("secret.hex");
    std::fs::write(
        &secret_file,
        hex::encode(keypair(seed).secret_key().secret_bytes()),
    )
    .expect("write");
    let keystore = dir.join("verifier.age");
    let shown = ok(fiamma(&[
        "verifier",
        "keys",
        "import",
        "--keystore",
        keystore.to_str().expect("utf-8"),
        "--secret-file",
        secret_file.to_str().expect("utf-8"),
        "--work-factor",
        "10",
    ]));
    std::fs::remove_file(&secret_file).expect("remove");
    assert_eq!(shown.trim(), xonly(&keypair(seed)).to_string());
    keystore
}

/// Writes a verifier config in `dir` (keystore already there); `extra` is appended.
pub fn write_config(dir: &Path, node: SocketAddr, extra: &str) -> PathBuf {
    let c = contexts();
    let config = dir.join("verifier.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"http://{node}\"\nchain_id = \"{}\"\nmodule_address = \"{}\"\n\
             keystore = \"verifier.age\"\npoll_interval_ms = 100\ncommit_batch = 10\n\
             commit_ahead = 5\ncatch_up_rounds = 10\n{extra}",
            c.chain_id, c.module_address
        ),
    )
    .expect("write");
    config
}

/// A verifier's directory, keystore and config, registered with the CLI.
pub fn registered(dir: &Path, seed: u8, node: SocketAddr) -> PathBuf {
    registered_with(dir, seed, node, "")
}

/// [`registered`] with `extra` config lines (keys [`write_config`] does not set).
pub fn registered_with(dir: &Path, seed: u8, node: SocketAddr, extra: &str) -> PathBuf {
    import_key(dir, seed);
    let config = write_config(dir, node, extra);
    let moniker = format!("verifier {seed}");
    let mut args = vec![
        "verifier",
        "register",
        "--config",
        config.to_str().expect("utf-8"),
        "--moniker",
        &moniker,
    ];
    // Even seeds prove possession with BIP-322 (P2TR), odd ones with BIP-340.
    if seed % 2 == 0 {
        args.extend(["--bip322-network", "regtest"]);
    }
    let out = ok(fiamma(&args));
    assert!(out.contains("registered verifier"), "{out}");
    config
}

/// Gives verifier `seed` ACTIVE stake in the node's database.
pub async fn stake(pool: &PgPool, seed: u8, value: u64) {
    nfs::stake(
        &Store::from_pool(pool.clone()),
        xonly(&keypair(seed)),
        value,
        u32::from(seed),
    )
    .await;
}

/// Verifiers `seeds`, each in `dir/v<seed>`, registered with the CLI and given 1,000,000 sat
/// of ACTIVE stake; their configs.
pub async fn registered_and_staked(
    dir: &Path,
    seeds: std::ops::RangeInclusive<u8>,
    node: SocketAddr,
    pool: &PgPool,
) -> Vec<PathBuf> {
    let mut configs = Vec::new();
    for seed in seeds {
        configs.push(registered(&dir.join(format!("v{seed}")), seed, node));
        stake(pool, seed, 1_000_000).await;
    }
    configs
}

/// Starts `fiamma verifier run --config <config>` (with `--new-network` when asked).
pub fn spawn_verifier(config: &Path, new_network: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fiamma"));
    cmd.args(["verifier", "run", "--config"]).arg(config);
    if new_network {
        cmd.arg("--new-network");
    }
    cmd.env("FIAMMA_VERIFIER_PASSPHRASE", PASSPHRASE)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("verifier starts")
}

/// `fiamma verifier status --config <config>`'s output.
pub fn status(config: &Path) -> String {
    ok(fiamma(&[
        "verifier",
        "status",
        "--config",
        config.to_str().expect("utf-8"),
    ]))
}

/// `fiamma verifier slashing-protection <verb> --config <config> --file <file>`'s output.
pub fn protection(verb: &str, config: &Path, file: &Path) -> String {
    ok(fiamma(&[
        "verifier",
        "slashing-protection",
        verb,
        "--config",
        config.to_str().expect("utf-8"),
        "--file",
        file.to_str().expect("utf-8"),
    ]))
}

/// The newest closed round.
pub async fn current_round(client: &mut FinalityClient<Channel>) -> u64 {
    let mut from = 1;
    let mut last = 0;
    loop {
        let rounds = client
            .rounds(fpb::RoundsRequest {
                from_round: from,
                limit: 1000,
            })
            .await
            .expect("rounds")
            .into_inner()
            .rounds;
        match rounds.last() {
            Some(r) => {
                last = r.round;
                from = r.round + 1;
            }
            None => return last,
        }
    }
}

/// Round `h` as served (all its results on one page in these tests).
pub async fn round(client: &mut FinalityClient<Channel>, h: u64) -> fpb::Round {
    client
        .round(fpb::RoundRequest {
            round: h,
            ..Default::default()
        })
        .await
        .expect("round")
        .into_inner()
        .round
        .expect("served")
}

/// The node's record of verifier `seed` (empty before its first commitment).
pub async fn record(client: &mut FinalityClient<Channel>, seed: u8) -> fpb::FinalityVerifier {
    match client
        .verifier(fpb::VerifierRequest {
            verifier_btc_pk: xonly(&keypair(seed)).serialize().to_vec(),
        })
        .await
    {
        Ok(r) => r.into_inner().verifier.expect("served"),
        Err(s) if s.code() == tonic::Code::NotFound => fpb::FinalityVerifier::default(),
        Err(s) => panic!("verifier: {s:?}"),
    }
}

/// Waits (up to `secs` s) until round `h` has closed.
pub async fn wait_for_round(client: &mut FinalityClient<Channel>, h: u64, secs: u64) {
    for _ in 0..secs * 10 {
        if current_round(client).await >= h {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("round {h} did not close within {secs} s");
}

/// Nobody was slashed, and the node holds no equivocation evidence.
pub async fn assert_no_equivocation(client: &mut FinalityClient<Channel>) {
    let slashed = client
        .slashed_verifiers(fpb::SlashedVerifiersRequest {})
        .await
        .expect("slashed verifiers")
        .into_inner()
        .verifiers;
    assert!(slashed.is_empty(), "equivocation: {slashed:?}");
}

/// Copies a stopped daemon's SQLite store (its file and WAL) from `from` to `to`, replacing it.
pub fn copy_store(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let src = PathBuf::from(format!("{}{suffix}", from.display()));
        let dst = PathBuf::from(format!("{}{suffix}", to.display()));
        let _ = std::fs::remove_file(&dst);
        if src.exists() {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// The settings of the in-process verifiers: batches of 10 rounds, 5 committed ahead, 10
/// rounds of catch-up, polled every 100 ms.
pub fn test_settings(
    contexts: fiamma_staking::context::SigningContexts,
) -> fiamma_verifier::verifier::VerifierSettings {
    fiamma_verifier::verifier::VerifierSettings {
        contexts,
        commit_batch: 10,
        commit_ahead: 5,
        catch_up_rounds: 10,
        poll_interval: Duration::from_millis(100),
        unjail: false,
        jail_duration: 100,
    }
}

/// Kills a child on drop, so a failing test leaves no process behind.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Implements `FinalityNode` for `$ty` by passing every call to its field `$field` (a node
/// client): a test wrapper overrides only the calls it injects a fault into.
#[allow(unused_macros)]
macro_rules! pass_finality_node {
    ($ty:ty, $field:tt) => {
        #[::async_trait::async_trait]
        impl ::fiamma_proto::client::FinalityNode for $ty {
            async fn verifier(
                &self,
                v: ::bitcoin::secp256k1::XOnlyPublicKey,
            ) -> Result<Option<::fiamma_proto::client::VerifierRecord>, ::fiamma_proto::client::NodeError>
            {
                ::fiamma_proto::client::FinalityNode::verifier(&self.$field, v).await
            }
            async fn rounds(
                &self,
                from: u64,
                limit: u32,
            ) -> Result<Vec<::fiamma_proto::client::RoundSummary>, ::fiamma_proto::client::NodeError>
            {
                ::fiamma_proto::client::FinalityNode::rounds(&self.$field, from, limit).await
            }
            async fn latest_round(&self) -> Result<u64, ::fiamma_proto::client::NodeError> {
                ::fiamma_proto::client::FinalityNode::latest_round(&self.$field).await
            }
            async fn round(
                &self,
                h: u64,
            ) -> Result<Option<::fiamma_proto::client::ClosedRoundView>, ::fiamma_proto::client::NodeError>
            {
                ::fiamma_proto::client::FinalityNode::round(&self.$field, h).await
            }
            async fn round_proofs(
                &self,
                h: u64,
                from: u32,
            ) -> Result<::fiamma_proto::client::ProofPage, ::fiamma_proto::client::NodeError> {
                ::fiamma_proto::client::FinalityNode::round_proofs(&self.$field, h, from).await
            }
            async fn commit_pub_rand(
                &self,
                v: ::bitcoin::secp256k1::XOnlyPublicKey,
                c: &::fiamma_finality::commitment::RandomnessCommitment,
                s: &::bitcoin::secp256k1::schnorr::Signature,
            ) -> Result<(), ::fiamma_proto::client::NodeError> {
                ::fiamma_proto::client::FinalityNode::commit_pub_rand(&self.$field, v, c, s).await
            }
            async fn add_finality_sig(
                &self,
                vote: &::fiamma_finality::rounds::Vote,
            ) -> Result<::fiamma_proto::client::VoteOutcome, ::fiamma_proto::client::NodeError> {
                ::fiamma_proto::client::FinalityNode::add_finality_sig(&self.$field, vote).await
            }
            async fn unjail(
                &self,
                v: ::bitcoin::secp256k1::XOnlyPublicKey,
                s: &::bitcoin::secp256k1::schnorr::Signature,
            ) -> Result<(), ::fiamma_proto::client::NodeError> {
                ::fiamma_proto::client::FinalityNode::unjail(&self.$field, v, s).await
            }
            async fn finality_events(
                &self,
                from: u64,
            ) -> Result<::fiamma_proto::client::FinalityEventStream, ::fiamma_proto::client::NodeError>
            {
                ::fiamma_proto::client::FinalityNode::finality_events(&self.$field, from).await
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use pass_finality_node;

/// Implements `CheckpointNode` for `$ty` by passing every call to its field `$field`.
#[allow(unused_macros)]
macro_rules! pass_checkpoint_node {
    ($ty:ty, $field:tt) => {
        #[::async_trait::async_trait]
        impl ::fiamma_proto::client::CheckpointNode for $ty {
            async fn checkpoints(
                &self,
            ) -> Result<
                Option<::fiamma_proto::client::CheckpointsView>,
                ::fiamma_proto::client::NodeError,
            > {
                ::fiamma_proto::client::CheckpointNode::checkpoints(&self.$field).await
            }
            async fn checkpoint_round(
                &self,
                h: u64,
            ) -> Result<
                Option<::fiamma_proto::client::CheckpointRoundView>,
                ::fiamma_proto::client::NodeError,
            > {
                ::fiamma_proto::client::CheckpointNode::checkpoint_round(&self.$field, h).await
            }
            async fn add_checkpoint_sig(
                &self,
                h: u64,
                vote: &::fiamma_finality::checkpoint::CheckpointVote,
                proof: &::fiamma_finality::merkle::Proof,
            ) -> Result<::fiamma_proto::client::VoteOutcome, ::fiamma_proto::client::NodeError>
            {
                ::fiamma_proto::client::CheckpointNode::add_checkpoint_sig(
                    &self.$field,
                    h,
                    vote,
                    proof,
                )
                .await
            }
            async fn register_checkpoint_genesis(
                &self,
                outpoint: ::bitcoin::OutPoint,
            ) -> Result<
                ::fiamma_proto::client::CheckpointOutputView,
                ::fiamma_proto::client::NodeError,
            > {
                ::fiamma_proto::client::CheckpointNode::register_checkpoint_genesis(
                    &self.$field,
                    outpoint,
                )
                .await
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use pass_checkpoint_node;

/// Implements `StakingNode` for `$ty` by passing every call to its field `$field`.
#[allow(unused_macros)]
macro_rules! pass_staking_node {
    ($ty:ty, $field:tt) => {
        #[::async_trait::async_trait]
        impl ::fiamma_proto::client::StakingNode for $ty {
            async fn params(
                &self,
                version: u32,
            ) -> Result<::fiamma_proto::staking::v1::Params, ::fiamma_proto::client::NodeError>
            {
                ::fiamma_proto::client::StakingNode::params(&self.$field, version).await
            }
            async fn pending_delegations(
                &self,
                covenant: ::bitcoin::secp256k1::XOnlyPublicKey,
                token: Option<String>,
                size: u32,
            ) -> Result<::fiamma_proto::client::PendingPage, ::fiamma_proto::client::NodeError>
            {
                ::fiamma_proto::client::StakingNode::pending_delegations(
                    &self.$field,
                    covenant,
                    token,
                    size,
                )
                .await
            }
            async fn add_covenant_sigs(
                &self,
                staking_txid: &str,
                sigs: &::fiamma_covenant::signing::CovenantSignatures,
            ) -> Result<::fiamma_proto::client::CovenantSigsAck, ::fiamma_proto::client::NodeError>
            {
                ::fiamma_proto::client::StakingNode::add_covenant_sigs(
                    &self.$field,
                    staking_txid,
                    sigs,
                )
                .await
            }
            async fn events(
                &self,
                from: u64,
            ) -> Result<::fiamma_proto::client::EventStream, ::fiamma_proto::client::NodeError>
            {
                ::fiamma_proto::client::StakingNode::events(&self.$field, from).await
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use pass_staking_node;
