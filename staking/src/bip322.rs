//! BIP-0322 "simple" signed messages for the two address types a proof of possession may use
//! (PROTOCOL §6): P2WPKH and P2TR key spend.
//!
//! The signer spends a virtual `to_spend` output paying to its address with a virtual
//! `to_sign` transaction; the signature is that spend's witness. Verification rebuilds both
//! transactions and checks the witness against the address the way the Bitcoin script
//! interpreter would for these two script types.

use bitcoin::absolute::LockTime;
use bitcoin::hashes::{hash160, sha256t_hash_newtype, Hash};
use bitcoin::key::{CompressedPublicKey, TapTweak};
use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::opcodes::OP_0;
use bitcoin::script::Builder;
use bitcoin::secp256k1::{ecdsa, schnorr, Keypair, Message, PublicKey, XOnlyPublicKey, SECP256K1};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, OutPoint, Script, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
    WitnessProgram, WitnessVersion,
};

sha256t_hash_newtype! {
    /// The BIP-0322 message tag.
    pub struct MessageTag = hash_str("BIP0322-signed-message");

    /// `tagged("BIP0322-signed-message", message)`.
    #[hash_newtype(forward)]
    pub struct MessageHash(_);
}

/// Why a BIP-0322 signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Bip322Error {
    /// The address is neither P2WPKH nor P2TR.
    #[error("address script {0} is neither p2wpkh nor p2tr")]
    UnsupportedAddress(String),
    /// The witness has the wrong number of items for the address type.
    #[error("witness has {got} items, a {kind} spend has {want}")]
    WitnessItems {
        /// The address type.
        kind: &'static str,
        /// Items found.
        got: usize,
        /// Items expected.
        want: usize,
    },
    /// The public key in a P2WPKH witness does not hash to the address.
    #[error("witness public key {0} does not match the p2wpkh address")]
    PubkeyMismatch(String),
    /// A public key, signature or sighash type does not parse.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which item.
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// The signature does not verify.
    #[error("bip-0322 signature does not verify")]
    Invalid,
}

fn malformed(what: &'static str) -> impl Fn(String) -> Bip322Error {
    move |detail| Bip322Error::Malformed { what, detail }
}

/// The virtual transaction whose output 0 the signer spends.
pub fn to_spend(address_script: &Script, message: &[u8]) -> Transaction {
    let hash = MessageHash::hash(message);
    let script_sig = Builder::new()
        .push_opcode(OP_0)
        .push_slice(hash.to_byte_array())
        .into_script();
    Transaction {
        version: Version(0),
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::all_zeros(),
                vout: 0xffff_ffff,
            },
            script_sig,
            sequence: Sequence::ZERO,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::ZERO,
            script_pubkey: address_script.to_owned(),
        }],
    }
}

/// The virtual transaction that spends `to_spend` with `witness`.
pub fn to_sign(to_spend: &Transaction, witness: Witness) -> Transaction {
    Transaction {
        version: Version(0),
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(to_spend.compute_txid(), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ZERO,
            witness,
        }],
        output: vec![TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(vec![OP_RETURN.to_u8()]),
        }],
    }
}

/// Checks a "simple" BIP-0322 signature (`witness`) of `message` by `address_script`.
pub fn verify_simple(
    address_script: &Script,
    message: &[u8],
    witness: &Witness,
) -> Result<(), Bip322Error> {
    let spend = to_spend(address_script, message);
    let sign = to_sign(&spend, witness.clone());
    let prevout = &spend.output[0];
    let program = WitnessProgram::new(
        address_script
            .witness_version()
            .unwrap_or(WitnessVersion::V16),
        address_script.as_bytes().get(2..).unwrap_or_default(),
    );
    match program {
        Ok(p) if p.is_p2wpkh() && address_script.is_p2wpkh() => {
            verify_p2wpkh(&sign, prevout, p.program().as_bytes(), witness)
        }
        Ok(p) if p.is_p2tr() && address_script.is_p2tr() => {
            verify_p2tr(&sign, prevout, p.program().as_bytes(), witness)
        }
        _ => Err(Bip322Error::UnsupportedAddress(hex::encode(
            address_script.as_bytes(),
        ))),
    }
}

