//! The round closer follows the node's health: no round closes while the node is
//! NOT_SERVING (a reorg deeper than k, a stalled Bitcoin backend), and rounds resume on their
//! own once it is SERVING again.

mod node_finality_support;

use std::time::Duration;

use fiamma::node::finality::closer::spawn_round_closer_with_health;
use fiamma::node::health::NodeHealth;
use fiamma_proto::finality::v1 as fpb;
use node_finality_support::*;
use sqlx::PgPool;

async fn closed_rounds(node: &mut Node) -> usize {
    node.finality
        .rounds(fpb::RoundsRequest {
            from_round: 1,
            limit: 0,
        })
        .await
        .expect("rounds")
        .into_inner()
        .rounds
        .len()
}

#[sqlx::test]
async fn no_round_closes_while_the_node_is_not_serving(pool: PgPool) {
    let mut params = finality_params();
    params.round_interval = Duration::from_millis(100);
    let mut node = start_with(pool, params).await;
    let health = NodeHealth::new();
    health.set_not_serving("bitcoin reorg deeper than the limit");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = spawn_round_closer_with_health(node.module.clone(), health.clone(), async {
        let _ = stopped.await;
    });
    // Five intervals pass without a close.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(closed_rounds(&mut node).await, 0);

    health.set_serving();
    let mut seen = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = closed_rounds(&mut node).await;
        if seen >= 2 {
            break;
        }
    }
    assert!(seen >= 2, "rounds resumed: {seen}");

    health.set_not_serving("bitcoin not followed for 60s");
    // A close already under way may finish; after that, none.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let halted = closed_rounds(&mut node).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(closed_rounds(&mut node).await, halted);
    let _ = stop.send(());
    task.await.expect("the closer stops cleanly");
}
