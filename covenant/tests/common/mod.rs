//! Shared by the integration tests: the two Babylon delegations of
//! tests/data/cosmos-bsn/decoded_testdata.json, parsed into the crate's types, and Bitcoin
//! Core's script interpreter. Each test binary uses a different part.
#![allow(dead_code)]

use std::path::PathBuf;

use bitcoin::consensus::encode::{deserialize_hex, serialize};
use bitcoin::{Transaction, TxOut};
use bitcoinkernel::prelude::*;
use fiamma_covenant::adaptor::AdaptorSignature;
use fiamma_covenant::delegation::{DelegationSighashes, DelegationTxs};
use fiamma_covenant::signing::{CovenantSignatures, VerifierAdaptorSig};
use fiamma_staking::keys::{parse_xonly_hex, StakingKeys};
use secp256k1::schnorr::Signature;
use secp256k1::{SecretKey, XOnlyPublicKey};
use serde_json::Value;

pub fn data_path(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/")).join(rel)
}

/// One delegation of decoded_testdata.json.
pub struct BabylonDelegation {
    pub name: String,
    pub keys: StakingKeys,
    /// The verifier keys in the file's order (`fp_btc_pk_list`), which is the order of every
    /// `adaptor_sigs` list.
    pub verifiers: Vec<XOnlyPublicKey>,
    pub staking_time: u32,
    pub unbonding_time: u32,
    pub staking_tx: Transaction,
    pub staking_output_index: usize,
    pub slashing_tx: Transaction,
    pub unbonding_tx: Transaction,
    pub unbonding_slashing_tx: Transaction,
    pub staker_slashing_sig: Signature,
    pub staker_unbonding_slashing_sig: Signature,
    /// The secret key of one of the verifiers.
    pub verifier_secret: SecretKey,
    /// Each covenant member's signatures, in the file's order.
    pub covenant_sigs: Vec<CovenantSignatures>,
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string"))
}

fn number(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a number"))
}

fn keys(v: &Value, field: &str) -> Vec<XOnlyPublicKey> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is not a list"))
        .iter()
        .map(|k| parse_xonly_hex(k.as_str().unwrap()).unwrap())
        .collect()
}

fn tx(v: &Value, field: &str) -> Transaction {
    deserialize_hex(text(v, field)).unwrap()
}

fn signature(v: &Value, field: &str) -> Signature {
    Signature::from_slice(&hex::decode(text(v, field)).unwrap()).unwrap()
}

/// `[{cov_pk, adaptor_sigs: [..]}]` as (covenant key, adaptor signatures paired with verifiers).
fn adaptor_lists(
    v: &Value,
    field: &str,
    verifiers: &[XOnlyPublicKey],
) -> Vec<(XOnlyPublicKey, Vec<VerifierAdaptorSig>)> {
    v[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let sigs = entry["adaptor_sigs"].as_array().unwrap();
            assert_eq!(
                sigs.len(),
                verifiers.len(),
                "one adaptor signature per verifier"
            );
            let sigs = sigs
                .iter()
                .zip(verifiers)
                .map(|(sig, verifier)| VerifierAdaptorSig {
                    verifier: *verifier,
                    signature: AdaptorSignature::from_slice(
                        &hex::decode(sig.as_str().unwrap()).unwrap(),
                    )
                    .unwrap(),
                })
                .collect();
            (parse_xonly_hex(text(entry, "cov_pk")).unwrap(), sigs)
        })
        .collect()
}