fn witness_items<'a>(
    witness: &'a Witness,
    kind: &'static str,
    want: usize,
) -> Result<Vec<&'a [u8]>, Bip322Error> {
    let items: Vec<&[u8]> = witness.iter().collect();
    if items.len() != want {
        return Err(Bip322Error::WitnessItems {
            kind,
            got: items.len(),
            want,
        });
    }
    Ok(items)
}

fn verify_p2wpkh(
    sign: &Transaction,
    prevout: &TxOut,
    program: &[u8],
    witness: &Witness,
) -> Result<(), Bip322Error> {
    let items = witness_items(witness, "p2wpkh", 2)?;
    let pubkey =
        PublicKey::from_slice(items[1]).map_err(|e| malformed("public key")(e.to_string()))?;
    if items[1].len() != 33 || hash160::Hash::hash(items[1]).as_byte_array() != program {
        return Err(Bip322Error::PubkeyMismatch(hex::encode(items[1])));
    }
    let sig = bitcoin::ecdsa::Signature::from_slice(items[0])
        .map_err(|e| malformed("ecdsa signature")(e.to_string()))?;
    let sighash = SighashCache::new(sign)
        .p2wpkh_signature_hash(0, &prevout.script_pubkey, prevout.value, sig.sighash_type)
        .map_err(|e| malformed("sighash")(e.to_string()))?;
    SECP256K1
        .verify_ecdsa(
            &Message::from_digest(sighash.to_byte_array()),
            &sig.signature,
            &pubkey,
        )
        .map_err(|_| Bip322Error::Invalid)
}

fn verify_p2tr(
    sign: &Transaction,
    prevout: &TxOut,
    program: &[u8],
    witness: &Witness,
) -> Result<(), Bip322Error> {
    let items = witness_items(witness, "p2tr key spend", 1)?;
    let output_key =
        XOnlyPublicKey::from_slice(program).map_err(|e| malformed("output key")(e.to_string()))?;
    let sig = bitcoin::taproot::Signature::from_slice(items[0])
        .map_err(|e| malformed("schnorr signature")(e.to_string()))?;
    let sighash = SighashCache::new(sign)
        .taproot_key_spend_signature_hash(0, &Prevouts::All(&[prevout]), sig.sighash_type)
        .map_err(|e| malformed("sighash")(e.to_string()))?;
    SECP256K1
        .verify_schnorr(
            &sig.signature,
            &Message::from_digest(sighash.to_byte_array()),
            &output_key,
        )
        .map_err(|_| Bip322Error::Invalid)
}

/// The P2WPKH address script of `keypair`'s compressed public key.
pub fn p2wpkh_script(keypair: &Keypair) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&CompressedPublicKey(keypair.public_key()).wpubkey_hash())
}

/// The BIP-0086 P2TR address script (key path only) of x-only key `key`.
pub fn p2tr_script(key: XOnlyPublicKey) -> ScriptBuf {
    ScriptBuf::new_p2tr(SECP256K1, key, None)
}

/// Signs `message` for the P2WPKH address of `keypair` (`SIGHASH_ALL`, deterministic ECDSA).
pub fn sign_p2wpkh(keypair: &Keypair, message: &[u8]) -> Witness {
    let script = p2wpkh_script(keypair);
    let spend = to_spend(&script, message);
    let sign = to_sign(&spend, Witness::new());
    // to_sign has input 0 and the P2WPKH script code exists for a P2WPKH script.
    let sighash = SighashCache::new(&sign)
        .p2wpkh_signature_hash(0, &script, Amount::ZERO, EcdsaSighashType::All)
        .expect("p2wpkh script and input 0 exist");
    let signature: ecdsa::Signature = SECP256K1.sign_ecdsa(
        &Message::from_digest(sighash.to_byte_array()),
        &keypair.secret_key(),
    );
    let sig = bitcoin::ecdsa::Signature {
        signature,
        sighash_type: EcdsaSighashType::All,
    };
    Witness::p2wpkh(&sig, &keypair.public_key())
}

