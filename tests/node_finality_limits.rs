//! The finality module's resource bounds over gRPC (issue 10): hostile commitments, proofs
//! beyond the per-proof and per-round limits, hostile numbers in requests and paginated
//! queries. Each attack is refused with its specific status and a short message naming the
//! limit, changes nothing, and the node keeps closing rounds afterwards.

mod node_finality_support;

use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_proto::finality::v1 as fpb;
use fiamma_staking::params::ResourceLimits;
use node_finality_support::*;
use sqlx::PgPool;
use tonic::Code;

/// A CommitPubRandList request for any range, validly signed by verifier `seed` over an
/// arbitrary root (no randomness behind it: the node cannot tell, and must not need to).
fn signed_commitment(seed: u8, start: u64, num: u64) -> fpb::CommitPubRandListRequest {
    let kp = keypair(seed);
    let c = RandomnessCommitment::new(start, num, [7; 32]).expect("range within u64");
    let signature = c.sign(&kp, &contexts(), &[9; 32]);
    fpb::CommitPubRandListRequest {
        verifier_btc_pk: xonly(&kp).serialize().to_vec(),
        start_round: start,
        num_pub_rand: num,
        commitment: c.root().to_vec(),
        signature: signature.as_ref().to_vec(),
    }
}

/// Asserts a refusal with `code` whose message contains each of `needles` and is short.
fn assert_refused(r: Result<impl std::fmt::Debug, tonic::Status>, code: Code, needles: &[&str]) {
    let s = r.expect_err("refused");
    assert_eq!(s.code(), code, "{}", s.message());
    assert!(s.message().len() < 1024, "long message: {}", s.message());
    for n in needles {
        assert!(s.message().contains(n), "{:?} lacks {n:?}", s.message());
    }
}

/// A node with one staked verifier (seed 1) committed for rounds 1..=50, and one round
/// closed.
async fn node_with_a_round(pool: PgPool) -> Node {
    let mut node = start(pool).await;
    let store = node.staking_module.store().clone();
    create_verifier(&mut node, 1).await;
    let v = TestVerifier::new(1, 1, 50);
    stake(&store, v.key(), 1_000_000, 1).await;
    node.finality
        .commit_pub_rand_list(v.commit_request())
        .await
        .expect("commitment accepted");
    create_verifier(&mut node, 2).await;
    stake(&store, xonly(&keypair(2)), 1_000_000, 2).await;
    node.module.close_round().await.expect("round 1");
    node
}

#[sqlx::test]
async fn a_commitment_reaching_past_the_largest_round_is_refused_and_rounds_still_close(
    pool: PgPool,
) {
    let mut node = node_with_a_round(pool).await;
    // Before the fix this was accepted, and `start_round + num - 1` then overflowed BIGINT
    // in every later round close.
    let huge = signed_commitment(2, 2, i64::MAX as u64);
    assert_refused(
        node.finality.commit_pub_rand_list(huge).await,
        Code::InvalidArgument,
        &["num_pub_rand", "max_pub_rand"],
    );
    let closed = node.module.close_round().await.expect("round 2 closes");
    assert_eq!(closed.round, 2);
    assert_eq!(closed.active_set.len(), 1);
}

