//! The finality module over gRPC with a real PostgreSQL: rounds over the real Fiamma proof and
//! a corrupted one, votes tallied by stake with the strict 2/3 rule, the certificate, the
//! event stream, equivocation slashing (in the finality registry and the staking module), and
//! the round timer.

mod node_finality_support;

use std::time::Duration;

use bitcoin::secp256k1::{SecretKey, SECP256K1};
use fiamma_finality::merkle::Digest;
use fiamma_finality::round::{round_hash, RoundHash, RoundResult};
use fiamma_finality::zk::{ProofSystem, Verdict, ZkProof};
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::staking::v1 as spb;
use node_finality_support::*;
use sqlx::PgPool;
use tokio_stream::StreamExt;

/// Stakes of the four verifiers: A + B is exactly 2/3 of the total, A + B + D one satoshi more.
const STAKES: [(u8, u64); 4] = [(1, 1_000_000), (2, 1_000_000), (3, 999_999), (4, 1)];
const TOTAL: u64 = 3_000_000;

struct Network {
    node: Node,
    verifiers: Vec<TestVerifier>,
}

async fn network(pool: PgPool) -> Network {
    let mut node = start(pool).await;
    let store = node.staking_module.store().clone();
    let mut verifiers = Vec::new();
    for (i, (seed, value)) in STAKES.into_iter().enumerate() {
        create_verifier(&mut node, seed).await;
        let v = TestVerifier::new(seed, 1, 50);
        stake(&store, v.key(), value, u32::try_from(i).expect("small")).await;
        node.finality
            .commit_pub_rand_list(v.commit_request())
            .await
            .expect("commitment accepted");
        verifiers.push(v);
    }
    Network { node, verifiers }
}

fn expected_result(parts: (Vec<u8>, Vec<u8>, Vec<u8>)) -> RoundResult {
    let proof = ZkProof::new(ProofSystem::Groth16Bn254, parts.0, parts.1, parts.2).expect("caps");
    RoundResult {
        proof_id: proof.proof_id(),
        verdict: proof.verify().expect("well formed"),
    }
}

async fn round(node: &mut Node, round: u64) -> fpb::Round {
    node.finality
        .round(fpb::RoundRequest {
            round,
            ..Default::default()
        })
        .await
        .expect("round known")
        .into_inner()
        .round
        .expect("round set")
}

async fn vote(node: &mut Node, v: &TestVerifier, round: u64, hash: Digest) -> fpb::VoteOutcome {
    let outcome = node
        .finality
        .add_finality_sig(vote_request(&v.vote(round, hash)))
        .await
        .expect("vote accepted")
        .into_inner()
        .outcome;
    fpb::VoteOutcome::try_from(outcome).expect("known outcome")
}

