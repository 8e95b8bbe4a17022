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
    network_with(pool, finality_params()).await
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

/// Sends `vote` and checks it is refused with `code` and a message containing `text`.
async fn assert_refused(node: &Node, vote: &fiamma_finality::rounds::Vote, code: Code, text: &str) {
    let refused = node
        .finality
        .clone()
        .add_finality_sig(vote_request(vote))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), code, "{}", refused.message());
    assert!(refused.message().contains(text), "{}", refused.message());
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
    assert_refused(
        &node,
        &c.vote(1, r1.round_hash),
        Code::FailedPrecondition,
        "slashed",
    )
    .await;
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
    assert_refused(
        &node,
        &verifiers[2].vote(1, r1.round_hash),
        Code::FailedPrecondition,
        "expired",
    )
    .await;
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

// ---- Races between votes, the round close, evidence and slashing (issue 10) ----

async fn network_with(
    pool: PgPool,
    params: fiamma::node::finality::FinalityParams,
) -> (Node, Vec<TestVerifier>) {
    let mut node = start_with(pool, params).await;
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

/// Waits until `n` sessions of this test's database wait for a lock.
async fn until_waiting_for_locks(pool: &PgPool, n: i64) {
    for _ in 0..1000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .expect("pg_stat_activity");
        if waiting >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{n} sessions never waited for a lock");
}

/// A transaction holding `v`'s finality row `FOR UPDATE` until it ends: a vote of `v` (its
/// foreign key) and a round close (its liveness write) wait for it.
async fn hold_row(pool: &PgPool, v: &TestVerifier) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 AS one FROM finality_verifiers WHERE verifier = $1 FOR UPDATE")
        .bind(v.key().serialize().as_slice())
        .fetch_one(&mut *holder)
        .await
        .expect("row locked");
    holder
}

/// A vote and the node's answer: its outcome, or the refusal's code and message.
type Answered = (fiamma_finality::rounds::Vote, Result<i32, (Code, String)>);

/// Sends `vote` in a task; the task returns it with the answer.
fn spawn_vote(
    node: &Node,
    vote: fiamma_finality::rounds::Vote,
) -> tokio::task::JoinHandle<Answered> {
    let mut client = node.finality.clone();
    tokio::spawn(async move {
        let answer = client
            .add_finality_sig(vote_request(&vote))
            .await
            .map(|r| r.into_inner().outcome)
            .map_err(|s| (s.code(), s.message().to_owned()));
        (vote, answer)
    })
}

/// The liveness flags stored for `v`, oldest first.
async fn signed_window(pool: &PgPool, v: &TestVerifier) -> Vec<bool> {
    sqlx::query_scalar("SELECT signed_window FROM finality_verifiers WHERE verifier = $1")
        .bind(v.key().serialize().as_slice())
        .fetch_one(pool)
        .await
        .expect("finality row")
}

/// What liveness must say for `v` given the stored votes: for each round whose liveness is
/// recorded and whose active set held `v`, whether a vote of `v` on the round hash is stored.
async fn window_from_votes(pool: &PgPool, v: &TestVerifier) -> Vec<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM votes x WHERE x.round = m.round \
           AND x.verifier = m.verifier AND x.agrees) \
         FROM round_members m JOIN rounds r ON r.round = m.round \
         WHERE r.liveness_done AND m.verifier = $1 ORDER BY m.round",
    )
    .bind(v.key().serialize().as_slice())
    .fetch_all(pool)
    .await
    .expect("votes")
}

/// The interleaving that used to harm an honest verifier: its vote's check ran before a
/// round close committed, and the close read the round's votes before the vote committed, so
/// the vote was answered COUNTED and recorded as missed. Here a test transaction holds the
/// voter's row, on which the vote (its foreign key) and the close (its liveness write) both
/// wait, to force that interleaving; now the vote holds the finality lock from its check to
/// its commit, so the close waits for it and sees it.
#[sqlx::test]
async fn a_vote_answered_counted_is_never_recorded_as_missed(pool: PgPool) {
    let mut params = finality_params();
    // Votes on round h close with round h + 1, which records h's liveness.
    params.vote_expiry = 0;
    let (node, verifiers) = network_with(pool.clone(), params).await;
    let r1 = node.module.close_round().await.expect("round 1");
    let a = &verifiers[0];
    let holder = hold_row(&pool, a).await;
    let vote = spawn_vote(&node, a.vote(1, r1.round_hash));
    until_waiting_for_locks(&pool, 1).await;
    let module = node.module.clone();
    let close = tokio::spawn(async move { module.close_round().await });
    until_waiting_for_locks(&pool, 2).await;
    holder.rollback().await.expect("released");
    let (_, answer) = vote.await.expect("vote task");
    let closed = close.await.expect("close task").expect("round 2");
    assert_eq!(closed.round, 2);
    assert_eq!(answer, Ok(fpb::VoteOutcome::Counted as i32));
    assert_eq!(signed_window(&pool, a).await, [true]);
    assert_eq!(window_from_votes(&pool, a).await, [true]);
    // The others did not vote: missed.
    assert_eq!(signed_window(&pool, &verifiers[1]).await, [false]);
}

