//! Store tests against a real PostgreSQL: each `#[sqlx::test]` gets a fresh database with the
//! migrations applied.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Keypair, Secp256k1, SecretKey, XOnlyPublicKey};
use bitcoin::{BlockHash, Txid};
use fiamma_staking::delegation::DelegationSighashes;
use fiamma_staking::state::{DelegationState, DelegationStatus, Rules, VerifierState};
use sqlx::PgPool;

use super::*;

fn key(i: u16) -> XOnlyPublicKey {
    let mut bytes = [7u8; 32];
    bytes[..2].copy_from_slice(&(i + 1).to_be_bytes());
    let sk = SecretKey::from_slice(&bytes).expect("a small prefix keeps it below the order");
    Keypair::from_secret_key(&Secp256k1::signing_only(), &sk)
        .x_only_public_key()
        .0
}

fn txid(i: u16) -> Txid {
    let mut bytes = [0u8; 32];
    bytes[30..].copy_from_slice(&i.to_be_bytes());
    bytes[0] = 0xaa;
    Txid::from_byte_array(bytes)
}

fn new_verifier(pk: XOnlyPublicKey) -> NewVerifier {
    NewVerifier {
        btc_pk: pk,
        account: "fmma1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqlgnrdq".into(),
        description: Description {
            moniker: "v".into(),
            ..Description::default()
        },
        commission: "0.05".into(),
        pop: Pop {
            kind: PopKind::Bip340,
            signature: vec![1; 64],
        },
    }
}

fn new_delegation(id: u16, staker: XOnlyPublicKey, verifier: XOnlyPublicKey) -> NewDelegation {
    NewDelegation {
        staking_txid: txid(id),
        staker_account: "fmma1staker".into(),
        staker_btc_pk: staker,
        pop: Pop {
            kind: PopKind::Bip322,
            signature: vec![2; 65],
        },
        verifier_btc_pk: verifier,
        staking_time_blocks: 1000,
        staking_value_sat: 100_000 + u64::from(id),
        staking_tx: vec![0xde, 0xad],
        staking_output_index: 0,
        slashing_tx: vec![1],
        staker_slashing_sig: vec![3; 64],
        unbonding_time_blocks: 10,
        unbonding_tx: vec![2],
        unbonding_txid: txid(id + 30_000),
        unbonding_slashing_tx: vec![3],
        staker_unbonding_slashing_sig: vec![4; 64],
        params_version: 0,
    }
}

fn sigs(member: XOnlyPublicKey) -> CovenantSigs {
    CovenantSigs {
        covenant_pk: member,
        slashing_adaptor_sig: vec![5; 65],
        unbonding_sig: vec![6; 64],
        unbonding_slashing_adaptor_sig: vec![7; 65],
    }
}

async fn store_with_params(pool: PgPool) -> Store {
    let store = Store::from_pool(pool);
    store
        .record_params(&[ParamsRecord {
            version: 0,
            btc_activation_height: 0,
            body: serde_json::json!({ "covenant_quorum": 2 }),
        }])
        .await
        .expect("params recorded");
    store
}

async fn add_verifier(store: &Store, pk: XOnlyPublicKey) {
    let mut tx = store.begin().await.expect("begin");
    tx.insert_verifier(&new_verifier(pk)).await.expect("insert");
    tx.commit().await.expect("commit");
}

#[sqlx::test]
async fn params_versions_cannot_change_once_recorded(pool: PgPool) {
    let store = store_with_params(pool).await;
    let same = ParamsRecord {
        version: 0,
        btc_activation_height: 0,
        body: serde_json::json!({ "covenant_quorum": 2 }),
    };
    store
        .record_params(std::slice::from_ref(&same))
        .await
        .expect("idempotent");
    let changed = ParamsRecord {
        body: serde_json::json!({ "covenant_quorum": 3 }),
        ..same
    };
    assert!(matches!(
        store.record_params(&[changed]).await,
        Err(StoreError::ParamsChanged { version: 0 })
    ));
}