fn delegation(name: &str, d: &Value, params: &Value) -> BabylonDelegation {
    let covenants = keys(params, "covenant_pks_xonly");
    let quorum = number(params, "covenant_quorum") as u32;
    let staker = parse_xonly_hex(text(d, "staker_pk")).unwrap();
    let verifiers = keys(d, "fp_btc_pk_list");
    let keys = StakingKeys::new(staker, &verifiers, &covenants, quorum).unwrap();

    let slashing = adaptor_lists(d, "covenant_slashing_adaptor_sigs", &verifiers);
    let unbonding_slashing =
        adaptor_lists(d, "covenant_unbonding_slashing_adaptor_sigs", &verifiers);
    let unbonding_sigs: Vec<(XOnlyPublicKey, Signature)> = d["covenant_unbonding_sigs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (parse_xonly_hex(text(e, "pk")).unwrap(), signature(e, "sig")))
        .collect();
    let covenant_sigs = slashing
        .into_iter()
        .map(|(covenant, slashing)| {
            let (_, unbonding_slashing) = unbonding_slashing
                .iter()
                .find(|(c, _)| *c == covenant)
                .expect("unbonding slashing signatures of the same member")
                .clone();
            let (_, unbonding) = *unbonding_sigs
                .iter()
                .find(|(c, _)| *c == covenant)
                .expect("unbonding signature of the same member");
            CovenantSignatures {
                covenant,
                slashing,
                unbonding_slashing,
                unbonding,
            }
        })
        .collect();

    BabylonDelegation {
        name: name.to_owned(),
        keys,
        verifiers,
        staking_time: number(d, "staking_time") as u32,
        unbonding_time: number(d, "unbonding_time") as u32,
        staking_tx: tx(d, "staking_tx"),
        staking_output_index: number(d, "staking_output_idx") as usize,
        slashing_tx: tx(d, "slashing_tx"),
        unbonding_tx: tx(d, "unbonding_tx"),
        unbonding_slashing_tx: tx(d, "unbonding_slashing_tx"),
        staker_slashing_sig: signature(d, "delegator_slashing_sig"),
        staker_unbonding_slashing_sig: signature(d, "delegator_unbonding_slashing_sig"),
        verifier_secret: SecretKey::from_slice(
            &hex::decode(text(d, "fp_secret_key_for_decrypt")).unwrap(),
        )
        .unwrap(),
        covenant_sigs,
    }
}

/// Both delegations of decoded_testdata.json.
pub fn babylon_delegations() -> Vec<BabylonDelegation> {
    let path = data_path("cosmos-bsn/decoded_testdata.json");
    let data: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let delegations: Vec<BabylonDelegation> = data["delegations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, d)| delegation(name, d, &data["params"]))
        .collect();
    assert_eq!(delegations.len(), 2);
    delegations
}

impl BabylonDelegation {
    pub fn txs(&self) -> DelegationTxs<'_> {
        DelegationTxs {
            keys: &self.keys,
            staking_time: self.staking_time,
            unbonding_time: self.unbonding_time,
            staking_tx: &self.staking_tx,
            staking_output_index: self.staking_output_index,
            slashing_tx: &self.slashing_tx,
            unbonding_tx: &self.unbonding_tx,
            unbonding_slashing_tx: &self.unbonding_slashing_tx,
        }
    }

    pub fn sighashes(&self) -> DelegationSighashes {
        DelegationSighashes::compute(&self.txs()).unwrap()
    }
}

/// Runs Bitcoin Core's script interpreter (all consensus flags) on input 0 of `tx`, which
/// spends `spent`.
pub fn consensus_verify(tx: &Transaction, spent: &TxOut) -> Result<(), String> {
    let kernel_tx = bitcoinkernel::Transaction::new(&serialize(tx)).map_err(|e| e.to_string())?;
    let script = bitcoinkernel::ScriptPubkey::new(spent.script_pubkey.as_bytes())
        .map_err(|e| e.to_string())?;
    let value = i64::try_from(spent.value.to_sat()).unwrap();
    let out = bitcoinkernel::TxOut::new(&script, value);
    let precomputed =
        bitcoinkernel::PrecomputedTransactionData::new(&kernel_tx, std::slice::from_ref(&out))
            .map_err(|e| e.to_string())?;
    bitcoinkernel::verify(
        &out.script_pubkey(),
        Some(value),
        &kernel_tx,
        0,
        Some(bitcoinkernel::VERIFY_ALL),
        &precomputed,
    )
    .map_err(|e| e.to_string())
}
