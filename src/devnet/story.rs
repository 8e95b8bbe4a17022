//! The devnet story, step by step: each step prints one line with the ids and amounts that
//! matter, and fails with a [`DevnetError`] unless it observed the outcome it expects.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Address, Amount, Network, Txid};
use fiamma_finality::round::anchor::Anchor;
use fiamma_finality::round::RoundHash;
use fiamma_proto::client::GrpcNode;
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::finality::v1::finality_client::FinalityClient;
use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use fiamma_staking::context::SigningContexts;
use fiamma_staking::params::Params;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::chain::DevnetChain;
use super::checkpoint::Checkpoints;
use super::cluster::ThrowawayCluster;
use super::covenant;
use super::database::DevnetDatabase;
use super::error::DevnetError;
use super::localnet;
use super::sequencer::{corrupted_proof, fiamma_proof, Sequencer};
use super::setup::{self, short};
use super::slasher;
use super::staker::Staker;
use super::verifier::{Verifier, VoteReport};
use super::DevnetArgs;
use crate::btc::RpcBackend;
use crate::node::run::{connect_and_migrate, NodeSetup, RunningNode};
use fiamma_covenant_member::member::Outcome;
use fiamma_role::daemon::Shutdown;
use fiamma_staker::staker::Action;

/// How long the story waits for any one outcome.
const PATIENCE: Duration = Duration::from_secs(30);
/// Between two looks at the node while waiting.
const POLL: Duration = Duration::from_millis(100);
/// How long the node may take to stop once every party has hung up.
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// Prints the story's lines, each with the time since the start.
pub(super) struct Narrator {
    start: Instant,
}

impl Narrator {
    pub(super) fn say(&self, line: impl AsRef<str>) {
        let t = self.start.elapsed().as_secs_f64();
        println!("[{t:5.1}s] {}", line.as_ref());
    }
}

/// The verifiers' keys, in the order of [`setup::VERIFIER_NAMES`].
pub(super) struct Roster {
    pub(super) keys: Vec<XOnlyPublicKey>,
}

impl Roster {
    pub(super) fn name(&self, key: &XOnlyPublicKey) -> &'static str {
        self.keys
            .iter()
            .position(|k| k == key)
            .and_then(|i| setup::VERIFIER_NAMES.get(i).copied())
            .unwrap_or("?")
    }

    fn name_of(&self, key: &[u8]) -> &'static str {
        XOnlyPublicKey::from_slice(key).map_or("?", |k| self.name(&k))
    }
}

/// Runs the story on a fresh database, dropping it afterwards unless asked to keep it.
///
/// # Errors
/// The first [`DevnetError`] of the story, or of the cleanup when the story succeeded.
pub async fn run(args: DevnetArgs) -> Result<(), DevnetError> {
    let say = Narrator {
        start: Instant::now(),
    };
    // Installed first: from here on Ctrl-C or SIGTERM stops the network cleanly.
    let shutdown = Shutdown::on_signals();
    let (server_url, cluster) = match &args.database_url {
        Some(url) => (url.clone(), None),
        None if args.keep_database => {
            return Err(DevnetError::refused(
                "devnet",
                "--keep-database needs --database-url: a throwaway cluster is removed at exit",
            ))
        }
        None => {
            let cluster = tokio::task::spawn_blocking(ThrowawayCluster::start)
                .await
                .map_err(|e| DevnetError::local("start a throwaway PostgreSQL", e))??;
            say.say(format!(
                "postgres: no DATABASE_URL given: started a throwaway cluster at {}",
                cluster.url
            ));
            (cluster.url.clone(), Some(cluster))
        }
    };
    let played = on_server(&args, &server_url, &say, &shutdown).await;
    match cluster {
        Some(cluster) => {
            let stopped = tokio::task::spawn_blocking(move || cluster.stop())
                .await
                .map_err(|e| DevnetError::local("stop the throwaway PostgreSQL", e))
                .and_then(|s| s);
            if stopped.is_ok() {
                say.say("postgres: stopped and removed the throwaway cluster");
            }
            played.and(stopped)
        }
        None => played,
    }
}

async fn on_server(
    args: &DevnetArgs,
    server_url: &str,
    say: &Narrator,
    shutdown: &Shutdown,
) -> Result<(), DevnetError> {
    let db = DevnetDatabase::create(server_url).await?;
    say.say(format!("postgres: created database {}", db.name));
    let played = on_database(args, &db, say, shutdown).await;
    if args.keep_database {
        say.say(format!("postgres: kept database {}", db.name));
        return played;
    }
    let dropped = db.drop_database().await;
    if dropped.is_ok() {
        say.say(format!("postgres: dropped database {}", db.name));
    }
    played.and(dropped)
}

