//! `fiamma devnet --keep-running`: after the story (or without it), the network stays up for a
//! person to join as a staker or a verifier. The chain keeps mining a block every few seconds,
//! the node keeps closing rounds, and the covenant committee and the slasher run their daemon
//! loops (the verifiers' daemons are already running). What a person needs is written into a
//! directory (the params file, a `staker.toml` and a `verifier.toml`) and printed with example
//! commands. Ctrl-C or SIGTERM stops everything; the directory is removed unless kept.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_proto::client::{GrpcNode, StakerNode};
use fiamma_proto::staking::v1 as pb;
use fiamma_role::daemon::Shutdown;
use fiamma_staking::params::Params;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::chain::DevnetChain;
use super::covenant;
use super::error::DevnetError;
use super::setup;
use super::slasher::DevnetSlasher;
use super::story::Narrator;
use super::DevnetArgs;

/// How long the daemons may take to stop once told to.
const STOP_PATIENCE: Duration = Duration::from_secs(10);
/// The staking time of the printed example, in blocks.
const EXAMPLE_TIME: u32 = 1_000;

/// The running network, as the story leaves it.
pub struct Network<'a> {
    /// The command's flags.
    pub args: &'a DevnetArgs,
    /// The chain.
    pub chain: &'a DevnetChain,
    /// The node's gRPC address.
    pub node: SocketAddr,
    /// A connection to the node.
    pub channel: Channel,
    /// The verifiers' keys, in the order of [`setup::VERIFIER_NAMES`].
    pub verifiers: &'a [XOnlyPublicKey],
    /// The database the node keeps its state in.
    pub database: &'a str,
    /// Prints progress lines.
    pub(super) say: &'a Narrator,
}

/// A TOML string literal (escaped as TOML requires).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn local(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> DevnetError {
    let action = action.into();
    move |e| DevnetError::local(action, e)
}

/// A loopback port nobody listens on now, for the joining staker's API.
fn free_port() -> Result<u16, DevnetError> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(local("find a free port for the staker API"))
}

/// The files a person joins with.
struct JoinFiles {
    dir: PathBuf,
    params: PathBuf,
    staker: PathBuf,
    verifier: PathBuf,
    staker_api: SocketAddr,
}

