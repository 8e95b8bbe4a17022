//! Decrypt and Extract: the two directions between a pre-signature and its BIP-0340 signature.

use secp256k1::schnorr::Signature;
use secp256k1::{Parity, Scalar, SecretKey};

use super::keys::DecryptionKey;
use super::scalar::SecretScalar;
use super::signature::AdaptorSignature;

/// Why Decrypt produced no signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// s' ± t is 0 mod n: the decryption key is ∓s', never the key of an honest signature.
    #[error("decryption of {signature} gives s = 0")]
    ScalarZero {
        /// The pre-signature, hex.
        signature: String,
    },
}

/// Why Extract recovered no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The signature's r is not the pre-signature's R0.x, so one is not the other decrypted.
    #[error("signature nonce {signature_r} differs from pre-signature nonce {presig_r}")]
    NonceMismatch {
        /// r of the BIP-0340 signature, hex.
        signature_r: String,
        /// R0.x of the pre-signature, hex.
        presig_r: String,
    },
    /// The signature's s is not below the group order.
    #[error("signature scalar is not below the group order: s = {0}")]
    ScalarOutOfRange(String),
    /// s equals s', which would mean a decryption key of 0.
    #[error("signature scalar equals the pre-signature scalar {0}: no key to extract")]
    KeyZero(String),
}

impl AdaptorSignature {
    /// Decrypt (§5): `s = s' + t` (R0 even) or `s' − t` (R0 odd); returns the BIP-0340
    /// signature `(R0.x, s)`. It is valid for the signer and message whenever
    /// [`AdaptorSignature::enc_verify`] accepted this pre-signature for the key `tG`.
    pub fn decrypt(&self, key: &DecryptionKey) -> Result<Signature, DecryptError> {
        let t = key.scalar();
        let s = match self.r0_parity() {
            Parity::Even => t.add(self.s_hat()),
            Parity::Odd => t.negate().add(self.s_hat()),
        }
        .ok_or_else(|| DecryptError::ScalarZero {
            signature: self.to_string(),
        })?;
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(self.nonce_x());
        bytes[32..].copy_from_slice(&s.key().secret_bytes());
        // Infallible: `from_slice` only checks the length, which is 64.
        Ok(Signature::from_slice(&bytes).expect("64-byte signature"))
    }

    /// Extract (§5): the decryption key `t = s − s'` (R0 even) or `s' − s` (R0 odd) from this
    /// pre-signature and its decrypted BIP-0340 signature.
    ///
    /// The result is correct when `signature` is this pre-signature decrypted; callers that
    /// need certainty compare its public key with the expected one.
    pub fn extract(&self, signature: &Signature) -> Result<DecryptionKey, ExtractError> {
        let bytes = signature.as_ref();
        if bytes[..32] != *self.nonce_x() {
            return Err(ExtractError::NonceMismatch {
                signature_r: hex::encode(&bytes[..32]),
                presig_r: hex::encode(self.nonce_x()),
            });
        }
        let mut s = [0u8; 32];
        s.copy_from_slice(&bytes[32..]);
        let s =
            Scalar::from_be_bytes(s).map_err(|_| ExtractError::ScalarOutOfRange(hex::encode(s)))?;
        // Infallible: s' is non-zero and below n for every `AdaptorSignature`.
        let s_hat = SecretScalar::new(
            SecretKey::from_slice(&self.s_hat().to_be_bytes()).expect("0 < s' < n"),
        );
        // s − s'.
        let diff = s_hat
            .negate()
            .add(&s)
            .ok_or_else(|| ExtractError::KeyZero(hex::encode(self.s_hat().to_be_bytes())))?;
        Ok(DecryptionKey::from_scalar(match self.r0_parity() {
            Parity::Even => diff,
            Parity::Odd => diff.negate(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adaptor::enc_sign;
    use secp256k1::{Keypair, SECP256K1};

    /// Pre-signatures with an even and an odd R0 (keys chosen so that both parities occur).
    fn presigs() -> Vec<(AdaptorSignature, DecryptionKey)> {
        let mut out = Vec::new();
        for byte in 1u8..=12 {
            let d = Keypair::from_seckey_slice(SECP256K1, &[byte; 32]).unwrap();
            let t = DecryptionKey::from_slice(&[byte + 100; 32]).unwrap();
            let presig = enc_sign(&d, &t.encryption_key(), &[byte; 32], &[0; 32]).unwrap();
            out.push((presig, t));
        }
        let parities: Vec<Parity> = out.iter().map(|(p, _)| p.r0_parity()).collect();
        assert!(parities.contains(&Parity::Even) && parities.contains(&Parity::Odd));
        out
    }

    fn schnorr(r: &[u8], s: &[u8]) -> Signature {
        Signature::from_slice(&[r, s].concat()).unwrap()
    }

    #[test]
    fn the_key_that_cancels_s_hat_is_refused() {
        for (presig, _) in presigs() {
            let s_hat = SecretKey::from_slice(&presig.s_hat().to_be_bytes()).unwrap();
            // s = s' + t for even R0 and s' − t for odd: t = ∓s' gives s = 0.
            let t = match presig.r0_parity() {
                Parity::Even => s_hat.negate(),
                Parity::Odd => s_hat,
            };
            assert_eq!(
                presig.decrypt(&DecryptionKey::from_secret_key(t)),
                Err(DecryptError::ScalarZero {
                    signature: presig.to_string()
                })
            );
        }
    }

    #[test]
    fn extract_refuses_signatures_that_are_not_this_presignature_decrypted() {
        let all = presigs();
        let (presig, t) = &all[0];
        let (other, other_t) = &all[1];
        let sig = presig.decrypt(t).unwrap();
        let s = &sig.as_ref()[32..];

        let foreign = other.decrypt(other_t).unwrap();
        assert_eq!(
            presig.extract(&schnorr(&foreign.as_ref()[..32], s)).err(),
            Some(ExtractError::NonceMismatch {
                signature_r: hex::encode(&foreign.as_ref()[..32]),
                presig_r: hex::encode(presig.nonce_x()),
            })
        );
        assert_eq!(
            presig
                .extract(&schnorr(presig.nonce_x(), &[0xff; 32]))
                .err(),
            Some(ExtractError::ScalarOutOfRange(hex::encode([0xff; 32])))
        );
        let s_hat = presig.s_hat().to_be_bytes();
        assert_eq!(
            presig.extract(&schnorr(presig.nonce_x(), &s_hat)).err(),
            Some(ExtractError::KeyZero(hex::encode(s_hat)))
        );
        assert_eq!(
            presig.extract(&sig).unwrap().to_secret_key(),
            t.to_secret_key()
        );
    }
}