#[sqlx::test]
async fn a_round_over_fiamma_proofs_becomes_final_just_above_two_thirds(pool: PgPool) {
    let Network {
        mut node,
        verifiers,
    } = network(pool).await;
    let mut events = node
        .finality
        .events(fpb::EventsRequest { from_sequence: 1 })
        .await
        .expect("stream")
        .into_inner();

    let valid = node
        .finality
        .submit_proof(proof_request(fiamma_proof("valid")))
        .await
        .expect("valid proof accepted")
        .into_inner();
    assert_eq!(valid.round, 1);
    node.finality
        .submit_proof(proof_request(corrupted_proof()))
        .await
        .expect("corrupted but well-formed proof accepted");

    let closed = node.module.close_round().await.expect("round 1 closes");
    let expected = vec![
        expected_result(fiamma_proof("valid")),
        expected_result(corrupted_proof()),
    ];
    assert_eq!(expected[0].verdict, Verdict::Valid);
    assert_eq!(expected[1].verdict, Verdict::Invalid);
    assert_eq!(closed.results, expected);
    let hash = round_hash(1, &RoundHash([0; 32]), &expected);
    assert_eq!(closed.round_hash, hash.0);
    assert_eq!(valid.proof_id, expected[0].proof_id.as_bytes().to_vec());

    let r1 = round(&mut node, 1).await;
    assert_eq!(r1.round_hash, hash.0.to_vec());
    assert_eq!(r1.prev_round_hash, vec![0; 32]);
    assert_eq!(
        r1.results
            .iter()
            .map(|r| (r.proof_id.clone(), r.valid))
            .collect::<Vec<_>>(),
        vec![
            (expected[0].proof_id.as_bytes().to_vec(), true),
            (expected[1].proof_id.as_bytes().to_vec(), false)
        ]
    );
    assert_eq!(r1.total_power_sat, TOTAL);
    assert_eq!(r1.active_set.len(), 4);
    assert_eq!(r1.status(), fpb::RoundStatus::Open);

    // Verifiers fetch the proofs' bytes from the node, page by page.
    let mut served = Vec::new();
    for from_position in 0..3 {
        served.extend(
            node.finality
                .round_proofs(fpb::RoundProofsRequest {
                    round: 1,
                    from_position,
                    limit: 1,
                })
                .await
                .expect("round proofs")
                .into_inner()
                .proofs,
        );
    }
    let submitted = [fiamma_proof("valid"), corrupted_proof()];
    assert_eq!(served.len(), 2, "two proofs, then an empty page");
    for (i, (p, (vk, proof, inputs))) in served.iter().zip(submitted).enumerate() {
        assert_eq!(p.position as usize, i);
        assert_eq!(p.proof_id, expected[i].proof_id.as_bytes().to_vec());
        assert_eq!((p.proof_system, p.valid), (1, i == 0));
        assert_eq!(
            (&p.verifying_key, &p.proof, &p.public_inputs),
            (&vk, &proof, &inputs)
        );
    }
    let unknown = node
        .finality
        .round_proofs(fpb::RoundProofsRequest {
            round: 2,
            from_position: 0,
            limit: 0,
        })
        .await
        .expect_err("round 2 is not closed");
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // A and B: exactly 2/3 of the power, which is not final.
    for v in &verifiers[..2] {
        assert_eq!(
            vote(&mut node, v, 1, hash.0).await,
            fpb::VoteOutcome::Counted
        );
    }
    // C disagrees: recorded, not counted.
    assert_eq!(
        vote(&mut node, &verifiers[2], 1, [0xee; 32]).await,
        fpb::VoteOutcome::Disagrees
    );
    assert!(node.module.tally_now().await.expect("tally").is_empty());
    let r1 = round(&mut node, 1).await;
    assert_eq!(r1.status(), fpb::RoundStatus::Open);
    assert_eq!(r1.voted_power_sat, 2_000_000);
    assert!(r1.certificate.is_none());
    assert_eq!(r1.votes.len(), 3);

    // D's single satoshi makes it final.
    assert_eq!(
        vote(&mut node, &verifiers[3], 1, hash.0).await,
        fpb::VoteOutcome::Counted
    );
    assert_eq!(node.module.tally_now().await.expect("tally"), vec![1]);
    let r1 = round(&mut node, 1).await;
    assert_eq!(r1.status(), fpb::RoundStatus::Final);
    assert_eq!(r1.voted_power_sat, 2_000_001);
    let cert = r1.certificate.expect("final rounds carry a certificate");
    let mut signers: Vec<Vec<u8>> = [0, 1, 3]
        .iter()
        .map(|&i| verifiers[i].key().serialize().to_vec())
        .collect();
    signers.sort();
    assert_eq!(
        cert.entries
            .iter()
            .map(|e| e.verifier_btc_pk.clone())
            .collect::<Vec<_>>(),
        signers
    );
    // Each entry is key (32) ‖ pr (32) ‖ s (32).
    assert_eq!(cert.encoded.len(), 3 * 96);
    for e in &cert.entries {
        let v = verifiers
            .iter()
            .find(|v| v.key().serialize().to_vec() == e.verifier_btc_pk)
            .expect("a signer");
        let expected = v.vote(1, hash.0);
        assert_eq!(
            e.public_randomness,
            expected.public_randomness.as_bytes().to_vec()
        );
        assert_eq!(e.signature, expected.signature.to_byte_array().to_vec());
    }

    // The stream saw the close and the finality, in order.
    let first = events.next().await.expect("event").expect("ok");
    assert!(
        matches!(first.kind, Some(fpb::event::Kind::RoundClosed(ref c)) if c.round == 1 && c.proofs == 2 && c.total_power_sat == TOTAL)
    );
    let second = events.next().await.expect("event").expect("ok");
    assert!(
        matches!(second.kind, Some(fpb::event::Kind::RoundFinal(ref f))
        if f.round == 1 && f.voted_power_sat == 2_000_001 && f.certificate_digest == cert.digest)
    );
    assert_eq!((first.sequence, second.sequence), (1, 2));

    // A later close keeps the certificate as it was.
    node.module.close_round().await.expect("round 2 closes");
    assert_eq!(round(&mut node, 1).await.certificate, Some(cert));
}