#[sqlx::test]
async fn a_verifier_reads_back_and_is_slashed_once(pool: PgPool) {
    let store = store_with_params(pool).await;
    let pk = key(1);
    add_verifier(&store, pk).await;
    let v = store.verifier(&pk).await.expect("read").expect("present");
    assert_eq!(v.registration, new_verifier(pk));
    assert_eq!(v.state, VerifierState::registered());

    let mut tx = store.begin().await.expect("begin");
    let mut state = v.state;
    state.slash(tx.tip()).expect("not slashed yet");
    tx.slash_verifier(&pk, &state, SlashingReason::SelectiveSlashing, None)
        .await
        .expect("slash");
    let events = tx.commit().await.expect("commit");
    assert_eq!(events.len(), 1);
    let v = store.verifier(&pk).await.expect("read").expect("present");
    assert_eq!(v.state.slashed_height(), Some(0));
    assert_eq!(v.slashing_reason, Some(SlashingReason::SelectiveSlashing));
}

#[sqlx::test]
async fn a_dropped_write_leaves_nothing_behind(pool: PgPool) {
    let store = store_with_params(pool).await;
    add_verifier(&store, key(1)).await;
    {
        let mut tx = store.begin().await.expect("begin");
        tx.insert_verifier(&new_verifier(key(2)))
            .await
            .expect("insert");
        tx.insert_delegation(
            &new_delegation(1, key(3), key(1)),
            &DelegationState::new(1000, 10),
        )
        .await
        .expect("insert");
        // Dropped here without commit.
    }
    assert_eq!(store.verifier(&key(2)).await.expect("read"), None);
    assert_eq!(store.delegation(&txid(1)).await.expect("read"), None);
    assert_eq!(store.last_event_sequence().await.expect("read"), 1);
    assert_eq!(store.events_from(0, 10).await.expect("read").len(), 1);
}

/// A covenant committee of keys 10, 11 and 12.
fn committee() -> Vec<XOnlyPublicKey> {
    vec![key(10), key(11), key(12)]
}

/// `committee`'s rules with quorum 2 and k = 2.
fn two_of_three(committee: &[XOnlyPublicKey]) -> Rules<'_> {
    Rules {
        covenant_pks: committee,
        covenant_quorum: 2,
        confirmation_depth: 2,
    }
}

#[sqlx::test]
async fn a_delegation_life_is_stored_with_gapless_events(pool: PgPool) {
    let store = store_with_params(pool).await;
    let verifier = key(1);
    add_verifier(&store, verifier).await;
    let committee = committee();
    let rules = two_of_three(&committee);
    let reg = new_delegation(1, key(2), verifier);

    let mut tx = store.begin().await.expect("begin");
    tx.insert_delegation(&reg, &DelegationState::new(1000, 10))
        .await
        .expect("insert");
    tx.commit().await.expect("commit");

    for member in &committee[..2] {
        let mut tx = store.begin().await.expect("begin");
        let mut d = tx
            .delegation(&reg.staking_txid)
            .await
            .expect("read")
            .expect("present");
        let added = d
            .state
            .add_covenant_signatures(*member, &rules, tx.tip())
            .expect("member");
        tx.insert_covenant_sigs(&reg.staking_txid, &sigs(*member))
            .await
            .expect("sigs");
        tx.save_state(&reg.staking_txid, &d.state, None)
            .await
            .expect("save");
        tx.record_transitions(&reg.staking_txid, &verifier, &added.transitions);
        tx.commit().await.expect("commit");
    }

    let mut tx = store.begin().await.expect("begin");
    tx.set_tip(120, &BlockHash::all_zeros(), Some(b"chain"))
        .await
        .expect("tip");
    let mut d = tx
        .delegation(&reg.staking_txid)
        .await
        .expect("read")
        .expect("present");
    let transitions = d
        .state
        .record_inclusion(100, &rules, tx.tip())
        .expect("deep");
    tx.save_state(&reg.staking_txid, &d.state, None)
        .await
        .expect("save");
    tx.record_transitions(&reg.staking_txid, &verifier, &transitions);
    tx.commit().await.expect("commit");

    let d = store
        .delegation(&reg.staking_txid)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(d.registration, reg);
    assert_eq!(d.state.status(), DelegationStatus::Active);
    assert_eq!(
        d.covenant_sigs,
        vec![sigs(committee[0]), sigs(committee[1])]
    );
    assert_eq!(
        store.tip().await.expect("tip"),
        (120, Some(BlockHash::all_zeros()))
    );
    assert_eq!(
        store.light_client().await.expect("lc"),
        Some(b"chain".to_vec())
    );

    let spender = txid(999);
    let mut tx = store.begin().await.expect("begin");
    let mut d = tx
        .delegation(&reg.staking_txid)
        .await
        .expect("read")
        .expect("present");
    let t = d.state.observe_spend(tx.tip()).expect("active unbonds");
    tx.save_state(&reg.staking_txid, &d.state, Some(&spender))
        .await
        .expect("save");
    tx.record_transitions(&reg.staking_txid, &verifier, &[t]);
    tx.commit().await.expect("commit");

    let events = store.events_from(1, 100).await.expect("events");
    let seqs: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=5).collect::<Vec<_>>());
    let path: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::DelegationStatusChanged { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    use DelegationStatus::*;
    assert_eq!(
        path,
        vec![
            (None, Pending),
            (Some(Pending), Verified),
            (Some(Verified), Active),
            (Some(Active), Unbonded)
        ]
    );
    let d = store
        .delegation(&reg.staking_txid)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(d.spending_txid, Some(spender));
    assert_eq!(store.events_from(5, 100).await.expect("events").len(), 1);
}

