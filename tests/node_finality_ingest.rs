//! AddFinalitySig's guarantees where votes race or the state moves under a cached round: the
//! common vote is stored by one statement without a transaction, so these check that a second
//! vote arriving at the same time is still a duplicate or equivocation (exactly once), that a
//! slashed verifier's vote is refused in a round it is still a member of, that a cached
//! round stops taking votes when it expires, and that a batched vote is stored as sent.

mod node_finality_support;

use fiamma_finality::merkle::Digest;
use fiamma_proto::finality::v1 as fpb;
use node_finality_support::*;
use sqlx::PgPool;
use tonic::Code;

const SEEDS: [u8; 4] = [1, 2, 3, 4];

async fn network(pool: PgPool) -> (Node, Vec<TestVerifier>) {
    let mut node = start(pool).await;
    let store = node.staking_module.store().clone();
    let mut verifiers = Vec::new();
    for seed in SEEDS {
        create_verifier(&mut node, seed).await;
        let v = TestVerifier::new(seed, 1, 50);
        stake(&store, v.key(), 1_000_000, u32::from(seed)).await;
        node.finality
            .commit_pub_rand_list(v.commit_request())
            .await
            .expect("commitment accepted");
        verifiers.push(v);
    }
    (node, verifiers)
}

async fn send(node: &Node, v: &TestVerifier, round: u64, hash: Digest) -> Result<i32, Code> {
    node.finality
        .clone()
        .add_finality_sig(vote_request(&v.vote(round, hash)))
        .await
        .map(|r| r.into_inner().outcome)
        .map_err(|s| s.code())
}

/// Sends all `votes` at the same time; their results in order.
async fn send_at_once(
    node: &Node,
    votes: Vec<fiamma_finality::rounds::Vote>,
) -> Vec<Result<i32, Code>> {
    let handles: Vec<_> = votes
        .iter()
        .map(|v| {
            let mut client = node.finality.clone();
            let request = vote_request(v);
            tokio::spawn(async move {
                client
                    .add_finality_sig(request)
                    .await
                    .map(|r| r.into_inner().outcome)
                    .map_err(|s| s.code())
            })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.expect("sender task"));
    }
    results
}

/// How many of `results` counted, and how many were refused as duplicates.
fn counted_and_duplicates(results: &[Result<i32, Code>]) -> (usize, usize) {
    let count = |wanted: Result<i32, Code>| results.iter().filter(|r| **r == wanted).count();
    (
        count(Ok(fpb::VoteOutcome::Counted as i32)),
        count(Err(Code::AlreadyExists)),
    )
}

async fn stored_votes(node: &Node, round: u64) -> Vec<fpb::RecordedVote> {
    node.finality
        .clone()
        .round(fpb::RoundRequest {
            round,
            ..Default::default()
        })
        .await
        .expect("round known")
        .into_inner()
        .round
        .expect("set")
        .votes
}

async fn slashed(node: &Node) -> usize {
    node.finality
        .clone()
        .slashed_verifiers(fpb::SlashedVerifiersRequest {})
        .await
        .expect("query")
        .into_inner()
        .verifiers
        .len()
}

#[sqlx::test]
async fn the_same_vote_sent_many_times_at_once_is_stored_once(pool: PgPool) {
    let (node, verifiers) = network(pool).await;
    let r1 = node.module.close_round().await.expect("round 1");
    let a = &verifiers[0];
    let results = send_at_once(&node, vec![a.vote(1, r1.round_hash); 8]).await;
    let (counted, duplicates) = counted_and_duplicates(&results);
    assert_eq!((counted, duplicates), (1, 7), "{results:?}");
    // Stored as sent, its Merkle proof's aunts included.
    let stored = stored_votes(&node, 1).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].vote,
        Some(fiamma::node::finality::wire::vote_to_pb(
            &a.vote(1, r1.round_hash)
        ))
    );
    assert!(stored[0].agrees);
    assert_eq!(slashed(&node).await, 0);
}

