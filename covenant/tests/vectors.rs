//! Conformance: the published Schnorr adaptor vectors (tests/data/babylon/asig_*.csv) and the
//! covenant adaptor signatures of two real Babylon delegations
//! (tests/data/cosmos-bsn/decoded_testdata.json).
//!
//! `FIAMMA_ADAPTOR_VECTORS` names another file with the schema of asig_adapt_vectors.csv to
//! run through the same checks.

use std::path::PathBuf;

use fiamma_covenant::adaptor::{
    enc_sign, AdaptorSignature, DecryptionKey, EncryptionKey, SignerKey,
};
use secp256k1::schnorr::Signature;
use secp256k1::{Message, PublicKey, SecretKey, XOnlyPublicKey, SECP256K1};

fn data_path(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/")).join(rel)
}

/// The data rows of a vector CSV: `columns` fields each (the last, a free-text comment, may
/// contain commas). The header and the explanatory row with an empty index are skipped.
fn csv_rows(path: &PathBuf, columns: usize) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let rows: Vec<Vec<String>> = text
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.splitn(columns, ',')
                .map(|f| f.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|fields| !fields[0].is_empty())
        .collect();
    assert!(!rows.is_empty(), "{} has no vector rows", path.display());
    for row in &rows {
        assert!(
            row.len() >= columns - 1,
            "short row in {}: {row:?}",
            path.display()
        );
    }
    rows
}

fn bytes32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

fn result(text: &str) -> bool {
    match text.to_ascii_uppercase().as_str() {
        "TRUE" => true,
        "FALSE" => false,
        other => panic!("result column must be TRUE or FALSE, got {other:?}"),
    }
}

fn bip340_valid(sig: &Signature, msg: &[u8; 32], key: &XOnlyPublicKey) -> bool {
    SECP256K1
        .verify_schnorr(sig, &Message::from_digest(*msg), key)
        .is_ok()
}

/// One row of the adapt schema: index, pubkey, message, secadaptor, pre-signature,
/// BIP340 signature, result, comment. Returns a description of every mismatch.
fn check_adapt_row(row: &[String]) -> Vec<String> {
    let id = &row[0];
    let expected = result(&row[6]);
    let mut failures = Vec::new();
    let key = hex::decode(&row[1])
        .ok()
        .and_then(|b| XOnlyPublicKey::from_slice(&b).ok());
    let msg = bytes32(&row[2]).unwrap_or_else(|| panic!("row {id}: message is not 32 bytes"));
    let t = DecryptionKey::from_slice(&hex::decode(&row[3]).unwrap_or_default());
    let presig = AdaptorSignature::from_slice(&hex::decode(&row[4]).unwrap_or_default());
    let (Some(key), Ok(t), Ok(presig)) = (key, t, presig) else {
        if expected {
            failures.push(format!(
                "row {id}: an input does not parse but result is TRUE"
            ));
        }
        return failures;
    };
    let sig = match presig.decrypt(&t) {
        Ok(sig) => sig,
        Err(e) => {
            if expected {
                failures.push(format!("row {id}: decrypt failed: {e}"));
            }
            return failures;
        }
    };
    if !hex::encode(sig.as_ref()).eq_ignore_ascii_case(&row[5]) {
        failures.push(format!(
            "row {id}: decrypt gave {}, expected {}",
            hex::encode(sig.as_ref()),
            row[5]
        ));
    }
    if bip340_valid(&sig, &msg, &key) != expected {
        failures.push(format!(
            "row {id}: BIP-0340 verify of the decrypted signature is not {expected}"
        ));
    }
    // Decrypt yields a valid signature exactly when EncVerify accepts for T = tG.
    let encverify = presig
        .enc_verify(&SignerKey::new(key), &msg, &t.encryption_key())
        .is_ok();
    if encverify != expected {
        failures.push(format!(
            "row {id}: EncVerify for T = tG is {encverify}, expected {expected}"
        ));
    }
    failures
}