/// Writes the params file, `staker.toml` and `verifier.toml` into a new directory, and reads
/// both configs back with the roles' own loaders, so what is printed is known to load.
fn write_join_files(network: &Network<'_>) -> Result<JoinFiles, DevnetError> {
    let dir = std::env::temp_dir().join(format!("fiamma-localnet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(local(format!("create {}", dir.display())))?;
    let write = |name: &str, text: &str| -> Result<PathBuf, DevnetError> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(local(format!("write {}", path.display())))?;
        Ok(path)
    };
    let versions = setup::params_versions()?;
    let params_json = serde_json::to_string_pretty(&versions)
        .map_err(|e| DevnetError::local("write the params file", e))?;
    let params = write("params.json", &params_json)?;
    let node = toml_str(&format!("http://{}", network.node));
    let (user, password) = network.chain.rpc_credentials();
    let staker_api = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
    let staker_toml = format!(
        "# A staker of the local network. Create its wallet with\n\
         #   fiamma staker wallet create --config <this file>\n\
         # then run it with `fiamma staker run --config <this file>`.\n\
         node = {node}\n\
         params_file = \"params.json\"\n\
         chain_id = {chain_id}\n\
         module_address = {module}\n\
         network = \"regtest\"\n\
         wallet_secret = \"wallet.age\"\n\
         grpc_addr = \"{staker_api}\"\n\
         fee_rate_sat_vb = 2\n\
         poll_interval_ms = 1000\n\
         \n\
         [bitcoin]\n\
         rpc_url = {rpc_url}\n\
         rpc_user = {user}\n\
         rpc_password_file = \"rpc-password\"\n",
        chain_id = toml_str(setup::CHAIN_ID),
        module = toml_str(setup::MODULE_ADDRESS),
        rpc_url = toml_str(&format!("http://{}", network.chain.rpc_addr())),
        user = toml_str(user),
    );
    write("rpc-password", password)?;
    let staker = write("staker.toml", &staker_toml)?;
    let verifier_toml = format!(
        "# A verifier of the local network. Create its key with\n\
         #   fiamma verifier keys new --keystore verifier.age\n\
         # (beside this file), register it with `fiamma verifier register`, then run it with\n\
         # `fiamma verifier run --config <this file> --new-network`.\n\
         node = {node}\n\
         chain_id = {chain_id}\n\
         module_address = {module}\n\
         keystore = \"verifier.age\"\n\
         poll_interval_ms = 1000\n\
         commit_batch = {batch}\n\
         commit_ahead = {ahead}\n",
        chain_id = toml_str(setup::CHAIN_ID),
        module = toml_str(setup::MODULE_ADDRESS),
        batch = setup::PUB_RAND_PER_COMMIT,
        ahead = setup::PUB_RAND_PER_COMMIT / 10,
    );
    let verifier = write("verifier.toml", &verifier_toml)?;
    fiamma_staker::config::StakerConfig::load(&staker)
        .map_err(|e| DevnetError::local("check the written staker.toml", e))?;
    fiamma_verifier::config::VerifierConfig::load(&verifier)
        .map_err(|e| DevnetError::local("check the written verifier.toml", e))?;
    Ok(JoinFiles {
        dir,
        params,
        staker,
        verifier,
        staker_api,
    })
}

/// The verifiers as the node sees them: name, key and status.
async fn verifier_lines(network: &Network<'_>) -> Result<Vec<String>, DevnetError> {
    let node = GrpcNode::from_channel(network.channel.clone());
    let mut lines = Vec::new();
    for (name, key) in setup::VERIFIER_NAMES.iter().zip(network.verifiers) {
        let status = node
            .staking_verifier(*key)
            .await
            .map_err(|e| DevnetError::refused("localnet", format!("verifier {name}: {e}")))?
            .map_or("UNKNOWN", |v| {
                if v.status() == pb::VerifierStatus::Slashed {
                    "SLASHED"
                } else {
                    "ACTIVE"
                }
            });
        lines.push(format!("localnet: verifier {name} {key} {status}"));
    }
    Ok(lines)
}

/// What a person needs to join, as printed: every line starts with `localnet:` so that it can
/// be told apart from the story.
fn join_text(
    network: &Network<'_>,
    params: &Params,
    files: &JoinFiles,
    verifiers: &[String],
) -> String {
    let (user, password) = network.chain.rpc_credentials();
    let rpc = format!("http://{}", network.chain.rpc_addr());
    let staker = files.staker.display();
    let example_verifier = network
        .verifiers
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut t = String::new();
    let mut line = |s: String| {
        let _ = writeln!(t, "localnet: {s}");
    };
    line(format!(
        "running; a block every {} s, a round every {} ms; Ctrl-C (SIGINT) or SIGTERM stops \
         everything",
        network.args.block_interval, network.args.round_interval_ms
    ));
    line(format!("node gRPC {}", network.node));
    line(format!("bitcoin JSON-RPC {rpc}"));
    line(format!("bitcoin JSON-RPC user {user}"));
    line(format!("bitcoin JSON-RPC password {password}"));
    line(format!("params file {}", files.params.display()));
    line(format!("config dir {}", files.dir.display()));
    line(format!("staker config {staker}"));
    line(format!("verifier config {}", files.verifier.display()));
    line(format!("database {}", network.database));
    line(format!(
        "covenant committee {}-of-{} running; slasher running; k = {}, U = {} blocks, staking \
         time {}..={} blocks",
        setup::COVENANT_QUORUM,
        setup::COVENANT_MEMBERS,
        setup::CONFIRMATION_DEPTH,
        setup::UNBONDING_TIME,
        params.min_staking_time_blocks,
        params.max_staking_time_blocks
    ));
    for v in verifiers {
        let _ = writeln!(t, "{v}");
    }
    let mut line = |s: String| {
        let _ = writeln!(t, "localnet:   {s}");
    };
    line("to stake from a wallet of your own:".to_owned());
    line(format!(
        "1. fiamma staker wallet create --config {staker}   (asks for a passphrase, or reads \
         FIAMMA_STAKER_PASSPHRASE)"
    ));
    line(format!(
        "2. fiamma staker run --config {staker}   (the staker service; its API is on {})",
        files.staker_api
    ));
    line(format!(
        "3. fiamma staker wallet address --config {staker}   (prints ADDRESS)"
    ));
    line(format!(
        "4. fund it: mine 101 blocks to it over the JSON-RPC (the first coinbase is spendable \
         once 100 more are mined): curl -s --user {user}:{password} -H 'content-type: \
         text/plain' --data-binary \
         '{{\"jsonrpc\":\"1.0\",\"id\":\"fund\",\"method\":\"generatetoaddress\",\"params\":[101,\"ADDRESS\"]}}' \
         {rpc}/   (or bitcoin-cli -regtest -rpcconnect=127.0.0.1 -rpcport={} -rpcuser={user} \
         -rpcpassword={password} generatetoaddress 101 ADDRESS)",
        network.chain.rpc_addr().port()
    ));
    line(format!(
        "5. fiamma staker wallet sync --config {staker}; fiamma staker wallet balance --config \
         {staker}   (\"confirmed\" once mature)"
    ));
    line(format!(
        "6. fiamma staker stake --config {staker} --verifier {example_verifier} --amount 1 \
         --time {EXAMPLE_TIME}   (prints the delegation's id)"
    ));
    line(format!(
        "7. fiamma staker delegations --config {staker}   (status=active a few blocks later)"
    ));
    line(format!(
        "8. grpcurl -plaintext -d '{{\"staking_txid\":\"TXID\"}}' {} fiamma.staking.v1.Staking/Delegation",
        network.node
    ));
    line(format!(
        "9. grpcurl -plaintext -d '{{\"from_round\":1,\"limit\":1000}}' {} \
         fiamma.finality.v1.Finality/Rounds   (each round's status and power), then -d \
         '{{\"round\":N}}' fiamma.finality.v1.Finality/Round   (its active set: each verifier's \
         power)",
        network.node
    ));
    t
}

/// Keeps the network running until `shutdown`: the committee and the slasher as daemons, a
/// block every `--block-interval` seconds. Removes the directory it wrote at the end unless
/// `--keep-dir`.
///
/// # Errors
/// [`DevnetError`] when the files cannot be written or a daemon cannot start; mining errors
/// are printed and mining goes on.
pub async fn keep_running(network: Network<'_>, shutdown: &Shutdown) -> Result<(), DevnetError> {
    let say = network.say;
    let files = write_join_files(&network)?;
    let kept = run_until_stopped(&network, &files, shutdown).await;
    if network.args.keep_dir {
        say.say(format!("localnet: kept {}", files.dir.display()));
    } else {
        match std::fs::remove_dir_all(&files.dir) {
            Ok(()) => say.say(format!("localnet: removed {}", files.dir.display())),
            Err(e) => say.say(format!(
                "localnet: could not remove {}: {e}",
                files.dir.display()
            )),
        }
    }
    kept
}

async fn run_until_stopped(
    network: &Network<'_>,
    files: &JoinFiles,
    shutdown: &Shutdown,
) -> Result<(), DevnetError> {
    let say = network.say;
    let (trigger, daemons_shutdown) = Shutdown::new();
    let mut daemons: Vec<JoinHandle<()>> = Vec::new();
    let params = setup::params()?;
    let contexts = setup::contexts();
    for m in covenant::committee(&params, &contexts, network.channel.clone()).await? {
        let stop = daemons_shutdown.clone();
        daemons.push(tokio::spawn(async move { m.member.run(stop).await }));
    }
    let slasher = DevnetSlasher::new(
        network.channel.clone(),
        network.chain.client()?,
        setup::CONFIRMATION_DEPTH,
    )
    .await?;
    let stop = daemons_shutdown.clone();
    daemons.push(tokio::spawn(async move { slasher.run(stop).await }));

    let verifiers = verifier_lines(network).await?;
    print!("{}", join_text(network, &params, files, &verifiers));

    let mut ticker = tokio::time::interval(Duration::from_secs(network.args.block_interval));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let miner = setup::miner_script();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = ticker.tick() => {
                if let Err(e) = network.chain.mine(1, &miner).await {
                    say.say(format!("localnet: mining: {e}"));
                }
            }
        }
    }
    say.say("localnet: stopping: covenant committee, slasher, verifiers, node, chain");
    trigger.fire();
    for d in daemons {
        let aborter = d.abort_handle();
        if tokio::time::timeout(STOP_PATIENCE, d).await.is_err() {
            aborter.abort();
        }
    }
    Ok(())
}
