//! Verifier daemons on checkpoint rounds (`CHECKPOINTS.md` §13.5–13.6), end to end: the real
//! `fiamma regtest` chain, the real `fiamma node` with a `[checkpoint]` table following it over
//! JSON-RPC, real PostgreSQL, and four verifiers: three `fiamma verifier run` processes and one
//! verifier component in this process, whose first checkpoint vote is lost on its way to the
//! node (a crash between recording and sending). The genesis output is funded on the chain and
//! registered; the verifiers rebuild the candidate, sign its M, and the node's signed
//! transaction is accepted by Bitcoin Core's script interpreter spending the genesis output.
//! No verifier sends a §10 vote on a checkpoint round; a daemon killed after signing and
//! restarted signs nothing new; the component restarted after losing its vote re-sends the
//! one it recorded.

mod btc_support;
mod checkpoint_support;
mod node_finality_support;
mod node_process;
mod verifier_support;

use node_finality_support::node_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Amount, OutPoint, Sequence, TxOut};
use bitcoincore_rpc::RpcApi;
use btc_support::{unsigned, KeyWallet};
use checkpoint_support::kernel_accepts;
use fiamma::btc::{Backend, RpcBackend};
use fiamma_finality::checkpoint::CheckpointVote;
use fiamma_finality::merkle::Proof;
use fiamma_proto::client::{
    CheckpointKind, CheckpointNode, CheckpointOutputView, CheckpointRoundView, CheckpointsView,
    ClosedRoundView, Code, FinalityNode, GrpcNode, NodeError, VoteOutcome,
};
use fiamma_verifier::signer::KeystoreSigner;
use fiamma_verifier::store::{Network, VerifierStore};
use fiamma_verifier::verifier::{RoundOutcome, StepReport, Verifier};
use node_finality_support::{contexts, keypair, xonly};
use sqlx::PgPool;
use verifier_support::*;

const RPC_USER: &str = "checkpoint-daemon";
const RPC_PASSWORD: &str = "checkpoint-daemon-password";
/// N.
const INTERVAL: u64 = 4;
/// R: within 2k..=U/2 for k = 2 and the U of [`params`].
const RECOVERY_BLOCKS: u32 = 4;
/// V.
const VALUE: Amount = Amount::from_sat(1_000);
/// Milliseconds between round closings.
const ROUND_MS: u64 = 400;
/// The in-process verifier.
const COMPONENT: u8 = 4;

/// The node's params: the shared test params with U = 20 (R = 4 must be within 2k..=U/2).
fn params() -> fiamma_staking::params::Params {
    let mut p = node_support::params();
    p.unbonding_time_blocks = 20;
    p
}

/// The node's config on `db`, following the chain at `rpc_url`, with `checkpoint` appended.
fn write_node(dir: &Path, db: &str, addr: SocketAddr, rpc_url: &str, checkpoint: &str) -> PathBuf {
    node_process::write_rpc_files(
        dir,
        db,
        addr,
        &params(),
        &node_process::RpcLogin {
            url: rpc_url,
            user: RPC_USER,
            password: RPC_PASSWORD,
        },
        &format!(
            "[finality]\nround_interval_ms = {ROUND_MS}\nvote_expiry = 10\n\
             max_start_ahead = 1000\nliveness_window = 10\nliveness_min_signed = 7\n\
             jail_duration = 1000\n\n{checkpoint}"
        ),
    )
}

/// The node, with one fault injected into its checkpoint calls.
struct Faulty {
    node: GrpcNode,
    fault: Fault,
}

enum Fault {
    /// The first checkpoint vote sent is lost: it was recorded by the verifier's slashing
    /// protection and never reached the node, as when the verifier crashes between the two.
    /// The flag says it happened.
    LoseFirstVote(AtomicBool),
    /// Every scheduled checkpoint round is served as a rotation round.
    ScheduledAsRotation,
}

impl Faulty {
    fn new(node: &GrpcNode, fault: Fault) -> Arc<Self> {
        Arc::new(Faulty {
            node: node.clone(),
            fault,
        })
    }
}

pass_finality_node!(Faulty, node);
pass_staking_node!(Faulty, node);

