//! A secret scalar that is erased when dropped.

use secp256k1::SecretKey;

/// Holds a `secp256k1::SecretKey` and overwrites it on drop.
///
/// `SecretKey` is `Copy` and does not implement `zeroize`, so this wrapper is where the crate's
/// own secrets live; it uses the `secp256k1` crate's volatile erase. Copies handed to
/// libsecp256k1 calls are short-lived locals, erased by the callers where they hold them.
pub(crate) struct Secret(SecretKey);

impl Secret {
    pub(crate) fn new(key: SecretKey) -> Self {
        Secret(key)
    }

    pub(crate) fn key(&self) -> &SecretKey {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.non_secure_erase();
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}
