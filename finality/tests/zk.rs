//! ZK verification against Fiamma's Groth16 BN254 sets and hand-made faults.

use ark_bn254::{Bn254, Fq, Fq2, Fr, G2Affine};
use ark_ec::short_weierstrass::Affine;
use ark_ff::{Field, PrimeField};
use ark_groth16::{Groth16, Proof, VerifyingKey};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use bitcoin::hashes::{sha256, Hash};
use fiamma_finality::zk::{
    DecodedProof, Element, Part, PointError, PreparedKey, ProofSizeError, ProofSystem, SizeCaps,
    Verdict, ZkError, ZkProof,
};
use proptest::prelude::*;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/zk/fiamma-arkworks-groth16-bn254/"
);

/// The raw parts of one set: (verifying key, proof, public inputs).
type Parts = (Vec<u8>, Vec<u8>, Vec<u8>);

fn set(name: &str) -> Parts {
    let read = |file: &str| {
        let path = format!("{DATA}{name}/{file}");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    (
        read("vk.bitvm"),
        read("proof.bitvm"),
        read("public_input.bitvm"),
    )
}

fn submit((vk, proof, inputs): Parts) -> ZkProof {
    ZkProof::new(ProofSystem::Groth16Bn254, vk, proof, inputs).expect("within the caps")
}

fn verify(parts: Parts) -> Result<Verdict, ZkError> {
    submit(parts).verify()
}

/// arkworks' own validated decoding and verification, as the reference.
fn arkworks_verify((vk, proof, inputs): &Parts) -> Option<bool> {
    let vk = VerifyingKey::<Bn254>::deserialize_compressed(&vk[..]).ok()?;
    let proof = Proof::<Bn254>::deserialize_compressed(&proof[..]).ok()?;
    let inputs = Vec::<Fr>::deserialize_compressed(&inputs[..]).ok()?;
    let prepared = ark_groth16::prepare_verifying_key(&vk);
    Groth16::<Bn254>::verify_proof(&prepared, &proof, &inputs).ok()
}

fn encode<T: CanonicalSerialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value
        .serialize_compressed(&mut out)
        .expect("writing into a Vec cannot fail");
    out
}

#[test]
fn both_fiamma_sets_verify_as_valid() {
    assert_eq!(verify(set("valid")), Ok(Verdict::Valid));
    assert_eq!(verify(set("challenge")), Ok(Verdict::Valid));
    assert_eq!(arkworks_verify(&set("valid")), Some(true));
    assert_eq!(arkworks_verify(&set("challenge")), Some(true));
}

#[test]
fn decoded_values_equal_arkworks_decoding() {
    for name in ["valid", "challenge"] {
        let (vk, proof, inputs) = set(name);
        let zk = submit((vk.clone(), proof.clone(), inputs.clone()));
        let DecodedProof::Groth16Bn254(decoded) = zk.decode().expect("decodes");
        assert_eq!(
            decoded.verifying_key(),
            &VerifyingKey::<Bn254>::deserialize_compressed(&vk[..]).expect("arkworks decodes")
        );
        assert_eq!(
            decoded.proof(),
            &Proof::<Bn254>::deserialize_compressed(&proof[..]).expect("arkworks decodes")
        );
        assert_eq!(
            decoded.public_inputs(),
            &Vec::<Fr>::deserialize_compressed(&inputs[..]).expect("arkworks decodes")[..]
        );
    }
}

#[test]
fn prepared_key_gives_the_same_results() {
    let (vk, proof, inputs) = set("valid");
    let (challenge_vk, challenge_proof, challenge_inputs) = set("challenge");
    let key = PreparedKey::decode(&vk).expect("decodes");
    let challenge_key = PreparedKey::decode(&challenge_vk).expect("decodes");
    assert_eq!(key.verify(&proof, &inputs), Ok(Verdict::Valid));
    assert_eq!(
        challenge_key.verify(&challenge_proof, &challenge_inputs),
        Ok(Verdict::Valid)
    );
    assert_eq!(key.verify(&challenge_proof, &inputs), Ok(Verdict::Invalid));
    assert_eq!(
        key.verify(&proof, &[0; 8]),
        Err(ZkError::InputCountMismatch {
            given: 0,
            expected: 1
        })
    );
    assert_eq!(
        PreparedKey::decode(&vk[..295]).map(|_| ()),
        verify((vk[..295].to_vec(), proof, inputs)).map(|_| ())
    );
}