/// Signs `message` for the BIP-0086 P2TR address of `keypair` (`SIGHASH_DEFAULT`).
pub fn sign_p2tr(keypair: &Keypair, message: &[u8]) -> Witness {
    let script = p2tr_script(keypair.x_only_public_key().0);
    let spend = to_spend(&script, message);
    let sign = to_sign(&spend, Witness::new());
    // One input and one prevout: the key-spend sighash is always defined.
    let sighash = SighashCache::new(&sign)
        .taproot_key_spend_signature_hash(0, &Prevouts::All(&spend.output), TapSighashType::Default)
        .expect("one input, one prevout");
    let tweaked = keypair.tap_tweak(SECP256K1, None).to_keypair();
    let signature: schnorr::Signature = SECP256K1
        .sign_schnorr_no_aux_rand(&Message::from_digest(sighash.to_byte_array()), &tweaked);
    Witness::from_slice(&[signature.as_ref()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::keypair;

    #[test]
    fn both_address_types_sign_and_verify() {
        let kp = keypair(4);
        let msg = b"fiamma proof of possession";
        let wpkh = p2wpkh_script(&kp);
        let tr = p2tr_script(kp.x_only_public_key().0);
        assert_eq!(verify_simple(&wpkh, msg, &sign_p2wpkh(&kp, msg)), Ok(()));
        assert_eq!(verify_simple(&tr, msg, &sign_p2tr(&kp, msg)), Ok(()));
        assert_eq!(
            verify_simple(&wpkh, b"other", &sign_p2wpkh(&kp, msg)),
            Err(Bip322Error::Invalid)
        );
        assert_eq!(
            verify_simple(&tr, b"other", &sign_p2tr(&kp, msg)),
            Err(Bip322Error::Invalid)
        );
    }

    #[test]
    fn wrong_shapes_and_addresses_are_typed_errors() {
        let kp = keypair(4);
        let msg = b"m";
        let wpkh = p2wpkh_script(&kp);
        let tr = p2tr_script(kp.x_only_public_key().0);
        assert_eq!(
            verify_simple(&tr, msg, &sign_p2wpkh(&kp, msg)),
            Err(Bip322Error::WitnessItems {
                kind: "p2tr key spend",
                got: 2,
                want: 1
            })
        );
        let other = sign_p2wpkh(&keypair(5), msg);
        assert!(matches!(
            verify_simple(&wpkh, msg, &other),
            Err(Bip322Error::PubkeyMismatch(_))
        ));
        let p2pkh = ScriptBuf::from_bytes(
            hex::decode("76a914356fde516750d3a7781eababc9fbba011dfdebd088ac").unwrap(),
        );
        assert!(matches!(
            verify_simple(&p2pkh, msg, &sign_p2wpkh(&kp, msg)),
            Err(Bip322Error::UnsupportedAddress(_))
        ));
    }

    #[test]
    fn unparsable_items_name_the_item() {
        let kp = keypair(4);
        let msg = b"m";
        let what = |result: Result<(), Bip322Error>| match result {
            Err(Bip322Error::Malformed { what, .. }) => what,
            other => panic!("expected a malformed item, got {other:?}"),
        };
        let wpkh = p2wpkh_script(&kp);
        let good = sign_p2wpkh(&kp, msg);
        let good_sig = good.nth(0).unwrap().to_vec();
        let bad_key = Witness::from_slice(&[good_sig, vec![0x05; 33]]);
        assert_eq!(what(verify_simple(&wpkh, msg, &bad_key)), "public key");
        let bad_sig =
            Witness::from_slice(&[vec![0x30, 0x01], kp.public_key().serialize().to_vec()]);
        assert_eq!(what(verify_simple(&wpkh, msg, &bad_sig)), "ecdsa signature");

        let tr = p2tr_script(kp.x_only_public_key().0);
        let short = Witness::from_slice(&[vec![1u8; 63]]);
        assert_eq!(what(verify_simple(&tr, msg, &short)), "schnorr signature");
        // A 65-byte signature whose sighash-type byte is not a defined type.
        let mut typed = sign_p2tr(&kp, msg).nth(0).unwrap().to_vec();
        typed.push(0x04);
        let typed = Witness::from_slice(&[typed]);
        assert_eq!(what(verify_simple(&tr, msg, &typed)), "schnorr signature");
        // A witness v1 program of 32 bytes that is not an x coordinate on the curve.
        let mut off_curve = vec![0x51, 0x20];
        off_curve.extend_from_slice(&[0xff; 32]);
        let off_curve = ScriptBuf::from_bytes(off_curve);
        assert_eq!(
            what(verify_simple(&off_curve, msg, &sign_p2tr(&kp, msg))),
            "output key"
        );
    }
}