async fn on_database(
    args: &DevnetArgs,
    db: &DevnetDatabase,
    say: &Narrator,
    shutdown: &Shutdown,
) -> Result<(), DevnetError> {
    let pool = connect_and_migrate(&db.url).await?;
    let chain = DevnetChain::start().await?;
    let params = setup::params()?;
    let contexts = setup::contexts();
    let round_interval = Duration::from_millis(args.round_interval_ms);
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .map_err(|e| DevnetError::local("bind the node's gRPC port", e))?;
    let node = RunningNode::start(NodeSetup {
        pool: pool.clone(),
        params: setup::params_versions()?,
        contexts: contexts.clone(),
        finality: setup::finality_config(round_interval)?,
        backend: chain.backend(),
        network: Network::Regtest,
        poll_interval: setup::FOLLOW_INTERVAL,
        stall_timeout: crate::node::follower::DEFAULT_STALL_TIMEOUT,
        listener,
    })
    .await?;
    say.say(format!(
        "bitcoin: embedded regtest chain (Bitcoin Core consensus), JSON-RPC on {}",
        chain.rpc_addr()
    ));
    say.say(format!(
        "node: staking + finality on gRPC {}, a round every {} ms; covenant {}-of-{}, k = {}, \
         T = {} blocks, U = {} blocks, slashing {}% to {}",
        node.addr,
        args.round_interval_ms,
        setup::COVENANT_QUORUM,
        setup::COVENANT_MEMBERS,
        setup::CONFIRMATION_DEPTH,
        setup::STAKING_TIME,
        setup::UNBONDING_TIME,
        setup::SLASHING_RATE_BPS / 100,
        setup::slashing_address()
    ));
    let played = match World::connect(&chain, node.addr, params, contexts).await {
        Ok(mut world) => {
            // On Ctrl-C or SIGTERM the story stops where it is; the node, the chain and the
            // database are still stopped and dropped below.
            let played = tokio::select! {
                played = world.play(say, !args.no_story) => played,
                _ = shutdown.wait() => Err(DevnetError::Interrupted),
            };
            let played = match played {
                Ok(roster) if args.keep_running => {
                    let network = localnet::Network {
                        args,
                        chain: &chain,
                        node: node.addr,
                        channel: world.channel.clone(),
                        verifiers: &roster.keys,
                        database: &db.name,
                        say,
                    };
                    localnet::keep_running(network, shutdown).await
                }
                other => other.map(|_| ()),
            };
            // The node stops gracefully only once no party holds a stream open.
            world.hang_up();
            played
        }
        Err(e) => Err(e),
    };
    let stopped = match tokio::time::timeout(STOP_PATIENCE, node.stop()).await {
        Ok(stopped) => stopped.map_err(DevnetError::from),
        Err(_) => Err(DevnetError::Timeout {
            what: "the node stopping".to_owned(),
            after: STOP_PATIENCE,
        }),
    };
    pool.close().await;
    chain.stop();
    played.and(stopped)
}

/// Everything the parties share: their connections and the network's rules.
struct World<'a> {
    chain: &'a DevnetChain,
    /// The connection to the node, for the role components' node clients.
    channel: Channel,
    staking: StakingClient<Channel>,
    finality: FinalityClient<Channel>,
    bitcoin: RpcBackend,
    params: Params,
    contexts: SigningContexts,
    reports: Option<mpsc::UnboundedReceiver<VoteReport>>,
    daemons: Vec<tokio::task::JoinHandle<()>>,
    /// Rounds each verifier's vote was counted in, and what went wrong in daemons.
    counted: BTreeMap<u64, usize>,
    daemon_errors: Vec<String>,
}

fn deadline(what: impl Into<String>) -> impl Fn() -> Result<(), DevnetError> {
    let until = Instant::now() + PATIENCE;
    let what = what.into();
    move || {
        if Instant::now() > until {
            Err(DevnetError::Timeout {
                what: what.clone(),
                after: PATIENCE,
            })
        } else {
            Ok(())
        }
    }
}

fn btc(a: Amount) -> String {
    format!("{} BTC", a.to_btc())
}

fn status_name(s: pb::DelegationStatus) -> &'static str {
    s.as_str_name()
        .strip_prefix("DELEGATION_STATUS_")
        .unwrap_or("UNKNOWN")
}