#[test]
fn the_sets_do_not_cross_verify() {
    let (valid_vk, valid_proof, valid_inputs) = set("valid");
    let (challenge_vk, challenge_proof, _) = set("challenge");
    assert_eq!(
        verify((challenge_vk, valid_proof, valid_inputs.clone())),
        Ok(Verdict::Invalid)
    );
    assert_eq!(
        verify((valid_vk, challenge_proof, valid_inputs)),
        Ok(Verdict::Invalid)
    );
}

#[test]
fn negated_proof_point_decodes_and_is_invalid() {
    // The top bit of a G1 point's last byte selects y or -y: flipping it yields -A (or -C), a
    // valid encoding of another point.
    for last_byte in [31, 127] {
        let (vk, mut proof, inputs) = set("valid");
        proof[last_byte] ^= 0x80;
        assert_eq!(verify((vk, proof, inputs)), Ok(Verdict::Invalid));
    }
}

#[test]
fn changed_public_input_is_invalid() {
    let (vk, proof, inputs) = set("valid");
    let value = Vec::<Fr>::deserialize_compressed(&inputs[..]).expect("decodes");
    let changed = encode(&vec![value[0] + Fr::from(1u64)]);
    let zk = submit((vk, proof, changed));
    assert_eq!(zk.verify(), Ok(Verdict::Invalid));
    assert_eq!(zk.round_verdict(), Verdict::Invalid);
}

#[test]
fn truncated_parts_name_part_offset_and_shortfall() {
    let (vk, proof, inputs) = set("valid");
    assert_eq!(
        verify((vk.clone(), proof[..127].to_vec(), inputs.clone())),
        Err(ZkError::Truncated {
            part: Part::Proof,
            offset: 96,
            needed: 32,
            available: 31
        })
    );
    assert_eq!(
        verify((vk[..100].to_vec(), proof.clone(), inputs.clone())),
        Err(ZkError::Truncated {
            part: Part::VerifyingKey,
            offset: 96,
            needed: 64,
            available: 4
        })
    );
    assert_eq!(
        verify((vk.clone(), proof.clone(), inputs[..39].to_vec())),
        Err(ZkError::Truncated {
            part: Part::PublicInputs,
            offset: 8,
            needed: 32,
            available: 31
        })
    );
    let empty = submit((vk, Vec::new(), inputs));
    assert_eq!(
        empty.verify(),
        Err(ZkError::Truncated {
            part: Part::Proof,
            offset: 0,
            needed: 32,
            available: 0
        })
    );
    assert_eq!(
        empty.verify().expect_err("empty").to_string(),
        "proof truncated: 32 bytes needed at offset 0, 0 left"
    );
}

#[test]
fn extended_parts_have_trailing_bytes_or_exceed_the_cap() {
    let (vk, proof, inputs) = set("valid");
    let longer = |bytes: &[u8]| [bytes, &[0]].concat();
    assert_eq!(
        verify((longer(&vk), proof.clone(), inputs.clone())),
        Err(ZkError::TrailingBytes {
            part: Part::VerifyingKey,
            consumed: 296,
            extra: 1
        })
    );
    assert_eq!(
        verify((vk.clone(), proof.clone(), longer(&inputs))),
        Err(ZkError::TrailingBytes {
            part: Part::PublicInputs,
            consumed: 40,
            extra: 1
        })
    );
    // The proof cap is its fixed size, so one more byte is refused before decoding.
    assert_eq!(
        ZkProof::new(ProofSystem::Groth16Bn254, vk, longer(&proof), inputs),
        Err(ProofSizeError {
            part: Part::Proof,
            size: 129,
            cap: 128
        })
    );
}

