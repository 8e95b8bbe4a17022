//! Cryptographic values from the network: adaptor signatures, Groth16 submissions and
//! RFC-6962 Merkle proofs.

use ark_serialize::CanonicalSerialize;
use bitcoin::secp256k1::{schnorr, PublicKey, XOnlyPublicKey};
use fiamma_covenant::adaptor::{AdaptorSignature, DecryptionKey, EncryptionKey, SignerKey};
use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_finality::eots::PublicRandomness;
use fiamma_finality::merkle::{self, Digest, MerkleTree, Proof};
use fiamma_finality::zk::{Groth16Bn254, PreparedKey, ProofSystem, ZkProof};

use super::split;
use crate::node::grpc::convert;

/// An adaptor signature field (`convert::adaptor_sig`, 65 bytes or the legacy 66), then what
/// the node and the slasher do with one: a decoded signature re-encodes to the bytes it came
/// from in its own form and decodes again from the other form; EncVerify, Decrypt and Extract
/// against a signer key, message, encryption key and signature taken from the rest of the
/// input give a result, never a panic.
///
/// Input: `u16le(len) ‖ signature ‖ signer x-only (32) ‖ message (32) ‖ encryption key (33) ‖
/// BIP-340 signature (64) ‖ decryption key (32)`, each optional from the end.
pub fn adaptor_signature(data: &[u8]) {
    let (encoded, rest) = split(data);
    let Ok(sig) = convert::adaptor_sig("sigs.slashing_adaptor_sig", encoded) else {
        return;
    };
    let (modern, legacy) = (sig.to_bytes(), sig.to_legacy_bytes());
    let own: &[u8] = if encoded.len() == modern.len() {
        &modern
    } else {
        &legacy
    };
    assert_eq!(
        own, encoded,
        "an adaptor signature re-encodes to other bytes"
    );
    assert_eq!(AdaptorSignature::from_slice(&modern), Ok(sig));
    assert_eq!(AdaptorSignature::from_slice(&legacy), Ok(sig));

    let mut fields = Fields(rest);
    let signer = fields
        .take(32)
        .and_then(|b| XOnlyPublicKey::from_slice(b).ok());
    let msg = fields.take(32).and_then(|b| <[u8; 32]>::try_from(b).ok());
    let encryption_key = fields
        .take(33)
        .and_then(|b| PublicKey::from_slice(b).ok())
        .map(EncryptionKey::from_point);
    if let (Some(signer), Some(msg), Some(key)) = (signer, msg, encryption_key) {
        let _ = sig.enc_verify(&SignerKey::new(signer), &msg, &key);
    }
    if let Some(signature) = fields
        .take(64)
        .and_then(|b| schnorr::Signature::from_slice(b).ok())
    {
        let _ = sig.extract(&signature);
    }
    if let Some(key) = fields
        .take(32)
        .and_then(|b| DecryptionKey::from_slice(b).ok())
    {
        if let Ok(decrypted) = sig.decrypt(&key) {
            // Extract reverses Decrypt: the key comes back (as a point; t and n − t both fit).
            let extracted = sig.extract(&decrypted).map(|k| k.encryption_key());
            let expected = key.encryption_key();
            assert!(
                extracted
                    .as_ref()
                    .is_ok_and(|k| k.point().x_only_public_key().0
                        == expected.point().x_only_public_key().0),
                "extract does not reverse decrypt: {extracted:?}"
            );
        }
    }
}

/// Consecutive fixed-size fields of a fuzz input.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            self.0 = &[];
            return None;
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(taken)
    }
}

