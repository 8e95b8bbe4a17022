//! The adaptor signature value and its wire encodings.

use std::fmt;

use secp256k1::{Parity, PublicKey, Scalar};

/// Length of the encoding: `0x02|0x03` (parity of R0) ‖ `R0.x` ‖ `s'`.
pub const ADAPTOR_SIGNATURE_SIZE: usize = 65;
/// Length of the legacy encoding: `0x02` ‖ `R0.x` ‖ `s'` ‖ `needsNegation (00|01)`.
pub const LEGACY_ADAPTOR_SIGNATURE_SIZE: usize = 66;

/// A Schnorr adaptor signature (pre-signature) `(R0, s')`.
///
/// Every value of this type has R0 on the curve and 0 < s' < n: parsing and signing reject
/// anything else.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdaptorSignature {
    r0: PublicKey,
    s_hat: Scalar,
    encoded: [u8; ADAPTOR_SIGNATURE_SIZE],
}

/// Why bytes are not an adaptor signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Neither 65 nor 66 bytes.
    #[error("adaptor signature must be 65 bytes (or 66 in the legacy form), got {0}")]
    Length(usize),
    /// First byte of the 65-byte form is not 0x02 or 0x03.
    #[error("adaptor signature parity byte must be 0x02 or 0x03, got {0:#04x}")]
    ParityByte(u8),
    /// First byte of the legacy form is not 0x02.
    #[error("legacy adaptor signature must start with 0x02, got {0:#04x}")]
    LegacyPrefix(u8),
    /// Last byte of the legacy form is not 0x00 or 0x01.
    #[error("legacy adaptor signature negation flag must be 0x00 or 0x01, got {0:#04x}")]
    LegacyNegationFlag(u8),
    /// `R0.x` is not the x-coordinate of a curve point (or not below the field size).
    #[error("adaptor signature nonce point is not on the curve: x = {0}")]
    NonceNotOnCurve(String),
    /// `s'` is not below the group order.
    #[error("adaptor signature scalar is not below the group order: s' = {0}")]
    ScalarOutOfRange(String),
    /// `s'` is zero.
    #[error("adaptor signature scalar is zero")]
    ScalarZero,
}

impl AdaptorSignature {
    /// Parses the 65-byte encoding or the legacy 66-byte one.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ParseError> {
        match bytes.len() {
            ADAPTOR_SIGNATURE_SIZE => {
                let mut encoded = [0u8; ADAPTOR_SIGNATURE_SIZE];
                encoded.copy_from_slice(bytes);
                Self::from_bytes(&encoded)
            }
            LEGACY_ADAPTOR_SIGNATURE_SIZE => {
                if bytes[0] != 0x02 {
                    return Err(ParseError::LegacyPrefix(bytes[0]));
                }
                let mut encoded = [0u8; ADAPTOR_SIGNATURE_SIZE];
                encoded.copy_from_slice(&bytes[..ADAPTOR_SIGNATURE_SIZE]);
                encoded[0] = match bytes[ADAPTOR_SIGNATURE_SIZE] {
                    0x00 => 0x02,
                    0x01 => 0x03,
                    flag => return Err(ParseError::LegacyNegationFlag(flag)),
                };
                Self::from_bytes(&encoded)
            }
            len => Err(ParseError::Length(len)),
        }
    }

    /// Parses the 65-byte encoding.
    pub fn from_bytes(bytes: &[u8; ADAPTOR_SIGNATURE_SIZE]) -> Result<Self, ParseError> {
        if bytes[0] != 0x02 && bytes[0] != 0x03 {
            return Err(ParseError::ParityByte(bytes[0]));
        }
        let r0 = PublicKey::from_slice(&bytes[..33])
            .map_err(|_| ParseError::NonceNotOnCurve(hex::encode(&bytes[1..33])))?;
        let mut s = [0u8; 32];
        s.copy_from_slice(&bytes[33..]);
        let s_hat =
            Scalar::from_be_bytes(s).map_err(|_| ParseError::ScalarOutOfRange(hex::encode(s)))?;
        if s_hat == Scalar::ZERO {
            return Err(ParseError::ScalarZero);
        }
        Ok(AdaptorSignature {
            r0,
            s_hat,
            encoded: *bytes,
        })
    }

    /// Builds the value from its parts; `s_hat` must be non-zero (the callers guarantee it).
    pub(crate) fn from_parts(r0: PublicKey, s_hat: Scalar) -> Self {
        let mut encoded = [0u8; ADAPTOR_SIGNATURE_SIZE];
        encoded[..33].copy_from_slice(&r0.serialize());
        encoded[33..].copy_from_slice(&s_hat.to_be_bytes());
        AdaptorSignature { r0, s_hat, encoded }
    }

    /// The 65-byte encoding.
    pub fn to_bytes(&self) -> [u8; ADAPTOR_SIGNATURE_SIZE] {
        self.encoded
    }

    /// The legacy 66-byte encoding (`0x02` ‖ `R0.x` ‖ `s'` ‖ `needsNegation`).
    pub fn to_legacy_bytes(&self) -> [u8; LEGACY_ADAPTOR_SIGNATURE_SIZE] {
        let mut out = [0u8; LEGACY_ADAPTOR_SIGNATURE_SIZE];
        out[..ADAPTOR_SIGNATURE_SIZE].copy_from_slice(&self.encoded);
        out[0] = 0x02;
        out[ADAPTOR_SIGNATURE_SIZE] = u8::from(self.r0_parity() == Parity::Odd);
        out
    }

    /// The nonce point `R0`.
    pub fn nonce_point(&self) -> &PublicKey {
        &self.r0
    }

    /// `R0.x`, which is also the `r` of the decrypted BIP-0340 signature.
    pub fn nonce_x(&self) -> &[u8] {
        &self.encoded[1..33]
    }

    /// `R0.x` as an array, the form the BIP-0340 challenge takes.
    pub(crate) fn nonce_x_array(&self) -> [u8; 32] {
        let mut x = [0u8; 32];
        // Both sides are 32 bytes by construction, so the copy cannot panic.
        x.copy_from_slice(self.nonce_x());
        x
    }

    /// The scalar `s'`.
    pub fn s_hat(&self) -> &Scalar {
        &self.s_hat
    }

    pub(crate) fn r0_parity(&self) -> Parity {
        if self.encoded[0] == 0x03 {
            Parity::Odd
        } else {
            Parity::Even
        }
    }
}

