//! `fiamma slasher` as anyone runs it: the real binary against the real `fiamma node` binary,
//! which follows the real `fiamma regtest` chain over JSON-RPC; stakes paid from coinbase
//! outputs and co-signed by real `fiamma covenant` daemons; a verifier that equivocates with its
//! raw key, and one that broadcasts a slashing transaction itself (selective slashing); two
//! slashers, one killed mid-job and restarted.

mod btc_support;
mod covenant_support;
mod node_finality_support;
mod node_process;
mod slasher_support;
mod verifier_support;

// `node_process` and `covenant_support` read the shared node support at the crate root.
use node_finality_support::node_support;

use std::path::Path;
use std::time::Duration;

use btc_support::{KeyWallet, Miner};
use covenant_support::{import_key, params, spawn_member, write_member, Killed};
use fiamma::btc::{Backend, OutPointStatus, RpcBackend};
use fiamma_covenant::delegation::SlashingTx;
use fiamma_proto::client::served_delegation;
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::finality::v1::finality_client::FinalityClient;
use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use fiamma_slasher::plan::SlashableDelegation;
use node_finality_support::{vote_request, TestVerifier};
use node_process::{connect, database_url, free_port};
use node_support::{delegation_request, keypair, verifier_request, xonly};
use slasher_support::{
    coinbase, rpc, spawn_slasher, start_chain, status, write_node, write_slasher, Stake,
};
use sqlx::PgPool;
use tonic::transport::Channel;
use verifier_support::current_round;

/// k of the slashers.
const K: u32 = 3;
/// Committee members that run (the quorum).
const RUNNING_MEMBERS: u8 = 3;