/// A SubmitProof's three byte strings (`ZkProof::new`, then `decode` at submission and
/// `verify` at the close): what decodes re-encodes (arkworks compressed) to exactly the
/// submitted bytes; the one-shot verifier and the prepared-key verifier give the same verdict;
/// `ZkProof` and `Groth16Bn254` agree on what decodes.
///
/// Input: `u16le(len) ‖ verifying key ‖ u16le(len) ‖ proof ‖ public inputs`.
pub fn groth16(data: &[u8]) {
    let (vk, rest) = split(data);
    let (proof, inputs) = split(rest);
    let direct = Groth16Bn254::decode(vk, proof, inputs);
    if let Ok(submitted) = ZkProof::new(
        ProofSystem::Groth16Bn254,
        vk.to_vec(),
        proof.to_vec(),
        inputs.to_vec(),
    ) {
        // Within the size caps, the submission decodes exactly when the parts do.
        assert_eq!(
            submitted.decode().is_ok(),
            direct.is_ok(),
            "ZkProof::decode and Groth16Bn254::decode disagree"
        );
    }
    let Ok(decoded) = direct else {
        return;
    };
    assert_eq!(
        compressed(decoded.verifying_key()),
        vk,
        "verifying key re-encodes to other bytes"
    );
    assert_eq!(
        compressed(decoded.proof()),
        proof,
        "proof re-encodes to other bytes"
    );
    assert_eq!(
        compressed(&decoded.public_inputs().to_vec()),
        inputs,
        "public inputs re-encode to other bytes"
    );
    let verdict = decoded.verify();
    let prepared = PreparedKey::decode(vk).map(|key| key.verify(proof, inputs));
    assert_eq!(
        prepared,
        Ok(Ok(verdict)),
        "the prepared key gives another verdict"
    );
}

fn compressed<T: CanonicalSerialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = value.serialize_compressed(&mut out);
    out
}

/// RFC-6962 trees and proofs (randomness commitments, round hashes), by the first byte:
/// - `0`: a proof as a vote carries it (`index`, `total`, leaf hash, up to 64 aunts) with a
///   commitment `(start, num, root)` and a round: computing its root and checking the
///   randomness against the commitment give a result, never a panic or an overflow, and a
///   root the proof computes is one it verifies against;
/// - else: a tree over leaves cut from the input: its root is [`merkle::root`] of the leaves,
///   the proof of every leaf verifies against it, and no proof exists past the last leaf.
pub fn merkle_proof(data: &[u8]) {
    match data.split_first() {
        Some((0, rest)) => hostile_proof(rest),
        Some((width, rest)) => tree(usize::from(*width % 16) + 1, rest),
        None => tree(1, data),
    }
}

fn hostile_proof(data: &[u8]) {
    let mut fields = Fields(data);
    let mut u64_field = || {
        fields
            .take(8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .unwrap_or_default()
    };
    let (index, total, start, num, round) = (
        u64_field(),
        u64_field(),
        u64_field(),
        u64_field(),
        u64_field(),
    );
    let digest = |fields: &mut Fields<'_>| -> Digest {
        fields
            .take(32)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .unwrap_or_default()
    };
    let leaf_hash = digest(&mut fields);
    let commitment_root = digest(&mut fields);
    let pr = PublicRandomness::from_byte_array(digest(&mut fields));
    let aunts: Vec<Digest> = fields
        .0
        .chunks_exact(32)
        .take(64)
        .map(|c| c.try_into().unwrap_or_default())
        .collect();
    let proof = Proof {
        index,
        total,
        leaf_hash,
        aunts,
    };
    if let Ok(root) = proof.compute_root() {
        let leaf_checks = proof.verify(&root, &[]);
        // Only the leaf can differ: the computed root is the proof's own.
        assert!(
            leaf_checks.is_ok() || leaf_hash != merkle::leaf_hash(&[]),
            "a proof does not verify against its own root: {leaf_checks:?}"
        );
    }
    if let Ok(commitment) = RandomnessCommitment::new(start, num, commitment_root) {
        let _ = commitment.verify_randomness(round, &pr, &proof);
    }
}

fn tree(width: usize, data: &[u8]) {
    let leaves: Vec<&[u8]> = data.chunks(width).take(300).collect();
    let tree = MerkleTree::new(&leaves);
    let root = tree.root();
    assert_eq!(
        root,
        merkle::root(&leaves),
        "tree root and streamed root differ"
    );
    for (index, leaf) in (0u64..).zip(&leaves) {
        let proof = tree
            .proof(index)
            .unwrap_or_else(|e| panic!("no proof for leaf {index}: {e}"));
        assert_eq!(proof.verify(&root, leaf), Ok(()), "leaf {index}");
    }
    assert!(
        tree.proof(tree.len()).is_err(),
        "a proof past the last leaf"
    );
}