impl fmt::Debug for AdaptorSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdaptorSignature({})", hex::encode(self.encoded))
    }
}

impl fmt::Display for AdaptorSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.encoded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A valid encoding from the published vectors (asig_adapt_vectors.csv, row 1).
    const SIG: &str = "0373DB6D5803EDD6502DE3D0956BA3BD3FABA98841C9AB074C795E3A9012C4298A4B6C99EE31DB1C15813028262EC25E0E04C9D304155585F85EC002422D205D6E";

    fn sig_bytes() -> Vec<u8> {
        hex::decode(SIG).unwrap()
    }

    #[test]
    fn round_trips_both_encodings() {
        let sig = AdaptorSignature::from_slice(&sig_bytes()).unwrap();
        assert_eq!(sig.to_bytes().to_vec(), sig_bytes());
        assert_eq!(sig.r0_parity(), Parity::Odd);
        let legacy = sig.to_legacy_bytes();
        assert_eq!(legacy[0], 0x02);
        assert_eq!(legacy[65], 0x01);
        assert_eq!(AdaptorSignature::from_slice(&legacy).unwrap(), sig);
    }

    #[test]
    fn rejects_bad_lengths_and_prefixes() {
        let bytes = sig_bytes();
        assert_eq!(
            AdaptorSignature::from_slice(&bytes[..64]),
            Err(ParseError::Length(64))
        );
        let mut bad = bytes.clone();
        bad[0] = 0x04;
        assert_eq!(
            AdaptorSignature::from_slice(&bad),
            Err(ParseError::ParityByte(0x04))
        );
        let mut legacy = bytes.clone();
        legacy.push(0x02);
        legacy[0] = 0x02;
        assert_eq!(
            AdaptorSignature::from_slice(&legacy),
            Err(ParseError::LegacyNegationFlag(0x02))
        );
        legacy[65] = 0x00;
        legacy[0] = 0x03;
        assert_eq!(
            AdaptorSignature::from_slice(&legacy),
            Err(ParseError::LegacyPrefix(0x03))
        );
    }

    #[test]
    fn rejects_zero_and_overflowing_scalars() {
        let mut bytes = sig_bytes();
        bytes[33..].fill(0);
        assert_eq!(
            AdaptorSignature::from_slice(&bytes),
            Err(ParseError::ScalarZero)
        );
        bytes[33..].fill(0xff);
        assert!(matches!(
            AdaptorSignature::from_slice(&bytes),
            Err(ParseError::ScalarOutOfRange(_))
        ));
    }

    #[test]
    fn rejects_nonce_off_the_curve() {
        let mut bytes = sig_bytes();
        // x = p (the field size) is not a valid coordinate.
        bytes[1..33].copy_from_slice(
            &hex::decode("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F")
                .unwrap(),
        );
        assert!(matches!(
            AdaptorSignature::from_slice(&bytes),
            Err(ParseError::NonceNotOnCurve(_))
        ));
    }
}
