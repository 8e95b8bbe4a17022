//! Conformance: the published Schnorr adaptor vectors (tests/data/babylon/asig_*.csv) and the
//! covenant adaptor signatures of two real Babylon delegations
//! (tests/data/cosmos-bsn/decoded_testdata.json).
//!
//! `FIAMMA_ADAPTOR_VECTORS` names another file with the schema of asig_adapt_vectors.csv to
//! run through the same checks.

mod common;

use common::data_path;

use std::path::PathBuf;

use bitcoin::hashes::Hash as _;

use fiamma_covenant::adaptor::{
    enc_sign, AdaptorSignature, DecryptionKey, EncVerifyError, EncryptionKey, ParseError, SignerKey,
};
use secp256k1::schnorr::Signature;
use secp256k1::{Keypair, Message, PublicKey, SecretKey, XOnlyPublicKey, SECP256K1};

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

/// Rows 12–14 must fail for the reason their comments give, not merely fail: row 12 has
/// s'G − eP at infinity; rows 13–14 give the adaptor as 33 zero bytes (the point at infinity,
/// which does not parse as a point). Row 13's pre-signature commits to the point at infinity
/// for any encryption key; row 14's nonce point R0 is itself 33 zero bytes and does not parse.
#[test]
fn presig_vectors_rows_12_to_14_fail_for_the_stated_reason() {
    let rows = csv_rows(&data_path("babylon/asig_presig_vectors.csv"), 9);
    for row in rows
        .iter()
        .filter(|r| ["12", "13", "14"].contains(&r[0].as_str()))
    {
        let key = XOnlyPublicKey::from_slice(&hex::decode(&row[2]).unwrap()).unwrap();
        let msg = bytes32(&row[4]).unwrap();
        let presig = match AdaptorSignature::from_slice(&hex::decode(&row[6]).unwrap()) {
            Ok(presig) => presig,
            Err(e) => {
                assert_eq!(row[0], "14");
                assert_eq!(e, ParseError::ParityByte(0));
                continue;
            }
        };
        let adaptor = hex::decode(&row[5]).unwrap();
        let t = match PublicKey::from_slice(&adaptor) {
            Ok(t) => t,
            Err(_) => {
                assert!(adaptor.iter().all(|b| *b == 0), "row {}", row[0]);
                // Any point: the pre-signature's adaptor point is infinity whatever T is.
                SecretKey::from_slice(&[1; 32])
                    .unwrap()
                    .public_key(SECP256K1)
            }
        };
        let err = presig
            .enc_verify(&SignerKey::new(key), &msg, &EncryptionKey::from_point(t))
            .unwrap_err();
        match row[0].as_str() {
            "12" => assert!(matches!(err, EncVerifyError::NonceInfinity { .. }), "{err}"),
            _ => assert!(
                matches!(err, EncVerifyError::AdaptorInfinity { .. }),
                "row {}: {err}",
                row[0]
            ),
        }
    }
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
        let presig = enc_sign(&Keypair::from_secret_key(SECP256K1, &sk), &t, &msg, &aux).unwrap();
        assert_eq!(
            hex::encode(presig.to_bytes()),
            row[6].to_ascii_lowercase(),
            "row {}: EncSign output differs",
            row[0]
        );
    }
}

mod babylon_delegations {
    //! Every covenant adaptor signature of the two delegations in decoded_testdata.json,
    //! over sighashes computed with the staking library (tapscript sighash of the slashing
    //! leaf, SIGHASH_DEFAULT, input 0).

    use super::*;
    use crate::common::babylon_delegations;
    use fiamma_covenant::delegation::SlashingTx;

    #[test]
    fn covenant_adaptor_signatures_verify_and_decrypt() {
        let mut checked = 0;
        for d in babylon_delegations() {
            let sighashes = d.sighashes();
            let (verifier_x, _) = d.verifier_secret.x_only_public_key(SECP256K1);
            let t = DecryptionKey::from_verifier_secret(&d.verifier_secret);
            for (tx, staker_sig) in [
                (SlashingTx::Staking, &d.staker_slashing_sig),
                (SlashingTx::Unbonding, &d.staker_unbonding_slashing_sig),
            ] {
                let msg = sighashes.slashing_sighash(tx).to_byte_array();
                // The staker's pre-signature over the same sighash pins its computation.
                assert!(
                    bip340_valid(staker_sig, &msg, &d.keys.staker()),
                    "{}: {tx}",
                    d.name
                );
                for member in &d.covenant_sigs {
                    let signer = SignerKey::new(member.covenant);
                    for entry in member.adaptor_sigs(tx) {
                        let what = format!(
                            "{}, {tx}, covenant {}, verifier {}",
                            d.name, member.covenant, entry.verifier
                        );
                        entry
                            .signature
                            .enc_verify(
                                &signer,
                                &msg,
                                &EncryptionKey::from_verifier_key(&entry.verifier),
                            )
                            .unwrap_or_else(|e| panic!("{what}: {e}"));
                        if entry.verifier == verifier_x {
                            let sig = entry.signature.decrypt(&t).unwrap();
                            assert!(
                                bip340_valid(&sig, &msg, &member.covenant),
                                "{what}: decrypted signature"
                            );
                            let extracted = entry.signature.extract(&sig).unwrap();
                            assert_eq!(
                                extracted.x_only_public_key(),
                                verifier_x,
                                "{what}: extract"
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
        // 3 covenant members × (1 + 2 verifier keys) × 2 slashing transactions.
        assert_eq!(checked, 18);
    }
}
