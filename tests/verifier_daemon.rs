//! `fiamma verifier` as an operator runs it: the real binary, keystores made with its CLI,
//! against the real `fiamma node` binary (embedded chain, PostgreSQL), with rounds closing every
//! quarter second.

mod node_finality_support;
mod node_process;
mod verifier_support;

// `node_process` reads the shared node support at the crate root.
use node_finality_support::node_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bitcoin::secp256k1::{schnorr, XOnlyPublicKey};
use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_finality::round::{round_hash, RoundHash, RoundResult};
use fiamma_finality::rounds::Vote;
use fiamma_finality::zk::{ProofId, Verdict};
use fiamma_proto::client::{
    ClosedRoundView, FinalityEventStream, FinalityNode, GrpcNode, NodeError, ProofPage,
    RoundSummary, VerifierRecord, VoteOutcome,
};
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::finality::v1::finality_client::FinalityClient;
use fiamma_verifier::signer::KeystoreSigner;
use fiamma_verifier::store::VerifierStore;
use fiamma_verifier::verifier::{RoundOutcome, Verifier};
use node_finality_support::{contexts, corrupted_proof, fiamma_proof, keypair, proof_request};
use sqlx::PgPool;
use tonic::transport::Channel;
use verifier_support::*;

/// The rounds each verifier's key voted on, with the round hash of each vote.
async fn votes_of(
    client: &mut FinalityClient<Channel>,
    seed: u8,
    rounds: std::ops::RangeInclusive<u64>,
) -> BTreeMap<u64, Vec<Vec<u8>>> {
    let me = node_finality_support::xonly(&keypair(seed))
        .serialize()
        .to_vec();
    let mut votes = BTreeMap::new();
    for h in rounds {
        let r = round(client, h).await;
        let mine: Vec<Vec<u8>> = r
            .votes
            .iter()
            .filter_map(|v| v.vote.as_ref())
            .filter(|v| v.verifier_btc_pk == me)
            .map(|v| v.round_hash.clone())
            .collect();
        if !mine.is_empty() {
            votes.insert(h, mine);
        }
    }
    votes
}

