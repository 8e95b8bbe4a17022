//! The staking module over gRPC on loopback with a real PostgreSQL: a delegation's whole life
//! with real covenant adaptor signatures, observed by query and on the event stream.

mod node_support;

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};
use fiamma::node::module::ChainUpdate;
use fiamma_proto::staking::v1 as pb;
use node_support::*;
use sqlx::PgPool;
use tokio_stream::StreamExt;
use tonic::Code;

fn tip(height: u32) -> ChainUpdate {
    ChainUpdate {
        tip_height: height,
        tip_hash: BlockHash::from_byte_array([height as u8; 32]),
        light_client: None,
        inclusions: Vec::new(),
        spends: Vec::new(),
    }
}

async fn power_at(node: &mut Node, h: u32) -> Vec<(Vec<u8>, i64)> {
    node.client
        .voting_power_table(pb::VotingPowerTableRequest { btc_height: h })
        .await
        .expect("table")
        .into_inner()
        .entries
        .into_iter()
        .map(|e| (e.verifier_btc_pk, e.power_sat))
        .collect()
}

#[sqlx::test]
async fn a_delegation_lives_through_active_unbonded_and_expired(pool: PgPool) {
    let mut node = start(pool).await;
    let mut events = node
        .client
        .events(pb::EventsRequest { from_sequence: 1 })
        .await
        .expect("stream")
        .into_inner();

    let verifier = keypair(10);
    node.client
        .create_verifier(verifier_request(10))
        .await
        .expect("verifier registers");
    let v = node
        .client
        .verifier(pb::VerifierRequest {
            btc_pk: xonly(&verifier).serialize().to_vec(),
        })
        .await
        .expect("verifier query")
        .into_inner();
    assert_eq!(
        v.verifier.expect("present").status(),
        pb::VerifierStatus::Registered
    );

    // Two delegations: one will unbond, one will expire.
    let unbonds = registration(20, xonly(&verifier), 1);
    let expires = registration(21, xonly(&verifier), 2);
    let mut txids = Vec::new();
    for reg in [&unbonds, &expires] {
        let r = node
            .client
            .create_delegation(delegation_request(reg))
            .await
            .expect("valid registration accepted")
            .into_inner();
        assert_eq!(r.staking_txid, reg.staking_tx.compute_txid().to_string());
        assert_eq!(r.params_version, 0);
        assert_eq!(
            status_of(&mut node.client, &r.staking_txid).await,
            pb::DelegationStatus::Pending
        );
        txids.push(r.staking_txid);
    }

    // The first covenant member sees both as pending; after signing, neither.
    let pending = |node: &mut Node, member: u8| {
        let mut client = node.client.clone();
        async move {
            client
                .pending_delegations(pb::PendingDelegationsRequest {
                    covenant_pk: xonly(&covenant(member)).serialize().to_vec(),
                    page: None,
                })
                .await
                .expect("pending query")
                .into_inner()
                .delegations
                .len()
        }
    };
    assert_eq!(pending(&mut node, 0).await, 2);

    for reg in [&unbonds, &expires] {
        for member in 0..QUORUM as u8 {
            let r = node
                .client
                .add_covenant_sigs(covenant_request(reg, &covenant(member), xonly(&verifier)))
                .await
                .expect("real signatures accepted")
                .into_inner();
            assert_eq!(r.signatures, u32::from(member) + 1);
            let want = if u32::from(member) + 1 < QUORUM {
                pb::DelegationStatus::Pending
            } else {
                pb::DelegationStatus::Verified
            };
            assert_eq!(r.status(), want);
        }
    }
    assert_eq!(pending(&mut node, 0).await, 0, "member 0 signed both");
    assert_eq!(
        pending(&mut node, 8).await,
        0,
        "neither is pending any more"
    );

    // Bitcoin: both included at 100; k-deep at 102.
    let ids: Vec<Txid> = txids.iter().map(|t| t.parse().expect("txid")).collect();
    let mut update = tip(101);
    update.inclusions = vec![(ids[0], 100), (ids[1], 100)];
    node.module
        .apply_chain_update(&update)
        .await
        .expect("applied");
    assert_eq!(
        status_of(&mut node.client, &txids[0]).await,
        pb::DelegationStatus::Verified,
        "1-deep only"
    );
    let mut update = tip(102);
    update.inclusions = vec![(ids[0], 100), (ids[1], 100)];
    node.module
        .apply_chain_update(&update)
        .await
        .expect("applied");
    for t in &txids {
        assert_eq!(
            status_of(&mut node.client, t).await,
            pb::DelegationStatus::Active
        );
    }
    let pk = xonly(&verifier).serialize().to_vec();
    assert_eq!(
        power_at(&mut node, 102).await,
        vec![(pk.clone(), 2 * VALUE as i64)]
    );
    assert!(power_at(&mut node, 101).await.is_empty());

    // The first is unbonded by a spend at 110.
    let spender = Txid::from_byte_array([0x55; 32]);
    let mut update = tip(110);
    update.spends = vec![(ids[0], spender)];
    node.module
        .apply_chain_update(&update)
        .await
        .expect("applied");
    assert_eq!(
        status_of(&mut node.client, &txids[0]).await,
        pb::DelegationStatus::Unbonded
    );
    assert_eq!(
        power_at(&mut node, 110).await,
        vec![(pk.clone(), VALUE as i64)]
    );

    // The second expires when tip + U reaches start + T = 200, i.e. at 195.
    node.module
        .apply_chain_update(&tip(194))
        .await
        .expect("applied");
    assert_eq!(
        status_of(&mut node.client, &txids[1]).await,
        pb::DelegationStatus::Active
    );
    node.module
        .apply_chain_update(&tip(195))
        .await
        .expect("applied");
    assert_eq!(
        status_of(&mut node.client, &txids[1]).await,
        pb::DelegationStatus::Expired
    );
    assert!(power_at(&mut node, 195).await.is_empty());
    assert_eq!(
        power_at(&mut node, 150).await,
        vec![(pk.clone(), VALUE as i64)]
    );

    // Late covenant signatures on an ended delegation are refused with a precondition error.
    let late = node
        .client
        .add_covenant_sigs(covenant_request(&expires, &covenant(8), xonly(&verifier)))
        .await
        .expect_err("ended");
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");

    // Selective slashing with the verifier's secret key slashes it.
    let r = node
        .client
        .selective_slashing_evidence(pb::SelectiveSlashingEvidenceRequest {
            staking_txid: txids[0].clone(),
            recovered_verifier_sk: verifier.secret_bytes().to_vec(),
        })
        .await
        .expect("evidence accepted")
        .into_inner();
    assert_eq!(r.verifier_btc_pk, pk);

    // The stream saw every change, numbered without gaps.
    use pb::DelegationStatus as S;
    let mut seen = Vec::new();
    let want_changes = vec![
        (S::Unspecified, S::Pending),
        (S::Unspecified, S::Pending),
        (S::Pending, S::Verified),
        (S::Pending, S::Verified),
        (S::Verified, S::Active),
        (S::Verified, S::Active),
        (S::Active, S::Unbonded),
        (S::Active, S::Expired),
    ];
    let mut changes = Vec::new();
    let mut slashed = false;
    while !slashed {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .expect("events keep coming")
            .expect("stream open")
            .expect("event");
        seen.push(e.sequence);
        match e.kind.expect("kind") {
            pb::event::Kind::DelegationStatusChanged(c) => changes.push((c.from(), c.to())),
            pb::event::Kind::VerifierSlashed(s) => {
                assert_eq!(s.btc_pk, pk);
                assert_eq!(s.reason, "selective_slashing");
                slashed = true;
            }
            pb::event::Kind::VerifierCreated(c) => assert_eq!(c.btc_pk, pk),
        }
    }
    assert_eq!(changes, want_changes);
    assert_eq!(seen, (1..=seen.len() as u64).collect::<Vec<_>>());

    // A late subscriber replays the same log from the store.
    let replay: Vec<u64> = node
        .client
        .events(pb::EventsRequest { from_sequence: 3 })
        .await
        .expect("stream")
        .into_inner()
        .take(seen.len() - 2)
        .map(|e| e.expect("event").sequence)
        .collect()
        .await;
    assert_eq!(replay, seen[2..].to_vec());
}

