//! Conformance against Babylon's staking test vectors (`tests/data/babylon/staking_vectors.json`,
//! or the file named by `FIAMMA_STAKING_VECTORS`): every case must reproduce byte for byte.

use std::str::FromStr;

use bitcoin::consensus::serialize;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Amount, OutPoint, Txid};
use fiamma_staking::identifiable::IdentifiableStaking;
use fiamma_staking::keys::{parse_xonly_hex, StakingKeys};
use fiamma_staking::taproot::{Leaf, TaprootOutput};
use fiamma_staking::unbonding::{build_unbonding_tx, validate_unbonding_tx};
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
        let mut produced: Vec<(&str, Vec<u8>)> = vec![
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
        let staking_value = Amount::from_sat(u64_field(p, "staking_value"));
        let txid = Txid::from_str(str_field(p, "staking_tx_hash")).expect("staking tx hash");
        let outpoint = OutPoint::new(txid, u64_field(p, "staking_output_index") as u32);
        let unbonding_fee = Amount::from_sat(u64_field(p, "unbonding_fee"));
        let (unbonding_tx, unbonding_output) = build_unbonding_tx(
            &keys,
            outpoint,
            staking_value,
            unbonding_time,
            unbonding_fee,
        )
        .expect("unbonding tx");
        validate_unbonding_tx(
            &unbonding_tx,
            outpoint,
            staking_value,
            &unbonding_output,
            unbonding_fee,
        )
        .expect("built unbonding tx validates");
        assert_eq!(
            i64::from(unbonding_tx.version.0),
            p["unbonding_tx_version"].as_i64().expect("version"),
            "{name}: unbonding tx version"
        );
        produced.push(("unbonding_transaction_hex", serialize(&unbonding_tx)));
        if u64_field(e, "staking_output_value") != staking_value.to_sat() {
            failures.push(format!("{name}: staking_output_value"));
        }

        let expected_op_return = str_field(e, "op_return_script_hex");
        if !expected_op_return.is_empty() {
            let tag: [u8; 4] = hex::decode(str_field(p, "tag"))
                .expect("tag hex")
                .try_into()
                .expect("4-byte tag");
            let [verifier] = keys.verifiers() else {
                panic!("{name}: an op_return names exactly one verifier");
            };
            let data = IdentifiableStaking {
                tag,
                staker,
                verifier: *verifier,
                staking_time: u16::try_from(staking_time).expect("16-bit time"),
            };
            let script = data.script();
            assert_eq!(
                IdentifiableStaking::parse(&script, &tag),
                Ok(data),
                "{name}: op_return round trip"
            );
            produced.push(("op_return_script_hex", script.to_bytes()));
        }
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