#[sqlx::test]
async fn four_verifiers_register_commit_reverify_and_vote_across_several_batches(pool: PgPool) {
    let dir = tempfile::tempdir().expect("dir");
    let (node, addr) = start_node(dir.path(), &pool);
    let _node = Killed(node);
    let mut client = finality(addr).await;

    let configs = registered_and_staked(dir.path(), 1..=4, addr, &pool).await;
    // With no slashing-protection record of the network, the daemon refuses to start.
    let refused = fiamma(&[
        "verifier",
        "run",
        "--config",
        configs[0].to_str().expect("utf-8"),
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("--new-network"), "{err}");

    let _verifiers: Vec<Killed> = configs
        .iter()
        .map(|c| Killed(spawn_verifier(c, true)))
        .collect();

    // Once all four are in the active set, a round with two valid proofs and an invalid one.
    let mut first_full = 0;
    for _ in 0..200 {
        let h = current_round(&mut client).await;
        if h > 0 && round(&mut client, h).await.active_set.len() == 4 {
            first_full = h;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(first_full > 0, "the four verifiers never became active");
    // Submitted right after a round closes, so that all three land in one round (250 ms);
    // under heavy load they may straddle a close, and then the next round is tried.
    let mut proof_round = 0;
    for _ in 0..10 {
        let before = current_round(&mut client).await;
        wait_for_round(&mut client, before + 1, 10).await;
        // Sent together: the node verifies each on arrival, and in a debug build on a loaded
        // machine one after the other could outlast a round.
        let submit = |parts| {
            let mut client = client.clone();
            async move {
                client
                    .submit_proof(proof_request(parts))
                    .await
                    .expect("proof taken")
                    .into_inner()
                    .round
            }
        };
        let (a, b, c) = tokio::join!(
            submit(fiamma_proof("valid")),
            submit(corrupted_proof()),
            submit(fiamma_proof("challenge"))
        );
        let rounds = [a, b, c];
        if rounds.iter().all(|r| *r == rounds[0]) {
            proof_round = rounds[0];
            break;
        }
    }
    assert!(proof_round > 0, "three proofs never landed in one round");

    // Run past several commitment batches (10 rounds each).
    let end = first_full + 35;
    wait_for_round(&mut client, end, 60).await;
    tokio::time::sleep(Duration::from_millis(3 * ROUND_MS)).await;

    let with_proofs = round(&mut client, proof_round).await;
    assert_eq!(with_proofs.results.len(), 3);
    assert_eq!(
        with_proofs.status(),
        fpb::RoundStatus::Final,
        "the round with proofs is final"
    );
    assert_eq!(with_proofs.votes.len(), 4, "all four voted on it");
    assert!(with_proofs.votes.iter().all(|v| v.agrees));

    // Randomness never lapsed: every round from the first full one on had all four active,
    // and each verifier's commitments are contiguous over several batches.
    for h in first_full..=end {
        let r = round(&mut client, h).await;
        assert_eq!(r.active_set.len(), 4, "round {h} lacks an active verifier");
        assert_eq!(
            r.status(),
            fpb::RoundStatus::Final,
            "round {h} is not final"
        );
    }
    for seed in 1..=4u8 {
        let rec = record(&mut client, seed).await;
        assert!(rec.commitments.len() >= 4, "{seed}: {:?}", rec.commitments);
        let mut starts: Vec<(u64, u64)> = rec
            .commitments
            .iter()
            .map(|c| (c.start_round, c.start_round + c.num_pub_rand - 1))
            .collect();
        starts.sort_unstable();
        for pair in starts.windows(2) {
            assert_eq!(pair[0].1 + 1, pair[1].0, "{seed}: a gap in {starts:?}");
        }
        assert!(
            starts.last().expect("some").1 > end,
            "{seed}: not committed ahead"
        );
    }
    let shown = status(&configs[0]);
    assert!(shown.contains("registration: ACTIVE"), "{shown}");
    assert!(shown.contains("power: 1000000 sat"), "{shown}");
    assert!(shown.contains("committed until round"), "{shown}");
    assert!(shown.contains("disagreements: 0"), "{shown}");
    assert_no_equivocation(&mut client).await;
}

/// A node that lies about every proof's verdict, and serves the round hash of its lie.
struct LyingNode(GrpcNode);

#[async_trait]
impl FinalityNode for LyingNode {
    async fn verifier(&self, v: XOnlyPublicKey) -> Result<Option<VerifierRecord>, NodeError> {
        self.0.verifier(v).await
    }
    async fn rounds(&self, from: u64, limit: u32) -> Result<Vec<RoundSummary>, NodeError> {
        self.0.rounds(from, limit).await
    }
    async fn latest_round(&self) -> Result<u64, NodeError> {
        self.0.latest_round().await
    }
    async fn round(&self, h: u64) -> Result<Option<ClosedRoundView>, NodeError> {
        let Some(mut view) = self.0.round(h).await? else {
            return Ok(None);
        };
        if !view.results.is_empty() {
            for r in &mut view.results {
                r.1 = !r.1;
            }
            let lie: Vec<RoundResult> = view
                .results
                .iter()
                .map(|(id, valid)| RoundResult {
                    proof_id: ProofId(*id),
                    verdict: if *valid {
                        Verdict::Valid
                    } else {
                        Verdict::Invalid
                    },
                })
                .collect();
            view.round_hash = round_hash(h, &RoundHash(view.prev_round_hash), &lie).0;
        }
        Ok(Some(view))
    }
    async fn round_proofs(&self, h: u64, from: u32) -> Result<ProofPage, NodeError> {
        let mut page = self.0.round_proofs(h, from).await?;
        for p in &mut page.proofs {
            p.valid = !p.valid;
        }
        Ok(page)
    }
    async fn commit_pub_rand(
        &self,
        v: XOnlyPublicKey,
        c: &RandomnessCommitment,
        s: &schnorr::Signature,
    ) -> Result<(), NodeError> {
        self.0.commit_pub_rand(v, c, s).await
    }
    async fn add_finality_sig(&self, vote: &Vote) -> Result<VoteOutcome, NodeError> {
        self.0.add_finality_sig(vote).await
    }
    async fn unjail(&self, v: XOnlyPublicKey, s: &schnorr::Signature) -> Result<(), NodeError> {
        self.0.unjail(v, s).await
    }
    async fn finality_events(&self, from: u64) -> Result<FinalityEventStream, NodeError> {
        self.0.finality_events(from).await
    }
}

// The lie is about verdicts only: checkpoints and params as the node serves them.
pass_checkpoint_node!(LyingNode, 0);
pass_staking_node!(LyingNode, 0);

#[sqlx::test]
async fn a_verifier_given_a_node_that_lies_about_a_verdict_does_not_vote_on_that_round(
    pool: PgPool,
) {
    let dir = tempfile::tempdir().expect("dir");
    let (node, addr) = start_node(dir.path(), &pool);
    let _node = Killed(node);
    let mut client = finality(addr).await;
    registered(&dir.path().join("v1"), 1, addr);
    stake(&pool, 1, 1_000_000).await;
    let grpc = GrpcNode::connect_lazy(&format!("http://{addr}"), Duration::from_secs(5))
        .expect("endpoint");
    let store = VerifierStore::open("sqlite::memory:").await.expect("store");
    let verifier = Verifier::new(
        test_settings(contexts()),
        Arc::new(KeystoreSigner::new(keypair(1))),
        Arc::new(LyingNode(grpc)),
        store,
        true,
    )
    .await
    .expect("verifier");
    // Steps until it votes (it commits first, then becomes active).
    let mut voted_before = false;
    for _ in 0..100 {
        let report = verifier.step().await.expect("step");
        if report
            .rounds
            .iter()
            .any(|d| matches!(d.outcome, RoundOutcome::Voted(VoteOutcome::Counted)))
        {
            voted_before = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(ROUND_MS / 2)).await;
    }
    assert!(voted_before, "the verifier never voted on an empty round");
    let invalid = client
        .submit_proof(proof_request(corrupted_proof()))
        .await
        .expect("proof taken")
        .into_inner();
    wait_for_round(&mut client, invalid.round, 20).await;
    let mut decided = None;
    for _ in 0..50 {
        let report = verifier.step().await.expect("step");
        if let Some(d) = report.rounds.iter().find(|d| d.round == invalid.round) {
            decided = Some(d.outcome.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = hex::encode(&invalid.proof_id);
    match decided {
        Some(RoundOutcome::Disagrees(why)) => assert!(why.contains(&id), "{why}"),
        other => panic!(
            "expected a disagreement on round {}, got {other:?}",
            invalid.round
        ),
    }
    let served = round(&mut client, invalid.round).await;
    assert!(
        served.votes.is_empty(),
        "it voted on the round it disagrees with"
    );
    let summary = verifier
        .store()
        .summary(verifier.network(), 10)
        .await
        .expect("summary");
    assert_eq!(summary.disagreements, 1);
    assert!(summary.recent_disagreements[0].reason.contains(&id));
    assert_eq!(
        verifier.metrics().get(
            "fiamma_verifier_disagreements_total",
            &[("kind", "disagree")]
        ),
        Some(1.0)
    );
}

#[sqlx::test]
async fn killed_at_random_and_restored_from_an_old_backup_it_never_signs_twice(pool: PgPool) {
    use rand::Rng;
    let dir = tempfile::tempdir().expect("dir");
    let (node, addr) = start_node(dir.path(), &pool);
    let _node = Killed(node);
    let mut client = finality(addr).await;
    let vdir = dir.path().join("v1");
    let config = registered(&vdir, 1, addr);
    stake(&pool, 1, 1_000_000).await;
    let db = vdir.join("verifier.db");
    let backup = dir.path().join("backup");
    std::fs::create_dir_all(&backup).expect("dir");
    let mut rng = rand::thread_rng();
    let mut backed_up = false;
    let mut restored = 0;
    for run in 0..12 {
        let mut child = spawn_verifier(&config, run == 0);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..1200))).await;
        // SIGKILL: no chance to finish what it was doing.
        child.kill().expect("kill");
        child.wait().expect("reaped");
        if run == 2 {
            copy_store(&db, &backup.join("verifier.db"));
            backed_up = true;
        } else if backed_up && run % 4 == 3 {
            // A restore from the old backup.
            copy_store(&backup.join("verifier.db"), &db);
            restored += 1;
        }
    }
    assert!(restored >= 2);
    let _last = Killed(spawn_verifier(&config, false));
    let now = current_round(&mut client).await;
    wait_for_round(&mut client, now + 25, 60).await;
    let end = current_round(&mut client).await;
    let votes = votes_of(&mut client, 1, 1..=end).await;
    for (h, hashes) in &votes {
        assert_eq!(hashes.len(), 1, "round {h}: {} votes", hashes.len());
    }
    assert_no_equivocation(&mut client).await;
    // It kept voting: the last rounds have its vote.
    assert!(
        votes.keys().any(|h| *h > end.saturating_sub(8)),
        "no recent vote: {:?}",
        votes.keys().collect::<Vec<_>>()
    );
    let shown = status(&config);
    assert!(shown.contains("registration: ACTIVE"), "{shown}");
}

#[sqlx::test]
async fn a_store_restored_from_an_old_backup_does_not_sign_with_randomness_it_did_not_record(
    pool: PgPool,
) {
    let dir = tempfile::tempdir().expect("dir");
    let (node, addr) = start_node(dir.path(), &pool);
    let _node = Killed(node);
    let mut client = finality(addr).await;
    let vdir = dir.path().join("v1");
    let config = registered(&vdir, 1, addr);
    stake(&pool, 1, 1_000_000).await;
    let db = vdir.join("verifier.db");
    let old = dir.path().join("old.db");

    // Run until its first commitment, stop, back up.
    let mut child = Killed(spawn_verifier(&config, true));
    for _ in 0..100 {
        if !record(&mut client, 1).await.commitments.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.0.kill();
    let _ = child.0.wait();
    let out = protection("export", &config, &old.with_extension("json"));
    assert!(out.contains("exported 1 network"), "{out}");
    copy_store(&db, &old);

    // Run on until it has made two more commitments, stop.
    child = Killed(spawn_verifier(&config, false));
    for _ in 0..200 {
        if record(&mut client, 1).await.commitments.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.0.kill();
    let _ = child.0.wait();
    let rec = record(&mut client, 1).await;
    assert!(rec.commitments.len() >= 3);
    let mut starts: Vec<u64> = rec.commitments.iter().map(|c| c.start_round).collect();
    starts.sort_unstable();
    let unknown_from = starts[1];

    // Restore the old store: the commitments made after it are not its own to sign with.
    copy_store(&old, &db);
    let _again = Killed(spawn_verifier(&config, false));
    let now = current_round(&mut client).await;
    wait_for_round(&mut client, now + 6, 30).await;
    let shown = status(&config);
    assert!(
        shown.contains("covered by no commitment this store made"),
        "{shown}"
    );
    assert!(unknown_from > 0);
    assert_no_equivocation(&mut client).await;

    // Importing the old export into the newer store adds nothing and lowers nothing.
    let out = protection("import", &config, &old.with_extension("json"));
    assert!(out.contains("0 signed round(s)"), "{out}");
}

#[test]
fn the_keystore_holds_no_form_of_the_secret_and_a_wrong_passphrase_is_named() {
    let dir = tempfile::tempdir().expect("dir");
    let keystore = import_key(dir.path(), 3);
    let secret = keypair(3).secret_key().secret_bytes();
    let file = std::fs::read(&keystore).expect("read");
    for needle in [
        secret.to_vec(),
        hex::encode(secret).into_bytes(),
        hex::encode_upper(secret).into_bytes(),
    ] {
        assert!(
            !file.windows(needle.len()).any(|w| w == needle.as_slice()),
            "the keystore holds the secret"
        );
    }
    let ks = keystore.to_str().expect("utf-8");
    ok(fiamma(&[
        "verifier",
        "keys",
        "show",
        "--keystore",
        ks,
        "--check",
    ]));
    let wrong_file = dir.path().join("wrong");
    std::fs::write(&wrong_file, "not the passphrase\n").expect("write");
    let wrong = fiamma(&[
        "verifier",
        "keys",
        "show",
        "--keystore",
        ks,
        "--check",
        "--passphrase-file",
        wrong_file.to_str().expect("utf-8"),
    ]);
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("wrong passphrase for keystore"), "{err}");
    assert!(!err.contains(&hex::encode(secret)), "{err}");
    // A verifier keystore is not a covenant keystore.
    let other_role = fiamma(&["covenant", "keys", "show", "--keystore", ks]);
    assert!(!other_role.status.success());
    let err = String::from_utf8_lossy(&other_role.stderr);
    assert!(err.contains("verifier"), "{err}");
}

#[sqlx::test]
async fn a_jailed_verifier_asks_to_be_unjailed_after_the_jail_duration_and_votes_again(
    pool: PgPool,
) {
    let dir = tempfile::tempdir().expect("dir");
    let (node, addr) = start_node_with(
        dir.path(),
        &pool,
        ROUND_MS,
        "liveness_window = 10\nliveness_min_signed = 7\njail_duration = 4\n",
    );
    let _node = Killed(node);
    let mut client = finality(addr).await;
    let config = registered_with(
        &dir.path().join("v1"),
        1,
        addr,
        "unjail = true\njail_duration = 4\n",
    );
    stake(&pool, 1, 1_000_000).await;

    // It votes, then goes down long enough to be jailed.
    let mut daemon = Killed(spawn_verifier(&config, true));
    let mut voting = false;
    for _ in 0..100 {
        let h = current_round(&mut client).await;
        if h > 0 && !round(&mut client, h).await.votes.is_empty() {
            voting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(voting, "it never voted");
    let _ = daemon.0.kill();
    let _ = daemon.0.wait();
    let mut jailed_at = 0;
    for _ in 0..100 {
        let rec = record(&mut client, 1).await;
        if rec.status() == fpb::VerifierStatus::Jailed {
            jailed_at = rec.since_round;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(jailed_at > 0, "it was never jailed");

    // Back up: it waits out the jail duration, asks to be unjailed, and votes again.
    daemon = Killed(spawn_verifier(&config, false));
    let mut unjailed = false;
    for _ in 0..150 {
        if record(&mut client, 1).await.status() == fpb::VerifierStatus::Active {
            unjailed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(unjailed, "it was not unjailed");
    let back = current_round(&mut client).await;
    assert!(
        back >= jailed_at + 4,
        "unjailed at {back}, jailed at {jailed_at}"
    );
    wait_for_round(&mut client, back + 4, 20).await;
    let votes = votes_of(&mut client, 1, back + 1..=back + 4).await;
    assert!(!votes.is_empty(), "no vote after the unjailing");
    let shown = status(&config);
    assert!(shown.contains("registration: ACTIVE"), "{shown}");
    drop(daemon);
    assert_no_equivocation(&mut client).await;
}