#[test]
fn oversized_parts_give_the_size_error() {
    let caps = SizeCaps::of(ProofSystem::Groth16Bn254);
    assert_eq!(
        (caps.verifying_key, caps.proof, caps.public_inputs),
        (2312, 128, 2056)
    );
    let (vk, proof, inputs) = set("valid");
    let over = |cap: usize| vec![0u8; cap + 1];
    let cases = [
        (
            (over(caps.verifying_key), proof.clone(), inputs.clone()),
            Part::VerifyingKey,
            caps.verifying_key,
        ),
        (
            (vk.clone(), over(caps.proof), inputs.clone()),
            Part::Proof,
            caps.proof,
        ),
        (
            (vk, proof, over(caps.public_inputs)),
            Part::PublicInputs,
            caps.public_inputs,
        ),
    ];
    for ((vk, proof, inputs), part, cap) in cases {
        let err =
            ZkProof::new(ProofSystem::Groth16Bn254, vk, proof, inputs).expect_err("over the cap");
        assert_eq!(
            err,
            ProofSizeError {
                part,
                size: cap + 1,
                cap
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{part} is {} bytes, more than the cap of {cap} bytes",
                cap + 1
            )
        );
    }
    // Exactly at the cap is accepted, and then judged by decoding.
    let at_cap = ZkProof::new(
        ProofSystem::Groth16Bn254,
        vec![0; caps.verifying_key],
        vec![0; caps.proof],
        vec![0; caps.public_inputs],
    )
    .expect("at the cap");
    assert!(at_cap.verify().is_err());
}

#[test]
fn garbage_gets_a_specific_error_and_round_verdict_invalid() {
    let (vk, _, inputs) = set("valid");
    let zk = submit((vk, vec![0xff; 128], inputs));
    assert_eq!(
        zk.verify(),
        Err(ZkError::Point {
            part: Part::Proof,
            element: Element::A,
            reason: PointError::InvalidFlags(0xff)
        })
    );
    assert_eq!(zk.round_verdict(), Verdict::Invalid);
    assert_eq!(
        zk.verify().expect_err("malformed").to_string(),
        "proof a: flag bits 0b11 in byte 0xff are not a valid flag"
    );
}

#[test]
fn point_faults_are_told_apart() {
    let (vk, proof, inputs) = set("valid");

    // c := an x with no curve point.
    let x = (0u64..)
        .map(Fq::from)
        .find(|x| (x.square() * x + Fq::from(3u64)).sqrt().is_none())
        .expect("half of all x have no point");
    let mut bad = proof.clone();
    bad[96..].copy_from_slice(&encode(&x));
    assert_eq!(
        verify((vk.clone(), bad, inputs.clone())),
        Err(ZkError::Point {
            part: Part::Proof,
            element: Element::C,
            reason: PointError::NotOnCurve
        })
    );

    // a := the base field modulus, which is not a canonical coordinate.
    let mut bad = proof.clone();
    bad[..32].copy_from_slice(&encode(&Fq::MODULUS));
    assert_eq!(
        verify((vk.clone(), bad, inputs.clone())),
        Err(ZkError::Point {
            part: Part::Proof,
            element: Element::A,
            reason: PointError::NonCanonicalCoordinate
        })
    );

    // delta_g2 := a twist point outside the prime-order subgroup.
    let outside = (1u64..)
        .filter_map(|i| {
            Affine::<ark_bn254::g2::Config>::get_point_from_x_unchecked(
                Fq2::new(Fq::from(i), Fq::from(1u64)),
                false,
            )
        })
        .find(|p: &G2Affine| !p.is_in_correct_subgroup_assuming_on_curve())
        .expect("almost every twist point is outside the subgroup");
    let mut bad = vk.clone();
    bad[160..224].copy_from_slice(&encode(&outside));
    assert_eq!(
        verify((bad, proof.clone(), inputs.clone())),
        Err(ZkError::Point {
            part: Part::VerifyingKey,
            element: Element::DeltaG2,
            reason: PointError::NotInSubgroup
        })
    );

    // gamma_abc_g1[1] := infinity with a non-zero x.
    let mut bad = vk;
    bad[264..296].fill(0);
    bad[264] = 1;
    bad[295] = 0x40;
    assert_eq!(
        verify((bad, proof, inputs)),
        Err(ZkError::Point {
            part: Part::VerifyingKey,
            element: Element::GammaAbcG1(1),
            reason: PointError::NonCanonicalInfinity
        })
    );
}

/// Where each point of the valid set's key (one public input) and proof lies.
const POINTS: [(Part, Element, std::ops::Range<usize>); 9] = [
    (Part::VerifyingKey, Element::AlphaG1, 0..32),
    (Part::VerifyingKey, Element::BetaG2, 32..96),
    (Part::VerifyingKey, Element::GammaG2, 96..160),
    (Part::VerifyingKey, Element::DeltaG2, 160..224),
    (Part::VerifyingKey, Element::GammaAbcG1(0), 232..264),
    (Part::VerifyingKey, Element::GammaAbcG1(1), 264..296),
    (Part::Proof, Element::A, 0..32),
    (Part::Proof, Element::B, 32..96),
    (Part::Proof, Element::C, 96..128),
];