/// The finality module's record of `v`.
async fn finality_record(node: &mut Node, v: &TestVerifier) -> fpb::FinalityVerifier {
    node.finality
        .verifier(fpb::VerifierRequest {
            verifier_btc_pk: v.key().serialize().to_vec(),
        })
        .await
        .expect("known")
        .into_inner()
        .verifier
        .expect("record")
}

/// SlashedVerifiers lists `v` alone, for `reason`, with its extracted key.
async fn assert_only_slashed(node: &mut Node, v: &TestVerifier, reason: &str) {
    let slashed = node
        .finality
        .slashed_verifiers(fpb::SlashedVerifiersRequest {})
        .await
        .expect("query")
        .into_inner()
        .verifiers;
    assert_eq!(slashed.len(), 1);
    assert_eq!(slashed[0].verifier_btc_pk, v.key().serialize().to_vec());
    assert_eq!(slashed[0].reason, reason);
    assert!(is_key_of(&slashed[0].extracted_secret_key, v));
}

/// The secret key as extracted may be either d or n − d; both have the verifier's x-only key.
fn is_key_of(extracted: &[u8], v: &TestVerifier) -> bool {
    let sk = SecretKey::from_slice(extracted).expect("a valid secret key");
    let (xonly, _) = sk.x_only_public_key(SECP256K1);
    xonly == v.key() && (sk == v.keypair.secret_key() || sk == v.keypair.secret_key().negate())
}

