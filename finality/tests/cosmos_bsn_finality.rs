//! Conformance with the `finality` section of `tests/data/cosmos-bsn/decoded_testdata.json`:
//! a Babylon randomness commitment (signed with contexts on) and two conflicting votes of one
//! verifier at the same height.

use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_finality::eots::{self, PublicRandomness, Signature};
use fiamma_finality::merkle::Proof;
use fiamma_finality::vote::vote_message;
use fiamma_staking::context::{SigningContexts, SigningOp};
use secp256k1::{schnorr, SecretKey, XOnlyPublicKey, SECP256K1};
use serde::Deserialize;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/cosmos-bsn/decoded_testdata.json"
);

#[derive(Deserialize)]
struct File {
    finality: Finality,
}

#[derive(Deserialize)]
struct Finality {
    chain_id: String,
    context_address: String,
    fp_btc_pk: String,
    fp_sk: String,
    commit_pub_rand: CommitPubRand,
    add_finality_sigs: Vec<AddFinalitySig>,
}

#[derive(Deserialize)]
struct CommitPubRand {
    start_height: u64,
    num_pub_rand: u64,
    commitment: String,
    sig: String,
}

#[derive(Deserialize)]
struct AddFinalitySig {
    block_height: u64,
    pub_rand: String,
    proof: JsonProof,
    block_app_hash: String,
    finality_sig: String,
}

#[derive(Deserialize)]
struct JsonProof {
    total: u64,
    index: u64,
    leaf_hash: String,
    aunts: Vec<String>,
}

fn bytes32(hex_str: &str) -> [u8; 32] {
    hex::decode(hex_str)
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

struct Vote {
    round: u64,
    pr: PublicRandomness,
    proof: Proof,
    msg: Vec<u8>,
    sig: Signature,
}

struct Fixture {
    contexts: SigningContexts,
    pk: XOnlyPublicKey,
    sk: SecretKey,
    commitment: RandomnessCommitment,
    commitment_sig: schnorr::Signature,
    votes: Vec<Vote>,
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string(DATA).expect("read decoded_testdata.json");
    let f = serde_json::from_str::<File>(&text).expect("parse").finality;
    let contexts = SigningContexts::new(&f.chain_id, &f.context_address);
    let c = &f.commit_pub_rand;
    let votes = f
        .add_finality_sigs
        .iter()
        .map(|v| Vote {
            round: v.block_height,
            pr: PublicRandomness::from_byte_array(bytes32(&v.pub_rand)),
            proof: Proof {
                index: v.proof.index,
                total: v.proof.total,
                leaf_hash: bytes32(&v.proof.leaf_hash),
                aunts: v.proof.aunts.iter().map(|a| bytes32(a)).collect(),
            },
            msg: vote_message(&contexts, v.block_height, &bytes32(&v.block_app_hash)),
            sig: Signature::from_byte_array(bytes32(&v.finality_sig)),
        })
        .collect();
    Fixture {
        pk: XOnlyPublicKey::from_slice(&bytes32(&f.fp_btc_pk)).expect("x-only key"),
        sk: SecretKey::from_slice(&bytes32(&f.fp_sk)).expect("secret key"),
        commitment: RandomnessCommitment::new(
            c.start_height,
            c.num_pub_rand,
            bytes32(&c.commitment),
        )
        .expect("valid range"),
        commitment_sig: schnorr::Signature::from_slice(&hex::decode(&c.sig).expect("hex"))
            .expect("64 bytes"),
        contexts,
        votes,
    }
}

#[test]
fn verifier_key_matches_its_secret() {
    let f = fixture();
    assert_eq!(f.sk.x_only_public_key(SECP256K1).0, f.pk);
}

#[test]
fn randomness_commitment_signature_verifies_with_contexts() {
    let f = fixture();
    assert_eq!(
        f.commitment.verify(&f.pk, &f.contexts, &f.commitment_sig),
        Ok(())
    );
    // The context is part of the message: without it the signature does not verify.
    let off = f.contexts.clone().without(SigningOp::FpRandCommit);
    assert!(f.commitment.verify(&f.pk, &off, &f.commitment_sig).is_err());
}

#[test]
fn both_votes_randomness_is_committed() {
    let f = fixture();
    assert_eq!(f.votes.len(), 2);
    for v in &f.votes {
        assert_eq!(
            f.commitment.verify_randomness(v.round, &v.pr, &v.proof),
            Ok(())
        );
    }
}

#[test]
fn both_vote_signatures_verify() {
    let f = fixture();
    for v in &f.votes {
        assert_eq!(eots::verify(&f.pk, &v.pr, &v.msg, &v.sig), Ok(()));
    }
    let off = f.contexts.clone().without(SigningOp::FpFinVote);
    let v = &f.votes[0];
    let msg_without_context = vote_message(&off, v.round, v.msg[72..].try_into().expect("32"));
    assert!(eots::verify(&f.pk, &v.pr, &msg_without_context, &v.sig).is_err());
}

#[test]
fn conflicting_votes_reveal_the_verifier_key() {
    let f = fixture();
    let (a, b) = (&f.votes[0], &f.votes[1]);
    assert_eq!((a.round, a.pr), (b.round, b.pr));
    let key = eots::extract(&f.pk, &a.pr, &a.msg, &a.sig, &b.msg, &b.sig).expect("extracts");
    assert_eq!(key.x_only_public_key(SECP256K1).0, f.pk);
    assert_eq!(key, f.sk);
}
