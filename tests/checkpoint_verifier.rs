//! The verifier's side of a checkpoint round (§13.5–13.6, test 9 of §13.12) on PostgreSQL: it
//! signs only a candidate byte-identical to its own rebuild, with its committed randomness; the
//! signature completes a quorum witness Bitcoin Core accepts; after signing M for h it refuses
//! M′ (another base, as after a reorg) and h's §10 vote message, also after a restart.

mod checkpoint_support;
mod node_process;
mod node_support;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Keypair, XOnlyPublicKey};
use bitcoin::OutPoint;
use checkpoint_support::*;
use fiamma_finality::checkpoint::{
    build_candidate, check_complete, quorum_witness, Candidate, CandidateSpec, CheckpointKind,
    CheckpointPayload, CheckpointSet, CheckpointVote, RecoveryLeaf,
};
use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_finality::eots::RandomnessDomain;
use fiamma_finality::round::RoundHash;
use fiamma_proto::codec::finality::checkpoint_vote;
use fiamma_staking::context::SigningContexts;
use fiamma_verifier::checkpoint::{CheckpointDecision, CheckpointSigner};
use fiamma_verifier::signer::{KeystoreSigner, Signer};
use fiamma_verifier::store::{Network, SignedRound, StoreError, VerifierStore};
use fiamma_verifier::verifier::message_hash;
use prost::Message;
use sqlx::PgPool;

const ROUND: u64 = 120;

fn network() -> Network {
    Network {
        chain_id: "fiamma-checkpoint".into(),
        module_address: "fmma1staking".into(),
    }
}

struct Scene {
    members: Vec<(Keypair, u64)>,
    base_set: CheckpointSet,
    next_set: CheckpointSet,
    recovery: RecoveryLeaf,
}

fn scene() -> Scene {
    let members = verifiers(1, &[5, 3, 2]);
    let next = verifiers(1, &[5, 3, 2, 4]);
    Scene {
        base_set: set_of(&members),
        next_set: set_of(&next),
        recovery: committee().leaf,
        members,
    }
}

fn spec<'a>(s: &'a Scene, base: OutPoint, round_hash: [u8; 32]) -> CandidateSpec<'a> {
    CandidateSpec {
        base,
        base_round: 60,
        base_set: &s.base_set,
        next_set: &s.next_set,
        recovery: &s.recovery,
        value: VALUE,
        payload: CheckpointPayload {
            kind: CheckpointKind::Quorum,
            round: ROUND,
            round_hash: RoundHash(round_hash),
            state: [0x33; 32],
        },
    }
}

fn signed_vote(decision: &CheckpointDecision) -> CheckpointVote {
    match decision {
        CheckpointDecision::Signed { vote, .. } | CheckpointDecision::Resent { vote, .. } => *vote,
        other => panic!("not signed: {other:?}"),
    }
}

/// Verifier 1's signing setup, over whichever opening of its store.
struct Verifier1<'a> {
    net: &'a Network,
    signer: &'a KeystoreSigner,
    domain: &'a RandomnessDomain,
    commitments: &'a [RandomnessCommitment],
}

impl Verifier1<'_> {
    fn on<'a>(&'a self, store: &'a VerifierStore) -> CheckpointSigner<'a> {
        CheckpointSigner {
            store,
            network: self.net,
            signer: self.signer,
            domain: self.domain,
            commitments: self.commitments,
        }
    }
}

/// One verifier's signing setup: its store (joined, one commitment over rounds 100..=199).
async fn setup(
    url: &str,
    kp: &Keypair,
) -> (
    VerifierStore,
    KeystoreSigner,
    RandomnessDomain,
    RandomnessCommitment,
) {
    let store = VerifierStore::open(url).await.expect("store");
    let signer = KeystoreSigner::new(*kp);
    let salt = store
        .join(
            &network(),
            &signer.public_key(),
            &[kp.secret_bytes()[0]; 32],
        )
        .await
        .expect("join");
    let net = network();
    let domain = RandomnessDomain::new(&net.chain_id, &net.module_address, &salt);
    let contexts = SigningContexts::new(net.chain_id.clone(), net.module_address.clone());
    let (c, _) = signer
        .commit(&domain, &contexts, 100, 100)
        .await
        .expect("commit");
    store
        .record_commitment(&net, &c)
        .await
        .expect("record commitment");
    (store, signer, domain, c)
}

