//! The sequencer and Bitcoin-checked checkpoints (CHECKPOINTS.md §13.7), end to end in one
//! process: the node's finality module with `[checkpoint]` over gRPC and a real PostgreSQL, the
//! embedded regtest chain served over JSON-RPC as `fiamma regtest` serves it, four stakers whose
//! checkpoint votes the test signs, and the sequencer component with its BDK wallet and store.
//! The sequencer funds the genesis and registers it (once, however often asked), broadcasts the
//! READY checkpoint as a package with its own child, follows it k deep, and the node's base
//! moves to it; the checkpoint round is never anchored by §10.

mod btc_support;
mod node_finality_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bdk_bitcoind_rpc::bitcoincore_rpc::{Auth, Client};
use bitcoin::{Amount, FeeRate, Network};
use btc_support::KeyWallet;
use fiamma::btc::regtest::unix_now;
use fiamma::btc::rpc_server::{self, RpcAuth};
use fiamma::btc::{Backend, EmbeddedBackend, RegtestChain, RpcBackend, TxStatus};
use fiamma::node::checkpoint::{CheckpointConfig, CheckpointSettings, Checkpoints};
use fiamma::node::finality::FinalityModule;
use fiamma_finality::checkpoint::{
    build_candidate, CandidateSpec, CheckpointKind, CheckpointPayload, CheckpointSet,
    CheckpointVote, RecoveryLeaf,
};
use fiamma_finality::round::RoundHash;
use fiamma_proto::client::{CheckpointNode, CheckpointStatus, GrpcNode};
use fiamma_proto::codec::finality::checkpoint_vote_to_pb;
use fiamma_proto::finality::v1 as fpb;
use fiamma_sequencer::sequencer::{
    CheckpointOutcome, GenesisOutcome, Sequencer, SequencerError, SequencerSettings,
};
use fiamma_sequencer::store::SequencerStore;
use fiamma_staking::params::Params;
use fiamma_wallet::{Wallet, WalletKeys};
use node_finality_support::node_support::{self, K};
use node_finality_support::*;
use sqlx::PgPool;

/// h₀.
const GENESIS_ROUND: u64 = 2;
/// N: round 4 is the first checkpoint round after h₀.
const INTERVAL: u64 = 4;
/// R (within 2k..=U/2 of [`staking_params`]).
const RECOVERY: u32 = 6;
const VALUE: Amount = Amount::from_sat(1_000);
const STAKE: u64 = 1_000_000;
const USER: &str = "fiamma";
const PASSWORD: &str = "s3cret";

fn staking_params() -> Params {
    Params {
        unbonding_time_blocks: 20,
        ..node_support::params()
    }
}

/// Mines a block every 100 ms until dropped, so that waits for depth end.
struct Miner {
    stop: Arc<AtomicBool>,
}

