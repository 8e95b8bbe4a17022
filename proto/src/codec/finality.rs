//! Protobuf fields of `fiamma.finality.v1` to domain values and back, for the node's finality
//! service and its clients (the verifier daemon). Each request field is decoded with a
//! [`FieldError`] naming it, so a rejected request says which field to fix.

use bitcoin::secp256k1::{schnorr, XOnlyPublicKey};
use fiamma_finality::checkpoint::CheckpointVote;
use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_finality::eots::{PublicRandomness, Signature};
use fiamma_finality::merkle::{Digest, Proof};
use fiamma_finality::rounds::{Certificate, CheckpointEquivocation, Vote, MAX_ROUND};

use super::{bad, FieldError};
use crate::finality::v1 as pb;

/// The most aunts a Merkle proof can have: a tree of at most 2^64 leaves is 64 levels deep.
pub const MAX_AUNTS: usize = 64;

/// A 32-byte value.
pub fn bytes32(field: &'static str, bytes: &[u8]) -> Result<[u8; 32], FieldError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| bad(field, format!("{} bytes, expected 32", bytes.len())))
}

/// A round number (or a count of rounds) within the stored range, [`MAX_ROUND`].
pub fn round_number(field: &'static str, value: u64) -> Result<u64, FieldError> {
    if value > MAX_ROUND {
        return Err(bad(
            field,
            format!("{value} is above the largest round {MAX_ROUND}"),
        ));
    }
    Ok(value)
}

/// A position in a round's results, within the stored range (`i32::MAX`).
pub fn position(field: &'static str, value: u32) -> Result<i32, FieldError> {
    i32::try_from(value).map_err(|_| {
        bad(
            field,
            format!("{value} is above the largest position {}", i32::MAX),
        )
    })
}

/// An x-only BTC key.
pub fn key(field: &'static str, bytes: &[u8]) -> Result<XOnlyPublicKey, FieldError> {
    super::key(field, bytes)
}

/// A BIP-340 signature.
pub fn schnorr_sig(field: &'static str, bytes: &[u8]) -> Result<schnorr::Signature, FieldError> {
    super::schnorr_sig(field, bytes)
}

/// A randomness commitment from its three fields.
pub fn commitment(r: &pb::CommitPubRandListRequest) -> Result<RandomnessCommitment, FieldError> {
    let root = bytes32("commitment", &r.commitment)?;
    round_number("start_round", r.start_round)?;
    RandomnessCommitment::new(r.start_round, r.num_pub_rand, root)
        .map_err(|e| bad("num_pub_rand", e.to_string()))
}

fn proof(field: &'static str, p: Option<&pb::MerkleProof>) -> Result<Proof, FieldError> {
    let p = p.ok_or_else(|| bad(field, "missing"))?;
    if p.aunts.len() > MAX_AUNTS {
        return Err(bad(
            field,
            format!("{} aunts, at most {MAX_AUNTS}", p.aunts.len()),
        ));
    }
    // The index and the number of leaves are stored as BIGINT; a larger one proves nothing.
    round_number(field, p.index)?;
    round_number(field, p.total)?;
    let aunts = p
        .aunts
        .iter()
        .map(|a| bytes32(field, a))
        .collect::<Result<Vec<Digest>, _>>()?;
    Ok(Proof {
        index: p.index,
        total: p.total,
        leaf_hash: bytes32(field, &p.leaf_hash)?,
        aunts,
    })
}