async fn wait_for_statuses(
    client: &mut StakingClient<Channel>,
    txids: &[String],
    want: pb::DelegationStatus,
) {
    for _ in 0..600 {
        let all = node_support::all_delegations(client).await;
        if txids.iter().all(|t| {
            all.iter()
                .any(|d| &d.staking_txid == t && d.status() == want)
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("delegations {txids:?} did not reach {want:?}");
}

/// The first closed round (from `from` on) whose active set holds `key`, and its round hash.
async fn first_round_with(
    client: &mut FinalityClient<Channel>,
    key: &[u8],
    from: u64,
) -> (u64, [u8; 32]) {
    let mut next = from;
    for _ in 0..600 {
        while next <= current_round(client).await {
            let round = client
                .round(fpb::RoundRequest {
                    round: next,
                    ..Default::default()
                })
                .await
                .expect("round")
                .into_inner()
                .round
                .expect("served");
            if round.active_set.iter().any(|e| e.verifier_btc_pk == key) {
                let hash = round.round_hash.try_into().expect("32 bytes");
                return (next, hash);
            }
            next += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the verifier never entered the active set");
}

/// Lines of a slasher's status that report a delegation done.
fn done_lines(config: &Path) -> usize {
    status(config)
        .lines()
        .filter(|l| l.contains(", done:"))
        .count()
}

/// Who spends `outpoint`, mined, and how deep.
async fn mined_spender(chain: &RpcBackend, outpoint: bitcoin::OutPoint) -> (bitcoin::Txid, u32) {
    let tip = chain.tip().await.expect("tip").height;
    match chain.outpoint_status(&outpoint).await.expect("status") {
        OutPointStatus::Spent { txid, height, .. } => (txid, tip - height + 1),
        other => panic!("{outpoint} is not spent in a block: {other:?}"),
    }
}

#[sqlx::test]
async fn every_stake_of_an_equivocating_verifier_is_slashed_k_deep_by_restartable_slashers(
    pool: PgPool,
) {
    let dir = tempfile::tempdir().expect("dir");
    let (chain, rpc_url) = start_chain();
    let _chain = Killed(chain);
    let bitcoin = rpc(&rpc_url);
    let wallet = KeyWallet::new(77);
    // Five coinbases for five stakers, matured.
    bitcoin.mine(105, &wallet.address).await;

    let addr = free_port();
    let _node = Killed(node_process::spawn(&write_node(
        &dir.path().join("node"),
        &database_url(&pool),
        addr,
        &rpc_url,
        "round_interval_ms = 300\nvote_expiry = 10\nmax_start_ahead = 1000\n\
         liveness_window = 1000\nliveness_min_signed = 1\n",
    )));
    let channel = connect(addr, "fiamma.staking.v1.Staking").await;
    let mut staking = StakingClient::new(channel.clone());
    let mut finality = FinalityClient::new(channel);
    staking
        .create_verifier(verifier_request(1))
        .await
        .expect("verifier registers");
    staking
        .create_verifier(verifier_request(2))
        .await
        .expect("second verifier registers");
    let verifier = xonly(&keypair(1));
    let selective = xonly(&keypair(2));
    // The verifier's randomness, committed with its raw key.
    let start = current_round(&mut finality).await + 2;
    let raw = TestVerifier::new(1, start, 500);
    finality
        .commit_pub_rand_list(raw.commit_request())
        .await
        .expect("commitment accepted");

    let mut stakes = Vec::new();
    // Stakes 0-2 go to the verifier that will equivocate, 3-4 to the one that will slash
    // stake 3 itself.
    for i in 0..5u8 {
        let funding = coinbase(&bitcoin, 1 + u32::from(i)).await;
        let to = if i < 3 { verifier } else { selective };
        let stake = Stake::new(20 + i, to, &wallet, funding);
        staking
            .create_delegation(delegation_request(&stake.registration))
            .await
            .expect("delegation registers");
        stakes.push(stake);
    }
    let txids: Vec<String> = stakes.iter().map(|s| s.txid().to_string()).collect();
    let mut members = Vec::new();
    for i in 0..RUNNING_MEMBERS {
        let member_dir = dir.path().join(format!("member{i}"));
        import_key(&member_dir, i);
        members.push(Killed(spawn_member(&write_member(
            &member_dir,
            addr,
            &params(),
            "",
        ))));
    }
    wait_for_statuses(&mut staking, &txids, pb::DelegationStatus::Verified).await;
    for s in &stakes {
        bitcoin.broadcast(&s.signed).await.expect("stake broadcast");
    }
    // A block at a time until the node's follower counts every stake k deep.
    bitcoin.mine(node_support::K, &wallet.address).await;
    for i in 0.. {
        let all = node_support::all_delegations(&mut staking).await;
        let active = all
            .iter()
            .filter(|d| d.status() == pb::DelegationStatus::Active)
            .count();
        if active == txids.len() {
            break;
        }
        assert!(i < 60, "not ACTIVE: {all:?}");
        bitcoin.mine(1, &wallet.address).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The third staker unbonds before anyone is slashed: its unbonding output is what is left
    // to slash.
    let served = staking
        .delegation(pb::DelegationRequest {
            staking_txid: txids[2].clone(),
        })
        .await
        .expect("delegation")
        .into_inner()
        .delegation
        .expect("served");
    let unbonding = stakes[2].unbonding(&served);
    bitcoin
        .broadcast(&unbonding)
        .await
        .expect("unbonding broadcast");
    // The second verifier broadcasts the slashing transaction of stake 3 itself: the covenant
    // signatures it decrypts with its key reveal that key to anyone reading the witness.
    let served = staking
        .delegation(pb::DelegationRequest {
            staking_txid: txids[3].clone(),
        })
        .await
        .expect("delegation")
        .into_inner()
        .delegation
        .expect("served");
    let served = served_delegation(&served);
    let own = SlashableDelegation::new(
        &selective,
        stakes[3].registration.clone(),
        &params().covenant_pks,
        params().covenant_quorum,
        served.covenant_sigs.expect("covenant signatures"),
    )
    .expect("slashable");
    let own_slashing = own
        .signed_slashing_tx(
            &keypair(2).secret_key(),
            SlashingTx::Staking,
            &mut rand::thread_rng(),
        )
        .expect("signed");
    bitcoin
        .broadcast(&own_slashing)
        .await
        .expect("selective slashing broadcast");
    bitcoin.mine(1, &wallet.address).await;
    wait_for_statuses(&mut staking, &txids[2..4], pb::DelegationStatus::Unbonded).await;

    // The verifier signs one round twice with its raw key, around any slashing protection.
    // A round that closes from now on, so that it still takes votes.
    let from = current_round(&mut finality).await + 1;
    let (round, round_hash) = first_round_with(&mut finality, &verifier.serialize(), from).await;
    let mut outcomes = Vec::new();
    for hash in [round_hash, [0xee; 32]] {
        let r = finality
            .add_finality_sig(vote_request(&raw.vote(round, hash)))
            .await
            .expect("vote")
            .into_inner();
        outcomes.push(r.outcome());
    }
    assert_eq!(
        outcomes,
        [fpb::VoteOutcome::Counted, fpb::VoteOutcome::Equivocation]
    );

    // Two slashers, each with its own store: A (killed mid-job, restarted) on SQLite, and B
    // alongside on PostgreSQL, in the node's own database (the slasher's tables and migrations
    // live in a schema of their own).
    let status_addr = free_port();
    let a = write_slasher(
        &dir.path().join("a"),
        addr,
        &rpc_url,
        K,
        &format!("status_addr = \"{status_addr}\""),
    );
    let b = write_slasher(
        &dir.path().join("b"),
        addr,
        &rpc_url,
        K,
        &format!("store = \"{}\"", database_url(&pool)),
    );
    let mut slasher_a = Killed(spawn_slasher(&a));
    let slasher_b = Killed(spawn_slasher(&b));
    // SIGKILL A as soon as a pass of it found the delegations (B may have broadcast first):
    // its job (k deep) is not done, since no block has been mined yet.
    for i in 0.. {
        // The status endpoint is up once the daemon has migrated its store.
        let up = tokio::net::TcpStream::connect(status_addr).await.is_ok();
        if up && status(&a).contains("delegation ") {
            break;
        }
        assert!(i < 300, "slasher A never broadcast: {}", status(&a));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slasher_a.0.kill().expect("SIGKILL");
    slasher_a.0.wait().expect("reaped");
    bitcoin.mine(1, &wallet.address).await;
    slasher_a = Killed(spawn_slasher(&a));

    // Blocks keep coming until both slashers count all five delegations done: the slashers
    // find the selective slashing, the node slashes the second verifier on their evidence,
    // and they slash its other stake.
    for i in 0.. {
        if done_lines(&a) == 5 && done_lines(&b) == 5 {
            break;
        }
        assert!(i < 150, "not done:\nA:\n{}\nB:\n{}", status(&a), status(&b));
        bitcoin.mine(1, &wallet.address).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // On the chain: the two staking outputs spent by their staking slashing transactions, the
    // unbonding output by its unbonding slashing transaction, each at least k deep.
    for s in [&stakes[0], &stakes[1], &stakes[3], &stakes[4]] {
        let (spender, depth) = mined_spender(&bitcoin, bitcoin::OutPoint::new(s.txid(), 0)).await;
        assert_eq!(spender, s.registration.slashing_tx.compute_txid());
        assert!(depth >= K, "{depth}");
    }
    let reg = &stakes[2].registration;
    let (spender, _) = mined_spender(&bitcoin, bitcoin::OutPoint::new(stakes[2].txid(), 0)).await;
    assert_eq!(spender, reg.unbonding_tx.compute_txid());
    let (spender, depth) = mined_spender(
        &bitcoin,
        bitcoin::OutPoint::new(reg.unbonding_tx.compute_txid(), 0),
    )
    .await;
    assert_eq!(spender, reg.unbonding_slashing_tx.compute_txid());
    assert!(depth >= K, "{depth}");

    // Neither slasher was refused a broadcast or signed a second witness: each recorded one
    // transaction per delegation, and Bitcoin never answered with a conflict or a refusal.
    let mut broadcast = std::collections::BTreeSet::new();
    for config in [&a, &b] {
        let text = status(config);
        let txs: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("slashing tx "))
            .collect();
        assert!(txs.len() <= 4, "{text}");
        broadcast.extend(
            txs.iter()
                .filter_map(|l| l.split_whitespace().nth(2))
                .map(str::to_owned),
        );
        for line in &txs {
            assert!(
                line.ends_with("last: accepted")
                    || line.ends_with("last: already in the mempool or mined"),
                "{text}"
            );
        }
        assert!(text.contains("unbonding output"), "{text}");
        assert!(text.contains("(equivocation)"), "{text}");
        assert!(text.contains("(selective_slashing)"), "{text}");
        assert!(text.contains("delegations left to slash: 0"), "{text}");
    }
    // Between them, the slashers broadcast the four slashing transactions that were theirs to
    // broadcast (stake 3's is the verifier's own).
    let expected: std::collections::BTreeSet<String> = [
        stakes[0].registration.slashing_tx.compute_txid(),
        stakes[1].registration.slashing_tx.compute_txid(),
        stakes[2].registration.unbonding_slashing_tx.compute_txid(),
        stakes[4].registration.slashing_tx.compute_txid(),
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    assert_eq!(broadcast, expected);
    let metrics = http_metrics(status_addr).await;
    for bad in ["conflict", "refused"] {
        assert!(!metrics.contains(&format!("result=\"{bad}\"")), "{metrics}");
    }
    assert!(
        metrics.contains("fiamma_slasher_open_delegations 0"),
        "{metrics}"
    );

    drop(slasher_a);
    drop(slasher_b);
    drop(members);
}

/// `GET /metrics` of a daemon's status endpoint.
async fn http_metrics(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("status endpoint");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}
