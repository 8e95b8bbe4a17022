//! Deterministic keys for unit tests.

use bitcoin::secp256k1::{Keypair, SecretKey, XOnlyPublicKey, SECP256K1};

/// The key pair whose secret key is 32 bytes of `i` (`i` ≥ 1).
pub fn keypair(i: u8) -> Keypair {
    let sk = SecretKey::from_slice(&[i; 32]).expect("1..=255 repeated is a valid scalar");
    Keypair::from_secret_key(SECP256K1, &sk)
}

/// The x-only public key of [`keypair`]`(i)`.
pub fn key(i: u8) -> XOnlyPublicKey {
    keypair(i).x_only_public_key().0
}
