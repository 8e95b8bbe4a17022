//! The finality module's bad-input catalogue over gRPC: each malformed or rule-breaking
//! message gets its specific status and a message naming the fault, and the state read back
//! through the queries (rounds, votes, verifier records, slashed verifiers, events, and the
//! proofs of the next round) is unchanged.

mod node_finality_support;

use std::time::Duration;

use fiamma::node::finality::wire::vote_to_pb;
use fiamma_finality::merkle::Digest;
use fiamma_finality::rounds::unjail_message;
use fiamma_finality::rounds::Vote;
use fiamma_finality::zk::groth16::PROOF_LEN;
use fiamma_finality::zk::ProofSystem;
use fiamma_finality::zk::SizeCaps;
use fiamma_proto::finality::v1 as fpb;
use node_finality_support::*;
use sqlx::PgPool;
use tokio_stream::StreamExt;
use tonic::Code;

/// Staked verifiers with commitments; 5 is staked without a commitment; 6 has a commitment
/// but no stake.
const STAKED: [u8; 4] = [1, 2, 3, 4];
const NO_COMMITMENT: u8 = 5;
const NO_STAKE: u8 = 6;
/// A key the node has never seen.
const STRANGER: u8 = 7;

enum Req {
    Submit(fpb::SubmitProofRequest),
    Commit(fpb::CommitPubRandListRequest),
    Vote(fpb::AddFinalitySigRequest),
    Evidence(Box<fpb::EquivocationEvidenceRequest>),
    Unjail(fpb::UnjailVerifierRequest),
    Round(u64),
    EvidenceQuery(Vec<u8>),
    Verifier(Vec<u8>),
}

async fn send(node: &mut Node, req: Req) -> Result<(), tonic::Status> {
    let f = &mut node.finality;
    match req {
        Req::Submit(r) => f.submit_proof(r).await.map(drop),
        Req::Commit(r) => f.commit_pub_rand_list(r).await.map(drop),
        Req::Vote(r) => f.add_finality_sig(r).await.map(drop),
        Req::Evidence(r) => f.equivocation_evidence(*r).await.map(drop),
        Req::Unjail(r) => f.unjail_verifier(r).await.map(drop),
        Req::Round(round) => f
            .round(fpb::RoundRequest {
                round,
                ..Default::default()
            })
            .await
            .map(drop),
        Req::EvidenceQuery(pk) => f
            .evidence(fpb::EvidenceRequest {
                verifier_btc_pk: pk,
            })
            .await
            .map(drop),
        Req::Verifier(pk) => f
            .verifier(fpb::VerifierRequest {
                verifier_btc_pk: pk,
            })
            .await
            .map(drop),
    }
}

/// Everything the queries show, as one comparable string.
async fn snapshot(node: &mut Node) -> String {
    let f = &mut node.finality;
    let rounds = f
        .rounds(fpb::RoundsRequest {
            from_round: 0,
            limit: 0,
        })
        .await
        .expect("rounds")
        .into_inner();
    let mut out = format!("{rounds:?}\n");
    for r in &rounds.rounds {
        let round = f
            .round(fpb::RoundRequest {
                round: r.round,
                ..Default::default()
            })
            .await
            .expect("round");
        out += &format!("{:?}\n", round.into_inner());
    }
    for seed in 1..=STRANGER {
        let pk = xonly(&keypair(seed)).serialize().to_vec();
        let v = f
            .verifier(fpb::VerifierRequest {
                verifier_btc_pk: pk,
            })
            .await;
        out += &format!("{:?}\n", v.map(|r| r.into_inner()).map_err(|s| s.code()));
    }
    let slashed = f
        .slashed_verifiers(fpb::SlashedVerifiersRequest {})
        .await
        .expect("slashed");
    out += &format!("{:?}\n", slashed.into_inner());
    let mut events = f
        .events(fpb::EventsRequest { from_sequence: 1 })
        .await
        .expect("events")
        .into_inner();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        out += &format!("{:?}\n", e.expect("event"));
    }
    out
}

fn with(vote: &Vote, f: impl FnOnce(&mut fpb::FinalityVote)) -> fpb::FinalityVote {
    let mut v = vote_to_pb(vote);
    f(&mut v);
    v
}

fn vote_req(v: fpb::FinalityVote) -> Req {
    Req::Vote(fpb::AddFinalitySigRequest { vote: Some(v) })
}

fn evidence(first: Option<fpb::FinalityVote>, second: Option<fpb::FinalityVote>) -> Req {
    Req::Evidence(Box::new(fpb::EquivocationEvidenceRequest {
        first,
        second,
        checkpoint: None,
    }))
}