#[sqlx::test]
async fn listings_filter_and_paginate_and_pending_excludes_signed(pool: PgPool) {
    let store = store_with_params(pool).await;
    let (v1, v2) = (key(1), key(2));
    add_verifier(&store, v1).await;
    add_verifier(&store, v2).await;
    let mut tx = store.begin().await.expect("begin");
    for id in 0..7u16 {
        let verifier = if id % 2 == 0 { v1 } else { v2 };
        tx.insert_delegation(
            &new_delegation(id, key(100 + id % 3), verifier),
            &DelegationState::new(1000, 10),
        )
        .await
        .expect("insert");
    }
    tx.insert_covenant_sigs(&txid(0), &sigs(key(10)))
        .await
        .expect("sigs");
    tx.commit().await.expect("commit");

    let filter = DelegationFilter {
        verifier: Some(v1),
        ..DelegationFilter::default()
    };
    let first = store.delegations(&filter, None, 3).await.expect("page");
    let ids: Vec<Txid> = first.iter().map(|d| d.registration.staking_txid).collect();
    assert_eq!(ids, vec![txid(0), txid(2), txid(4)]);
    let rest = store
        .delegations(&filter, ids.last(), 3)
        .await
        .expect("page");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].registration.staking_txid, txid(6));

    let by_staker = DelegationFilter {
        staker: Some(key(100)),
        status: Some(DelegationStatus::Pending),
        ..DelegationFilter::default()
    };
    assert_eq!(
        store
            .delegations(&by_staker, None, 100)
            .await
            .expect("list")
            .len(),
        3
    );
    let active = DelegationFilter {
        status: Some(DelegationStatus::Active),
        ..DelegationFilter::default()
    };
    assert!(store
        .delegations(&active, None, 100)
        .await
        .expect("list")
        .is_empty());

    let pending = store
        .pending_for_covenant(&key(10), &[0], None, 100)
        .await
        .expect("pending");
    assert_eq!(pending.len(), 6, "member 10 signed delegation 0 already");
    assert!(store
        .pending_for_covenant(&key(10), &[1], None, 100)
        .await
        .expect("pending")
        .is_empty());
    assert_eq!(store.verifiers(None, 1).await.expect("verifiers").len(), 1);
    let all = store.verifiers(None, 10).await.expect("verifiers");
    let after = store
        .verifiers(Some(&all[0].registration.btc_pk), 10)
        .await
        .expect("verifiers");
    assert_eq!(after, all[1..].to_vec());
}

