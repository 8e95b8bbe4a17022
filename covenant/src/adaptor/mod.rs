//! Schnorr adaptor signatures (`PROTOCOL.md` §5).
//!
//! A covenant member pre-signs a slashing transaction with [`enc_sign`], encrypting the
//! signature to a verifier's public key (the [`EncryptionKey`]). Anyone checks the pre-signature
//! with [`AdaptorSignature::enc_verify`]. Whoever learns the verifier's secret key (the
//! [`DecryptionKey`]) turns it into a valid BIP-0340 signature with
//! [`AdaptorSignature::decrypt`]; and whoever sees both the pre-signature and that BIP-0340
//! signature recovers the secret key with [`AdaptorSignature::extract`].
//!
//! All point and scalar arithmetic goes through the `secp256k1` crate (libsecp256k1); the code
//! here only decides which operations to call.

mod adapt;
mod hashes;
mod keys;
mod point;
mod scalar;
mod sign;
mod signature;
mod verify;

pub use adapt::{DecryptError, ExtractError};
pub use keys::{DecryptionKey, EncryptionKey, SignerKey};
pub use sign::{enc_sign, EncSignError};
pub use signature::{
    AdaptorSignature, ParseError, ADAPTOR_SIGNATURE_SIZE, LEGACY_ADAPTOR_SIGNATURE_SIZE,
};
pub use verify::EncVerifyError;