/// The field names of one vote in a request: the vote itself, then its key, round hash,
/// public randomness, Merkle proof, signature and round.
pub type VoteFields = [&'static str; 7];

/// The names of AddFinalitySig's `vote`.
pub const VOTE: VoteFields = [
    "vote",
    "vote.verifier_btc_pk",
    "vote.round_hash",
    "vote.public_randomness",
    "vote.proof",
    "vote.signature",
    "vote.round",
];
/// The names of EquivocationEvidence's `first`.
pub const FIRST: VoteFields = [
    "first",
    "first.verifier_btc_pk",
    "first.round_hash",
    "first.public_randomness",
    "first.proof",
    "first.signature",
    "first.round",
];
/// The names of EquivocationEvidence's `second`.
pub const SECOND: VoteFields = [
    "second",
    "second.verifier_btc_pk",
    "second.round_hash",
    "second.public_randomness",
    "second.proof",
    "second.signature",
    "second.round",
];

/// A vote, every field decoded (nothing is verified here).
pub fn vote(names: &VoteFields, v: Option<&pb::FinalityVote>) -> Result<Vote, FieldError> {
    let [whole, pk, round_hash, pr, merkle, signature, round] = *names;
    let v = v.ok_or_else(|| bad(whole, "missing"))?;
    Ok(Vote {
        voter: key(pk, &v.verifier_btc_pk)?,
        round: round_number(round, v.round)?,
        round_hash: bytes32(round_hash, &v.round_hash)?,
        public_randomness: PublicRandomness::from_byte_array(bytes32(pr, &v.public_randomness)?),
        proof: proof(merkle, v.proof.as_ref())?,
        signature: Signature::from_byte_array(bytes32(signature, &v.signature)?),
    })
}

/// The wire form of a vote.
pub fn vote_to_pb(v: &Vote) -> pb::FinalityVote {
    pb::FinalityVote {
        verifier_btc_pk: v.voter.serialize().to_vec(),
        round: v.round,
        round_hash: v.round_hash.to_vec(),
        public_randomness: v.public_randomness.as_bytes().to_vec(),
        proof: Some(proof_to_pb(&v.proof)),
        signature: v.signature.to_byte_array().to_vec(),
    }
}

/// A checkpoint vote with its round and randomness proof, every field decoded (nothing is
/// verified here); field names are those of a request's `checkpoint_vote`.
pub fn checkpoint_vote(
    v: Option<&pb::CheckpointVote>,
) -> Result<(u64, CheckpointVote, Proof), FieldError> {
    let v = v.ok_or_else(|| bad("checkpoint_vote", "missing"))?;
    Ok((
        round_number("checkpoint_vote.round", v.round)?,
        CheckpointVote {
            voter: key("checkpoint_vote.verifier_btc_pk", &v.verifier_btc_pk)?,
            public_randomness: PublicRandomness::from_byte_array(bytes32(
                "checkpoint_vote.public_randomness",
                &v.public_randomness,
            )?),
            signature: Signature::from_byte_array(bytes32(
                "checkpoint_vote.signature",
                &v.signature,
            )?),
        },
        proof("checkpoint_vote.proof", v.proof.as_ref())?,
    ))
}

/// The wire form of a checkpoint vote on `round` with its randomness proof.
pub fn checkpoint_vote_to_pb(round: u64, v: &CheckpointVote, p: &Proof) -> pb::CheckpointVote {
    pb::CheckpointVote {
        verifier_btc_pk: v.voter.serialize().to_vec(),
        round,
        public_randomness: v.public_randomness.as_bytes().to_vec(),
        proof: Some(proof_to_pb(p)),
        signature: v.signature.to_byte_array().to_vec(),
    }
}

/// The wire form of an equivocation on a checkpoint round.
pub fn checkpoint_equivocation_to_pb(e: &CheckpointEquivocation) -> pb::CheckpointEquivocation {
    pb::CheckpointEquivocation {
        vote: Some(checkpoint_vote_to_pb(e.round, &e.vote, &e.proof)),
        message: e.message.as_bytes().to_vec(),
        other_message: e.other_message.clone(),
        other_signature: e.other_signature.to_byte_array().to_vec(),
    }
}

fn proof_to_pb(p: &Proof) -> pb::MerkleProof {
    pb::MerkleProof {
        index: p.index,
        total: p.total,
        leaf_hash: p.leaf_hash.to_vec(),
        aunts: p.aunts.iter().map(|a| a.to_vec()).collect(),
    }
}

/// The wire form of a finality certificate.
pub fn certificate_to_pb(c: &Certificate) -> pb::Certificate {
    pb::Certificate {
        entries: c
            .entries
            .iter()
            .map(|e| pb::CertificateEntry {
                verifier_btc_pk: e.verifier.serialize().to_vec(),
                public_randomness: e.public_randomness.as_bytes().to_vec(),
                signature: e.signature.to_byte_array().to_vec(),
            })
            .collect(),
        encoded: c.encode(),
        digest: c.digest().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Keypair, SECP256K1};

    fn sample() -> Vote {
        Vote {
            voter: Keypair::from_seckey_slice(SECP256K1, &[3; 32])
                .expect("valid key")
                .x_only_public_key()
                .0,
            round: 9,
            round_hash: [1; 32],
            public_randomness: PublicRandomness::from_byte_array([2; 32]),
            proof: Proof {
                index: 1,
                total: 3,
                leaf_hash: [4; 32],
                aunts: vec![[5; 32], [6; 32]],
            },
            signature: Signature::from_byte_array([7; 32]),
        }
    }

    #[test]
    fn a_vote_round_trips_through_the_wire_form() {
        let v = sample();
        assert_eq!(vote(&VOTE, Some(&vote_to_pb(&v))), Ok(v));
    }

    #[test]
    fn a_checkpoint_vote_round_trips_and_names_its_bad_fields() {
        let v = sample();
        let cv = CheckpointVote {
            voter: v.voter,
            public_randomness: v.public_randomness,
            signature: v.signature,
        };
        let wire = checkpoint_vote_to_pb(12, &cv, &v.proof);
        assert_eq!(checkpoint_vote(Some(&wire)), Ok((12, cv, v.proof.clone())));
        let mut short = wire.clone();
        short.signature.pop();
        assert_eq!(
            checkpoint_vote(Some(&short)).map_err(|e| e.field),
            Err("checkpoint_vote.signature")
        );
        let mut no_proof = wire;
        no_proof.proof = None;
        assert_eq!(
            checkpoint_vote(Some(&no_proof)).map_err(|e| e.field),
            Err("checkpoint_vote.proof")
        );
        assert_eq!(
            checkpoint_vote(None).map_err(|e| e.field),
            Err("checkpoint_vote")
        );
    }

    #[test]
    fn each_malformed_vote_field_is_named() {
        let good = vote_to_pb(&sample());
        type Corrupt = Box<dyn Fn(&mut pb::FinalityVote)>;
        let cases: Vec<(&str, Corrupt)> = vec![
            (
                "vote.verifier_btc_pk",
                Box::new(|v| {
                    v.verifier_btc_pk.pop();
                }),
            ),
            ("vote.round_hash", Box::new(|v| v.round_hash.push(0))),
            (
                "vote.public_randomness",
                Box::new(|v| v.public_randomness.clear()),
            ),
            ("vote.signature", Box::new(|v| v.signature.truncate(31))),
            ("vote.round", Box::new(|v| v.round = MAX_ROUND + 1)),
            (
                "vote.proof",
                Box::new(|v| {
                    if let Some(p) = v.proof.as_mut() {
                        p.total = u64::MAX;
                    }
                }),
            ),
            ("vote.proof", Box::new(|v| v.proof = None)),
            (
                "vote.proof",
                Box::new(|v| {
                    if let Some(p) = v.proof.as_mut() {
                        p.aunts = vec![vec![0; 32]; MAX_AUNTS + 1];
                    }
                }),
            ),
        ];
        for (field, corrupt) in cases {
            let mut v = good.clone();
            corrupt(&mut v);
            let err = vote(&SECOND, Some(&v)).expect_err("malformed");
            assert_eq!(err.field, field.replace("vote", "second"));
        }
    }
}