#[sqlx::test(migrations = false)]
async fn a_verifier_signs_one_identical_candidate_per_round_and_never_another(pool: PgPool) {
    let url = node_process::database_url(&pool);
    let s = scene();
    let base = dummy_outpoint(7);
    let own = spec(&s, base, [0xa1; 32]);
    let candidate: Candidate = build_candidate(&own).expect("candidate");
    let net = network();
    let dir = tempfile::tempdir().expect("dir");

    // Verifiers 1 and 2 (8 of 10) sign the node's candidate, identical to their own.
    let mut votes = Vec::new();
    let mut stores = Vec::new();
    for i in 0..2 {
        let kp = s.members[i].0;
        // Each verifier has its own store: the first on PostgreSQL, the second on SQLite.
        let db_url = if i == 0 {
            url.clone()
        } else {
            fiamma_role::store::sqlite_url(&dir.path().join("verifier2.db"))
        };
        let (store, signer, domain, c) = setup(&db_url, &kp).await;
        let commitments = [c];
        let decision = CheckpointSigner {
            store: &store,
            network: &net,
            signer: &signer,
            domain: &domain,
            commitments: &commitments,
        }
        .decide(&own, &candidate.tx)
        .await
        .expect("decide");
        let CheckpointDecision::Signed { vote, proof } = &decision else {
            panic!("not signed: {decision:?}");
        };
        // Its randomness is the committed one, and the vote verifies over M.
        assert_eq!(
            c.verify_randomness(ROUND, &vote.public_randomness, proof),
            Ok(())
        );
        assert_eq!(vote.verify(&candidate.message), Ok(()));
        // The record holds sha256(M) = the sighash.
        let record = store
            .signed(&net, ROUND)
            .await
            .expect("read")
            .expect("recorded");
        assert_eq!(
            record.message_hash,
            candidate.message.sighash().to_byte_array()
        );
        // The record holds the vote as sent.
        let wire = fiamma_proto::finality::v1::CheckpointVote::decode(record.vote.as_slice())
            .expect("protobuf");
        assert_eq!(
            checkpoint_vote(Some(&wire)),
            Ok((ROUND, *vote, proof.clone()))
        );
        votes.push(*vote);
        stores.push((db_url, store, signer, domain, c));
    }

    // Their signatures complete the witness and Bitcoin Core's interpreter accepts it.
    let sigs: Vec<(XOnlyPublicKey, _)> = votes.iter().map(CheckpointVote::key_signature).collect();
    let complete =
        check_complete(&s.base_set, &candidate.message.sighash(), &sigs).expect("complete");
    let mut tx = candidate.tx.clone();
    tx.input[0].witness = quorum_witness(&candidate.base_output, &s.base_set, &complete);
    assert!(kernel_accepts(&tx, &candidate.spent_txout()));

    let (db_url, store, signer, domain, c) = stores.remove(0);
    let commitments = [c];
    let first = Verifier1 {
        net: &net,
        signer: &signer,
        domain: &domain,
        commitments: &commitments,
    };

    // The same candidate again: the same vote, nothing new recorded.
    let again = first
        .on(&store)
        .decide(&own, &candidate.tx)
        .await
        .expect("decide");
    assert_eq!(signed_vote(&again), votes[0]);
    assert!(matches!(again, CheckpointDecision::Resent { .. }));

    // A node candidate that is not its own rebuild (another round hash): not signed.
    let other_spec = spec(&s, base, [0xb2; 32]);
    let other = build_candidate(&other_spec).expect("candidate");
    let decision = first
        .on(&store)
        .decide(&own, &other.tx)
        .await
        .expect("decide");
    assert!(
        matches!(&decision, CheckpointDecision::Disagrees(why) if why.contains("is not its own")),
        "{decision:?}"
    );

    // M′: the base was reorganized and the verifier rebuilds on another base. Refused.
    let moved = spec(&s, dummy_outpoint(8), [0xa1; 32]);
    let moved_candidate = build_candidate(&moved).expect("candidate");
    let decision = first
        .on(&store)
        .decide(&moved, &moved_candidate.tx)
        .await
        .expect("decide");
    assert!(
        matches!(&decision, CheckpointDecision::Refused(why) if why.contains("slashing protection")),
        "{decision:?}"
    );
    // h's §10 vote message: refused by the same record.
    let contexts = SigningContexts::new(net.chain_id.clone(), net.module_address.clone());
    let vote_record = SignedRound {
        round: ROUND,
        message_hash: message_hash(&contexts, ROUND, &[0xa1; 32]),
        vote: Vec::new(),
    };
    assert!(matches!(
        store.protect(&net, &vote_record).await,
        Err(StoreError::Conflict { round: ROUND, .. })
    ));

    // After a restart (the store reopened): M′ still refused, M still the same vote.
    drop(store);
    let store = VerifierStore::open(&db_url).await.expect("reopen");
    let decision = first
        .on(&store)
        .decide(&moved, &moved_candidate.tx)
        .await
        .expect("decide");
    assert!(
        matches!(decision, CheckpointDecision::Refused(_)),
        "{decision:?}"
    );
    assert!(matches!(
        store.protect(&net, &vote_record).await,
        Err(StoreError::Conflict { .. })
    ));
    let again = first
        .on(&store)
        .decide(&own, &candidate.tx)
        .await
        .expect("decide");
    assert_eq!(signed_vote(&again), votes[0]);

    // A round outside its commitments is refused before anything is recorded.
    let late = CandidateSpec {
        payload: CheckpointPayload {
            round: 250,
            ..own.payload
        },
        ..own
    };
    let late_candidate = build_candidate(&late).expect("candidate");
    let decision = first
        .on(&store)
        .decide(&late, &late_candidate.tx)
        .await
        .expect("decide");
    assert!(
        matches!(decision, CheckpointDecision::Refused(_)),
        "{decision:?}"
    );
    assert_eq!(store.signed(&net, 250).await.expect("read"), None);
}
