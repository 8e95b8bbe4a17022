//! Conformance of the checkpoint core with the vectors of `CHECKPOINTS.md` §13.13
//! (`tests/data/checkpoints/checkpoint_vectors.json`, or the file named by
//! `FIAMMA_CHECKPOINT_VECTORS`): every expected field is reproduced byte for byte, and every
//! mismatch of every vector is reported.

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::{Amount, OutPoint, Txid};
use fiamma_finality::checkpoint::{
    build_candidate, CandidateSpec, CheckpointKind, CheckpointLeaf, CheckpointPayload,
    CheckpointSet, RecoveryLeaf,
};
use fiamma_finality::round::RoundHash;
use secp256k1::XOnlyPublicKey;
use serde::Deserialize;

const DEFAULT_VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/checkpoints/checkpoint_vectors.json"
);

#[derive(Deserialize)]
struct File {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    parameters: Parameters,
    expected: Expected,
}

#[derive(Deserialize)]
struct Power {
    key: String,
    power: u64,
}

#[derive(Deserialize)]
struct Parameters {
    base_powers: Vec<Power>,
    next_powers: Vec<Power>,
    covenant_public_keys: Vec<String>,
    covenant_quorum: u32,
    recovery_blocks: u32,
    checkpoint_value_sat: u64,
    base_txid: String,
    base_vout: u32,
    round: u64,
    round_hash: String,
    state: String,
}

#[derive(Deserialize, PartialEq, Debug)]
struct Weight {
    key: String,
    weight: u32,
}

#[derive(Deserialize)]
struct Expected {
    base_set: Vec<Weight>,
    base_quorum_script_hex: String,
    recovery_script_hex: String,
    base_output_pkscript_hex: String,
    next_output_pkscript_hex: String,
    unsigned_tx_hex: String,
    sighash_hex: String,
    eots_message_hex: String,
}

fn xonly(hex_str: &str) -> XOnlyPublicKey {
    XOnlyPublicKey::from_slice(&hex::decode(hex_str).expect("key hex")).expect("x-only key")
}

fn bytes32(hex_str: &str) -> [u8; 32] {
    hex::decode(hex_str)
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

fn set(powers: &[Power]) -> CheckpointSet {
    CheckpointSet::from_powers(powers.iter().map(|p| (xonly(&p.key), p.power))).expect("set")
}

/// Every mismatch of one vector, empty when it conforms.
fn check(v: &Vector) -> Vec<String> {
    let p = &v.parameters;
    let e = &v.expected;
    let mut failures = Vec::new();
    let mut expect = |field: &str, got: String, want: &str| {
        if got != want {
            failures.push(format!("{field}: got {got}, expected {want}"));
        }
    };
    let base_set = set(&p.base_powers);
    let next_set = set(&p.next_powers);
    let covenant: Vec<XOnlyPublicKey> = p.covenant_public_keys.iter().map(|k| xonly(k)).collect();
    let recovery =
        RecoveryLeaf::new(&covenant, p.covenant_quorum, p.recovery_blocks).expect("recovery leaf");
    let weights: Vec<String> = base_set
        .members()
        .iter()
        .map(|m| format!("{}:{}", hex::encode(m.key.serialize()), m.weight))
        .collect();
    let want: Vec<String> = e
        .base_set
        .iter()
        .map(|w| format!("{}:{}", w.key, w.weight))
        .collect();
    expect("base_set", weights.join(","), &want.join(","));
    let txid: Txid = p.base_txid.parse().expect("txid in display order");
    let candidate = build_candidate(&CandidateSpec {
        base: OutPoint::new(txid, p.base_vout),
        base_round: 0,
        base_set: &base_set,
        next_set: &next_set,
        recovery: &recovery,
        value: Amount::from_sat(p.checkpoint_value_sat),
        payload: CheckpointPayload {
            kind: CheckpointKind::Quorum,
            round: p.round,
            round_hash: RoundHash(bytes32(&p.round_hash)),
            state: bytes32(&p.state),
        },
    })
    .expect("candidate");
    let base = &candidate.base_output;
    expect(
        "base_quorum_script_hex",
        hex::encode(base.leaf_script(CheckpointLeaf::Quorum).as_bytes()),
        &e.base_quorum_script_hex,
    );
    expect(
        "recovery_script_hex",
        hex::encode(recovery.script().as_bytes()),
        &e.recovery_script_hex,
    );
    expect(
        "recovery_script_hex (in the next output)",
        hex::encode(
            candidate
                .next_output
                .leaf_script(CheckpointLeaf::Recovery)
                .as_bytes(),
        ),
        &e.recovery_script_hex,
    );
    expect(
        "base_output_pkscript_hex",
        hex::encode(base.script_pubkey().as_bytes()),
        &e.base_output_pkscript_hex,
    );
    expect(
        "next_output_pkscript_hex",
        hex::encode(candidate.next_output.script_pubkey().as_bytes()),
        &e.next_output_pkscript_hex,
    );
    expect(
        "unsigned_tx_hex",
        serialize_hex(&candidate.tx),
        &e.unsigned_tx_hex,
    );
    // The sighash as BIP-0341 defines it: rust-bitcoin's encoder, independent of M.
    let sighash = fiamma_staking::sighash::tapscript_sighash_for_leaf(
        &candidate.tx,
        0,
        &[candidate.spent_txout()],
        base.leaf_hash(CheckpointLeaf::Quorum),
    )
    .expect("sighash");
    expect(
        "sighash_hex",
        hex::encode(sighash.to_byte_array()),
        &e.sighash_hex,
    );
    expect(
        "eots_message_hex",
        hex::encode(candidate.message.as_bytes()),
        &e.eots_message_hex,
    );
    expect(
        "sha256(eots_message)",
        hex::encode(candidate.message.sighash().to_byte_array()),
        &e.sighash_hex,
    );
    failures
}

#[test]
fn checkpoint_vectors_reproduce_byte_for_byte() {
    let path =
        std::env::var("FIAMMA_CHECKPOINT_VECTORS").unwrap_or_else(|_| DEFAULT_VECTORS.into());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let file: File = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"));
    assert!(!file.vectors.is_empty(), "{path} holds no vectors");
    let failures: Vec<String> = file
        .vectors
        .iter()
        .flat_map(|v| {
            check(v)
                .into_iter()
                .map(move |f| format!("{}: {f}", v.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} mismatches in {path}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The test fails on a single changed byte: a corrupted copy of the file is refused.
#[test]
fn a_changed_byte_is_a_mismatch() {
    let text = std::fs::read_to_string(DEFAULT_VECTORS).expect("read vectors");
    let mut file: File = serde_json::from_str(&text).expect("parse");
    let v = &mut file.vectors[0];
    assert!(check(v).is_empty(), "{:?}", check(v));
    let last = v.expected.eots_message_hex.pop().expect("hex digit");
    v.expected
        .eots_message_hex
        .push(if last == '0' { '1' } else { '0' });
    let failures = check(v);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].starts_with("eots_message_hex"));
}