/// The canonical encoding of the point at infinity in `len` bytes (G1: 32, G2: 64).
fn infinity(len: usize) -> Vec<u8> {
    if len == 32 {
        encode(&ark_bn254::G1Affine::default())
    } else {
        encode(&G2Affine::default())
    }
}

#[test]
fn a_key_and_proof_of_points_at_infinity_verify_anything_in_arkworks_and_are_refused() {
    let (vk, proof, inputs) = set("valid");
    let mut void_vk = vk.clone();
    let mut void_proof = proof.clone();
    for (part, _, range) in &POINTS {
        let bytes = infinity(range.len());
        match part {
            Part::VerifyingKey => void_vk[range.clone()].copy_from_slice(&bytes),
            _ => void_proof[range.clone()].copy_from_slice(&bytes),
        }
    }
    // The vacuous equation e(0, 0) = e(0, 0)·e(0, 0)·e(0, 0) holds for any input: arkworks
    // calls it valid for the set's input and for any other.
    let mut other_inputs = inputs.clone();
    other_inputs[8] ^= 1;
    for i in [&inputs, &other_inputs] {
        let parts = (void_vk.clone(), void_proof.clone(), i.clone());
        assert_eq!(arkworks_verify(&parts), Some(true));
        assert_eq!(
            verify(parts),
            Err(ZkError::Point {
                part: Part::VerifyingKey,
                element: Element::AlphaG1,
                reason: PointError::Identity
            })
        );
    }
}

#[test]
fn every_point_at_infinity_is_refused_by_name() {
    let (vk, proof, inputs) = set("valid");
    for (part, element, range) in POINTS {
        let (mut vk, mut proof) = (vk.clone(), proof.clone());
        let target = if part == Part::VerifyingKey {
            &mut vk
        } else {
            &mut proof
        };
        target[range.clone()].copy_from_slice(&infinity(range.len()));
        let expected = Err(ZkError::Point {
            part,
            element,
            reason: PointError::Identity,
        });
        assert_eq!(
            verify((vk.clone(), proof.clone(), inputs.clone())),
            expected
        );
        assert_eq!(
            PreparedKey::decode(&vk).and_then(|key| key.verify(&proof, &inputs)),
            expected,
            "{element}"
        );
    }
}

#[test]
fn delta_equal_or_opposite_to_gamma_is_refused() {
    let (vk, proof, inputs) = set("valid");
    let gamma = G2Affine::deserialize_compressed(&vk[96..160]).expect("gamma");
    for delta in [gamma, -gamma] {
        let mut bad = vk.clone();
        bad[160..224].copy_from_slice(&encode(&delta));
        assert_eq!(
            verify((bad, proof.clone(), inputs.clone())),
            Err(ZkError::DependentGammaDelta)
        );
    }
}

#[test]
fn scalar_and_count_faults() {
    let (vk, proof, inputs) = set("valid");

    let at_r = [&inputs[..8], &encode(&Fr::MODULUS)[..]].concat();
    assert_eq!(
        verify((vk.clone(), proof.clone(), at_r)),
        Err(ZkError::NonCanonicalScalar { index: 0 })
    );

    assert_eq!(
        verify((vk.clone(), proof.clone(), vec![0; 8])),
        Err(ZkError::InputCountMismatch {
            given: 0,
            expected: 1
        })
    );

    let two_inputs = [&2u64.to_le_bytes()[..], &inputs[8..], &inputs[8..]].concat();
    assert_eq!(
        verify((vk.clone(), proof.clone(), two_inputs)),
        Err(ZkError::InputCountMismatch {
            given: 2,
            expected: 1
        })
    );

    let mut empty_abc = vk[..232].to_vec();
    empty_abc[224..232].fill(0);
    assert_eq!(
        verify((empty_abc, proof.clone(), inputs.clone())),
        Err(ZkError::EmptyGammaAbc)
    );

    let mut huge = vk.clone();
    huge[224..232].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        verify((huge, proof.clone(), inputs.clone())),
        Err(ZkError::TooManyElements {
            part: Part::VerifyingKey,
            count: u64::MAX,
            max: 65
        })
    );

    let mut many_inputs = inputs;
    many_inputs[..8].copy_from_slice(&65u64.to_le_bytes());
    assert_eq!(
        verify((vk, proof, many_inputs)),
        Err(ZkError::TooManyElements {
            part: Part::PublicInputs,
            count: 65,
            max: 64
        })
    );
}

