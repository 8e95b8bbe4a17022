//! EncVerify: does a pre-signature decrypt, with the key of `T`, into a BIP-0340 signature?

use secp256k1::{Parity, PublicKey, SECP256K1};

use super::hashes::challenge;
use super::keys::{EncryptionKey, SignerKey};
use super::point::s_g_minus_e_p;
use super::signature::AdaptorSignature;

/// Why a pre-signature failed EncVerify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncVerifyError {
    /// R = s'G − eP is the point at infinity.
    #[error("pre-signature {signature}: s'G - eP is the point at infinity")]
    NonceInfinity {
        /// The pre-signature, hex.
        signature: String,
    },
    /// R0 ∓ R is the point at infinity, so it cannot equal any encryption key.
    #[error("pre-signature {signature}: the adaptor point it commits to is infinity")]
    AdaptorInfinity {
        /// The pre-signature, hex.
        signature: String,
    },
    /// The pre-signature commits to another adaptor point than the encryption key.
    #[error("pre-signature {signature} is encrypted to {found}, not to {expected}")]
    WrongEncryptionKey {
        /// The pre-signature, hex.
        signature: String,
        /// The encryption key it was checked against.
        expected: String,
        /// The adaptor point it commits to for this signer and message.
        found: String,
    },
}

impl AdaptorSignature {
    /// EncVerify (§5): accepts iff decrypting with the secret key of `encryption_key` yields a
    /// BIP-0340 signature by `signer` on `msg`.
    ///
    /// Computes R = s'G − eP with one multi-scalar multiplication, then T' = R0 − R (R0 even)
    /// or R0 + R (R0 odd), and compares T' with T. (s' ≠ 0 and R0 on the curve hold for every
    /// parsed value.)
    pub fn enc_verify(
        &self,
        signer: &SignerKey,
        msg: &[u8; 32],
        encryption_key: &EncryptionKey,
    ) -> Result<(), EncVerifyError> {
        let e = challenge(&self.nonce_x_array(), signer.x_bytes(), msg);
        let r = s_g_minus_e_p(self.s_hat(), &e, signer.even_point(), signer.recovery())
            .ok_or_else(|| EncVerifyError::NonceInfinity {
                signature: self.to_string(),
            })?;
        let r = match self.r0_parity() {
            Parity::Even => r.negate(SECP256K1),
            Parity::Odd => r,
        };
        let adaptor: PublicKey =
            self.nonce_point()
                .combine(&r)
                .map_err(|_| EncVerifyError::AdaptorInfinity {
                    signature: self.to_string(),
                })?;
        if adaptor != *encryption_key.point() {
            return Err(EncVerifyError::WrongEncryptionKey {
                signature: self.to_string(),
                expected: encryption_key.to_string(),
                found: adaptor.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adaptor::enc_sign;
    use secp256k1::{Keypair, SecretKey};

    #[test]
    fn names_the_key_it_found() {
        let d = SecretKey::from_slice(&[1; 32]).unwrap();
        let t = EncryptionKey::from_point(
            SecretKey::from_slice(&[2; 32])
                .unwrap()
                .public_key(SECP256K1),
        );
        let other = EncryptionKey::from_point(
            SecretKey::from_slice(&[3; 32])
                .unwrap()
                .public_key(SECP256K1),
        );
        let presig = enc_sign(
            &Keypair::from_secret_key(SECP256K1, &d),
            &t,
            &[0; 32],
            &[0; 32],
        )
        .unwrap();
        let signer = SignerKey::new(d.x_only_public_key(SECP256K1).0);
        let err = presig.enc_verify(&signer, &[0; 32], &other).unwrap_err();
        assert_eq!(
            err,
            EncVerifyError::WrongEncryptionKey {
                signature: presig.to_string(),
                expected: other.to_string(),
                found: t.to_string(),
            }
        );
    }
}
