//! Conformance against Babylon's staking test vectors (`tests/data/babylon/staking_vectors.json`,
//! or the file named by `FIAMMA_STAKING_VECTORS`): every case must reproduce byte for byte.

use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_staking::keys::{parse_xonly_hex, StakingKeys};
use fiamma_staking::taproot::{Leaf, TaprootOutput};
use serde_json::Value;

fn vectors() -> (String, Vec<Value>) {
    let path = std::env::var("FIAMMA_STAKING_VECTORS").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/babylon/staking_vectors.json"
        )
        .to_owned()
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"));
    let cases = json["vectors"]
        .as_array()
        .unwrap_or_else(|| panic!("{path}: no `vectors` array"))
        .clone();
    assert!(!cases.is_empty(), "{path}: no cases");
    (path, cases)
}

fn str_field<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("missing string field {field}"))
}

fn u64_field(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("missing integer field {field}"))
}

fn key_list(v: &Value, field: &str) -> Vec<XOnlyPublicKey> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("missing list {field}"))
        .iter()
        .map(|k| parse_xonly_hex(k.as_str().expect("hex key")).expect("valid key"))
        .collect()
}

fn check(name: &str, what: &str, got: &[u8], want: &str, failures: &mut Vec<String>) {
    if hex::encode(got) != want {
        failures.push(format!(
            "{name}: {what}\n  got  {}\n  want {want}",
            hex::encode(got)
        ));
    }
}

#[test]
fn staking_vectors_reproduce_byte_for_byte() {
    let (path, cases) = vectors();
    let mut failures = Vec::new();
    for case in &cases {
        let name = str_field(case, "name");
        let p = &case["parameters"];
        let e = &case["expected"];
        let staker = parse_xonly_hex(str_field(p, "staker_public_key")).expect("staker key");
        let keys = StakingKeys::new(
            staker,
            &key_list(p, "finality_provider_public_keys"),
            &key_list(p, "covenant_public_keys"),
            u64_field(p, "covenant_quorum") as u32,
        )
        .expect("valid key sets");
        let staking_time = u64_field(p, "staking_time") as u32;
        let unbonding_time = u64_field(p, "unbonding_time") as u32;

        let staking = TaprootOutput::staking(&keys, staking_time).expect("staking output");
        let unbonding = TaprootOutput::unbonding(&keys, unbonding_time).expect("unbonding output");
        let leaf = |output: &TaprootOutput, leaf: Leaf| {
            output.leaf_script(leaf).expect("leaf").as_bytes().to_vec()
        };
        let produced: Vec<(&str, Vec<u8>)> = vec![
            (
                "staking_transaction_timelock_script_hex",
                leaf(&staking, Leaf::Timelock),
            ),
            (
                "staking_transaction_unbonding_script_hex",
                leaf(&staking, Leaf::Unbonding),
            ),
            (
                "staking_transaction_slashing_script_hex",
                leaf(&staking, Leaf::Slashing),
            ),
            (
                "staking_output_pkscript_hex",
                staking.script_pubkey().to_bytes(),
            ),
            (
                "unbonding_transaction_time_lock_script_hex",
                leaf(&unbonding, Leaf::Timelock),
            ),
            (
                "unbonding_transaction_slashing_script_hex",
                leaf(&unbonding, Leaf::Slashing),
            ),
        ];
        for (field, got) in produced {
            check(name, field, &got, str_field(e, field), &mut failures);
        }
    }
    assert!(
        failures.is_empty(),
        "{path}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
