//! Crash test: the real `fiamma node` binary is killed with SIGKILL while clients stream
//! registrations and covenant signatures at it, then restarted on the same database. Every
//! acknowledged message is there, and nothing is half applied: each delegation's status
//! agrees with its stored signatures, and the event log is gapless and matches the rows.

mod node_support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use node_support::*;
use sqlx::PgPool;
use tonic::transport::Channel;

const DELEGATIONS: u32 = 60;

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set by .cargo/config.toml");
    let (server, _) = base.rsplit_once('/').expect("url with a database");
    let db = pool
        .connect_options()
        .get_database()
        .expect("test database")
        .to_owned();
    format!("{server}/{db}")
}

fn write_files(dir: &PathBuf, db: &str, addr: SocketAddr) -> PathBuf {
    std::fs::create_dir_all(dir).expect("tempdir");
    let params_file = dir.join("params.json");
    std::fs::write(
        &params_file,
        serde_json::to_string(&vec![params()]).expect("json"),
    )
    .expect("write");
    let config = dir.join("node.toml");
    let c = contexts();
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

fn spawn(config: &PathBuf) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(["node", "--config"])
        .arg(config)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts")
}

async fn connect(addr: SocketAddr) -> StakingClient<Channel> {
    for _ in 0..300 {
        if let Ok(ch) = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
        {
            let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
            let serving = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "fiamma.staking.v1.Staking".into(),
                })
                .await
                .is_ok();
            if serving {
                return StakingClient::new(ch);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node did not come up on {addr}");
}

#[sqlx::test]
async fn a_killed_node_keeps_every_acknowledged_message_and_no_half(pool: PgPool) {
    let addr = free_port();
    let dir = std::env::temp_dir().join(format!("fiamma-crash-{}", addr.port()));
    let config = write_files(&dir, &database_url(&pool), addr);
    let mut child = spawn(&config);
    let mut client = connect(addr).await;
    let verifier = keypair(10);
    client
        .create_verifier(verifier_request(10))
        .await
        .expect("verifier");

    // Stream messages from two clients; kill the node while they are in flight.
    let regs: Vec<_> = (0..DELEGATIONS)
        .map(|i| registration(20 + (i % 200) as u8, xonly(&verifier), 1000 + i))
        .collect();
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<(String, u32)>();
    let mut tasks = Vec::new();
    for half in 0..2u32 {
        let mut c = client.clone();
        let regs: Vec<_> = regs
            .iter()
            .skip(half as usize)
            .step_by(2)
            .cloned()
            .collect();
        let acked = acked_tx.clone();
        tasks.push(tokio::spawn(async move {
            for reg in regs {
                let txid = reg.staking_tx.compute_txid().to_string();
                if c.create_delegation(delegation_request(&reg)).await.is_err() {
                    return;
                }
                let _ = acked.send((txid.clone(), 0));
                for member in 0..QUORUM as u8 {
                    if c.add_covenant_sigs(covenant_request(
                        &reg,
                        &covenant(member),
                        xonly(&verifier),
                    ))
                    .await
                    .is_err()
                    {
                        return;
                    }
                    let _ = acked.send((txid.clone(), u32::from(member) + 1));
                }
            }
        }));
    }
    drop(acked_tx);
    // Let some messages through, then SIGKILL.
    let mut acked: std::collections::BTreeMap<String, u32> = Default::default();
    while acked.values().map(|n| n + 1).sum::<u32>() < 40 {
        let (txid, sigs) = acked_rx.recv().await.expect("messages flow");
        acked.insert(txid, sigs);
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    for t in tasks {
        let _ = t.await;
    }
    while let Ok((txid, sigs)) = acked_rx.try_recv() {
        let e = acked.entry(txid).or_default();
        *e = (*e).max(sigs);
    }
    assert!(
        acked.len() < DELEGATIONS as usize,
        "killed before the stream finished"
    );

    let mut child = spawn(&config);
    let mut client = connect(addr).await;
    // Every acknowledged registration and signature is there.
    for (txid, sigs) in &acked {
        let d = client
            .delegation(pb::DelegationRequest {
                staking_txid: txid.clone(),
            })
            .await
            .expect("acknowledged delegation survived")
            .into_inner()
            .delegation
            .expect("present");
        assert!(
            d.covenant_sigs.len() as u32 >= *sigs,
            "{txid}: {} < {sigs}",
            d.covenant_sigs.len()
        );
    }
    // Nothing is half applied: status agrees with the stored signatures everywhere.
    let all = all_delegations(&mut client).await;
    let mut status_changes = 0;
    for d in &all {
        let n = d.covenant_sigs.len() as u32;
        let want = if n >= QUORUM {
            pb::DelegationStatus::Verified
        } else {
            pb::DelegationStatus::Pending
        };
        assert_eq!(d.status(), want, "{} with {n} signatures", d.staking_txid);
        status_changes += if n >= QUORUM { 2 } else { 1 };
    }
    // The event log: one verifier event, then one event per applied status change, no gaps.
    let last = node_support::last_event(&mut client).await;
    assert_eq!(last, 1 + status_changes);
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let _ = std::fs::remove_dir_all(dir);
}
