//! Keys for the unit tests of `checkpoint`.

use secp256k1::{Keypair, XOnlyPublicKey, SECP256K1};

/// The key pair whose secret key is 32 bytes of `i` (`i` ≥ 1).
pub(crate) fn kp(i: u8) -> Keypair {
    Keypair::from_seckey_slice(SECP256K1, &[i; 32]).expect("valid key")
}

/// The x-only key of [`kp`]`(i)`.
pub(crate) fn key(i: u8) -> XOnlyPublicKey {
    kp(i).x_only_public_key().0
}
