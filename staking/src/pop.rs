//! Proof of possession (PROTOCOL §6): a registrant proves control of its BTC key with a
//! BIP-0340 signature over `sha256(ctx(op) ‖ account bytes)`, op `staker_pop` or `fp_pop`, or
//! with a BIP-0322 signature of those same 32 bytes by a P2WPKH or P2TR (key path) address of
//! that key.

use bitcoin::address::NetworkUnchecked;
use bitcoin::consensus::{deserialize_partial, encode, Decodable, Encodable};
use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{schnorr, Keypair, Message, PublicKey, XOnlyPublicKey, SECP256K1};
use bitcoin::{Address, Script, Witness};

use crate::account::Account;
use crate::bip322::{p2tr_script, verify_simple, Bip322Error};
use crate::context::{SigningContexts, SigningOp};

/// Who proves possession: selects the signing context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PopRole {
    /// A staker (context `staker_pop`).
    Staker,
    /// A verifier (context `fp_pop`).
    Verifier,
}

impl PopRole {
    fn op(self) -> SigningOp {
        match self {
            PopRole::Staker => SigningOp::StakerPop,
            PopRole::Verifier => SigningOp::FpPop,
        }
    }
}

/// Why a proof of possession was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    /// The signature does not verify.
    #[error("proof of possession of {key} for account {account} does not verify")]
    Invalid {
        /// The BTC key.
        key: XOnlyPublicKey,
        /// The account it was bound to.
        account: Account,
    },
    /// The BIP-0322 address is not a P2WPKH or BIP-0086 P2TR address of the key.
    #[error("address script {script} does not belong to key {key}")]
    AddressNotOfKey {
        /// The address script, hex.
        script: String,
        /// The BTC key.
        key: XOnlyPublicKey,
    },
    /// The BIP-0322 signature is rejected.
    #[error("bip-0322 proof of possession of {key}: {error}")]
    Bip322 {
        /// The BTC key.
        key: XOnlyPublicKey,
        /// Why the signature was rejected.
        error: Bip322Error,
    },
}

/// A proof of possession in either format of PROTOCOL §6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofOfPossession {
    /// A BIP-0340 signature of [`pop_message`] by the key.
    Bip340(schnorr::Signature),
    /// A BIP-0322 simple signature of [`pop_message`] by a P2WPKH or BIP-0086 P2TR address of
    /// the key.
    Bip322 {
        /// The signing address (its network is not part of what is proven).
        address: Address<NetworkUnchecked>,
        /// The witness of the BIP-0322 `to_sign` transaction.
        witness: Witness,
    },
}

/// A stored proof of possession that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored proof of possession: {0}")]
pub struct PopDecodeError(pub String);

impl ProofOfPossession {
    /// Checks the proof by `key` for `account` in `role`.
    ///
    /// # Errors
    /// [`PopError`] naming what does not hold.
    pub fn verify(
        &self,
        contexts: &SigningContexts,
        role: PopRole,
        account: &Account,
        key: &XOnlyPublicKey,
    ) -> Result<(), PopError> {
        match self {
            ProofOfPossession::Bip340(sig) => verify_pop(contexts, role, account, key, sig),
            ProofOfPossession::Bip322 { address, witness } => verify_pop_bip322(
                contexts,
                role,
                account,
                key,
                &address.assume_checked_ref().script_pubkey(),
                witness,
            ),
        }
    }

    /// The proof's bytes: the 64-byte signature, or for BIP-0322 the address text with a
    /// compact-size length followed by the consensus-encoded witness. [`Self::decode`] with the
    /// same format reverses it.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ProofOfPossession::Bip340(sig) => sig.as_ref().to_vec(),
            ProofOfPossession::Bip322 { address, witness } => {
                let mut out = Vec::new();
                let text = address.assume_checked_ref().to_string();
                // Writing into a Vec cannot fail.
                let _ = text.into_bytes().consensus_encode(&mut out);
                let _ = witness.consensus_encode(&mut out);
                out
            }
        }
    }

    /// Reads what [`Self::encode`] wrote; `bip322` says which format it is.
    ///
    /// # Errors
    /// [`PopDecodeError`] for bytes that are not that format, exactly.
    pub fn decode(bip322: bool, bytes: &[u8]) -> Result<Self, PopDecodeError> {
        if !bip322 {
            return schnorr::Signature::from_slice(bytes)
                .map(ProofOfPossession::Bip340)
                .map_err(|e| PopDecodeError(e.to_string()));
        }
        let fail = |e: encode::Error| PopDecodeError(e.to_string());
        let (text, used): (Vec<u8>, usize) = deserialize_partial(bytes).map_err(fail)?;
        let mut rest = &bytes[used..];
        let witness = Witness::consensus_decode(&mut rest).map_err(fail)?;
        if !rest.is_empty() {
            return Err(PopDecodeError(format!("{} trailing bytes", rest.len())));
        }
        let text = String::from_utf8(text).map_err(|e| PopDecodeError(e.to_string()))?;
        let address = text
            .parse::<Address<NetworkUnchecked>>()
            .map_err(|e| PopDecodeError(format!("address {text:?}: {e}")))?;
        Ok(ProofOfPossession::Bip322 { address, witness })
    }
}

/// The 32-byte message a proof of possession signs: `sha256(ctx(op) ‖ account)`, where
/// `ctx(op)` is empty when the context is switched off.
pub fn pop_message(contexts: &SigningContexts, role: PopRole, account: &Account) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(contexts.context(role.op()).as_bytes());
    engine.input(account.as_bytes());
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// Signs a proof of possession (BIP-0340, deterministic: no auxiliary randomness).
pub fn sign_pop(
    contexts: &SigningContexts,
    role: PopRole,
    account: &Account,
    keypair: &Keypair,
) -> schnorr::Signature {
    let msg = Message::from_digest(pop_message(contexts, role, account));
    SECP256K1.sign_schnorr_no_aux_rand(&msg, keypair)
}