#[async_trait]
impl CheckpointNode for Faulty {
    async fn checkpoints(&self) -> Result<Option<CheckpointsView>, NodeError> {
        self.node.checkpoints().await
    }
    async fn checkpoint_round(&self, h: u64) -> Result<Option<CheckpointRoundView>, NodeError> {
        let served = self.node.checkpoint_round(h).await?;
        Ok(served.map(|mut c| {
            if matches!(self.fault, Fault::ScheduledAsRotation)
                && c.kind == CheckpointKind::Scheduled
            {
                c.kind = CheckpointKind::Rotation;
            }
            c
        }))
    }
    async fn add_checkpoint_sig(
        &self,
        h: u64,
        vote: &CheckpointVote,
        proof: &Proof,
    ) -> Result<VoteOutcome, NodeError> {
        if let Fault::LoseFirstVote(lost) = &self.fault {
            if !lost.swap(true, Ordering::SeqCst) {
                return Err(NodeError::Status {
                    call: "AddCheckpointSig",
                    code: Code::Unavailable,
                    message: "lost on the way".into(),
                });
            }
        }
        self.node.add_checkpoint_sig(h, vote, proof).await
    }
    async fn register_checkpoint_genesis(
        &self,
        outpoint: OutPoint,
    ) -> Result<CheckpointOutputView, NodeError> {
        self.node.register_checkpoint_genesis(outpoint).await
    }
}

/// The node's log so far.
fn node_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

fn spawn_node_logged(config: &Path, log: &Path) -> Killed {
    Killed(node_process::spawn_logged(config, log))
}

fn network() -> Network {
    let c = contexts();
    Network {
        chain_id: c.chain_id,
        module_address: c.module_address,
    }
}

/// An in-process verifier with key `seed` on the store at `url`, asking `node`.
async fn component(
    seed: u8,
    url: &str,
    node: Arc<dyn fiamma_verifier::verifier::VerifierNode>,
) -> Verifier {
    let store = VerifierStore::open(url).await.expect("store");
    Verifier::new(
        test_settings(contexts()),
        Arc::new(KeystoreSigner::new(keypair(seed))),
        node,
        store,
        true,
    )
    .await
    .expect("verifier")
}

