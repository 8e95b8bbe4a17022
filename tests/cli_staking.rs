//! `fiamma staking output` run as a process: its JSON matches Babylon's staking vector case 2
//! byte for byte, `--example` gives the same document, and bad input ends with a specific
//! error and a non-zero exit.

use std::process::{Command, Output};

use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/babylon/staking_vectors.json"
);

fn fiamma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(args)
        .output()
        .expect("run fiamma")
}

/// Case 2 of the vectors (1 verifier, 3-of-5 committee).
fn case() -> Value {
    let text = std::fs::read_to_string(VECTORS).expect("vectors");
    let json: Value = serde_json::from_str(&text).expect("json");
    json["vectors"][1].clone()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The explicit arguments for case 2, built from the vector file itself.
fn explicit_args(case: &Value) -> Vec<String> {
    let p = &case["parameters"];
    let mut args = vec![
        "staking".to_owned(),
        "output".to_owned(),
        "--staker-pk".to_owned(),
        s(&p["staker_public_key"]),
    ];
    for k in p["finality_provider_public_keys"]
        .as_array()
        .expect("fp keys")
    {
        args.extend(["--verifier-pk".to_owned(), s(k)]);
    }
    for k in p["covenant_public_keys"].as_array().expect("covenant keys") {
        args.extend(["--covenant-pk".to_owned(), s(k)]);
    }
    let outpoint = format!(
        "{}:{}",
        s(&p["staking_tx_hash"]),
        s(&p["staking_output_index"])
    );
    for (flag, value) in [
        ("--covenant-quorum", s(&p["covenant_quorum"])),
        ("--staking-time", s(&p["staking_time"])),
        ("--unbonding-time", s(&p["unbonding_time"])),
        ("--network", s(&p["network"])),
        ("--staking-outpoint", outpoint),
        ("--staking-value", s(&p["staking_value"])),
        ("--unbonding-fee", s(&p["unbonding_fee"])),
        ("--tag", s(&p["tag"])),
    ] {
        args.extend([flag.to_owned(), value]);
    }
    args
}

fn run_json(args: &[&str]) -> Value {
    let out = fiamma(args);
    assert!(
        out.status.success(),
        "fiamma {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json on stdout")
}

fn assert_matches_vector(doc: &Value, case: &Value) {
    let e = &case["expected"];
    let pairs = [
        (
            &doc["staking_output"]["timelock_script"],
            "staking_transaction_timelock_script_hex",
        ),
        (
            &doc["staking_output"]["unbonding_script"],
            "staking_transaction_unbonding_script_hex",
        ),
        (
            &doc["staking_output"]["slashing_script"],
            "staking_transaction_slashing_script_hex",
        ),
        (
            &doc["staking_output"]["pk_script"],
            "staking_output_pkscript_hex",
        ),
        (
            &doc["unbonding"]["transaction"],
            "unbonding_transaction_hex",
        ),
        (
            &doc["unbonding"]["timelock_script"],
            "unbonding_transaction_time_lock_script_hex",
        ),
        (
            &doc["unbonding"]["slashing_script"],
            "unbonding_transaction_slashing_script_hex",
        ),
        (&doc["op_return"], "op_return_script_hex"),
    ];
    for (got, field) in pairs {
        assert_eq!(s(got), s(&e[field]), "{field}");
    }
    assert_eq!(doc["staking_output"]["value"], e["staking_output_value"]);
    assert!(s(&doc["staking_output"]["address"]).starts_with("bc1p"));
}

#[test]
fn explicit_arguments_reproduce_the_vector() {
    let case = case();
    let args = explicit_args(&case);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_matches_vector(&run_json(&args), &case);
}

#[test]
fn example_flag_needs_no_other_input() {
    let case = case();
    assert_matches_vector(&run_json(&["staking", "output", "--example"]), &case);
}

fn without(args: &[String], flag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a == flag {
            skip = true;
        } else {
            out.push(a.clone());
        }
    }
    out
}

fn assert_refused_with(args: Vec<String>, message: &str) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = fiamma(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} was accepted");
    assert!(
        stderr.contains(message),
        "expected {message:?} in {stderr:?}"
    );
}

#[test]
fn bad_input_is_refused_with_a_specific_error() {
    let case = case();
    let base = explicit_args(&case);

    let mut bad_key = without(&base, "--staker-pk");
    bad_key.extend(["--staker-pk".into(), "02zz".into()]);
    assert_refused_with(bad_key, "--staker-pk 02zz: key \"02zz\" is not hex");

    let mut short_key = without(&base, "--staker-pk");
    short_key.extend(["--staker-pk".into(), "0102".into()]);
    assert_refused_with(short_key, "key has 2 bytes");

    let mut quorum = without(&base, "--covenant-quorum");
    quorum.extend(["--covenant-quorum".into(), "6".into()]);
    assert_refused_with(quorum, "covenant quorum 6 is not in 1..=5");

    let covenant = s(&case["parameters"]["covenant_public_keys"][0]);
    let mut duplicate = base.clone();
    duplicate.extend(["--covenant-pk".into(), covenant.clone()]);
    assert_refused_with(
        duplicate,
        &format!("key {} appears more than once", &covenant[2..]),
    );

    for time in ["0", "65536"] {
        let mut t = without(&base, "--staking-time");
        t.extend(["--staking-time".into(), time.into()]);
        assert_refused_with(t, &format!("timelock of {time} blocks is not in 1..=65535"));
        let mut u = without(&base, "--unbonding-time");
        u.extend(["--unbonding-time".into(), time.into()]);
        assert_refused_with(u, &format!("timelock of {time} blocks is not in 1..=65535"));
    }

    let missing = without(&base, "--staker-pk");
    assert_refused_with(missing, "missing --staker-pk");
}