/// A vote that loses the race against the close that expires its round is refused as
/// expired, never stored after the liveness of its round was recorded.
#[sqlx::test]
async fn a_vote_arriving_while_its_round_expires_is_refused_and_recorded_as_missed(pool: PgPool) {
    let mut params = finality_params();
    params.vote_expiry = 0;
    let (node, verifiers) = network_with(pool.clone(), params).await;
    let r1 = node.module.close_round().await.expect("round 1");
    let a = &verifiers[0];
    // The close waits for the test's lock on A's row after it has expired round 1; the vote
    // then waits for the close.
    let holder = hold_row(&pool, a).await;
    let module = node.module.clone();
    let close = tokio::spawn(async move { module.close_round().await });
    until_waiting_for_locks(&pool, 1).await;
    let vote = spawn_vote(&node, a.vote(1, r1.round_hash));
    until_waiting_for_locks(&pool, 2).await;
    holder.rollback().await.expect("released");
    close.await.expect("close task").expect("round 2");
    let (_, answer) = vote.await.expect("vote task");
    assert!(
        matches!(&answer, Err((Code::FailedPrecondition, m)) if m.contains("expired")),
        "{answer:?}"
    );
    assert!(stored_votes(&node, 1).await.is_empty());
    assert_eq!(signed_window(&pool, a).await, [false]);
}

#[sqlx::test]
async fn a_verifier_slashed_in_the_staking_module_cannot_vote_from_that_moment(pool: PgPool) {
    use fiamma_proto::staking::v1 as spb;
    let (mut node, verifiers) = network(pool).await;
    let r1 = node.module.close_round().await.expect("round 1");
    let r2 = node.module.close_round().await.expect("round 2");
    let b = &verifiers[1];
    // Round 1 is cached, with B a member.
    assert_eq!(
        send(&node, &verifiers[0], 1, r1.round_hash).await,
        Ok(fpb::VoteOutcome::Counted as i32)
    );
    let reg = node_support::registration(30, b.key(), 7);
    node.staking
        .create_delegation(node_support::delegation_request(&reg))
        .await
        .expect("delegation to B registered");
    node.staking
        .selective_slashing_evidence(spb::SelectiveSlashingEvidenceRequest {
            staking_txid: reg.staking_tx.compute_txid().to_string(),
            recovered_verifier_sk: b.keypair.secret_key().secret_bytes().to_vec(),
        })
        .await
        .expect("evidence accepted");
    // No round has closed since: the finality registry has not adopted the slashing yet,
    // and B is a member of rounds 1 and 2 still taking votes.
    for (round, hash) in [(1, r1.round_hash), (2, r2.round_hash)] {
        assert_refused(
            &node,
            &b.vote(round, hash),
            Code::FailedPrecondition,
            "slashed",
        )
        .await;
    }
    assert_eq!(stored_votes(&node, 1).await.len(), 1);
    assert!(stored_votes(&node, 2).await.is_empty());
}

#[sqlx::test]
async fn a_jailed_verifiers_votes_are_refused_in_rounds_it_is_still_a_member_of(pool: PgPool) {
    use fiamma_finality::rounds::LivenessRules;
    let mut params = finality_params();
    params.vote_expiry = 1;
    // Jailed when missing more than 2 of the last 4 rounds.
    params.liveness = LivenessRules::new(4, 2, 3).expect("valid rules");
    let (node, verifiers) = network_with(pool, params).await;
    let silent = &verifiers[3];
    let mut hashes = Vec::new();
    for round in 1..=5u64 {
        let closed = node.module.close_round().await.expect("round closes");
        hashes.push(closed.round_hash);
        if round == 5 {
            assert_eq!(closed.jailed, [silent.key()]);
            break;
        }
        for v in &verifiers[..3] {
            assert_eq!(
                send(&node, v, round, closed.round_hash).await,
                Ok(fpb::VoteOutcome::Counted as i32)
            );
        }
    }
    // Round 4 still takes votes and its active set holds the silent verifier, now jailed.
    assert_refused(
        &node,
        &silent.vote(4, hashes[3]),
        Code::FailedPrecondition,
        "jailed since round 3",
    )
    .await;
    assert_eq!(stored_votes(&node, 4).await.len(), 3);
    // The others vote on as before.
    assert_eq!(
        send(&node, &verifiers[0], 5, hashes[4]).await,
        Ok(fpb::VoteOutcome::Counted as i32)
    );
}