/// Steps `verifier` until a round and its outcome match `wanted` (at most `secs` s); that
/// round.
async fn step_until(
    verifier: &Verifier,
    secs: u64,
    wanted: impl Fn(u64, &RoundOutcome) -> bool,
    seen: &mut Vec<StepReport>,
) -> Option<u64> {
    for _ in 0..secs * 10 {
        if let Ok(report) = verifier.step().await {
            let hit = report
                .rounds
                .iter()
                .find(|d| wanted(d.round, &d.outcome))
                .map(|d| d.round);
            seen.push(report);
            if hit.is_some() {
                return hit;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Evaluates `$attempt` (an `Option`) every 100 ms until it is `Some`, at most `$tries` times;
/// its last value.
macro_rules! poll {
    ($tries:expr, $attempt:expr) => {{
        let mut found = None;
        for _ in 0..$tries {
            found = $attempt;
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found
    }};
}

/// The first checkpoint round from `from` on, with its closed round, that `wanted` takes.
async fn checkpoint_round_where(
    grpc: &GrpcNode,
    from: u64,
    wanted: impl Fn(&ClosedRoundView, &CheckpointRoundView) -> bool,
) -> Option<(ClosedRoundView, CheckpointRoundView)> {
    for h in checkpoint_rounds(grpc, from).await {
        let view = grpc.round(h).await.expect("round").expect("closed");
        let served = grpc
            .checkpoint_round(h)
            .await
            .expect("served")
            .expect("a checkpoint round");
        if wanted(&view, &served) {
            return Some((view, served));
        }
    }
    None
}

/// The closed rounds from `from` on that the node serves as checkpoint rounds.
async fn checkpoint_rounds(node: &GrpcNode, from: u64) -> BTreeSet<u64> {
    node.rounds(from, 1000)
        .await
        .expect("rounds")
        .iter()
        .filter(|r| r.checkpoint != CheckpointKind::None)
        .map(|r| r.round)
        .collect()
}

#[sqlx::test]
async fn verifiers_sign_checkpoints_bitcoin_accepts_and_never_vote_on_them(pool: PgPool) {
    let dir = tempfile::tempdir().expect("dir");
    let port = node_process::free_port().port();
    let _chain = Killed(node_process::spawn_regtest(port, RPC_USER, RPC_PASSWORD));
    let rpc_url = format!("http://127.0.0.1:{port}");
    let bitcoin = RpcBackend::new(&rpc_url, RPC_USER, RPC_PASSWORD).expect("backend");
    poll!(100, bitcoin.tip().await.ok()).expect("fiamma regtest serves");
    let rpc = bitcoin.client();
    let wallet = KeyWallet::new(0x5e);
    rpc.generate_to_address(101, &wallet.address).expect("mine");

    // First without checkpoints: the verifiers register, stake and become active.
    let addr = node_process::free_port();
    let db = node_process::database_url(&pool);
    let node_dir = dir.path().join("node");
    let log = dir.path().join("node.log");
    let node_process = spawn_node_logged(&write_node(&node_dir, &db, addr, &rpc_url, ""), &log);
    let mut client = finality(addr).await;
    let configs = registered_and_staked(dir.path(), 1..=4, addr, &pool).await;
    let mut daemons: Vec<Option<Killed>> = configs[..3]
        .iter()
        .map(|c| Some(Killed(spawn_verifier(c, true))))
        .collect();
    let component_url = fiamma_role::store::sqlite_url(&dir.path().join("v4").join("component.db"));
    let grpc = GrpcNode::connect_lazy(&format!("http://{addr}"), Duration::from_secs(5))
        .expect("endpoint");
    let losing = Faulty::new(&grpc, Fault::LoseFirstVote(AtomicBool::new(false)));
    let first = component(COMPONENT, &component_url, losing).await;
    let mut reports = Vec::new();
    // Steps until the four are in one round's active set.
    let full = poll!(300, {
        let _ = first.step().await;
        let Ok(h) = grpc.latest_round().await else {
            panic!("the node is gone: {}", node_log(&log));
        };
        (h > 0 && round(&mut client, h).await.active_set.len() == 4).then_some(h)
    });
    assert!(full.is_some(), "the four verifiers never became active");

    // The node restarts with checkpoints; h₀ a few rounds ahead, when all four are active.
    let genesis_round = current_round(&mut client).await + 6;
    drop(node_process);
    let _node = spawn_node_logged(
        &write_node(
            &node_dir,
            &db,
            addr,
            &rpc_url,
            &format!(
                "[checkpoint]\ngenesis_round = {genesis_round}\ninterval_rounds = {INTERVAL}\n\
                 recovery_blocks = {RECOVERY_BLOCKS}\nvalue_sat = {}\n",
                VALUE.to_sat()
            ),
        ),
        &log,
    );
    let mut client = finality(addr).await;
    let script = poll!(600, {
        let _ = first.step().await;
        grpc.checkpoints()
            .await
            .ok()
            .flatten()
            .and_then(|v| v.genesis_script)
    });
    let (h0, script) = script.unwrap_or_else(|| {
        panic!(
            "the node never served the genesis script: {}",
            node_log(&log)
        )
    });
    // The four were active before h₀: it is the configured round, and its set is theirs.
    assert_eq!(h0, genesis_round);
    assert_eq!(round(&mut client, h0).await.active_set.len(), 4);

    // The genesis output: V to h₀'s checkpoint output, k deep, registered.
    let coinbase_block = rpc
        .get_block(&rpc.get_block_hash(1).expect("hash"))
        .expect("block");
    let coinbase = &coinbase_block.txdata[0];
    let mut fund = unsigned(
        vec![(OutPoint::new(coinbase.compute_txid(), 0), Sequence::MAX)],
        vec![
            TxOut {
                value: VALUE,
                script_pubkey: script.clone(),
            },
            TxOut {
                value: coinbase.output[0].value - VALUE - Amount::from_sat(2_000),
                script_pubkey: wallet.script(),
            },
        ],
    );
    wallet.sign(&mut fund, &[coinbase.output[0].clone()]);
    rpc.send_raw_transaction(&fund).expect("funding accepted");
    let k = params().btc_confirmation_depth;
    rpc.generate_to_address(u64::from(k), &wallet.address)
        .expect("mine");
    let genesis = OutPoint::new(fund.compute_txid(), 0);
    let genesis_txout = fund.output[0].clone();
    let registered_genesis = poll!(300, {
        let _ = first.step().await;
        grpc.register_checkpoint_genesis(genesis).await.ok()
    });
    let registered_genesis = registered_genesis
        .unwrap_or_else(|| panic!("the node never took the genesis output: {}", node_log(&log)));
    assert_eq!(registered_genesis.outpoint, genesis);
    assert_eq!(registered_genesis.round, genesis_round);

    // The in-process verifier signs a checkpoint round; the node never gets that vote.
    let lost_round = step_until(
        &first,
        120,
        |_, o| matches!(o, RoundOutcome::Undelivered(why) if why.contains("lost on the way")),
        &mut reports,
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "the component never signed a checkpoint round: {reports:?} {}",
            node_log(&log)
        )
    });
    assert!(lost_round > genesis_round && lost_round % INTERVAL == 0);
    let network = network();
    let recorded = first
        .store()
        .signed(&network, lost_round)
        .await
        .expect("store")
        .expect("recorded before it was sent");
    drop(first);
    // Restarted on its store (the node now takes votes): it sends the recorded vote again.
    let second = component(COMPONENT, &component_url, Arc::new(grpc.clone())).await;
    let resent = step_until(
        &second,
        30,
        |_, o| matches!(o, RoundOutcome::CheckpointResent(VoteOutcome::Counted)),
        &mut reports,
    )
    .await;
    assert_eq!(resent, Some(lost_round), "{reports:?}");
    let again = second
        .store()
        .signed(&network, lost_round)
        .await
        .expect("store")
        .expect("still recorded");
    assert_eq!(again.message_hash, recorded.message_hash);
    let held = grpc
        .checkpoint_round(lost_round)
        .await
        .expect("served")
        .expect("a checkpoint round");
    let component_key = xonly(&keypair(COMPONENT));
    assert_eq!(
        held.votes
            .iter()
            .filter(|(v, _)| v.voter == component_key)
            .count(),
        1
    );

    // From here the component runs on its own, its reports kept.
    let reports = Arc::new(std::sync::Mutex::new(reports));
    let running = Arc::new(AtomicBool::new(true));
    let stepping = {
        let (reports, running) = (reports.clone(), running.clone());
        tokio::spawn(async move {
            while running.load(Ordering::SeqCst) {
                if let Ok(report) = second.step().await {
                    reports.lock().expect("reports").push(report);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // A checkpoint round becomes READY: Bitcoin Core accepts its signed transaction spending
    // the genesis output.
    let ready = poll!(
        600,
        checkpoint_round_where(&grpc, genesis_round + 1, |_, c| c
            .signed_transaction
            .is_some())
        .await
        .map(|(_, c)| c)
    );
    let ready =
        ready.unwrap_or_else(|| panic!("no checkpoint round became ready: {}", node_log(&log)));
    let h = ready.round;
    assert_eq!(ready.status, fiamma_proto::client::CheckpointStatus::Ready);
    assert_eq!(
        ready.base.outpoint, genesis,
        "nobody broadcast a checkpoint"
    );
    let signed = ready.signed_transaction.clone().expect("signed");
    assert!(
        kernel_accepts(&signed, &genesis_txout),
        "Bitcoin Core refuses the signed checkpoint {}",
        signed.compute_txid()
    );
    assert!(ready.base_weight_signed >= ready.threshold);
    eprintln!(
        "checkpoint round {h} ready: {} votes, base weight {} of {}, {} vB; the component's \
         vote on round {lost_round} lost then re-sent",
        ready.votes.len(),
        ready.base_weight_signed,
        ready.threshold,
        signed.vsize()
    );
    // Bitcoin refuses the unsigned candidate: the test can fail.
    assert!(!kernel_accepts(&ready.candidate, &genesis_txout));

    // Daemon 1 signed round h; killed and restarted, it signs nothing new.
    let daemon_key = xonly(&keypair(1));
    let votes_of_1 = |view: &CheckpointRoundView| -> Vec<CheckpointVote> {
        view.votes
            .iter()
            .filter(|(v, _)| v.voter == daemon_key)
            .map(|(v, _)| *v)
            .collect()
    };
    let before = votes_of_1(&ready);
    assert_eq!(before.len(), 1, "daemon 1 did not sign round {h}");
    drop(daemons[0].take());
    let store_1 = dir.path().join("v1").join("verifier.db");
    let hash_before = {
        let s = VerifierStore::open(&fiamma_role::store::sqlite_url(&store_1))
            .await
            .expect("store");
        s.signed(&network, h)
            .await
            .expect("read")
            .expect("recorded")
            .message_hash
    };
    daemons[0] = Some(Killed(spawn_verifier(&configs[0], false)));
    let restarted_at = current_round(&mut client).await;
    wait_for_round(&mut client, restarted_at + 4, 30).await;
    drop(daemons[0].take());
    let after = grpc
        .checkpoint_round(h)
        .await
        .expect("served")
        .expect("a checkpoint round");
    assert_eq!(votes_of_1(&after), before, "daemon 1 sent another vote");
    let s = VerifierStore::open(&fiamma_role::store::sqlite_url(&store_1))
        .await
        .expect("store");
    assert_eq!(
        s.signed(&network, h)
            .await
            .expect("read")
            .expect("recorded")
            .message_hash,
        hash_before
    );

    // Outgoing duty (§13.6.2): daemon 1 stays down until it is jailed, so it leaves the active
    // set; started again (jailed), it still signs the next checkpoint round, whose base is
    // still the genesis and so holds its key.
    let jailed = poll!(
        300,
        (record(&mut client, 1).await.status()
            == fiamma_proto::finality::v1::VerifierStatus::Jailed)
            .then_some(())
    );
    assert!(
        jailed.is_some(),
        "daemon 1 was never jailed: {}",
        node_log(&log)
    );
    let jailed_at = current_round(&mut client).await;
    daemons[0] = Some(Killed(spawn_verifier(&configs[0], false)));
    let duty = poll!(
        600,
        checkpoint_round_where(&grpc, jailed_at + 1, |view, c| {
            !view.active_set.iter().any(|(k, _)| *k == daemon_key) && !votes_of_1(c).is_empty()
        })
        .await
    );
    let (duty_round, duty) = duty.unwrap_or_else(|| {
        panic!(
            "jailed daemon 1 signed no checkpoint round after {jailed_at}: {}",
            node_log(&log)
        )
    });
    assert_eq!(duty.base.outpoint, genesis);
    assert!(
        duty_round.votes.iter().all(|v| v.vote.voter != daemon_key),
        "a §10 vote by jailed daemon 1"
    );
    drop(daemons[0].take());
    eprintln!(
        "jailed at round {jailed_at}, daemon 1 signed checkpoint round {} outside its active set",
        duty.round
    );

    // Daemon 2 stops; its key and store (copied) run in this process behind a node that calls
    // a scheduled checkpoint round a rotation round: it recomputes the kind, records the
    // disagreement and signs nothing for that round.
    drop(daemons[1].take());
    let store_2 = dir.path().join("v2").join("verifier.db");
    let liar_store = dir.path().join("v2").join("liar.db");
    copy_store(&store_2, &liar_store);
    let liar = component(
        2,
        &fiamma_role::store::sqlite_url(&liar_store),
        Faulty::new(&grpc, Fault::ScheduledAsRotation),
    )
    .await;
    let mut liar_reports = Vec::new();
    // A round daemon 2 never saw: it closes after the liar started.
    let liar_from = current_round(&mut client).await;
    let lied = step_until(
        &liar,
        60,
        |h, o| {
            h > liar_from
                && matches!(o, RoundOutcome::Disagrees(why) if why.contains("declares a rotation"))
        },
        &mut liar_reports,
    )
    .await
    .unwrap_or_else(|| panic!("no disagreement on the kind: {liar_reports:?}"));
    assert!(liar
        .store()
        .signed(&network, lied)
        .await
        .expect("store")
        .is_none());
    let summary = liar.store().summary(&network, 50).await.expect("summary");
    assert!(summary
        .recent_disagreements
        .iter()
        .any(|d| d.round == lied && d.kind == "checkpoint"));
    let key_2 = xonly(&keypair(2));
    let served = grpc
        .checkpoint_round(lied)
        .await
        .expect("served")
        .expect("a checkpoint round");
    assert!(served.votes.iter().all(|(v, _)| v.voter != key_2));
    drop(liar);

    // No verifier sent a §10 vote on any checkpoint round, and nobody equivocated.
    let keys: Vec<XOnlyPublicKey> = (1..=4u8).map(|s| xonly(&keypair(s))).collect();
    let checkpoints = checkpoint_rounds(&grpc, genesis_round + 1).await;
    assert!(checkpoints.contains(&h) && checkpoints.contains(&lost_round));
    for &c in &checkpoints {
        let view = grpc.round(c).await.expect("round").expect("closed");
        assert!(
            view.votes.iter().all(|v| !keys.contains(&v.vote.voter)),
            "a §10 vote on checkpoint round {c}"
        );
    }
    running.store(false, Ordering::SeqCst);
    stepping.await.expect("stepping");
    let reports = std::mem::take(&mut *reports.lock().expect("reports"));
    let decided: Vec<_> = reports
        .iter()
        .chain(&liar_reports)
        .flat_map(|r| &r.rounds)
        .filter(|d| checkpoints.contains(&d.round))
        .collect();
    assert!(!decided.is_empty());
    for d in decided {
        assert!(
            !matches!(d.outcome, RoundOutcome::Voted(_) | RoundOutcome::Resent(_)),
            "the component sent a §10 vote on checkpoint round {}: {:?}",
            d.round,
            d.outcome
        );
    }
    assert_no_equivocation(&mut client).await;
}