#[sqlx::test]
async fn equivocation_slashes_publishes_the_key_and_removes_the_power(pool: PgPool) {
    let Network {
        mut node,
        verifiers,
    } = network(pool).await;
    let mut events = node
        .finality
        .events(fpb::EventsRequest { from_sequence: 1 })
        .await
        .expect("stream")
        .into_inner();
    node.finality
        .submit_proof(proof_request(fiamma_proof("valid")))
        .await
        .expect("accepted");
    let r1 = node.module.close_round().await.expect("round 1 closes");
    let c = &verifiers[2];

    // C votes for another hash, then for the round's hash: two messages with one randomness.
    assert_eq!(
        vote(&mut node, c, 1, [0xee; 32]).await,
        fpb::VoteOutcome::Disagrees
    );
    assert_eq!(
        vote(&mut node, c, 1, r1.round_hash).await,
        fpb::VoteOutcome::Equivocation
    );

    let record = finality_record(&mut node, c).await;
    assert_eq!(record.status(), fpb::VerifierStatus::Slashed);
    assert_eq!(record.since_round, 1);

    let evidence = node
        .finality
        .evidence(fpb::EvidenceRequest {
            verifier_btc_pk: c.key().serialize().to_vec(),
        })
        .await
        .expect("evidence recorded")
        .into_inner()
        .evidence
        .expect("set");
    assert!(is_key_of(&evidence.extracted_secret_key, c));
    assert_eq!(evidence.round, 1);
    assert_eq!(evidence.first.expect("first").round_hash, vec![0xee; 32]);
    assert_eq!(
        evidence.second.expect("second").round_hash,
        r1.round_hash.to_vec()
    );

    assert_only_slashed(&mut node, c, "equivocation").await;

    // The staking module sees it slashed, too.
    let staking_view = node
        .staking
        .verifier(spb::VerifierRequest {
            btc_pk: c.key().serialize().to_vec(),
        })
        .await
        .expect("known")
        .into_inner();
    assert!(
        format!("{staking_view:?}").contains("slash"),
        "{staking_view:?}"
    );

    // Its power is gone from the next round; round 1 keeps its table.
    let r2 = node.module.close_round().await.expect("round 2 closes");
    assert_eq!(r2.active_set.len(), 3);
    assert!(r2.active_set.iter().all(|(k, _)| *k != c.key()));
    let r2q = round(&mut node, 2).await;
    assert_eq!(r2q.total_power_sat, TOTAL - 999_999);
    assert_eq!(round(&mut node, 1).await.total_power_sat, TOTAL);
    // It cannot vote in round 2, and its earlier evidence cannot be replayed.
    let refused = node
        .finality
        .add_finality_sig(vote_request(&c.vote(2, r2.round_hash)))
        .await
        .expect_err("not in the active set");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);

    // Anyone may submit two votes of A as evidence.
    let a = &verifiers[0];
    let response = node
        .finality
        .equivocation_evidence(fpb::EquivocationEvidenceRequest {
            first: Some(fiamma::node::finality::wire::vote_to_pb(
                &a.vote(2, r2.round_hash),
            )),
            second: Some(fiamma::node::finality::wire::vote_to_pb(
                &a.vote(2, [1; 32]),
            )),
            checkpoint: None,
        })
        .await
        .expect("evidence accepted")
        .into_inner();
    assert_eq!(response.verifier_btc_pk, a.key().serialize().to_vec());
    assert!(is_key_of(&response.extracted_secret_key, a));
    let again = node
        .finality
        .equivocation_evidence(fpb::EquivocationEvidenceRequest {
            first: Some(fiamma::node::finality::wire::vote_to_pb(
                &a.vote(2, r2.round_hash),
            )),
            second: Some(fiamma::node::finality::wire::vote_to_pb(
                &a.vote(2, [1; 32]),
            )),
            checkpoint: None,
        })
        .await
        .expect_err("already slashed");
    assert_eq!(again.code(), tonic::Code::AlreadyExists);
    let r3 = node.module.close_round().await.expect("round 3 closes");
    assert_eq!(r3.active_set.len(), 2);

    // Events: round 1 closed, C slashed, round 2 closed, A slashed, round 3 closed.
    let mut kinds = Vec::new();
    for _ in 0..5 {
        let e = events.next().await.expect("event").expect("ok");
        kinds.push(match e.kind.expect("kind") {
            fpb::event::Kind::RoundClosed(r) => format!("closed {}", r.round),
            fpb::event::Kind::VerifierSlashed(s) => {
                assert!(is_key_of(
                    &s.extracted_secret_key,
                    if s.verifier_btc_pk == c.key().serialize().to_vec() {
                        c
                    } else {
                        a
                    }
                ));
                format!("slashed in {}", s.round)
            }
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        kinds,
        [
            "closed 1",
            "slashed in 1",
            "closed 2",
            "slashed in 2",
            "closed 3"
        ]
    );
}

#[sqlx::test]
async fn the_timer_closes_rounds_every_interval(pool: PgPool) {
    let mut params = finality_params();
    params.round_interval = Duration::from_millis(150);
    let mut node = start_with(pool, params).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = fiamma::node::finality::closer::spawn_round_closer(node.module.clone(), async {
        let _ = stopped.await;
    });
    let mut seen = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = node
            .finality
            .rounds(fpb::RoundsRequest {
                from_round: 1,
                limit: 0,
            })
            .await
            .expect("rounds")
            .into_inner()
            .rounds
            .len();
        if seen >= 3 {
            break;
        }
    }
    let _ = stop.send(());
    task.await.expect("the closer stops cleanly");
    assert!(seen >= 3, "only {seen} rounds closed");
    // Any page tells where the rounds stand, even one past them.
    let all = node
        .finality
        .rounds(fpb::RoundsRequest {
            from_round: 1,
            limit: 0,
        })
        .await
        .expect("rounds")
        .into_inner();
    let last = all.rounds.last().expect("rounds").round;
    assert_eq!(all.latest_round, last);
    let past = node
        .finality
        .rounds(fpb::RoundsRequest {
            from_round: last + 10,
            limit: 1,
        })
        .await
        .expect("rounds")
        .into_inner();
    assert!(past.rounds.is_empty());
    assert_eq!(past.latest_round, last);
}