#[sqlx::test]
async fn health_and_reflection_are_served(pool: PgPool) {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let node = start(pool).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(node.channel.clone());
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "fiamma.staking.v1.Staking".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        r.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let mut reflection = ServerReflectionClient::new(node.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let answer = answers.next().await.expect("one answer").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("expected a service list, got {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"fiamma.staking.v1.Staking".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}

#[sqlx::test]
async fn concurrent_covenant_signatures_reach_quorum_exactly_once(pool: PgPool) {
    let mut node = start(pool).await;
    let verifier = keypair(10);
    node.client
        .create_verifier(verifier_request(10))
        .await
        .expect("verifier");
    let reg = registration(20, xonly(&verifier), 1);
    node.client
        .create_delegation(delegation_request(&reg))
        .await
        .expect("registered");
    // All nine members at once: the ones below the quorum take the row lock only, the one
    // that reaches it takes the ordered path; exactly one VERIFIED transition results.
    let tasks: Vec<_> = (0..COMMITTEE)
        .map(|m| {
            let mut client = node.client.clone();
            let request = covenant_request(&reg, &covenant(m), xonly(&verifier));
            tokio::spawn(async move { client.add_covenant_sigs(request).await })
        })
        .collect();
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(
            t.await
                .expect("task")
                .expect("accepted")
                .into_inner()
                .signatures,
        );
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=u32::from(COMMITTEE)).collect::<Vec<_>>());
    let txid = reg.staking_tx.compute_txid().to_string();
    assert_eq!(
        status_of(&mut node.client, &txid).await,
        pb::DelegationStatus::Verified
    );
    let stored = all_delegations(&mut node.client).await;
    assert_eq!(stored[0].covenant_sigs.len(), usize::from(COMMITTEE));
    // Events: verifier, registration, one PENDING -> VERIFIED.
    assert_eq!(last_event(&mut node.client).await, 3);
}

#[sqlx::test]
async fn bip322_proofs_of_possession_are_accepted_and_served_back(pool: PgPool) {
    use bitcoin::secp256k1::SECP256K1;
    use bitcoin::{Address, Network};
    use fiamma::node::grpc::convert::proof_to_pb;
    use fiamma_staking::bip322::{sign_p2tr, sign_p2wpkh};
    use fiamma_staking::pop::{pop_message, PopRole, ProofOfPossession};

    let mut node = start(pool).await;
    // A verifier proves its key with a BIP-322 signature by its P2TR address.
    let v = keypair(10);
    let p2tr = Address::p2tr(SECP256K1, xonly(&v), None, Network::Regtest);
    let verifier_pop = ProofOfPossession::Bip322 {
        address: p2tr.to_string().parse().expect("address"),
        witness: sign_p2tr(
            &v,
            &pop_message(&contexts(), PopRole::Verifier, &account(10)),
        ),
    };
    let mut request = verifier_request(10);
    request.pop = Some(proof_to_pb(&verifier_pop));
    node.client
        .create_verifier(request.clone())
        .await
        .expect("BIP-322 P2TR proof accepted");
    let served = node
        .client
        .verifier(pb::VerifierRequest {
            btc_pk: xonly(&v).serialize().to_vec(),
        })
        .await
        .expect("verifier")
        .into_inner()
        .verifier
        .expect("verifier");
    assert_eq!(served.pop, request.pop);

    // A staker proves its key with a BIP-322 signature by its P2WPKH address.
    let staker = keypair(20);
    let compressed = bitcoin::CompressedPublicKey(staker.public_key());
    let p2wpkh = Address::p2wpkh(&compressed, Network::Regtest);
    let mut reg = registration(20, xonly(&v), 1);
    reg.pop = ProofOfPossession::Bip322 {
        address: p2wpkh.to_string().parse().expect("address"),
        witness: sign_p2wpkh(
            &staker,
            &pop_message(&contexts(), PopRole::Staker, &account(20)),
        ),
    };
    let request = delegation_request(&reg);
    node.client
        .create_delegation(request.clone())
        .await
        .expect("BIP-322 P2WPKH proof accepted");
    let served = node
        .client
        .delegation(pb::DelegationRequest {
            staking_txid: reg.staking_tx.compute_txid().to_string(),
        })
        .await
        .expect("delegation")
        .into_inner()
        .delegation
        .expect("delegation");
    assert_eq!(served.pop, request.pop);
    assert_eq!(
        served.pop.as_ref().map(|p| p.bip322_address.clone()),
        Some(p2wpkh.to_string())
    );
}

#[sqlx::test]
async fn a_delegation_stored_without_sighashes_is_co_signed_from_its_transactions(pool: PgPool) {
    // Registered before migration 0003 kept the sighashes with the delegation: the column is
    // NULL, and a node that never saw the registration computes them from the stored
    // transactions.
    let verifier = keypair(10);
    let reg = registration(20, xonly(&verifier), 1);
    {
        let mut first = start(pool.clone()).await;
        first
            .client
            .create_verifier(verifier_request(10))
            .await
            .expect("verifier");
        first
            .client
            .create_delegation(delegation_request(&reg))
            .await
            .expect("registered");
    }
    let txid = reg.staking_tx.compute_txid();
    let cleared = sqlx::query("UPDATE delegations SET covenant_sighashes = NULL")
        .execute(&pool)
        .await
        .expect("update");
    assert_eq!(cleared.rows_affected(), 1);

    let mut node = start(pool).await;
    for member in 0..QUORUM as u8 {
        node.client
            .add_covenant_sigs(covenant_request(&reg, &covenant(member), xonly(&verifier)))
            .await
            .expect("signature checked against the recomputed sighashes");
    }
    assert_eq!(
        status_of(&mut node.client, &txid.to_string()).await,
        pb::DelegationStatus::Verified
    );
    let mut forged = covenant_request(&reg, &covenant(QUORUM as u8), xonly(&verifier));
    if let Some(sigs) = forged.sigs.as_mut() {
        sigs.unbonding_sig[5] ^= 1;
    }
    let refused = node
        .client
        .add_covenant_sigs(forged)
        .await
        .expect_err("a bad signature is still refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
}
