//! What every party signs (PROTOCOL §4): the BIP-0341 tapscript sighash of one leaf with
//! `SIGHASH_DEFAULT`, and BIP-0340 signatures over it.
//!
//! The covenant daemon, the node, the staker and the slasher all sign and check through these
//! functions, so they agree on the message byte for byte.

use bitcoin::hashes::Hash as _;
use bitcoin::secp256k1::{schnorr, Keypair, Message, XOnlyPublicKey, SECP256K1};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::taproot::{LeafVersion, TapLeafHash};
use bitcoin::{Script, TapSighash, Transaction, TxOut};

/// Why a sighash could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SighashError {
    /// The input index is past the transaction's inputs.
    #[error("input {index} does not exist: the transaction has {inputs} inputs")]
    InputIndex {
        /// The index asked for.
        index: usize,
        /// How many inputs the transaction has.
        inputs: usize,
    },
    /// BIP-0341 commits to every spent output, so one prevout per input is needed.
    #[error("{prevouts} prevouts given for a transaction with {inputs} inputs")]
    PrevoutCount {
        /// How many prevouts were given.
        prevouts: usize,
        /// How many inputs the transaction has.
        inputs: usize,
    },
    /// Any other refusal of the BIP-0341 encoder.
    #[error("bip-0341 sighash: {0}")]
    Taproot(String),
}

/// Why a signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A `SIGHASH_DEFAULT` signature is exactly 64 bytes.
    #[error("signature has {0} bytes, expected 64 (bip-0340, sighash default)")]
    Length(usize),
    /// The signature does not verify under the key.
    #[error("signature does not verify under key {key}")]
    Invalid {
        /// The key the signature was checked against.
        key: XOnlyPublicKey,
    },
    /// The message to check could not be computed.
    #[error(transparent)]
    Sighash(#[from] SighashError),
}

/// The BIP-0341 script-path sighash (`SIGHASH_DEFAULT`, no annex) of input `input_index` of
/// `tx` spending through `leaf_script` (leaf version 0xc0). `prevouts` are the outputs spent
/// by every input of `tx`, in input order.
pub fn tapscript_sighash(
    tx: &Transaction,
    input_index: usize,
    prevouts: &[TxOut],
    leaf_script: &Script,
) -> Result<TapSighash, SighashError> {
    let leaf_hash = TapLeafHash::from_script(leaf_script, LeafVersion::TapScript);
    tapscript_sighash_for_leaf(tx, input_index, prevouts, leaf_hash)
}

/// [`tapscript_sighash`] for a leaf whose hash is already known.
pub fn tapscript_sighash_for_leaf(
    tx: &Transaction,
    input_index: usize,
    prevouts: &[TxOut],
    leaf_hash: TapLeafHash,
) -> Result<TapSighash, SighashError> {
    let inputs = tx.input.len();
    if input_index >= inputs {
        return Err(SighashError::InputIndex {
            index: input_index,
            inputs,
        });
    }
    if prevouts.len() != inputs {
        return Err(SighashError::PrevoutCount {
            prevouts: prevouts.len(),
            inputs,
        });
    }
    SighashCache::new(tx)
        .taproot_script_spend_signature_hash(
            input_index,
            &Prevouts::All(prevouts),
            leaf_hash,
            TapSighashType::Default,
        )
        .map_err(|e| SighashError::Taproot(e.to_string()))
}

fn message(sighash: &TapSighash) -> Message {
    Message::from_digest(sighash.to_byte_array())
}

/// A BIP-0340 signature over `sighash` with no auxiliary randomness: deterministic, so the same
/// key and transaction always give the same signature (allowed by BIP-0340; use
/// [`sign_with_aux_rand`] to add the recommended side-channel protection).
pub fn sign(sighash: &TapSighash, keypair: &Keypair) -> schnorr::Signature {
    SECP256K1.sign_schnorr_no_aux_rand(&message(sighash), keypair)
}

/// A BIP-0340 signature over `sighash` with the caller's 32 bytes of auxiliary randomness.
pub fn sign_with_aux_rand(
    sighash: &TapSighash,
    keypair: &Keypair,
    aux_rand: &[u8; 32],
) -> schnorr::Signature {
    SECP256K1.sign_schnorr_with_aux_rand(&message(sighash), keypair, aux_rand)
}

