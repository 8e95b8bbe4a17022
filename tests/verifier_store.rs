//! The verifier's local store on PostgreSQL runs the same statements as on SQLite: slashing
//! protection, commitments, disagreements, progress, and the interchange file.

mod node_process;
mod node_support;

use bitcoin::secp256k1::{Keypair, SECP256K1};
use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_verifier::interchange;
use fiamma_verifier::store::{
    Disagreement, Network, Progress, SignedRound, StoreError, VerifierStore,
};
use sqlx::PgPool;

fn net() -> Network {
    Network {
        chain_id: "fiamma-test".into(),
        module_address: "fmma1staking".into(),
    }
}

async fn exercise(store: &VerifierStore) {
    let key = Keypair::from_seckey_slice(SECP256K1, &[9; 32])
        .expect("valid")
        .x_only_public_key()
        .0;
    assert_eq!(store.salt(&net(), &key).await.expect("salt"), None);
    assert_eq!(
        store.join(&net(), &key, &[1; 32]).await.expect("join"),
        [1; 32]
    );
    let c = RandomnessCommitment::new(1, 10, [2; 32]).expect("range");
    store.record_commitment(&net(), &c).await.expect("commit");
    store.record_commitment(&net(), &c).await.expect("again");
    assert_eq!(store.commitments(&net()).await.expect("read"), vec![c]);
    let signed = SignedRound {
        round: 3,
        message_hash: [3; 32],
        vote: vec![1, 2, 3],
    };
    store.protect(&net(), &signed).await.expect("protect");
    store
        .protect(&net(), &signed)
        .await
        .expect("same message again");
    let other = SignedRound {
        message_hash: [4; 32],
        ..signed.clone()
    };
    assert!(matches!(
        store.protect(&net(), &other).await,
        Err(StoreError::Conflict { round: 3, .. })
    ));
    assert_eq!(store.signed(&net(), 3).await.expect("read"), Some(signed));
    store
        .record_disagreement(
            &net(),
            &Disagreement {
                round: 4,
                kind: "disagree".into(),
                reason: "verdicts differ on proofs ab".into(),
            },
        )
        .await
        .expect("disagreement");
    store
        .record_progress(&Progress {
            last_step_at: 1,
            current_round: 5,
            processed_round: 5,
            committed_until: 10,
            status: "ACTIVE".into(),
            power_sat: 7,
            missed_rounds: 1,
        })
        .await
        .expect("progress");
    let summary = store.summary(&net(), 5).await.expect("summary");
    assert_eq!(summary.signed, 1);
    assert_eq!(summary.last_signed, Some(3));
    assert_eq!(summary.disagreements, 1);
    assert_eq!(summary.progress.expect("progress").committed_until, 10);
    let file = interchange::export(store).await.expect("export");
    assert_eq!(file.data.len(), 1);
    assert_eq!(
        interchange::import(store, &file).await.expect("import"),
        interchange::Imported::default()
    );
}

#[tokio::test]
async fn the_sqlite_store_runs_the_statements() {
    let dir = tempfile::tempdir().expect("dir");
    let url = fiamma_role::store::sqlite_url(&dir.path().join("verifier.db"));
    exercise(&VerifierStore::open(&url).await.expect("opens")).await;
}

#[sqlx::test(migrations = false)]
async fn the_postgres_store_runs_the_same_statements(pool: PgPool) {
    let store = VerifierStore::open(&node_process::database_url(&pool))
        .await
        .expect("opens");
    exercise(&store).await;
}
