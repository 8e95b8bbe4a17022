//! EncSign: a covenant member's pre-signature, encrypted to a verifier's key.

use secp256k1::{Keypair, Parity, PublicKey, Scalar, SECP256K1};
use zeroize::Zeroizing;

use super::hashes::{aux_mask, challenge, nonce_hash};
use super::keys::EncryptionKey;
use super::scalar::{reduce_secret, SecretScalar};
use super::signature::AdaptorSignature;

/// Why EncSign produced no signature. Each case has probability about 2^-128 or less for
/// honest inputs; they exist so that no degenerate value is ever returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncSignError {
    /// The derived nonce k is 0 mod n.
    #[error("derived nonce is zero for message {msg}")]
    NonceZero {
        /// The message, hex.
        msg: String,
    },
    /// kG + T is the point at infinity.
    #[error("nonce point kG + T is infinity for encryption key {encryption_key}")]
    NoncePointInfinity {
        /// The encryption key, hex.
        encryption_key: String,
    },
    /// s' = k + e·d is 0 mod n.
    #[error("pre-signature scalar is zero for message {msg}")]
    ScalarZero {
        /// The message, hex.
        msg: String,
    },
}

/// EncSign(d', T, m, aux): an adaptor signature by `signing_key` on the 32-byte `msg`,
/// encrypted to `encryption_key` (§5).
///
/// Deterministic in its inputs; production callers pass 32 fresh random bytes as `aux`.
/// Takes a `Keypair` so that P = d'G is not recomputed per signature. Secret intermediates
/// (the even-y key, the masked key, the nonce) are erased before return.
pub fn enc_sign(
    signing_key: &Keypair,
    encryption_key: &EncryptionKey,
    msg: &[u8; 32],
    aux: &[u8; 32],
) -> Result<AdaptorSignature, EncSignError> {
    let (signer, parity) = signing_key.x_only_public_key();
    let signer_x = signer.serialize();
    let mut secret = signing_key.secret_key();
    let d = SecretScalar::new(secret);
    secret.non_secure_erase();
    let d = match parity {
        Parity::Even => d,
        Parity::Odd => d.negate(),
    };

    let mut masked = Zeroizing::new(d.key().secret_bytes());
    for (m, a) in masked.iter_mut().zip(aux_mask(aux).iter()) {
        *m ^= a;
    }
    let t = encryption_key.serialize();
    let k = reduce_secret(&nonce_hash(&masked, &t, &signer_x, msg)).ok_or_else(|| {
        EncSignError::NonceZero {
            msg: hex::encode(msg),
        }
    })?;

    // Constant-time base-point multiplication: k is secret.
    let r0 = PublicKey::from_secret_key(SECP256K1, k.key())
        .combine(encryption_key.point())
        .map_err(|_| EncSignError::NoncePointInfinity {
            encryption_key: encryption_key.to_string(),
        })?;
    let (r0_x, r0_parity) = r0.x_only_public_key();
    let k = match r0_parity {
        Parity::Even => k,
        Parity::Odd => k.negate(),
    };

    let e = challenge(&r0_x.serialize(), &signer_x, msg);
    let scalar_zero = || EncSignError::ScalarZero {
        msg: hex::encode(msg),
    };
    let s_hat = if e == Scalar::ZERO {
        k
    } else {
        // e·d is non-zero: both factors are, and n is prime.
        let ed = d.mul(&e).ok_or_else(scalar_zero)?;
        ed.add(&k.to_tweak().0).ok_or_else(scalar_zero)?
    };
    // s' is public from here on.
    Ok(AdaptorSignature::from_parts(r0, Scalar::from(*s_hat.key())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adaptor::{DecryptionKey, SignerKey};
    use secp256k1::{Message, SecretKey};

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_slice(&[byte; 32]).unwrap()
    }

    fn pair(byte: u8) -> Keypair {
        Keypair::from_secret_key(SECP256K1, &key(byte))
    }

    #[test]
    fn sign_verify_decrypt_extract_round_trip() {
        // Several keys so that both parities of P, T and R0 occur.
        for (i, (d, t)) in [(1u8, 2u8), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)]
            .into_iter()
            .enumerate()
        {
            let d = pair(d);
            let t = DecryptionKey::from_secret_key(key(t));
            let encryption_key = t.encryption_key();
            let msg = [i as u8; 32];
            let presig = enc_sign(&d, &encryption_key, &msg, &[0xAA; 32]).unwrap();
            let signer = SignerKey::new(d.x_only_public_key().0);
            presig.enc_verify(&signer, &msg, &encryption_key).unwrap();

            let sig = presig.decrypt(&t).unwrap();
            SECP256K1
                .verify_schnorr(&sig, &Message::from_digest(msg), &signer.x_only())
                .unwrap();
            let extracted = presig.extract(&sig).unwrap();
            assert_eq!(extracted.to_secret_key(), t.to_secret_key());
        }
    }

    #[test]
    fn signing_is_deterministic_in_aux() {
        let d = pair(1);
        let t = EncryptionKey::from_point(key(2).public_key(SECP256K1));
        let a = enc_sign(&d, &t, &[0; 32], &[1; 32]).unwrap();
        assert_eq!(a, enc_sign(&d, &t, &[0; 32], &[1; 32]).unwrap());
        assert_ne!(a, enc_sign(&d, &t, &[0; 32], &[2; 32]).unwrap());
    }
}
