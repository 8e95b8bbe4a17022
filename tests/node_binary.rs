//! The `fiamma node` binary runs both modules: gRPC health reports the staking and the
//! finality services SERVING, a proof submitted over gRPC is verified in the next round, and
//! the node closes rounds on its own timer (`[finality] round_interval_ms`), as the round
//! queries and the finality event stream show.

mod node_process;
mod node_support;

use std::time::Duration;

use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::finality::v1::finality_client::FinalityClient;
use fiamma_proto::staking::v1 as spb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use node_process::{connect, database_url, free_port, spawn, write_files};
use sqlx::PgPool;
use tokio_stream::StreamExt;

fn fiamma_proof() -> fpb::SubmitProofRequest {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/zk/fiamma-arkworks-groth16-bn254/valid/"
    );
    let read = |name: &str| std::fs::read(format!("{dir}{name}")).expect("vector present");
    fpb::SubmitProofRequest {
        proof_system: 1,
        verifying_key: read("vk.bitvm"),
        proof: read("proof.bitvm"),
        public_inputs: read("public_input.bitvm"),
    }
}

#[sqlx::test]
async fn the_node_serves_both_modules_and_closes_rounds_on_its_timer(pool: PgPool) {
    let addr = free_port();
    let dir = std::env::temp_dir().join(format!("fiamma-node-binary-{}", addr.port()));
    let config = write_files(
        &dir,
        &database_url(&pool),
        addr,
        "[finality]\nround_interval_ms = 300\n",
    );
    let mut child = spawn(&config);
    let mut staking = StakingClient::new(connect(addr, "fiamma.staking.v1.Staking").await);
    let mut finality = FinalityClient::new(connect(addr, "fiamma.finality.v1.Finality").await);

    let params = staking
        .params(spb::ParamsRequest::default())
        .await
        .expect("params")
        .into_inner();
    assert!(params.params.is_some());
    let mut events = finality
        .events(fpb::EventsRequest { from_sequence: 1 })
        .await
        .expect("events")
        .into_inner();
    let submitted = finality
        .submit_proof(fiamma_proof())
        .await
        .expect("proof accepted")
        .into_inner();

    // The proof's round and the one after it close without anyone asking.
    let mut closed = Vec::new();
    while !closed
        .iter()
        .any(|c: &fpb::RoundClosed| c.round == submitted.round + 1)
    {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("a round closes within 20 s")
            .expect("stream open")
            .expect("event");
        if let Some(fpb::event::Kind::RoundClosed(c)) = event.kind {
            closed.push(c);
        }
    }
    let rounds: Vec<u64> = closed.iter().map(|c| c.round).collect();
    assert!(
        rounds.windows(2).all(|w| w[1] == w[0] + 1),
        "rounds close in order: {rounds:?}"
    );
    let with_proof = closed
        .iter()
        .find(|c| c.round == submitted.round)
        .expect("the proof's round closed");
    assert_eq!(with_proof.proofs, 1);
    let round = finality
        .round(fpb::RoundRequest {
            round: submitted.round,
            ..Default::default()
        })
        .await
        .expect("round query")
        .into_inner();
    let results = round.round.expect("round").results;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].proof_id, submitted.proof_id);
    assert!(results[0].valid, "the Fiamma proof is valid");

    child.kill().expect("kill");
    child.wait().expect("reaped");
    let _ = std::fs::remove_dir_all(&dir);
}