impl<'a> World<'a> {
    async fn connect(
        chain: &'a DevnetChain,
        addr: SocketAddr,
        params: Params,
        contexts: SigningContexts,
    ) -> Result<World<'a>, DevnetError> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| DevnetError::local("read the node's address", e))?
            .connect()
            .await
            .map_err(|e| DevnetError::refused("devnet", format!("cannot reach the node: {e}")))?;
        Ok(World {
            chain,
            staking: StakingClient::new(channel.clone()),
            finality: FinalityClient::new(channel.clone()),
            channel,
            bitcoin: chain.client()?,
            params,
            contexts,
            reports: None,
            daemons: Vec::new(),
            counted: BTreeMap::new(),
            daemon_errors: Vec::new(),
        })
    }

    /// Stops the verifier daemons and drops every connection to the node.
    fn hang_up(self) {
        for daemon in &self.daemons {
            daemon.abort();
        }
    }

    /// Registers the verifiers and starts their daemons, then plays the story when `story`.
    async fn play(&mut self, say: &Narrator, story: bool) -> Result<Roster, DevnetError> {
        let equivocate = Arc::new(AtomicU64::new(0));
        let roster = self.start_verifiers(say, &equivocate).await?;
        if !story {
            return Ok(roster);
        }
        let (mut stakers, sequencer) = self.fund_parties(say, &roster).await?;
        self.register_stakes(say, &mut stakers, &roster).await?;
        self.co_sign(say, &stakers).await?;
        self.activate(say, &stakers, &roster).await?;
        let (anchored, sequencer) = self.first_round(say, sequencer, &roster).await?;
        let slashed = self
            .equivocation(say, &sequencer, &equivocate, &stakers, &roster)
            .await?;
        let checkpoints = Checkpoints {
            node: GrpcNode::from_channel(self.channel.clone()),
            chain: self.chain,
            bitcoin: self.chain.client()?,
            sequencer: &sequencer,
        };
        let genesis = checkpoints.genesis(say, &roster).await?;
        let now = self.latest_round().await?;
        let (_, c1) = checkpoints
            .checkpoint(say, &roster, genesis.outpoint, now)
            .await?;
        let unbonded = self.unbond(say, &stakers, &roster).await?;
        // The unbonded stake is gone from the rounds closed from now on: the next checkpoint
        // hands the output to a changed set.
        let now = self.latest_round().await?;
        let (c2_round, _) = checkpoints
            .checkpoint(say, &roster, bitcoin::OutPoint::new(c1, 0), now)
            .await?;
        let read = checkpoints.read(say, &genesis).await?;
        if read != c2_round {
            return Err(DevnetError::unexpected(
                "reader",
                format!("latest checkpoint round {c2_round}"),
                read.to_string(),
            ));
        }
        self.summary(say, anchored, slashed, unbonded, read).await?;
        Ok(roster)
    }

    /// Verifiers register, commit randomness and start their voting daemons.
    async fn start_verifiers(
        &mut self,
        say: &Narrator,
        equivocate: &Arc<AtomicU64>,
    ) -> Result<Roster, DevnetError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut keys = Vec::new();
        for (i, name) in setup::VERIFIER_NAMES.into_iter().enumerate() {
            let v = Verifier::new(name, self.contexts.clone(), self.channel.clone()).await?;
            v.register(&mut self.staking).await?;
            let (first, last) = v.commit().await?;
            say.say(format!(
                "verifier {name}: registered key {} with a BIP-340 proof of possession; \
                 committed randomness for rounds {first}..={last}",
                short(&v.key())
            ));
            keys.push(v.key());
            // Only the equivocator listens to the flag.
            let flag = if i == setup::EQUIVOCATOR {
                equivocate.clone()
            } else {
                Arc::new(AtomicU64::new(0))
            };
            let daemon = v.spawn(flag, tx.clone());
            self.daemons.push(daemon);
        }
        self.reports = Some(rx);
        Ok(Roster { keys })
    }

    /// Wallets are funded by mined coinbases and synced over JSON-RPC.
    async fn fund_parties(
        &mut self,
        say: &Narrator,
        roster: &Roster,
    ) -> Result<(Vec<Staker>, Sequencer), DevnetError> {
        let mut stakers = Vec::new();
        let versions = setup::params_versions()?;
        for (i, (verifier, value)) in setup::STAKES.into_iter().enumerate() {
            let key = roster
                .keys
                .get(verifier)
                .ok_or_else(|| DevnetError::refused("devnet", "stake to an unknown verifier"))?;
            stakers.push(
                Staker::new(
                    i + 1,
                    *key,
                    value,
                    versions.clone(),
                    self.contexts.clone(),
                    self.channel.clone(),
                    self.chain.client()?,
                )
                .await?,
            );
        }
        let sequencer = Sequencer::new(
            self.contexts.clone(),
            Arc::new(GrpcNode::from_channel(self.channel.clone())),
            self.chain.client()?,
            self.bitcoin.client(),
        )
        .await?;
        for s in &stakers {
            let address = s.receive_address().await?;
            self.chain.mine(1, &address.script_pubkey()).await?;
        }
        let address = sequencer.receive_address().script_pubkey();
        self.chain.mine(1, &address).await?;
        let (_, tip) = self.chain.mine(100, &setup::miner_script()).await?;
        say.say(format!(
            "bitcoin: mined {tip} blocks; one coinbase each to the {} stakers' and the sequencer's \
             BDK wallets, now mature",
            stakers.len()
        ));
        sequencer.sync().await?;
        for s in &stakers {
            let spendable = s.sync().await?;
            say.say(format!(
                "{}: fiamma-staker component; wallet synced over JSON-RPC (bdk_bitcoind_rpc), {} \
                 spendable",
                s.name,
                btc(spendable)
            ));
        }
        Ok((stakers, sequencer))
    }

    /// Each staker builds and signs its staking transaction, and registers the delegation.
    async fn register_stakes(
        &mut self,
        say: &Narrator,
        stakers: &mut [Staker],
        roster: &Roster,
    ) -> Result<(), DevnetError> {
        for s in stakers.iter_mut() {
            let txid = s.stake().await?;
            let d = self.delegation(&txid).await?;
            let (version, status) = (d.params_version, d.status());
            if status != pb::DelegationStatus::Pending {
                return Err(DevnetError::unexpected(
                    "CreateDelegation",
                    "PENDING",
                    status_name(status),
                ));
            }
            say.say(format!(
                "{}: staking tx {txid} locks {} for verifier {} (T = {} blocks); \
                 registration checked locally, sent: {} (params v{version})",
                s.name,
                btc(s.value),
                roster.name(&s.verifier),
                setup::STAKING_TIME,
                status_name(status)
            ));
        }
        Ok(())
    }

    async fn status(&mut self, txid: &str) -> Result<pb::DelegationStatus, DevnetError> {
        Ok(self.delegation(txid).await?.status())
    }

    async fn delegation(&mut self, txid: &str) -> Result<pb::Delegation, DevnetError> {
        self.staking
            .delegation(pb::DelegationRequest {
                staking_txid: txid.to_owned(),
            })
            .await
            .map_err(|s| DevnetError::rpc("devnet", "Delegation", &s))?
            .into_inner()
            .delegation
            .ok_or_else(|| DevnetError::refused("devnet", format!("no delegation {txid}")))
    }

    /// The committee checks and co-signs every pending delegation.
    async fn co_sign(&mut self, say: &Narrator, stakers: &[Staker]) -> Result<(), DevnetError> {
        let committee =
            covenant::committee(&self.params, &self.contexts, self.channel.clone()).await?;
        for m in &committee {
            let report = m.step().await?;
            let signed = report.count(|o| matches!(o, Outcome::Signed(_)));
            if signed == 0 {
                say.say(format!(
                    "{} ({}): nothing pending, the quorum was reached without it",
                    m.name,
                    short(&m.key)
                ));
                continue;
            }
            let verified = report.count(|o| {
                matches!(o, Outcome::Signed(ack) if ack.status == pb::DelegationStatus::Verified)
            });
            say.say(format!(
                "{} ({}): validate_delegation passed for {} pending delegations; adaptor-signed \
                 their slashing txs and signed their unbonding txs ({} now VERIFIED)",
                m.name,
                short(&m.key),
                signed,
                verified
            ));
        }
        for s in stakers {
            let txid = s.staking_txid()?;
            let d = self.delegation(&txid).await?;
            if d.status() != pb::DelegationStatus::Verified
                || d.covenant_sigs.len() < setup::COVENANT_QUORUM as usize
            {
                return Err(DevnetError::unexpected(
                    "covenant quorum",
                    format!("{txid} VERIFIED with {} signatures", setup::COVENANT_QUORUM),
                    format!("{} with {}", status_name(d.status()), d.covenant_sigs.len()),
                ));
            }
        }
        say.say(format!(
            "node: all {} delegations VERIFIED ({} of {} covenant signatures each)",
            stakers.len(),
            setup::COVENANT_QUORUM,
            setup::COVENANT_MEMBERS
        ));
        Ok(())
    }

    /// Stakers broadcast; blocks are mined; the node's follower activates the delegations.
    async fn activate(
        &mut self,
        say: &Narrator,
        stakers: &[Staker],
        roster: &Roster,
    ) -> Result<(), DevnetError> {
        // The component broadcasts its staking transaction on its first step after the
        // committee's quorum, never before.
        for s in stakers {
            let txid = s
                .step_until("broadcast the staking tx", PATIENCE, |a| match a {
                    Action::Broadcast(txid) => Some(*txid),
                    _ => None,
                })
                .await?;
            say.say(format!(
                "{}: its step saw the delegation VERIFIED and broadcast staking tx {txid}",
                s.name
            ));
        }
        let (_, tip) = self
            .chain
            .mine(1 + setup::CONFIRMATION_DEPTH, &setup::miner_script())
            .await?;
        let txids: Vec<String> = stakers
            .iter()
            .map(Staker::staking_txid)
            .collect::<Result<_, _>>()?;
        let expired = deadline("delegations ACTIVE");
        loop {
            let mut active = 0;
            for t in &txids {
                if self.status(t).await? == pb::DelegationStatus::Active {
                    active += 1;
                }
            }
            if active == txids.len() {
                break;
            }
            expired()?;
            tokio::time::sleep(POLL).await;
        }
        say.say(format!(
            "bitcoin: mined to height {tip}; the node's follower saw the staking txs {}-deep: \
             {} delegations ACTIVE",
            setup::CONFIRMATION_DEPTH,
            txids.len()
        ));
        for s in stakers {
            s.step_until("see its delegation ACTIVE", PATIENCE, |a| {
                (*a == Action::Active).then_some(())
            })
            .await?;
        }
        say.say(format!(
            "stakers: each fiamma-staker's step saw its delegation ACTIVE ({} of {})",
            stakers.len(),
            stakers.len()
        ));
        self.print_power(say, tip, roster).await
    }

    async fn print_power(
        &mut self,
        say: &Narrator,
        height: u32,
        roster: &Roster,
    ) -> Result<(), DevnetError> {
        let table = self
            .staking
            .voting_power_table(pb::VotingPowerTableRequest { btc_height: height })
            .await
            .map_err(|s| DevnetError::rpc("devnet", "VotingPowerTable", &s))?
            .into_inner();
        let entries: Vec<String> = table
            .entries
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    roster.name_of(&e.verifier_btc_pk),
                    btc(Amount::from_sat(e.power_sat.unsigned_abs()))
                )
            })
            .collect();
        say.say(format!(
            "node: voting power at height {height}: {} (total {})",
            entries.join(", "),
            btc(Amount::from_sat(table.total_power_sat.unsigned_abs()))
        ));
        Ok(())
    }

    /// The newest closed round.
    async fn latest_round(&mut self) -> Result<u64, DevnetError> {
        Ok(self
            .finality
            .rounds(fpb::RoundsRequest {
                from_round: 1,
                limit: 1,
            })
            .await
            .map_err(|s| DevnetError::rpc("devnet", "Rounds", &s))?
            .into_inner()
            .latest_round)
    }

    async fn round(&mut self, h: u64) -> Result<Option<fpb::Round>, DevnetError> {
        match self
            .finality
            .round(fpb::RoundRequest {
                round: h,
                ..Default::default()
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().round),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(DevnetError::rpc("devnet", "Round", &s)),
        }
    }

    /// Waits until round `h` is closed (and, with `final_`, final); returns it.
    async fn wait_round(&mut self, h: u64, final_: bool) -> Result<fpb::Round, DevnetError> {
        let what = if final_ { "final" } else { "closed" };
        let expired = deadline(format!("round {h} {what}"));
        loop {
            if let Some(r) = self.round(h).await? {
                if !final_ || r.status() == fpb::RoundStatus::Final {
                    return Ok(r);
                }
                if r.status() == fpb::RoundStatus::Expired {
                    return Err(DevnetError::unexpected(
                        "finality",
                        format!("round {h} FINAL"),
                        "EXPIRED",
                    ));
                }
            }
            expired()?;
            tokio::time::sleep(POLL).await;
        }
    }

    /// Reads the daemons' reports until each of `voters` reported on round `h`.
    async fn reports_for(&mut self, h: u64, voters: usize) -> Result<Vec<VoteReport>, DevnetError> {
        let mut rx = self
            .reports
            .take()
            .ok_or_else(|| DevnetError::refused("devnet", "verifier reports unavailable"))?;
        let mut found = Vec::new();
        let until = tokio::time::Instant::now() + PATIENCE;
        let result = loop {
            if found.len() == voters {
                break Ok(found);
            }
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(r)) => {
                    self.tally(&r);
                    if r.round == h {
                        found.push(r);
                    }
                }
                Ok(None) => {
                    break Err(DevnetError::refused(
                        "devnet",
                        "the verifier daemons stopped",
                    ))
                }
                Err(_) => {
                    break Err(DevnetError::Timeout {
                        what: format!("{voters} verifiers' votes on round {h}"),
                        after: PATIENCE,
                    })
                }
            }
        };
        self.reports = Some(rx);
        result
    }

    fn tally(&mut self, r: &VoteReport) {
        match &r.outcome {
            Ok(outcomes) => {
                if outcomes.last() == Some(&fpb::VoteOutcome::Counted) {
                    *self.counted.entry(r.round).or_default() += 1;
                }
            }
            Err(e) => self
                .daemon_errors
                .push(format!("verifier {} in round {}: {e}", r.verifier, r.round)),
        }
    }

    /// Drains reports already sent, without waiting.
    fn drain_reports(&mut self) {
        if let Some(mut rx) = self.reports.take() {
            while let Ok(r) = rx.try_recv() {
                self.tally(&r);
            }
            self.reports = Some(rx);
        }
    }

    fn describe_round(r: &fpb::Round) -> String {
        let results: Vec<String> = r
            .results
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    hex::encode(p.proof_id.get(..4).unwrap_or_default()),
                    if p.valid { "valid" } else { "INVALID" }
                )
            })
            .collect();
        let results = if results.is_empty() {
            "no proofs".to_owned()
        } else {
            results.join(", ")
        };
        format!(
            "round {}: [{results}], round hash {}…, active set {} verifiers / {}",
            r.round,
            hex::encode(r.round_hash.get(..8).unwrap_or_default()),
            r.active_set.len(),
            btc(Amount::from_sat(r.total_power_sat))
        )
    }

    /// The sequencer's proofs in one round, re-verified and voted on by every verifier; the
    /// round is final and anchored on Bitcoin. Returns the anchored round.
    async fn first_round(
        &mut self,
        say: &Narrator,
        sequencer: Sequencer,
        roster: &Roster,
    ) -> Result<(u64, Sequencer), DevnetError> {
        let h = self.submit_pair(say, &sequencer).await?;
        let round = self.wait_round(h, false).await?;
        say.say(format!("node: closed {}", Self::describe_round(&round)));
        let verdicts: Vec<bool> = round.results.iter().map(|r| r.valid).collect();
        if verdicts != [true, false] {
            return Err(DevnetError::unexpected(
                "round verdicts",
                "[valid, invalid]",
                format!("{verdicts:?}"),
            ));
        }
        let voters = round.active_set.len();
        for r in self.reports_for(h, voters).await? {
            let outcome = r
                .outcome
                .map_err(|e| DevnetError::refused(format!("verifier {}", r.verifier), e))?;
            if outcome != [fpb::VoteOutcome::Counted] {
                return Err(DevnetError::unexpected(
                    "vote",
                    format!("verifier {} COUNTED", r.verifier),
                    format!("{outcome:?}"),
                ));
            }
            say.say(format!(
                "verifier {}: re-verified {} proofs itself ({} valid), recomputed the round hash \
                 (= node's), EOTS vote: COUNTED",
                r.verifier, r.proofs.0, r.proofs.1
            ));
        }
        let round = self.wait_round(h, true).await?;
        let checked = sequencer.check_certificate(h).await?;
        let signer_names: Vec<&str> = round
            .certificate
            .iter()
            .flat_map(|c| c.entries.iter())
            .map(|e| roster.name_of(&e.verifier_btc_pk))
            .collect();
        say.say(format!(
            "node: round {h} FINAL, certificate by {} ({} of {}), sha256 {}…",
            signer_names.join(", "),
            btc(Amount::from_sat(checked.power.0)),
            btc(Amount::from_sat(checked.power.1)),
            hex::encode(&checked.digest[..8])
        ));
        let anchor = Anchor {
            round: h,
            round_hash: RoundHash(
                <[u8; 32]>::try_from(round.round_hash.as_slice())
                    .map_err(|_| DevnetError::refused("sequencer", "round hash is not 32 bytes"))?,
            ),
            certificate_hash: checked.digest,
        };
        sequencer.sync().await?;
        let txid = sequencer.anchor(h).await?;
        let (_, tip) = self.chain.mine(1, &setup::miner_script()).await?;
        let mined = self.check_mined(txid, "anchor tx").await?;
        let on_chain = self
            .chain
            .transaction(&txid)
            .await?
            .output
            .iter()
            .find_map(|o| Anchor::from_script(&o.script_pubkey).ok());
        if on_chain != Some(anchor) {
            return Err(DevnetError::unexpected(
                "anchor",
                format!("round {h} anchored in {txid}"),
                format!("{on_chain:?}"),
            ));
        }
        say.say(format!(
            "sequencer: checked the certificate ({} signatures), anchor tx {txid} mined at height \
             {mined} (tip {tip}): OP_RETURN \"fmma\" round {h}, round hash, certificate digest",
            checked.signers
        ));
        Ok((h, sequencer))
    }

    /// Publishes and submits the real proof and the corrupted one; returns their round. When
    /// a round closes between the two submissions they land in two rounds; once both are
    /// closed the pair is submitted again.
    async fn submit_pair(
        &mut self,
        say: &Narrator,
        sequencer: &Sequencer,
    ) -> Result<u64, DevnetError> {
        const ATTEMPTS: usize = 3;
        let mut rounds = (0, 0);
        for _ in 0..ATTEMPTS {
            let (valid, h) = sequencer.submit(fiamma_proof()?).await?;
            let (invalid, h2) = sequencer.submit(corrupted_proof()?).await?;
            if h == h2 {
                say.say(format!(
                    "sequencer: submitted the Fiamma Groth16/BN254 proof {}… and a corrupted copy \
                     {}… for round {h}",
                    hex::encode(&valid[..4]),
                    hex::encode(&invalid[..4])
                ));
                return Ok(h);
            }
            say.say(format!(
                "sequencer: round {h} closed between its two submissions; submitting both again"
            ));
            self.wait_round(h2, false).await?;
            rounds = (h, h2);
        }
        Err(DevnetError::unexpected(
            "SubmitProof",
            "both proofs in one round",
            format!(
                "rounds {} and {} in each of {ATTEMPTS} attempts",
                rounds.0, rounds.1
            ),
        ))
    }

    async fn check_mined(&self, txid: Txid, what: &str) -> Result<u32, DevnetError> {
        self.chain.mined_at(&txid).await?.ok_or_else(|| {
            DevnetError::unexpected("mining", format!("{what} {txid} mined"), "not in a block")
        })
    }

    /// One verifier equivocates; the node slashes it and publishes its key; the slasher
    /// slashes its stake on Bitcoin; its power is gone in the next round. Returns the slashed
    /// verifier's name and the amount slashed.
    async fn equivocation(
        &mut self,
        say: &Narrator,
        sequencer: &Sequencer,
        equivocate: &Arc<AtomicU64>,
        stakers: &[Staker],
        roster: &Roster,
    ) -> Result<(&'static str, Amount), DevnetError> {
        let name = setup::VERIFIER_NAMES[setup::EQUIVOCATOR];
        let culprit = roster
            .keys
            .get(setup::EQUIVOCATOR)
            .copied()
            .ok_or_else(|| DevnetError::refused("devnet", "no equivocator"))?;
        let h = self.submit_pair(say, sequencer).await?;
        equivocate.store(h, Ordering::SeqCst);
        let round = self.wait_round(h, false).await?;
        say.say(format!("node: closed {}", Self::describe_round(&round)));
        let reports = self.reports_for(h, round.active_set.len()).await?;
        let report = reports.iter().find(|r| r.verifier == name).ok_or_else(|| {
            DevnetError::refused("devnet", format!("verifier {name} did not vote"))
        })?;
        let outcome = report
            .outcome
            .clone()
            .map_err(|e| DevnetError::refused(format!("verifier {name}"), e))?;
        if outcome != [fpb::VoteOutcome::Counted, fpb::VoteOutcome::Equivocation] {
            return Err(DevnetError::unexpected(
                "equivocation",
                "COUNTED then EQUIVOCATION",
                format!("{outcome:?}"),
            ));
        }
        say.say(format!(
            "verifier {name}: signed round {h} twice with one randomness (the honest hash through \
             its daemon, then, with its raw key around the daemon's slashing protection, a hash \
             calling the corrupted proof valid): node answered COUNTED, then EQUIVOCATION"
        ));
        let refusal = report.protection.clone().unwrap_or_default();
        if !refusal.contains("slashing protection") {
            return Err(DevnetError::unexpected(
                "equivocation",
                "the daemon's own slashing protection refusing the second message",
                refusal,
            ));
        }
        say.say(format!(
            "verifier {name}: its daemon, asked for the same second message, refused: {refusal}"
        ));
        let evidence = self
            .finality
            .evidence(fpb::EvidenceRequest {
                verifier_btc_pk: culprit.serialize().to_vec(),
            })
            .await
            .map_err(|s| DevnetError::rpc("devnet", "Evidence", &s))?
            .into_inner()
            .evidence
            .ok_or_else(|| DevnetError::refused("devnet", "no evidence served"))?;
        let slasher =
            slasher::DevnetSlasher::new(self.channel.clone(), self.chain.client()?, 1).await?;
        slasher.published_key(&culprit).await?;
        say.say(format!(
            "node: verifier {name} SLASHED in round {}; evidence = its two votes on round {}; \
             extracted secret key published (checked: it is the key of {})",
            evidence.slashed_in_round,
            evidence.round,
            short(&culprit)
        ));

        let slashed = slasher.slash().await?;
        if slashed.is_empty() {
            return Err(DevnetError::unexpected(
                "slasher",
                "a delegation to slash",
                "none unspent",
            ));
        }
        for s in &slashed {
            say.say(format!(
                "slasher: delegation {}: decrypted {} covenant adaptor signatures with the key, \
                 signed as the verifier, broadcast its {} {}",
                s.staking_txid,
                setup::COVENANT_QUORUM,
                s.which,
                s.slashing_txid
            ));
        }
        let (_, tip) = self.chain.mine(1, &setup::miner_script()).await?;
        let mut total = Amount::ZERO;
        let slashing_address = setup::slashing_address();
        for s in &slashed {
            let at = self.check_mined(s.slashing_txid, "slashing tx").await?;
            let to = Address::from_script(&s.to, Network::Regtest)
                .map_or_else(|_| s.to.to_hex_string(), |a| a.to_string());
            if s.to != slashing_address.script_pubkey() {
                return Err(DevnetError::unexpected(
                    "slashing",
                    slashing_address.to_string(),
                    to,
                ));
            }
            total += s.slashed;
            say.say(format!(
                "bitcoin: slashing tx {} mined at height {at} (tip {tip}), accepted by Bitcoin \
                 Core's consensus engine: {} to the slashing address {to}, {} to the staker's \
                 change output (spendable after U = {} blocks)",
                s.slashing_txid,
                btc(s.slashed),
                btc(s.change),
                setup::UNBONDING_TIME
            ));
        }
        let confirmed = slasher.confirmed().await?;
        if let Some(s) = slashed
            .iter()
            .find(|s| !confirmed.iter().any(|(txid, _)| *txid == s.staking_txid))
        {
            return Err(DevnetError::unexpected(
                "slasher",
                format!(
                    "delegation {} slashed 1 deep on its next pass",
                    s.staking_txid
                ),
                "not counted as slashed",
            ));
        }
        say.say(format!(
            "slasher: its next pass finds {} delegation(s) slashed k = 1 deep; nothing left to do",
            confirmed.len()
        ));
        // The node follows the spend: the slashed stake is no longer bonded.
        for s in &slashed {
            let txid = s.staking_txid.to_string();
            self.wait_status(&txid, pb::DelegationStatus::Unbonded)
                .await?;
        }
        let staker_names: Vec<&str> = stakers
            .iter()
            .filter(|s| s.verifier == culprit)
            .map(|s| s.name.as_str())
            .collect();
        say.say(format!(
            "node: follower saw the staking output of {} spent by the slashing tx: UNBONDED",
            staker_names.join(", ")
        ));
        let next = self
            .wait_round(evidence.slashed_in_round + 1, false)
            .await?;
        let me = culprit.serialize();
        if next.active_set.iter().any(|e| e.verifier_btc_pk == me) {
            return Err(DevnetError::unexpected(
                "slashing",
                format!(
                    "verifier {name} out of the active set of round {}",
                    next.round
                ),
                "still in it",
            ));
        }
        say.say(format!(
            "node: {}; verifier {name} has no power",
            Self::describe_round(&next)
        ));
        Ok((name, total))
    }

    async fn wait_status(
        &mut self,
        txid: &str,
        want: pb::DelegationStatus,
    ) -> Result<pb::Delegation, DevnetError> {
        let expired = deadline(format!("delegation {txid} {}", status_name(want)));
        loop {
            let d = self.delegation(txid).await?;
            if d.status() == want {
                return Ok(d);
            }
            expired()?;
            tokio::time::sleep(POLL).await;
        }
    }

    /// A staker of an honest verifier unbonds with the co-signed unbonding transaction.
    async fn unbond(
        &mut self,
        say: &Narrator,
        stakers: &[Staker],
        roster: &Roster,
    ) -> Result<(String, Amount), DevnetError> {
        let s = stakers
            .get(setup::UNBONDER)
            .ok_or_else(|| DevnetError::refused("devnet", "no unbonding staker"))?;
        let value = s.request_unbond().await?;
        let txid = s
            .step_until("broadcast the unbonding tx", PATIENCE, |a| match a {
                Action::Unbonded(txid) => Some(*txid),
                _ => None,
            })
            .await?;
        say.say(format!(
            "{}: asked to unbond; its step broadcast unbonding tx {txid} (its signature + the \
             committee's unbonding signatures served by the node): {} into the unbonding output",
            s.name,
            btc(value)
        ));
        let (_, tip) = self.chain.mine(1, &setup::miner_script()).await?;
        let at = self.check_mined(txid, "unbonding tx").await?;
        let staking_txid = s.staking_txid()?;
        let d = self
            .wait_status(&staking_txid, pb::DelegationStatus::Unbonded)
            .await?;
        if d.spending_txid != txid.to_string() {
            return Err(DevnetError::unexpected(
                "unbonding",
                format!("spent by {txid}"),
                d.spending_txid,
            ));
        }
        say.say(format!(
            "bitcoin: unbonding tx mined at height {at}; node: delegation {staking_txid} UNBONDED \
             (spent by {txid})"
        ));
        self.print_power(say, tip, roster).await?;
        Ok((s.name.clone(), s.value))
    }

    async fn summary(
        &mut self,
        say: &Narrator,
        anchored: u64,
        slashed: (&'static str, Amount),
        unbonded: (String, Amount),
        checkpoint: u64,
    ) -> Result<(), DevnetError> {
        self.drain_reports();
        if let Some(e) = self.daemon_errors.first() {
            return Err(DevnetError::refused("verifier daemon", e));
        }
        let rounds = self
            .finality
            .rounds(fpb::RoundsRequest {
                from_round: 1,
                limit: 1000,
            })
            .await
            .map_err(|s| DevnetError::rpc("devnet", "Rounds", &s))?
            .into_inner()
            .rounds;
        let final_rounds: Vec<u64> = rounds
            .iter()
            .filter(|r| r.status() == fpb::RoundStatus::Final)
            .map(|r| r.round)
            .collect();
        let voted: usize = self.counted.values().sum();
        let listed: Vec<String> = final_rounds.iter().map(u64::to_string).collect();
        say.say(format!(
            "summary: {} rounds closed, final: {} ({voted} verifier votes counted); round \
             {anchored} anchored on Bitcoin; verifier {} slashed, {} of its stake to the slashing \
             address; {} unbonded {}; checkpoint chain checked by Bitcoin up to round {checkpoint}",
            rounds.len(),
            listed.join(", "),
            slashed.0,
            btc(slashed.1),
            unbonded.0,
            btc(unbonded.1)
        ));
        if !final_rounds.contains(&anchored) {
            return Err(DevnetError::unexpected(
                "summary",
                format!("round {anchored} final"),
                format!("final rounds {final_rounds:?}"),
            ));
        }
        Ok(())
    }
}