/// Checks a BIP-0340 signature over `sighash` by `key`.
pub fn verify(
    sighash: &TapSighash,
    signature: &schnorr::Signature,
    key: &XOnlyPublicKey,
) -> Result<(), SignatureError> {
    SECP256K1
        .verify_schnorr(signature, &message(sighash), key)
        .map_err(|_| SignatureError::Invalid { key: *key })
}

/// Parses a 64-byte `SIGHASH_DEFAULT` signature (a 65-byte form with an explicit sighash type
/// is refused: the protocol signs with `SIGHASH_DEFAULT` only).
pub fn parse_signature(bytes: &[u8]) -> Result<schnorr::Signature, SignatureError> {
    if bytes.len() != 64 {
        return Err(SignatureError::Length(bytes.len()));
    }
    schnorr::Signature::from_slice(bytes).map_err(|_| SignatureError::Length(bytes.len()))
}

/// Checks that `signature` by `key` signs input `input_index` of `tx` spending through
/// `leaf_script`: [`tapscript_sighash`] followed by [`verify`].
pub fn verify_leaf_signature(
    tx: &Transaction,
    input_index: usize,
    prevouts: &[TxOut],
    leaf_script: &Script,
    signature: &schnorr::Signature,
    key: &XOnlyPublicKey,
) -> Result<(), SignatureError> {
    let sighash = tapscript_sighash(tx, input_index, prevouts, leaf_script)?;
    verify(&sighash, signature, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{key, keypair};
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, TxIn, Witness};

    fn tx() -> (Transaction, Vec<TxOut>) {
        let prevout = TxOut {
            value: Amount::from_sat(50_000),
            script_pubkey: ScriptBuf::from_bytes(
                vec![0x51, 0x20].into_iter().chain([7; 32]).collect(),
            ),
        };
        let tx = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(49_000),
                script_pubkey: ScriptBuf::new(),
            }],
        };
        (tx, vec![prevout])
    }

    #[test]
    fn sign_then_verify_and_reject_other_key_or_leaf() {
        let (tx, prevouts) = tx();
        let leaf = crate::script::sig_script(&key(1), false);
        let sighash = tapscript_sighash(&tx, 0, &prevouts, &leaf).unwrap();
        let sig = sign(&sighash, &keypair(1));
        assert_eq!(
            verify_leaf_signature(&tx, 0, &prevouts, &leaf, &sig, &key(1)),
            Ok(())
        );
        assert_eq!(
            verify(&sighash, &sig, &key(2)),
            Err(SignatureError::Invalid { key: key(2) })
        );
        let other_leaf = crate::script::sig_script(&key(2), false);
        assert!(verify_leaf_signature(&tx, 0, &prevouts, &other_leaf, &sig, &key(1)).is_err());
        let aux = sign_with_aux_rand(&sighash, &keypair(1), &[9; 32]);
        assert_ne!(aux, sig);
        assert_eq!(verify(&sighash, &aux, &key(1)), Ok(()));
    }

    #[test]
    fn sighash_commits_to_the_prevout_value() {
        let (tx, mut prevouts) = tx();
        let leaf = crate::script::sig_script(&key(1), false);
        let a = tapscript_sighash(&tx, 0, &prevouts, &leaf).unwrap();
        prevouts[0].value = Amount::from_sat(50_001);
        let b = tapscript_sighash(&tx, 0, &prevouts, &leaf).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn bad_index_prevouts_and_encodings_are_reported() {
        let (tx, prevouts) = tx();
        let leaf = ScriptBuf::new();
        assert_eq!(
            tapscript_sighash(&tx, 1, &prevouts, &leaf),
            Err(SighashError::InputIndex {
                index: 1,
                inputs: 1
            })
        );
        assert_eq!(
            tapscript_sighash(&tx, 0, &[], &leaf),
            Err(SighashError::PrevoutCount {
                prevouts: 0,
                inputs: 1
            })
        );
        assert_eq!(parse_signature(&[0; 65]), Err(SignatureError::Length(65)));
        assert_eq!(parse_signature(&[3; 64]).unwrap().serialize(), [3; 64]);
    }
}