#[sqlx::test]
async fn two_messages_sent_at_once_are_one_vote_and_one_equivocation(pool: PgPool) {
    let (node, verifiers) = network(pool).await;
    let r1 = node.module.close_round().await.expect("round 1");
    // Every verifier sends both of its messages at the same time, all verifiers at once.
    let votes = verifiers
        .iter()
        .flat_map(|v| [v.vote(1, r1.round_hash), v.vote(1, [0xee; 32])])
        .collect();
    let results = send_at_once(&node, votes).await;
    for pair in results.chunks(2) {
        let mut outcomes: Vec<i32> = pair.iter().map(|r| r.expect("accepted")).collect();
        outcomes.sort_unstable();
        let first = if outcomes.contains(&(fpb::VoteOutcome::Counted as i32)) {
            fpb::VoteOutcome::Counted
        } else {
            fpb::VoteOutcome::Disagrees
        } as i32;
        let mut expected = vec![first, fpb::VoteOutcome::Equivocation as i32];
        expected.sort_unstable();
        assert_eq!(outcomes, expected, "{results:?}");
    }
    assert_eq!(stored_votes(&node, 1).await.len(), SEEDS.len());
    assert_eq!(slashed(&node).await, SEEDS.len());
}

#[sqlx::test]
async fn a_slashed_verifier_cannot_vote_in_a_round_it_is_still_a_member_of(pool: PgPool) {
    let (node, verifiers) = network(pool).await;
    let r1 = node.module.close_round().await.expect("round 1");
    let r2 = node.module.close_round().await.expect("round 2");
    assert_eq!(r2.active_set.len(), SEEDS.len());
    let (a, c) = (&verifiers[0], &verifiers[2]);
    // Round 1 is read into the cache by A's vote before C is slashed.
    assert_eq!(
        send(&node, a, 1, r1.round_hash).await,
        Ok(fpb::VoteOutcome::Counted as i32)
    );
    assert_eq!(
        send(&node, c, 2, [0xee; 32]).await,
        Ok(fpb::VoteOutcome::Disagrees as i32)
    );
    assert_eq!(
        send(&node, c, 2, r2.round_hash).await,
        Ok(fpb::VoteOutcome::Equivocation as i32)
    );
    // C is still a member of round 1, but its key is public now.
    let refused = node
        .finality
        .clone()
        .add_finality_sig(vote_request(&c.vote(1, r1.round_hash)))
        .await
        .expect_err("slashed");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("slashed"),
        "{}",
        refused.message()
    );
    assert_eq!(stored_votes(&node, 1).await.len(), 1);
    // A third message of C on round 2 changes nothing either.
    let again = send(&node, c, 2, [0xdd; 32]).await;
    assert_eq!(again, Err(Code::AlreadyExists));
    assert_eq!(stored_votes(&node, 2).await.len(), 1);
    assert_eq!(slashed(&node).await, 1);
}

#[sqlx::test]
async fn a_cached_round_stops_taking_votes_when_it_expires(pool: PgPool) {
    let (node, verifiers) = network(pool).await;
    let r1 = node.module.close_round().await.expect("round 1");
    assert_eq!(
        send(&node, &verifiers[0], 1, r1.round_hash).await,
        Ok(fpb::VoteOutcome::Counted as i32)
    );
    for _ in 0..VOTE_EXPIRY {
        node.module.close_round().await.expect("round closes");
    }
    // The latest round is 1 + VOTE_EXPIRY: the last one taking votes on round 1.
    assert_eq!(
        send(&node, &verifiers[1], 1, r1.round_hash).await,
        Ok(fpb::VoteOutcome::Counted as i32)
    );
    node.module.close_round().await.expect("round closes");
    let refused = node
        .finality
        .clone()
        .add_finality_sig(vote_request(&verifiers[2].vote(1, r1.round_hash)))
        .await
        .expect_err("expired");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("expired"),
        "{}",
        refused.message()
    );
    assert_eq!(stored_votes(&node, 1).await.len(), 2);
}

#[sqlx::test]
async fn replayed_votes_of_many_voters_at_once_are_each_stored_once(pool: PgPool) {
    let (node, verifiers) = network(pool).await;
    let r1 = node.module.close_round().await.expect("round 1");
    // Each vote four times, in an order that differs from round to round of sending, so
    // that batches hold the same voters in different orders.
    let mut votes = Vec::new();
    for turn in 0..4 {
        for i in 0..verifiers.len() {
            let v = &verifiers[(i * 3 + turn) % verifiers.len()];
            votes.push(v.vote(1, r1.round_hash));
        }
    }
    let results = send_at_once(&node, votes).await;
    let (counted, duplicates) = counted_and_duplicates(&results);
    assert_eq!((counted, duplicates), (4, 12), "{results:?}");
    assert_eq!(stored_votes(&node, 1).await.len(), SEEDS.len());
}