#[sqlx::test]
async fn a_silent_verifier_is_jailed_and_unjails_itself_after_its_jail_time(pool: PgPool) {
    use bitcoin::secp256k1::Message;
    use fiamma_finality::rounds::{unjail_message, LivenessRules};
    use fiamma_staking::context::SigningOp;

    let mut params = finality_params();
    params.vote_expiry = 1;
    // Jailed when missing more than 2 of the last 4 rounds; 3 rounds in jail.
    params.liveness = LivenessRules::new(4, 2, 3).expect("valid rules");
    let mut node = start_with(pool, params).await;
    let store = node.staking_module.store().clone();
    let mut verifiers = Vec::new();
    for (i, seed) in [1u8, 2, 3, 4].into_iter().enumerate() {
        create_verifier(&mut node, seed).await;
        let v = TestVerifier::new(seed, 1, 50);
        stake(&store, v.key(), 1_000, u32::try_from(i).expect("small")).await;
        node.finality
            .commit_pub_rand_list(v.commit_request())
            .await
            .expect("commitment accepted");
        verifiers.push(v);
    }
    let silent = &verifiers[3];
    // Rounds 1..=4: everyone but the silent verifier votes. Round r's liveness is recorded
    // when round r + 2 closes, so the third miss (round 3) jails it when round 5 closes.
    let mut jailed_at = None;
    for round in 1..=5u64 {
        let closed = node.module.close_round().await.expect("round closes");
        assert_eq!(closed.round, round);
        if !closed.jailed.is_empty() {
            assert_eq!(closed.jailed, vec![silent.key()]);
            jailed_at = Some(round);
            assert_eq!(closed.active_set.len(), 3, "jailed before the new table");
            break;
        }
        assert_eq!(closed.active_set.len(), 4);
        for v in &verifiers[..3] {
            vote(&mut node, v, round, closed.round_hash).await;
        }
    }
    assert_eq!(jailed_at, Some(5));
    let record = finality_record(&mut node, silent).await;
    assert_eq!(record.status(), fpb::VerifierStatus::Jailed);
    assert_eq!(record.since_round, 3);

    let sign_in = |contexts: &fiamma_staking::context::SigningContexts, since: u64| {
        silent
            .keypair
            .sign_schnorr(Message::from_digest(unjail_message(
                contexts,
                &silent.key(),
                since,
            )))
            .as_ref()
            .to_vec()
    };
    let sign = |since: u64| sign_in(&contexts(), since);
    let request = |signature: Vec<u8>| fpb::UnjailVerifierRequest {
        verifier_btc_pk: silent.key().serialize().to_vec(),
        signature,
    };
    // Too early: round 5 < 3 + 3.
    let early = node
        .finality
        .unjail_verifier(request(sign(3)))
        .await
        .expect_err("too early");
    assert_eq!(early.code(), tonic::Code::FailedPrecondition);
    assert!(
        early.message().contains("from round 6"),
        "{}",
        early.message()
    );
    node.module.close_round().await.expect("round 6 closes");
    // A signature binding another jailing is refused.
    let wrong = node
        .finality
        .unjail_verifier(request(sign(2)))
        .await
        .expect_err("wrong message");
    assert_eq!(wrong.code(), tonic::Code::PermissionDenied);
    // So is one without the fp_unjail context (the node's context is on), and one on the
    // retired tag-based message `sha256("fiamma/unjail/v1" ‖ pk ‖ u64be(since))`.
    let off = sign_in(&contexts().without(SigningOp::FpUnjail), 3);
    let tagged = {
        use bitcoin::hashes::{sha256, Hash, HashEngine};
        let mut engine = sha256::Hash::engine();
        engine.input(b"fiamma/unjail/v1");
        engine.input(&silent.key().serialize());
        engine.input(&3u64.to_be_bytes());
        let msg = Message::from_digest(sha256::Hash::from_engine(engine).to_byte_array());
        silent.keypair.sign_schnorr(msg).as_ref().to_vec()
    };
    for signature in [off, tagged] {
        let refused = node
            .finality
            .unjail_verifier(request(signature))
            .await
            .expect_err("not the fp_unjail message");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    }
    assert_eq!(
        finality_record(&mut node, silent).await.status(),
        fpb::VerifierStatus::Jailed
    );
    node.finality
        .unjail_verifier(request(sign(3)))
        .await
        .expect("unjailed");
    assert_eq!(
        finality_record(&mut node, silent).await.status(),
        fpb::VerifierStatus::Active
    );
    let r7 = node.module.close_round().await.expect("round 7 closes");
    assert!(r7.active_set.iter().any(|(k, _)| *k == silent.key()));
}

