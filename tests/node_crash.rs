//! Crash test: the real `fiamma node` binary is killed with SIGKILL while clients stream
//! registrations and covenant signatures at it, then restarted on the same database. Every
//! acknowledged message is there, and nothing is half applied: each delegation's status
//! agrees with its stored signatures, and the event log is gapless and matches the rows.

mod node_process;
mod node_support;

use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use node_process::{database_url, free_port, spawn, write_files};
use node_support::*;
use sqlx::PgPool;
use tonic::transport::Channel;

const DELEGATIONS: u32 = 60;

async fn connect(addr: std::net::SocketAddr) -> StakingClient<Channel> {
    StakingClient::new(node_process::connect(addr, "fiamma.staking.v1.Staking").await)
}

#[sqlx::test]
async fn a_killed_node_keeps_every_acknowledged_message_and_no_half(pool: PgPool) {
    let addr = free_port();
    let dir = std::env::temp_dir().join(format!("fiamma-crash-{}", addr.port()));
    let config = write_files(&dir, &database_url(&pool), addr, "");
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