impl Miner {
    fn start(chain: &EmbeddedBackend, to: bitcoin::ScriptBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (chain, flag) = (chain.clone(), stop.clone());
        tokio::spawn(async move {
            while !flag.load(Ordering::SeqCst) {
                chain.mine(1, &to).await.expect("mine");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Miner { stop }
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[sqlx::test]
async fn the_sequencer_funds_the_genesis_and_broadcasts_the_ready_checkpoint_as_a_package(
    pool: PgPool,
) {
    let payout = KeyWallet::new(0x61).script();
    let mut rc = RegtestChain::in_memory().expect("chain");
    rc.mine(110, &payout, unix_now()).expect("mine");
    let chain = EmbeddedBackend::new(rc);
    let server = rpc_server::spawn(
        "127.0.0.1:0".parse().expect("addr"),
        chain.shared(),
        &RpcAuth {
            user: USER.into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .expect("bind");
    let url = format!("http://{}", server.addr);
    let bitcoin = RpcBackend::new(&url, USER, PASSWORD).expect("backend");

    // The node with checkpoints, and four equal stakers.
    let recovery = {
        let p = staking_params();
        RecoveryLeaf::new(&p.covenant_pks, p.covenant_quorum, RECOVERY).expect("leaf")
    };
    let settings = CheckpointSettings::new(
        &CheckpointConfig {
            genesis_round: GENESIS_ROUND,
            value: VALUE,
            interval_rounds: INTERVAL,
            recovery_blocks: Some(RECOVERY),
        },
        &staking_params(),
        VOTE_EXPIRY,
    )
    .expect("checkpoint settings");
    let module = FinalityModule::new(pool.clone(), finality_params(), contexts()).with_checkpoints(
        Checkpoints {
            settings: Arc::new(settings),
            backend: Arc::new(chain.clone()),
        },
    );
    let mut node = start_modules(pool, staking_params(), module).await;
    let mut verifiers = Vec::new();
    for seed in 1..=4u8 {
        create_verifier(&mut node, seed).await;
        let next = node.module.rounds(1, 1000).await.expect("rounds").1 + 1;
        let v = TestVerifier::new(seed, next, 100);
        stake(node.staking_module.store(), v.key(), STAKE, u32::from(seed)).await;
        node.finality
            .commit_pub_rand_list(v.commit_request())
            .await
            .expect("commitment");
        verifiers.push(v);
    }
    let close_through = |round: u64| {
        let module = node.module.clone();
        async move {
            loop {
                if module.close_round().await.expect("closes").round >= round {
                    return;
                }
            }
        }
    };

    // The sequencer: its store and wallet in SQLite, funded by mining.
    let dir = tempfile::tempdir().expect("dir");
    let store = SequencerStore::open(&fiamma_role::store::sqlite_url(
        &dir.path().join("s.sqlite"),
    ))
    .await
    .expect("store");
    let mut wallet = Wallet::create(
        store.wallet("sequencer").await.expect("wallet store"),
        Network::Regtest,
        &WalletKeys::generate().expect("keys"),
        None,
    )
    .await
    .expect("wallet");
    let address = wallet.next_address().await.expect("address");
    chain
        .mine(101, &address.script_pubkey())
        .await
        .expect("mine");
    let grpc = GrpcNode::connect_lazy(&node.addr, Duration::from_secs(10)).expect("client");
    let rpc = Client::new(&url, Auth::UserPass(USER.into(), PASSWORD.into())).expect("rpc");
    let sequencer = Sequencer::new(
        SequencerSettings {
            contexts: contexts(),
            // Round 4 is due for §10 too: as a checkpoint round it must be skipped.
            anchor_every: INTERVAL,
            start_round: Some(1),
            confirmations: K,
            fee_rate: FeeRate::from_sat_per_vb(2).expect("rate"),
            max_pending: 10,
            poll_interval: Duration::from_millis(100),
        },
        Arc::new(grpc.clone()),
        Arc::new(bitcoin.clone()),
        Arc::new(rpc),
        wallet,
        store.clone(),
    )
    .with_checkpoints(Arc::new(grpc.clone()));
    sequencer.sync_wallet().await.expect("sync");

    // No genesis script before h₀ closes: nothing is paid.
    close_through(1).await;
    let early = sequencer
        .checkpoint_genesis(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(early, SequencerError::GenesisNotOpen(GENESIS_ROUND)),
        "{early}"
    );
    assert_eq!(store.genesis().await.expect("read"), None);

    // Funded, k deep, registered.
    close_through(GENESIS_ROUND).await;
    let genesis = {
        let _miner = Miner::start(&chain, payout.clone());
        match sequencer
            .checkpoint_genesis(Duration::from_secs(60))
            .await
            .expect("genesis")
        {
            GenesisOutcome::Registered(g) => g,
            other => panic!("not registered by this call: {other:?}"),
        }
    };
    assert_eq!((genesis.round, genesis.kind), (GENESIS_ROUND, 0));
    let recorded = store.genesis().await.expect("read").expect("recorded");
    assert!(recorded.registered);
    assert_eq!(recorded.tx.compute_txid(), genesis.outpoint.txid);
    assert_eq!(recorded.tx.output[recorded.vout as usize].value, VALUE);
    // Asked again: the node has it; nothing is paid twice.
    assert_eq!(
        sequencer
            .checkpoint_genesis(Duration::from_secs(1))
            .await
            .expect("again"),
        GenesisOutcome::AlreadyRegistered(genesis)
    );
    assert_eq!(
        store.genesis().await.expect("read").expect("kept").tx,
        recorded.tx
    );

    // Round 4: the node's candidate, rebuilt here, signed by all four.
    close_through(INTERVAL).await;
    let served = grpc
        .checkpoint_round(INTERVAL)
        .await
        .expect("asked")
        .expect("a checkpoint round");
    assert_eq!(served.status, CheckpointStatus::Signing);
    let set = CheckpointSet::from_powers(verifiers.iter().map(|v| (v.key(), STAKE))).expect("set");
    let candidate = build_candidate(&CandidateSpec {
        base: genesis.outpoint,
        base_round: GENESIS_ROUND,
        base_set: &set,
        next_set: &set,
        recovery: &recovery,
        value: VALUE,
        payload: CheckpointPayload {
            kind: CheckpointKind::Quorum,
            round: INTERVAL,
            round_hash: RoundHash(served.round_hash),
            state: [0; 32],
        },
    })
    .expect("candidate");
    assert_eq!(candidate.tx, served.candidate);
    // Before it is ready the sequencer sends nothing.
    let report = sequencer.step().await.expect("step");
    assert!(report.checkpoints.is_empty(), "{report:?}");
    for v in &verifiers {
        let r = v.randomness.for_round(INTERVAL).expect("committed");
        let vote = CheckpointVote::sign(&v.keypair, &r.secret, &candidate.message);
        node.finality
            .add_checkpoint_sig(fpb::AddCheckpointSigRequest {
                vote: Some(checkpoint_vote_to_pb(INTERVAL, &vote, &r.proof)),
            })
            .await
            .expect("vote accepted");
    }
    node.module.tally_now().await.expect("tally");
    let ready = grpc
        .checkpoint_round(INTERVAL)
        .await
        .expect("asked")
        .expect("round");
    assert_eq!(ready.status, CheckpointStatus::Ready);
    let txid = candidate.tx.compute_txid();

    // The step sends the package: the candidate and the sequencer's own child.
    let report = sequencer.step().await.expect("step");
    let child = match report.checkpoints.as_slice() {
        [CheckpointOutcome::Broadcast {
            round,
            txid: sent,
            child,
            result,
        }] => {
            assert_eq!((*round, *sent, result.as_str()), (INTERVAL, txid, ""));
            *child
        }
        other => panic!("no broadcast: {other:?}"),
    };
    assert_eq!(report.checkpoint_refused, None);
    // Its certificate entries sign M, not the vote message: a §10 anchor would be refused.
    assert_eq!(report.refused, None);
    for t in [txid, child] {
        assert_eq!(
            bitcoin.tx_status(&t).await.expect("status"),
            TxStatus::InMempool
        );
    }
    // Round 4 is due for §10 and final, but never anchored.
    assert!(store.anchor(INTERVAL).await.expect("read").is_none());
    // Looked at again: pending, not sent twice.
    let report = sequencer.step().await.expect("step");
    assert_eq!(
        report.checkpoints,
        vec![CheckpointOutcome::Pending {
            round: INTERVAL,
            txid,
            confirmations: 0
        }]
    );

    // Mined together; done once k deep; the node's base moves to it.
    chain.mine(1, &payout).await.expect("mine");
    let report = sequencer.step().await.expect("step");
    assert_eq!(
        report.checkpoints,
        vec![CheckpointOutcome::Pending {
            round: INTERVAL,
            txid,
            confirmations: 1
        }]
    );
    assert!(matches!(
        bitcoin.tx_status(&child).await.expect("status"),
        TxStatus::Confirmed {
            confirmations: 1,
            ..
        }
    ));
    chain.mine(K - 1, &payout).await.expect("mine");
    let report = sequencer.step().await.expect("step");
    assert_eq!(
        report.checkpoints,
        vec![CheckpointOutcome::Done {
            round: INTERVAL,
            txid,
            confirmations: K
        }]
    );
    let packages = store.packages(false).await.expect("read");
    assert_eq!(packages.len(), 1);
    assert_eq!(
        (
            packages[0].broadcasts,
            packages[0].done,
            packages[0].superseded
        ),
        (1, true, false)
    );
    assert_eq!(packages[0].parent.compute_txid(), txid);
    assert!(!packages[0].parent.input[0].witness.is_empty());
    let mut base = None;
    for _ in 0..50 {
        node.module.follow_checkpoints().await.expect("follows");
        base = grpc
            .checkpoints()
            .await
            .expect("asked")
            .expect("checkpoints")
            .base;
        if base.is_some_and(|b| b.round == INTERVAL) {
            break;
        }
    }
    let base = base.expect("a base");
    assert_eq!(
        (base.outpoint.txid, base.outpoint.vout, base.round),
        (txid, 0, INTERVAL)
    );
    // Nothing left to do.
    assert!(sequencer.step().await.expect("step").checkpoints.is_empty());
}