#[sqlx::test]
async fn selective_slashing_in_the_staking_module_slashes_in_finality_at_the_next_close(
    pool: PgPool,
) {
    let Network {
        mut node,
        verifiers,
    } = network(pool).await;
    let b = &verifiers[1];
    let mut events = node
        .finality
        .events(fpb::EventsRequest { from_sequence: 1 })
        .await
        .expect("stream")
        .into_inner();
    let reg = node_support::registration(30, b.key(), 7);
    node.staking
        .create_delegation(node_support::delegation_request(&reg))
        .await
        .expect("delegation to B registered");
    // B broadcast a slashing transaction itself; Extract gave its key, handed to the node.
    node.staking
        .selective_slashing_evidence(spb::SelectiveSlashingEvidenceRequest {
            staking_txid: reg.staking_tx.compute_txid().to_string(),
            recovered_verifier_sk: b.keypair.secret_key().negate().secret_bytes().to_vec(),
        })
        .await
        .expect("evidence accepted");

    let r1 = node.module.close_round().await.expect("round 1 closes");
    assert!(
        r1.active_set.iter().all(|(k, _)| *k != b.key()),
        "no power from the next round on"
    );
    assert_only_slashed(&mut node, b, "selective_slashing").await;
    let record = finality_record(&mut node, b).await;
    assert_eq!(record.status(), fpb::VerifierStatus::Slashed);

    let first = events.next().await.expect("event").expect("ok");
    assert!(
        matches!(first.kind, Some(fpb::event::Kind::VerifierSlashed(ref s))
            if s.verifier_btc_pk == b.key().serialize().to_vec()
            && is_key_of(&s.extracted_secret_key, b)),
        "{first:?}"
    );
    let second = events.next().await.expect("event").expect("ok");
    assert!(
        matches!(second.kind, Some(fpb::event::Kind::RoundClosed(ref c)) if c.round == 1),
        "{second:?}"
    );
    // Adopted once: the next close finds nothing new.
    node.module.close_round().await.expect("round 2 closes");
    let third = events.next().await.expect("event").expect("ok");
    assert!(
        matches!(third.kind, Some(fpb::event::Kind::RoundClosed(ref c)) if c.round == 2),
        "{third:?}"
    );
}