/// Votes, equivocation (as a vote and as evidence), slashing evidence and round closes all at
/// once: nothing deadlocks or aborts, every answer agrees with the store, and every
/// verifier's liveness record is exactly what its stored votes say.
#[sqlx::test]
async fn votes_evidence_and_closes_racing_agree_with_the_records(pool: PgPool) {
    let mut params = finality_params();
    params.vote_expiry = 1;
    let (node, verifiers) = network_with(pool.clone(), params).await;
    let d = &verifiers[3];
    let mut hashes = vec![[0u8; 32]];
    let r1 = node.module.close_round().await.expect("round 1");
    hashes.push(r1.round_hash);
    let mut answers: Vec<(fiamma_finality::rounds::Vote, Result<i32, Code>)> = Vec::new();
    for latest in 1..=8u64 {
        let mut tasks = Vec::new();
        // The close of the next round, racing everything below.
        let module = node.module.clone();
        let close = tokio::spawn(async move { module.close_round().await });
        for v in &verifiers[..3] {
            for round in [latest.saturating_sub(1).max(1), latest] {
                let vote = v.vote(round, hashes[round as usize]);
                tasks.push(spawn_vote(&node, vote));
            }
        }
        if latest == 3 {
            // D equivocates on round 3: both messages as votes, and as evidence.
            let (first, second) = (d.vote(3, hashes[3]), d.vote(3, [0xee; 32]));
            for vote in [first.clone(), second.clone()] {
                tasks.push(spawn_vote(&node, vote));
            }
            let mut client = node.finality.clone();
            let evidence = tokio::spawn(async move {
                client
                    .equivocation_evidence(fpb::EquivocationEvidenceRequest {
                        first: Some(fiamma::node::finality::wire::vote_to_pb(&first)),
                        second: Some(fiamma::node::finality::wire::vote_to_pb(&second)),
                        checkpoint: None,
                    })
                    .await
                    .map(drop)
                    .map_err(|s| s.code())
            });
            let e = evidence.await.expect("evidence task");
            assert!(
                matches!(e, Ok(()) | Err(Code::AlreadyExists)),
                "evidence: {e:?}"
            );
        } else if latest != 4 {
            let vote = d.vote(latest, hashes[latest as usize]);
            tasks.push(spawn_vote(&node, vote));
        }
        for t in tasks {
            let (vote, answer) = t.await.expect("vote task");
            answers.push((vote, answer.map_err(|(code, _)| code)));
        }
        let closed = close.await.expect("close task").expect("round closes");
        assert_eq!(closed.round, latest + 1);
        hashes.push(closed.round_hash);
    }
    // Two more closes record the liveness of every round voted on.
    for _ in 0..2 {
        node.module.close_round().await.expect("round closes");
    }
    for (vote, answer) in &answers {
        assert!(
            matches!(
                answer,
                Ok(_) | Err(Code::FailedPrecondition | Code::AlreadyExists)
            ),
            "vote of {} on round {}: {answer:?}",
            vote.voter,
            vote.round
        );
        let stored = sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT signature FROM votes WHERE round = $1 AND verifier = $2",
        )
        .bind(i64::try_from(vote.round).expect("small"))
        .bind(vote.voter.serialize().as_slice())
        .fetch_optional(&pool)
        .await
        .expect("votes");
        // A vote may be sent again in the next step (then a duplicate, or expired): it is
        // stored exactly when one of its sendings was accepted as a first vote.
        let accepted = answers.iter().any(|(w, a)| {
            w == vote
                && matches!(a, Ok(o) if *o == fpb::VoteOutcome::Counted as i32
                    || *o == fpb::VoteOutcome::Disagrees as i32)
        });
        let this_one = Some(vote.signature.to_byte_array().to_vec());
        assert_eq!(
            stored == this_one,
            accepted,
            "vote of {} on round {}: {answer:?}",
            vote.voter,
            vote.round
        );
    }
    assert_eq!(slashed(&node).await, 1);
    for v in &verifiers[..3] {
        let window = signed_window(&pool, v).await;
        assert_eq!(window, window_from_votes(&pool, v).await);
        assert!(window.len() >= 8, "{window:?}");
    }
}