#[sqlx::test]
async fn commitments_beyond_the_limits_or_in_the_past_are_refused_and_change_nothing(pool: PgPool) {
    let mut node = node_with_a_round(pool).await;
    node.module.close_round().await.expect("round 2");
    let verifier = |node: &mut Node| {
        let mut f = node.finality.clone();
        async move {
            f.verifier(fpb::VerifierRequest {
                verifier_btc_pk: xonly(&keypair(2)).serialize().to_vec(),
            })
            .await
            .map(|r| format!("{:?}", r.into_inner()))
            .map_err(|s| s.code())
        }
    };
    let before = verifier(&mut node).await;
    let max_pub_rand = ResourceLimits::default().max_pub_rand;
    let cases = [
        (
            signed_commitment(2, 3, max_pub_rand + 1),
            Code::InvalidArgument,
            vec!["num_pub_rand", "max_pub_rand 100000"],
        ),
        (
            signed_commitment(2, 1, 20),
            Code::FailedPrecondition,
            vec!["before the latest closed round 2"],
        ),
        (
            signed_commitment(2, (i64::MAX as u64) + 1, 20),
            Code::InvalidArgument,
            vec!["start_round", "largest round"],
        ),
        (
            signed_commitment(2, u64::MAX - 19, 20),
            Code::InvalidArgument,
            vec!["start_round"],
        ),
    ];
    for (request, code, needles) in cases {
        assert_refused(
            node.finality.commit_pub_rand_list(request).await,
            code,
            &needles,
        );
    }
    assert_eq!(
        verifier(&mut node).await,
        before,
        "a refusal changed the record"
    );
    // The latest closed round itself is still a valid start, and at the limit is accepted.
    node.finality
        .commit_pub_rand_list(signed_commitment(2, 2, max_pub_rand))
        .await
        .expect("a commitment at max_pub_rand is accepted");
    assert_eq!(node.module.close_round().await.expect("round 3").round, 3);
}

/// The test node with `limits` in place of the default resource limits.
async fn node_with_limits(pool: PgPool, limits: ResourceLimits) -> Node {
    let mut params = finality_params();
    params.limits = limits;
    start_with(pool, params).await
}

/// Four distinct well-formed proofs (two valid sets and two crossings of their parts),
/// each of `PROOF_BYTES`.
fn four_proofs() -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let (vk_v, p_v, in_v) = fiamma_proof("valid");
    let (vk_c, p_c, in_c) = fiamma_proof("challenge");
    vec![
        (vk_v.clone(), p_v.clone(), in_v.clone()),
        (vk_v, p_c.clone(), in_v),
        (vk_c.clone(), p_c, in_c.clone()),
        (vk_c, p_v, in_c),
    ]
}

fn proof_bytes(p: &(Vec<u8>, Vec<u8>, Vec<u8>)) -> u64 {
    (p.0.len() + p.1.len() + p.2.len()) as u64
}

async fn submit(
    node: &mut Node,
    p: &(Vec<u8>, Vec<u8>, Vec<u8>),
) -> Result<tonic::Response<fpb::SubmitProofResponse>, tonic::Status> {
    node.finality.submit_proof(proof_request(p.clone())).await
}

/// Submits each of `proofs`, which must be accepted.
async fn submit_all(node: &mut Node, proofs: &[(Vec<u8>, Vec<u8>, Vec<u8>)]) {
    for p in proofs {
        submit(node, p).await.expect("within the limits");
    }
}

async fn pending_count(node: &Node) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM pending_proofs")
        .fetch_one(node.module.pool())
        .await
        .expect("count")
}

#[sqlx::test]
async fn a_full_round_refuses_further_proofs_until_it_closes(pool: PgPool) {
    let limits = ResourceLimits {
        max_proofs_per_round: 2,
        ..ResourceLimits::default()
    };
    let mut node = node_with_limits(pool, limits).await;
    let proofs = four_proofs();
    submit_all(&mut node, &proofs[..2]).await;
    assert_refused(
        submit(&mut node, &proofs[2]).await,
        Code::ResourceExhausted,
        &["round 1 is full", "max_proofs_per_round 2"],
    );
    assert_eq!(pending_count(&node).await, 2, "the refusal stored nothing");
    let closed = node.module.close_round().await.expect("round 1");
    let verdicts: Vec<bool> = closed
        .results
        .iter()
        .map(|r| r.verdict.is_valid())
        .collect();
    assert_eq!(verdicts, [true, false]);
    // The next round has room again.
    let accepted = node
        .finality
        .submit_proof(proof_request(proofs[2].clone()))
        .await
        .expect("round 2 has room")
        .into_inner();
    assert_eq!(accepted.round, 2);
    assert_eq!(
        node.module
            .close_round()
            .await
            .expect("round 2")
            .results
            .len(),
        1
    );
}

