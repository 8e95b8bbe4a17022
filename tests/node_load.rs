//! The node under load and at its limits (`[server]`): each bound refuses with a specific
//! status naming the limit and its value, changes nothing, and the round closer keeps closing
//! rounds on its own connections meanwhile; and a bounded load test (hundreds of idle Events
//! streams plus a flood of proofs, registrations and bad requests against the real binary)
//! whose numbers are printed.

mod node_finality_support;
mod node_process;

// One copy of the node support module (node_process reaches it as `crate::node_support`).
use node_finality_support::node_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::Network;
use fiamma::btc::{EmbeddedBackend, RegtestChain};
use fiamma::node::config::{FinalityConfig, ServerConfig};
use fiamma::node::run::{connect_and_migrate_with, NodeSetup, RunningNode};
use fiamma_finality::rounds::LivenessRules;
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::finality::v1::finality_client::FinalityClient;
use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use fiamma_staking::params::ParamsVersions;
use node_process::database_url;
use node_support::*;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tonic::transport::Channel;
use tonic::Code;

/// Starts the real node (its own pools for the closer and the follower) with `server`
/// limits, closing a round every `round_ms`.
async fn start_node(pool: &PgPool, server: ServerConfig, round_ms: u64) -> RunningNode {
    let handlers = connect_and_migrate_with(&database_url(pool), &server)
        .await
        .expect("handler pool");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    RunningNode::start_with(
        NodeSetup {
            pool: handlers,
            params: ParamsVersions::new(vec![params()]).expect("valid params"),
            contexts: contexts(),
            finality: FinalityConfig {
                round_interval: Duration::from_millis(round_ms),
                vote_expiry: 10,
                max_start_ahead: 1_000,
                liveness: LivenessRules::new(20, 10, 5).expect("valid rules"),
                proof_retention_rounds: fiamma::node::config::DEFAULT_PROOF_RETENTION_ROUNDS,
                checkpoint: None,
            },
            backend: Arc::new(EmbeddedBackend::new(
                RegtestChain::in_memory().expect("chain"),
            )),
            network: Network::Regtest,
            poll_interval: Duration::from_millis(200),
            stall_timeout: fiamma::node::follower::DEFAULT_STALL_TIMEOUT,
            listener,
        },
        &server,
    )
    .await
    .expect("node starts")
}

/// A new connection (its own TCP connection) to `node`.
async fn connect(node: &RunningNode) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{}", node.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connects")
}

/// Rounds closed on `feed` within `window`.
async fn rounds_closed(feed: &mut broadcast::Receiver<fpb::Event>, window: Duration) -> usize {
    let end = Instant::now() + window;
    let mut closed = 0;
    while let Ok(Ok(e)) = tokio::time::timeout_at(end.into(), feed.recv()).await {
        if matches!(e.kind, Some(fpb::event::Kind::RoundClosed(_))) {
            closed += 1;
        }
    }
    closed
}

/// A refusal: the code, and a short message containing `names`.
fn refused(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, names: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{}", status.message());
    assert!(
        status.message().contains(names),
        "{:?} does not name {names:?}",
        status.message()
    );
    assert!(status.message().len() < 1024, "{}", status.message().len());
}