#[sqlx::test]
async fn voting_power_table_matches_the_state_machine(pool: PgPool) {
    let store = store_with_params(pool).await;
    let verifiers = [key(1), key(2), key(3)];
    for v in verifiers {
        add_verifier(&store, v).await;
    }
    let committee = vec![key(10)];
    let rules = Rules {
        covenant_pks: &committee,
        covenant_quorum: 1,
        confirmation_depth: 1,
    };
    let mut expected_states = Vec::new();
    let mut tx = store.begin().await.expect("begin");
    for id in 0..12u16 {
        let reg = new_delegation(id, key(200), verifiers[usize::from(id) % 3]);
        let mut state = DelegationState::new(reg.staking_time_blocks, reg.unbonding_time_blocks);
        tx.insert_delegation(&reg, &state).await.expect("insert");
        if id % 4 != 0 {
            state
                .add_covenant_signatures(committee[0], &rules, 10)
                .expect("member");
            state
                .record_inclusion(10 + u32::from(id), &rules, 12 + u32::from(id))
                .expect("deep");
        }
        if id % 4 == 3 {
            state.observe_spend(40 + u32::from(id));
        }
        tx.save_state(&reg.staking_txid, &state, None)
            .await
            .expect("save");
        expected_states.push((reg, state));
    }
    let mut slashed = VerifierState::registered();
    slashed.slash(30).expect("first");
    tx.slash_verifier(&verifiers[2], &slashed, SlashingReason::Equivocation, None)
        .await
        .expect("slash");
    tx.commit().await.expect("commit");

    for h in [0, 12, 15, 20, 29, 30, 45, 50, 60, 1100] {
        let mut expected: Vec<VotingPowerEntry> = Vec::new();
        for v in verifiers {
            let state = if v == verifiers[2] {
                slashed
            } else {
                VerifierState::registered()
            };
            let power: u64 = expected_states
                .iter()
                .filter(|(reg, s)| {
                    reg.verifier_btc_pk == v && s.is_active_at(h) && state.has_power_at(h)
                })
                .map(|(reg, _)| reg.staking_value_sat)
                .sum();
            if power > 0 {
                expected.push(VotingPowerEntry {
                    verifier: v,
                    power_sat: power,
                });
            }
        }
        expected.sort_by(|a, b| {
            b.power_sat
                .cmp(&a.power_sat)
                .then(a.verifier.serialize().cmp(&b.verifier.serialize()))
        });
        assert_eq!(
            store.voting_power_table(h).await.expect("table"),
            expected,
            "height {h}"
        );
    }
}

fn messages(i: u8) -> DelegationSighashes {
    DelegationSighashes::from_bytes(&[i; 96]).expect("96 bytes")
}

#[sqlx::test]
async fn a_registration_checks_tip_verifier_and_txid_in_one_statement(pool: PgPool) {
    let store = store_with_params(pool).await;
    add_verifier(&store, key(1)).await;
    let pending = DelegationState::new(1000, 10);
    let reg = new_delegation(1, key(3), key(1));
    let Registered::Inserted(events) = store
        .register_delegation(&reg, &pending, &messages(9), 0)
        .await
        .expect("statement")
    else {
        panic!("not inserted");
    };
    assert_eq!(store.events_from(2, 10).await.expect("events"), events);
    let d = store
        .delegation(&reg.staking_txid)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(d.registration, reg);
    assert_eq!(d.covenant_sighashes, Some(messages(9)));

    let other = new_delegation(2, key(3), key(1));
    let refused = [
        (&reg, 0, Registered::Duplicate),
        (&other, 5, Registered::TipMoved(0)),
    ];
    for (reg, tip, outcome) in refused {
        assert_eq!(
            store
                .register_delegation(reg, &pending, &messages(9), tip)
                .await
                .expect("statement"),
            outcome
        );
    }
    let unknown = new_delegation(2, key(3), key(5));
    assert_eq!(
        store
            .register_delegation(&unknown, &pending, &messages(9), 0)
            .await
            .expect("statement"),
        Registered::UnknownVerifier
    );

    let mut tx = store.begin().await.expect("begin");
    let mut slashed = tx
        .verifier(&key(1))
        .await
        .expect("read")
        .expect("present")
        .state;
    slashed.slash(0).expect("first");
    tx.slash_verifier(&key(1), &slashed, SlashingReason::Equivocation, None)
        .await
        .expect("slash");
    tx.commit().await.expect("commit");
    assert_eq!(
        store
            .register_delegation(&other, &pending, &messages(9), 0)
            .await
            .expect("statement"),
        Registered::VerifierSlashed
    );
    // Refusals wrote nothing: three events (verifier, registration, slashing), gapless.
    assert_eq!(store.last_event_sequence().await.expect("read"), 3);
    assert_eq!(store.events_from(0, 10).await.expect("events").len(), 3);
    assert_eq!(store.delegation(&txid(2)).await.expect("read"), None);
}