#[sqlx::test]
async fn each_bad_message_gets_its_status_and_changes_nothing(pool: PgPool) {
    let mut node = start(pool).await;
    let store = node.staking_module.store().clone();
    let mut verifiers = Vec::new();
    for seed in 1..=NO_STAKE {
        create_verifier(&mut node, seed).await;
        let v = TestVerifier::new(seed, 1, 50);
        if seed != NO_STAKE {
            stake(&store, v.key(), 1_000_000, u32::from(seed)).await;
        }
        if seed != NO_COMMITMENT {
            node.finality
                .commit_pub_rand_list(v.commit_request())
                .await
                .expect("commitment accepted");
        }
        verifiers.push(v);
    }
    let valid = fiamma_proof("valid");
    node.finality
        .submit_proof(proof_request(valid.clone()))
        .await
        .expect("accepted");
    let r1 = node.module.close_round().await.expect("round 1");
    assert_eq!(r1.active_set.len(), STAKED.len());
    let hash: Digest = r1.round_hash;
    let a = &verifiers[0];
    let b = &verifiers[1];
    node.finality
        .add_finality_sig(vote_request(&a.vote(1, hash)))
        .await
        .expect("A's vote counts");
    // A proof pending for round 2, so a resubmission is a duplicate.
    node.finality
        .submit_proof(proof_request(corrupted_proof()))
        .await
        .expect("accepted");

    let before = snapshot(&mut node).await;
    let stranger = TestVerifier::new(STRANGER, 1, 50);
    let b_vote = b.vote(1, hash);
    let caps = SizeCaps::of(ProofSystem::Groth16Bn254);
    let (vk, proof, inputs) = valid.clone();
    let sub = |vk: Vec<u8>, proof: Vec<u8>, inputs: Vec<u8>| {
        Req::Submit(fpb::SubmitProofRequest {
            proof_system: 1,
            verifying_key: vk,
            proof,
            public_inputs: inputs,
        })
    };
    let mut not_on_curve = proof.clone();
    not_on_curve[..31].fill(0xff);
    not_on_curve[31] = 0x0f;
    let commit = |seed: usize, f: &dyn Fn(&mut fpb::CommitPubRandListRequest)| {
        let mut r = verifiers[seed].commit_request();
        f(&mut r);
        Req::Commit(r)
    };
    let other_range =
        |seed: u8, start: u64, num: u64| TestVerifier::new(seed, start, num).commit_request();
    let stranger_sig = stranger.commit_request().signature;
    let jailed_sig = a
        .keypair
        .sign_schnorr(bitcoin::secp256k1::Message::from_digest(unjail_message(
            &contexts(),
            &a.key(),
            1,
        )));

    let cases: Vec<(&str, Code, &str, Req)> = vec![
        // SubmitProof
        (
            "proof system 0",
            Code::InvalidArgument,
            "unknown proof system code 0",
            Req::Submit(fpb::SubmitProofRequest {
                proof_system: 0,
                ..match sub(vk.clone(), proof.clone(), inputs.clone()) {
                    Req::Submit(r) => r,
                    _ => unreachable!(),
                }
            }),
        ),
        (
            "proof system beyond a byte",
            Code::InvalidArgument,
            "proof_system",
            Req::Submit(fpb::SubmitProofRequest {
                proof_system: 257,
                ..Default::default()
            }),
        ),
        (
            "oversized proof",
            Code::OutOfRange,
            "cap",
            sub(vk.clone(), vec![0; PROOF_LEN + 1], inputs.clone()),
        ),
        (
            "oversized verifying key",
            Code::OutOfRange,
            "cap",
            sub(
                vec![0; caps.verifying_key + 1],
                proof.clone(),
                inputs.clone(),
            ),
        ),
        (
            "oversized public inputs",
            Code::OutOfRange,
            "cap",
            sub(vk.clone(), proof.clone(), vec![0; caps.public_inputs + 1]),
        ),
        (
            "proof over max_proof_bytes",
            Code::OutOfRange,
            "max_proof_bytes 16384",
            sub(vec![0; 16 * 1024], proof.clone(), inputs.clone()),
        ),
        (
            "truncated proof",
            Code::InvalidArgument,
            "truncated",
            sub(vk.clone(), proof[..PROOF_LEN - 1].to_vec(), inputs.clone()),
        ),
        (
            "proof point not on the curve",
            Code::InvalidArgument,
            "malformed proof",
            sub(vk.clone(), not_on_curve, inputs.clone()),
        ),
        (
            "empty verifying key",
            Code::InvalidArgument,
            "malformed proof",
            sub(Vec::new(), proof.clone(), inputs.clone()),
        ),
        (
            "inputs of another arity",
            Code::InvalidArgument,
            "malformed proof",
            sub(
                vk.clone(),
                proof.clone(),
                inputs[..inputs.len() - 32].to_vec(),
            ),
        ),
        (
            "duplicate pending proof",
            Code::AlreadyExists,
            "already pending",
            Req::Submit(proof_request(corrupted_proof())),
        ),
        // CommitPubRandList
        (
            "commitment key of 31 bytes",
            Code::InvalidArgument,
            "verifier_btc_pk",
            commit(1, &|r| {
                r.verifier_btc_pk.pop();
            }),
        ),
        (
            "commitment by an unknown verifier",
            Code::NotFound,
            "not registered",
            Req::Commit(stranger.commit_request()),
        ),
        (
            "commitment of zero rounds",
            Code::InvalidArgument,
            "num_pub_rand",
            commit(1, &|r| r.num_pub_rand = 0),
        ),
        (
            "commitment below min_pub_rand",
            Code::InvalidArgument,
            "min_pub_rand",
            Req::Commit(other_range(2, 100, MIN_PUB_RAND - 1)),
        ),
        (
            "commitment over max_pub_rand",
            Code::InvalidArgument,
            "max_pub_rand 100000",
            commit(1, &|r| r.num_pub_rand = 100_001),
        ),
        (
            "commitment starting before the latest round",
            Code::FailedPrecondition,
            "before the latest closed round 1",
            Req::Commit(other_range(2, 0, 20)),
        ),
        (
            "commitment starting beyond the largest round",
            Code::InvalidArgument,
            "start_round",
            commit(1, &|r| r.start_round = u64::MAX - 100),
        ),
        (
            "commitment too far ahead",
            Code::FailedPrecondition,
            "rounds after the current round",
            Req::Commit(other_range(2, 5_000, 20)),
        ),
        (
            "commitment signed by another key",
            Code::InvalidArgument,
            "signature",
            commit(1, &|r| r.signature = stranger_sig.clone()),
        ),
        (
            "commitment with a wrong-length root",
            Code::InvalidArgument,
            "commitment",
            commit(1, &|r| {
                r.commitment.push(0);
            }),
        ),
        (
            "commitment signature of 63 bytes",
            Code::InvalidArgument,
            "signature",
            commit(1, &|r| {
                r.signature.pop();
            }),
        ),
        (
            "overlapping commitment",
            Code::AlreadyExists,
            "overlaps",
            Req::Commit(other_range(2, 40, 20)),
        ),
        // AddFinalitySig
        (
            "vote missing",
            Code::InvalidArgument,
            "vote",
            Req::Vote(fpb::AddFinalitySigRequest { vote: None }),
        ),
        (
            "vote for an unknown round",
            Code::NotFound,
            "round 2 is unknown",
            vote_req(vote_to_pb(&b.vote(2, hash))),
        ),
        (
            "vote for a round beyond the largest",
            Code::InvalidArgument,
            "vote.round",
            vote_req(with(&b_vote, |v| v.round = u64::MAX)),
        ),
        (
            "vote for round 0",
            Code::NotFound,
            "round 0 is unknown",
            vote_req(with(&b_vote, |v| v.round = 0)),
        ),
        (
            "vote by a verifier without stake",
            Code::FailedPrecondition,
            "not in the active set",
            vote_req(vote_to_pb(&verifiers[5].vote(1, hash))),
        ),
        (
            "vote by a verifier without a commitment",
            Code::FailedPrecondition,
            "not in the active set",
            vote_req(vote_to_pb(&verifiers[4].vote(1, hash))),
        ),
        (
            "vote with a wrong Merkle proof",
            Code::InvalidArgument,
            "not committed",
            vote_req(with(&b_vote, |v| {
                if let Some(p) = v.proof.as_mut() {
                    p.aunts[0][0] ^= 1;
                }
            })),
        ),
        (
            "vote with a wrong pr",
            Code::InvalidArgument,
            "not committed",
            vote_req(with(&b_vote, |v| {
                v.public_randomness = b.vote(2, hash).public_randomness.as_bytes().to_vec()
            })),
        ),
        (
            "vote with the proof of another round",
            Code::InvalidArgument,
            "not committed",
            vote_req(with(&b_vote, |v| {
                v.proof = vote_to_pb(&b.vote(2, hash)).proof
            })),
        ),
        (
            "vote with a bad signature",
            Code::InvalidArgument,
            "vote of verifier",
            vote_req(with(&b_vote, |v| v.signature[31] ^= 1)),
        ),
        (
            "vote claiming another voter",
            Code::InvalidArgument,
            "not committed",
            vote_req(with(&b_vote, |v| {
                v.verifier_btc_pk = verifiers[2].key().serialize().to_vec()
            })),
        ),
        (
            "duplicate vote",
            Code::AlreadyExists,
            "already voted",
            vote_req(vote_to_pb(&a.vote(1, hash))),
        ),
        (
            "vote with a 31-byte round hash",
            Code::InvalidArgument,
            "vote.round_hash",
            vote_req(with(&b_vote, |v| {
                v.round_hash.pop();
            })),
        ),
        (
            "vote with 65 aunts",
            Code::InvalidArgument,
            "vote.proof",
            vote_req(with(&b_vote, |v| {
                if let Some(p) = v.proof.as_mut() {
                    p.aunts = vec![vec![0; 32]; 65];
                }
            })),
        ),
        (
            "vote signature of 33 bytes",
            Code::InvalidArgument,
            "vote.signature",
            vote_req(with(&b_vote, |v| v.signature.push(0))),
        ),
        // EquivocationEvidence
        (
            "evidence: one vote twice",
            Code::InvalidArgument,
            "same round hash",
            evidence(Some(vote_to_pb(&b_vote)), Some(vote_to_pb(&b_vote))),
        ),
        (
            "evidence: two voters",
            Code::InvalidArgument,
            "different verifiers",
            evidence(
                Some(vote_to_pb(&b_vote)),
                Some(vote_to_pb(&verifiers[2].vote(1, [3; 32]))),
            ),
        ),
        (
            "evidence: two rounds",
            Code::InvalidArgument,
            "different rounds",
            evidence(
                Some(vote_to_pb(&b_vote)),
                Some(vote_to_pb(&b.vote(2, [3; 32]))),
            ),
        ),
        (
            "evidence: second signature bad",
            Code::InvalidArgument,
            "second vote",
            evidence(
                Some(vote_to_pb(&b_vote)),
                Some(with(&b.vote(1, [3; 32]), |v| v.signature[0] ^= 1)),
            ),
        ),
        (
            "evidence: second missing",
            Code::InvalidArgument,
            "second",
            evidence(Some(vote_to_pb(&b_vote)), None),
        ),
        (
            "evidence against an unknown verifier",
            Code::NotFound,
            "not registered",
            evidence(
                Some(vote_to_pb(&stranger.vote(1, [1; 32]))),
                Some(vote_to_pb(&stranger.vote(1, [2; 32]))),
            ),
        ),
        // UnjailVerifier
        (
            "unjail an active verifier",
            Code::FailedPrecondition,
            "not jailed",
            Req::Unjail(fpb::UnjailVerifierRequest {
                verifier_btc_pk: a.key().serialize().to_vec(),
                signature: jailed_sig.as_ref().to_vec(),
            }),
        ),
        (
            "unjail an unknown verifier",
            Code::NotFound,
            "not registered",
            Req::Unjail(fpb::UnjailVerifierRequest {
                verifier_btc_pk: stranger.key().serialize().to_vec(),
                signature: jailed_sig.as_ref().to_vec(),
            }),
        ),
        (
            "unjail with a 3-byte key",
            Code::InvalidArgument,
            "verifier_btc_pk",
            Req::Unjail(fpb::UnjailVerifierRequest {
                verifier_btc_pk: vec![1, 2, 3],
                signature: jailed_sig.as_ref().to_vec(),
            }),
        ),
        (
            "unjail with a 10-byte signature",
            Code::InvalidArgument,
            "signature",
            Req::Unjail(fpb::UnjailVerifierRequest {
                verifier_btc_pk: a.key().serialize().to_vec(),
                signature: vec![0; 10],
            }),
        ),
        // Queries
        (
            "round never closed",
            Code::NotFound,
            "round 99",
            Req::Round(99),
        ),
        (
            "round beyond the largest round",
            Code::InvalidArgument,
            "round",
            Req::Round(u64::MAX),
        ),
        (
            "evidence against an honest verifier",
            Code::NotFound,
            "equivocation evidence",
            Req::EvidenceQuery(a.key().serialize().to_vec()),
        ),
        (
            "verifier with a malformed key",
            Code::InvalidArgument,
            "verifier_btc_pk",
            Req::Verifier(vec![0; 5]),
        ),
    ];
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (name, code, needle, req) in cases {
        match send(&mut node, req).await {
            Ok(()) => failures.push(format!("{name}: accepted")),
            Err(s) if s.code() != code || !s.message().contains(needle) => failures.push(format!(
                "{name}: got {:?} {:?}, expected {code:?} containing {needle:?}",
                s.code(),
                s.message()
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        snapshot(&mut node).await,
        before,
        "a refused message changed the state"
    );

    // Round 2 holds exactly the one proof accepted before the catalogue.
    let r2 = node.module.close_round().await.expect("round 2");
    assert_eq!(r2.results.len(), 1);
}
