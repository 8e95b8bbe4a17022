//! The checkpoint vote message M (§13.5).
//!
//! With τ = sha256("TapSighash"),
//! `M = τ ‖ τ ‖ 0x00 ‖ SigMsg(0x00, 1) ‖ leaf_hash ‖ 0x00 ‖ ffffffff` (input 0,
//! `SIGHASH_DEFAULT`, 276 bytes): τ‖τ followed by BIP-0341's signature message as rust-bitcoin
//! writes it. By BIP-0340's tagged-hash definition sha256(M) *is* the tapscript sighash, so an
//! EOTS signature over M (§9 signs sha256(msg)) is a valid 64-byte tapscript signature, and
//! §9's Verify and Extract apply unchanged. Signing the 32-byte sighash itself as `msg` would
//! sign sha256(sighash), which Bitcoin rejects.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::schnorr;
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::taproot::TapLeafHash;
use bitcoin::{TapSighash, Transaction, TxOut};
use secp256k1::{Keypair, XOnlyPublicKey};

use crate::eots::{self, PublicRandomness, SecretRandomness, Signature, VerifyError};

/// Bytes of M.
pub const MESSAGE_LEN: usize = 276;

/// The tag whose sha256 starts M twice.
pub const TAP_SIGHASH_TAG: &[u8] = b"TapSighash";

/// M: the preimage of the tapscript sighash of input 0, including its tag prefix.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CheckpointMessage([u8; MESSAGE_LEN]);

impl CheckpointMessage {
    /// The 276 bytes.
    pub fn as_bytes(&self) -> &[u8; MESSAGE_LEN] {
        &self.0
    }

    /// sha256(M): the BIP-0341 tapscript sighash.
    pub fn sighash(&self) -> TapSighash {
        TapSighash::from_byte_array(sha256::Hash::hash(&self.0).to_byte_array())
    }
}

impl std::fmt::Debug for CheckpointMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointMessage({})", hex::encode(self.0))
    }
}

/// Why M could not be formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// A checkpoint has exactly one input.
    #[error("the transaction has {0} inputs, a checkpoint has one")]
    Inputs(usize),
    /// The BIP-0341 encoder refused.
    #[error("bip-0341 signature message: {0}")]
    Encode(String),
}

/// M for input 0 of `tx` spending `spent` through the leaf `leaf_hash`.
///
/// # Errors
/// [`MessageError`] when `tx` does not have exactly one input.
pub fn checkpoint_message(
    tx: &Transaction,
    spent: &TxOut,
    leaf_hash: TapLeafHash,
) -> Result<CheckpointMessage, MessageError> {
    if tx.input.len() != 1 {
        return Err(MessageError::Inputs(tx.input.len()));
    }
    let tag = sha256::Hash::hash(TAP_SIGHASH_TAG).to_byte_array();
    let mut bytes = Vec::with_capacity(MESSAGE_LEN);
    bytes.extend_from_slice(&tag);
    bytes.extend_from_slice(&tag);
    SighashCache::new(tx)
        .taproot_encode_signing_data_to(
            &mut bytes,
            0,
            &Prevouts::All(std::slice::from_ref(spent)),
            None,
            Some((leaf_hash, 0xffff_ffff)),
            TapSighashType::Default,
        )
        .map_err(|e| MessageError::Encode(e.to_string()))?;
    let message: [u8; MESSAGE_LEN] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| MessageError::Encode(format!("{} bytes, expected 276", b.len())))?;
    Ok(CheckpointMessage(message))
}

/// A checkpoint vote: the verifier's EOTS signature over M with its committed randomness for
/// the round. `(pr ‖ s)` is the 64-byte tapscript signature its slot takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckpointVote {
    /// The verifier's key.
    pub voter: XOnlyPublicKey,
    /// Its public randomness for the round, R.x.
    pub public_randomness: PublicRandomness,
    /// The EOTS `s`.
    pub signature: Signature,
}

impl CheckpointVote {
    /// Signs M with the round's secret randomness (§9 Sign over M).
    ///
    /// The caller's slashing protection must have recorded (h, sha256(M)) durably first, and
    /// must never sign another message for the round.
    pub fn sign(
        keypair: &Keypair,
        sec_rand: &SecretRandomness,
        message: &CheckpointMessage,
    ) -> Self {
        CheckpointVote {
            voter: keypair.x_only_public_key().0,
            public_randomness: sec_rand.public(),
            signature: eots::sign(keypair, sec_rand, message.as_bytes()),
        }
    }

    /// §9 Verify over M (BIP-0340 over the sighash).
    ///
    /// # Errors
    /// [`VerifyError::Invalid`].
    pub fn verify(&self, message: &CheckpointMessage) -> Result<(), VerifyError> {
        eots::verify(
            &self.voter,
            &self.public_randomness,
            message.as_bytes(),
            &self.signature,
        )
    }

    /// The 64-byte tapscript signature `pr ‖ s` with its key.
    pub fn key_signature(&self) -> (XOnlyPublicKey, schnorr::Signature) {
        (
            self.voter,
            self.signature.to_schnorr(&self.public_randomness),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, TxIn, Witness};
    use fiamma_staking::sighash::tapscript_sighash_for_leaf;
    use secp256k1::SECP256K1;

    fn tx() -> (Transaction, TxOut) {
        let tx = Transaction {
            version: Version(3),
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(5),
                script_pubkey: ScriptBuf::new(),
            }],
        };
        let spent = TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: ScriptBuf::from_bytes(vec![0x51, 0x20, 7, 7]),
        };
        (tx, spent)
    }

    #[test]
    fn sha256_of_m_is_the_tapscript_sighash_and_votes_are_its_signatures() {
        let (tx, spent) = tx();
        let leaf = TapLeafHash::from_script(
            &ScriptBuf::from_bytes(vec![0x51]),
            bitcoin::taproot::LeafVersion::TapScript,
        );
        let m = checkpoint_message(&tx, &spent, leaf).unwrap();
        let sighash =
            tapscript_sighash_for_leaf(&tx, 0, std::slice::from_ref(&spent), leaf).unwrap();
        assert_eq!(m.sighash(), sighash);
        let tag = sha256::Hash::hash(b"TapSighash").to_byte_array();
        assert_eq!(m.as_bytes()[..32], tag);
        assert_eq!(m.as_bytes()[32..64], tag);
        assert_eq!(m.as_bytes()[64..66], [0, 0]);
        assert_eq!(m.as_bytes()[MESSAGE_LEN - 5..], [0, 0xff, 0xff, 0xff, 0xff]);

        let kp = Keypair::from_seckey_slice(SECP256K1, &[3; 32]).unwrap();
        let k = SecretRandomness::from_byte_array([4; 32]).unwrap();
        let vote = CheckpointVote::sign(&kp, &k, &m);
        assert_eq!(vote.verify(&m), Ok(()));
        let (key, sig) = vote.key_signature();
        assert!(fiamma_staking::sighash::verify(&sighash, &sig, &key).is_ok());
        // Signing the sighash as the message gives a signature Bitcoin does not accept.
        let wrong = eots::sign(&kp, &k, &sighash.to_byte_array()).to_schnorr(&k.public());
        assert!(fiamma_staking::sighash::verify(&sighash, &wrong, &key).is_err());
    }

    #[test]
    fn two_inputs_are_refused() {
        let (mut tx, spent) = tx();
        tx.input.push(tx.input[0].clone());
        let leaf = TapLeafHash::all_zeros();
        assert_eq!(
            checkpoint_message(&tx, &spent, leaf),
            Err(MessageError::Inputs(2))
        );
    }
}