#[sqlx::test]
async fn a_covenant_signature_is_counted_only_against_the_state_it_was_decided_on(pool: PgPool) {
    let store = store_with_params(pool).await;
    let verifier = key(1);
    add_verifier(&store, verifier).await;
    let committee = committee();
    let rules = two_of_three(&committee);
    let reg = new_delegation(1, key(2), verifier);
    assert!(matches!(
        store
            .register_delegation(&reg, &DelegationState::new(1000, 10), &messages(1), 0)
            .await
            .expect("insert"),
        Registered::Inserted(_)
    ));
    let read = |store: Store| async move {
        store
            .delegation(&txid(1))
            .await
            .expect("read")
            .expect("present")
    };

    // Two members decide on the same state; the first one's signature is counted.
    let d = read(store.clone()).await;
    let before = d.state.record().clone();
    let mut first = d.state.clone();
    first
        .add_covenant_signatures(committee[0], &rules, 0)
        .expect("member");
    let mut conn = store.connection().await.expect("connection");
    assert!(conn
        .add_covenant_sigs(&txid(1), &sigs(committee[0]), &before, &first)
        .await
        .expect("statement"));
    let mut second = d.state.clone();
    second
        .add_covenant_signatures(committee[1], &rules, 0)
        .expect("member");
    assert!(!conn
        .add_covenant_sigs(&txid(1), &sigs(committee[1]), &before, &second)
        .await
        .expect("statement"));
    // The same member again is refused by the stored signature.
    let d = read(store.clone()).await;
    assert_eq!(d.covenant_sigs, vec![sigs(committee[0])]);
    let again = d.state.record().clone();
    assert!(!conn
        .add_covenant_sigs(
            &txid(1),
            &sigs(committee[0]),
            &again,
            &DelegationState::restore(again.clone()).expect("valid"),
        )
        .await
        .expect("statement"));
    // A status change cannot take the unordered path.
    let before = d.state.record().clone();
    let mut quorum = d.state.clone();
    let added = quorum
        .add_covenant_signatures(committee[1], &rules, 0)
        .expect("member");
    assert_eq!(added.transitions.len(), 1);
    assert!(matches!(
        conn.add_covenant_sigs(&txid(1), &sigs(committee[1]), &before, &quorum)
            .await,
        Err(StoreError::EventsWithoutOrder { .. })
    ));
    // Decided at another tip than the node's: nothing written.
    let mut at_seven = d.state.clone();
    let moved = at_seven
        .add_covenant_signatures(committee[1], &rules, 7)
        .expect("member");
    assert_eq!(
        conn.add_covenant_sigs_ordered(
            &txid(1),
            &verifier,
            &sigs(committee[1]),
            &before,
            &at_seven,
            &moved.transitions,
            7,
        )
        .await
        .expect("statement"),
        OrderedSigs::TipMoved(0)
    );

    let OrderedSigs::Applied(events) = conn
        .add_covenant_sigs_ordered(
            &txid(1),
            &verifier,
            &sigs(committee[1]),
            &before,
            &quorum,
            &added.transitions,
            0,
        )
        .await
        .expect("statement")
    else {
        panic!("not applied");
    };
    assert_eq!(events.len(), 1);
    let d = read(store.clone()).await;
    assert_eq!(d.state, quorum);
    assert_eq!(
        d.covenant_sigs,
        vec![sigs(committee[0]), sigs(committee[1])]
    );
    let logged = store.events_from(0, 10).await.expect("events");
    assert_eq!(
        logged.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(logged[2], events[0]);
    assert_eq!(store.last_event_sequence().await.expect("read"), 3);

    // The ordered statement on a stale state writes nothing and no event.
    let mut late = d.state.clone();
    let late_added = late
        .add_covenant_signatures(committee[2], &rules, 0)
        .expect("member");
    assert_eq!(
        conn.add_covenant_sigs_ordered(
            &txid(1),
            &verifier,
            &sigs(committee[2]),
            &before,
            &late,
            &late_added.transitions,
            0,
        )
        .await
        .expect("statement"),
        OrderedSigs::Changed
    );
    assert_eq!(read(store.clone()).await.covenant_sigs.len(), 2);
    assert_eq!(store.last_event_sequence().await.expect("read"), 3);
}