#[test]
fn adapt_vectors() {
    let path = std::env::var_os("FIAMMA_ADAPTOR_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| data_path("babylon/asig_adapt_vectors.csv"));
    let failures: Vec<String> = csv_rows(&path, 8)
        .iter()
        .flat_map(|r| check_adapt_row(r))
        .collect();
    assert!(
        failures.is_empty(),
        "{}:\n{}",
        path.display(),
        failures.join("\n")
    );
}

#[test]
fn secadaptor_vectors() {
    // index, pre-signature, BIP340 signature, secadaptor, result, comment
    let path = data_path("babylon/asig_secadaptor_vectors.csv");
    let mut failures = Vec::new();
    for row in csv_rows(&path, 6) {
        let id = &row[0];
        let expected = result(&row[4]);
        let presig = AdaptorSignature::from_slice(&hex::decode(&row[1]).unwrap()).unwrap();
        let sig = Signature::from_slice(&hex::decode(&row[2]).unwrap()).unwrap();
        let matches = match presig.extract(&sig) {
            Ok(t) => hex::encode(t.to_secret_key().secret_bytes()).eq_ignore_ascii_case(&row[3]),
            Err(_) => false,
        };
        if matches != expected {
            failures.push(format!(
                "row {id}: extracted key matches = {matches}, expected {expected}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// EncVerify on a presig row: index, secret key, public key, aux_rand, message, adaptor,
/// pre-signature, result, comment. An input that does not parse counts as rejection.
fn presig_row_verifies(row: &[String]) -> bool {
    let Some(key) = hex::decode(&row[2])
        .ok()
        .and_then(|b| XOnlyPublicKey::from_slice(&b).ok())
    else {
        return false;
    };
    let msg = bytes32(&row[4]).expect("message is 32 bytes");
    let Some(t) = hex::decode(&row[5])
        .ok()
        .and_then(|b| PublicKey::from_slice(&b).ok())
    else {
        return false;
    };
    let Ok(presig) = AdaptorSignature::from_slice(&hex::decode(&row[6]).unwrap_or_default()) else {
        return false;
    };
    presig
        .enc_verify(&SignerKey::new(key), &msg, &EncryptionKey::from_point(t))
        .is_ok()
}

#[test]
fn presig_vectors_rows_2_to_14() {
    let rows = csv_rows(&data_path("babylon/asig_presig_vectors.csv"), 9);
    let mut failures = Vec::new();
    for row in rows
        .iter()
        .filter(|r| r[0].parse::<u32>().is_ok_and(|i| (2..=14).contains(&i)))
    {
        let expected = result(&row[7]);
        if presig_row_verifies(row) != expected {
            failures.push(format!(
                "row {}: EncVerify is {}, expected {expected} ({})",
                row[0], !expected, row[8]
            ));
        }
    }
    assert_eq!(rows.len(), 15);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Rows 0–1 are the only rows with a secret key and aux randomness, i.e. signing vectors.
///
/// What we found: both pre-signatures pass EncVerify (result TRUE), and EncSign as PROTOCOL §5
/// defines it (nonce hash over t_aux ‖ T as 33 bytes ‖ P as 32-byte x-only ‖ m) reproduces
/// both byte for byte, including row 0 (secret key 3, whose point has odd y, so d = n − 3)
/// and row 1 (odd-y adaptor point 0x03…, and an all-0xFF message that must not be reduced).
#[test]
fn presig_vectors_rows_0_and_1_verify_and_reproduce() {
    let rows = csv_rows(&data_path("babylon/asig_presig_vectors.csv"), 9);
    for row in rows.iter().filter(|r| r[0] == "0" || r[0] == "1") {
        assert!(result(&row[7]), "row {} is expected to verify", row[0]);
        assert!(
            presig_row_verifies(row),
            "row {}: EncVerify rejects",
            row[0]
        );
        let sk = SecretKey::from_slice(&hex::decode(&row[1]).unwrap()).unwrap();
        let aux = bytes32(&row[3]).unwrap();
        let msg = bytes32(&row[4]).unwrap();
        let t = EncryptionKey::from_point(
            PublicKey::from_slice(&hex::decode(&row[5]).unwrap()).unwrap(),
        );
        let presig = enc_sign(&sk, &t, &msg, &aux).unwrap();
        assert_eq!(
            hex::encode(presig.to_bytes()),
            row[6].to_ascii_lowercase(),
            "row {}: EncSign output differs",
            row[0]
        );
    }
}

mod babylon_delegations {
    //! Every covenant adaptor signature of the two delegations in decoded_testdata.json.

    use super::*;
    use bitcoin::consensus::encode::deserialize_hex;
    use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
    use bitcoin::taproot::TapLeafHash;
    use bitcoin::{Transaction, TxOut};
    use fiamma_staking::keys::{parse_xonly_hex, StakingKeys};
    use fiamma_staking::taproot::{Leaf, TaprootOutput};
    use serde_json::Value;

    fn text<'a>(v: &'a Value, field: &str) -> &'a str {
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is not a string"))
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

    /// BIP-0341 tapscript sighash (SIGHASH_DEFAULT) of input 0 of `spending`, spending
    /// `prevout` through `leaf`.
    fn sighash(spending: &Transaction, prevout: &TxOut, leaf: TapLeafHash) -> [u8; 32] {
        let hash = SighashCache::new(spending)
            .taproot_script_spend_signature_hash(
                0,
                &Prevouts::All(&[prevout]),
                leaf,
                TapSighashType::Default,
            )
            .unwrap();
        *hash.as_ref()
    }

    /// The sighash of `slashing`, whose input 0 spends output `vout` of `funding` through the
    /// slashing leaf of `output`; checks that `output` is that funding output.
    fn slashing_sighash(
        output: &TaprootOutput,
        funding: &Transaction,
        vout: usize,
        slashing: &Transaction,
    ) -> [u8; 32] {
        let prevout = &funding.output[vout];
        assert_eq!(
            output.script_pubkey(),
            prevout.script_pubkey,
            "{:?} output",
            output.kind()
        );
        sighash(slashing, prevout, output.leaf_hash(Leaf::Slashing).unwrap())
    }

    /// Checks one list of covenant adaptor signatures for one slashing transaction.
    fn check_adaptor_sigs(
        entries: &Value,
        verifiers: &[XOnlyPublicKey],
        msg: &[u8; 32],
        verifier_secret: &SecretKey,
        what: &str,
    ) -> usize {
        let (verifier_x, _) = verifier_secret.x_only_public_key(SECP256K1);
        let decrypt_index = verifiers
            .iter()
            .position(|v| *v == verifier_x)
            .expect("the decryption key belongs to one of the verifiers");
        let t = DecryptionKey::from_verifier_secret(verifier_secret);
        let mut checked = 0;
        for entry in entries.as_array().unwrap() {
            let covenant = parse_xonly_hex(text(entry, "cov_pk")).unwrap();
            let signer = SignerKey::new(covenant);
            let sigs = entry["adaptor_sigs"].as_array().unwrap();
            assert_eq!(
                sigs.len(),
                verifiers.len(),
                "{what}: one adaptor signature per verifier key"
            );
            for (j, (sig, verifier)) in sigs.iter().zip(verifiers).enumerate() {
                let presig =
                    AdaptorSignature::from_slice(&hex::decode(sig.as_str().unwrap()).unwrap())
                        .unwrap_or_else(|e| {
                            panic!("{what}, covenant {covenant}, verifier {j}: {e}")
                        });
                presig
                    .enc_verify(&signer, msg, &EncryptionKey::from_verifier_key(verifier))
                    .unwrap_or_else(|e| panic!("{what}, covenant {covenant}, verifier {j}: {e}"));
                if j == decrypt_index {
                    let sig = presig.decrypt(&t).unwrap();
                    assert!(
                        bip340_valid(&sig, msg, &covenant),
                        "{what}, covenant {covenant}: decrypted signature is not valid"
                    );
                    let extracted = presig.extract(&sig).unwrap();
                    assert_eq!(extracted.x_only_public_key(), verifier_x);
                }
                checked += 1;
            }
        }
        checked
    }

    #[test]
    fn covenant_adaptor_signatures_verify_and_decrypt() {
        let path = data_path("cosmos-bsn/decoded_testdata.json");
        let data: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let params = &data["params"];
        let covenants = keys(params, "covenant_pks_xonly");
        let quorum = params["covenant_quorum"].as_u64().unwrap() as u32;
        let delegations = data["delegations"].as_object().unwrap();
        assert_eq!(delegations.len(), 2);
        let mut checked = 0;
        for (name, d) in delegations {
            let staker = parse_xonly_hex(text(d, "staker_pk")).unwrap();
            let verifiers = keys(d, "fp_btc_pk_list");
            let staking_keys = StakingKeys::new(staker, &verifiers, &covenants, quorum).unwrap();
            let secret =
                SecretKey::from_slice(&hex::decode(text(d, "fp_secret_key_for_decrypt")).unwrap())
                    .unwrap();

            let staking_tx = tx(d, "staking_tx");
            let vout = d["staking_output_idx"].as_u64().unwrap() as usize;
            let staking_time = d["staking_time"].as_u64().unwrap() as u32;
            let staking = TaprootOutput::staking(&staking_keys, staking_time).unwrap();
            let slashing_msg = slashing_sighash(&staking, &staking_tx, vout, &tx(d, "slashing_tx"));

            let unbonding_time = d["unbonding_time"].as_u64().unwrap() as u32;
            let unbonding = TaprootOutput::unbonding(&staking_keys, unbonding_time).unwrap();
            let unbonding_slashing_msg = slashing_sighash(
                &unbonding,
                &tx(d, "unbonding_tx"),
                0,
                &tx(d, "unbonding_slashing_tx"),
            );

            // The staker's pre-signatures over the same sighashes pin the sighash computation.
            for (field, msg) in [
                ("delegator_slashing_sig", &slashing_msg),
                ("delegator_unbonding_slashing_sig", &unbonding_slashing_msg),
            ] {
                let sig = Signature::from_slice(&hex::decode(text(d, field)).unwrap()).unwrap();
                assert!(bip340_valid(&sig, msg, &staker), "{name}: {field}");
            }

            checked += check_adaptor_sigs(
                &d["covenant_slashing_adaptor_sigs"],
                &verifiers,
                &slashing_msg,
                &secret,
                name,
            );
            checked += check_adaptor_sigs(
                &d["covenant_unbonding_slashing_adaptor_sigs"],
                &verifiers,
                &unbonding_slashing_msg,
                &secret,
                name,
            );
        }
        // 3 covenant members × (1 + 2 verifier keys) × 2 slashing transactions.
        assert_eq!(checked, 18);
    }
}