#[sqlx::test]
async fn a_busy_handler_pool_answers_unavailable_while_rounds_keep_closing(pool: PgPool) {
    let server = ServerConfig {
        db_max_connections: 2,
        db_acquire_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let node = start_node(&pool, server, 200).await;
    let mut staking = StakingClient::new(connect(&node).await);
    let mut feed = node.finality.subscribe();

    // Every connection of the handlers' pool taken (as a flood of slow requests would).
    let held = [
        node.finality.pool().acquire().await.expect("one"),
        node.finality.pool().acquire().await.expect("two"),
    ];
    refused(
        staking.create_verifier(verifier_request(10)).await,
        Code::Unavailable,
        "db_max_connections",
    );
    refused(
        staking.delegations(pb::DelegationsRequest::default()).await,
        Code::Unavailable,
        "db_acquire_timeout_ms",
    );
    let closed = rounds_closed(&mut feed, Duration::from_secs(2)).await;
    assert!(closed >= 4, "only {closed} rounds closed in 2 s at 200 ms");
    drop(held);

    // Nothing was written, and the node answers again.
    refused(
        staking
            .verifier(pb::VerifierRequest {
                btc_pk: xonly(&keypair(10)).serialize().to_vec(),
            })
            .await,
        Code::NotFound,
        "",
    );
    staking
        .create_verifier(verifier_request(10))
        .await
        .expect("accepted once connections are free");
    node.stop().await.expect("stops");
}

#[sqlx::test]
async fn calls_over_the_limit_are_refused_and_slow_calls_time_out(pool: PgPool) {
    let server = ServerConfig {
        db_max_connections: 1,
        db_acquire_timeout: Duration::from_secs(30),
        max_concurrent_requests: 3,
        request_timeout: Duration::from_millis(700),
        ..ServerConfig::default()
    };
    let node = start_node(&pool, server, 200).await;
    let staking = StakingClient::new(connect(&node).await);
    let mut feed = node.finality.subscribe();
    let held = node.finality.pool().acquire().await.expect("the only one");

    // Three calls wait for the database; a fourth is refused at once.
    let slow: Vec<_> = (0..3)
        .map(|_| {
            let mut c = staking.clone();
            tokio::spawn(async move { c.delegations(pb::DelegationsRequest::default()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    refused(
        staking.clone().params(pb::ParamsRequest::default()).await,
        Code::ResourceExhausted,
        "max_concurrent_requests = 3",
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "refused before any work"
    );
    for call in slow {
        refused(
            call.await.expect("task"),
            Code::DeadlineExceeded,
            "request_timeout_ms = 700",
        );
    }
    assert!(rounds_closed(&mut feed, Duration::from_secs(1)).await >= 2);
    drop(held);
    let mut c = staking.clone();
    c.params(pb::ParamsRequest::default())
        .await
        .expect("answered once the slots are free");
    node.stop().await.expect("stops");
}

#[sqlx::test]
async fn event_streams_are_bounded_in_all_and_per_connection(pool: PgPool) {
    let server = ServerConfig {
        max_event_streams: 3,
        max_event_streams_per_connection: 2,
        ..ServerConfig::default()
    };
    let node = start_node(&pool, server, 200).await;
    let mut feed = node.finality.subscribe();
    let (a, b, c) = (
        connect(&node).await,
        connect(&node).await,
        connect(&node).await,
    );
    let request = || pb::EventsRequest { from_sequence: 1 };
    let first = StakingClient::new(a.clone())
        .events(request())
        .await
        .expect("first");
    let _second = FinalityClient::new(a.clone())
        .events(fpb::EventsRequest { from_sequence: 1 })
        .await
        .expect("second, on the other service");
    refused(
        StakingClient::new(a.clone()).events(request()).await,
        Code::ResourceExhausted,
        "max_event_streams_per_connection = 2",
    );
    let _third = StakingClient::new(b)
        .events(request())
        .await
        .expect("third");
    refused(
        StakingClient::new(c.clone()).events(request()).await,
        Code::ResourceExhausted,
        "max_event_streams = 3",
    );
    // Hostile numbers are refused before a slot is taken.
    refused(
        StakingClient::new(c.clone())
            .events(pb::EventsRequest {
                from_sequence: u64::MAX,
            })
            .await,
        Code::InvalidArgument,
        "from_sequence",
    );
    refused(
        FinalityClient::new(c.clone())
            .events(fpb::EventsRequest {
                from_sequence: 1 << 63,
            })
            .await,
        Code::InvalidArgument,
        "from_sequence",
    );
    assert!(rounds_closed(&mut feed, Duration::from_secs(1)).await >= 2);

    // A closed stream frees its slot.
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(s) = StakingClient::new(c.clone()).events(request()).await {
            reopened = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "the slot came back");
    drop((reopened, _second, _third));
    node.stop().await.expect("stops, open streams or not");
}

#[sqlx::test]
async fn pages_are_cut_to_max_response_bytes_and_lose_nothing(pool: PgPool) {
    let server = ServerConfig {
        max_response_bytes: 6_000,
        ..ServerConfig::default()
    };
    let node = start_node(&pool, server, 200).await;
    let mut staking = StakingClient::new(connect(&node).await);
    staking
        .create_verifier(verifier_request(10))
        .await
        .expect("verifier");
    let verifier = xonly(&keypair(10));
    let mut created = Vec::new();
    for nonce in 0..12 {
        let reg = registration(20, verifier, nonce);
        created.push(reg.staking_tx.compute_txid().to_string());
        staking
            .create_delegation(delegation_request(&reg))
            .await
            .expect("accepted");
    }
    let mut listed = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = staking
            .delegations(pb::DelegationsRequest {
                page: Some(pb::PageRequest {
                    page_token: token.clone(),
                    page_size: 1000,
                }),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        assert!(
            prost::Message::encoded_len(&r) <= 6_000,
            "{} bytes",
            prost::Message::encoded_len(&r)
        );
        pages += 1;
        listed.extend(r.delegations.iter().map(|d| d.staking_txid.clone()));
        token = r.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    assert!(pages > 1, "the byte bound cut the list");
    created.sort();
    listed.sort();
    assert_eq!(listed, created, "every delegation once");
    node.stop().await.expect("stops");
}

/// Percentile `p` (0..=100) of `samples` (sorted here).
fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    samples
        .get((samples.len().saturating_sub(1)) * p / 100)
        .copied()
        .unwrap_or_default()
}

#[sqlx::test]
async fn under_load_queries_are_answered_and_rounds_close_on_time(pool: PgPool) {
    use tokio_stream::StreamExt;
    const ROUND_MS: u64 = 500;
    const IDLE_STREAMS: usize = 300;
    const CONNECTIONS: usize = 6;
    const FLOOD: Duration = Duration::from_secs(15);
    const FLOODERS: usize = 24;

    let addr = node_process::free_port();
    let dir = std::env::temp_dir().join(format!("fiamma-node-load-{}", addr.port()));
    let config = node_process::write_files(
        &dir,
        &database_url(&pool),
        addr,
        &format!(
            "[finality]\nround_interval_ms = {ROUND_MS}\n\n[server]\n\
             max_event_streams = 1000\nmax_event_streams_per_connection = 64\n"
        ),
    );
    let mut child = node_process::spawn(&config);
    let channel = node_process::connect(addr, "fiamma.finality.v1.Finality").await;
    // The idle streams and the flood use different connections: a client that does not read
    // its streams stalls its own connection once HTTP/2 flow control runs out (and only that).
    let mut connections = Vec::new();
    let mut idle_connections = Vec::new();
    for _ in 0..CONNECTIONS {
        connections.push(node_process::connect(addr, "fiamma.staking.v1.Staking").await);
        idle_connections.push(node_process::connect(addr, "fiamma.staking.v1.Staking").await);
    }

    // Round closings, timed from one finality stream that is read.
    let mut rounds = FinalityClient::new(channel.clone())
        .events(fpb::EventsRequest { from_sequence: 1 })
        .await
        .expect("finality events")
        .into_inner();
    let round_times = tokio::spawn(async move {
        let mut times = Vec::new();
        let end = Instant::now() + FLOOD + Duration::from_secs(2);
        while let Ok(Some(Ok(e))) = tokio::time::timeout_at(end.into(), rounds.next()).await {
            if matches!(e.kind, Some(fpb::event::Kind::RoundClosed(_))) {
                times.push(Instant::now());
            }
        }
        times
    });

    // Hundreds of idle streams: subscribed, never read.
    let mut idle = Vec::new();
    let opened = Instant::now();
    for i in 0..IDLE_STREAMS {
        let ch = idle_connections[i % CONNECTIONS].clone();
        let stream = if i % 2 == 0 {
            StakingClient::new(ch)
                .events(pb::EventsRequest { from_sequence: 1 })
                .await
                .map(|s| Box::new(s) as Box<dyn std::any::Any + Send>)
        } else {
            FinalityClient::new(ch)
                .events(fpb::EventsRequest { from_sequence: 1 })
                .await
                .map(|s| Box::new(s) as Box<dyn std::any::Any + Send>)
        };
        idle.push(stream.expect("an idle stream under the limits"));
    }
    let opened = opened.elapsed();
    eprintln!("load: {IDLE_STREAMS} idle streams open after {opened:?}");

    // The flood: proofs, registrations and bad requests, as fast as answered.
    let verifier = xonly(&keypair(10));
    tokio::time::timeout(
        Duration::from_secs(20),
        StakingClient::new(channel.clone()).create_verifier(verifier_request(10)),
    )
    .await
    .expect("answered within 20 s")
    .expect("verifier");
    eprintln!("load: verifier registered");
    let proof = node_finality_support::proof_request(node_finality_support::fiamma_proof("valid"));
    let stop_at = Instant::now() + FLOOD;
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|w| {
            let ch = connections[w % CONNECTIONS].clone();
            let proof = proof.clone();
            tokio::spawn(async move {
                let mut codes: std::collections::BTreeMap<String, usize> = Default::default();
                let mut staking = StakingClient::new(ch.clone());
                let mut finality = FinalityClient::new(ch);
                let mut n = 0u32;
                while Instant::now() < stop_at {
                    let call = async {
                        match (w % 3, n % 2) {
                            (0, _) => finality.submit_proof(proof.clone()).await.map(drop),
                            (1, _) => {
                                let nonce = (w as u32) << 16 | n;
                                let reg = registration(20 + (w % 100) as u8, verifier, nonce);
                                staking
                                    .create_delegation(delegation_request(&reg))
                                    .await
                                    .map(drop)
                            }
                            (_, 0) => staking
                                .delegation(pb::DelegationRequest {
                                    staking_txid: "z".repeat(100_000),
                                })
                                .await
                                .map(drop),
                            _ => staking
                                .events(pb::EventsRequest {
                                    from_sequence: u64::MAX,
                                })
                                .await
                                .map(drop),
                        }
                    };
                    let code = match tokio::time::timeout(Duration::from_secs(20), call).await {
                        Ok(r) => r.map_or_else(|s| format!("{:?}", s.code()), |()| "Ok".into()),
                        Err(_) => format!("no answer in 20 s (call {})", w % 3),
                    };
                    *codes.entry(code).or_default() += 1;
                    n += 1;
                }
                codes
            })
        })
        .collect();

    // Meanwhile, queries: answered, and how fast.
    let mut latencies = Vec::new();
    let mut query = StakingClient::new(channel.clone());
    while Instant::now() < stop_at {
        let t = Instant::now();
        tokio::time::timeout(
            Duration::from_secs(20),
            query.delegation(pb::DelegationRequest {
                staking_txid: "00".repeat(32),
            }),
        )
        .await
        .expect("a query is answered within 20 s")
        .map(drop)
        .or_else(|s| (s.code() == Code::NotFound).then_some(()).ok_or(s))
        .expect("the query is answered");
        latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("load: {} queries done", latencies.len());
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    for f in flooders {
        for (code, n) in f.await.expect("flooder") {
            *outcomes.entry(code).or_default() += n;
        }
    }
    let times = round_times.await.expect("round timer");
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let max_gap = gaps.iter().max().copied().unwrap_or_default();
    let queries = latencies.len();
    let (p50, p99) = (
        percentile(&mut latencies, 50),
        percentile(&mut latencies, 99),
    );
    let max = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "load: {IDLE_STREAMS} idle Events streams on {CONNECTIONS} connections opened in \
         {opened:?}; {FLOODERS} flooders for {FLOOD:?}: {outcomes:?}"
    );
    println!("load: {queries} queries answered, latency p50 {p50:?} p99 {p99:?} max {max:?}");
    println!(
        "load: {} rounds closed at {ROUND_MS} ms, largest gap between closings {max_gap:?}",
        times.len()
    );
    drop(idle);
    child.kill().expect("kill");
    child.wait().expect("reaped");
    let _ = std::fs::remove_dir_all(&dir);

    let expected = (FLOOD.as_millis() as u64 / ROUND_MS) as usize;
    assert!(
        times.len() >= expected * 3 / 4,
        "{} rounds closed, expected about {expected}",
        times.len()
    );
    assert!(
        max_gap < Duration::from_millis(ROUND_MS * 4),
        "a round closed {max_gap:?} after the previous one"
    );
    assert!(p99 < Duration::from_secs(2), "p99 query latency {p99:?}");
    let ok: usize = outcomes.get("Ok").copied().unwrap_or_default();
    assert!(ok > 0, "some of the flood was accepted: {outcomes:?}");
    assert!(
        outcomes.keys().all(|code| [
            "Ok",
            "AlreadyExists",
            "InvalidArgument",
            "ResourceExhausted"
        ]
        .contains(&code.as_str())),
        "only acceptances and specific refusals: {outcomes:?}"
    );
}
