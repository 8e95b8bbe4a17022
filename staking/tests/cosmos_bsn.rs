//! Both delegations of Babylon's cosmos-bsn test data (`tests/data/cosmos-bsn/`) pass
//! `validate_delegation`: staking output, slashing transactions, staker signatures and proof
//! of possession; the covenant unbonding signatures in the data verify under the sighash the
//! library computes.

use bitcoin::consensus::deserialize;
use bitcoin::secp256k1::{schnorr, XOnlyPublicKey};
use bitcoin::{ScriptBuf, Transaction};
use fiamma_staking::account::Account;
use fiamma_staking::context::{SigningContexts, SigningOp};
use fiamma_staking::delegation::{validate_delegation, DelegationError};
use fiamma_staking::keys::parse_xonly_hex;
use fiamma_staking::params::Params;
use fiamma_staking::pop::ProofOfPossession;
use fiamma_staking::registration::Registration;
use fiamma_staking::sighash::{parse_signature, verify};
use fiamma_staking::slashing::SlashingTxError;
use fiamma_staking::witness::{unbonding_witness, KeySignature};
use serde_json::Value;

mod common;
use common::kernel_accepts;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/cosmos-bsn/");

fn decoded() -> Value {
    let text = std::fs::read_to_string(format!("{DATA}decoded_testdata.json"))
        .expect("decoded_testdata.json");
    serde_json::from_str(&text).expect("json")
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("missing {field}"))
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(text(v, field)).expect("hex")
}

fn key(v: &Value) -> XOnlyPublicKey {
    parse_xonly_hex(v.as_str().expect("hex key")).expect("key")
}

fn sig(v: &Value, field: &str) -> schnorr::Signature {
    parse_signature(&bytes(v, field)).expect("64-byte signature")
}

fn tx(v: &Value, field: &str) -> Transaction {
    deserialize(&bytes(v, field)).expect("transaction")
}

/// The params section holds only some fields; the others are filled with values the data is
/// consistent with:
/// - `unbonding_time_blocks` = 101 and `unbonding_fee_sat` = 1000: the delegations' unbonding
///   time, and staking value (2,000,000,000) minus the unbonding output (1,999,999,000);
/// - `slashing_rate` = 0.33: the slashing outputs carry exactly 0.33 (first delegation) and
///   0.44 (second) of their input, so 0.33 is the largest rate both satisfy (the .dat params
///   carry no rate);
/// - staking value bounds [10,000, 10,000,000,000] and time bounds [1, 65535] contain the
///   delegations' 2,000,000,000 sat and 5 blocks;
/// - `btc_confirmation_depth` 10, `max_active_verifiers` 100, `min_pub_rand` 100, activation
///   height 0: not used by registration checks; no identifiable-staking tag (regtest data);
/// - `max_verifiers_per_delegation` = 2: the second delegation names two verifiers (Babylon's
///   multi-network staking); Fiamma's own networks use 1.
fn params(data: &Value) -> Params {
    let p = &data["params"];
    Params {
        covenant_pks: p["covenant_pks_xonly"]
            .as_array()
            .expect("covenant keys")
            .iter()
            .map(key)
            .collect(),
        covenant_quorum: p["covenant_quorum"].as_u64().expect("quorum") as u32,
        min_staking_value_sat: 10_000,
        max_staking_value_sat: 10_000_000_000,
        min_staking_time_blocks: 1,
        max_staking_time_blocks: 65_535,
        slashing_pk_script: ScriptBuf::from_bytes(bytes(p, "slashing_pk_script")),
        min_slashing_tx_fee_sat: p["min_slashing_tx_fee_sat"].as_u64().expect("min fee"),
        slashing_rate: "0.33".parse().expect("rate"),
        unbonding_time_blocks: 101,
        unbonding_fee_sat: 1_000,
        btc_confirmation_depth: 10,
        max_active_verifiers: 100,
        min_pub_rand: 100,
        identifiable_staking_tag: None,
        btc_activation_height: 0,
        max_verifiers_per_delegation: 2,
        limits: fiamma_staking::params::ResourceLimits::default(),
    }
}

/// Reads one length-delimited protobuf field (wire type 2) by number from `msg`; the staker's
/// account (field 1) and proof of possession (field 3) of `MsgCreateBTCDelegation` are only in
/// the .dat files.
fn proto_field(msg: &[u8], number: u64) -> Option<&[u8]> {
    fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *buf.get(*pos)?;
            *pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut pos = 0;
    while pos < msg.len() {
        let tag = varint(msg, &mut pos)?;
        let len = match tag & 7 {
            0 => {
                varint(msg, &mut pos)?;
                continue;
            }
            2 => varint(msg, &mut pos)? as usize,
            _ => return None,
        };
        let field = msg.get(pos..pos + len)?;
        pos += len;
        if tag >> 3 == number {
            return Some(field);
        }
    }
    None
}

