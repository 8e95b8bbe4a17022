//! The finality module's resource bounds over gRPC (issue 10): hostile commitments, proofs
//! beyond the per-proof and per-round limits, hostile numbers in requests and paginated
//! queries. Each attack is refused with its specific status and a short message naming the
//! limit, changes nothing, and the node keeps closing rounds afterwards.

mod node_finality_support;

use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_proto::finality::v1 as fpb;
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