#[test]
fn proof_id_is_pinned_and_matches_its_definition() {
    let (vk, proof, inputs) = set("valid");
    let preimage = [
        &[1u8][..],
        &296u32.to_be_bytes(),
        &vk,
        &128u32.to_be_bytes(),
        &proof,
        &40u32.to_be_bytes(),
        &inputs,
    ]
    .concat();
    let id = submit((vk, proof, inputs)).proof_id();
    assert_eq!(id.0, sha256::Hash::hash(&preimage).to_byte_array());
    assert_eq!(
        id.to_string(),
        "4f6394fa1898d11b277b8f39d7b207b6946851e0c7fda1014151348fa3523747"
    );
}

#[test]
fn proof_id_changes_with_every_byte() {
    let parts = set("valid");
    let original = submit(parts.clone()).proof_id();
    let mut seen = std::collections::HashSet::from([original]);
    let lens = [parts.0.len(), parts.1.len(), parts.2.len()];
    for (part, len) in lens.into_iter().enumerate() {
        for i in 0..len {
            let changed = flipped(&parts, &[(part, i, 0x01)]);
            assert!(
                seen.insert(submit(changed).proof_id()),
                "part {part} byte {i}"
            );
        }
    }
    assert_eq!(seen.len(), 1 + 296 + 128 + 40);
}

/// `parts` with each `(part, index, mask)` applied as `part[index % len] ^= mask`.
fn flipped(parts: &Parts, flips: &[(usize, usize, u8)]) -> Parts {
    let mut out = parts.clone();
    for &(part, index, mask) in flips {
        let bytes = match part {
            0 => &mut out.0,
            1 => &mut out.1,
            _ => &mut out.2,
        };
        let len = bytes.len();
        bytes[index % len] ^= mask;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random byte flips never panic, and the result agrees with arkworks: the same bytes
    /// decode (except the non-canonical infinity arkworks lets through) and give the same
    /// verdict.
    #[test]
    fn byte_flips_never_panic_and_agree_with_arkworks(
        flips in prop::collection::vec((0usize..3, any::<usize>(), 1u8..=255), 1..4),
        challenge in any::<bool>(),
    ) {
        let parts = flipped(&set(if challenge { "challenge" } else { "valid" }), &flips);
        let zk = submit(parts.clone());
        let ours = zk.verify();
        prop_assert_eq!(zk.round_verdict(), ours.unwrap_or(Verdict::Invalid));
        let prepared = PreparedKey::decode(&parts.0).and_then(|key| key.verify(&parts.1, &parts.2));
        prop_assert_eq!(prepared, ours);
        // arkworks' Vec decoder reserves capacity for the declared count before reading, so a
        // flipped length prefix would abort the process there; ours refuses the count (or an
        // earlier fault).
        let count = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        if count(&parts.0[224..232]) > 65 || count(&parts.2[..8]) > 64 {
            prop_assert!(ours.is_err());
            return Ok(());
        }
        match (ours, arkworks_verify(&parts)) {
            (Ok(verdict), Some(valid)) => prop_assert_eq!(verdict.is_valid(), valid),
            (Err(_), None) => {}
            // Stricter than arkworks on purpose: one encoding per point, no ignored bytes.
            (Err(ZkError::Point { reason: PointError::NonCanonicalInfinity, .. }), Some(_)) => {}
            (Err(ZkError::TrailingBytes { .. }), Some(_)) => {}
            // Refused on purpose: keys and proofs that make the check vacuous.
            (Err(ZkError::Point { reason: PointError::Identity, .. }), Some(_)) => {}
            (Err(ZkError::DependentGammaDelta), Some(_)) => {}
            (ours, theirs) => prop_assert!(false, "ours {:?}, arkworks {:?}", ours, theirs),
        }
    }

    /// Arbitrary bytes within the caps never panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        vk in prop::collection::vec(any::<u8>(), 0..400),
        proof in prop::collection::vec(any::<u8>(), 0..=128),
        inputs in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let zk = submit((vk, proof, inputs));
        let verdict = zk.round_verdict();
        prop_assert_eq!(verdict, zk.verify().unwrap_or(Verdict::Invalid));
    }
}
