//! A round over Fiamma's real proof and a corrupted copy, from submissions to the anchor.

use bitcoin::hashes::{sha256, Hash};
use fiamma_finality::merkle;
use fiamma_finality::round::anchor::Anchor;
use fiamma_finality::round::{round_hash, RoundHash, RoundResult};
use fiamma_finality::zk::{ProofSystem, Verdict, ZkProof};

const VALID: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/zk/fiamma-arkworks-groth16-bn254/valid/"
);

fn read(name: &str) -> Vec<u8> {
    let path = format!("{VALID}{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn round_over_a_valid_a_corrupted_and_a_malformed_proof() {
    let (vk, proof, inputs) = (
        read("vk.bitvm"),
        read("proof.bitvm"),
        read("public_input.bitvm"),
    );
    let mut negated = proof.clone();
    negated[31] ^= 0x80;
    let submissions = [
        ZkProof::new(
            ProofSystem::Groth16Bn254,
            vk.clone(),
            proof.clone(),
            inputs.clone(),
        ),
        ZkProof::new(
            ProofSystem::Groth16Bn254,
            vk.clone(),
            negated,
            inputs.clone(),
        ),
        ZkProof::new(ProofSystem::Groth16Bn254, vk, proof[..64].to_vec(), inputs),
    ]
    .map(|s| s.expect("within the caps"));

    let results = submissions.each_ref().map(|s| RoundResult {
        proof_id: s.proof_id(),
        verdict: s.round_verdict(),
    });
    assert_eq!(
        results.map(|r| r.verdict),
        [Verdict::Valid, Verdict::Invalid, Verdict::Invalid]
    );
    assert!(submissions[2].verify().is_err(), "the third is malformed");

    let prev = RoundHash([0x11; 32]);
    let hash = round_hash(42, &prev, &results);
    let leaves = results.map(|r| r.leaf());
    let root = merkle::inner_hash(
        &merkle::inner_hash(
            &merkle::leaf_hash(&leaves[0]),
            &merkle::leaf_hash(&leaves[1]),
        ),
        &merkle::leaf_hash(&leaves[2]),
    );
    let preimage = [
        &b"fiamma/round/v1"[..],
        &42u64.to_be_bytes(),
        &[0x11; 32],
        &root,
    ]
    .concat();
    assert_eq!(hash.0, sha256::Hash::hash(&preimage).to_byte_array());

    let anchor = Anchor {
        round: 42,
        round_hash: hash,
        certificate_hash: sha256::Hash::hash(b"certificate").to_byte_array(),
    };
    let script = anchor.script_pubkey();
    assert_eq!(&script.as_bytes()[..3], &[0x6a, 0x4c, 77]);
    assert_eq!(&script.as_bytes()[3..8], b"fmma\x00");
    assert_eq!(&script.as_bytes()[16..48], hash.as_bytes());
    assert_eq!(Anchor::from_script(&script), Ok(anchor));
}