/// Checks a proof of possession by `key` for `account`.
pub fn verify_pop(
    contexts: &SigningContexts,
    role: PopRole,
    account: &Account,
    key: &XOnlyPublicKey,
    signature: &schnorr::Signature,
) -> Result<(), PopError> {
    let msg = Message::from_digest(pop_message(contexts, role, account));
    SECP256K1
        .verify_schnorr(signature, &msg, key)
        .map_err(|_| PopError::Invalid {
            key: *key,
            account: *account,
        })
}

/// Checks a BIP-0322 proof of possession: `witness` signs [`pop_message`] for
/// `address_script`, which must be the P2WPKH address (of either parity of `key`) or the
/// BIP-0086 P2TR address of `key`.
pub fn verify_pop_bip322(
    contexts: &SigningContexts,
    role: PopRole,
    account: &Account,
    key: &XOnlyPublicKey,
    address_script: &Script,
    witness: &Witness,
) -> Result<(), PopError> {
    let of_key = if address_script.is_p2tr() {
        address_script == p2tr_script(*key).as_script()
    } else if address_script.is_p2wpkh() {
        // The witness carries the compressed key; its x coordinate must be the staker's key.
        witness
            .nth(1)
            .and_then(|pk| PublicKey::from_slice(pk).ok())
            .is_some_and(|pk| pk.x_only_public_key().0 == *key)
    } else {
        false
    };
    if !of_key {
        return Err(PopError::AddressNotOfKey {
            script: hex::encode(address_script.as_bytes()),
            key: *key,
        });
    }
    let message = pop_message(contexts, role, account);
    verify_simple(address_script, &message, witness)
        .map_err(|error| PopError::Bip322 { key: *key, error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{key, keypair};

    fn contexts() -> SigningContexts {
        SigningContexts::new("fiamma-test", "fmma1module")
    }

    #[test]
    fn sign_verify_and_bind_to_role_account_and_context() {
        let account = Account([7; 20]);
        let sig = sign_pop(&contexts(), PopRole::Staker, &account, &keypair(1));
        assert_eq!(
            verify_pop(&contexts(), PopRole::Staker, &account, &key(1), &sig),
            Ok(())
        );
        let err = PopError::Invalid {
            key: key(1),
            account,
        };
        assert_eq!(
            verify_pop(&contexts(), PopRole::Verifier, &account, &key(1), &sig),
            Err(err.clone())
        );
        let off = contexts().without(SigningOp::StakerPop);
        assert_eq!(
            verify_pop(&off, PopRole::Staker, &account, &key(1), &sig),
            Err(err)
        );
        let other = Account([8; 20]);
        assert!(verify_pop(&contexts(), PopRole::Staker, &other, &key(1), &sig).is_err());
        assert!(verify_pop(&contexts(), PopRole::Staker, &account, &key(2), &sig).is_err());
    }

    #[test]
    fn bip322_pop_binds_the_address_to_the_key() {
        use crate::bip322::{p2wpkh_script, sign_p2tr, sign_p2wpkh};
        let account = Account([7; 20]);
        let kp = keypair(1);
        let message = pop_message(&contexts(), PopRole::Staker, &account);
        for (script, witness) in [
            (p2wpkh_script(&kp), sign_p2wpkh(&kp, &message)),
            (p2tr_script(key(1)), sign_p2tr(&kp, &message)),
        ] {
            let check = |k: &XOnlyPublicKey, a: &Account| {
                verify_pop_bip322(&contexts(), PopRole::Staker, a, k, &script, &witness)
            };
            assert_eq!(check(&key(1), &account), Ok(()));
            assert!(matches!(
                check(&key(2), &account),
                Err(PopError::AddressNotOfKey { .. })
            ));
            assert!(matches!(
                check(&key(1), &Account([8; 20])),
                Err(PopError::Bip322 {
                    error: Bip322Error::Invalid,
                    ..
                })
            ));
        }
    }

    #[test]
    fn either_format_verifies_and_round_trips_through_its_encoding() {
        use crate::bip322::sign_p2tr;
        let account = Account([7; 20]);
        let kp = keypair(1);
        let message = pop_message(&contexts(), PopRole::Verifier, &account);
        let address = Address::p2tr(SECP256K1, key(1), None, bitcoin::Network::Regtest);
        let proofs = [
            ProofOfPossession::Bip340(sign_pop(&contexts(), PopRole::Verifier, &account, &kp)),
            ProofOfPossession::Bip322 {
                address: address.to_string().parse().expect("valid address"),
                witness: sign_p2tr(&kp, &message),
            },
        ];
        for proof in proofs {
            let check =
                |k: &XOnlyPublicKey| proof.verify(&contexts(), PopRole::Verifier, &account, k);
            assert_eq!(check(&key(1)), Ok(()));
            assert!(check(&key(2)).is_err());
            let bip322 = matches!(proof, ProofOfPossession::Bip322 { .. });
            let bytes = proof.encode();
            assert_eq!(ProofOfPossession::decode(bip322, &bytes), Ok(proof.clone()));
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(ProofOfPossession::decode(bip322, &longer).is_err());
            assert!(ProofOfPossession::decode(bip322, &bytes[..bytes.len() - 1]).is_err());
        }
    }

    #[test]
    fn message_without_context_is_sha256_of_the_account() {
        let account = Account([7; 20]);
        let off = contexts().without(SigningOp::FpPop);
        assert_eq!(
            pop_message(&off, PopRole::Verifier, &account),
            sha256::Hash::hash(&[7; 20]).to_byte_array()
        );
    }
}