#[sqlx::test]
async fn a_round_refuses_proofs_beyond_its_bytes_and_a_proof_beyond_max_proof_bytes(pool: PgPool) {
    let proofs = four_proofs();
    let one = proof_bytes(&proofs[0]);
    let limits = ResourceLimits {
        max_round_proof_bytes: 2 * one + 1,
        max_proof_bytes: u32::try_from(one).expect("small"),
        ..ResourceLimits::default()
    };
    let mut node = node_with_limits(pool, limits).await;
    let mut too_big = proofs[0].clone();
    too_big.2.push(0);
    assert_refused(
        node.finality.submit_proof(proof_request(too_big)).await,
        Code::OutOfRange,
        &[
            &format!("{} bytes", one + 1),
            &format!("max_proof_bytes {one}"),
        ],
    );
    submit_all(&mut node, &proofs[..2]).await;
    assert_refused(
        submit(&mut node, &proofs[2]).await,
        Code::ResourceExhausted,
        &[&format!("max_round_proof_bytes {}", 2 * one + 1)],
    );
    assert_eq!(pending_count(&node).await, 2, "the refusals stored nothing");
    assert_eq!(
        node.module
            .close_round()
            .await
            .expect("round 1")
            .results
            .len(),
        2
    );
}

#[sqlx::test]
async fn concurrent_submissions_never_exceed_the_round_limit(pool: PgPool) {
    let limits = ResourceLimits {
        max_proofs_per_round: 3,
        ..ResourceLimits::default()
    };
    let node = node_with_limits(pool, limits).await;
    let mut tasks = Vec::new();
    for p in four_proofs() {
        let mut f = node.finality.clone();
        tasks.push(tokio::spawn(async move {
            f.submit_proof(proof_request(p)).await.map_err(|s| s.code())
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.expect("task").err());
    }
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 3, "{codes:?}");
    assert!(codes.contains(&Some(Code::ResourceExhausted)), "{codes:?}");
    assert_eq!(pending_count(&node).await, 3);
}

#[sqlx::test]
async fn the_close_uses_the_verdicts_stored_on_submission(pool: PgPool) {
    let mut node = start(pool).await;
    let valid = fiamma_proof("valid");
    node.finality
        .submit_proof(proof_request(valid))
        .await
        .expect("accepted");
    let stored: Option<bool> = sqlx::query_scalar("SELECT valid FROM pending_proofs")
        .fetch_one(node.module.pool())
        .await
        .expect("verdict");
    assert_eq!(stored, Some(true), "verified on submission");
    // Flipping the stored verdict flips the round's: the close verified nothing itself.
    sqlx::query("UPDATE pending_proofs SET valid = FALSE")
        .execute(node.module.pool())
        .await
        .expect("flip");
    let closed = node.module.close_round().await.expect("round 1");
    assert!(!closed.results[0].verdict.is_valid());
    // A pending proof without a verdict (stored before verdicts were) is verified before
    // the close takes the lock.
    node.finality
        .submit_proof(proof_request(fiamma_proof("valid")))
        .await
        .expect("accepted again in round 2");
    sqlx::query("UPDATE pending_proofs SET valid = NULL")
        .execute(node.module.pool())
        .await
        .expect("forget");
    let closed = node.module.close_round().await.expect("round 2");
    assert!(closed.results[0].verdict.is_valid());
}

#[sqlx::test]
async fn proof_bytes_are_dropped_after_the_retention_and_ids_and_verdicts_stay(pool: PgPool) {
    let mut node = start(pool).await;
    let retention = finality_params().proof_retention;
    node.finality
        .submit_proof(proof_request(fiamma_proof("valid")))
        .await
        .expect("accepted");
    node.module.close_round().await.expect("round 1");
    let proofs_of_1 = |node: &mut Node| {
        let mut f = node.finality.clone();
        async move {
            f.round_proofs(fpb::RoundProofsRequest {
                round: 1,
                from_position: 0,
                limit: 0,
            })
            .await
            .expect("round 1 proofs")
            .into_inner()
        }
    };
    for _ in 1..retention {
        node.module.close_round().await.expect("a round");
    }
    let kept = proofs_of_1(&mut node).await;
    assert!(!kept.proofs[0].bytes_dropped && !kept.proofs[0].proof.is_empty());
    // Round 1 + retention closes: round 1's bytes go.
    node.module
        .close_round()
        .await
        .expect("the round after the retention");
    let dropped = proofs_of_1(&mut node).await;
    let p = &dropped.proofs[0];
    assert!(p.bytes_dropped && p.proof.is_empty() && p.verifying_key.is_empty());
    assert_eq!(p.proof_id, kept.proofs[0].proof_id);
    assert!(p.valid);
    assert_eq!(dropped.next_position, None);
}

#[sqlx::test]
async fn round_results_and_round_proofs_come_in_bounded_pages(pool: PgPool) {
    let mut node = start(pool).await;
    submit_all(&mut node, &four_proofs()).await;
    node.module.close_round().await.expect("round 1");
    let mut seen = Vec::new();
    let mut from = Some(0);
    while let Some(results_from) = from {
        let page = node
            .finality
            .round(fpb::RoundRequest {
                round: 1,
                results_from,
                results_limit: 3,
            })
            .await
            .expect("page")
            .into_inner();
        let round = page.round.expect("round");
        assert!(round.results.len() <= 3);
        seen.extend(round.results);
        from = page.next_results_from;
    }
    assert_eq!(seen.len(), 4);
    // Three more proofs of 600 kB each, written straight into round 1: a page stops at the
    // 1 MiB bound but always holds one proof.
    for position in 4..7 {
        sqlx::query(
            "INSERT INTO round_results (round, position, proof_id, valid, proof_system, \
             verifying_key, proof, public_inputs) VALUES (1, $1, $2, FALSE, 1, '', $3, '')",
        )
        .bind(position)
        .bind(vec![position as u8; 32])
        .bind(vec![0u8; 600 * 1024])
        .execute(node.module.pool())
        .await
        .expect("insert");
    }
    let page = |from_position: u32| {
        let mut f = node.finality.clone();
        async move {
            f.round_proofs(fpb::RoundProofsRequest {
                round: 1,
                from_position,
                limit: 0,
            })
            .await
            .expect("page")
            .into_inner()
        }
    };
    let first = page(0).await;
    assert_eq!(first.proofs.len(), 5, "four small proofs and one large one");
    assert_eq!(first.next_position, Some(5));
    let second = page(5).await;
    assert_eq!(second.proofs.len(), 1);
    assert_eq!(second.next_position, Some(6));
    let last = page(6).await;
    assert_eq!(last.proofs.len(), 1);
    assert_eq!(last.next_position, None);
}

#[sqlx::test]
async fn hostile_numbers_in_queries_are_invalid_arguments_naming_the_field(pool: PgPool) {
    let mut node = node_with_a_round(pool).await;
    let f = &mut node.finality;
    let beyond = i64::MAX as u64 + 1;
    let round = |round, results_from| fpb::RoundRequest {
        round,
        results_from,
        results_limit: u32::MAX,
    };
    assert_refused(
        f.round(round(beyond, 0)).await,
        Code::InvalidArgument,
        &["round", "largest round"],
    );
    assert_refused(
        f.round(round(u64::MAX, 0)).await,
        Code::InvalidArgument,
        &["round"],
    );
    assert_refused(
        f.round(round(1, u32::MAX)).await,
        Code::InvalidArgument,
        &["results_from", "largest position"],
    );
    assert_refused(
        f.rounds(fpb::RoundsRequest {
            from_round: u64::MAX,
            limit: u32::MAX,
        })
        .await,
        Code::InvalidArgument,
        &["from_round"],
    );
    let proofs = |round, from_position| fpb::RoundProofsRequest {
        round,
        from_position,
        limit: u32::MAX,
    };
    assert_refused(
        f.round_proofs(proofs(beyond, 0)).await,
        Code::InvalidArgument,
        &["round"],
    );
    assert_refused(
        f.round_proofs(proofs(1, u32::MAX)).await,
        Code::InvalidArgument,
        &["from_position"],
    );
    // Limits beyond the caps are capped, not refused.
    let page = f.round(round(1, 0)).await.expect("capped").into_inner();
    assert_eq!(page.next_results_from, None);
    assert_eq!(node.module.close_round().await.expect("round 2").round, 2);
}