fn registration(file: &str, d: &Value) -> Registration {
    let raw = std::fs::read(format!("{DATA}{file}")).expect(".dat file");
    let address = std::str::from_utf8(proto_field(&raw, 1).expect("staker_addr")).expect("utf8");
    let pop = proto_field(proto_field(&raw, 3).expect("pop"), 2).expect("pop signature");
    Registration {
        staker_pk: key(&d["staker_pk"]),
        staker_account: Account::from_bech32(address, "bbn").expect("bbn address"),
        pop: ProofOfPossession::Bip340(parse_signature(pop).expect("64-byte pop")),
        verifier_pks: d["fp_btc_pk_list"]
            .as_array()
            .expect("fp list")
            .iter()
            .map(key)
            .collect(),
        staking_time: d["staking_time"].as_u64().expect("time") as u32,
        staking_value_sat: d["total_sat"].as_u64().expect("value"),
        staking_tx: tx(d, "staking_tx"),
        staking_output_index: d["staking_output_idx"].as_u64().expect("index") as u32,
        slashing_tx: tx(d, "slashing_tx"),
        staker_slashing_sig: sig(d, "delegator_slashing_sig"),
        unbonding_time: d["unbonding_time"].as_u64().expect("unbonding time") as u32,
        unbonding_tx: tx(d, "unbonding_tx"),
        unbonding_slashing_tx: tx(d, "unbonding_slashing_tx"),
        staker_unbonding_slashing_sig: sig(d, "delegator_unbonding_slashing_sig"),
    }
}

/// Babylon's test data signs proofs of possession without a context.
fn contexts(data: &Value) -> SigningContexts {
    let f = &data["finality"];
    SigningContexts::new(text(f, "chain_id"), text(f, "context_address"))
        .without(SigningOp::StakerPop)
}

#[test]
fn both_delegations_pass_validate_delegation() {
    let data = decoded();
    let params = params(&data);
    params.validate().expect("filled params are valid");
    let contexts = contexts(&data);
    for file in ["btc_delegation_1_1.dat", "btc_delegation_1_1_3.dat"] {
        let d = &data["delegations"][file];
        let r = registration(file, d);
        let v =
            validate_delegation(&params, &contexts, &r).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            v.staking_txid().to_string(),
            text(d, "staking_txid"),
            "{file}"
        );
        for c in d["covenant_unbonding_sigs"]
            .as_array()
            .expect("covenant sigs")
        {
            verify(&v.sighashes.unbonding, &sig(c, "sig"), &key(&c["pk"]))
                .unwrap_or_else(|e| panic!("{file}: covenant unbonding signature: {e}"));
        }
        let staker_sig = sig(d, "staker_unbonding_sig");
        verify(&v.sighashes.unbonding, &staker_sig, &r.staker_pk)
            .unwrap_or_else(|e| panic!("{file}: staker unbonding signature: {e}"));

        // The committee's and the staker's signatures from the data, assembled here, unbond
        // the stake under Bitcoin Core's rules.
        let covenant: Vec<KeySignature> = d["covenant_unbonding_sigs"]
            .as_array()
            .expect("covenant sigs")
            .iter()
            .map(|c| (key(&c["pk"]), sig(c, "sig")))
            .collect();
        let witness = unbonding_witness(&v.staking_output, &v.keys, &covenant, &staker_sig)
            .unwrap_or_else(|e| panic!("{file}: witness: {e}"));
        let mut unbonding_tx = r.unbonding_tx.clone();
        unbonding_tx.input[0].witness = witness;
        assert!(
            kernel_accepts(&unbonding_tx, &v.staking_txout()),
            "{file}: unbonding rejected by bitcoin core"
        );
    }
}

#[test]
fn the_data_is_rejected_when_a_rule_is_tightened() {
    let data = decoded();
    let contexts = contexts(&data);
    let file = "btc_delegation_1_1_3.dat";
    let r = registration(file, &data["delegations"][file]);
    let mut one_verifier = params(&data);
    one_verifier.max_verifiers_per_delegation = 1;
    assert_eq!(
        validate_delegation(&one_verifier, &contexts, &r).unwrap_err(),
        DelegationError::TooManyVerifiers { got: 2, max: 1 }
    );
    let mut higher_rate = params(&data);
    higher_rate.slashing_rate = "0.3301".parse().expect("rate");
    let file = "btc_delegation_1_1.dat";
    let r = registration(file, &data["delegations"][file]);
    assert!(matches!(
        validate_delegation(&higher_rate, &contexts, &r).unwrap_err(),
        DelegationError::Slashing(SlashingTxError::SlashedTooLittle { .. })
    ));
    let with_context = SigningContexts::new("babylon-testnet-phase-3", "bbn1module");
    assert!(matches!(
        validate_delegation(&params(&data), &with_context, &r).unwrap_err(),
        DelegationError::Pop(_)
    ));
}
