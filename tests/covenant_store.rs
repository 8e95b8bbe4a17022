//! The covenant member's local store on both of its databases: SQLite (the default) and
//! PostgreSQL, through the same statements.

mod node_process;
mod node_support;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Keypair, SecretKey, SECP256K1};
use bitcoin::TapSighash;
use fiamma_covenant::signing::{adaptor_sign_slashing, CovenantSignatures, VerifierAdaptorSig};
use fiamma_covenant_member::store::{
    MemberStore, Progress, RefusalKind, SignedMessages, SignedRecord,
};
use fiamma_staking::sighash::sign_with_aux_rand;
use sqlx::PgPool;

fn record(txid: &str) -> SignedRecord {
    let key =
        |b| Keypair::from_secret_key(SECP256K1, &SecretKey::from_slice(&[b; 32]).expect("key"));
    let messages = SignedMessages {
        slashing: TapSighash::from_byte_array([1; 32]),
        unbonding: TapSighash::from_byte_array([2; 32]),
        unbonding_slashing: TapSighash::from_byte_array([3; 32]),
    };
    let verifier = key(9).x_only_public_key().0;
    let (member, mut rng) = (key(5), rand::thread_rng());
    let adaptor = |sighash: &TapSighash, rng: &mut rand::rngs::ThreadRng| VerifierAdaptorSig {
        verifier,
        signature: adaptor_sign_slashing(&member, sighash, &verifier, rng).expect("signs"),
    };
    let signatures = CovenantSignatures {
        covenant: member.x_only_public_key().0,
        slashing: vec![adaptor(&messages.slashing, &mut rng)],
        unbonding_slashing: vec![adaptor(&messages.unbonding_slashing, &mut rng)],
        unbonding: sign_with_aux_rand(&messages.unbonding, &member, &[7; 32]),
    };
    SignedRecord {
        staking_txid: txid.to_owned(),
        params_version: 0,
        messages,
        signatures,
        delivered: false,
    }
}

async fn exercise(store: &MemberStore) {
    let a = record(&"aa".repeat(32));
    store.record_signed(&a).await.expect("recorded");
    assert_eq!(
        store.signed(&a.staking_txid).await.expect("reads"),
        Some(a.clone())
    );
    // A second record for one delegation is refused: no delegation is signed twice.
    let other = record(&a.staking_txid);
    assert!(store.record_signed(&other).await.is_err());
    assert_eq!(
        store.signed(&a.staking_txid).await.expect("reads"),
        Some(a.clone())
    );
    store
        .record_delivered(std::slice::from_ref(&a.staking_txid), &[])
        .await
        .expect("delivered");
    assert!(
        store
            .signed(&a.staking_txid)
            .await
            .expect("reads")
            .expect("there")
            .delivered
    );

    let b = "bb".repeat(32);
    assert_eq!(store.refusal(&b).await.expect("reads"), None);
    store
        .record_refusal(&b, RefusalKind::Params, "params version 1 is unknown")
        .await
        .expect("recorded");
    store
        .record_refusal(&b, RefusalKind::Rule, &"x".repeat(5000))
        .await
        .expect("recorded again");
    let refusal = store.refusal(&b).await.expect("reads").expect("there");
    assert_eq!((refusal.kind.as_str(), refusal.attempts), ("rule", 2));
    assert!(refusal.reason.len() < 600, "reasons are bounded");

    let progress = Progress {
        last_step_at: 1_700_000_000,
        pending_seen: 4,
        last_event_sequence: 77,
        params_problem: Some("params version 0 differs in slashing_rate".into()),
    };
    store.record_progress(&progress).await.expect("progress");
    store
        .record_progress(&progress)
        .await
        .expect("progress again");
    let summary = store.summary(10).await.expect("summary");
    assert_eq!((summary.signed, summary.delivered), (1, 1));
    assert_eq!(summary.refusals.len(), 1);
    assert_eq!(summary.progress, Some(progress));
}

#[tokio::test]
async fn the_sqlite_store_keeps_what_was_signed_across_a_reopen() {
    let dir = tempfile::tempdir().expect("dir");
    let url = fiamma_role::store::sqlite_url(&dir.path().join("covenant.db"));
    let store = MemberStore::open(&url).await.expect("opens");
    exercise(&store).await;
    drop(store);
    let again = MemberStore::open(&url).await.expect("reopens");
    assert!(again
        .signed(&"aa".repeat(32))
        .await
        .expect("reads")
        .is_some());
}

// The member migrates its own (empty) database; the node's schema is not there.
#[sqlx::test(migrations = false)]
async fn the_postgres_store_runs_the_same_statements(pool: PgPool) {
    let store = MemberStore::open(&node_process::database_url(&pool))
        .await
        .expect("opens and migrates");
    exercise(&store).await;
}

#[tokio::test]
async fn an_unknown_store_url_is_named() {
    let err = MemberStore::open("mysql://localhost/x")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("\"mysql\""), "{err}");
}
