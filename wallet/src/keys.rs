//! Where a wallet's keys come from, and the encrypted file that holds its secret.
//!
//! A wallet is either
//! - a BIP-39 mnemonic, giving the BIP-86 taproot descriptors `tr(m/86'/c'/0'/{0,1}/*)` (coin
//!   type 0 on mainnet, 1 elsewhere), or
//! - two imported descriptors (receive and change), private or public; a public pair makes a
//!   watch-only wallet whose transactions an external signer signs from PSBTs.
//!
//! The secret (mnemonic or private descriptors) is kept in an ASCII-armored age file encrypted
//! with a passphrase (scrypt), the format of `fiamma-role`'s keystore: `age -d wallet.age`
//! opens it. The plaintext is `{"version":1,"role":"wallet","network":..,"mnemonic":..}` or
//! `{..,"external":..,"internal":..}`. No secret reaches a `Debug`, an error or a log.

use std::path::Path;
use std::str::FromStr;

use bdk_wallet::keys::bip39::Mnemonic;
use bdk_wallet::miniscript::descriptor::{DescriptorPublicKey, KeyMap};
use bdk_wallet::miniscript::Descriptor;
use bitcoin::bip32::{DerivationPath, Fingerprint, Xpriv};
use bitcoin::secp256k1::{XOnlyPublicKey, SECP256K1};
use bitcoin::{Network, NetworkKind};
use fiamma_role::keystore::{self, KeystoreError};
use fiamma_role::SecretString;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The version of the secret file's plaintext.
pub const SECRET_VERSION: u32 = 1;
/// The role recorded in the secret file.
pub const SECRET_ROLE: &str = "wallet";

/// Why keys cannot be made, read or written. No variant carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The mnemonic is not valid BIP-39 English.
    #[error("the mnemonic is not a valid BIP-39 English mnemonic: {0}")]
    Mnemonic(String),
    /// A descriptor does not parse (its text is left out: it may hold a private key).
    #[error("the {which} descriptor does not parse: {reason}")]
    Descriptor {
        /// "receive" or "change".
        which: &'static str,
        /// What is wrong (from the parser, without the descriptor).
        reason: String,
    },
    /// One descriptor of the pair is private and the other public.
    #[error("the receive and change descriptors must both be private or both be public")]
    MixedDescriptors,
    /// The encrypted file cannot be written or read.
    #[error(transparent)]
    File(#[from] KeystoreError),
    /// The decrypted file is not a wallet secret of this format.
    #[error("wallet secret file {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The secret is for another network.
    #[error("wallet secret file {path} is for {found}, not {expected}")]
    Network {
        /// The file.
        path: String,
        /// The network asked for.
        expected: Network,
        /// The network recorded.
        found: Network,
    },
    /// Deriving a key failed.
    #[error("cannot derive the wallet's keys: {0}")]
    Derive(String),
}

/// A wallet's keys.
pub enum WalletKeys {
    /// A BIP-39 mnemonic (English, no BIP-39 passphrase).
    Mnemonic(Zeroizing<String>),
    /// Receive and change descriptors, as imported.
    Descriptors {
        /// The receive (external) descriptor.
        external: Zeroizing<String>,
        /// The change (internal) descriptor.
        internal: Zeroizing<String>,
    },
}

impl std::fmt::Debug for WalletKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalletKeys::Mnemonic(_) => f.write_str("WalletKeys::Mnemonic(..)"),
            WalletKeys::Descriptors { .. } => f.write_str("WalletKeys::Descriptors(..)"),
        }
    }
}

/// The two descriptors of a wallet, as text a BDK wallet takes (private ones hold keys).
pub struct DescriptorPair {
    /// The receive descriptor.
    pub external: Zeroizing<String>,
    /// The change descriptor.
    pub internal: Zeroizing<String>,
    /// Whether they hold private keys.
    pub private: bool,
}

impl std::fmt::Debug for DescriptorPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DescriptorPair")
            .field("private", &self.private)
            .finish_non_exhaustive()
    }
}

/// Where a public key of the wallet comes from (BIP-32), as a PSBT names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOrigin {
    /// The x-only key.
    pub key: XOnlyPublicKey,
    /// The master key's fingerprint.
    pub fingerprint: Fingerprint,
    /// The full derivation path from the master key.
    pub path: DerivationPath,
}

#[derive(Serialize, Deserialize)]
struct SecretDocument {
    version: u32,
    role: String,
    network: Network,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mnemonic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    external: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    internal: Option<String>,
}

impl Drop for SecretDocument {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for s in [&mut self.mnemonic, &mut self.external, &mut self.internal]
            .into_iter()
            .flatten()
        {
            s.zeroize();
        }
    }
}

/// `message` without its long tokens: a parser message may quote a token of a descriptor,
/// and a key is over 50 characters, so no key material travels along.
pub(crate) fn redact(message: &str) -> String {
    message
        .split_whitespace()
        .map(|w| if w.len() > 24 { "<..>" } else { w })
        .take(32)
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_descriptor(
    which: &'static str,
    text: &str,
) -> Result<(Descriptor<DescriptorPublicKey>, KeyMap), KeysError> {
    Descriptor::parse_descriptor(SECP256K1, text).map_err(|e| KeysError::Descriptor {
        which,
        reason: redact(&e.to_string()),
    })
}

impl WalletKeys {
    /// A new random 24-word mnemonic.
    ///
    /// # Errors
    /// [`KeysError::Mnemonic`] only if the BIP-39 library refuses 32 random bytes.
    pub fn generate() -> Result<Self, KeysError> {
        let mut entropy = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(entropy.as_mut());
        Self::from_entropy(entropy.as_ref())
    }

    /// The mnemonic encoding `entropy` (16 to 32 bytes, a multiple of 4).
    ///
    /// # Errors
    /// [`KeysError::Mnemonic`] for another length.
    pub fn from_entropy(entropy: &[u8]) -> Result<Self, KeysError> {
        let mnemonic =
            Mnemonic::from_entropy(entropy).map_err(|e| KeysError::Mnemonic(e.to_string()))?;
        Ok(WalletKeys::Mnemonic(Zeroizing::new(mnemonic.to_string())))
    }

    /// A mnemonic typed or pasted by a person (checked).
    ///
    /// # Errors
    /// [`KeysError::Mnemonic`] when the words or the checksum are wrong.
    pub fn from_mnemonic(words: &str) -> Result<Self, KeysError> {
        let mnemonic =
            Mnemonic::parse_normalized(words).map_err(|e| KeysError::Mnemonic(e.to_string()))?;
        Ok(WalletKeys::Mnemonic(Zeroizing::new(mnemonic.to_string())))
    }

    /// Imported receive and change descriptors (checked to parse, both private or both
    /// public).
    ///
    /// # Errors
    /// [`KeysError::Descriptor`] or [`KeysError::MixedDescriptors`].
    pub fn from_descriptors(external: &str, internal: &str) -> Result<Self, KeysError> {
        let keys = WalletKeys::Descriptors {
            external: Zeroizing::new(external.trim().to_owned()),
            internal: Zeroizing::new(internal.trim().to_owned()),
        };
        keys.descriptors(Network::Regtest)?;
        Ok(keys)
    }

    /// The mnemonic's words, for the one time a new wallet shows them to its owner.
    pub fn mnemonic_words(&self) -> Option<&str> {
        match self {
            WalletKeys::Mnemonic(words) => Some(words),
            WalletKeys::Descriptors { .. } => None,
        }
    }

    /// The wallet's descriptors on `network`.
    ///
    /// # Errors
    /// [`KeysError`] when the mnemonic or the descriptors are unusable.
    pub fn descriptors(&self, network: Network) -> Result<DescriptorPair, KeysError> {
        match self {
            WalletKeys::Mnemonic(words) => {
                let mnemonic = Mnemonic::parse_normalized(words)
                    .map_err(|e| KeysError::Mnemonic(e.to_string()))?;
                let seed = Zeroizing::new(mnemonic.to_seed(""));
                let master = Xpriv::new_master(network, seed.as_ref())
                    .map_err(|e| KeysError::Derive(e.to_string()))?;
                let coin = match NetworkKind::from(network) {
                    NetworkKind::Main => 0,
                    NetworkKind::Test => 1,
                };
                let keychain =
                    |branch: u32| Zeroizing::new(format!("tr({master}/86h/{coin}h/0h/{branch}/*)"));
                Ok(DescriptorPair {
                    external: keychain(0),
                    internal: keychain(1),
                    private: true,
                })
            }
            WalletKeys::Descriptors { external, internal } => {
                let (_, external_keys) = parse_descriptor("receive", external)?;
                let (_, internal_keys) = parse_descriptor("change", internal)?;
                if external_keys.is_empty() != internal_keys.is_empty() {
                    return Err(KeysError::MixedDescriptors);
                }
                Ok(DescriptorPair {
                    external: external.clone(),
                    internal: internal.clone(),
                    private: !external_keys.is_empty(),
                })
            }
        }
    }

    /// Writes the keys encrypted with `passphrase` to a new file at `path` (never replacing
    /// one), for `network`, at scrypt work factor `work_factor`.
    ///
    /// # Errors
    /// [`KeysError::File`] (exists, I/O, empty passphrase, work factor out of range).
    pub fn seal(
        &self,
        path: &Path,
        network: Network,
        passphrase: &SecretString,
        work_factor: u8,
    ) -> Result<(), KeysError> {
        let mut document = SecretDocument {
            version: SECRET_VERSION,
            role: SECRET_ROLE.to_owned(),
            network,
            mnemonic: None,
            external: None,
            internal: None,
        };
        match self {
            WalletKeys::Mnemonic(words) => document.mnemonic = Some(words.to_string()),
            WalletKeys::Descriptors { external, internal } => {
                document.external = Some(external.to_string());
                document.internal = Some(internal.to_string());
            }
        }
        let plaintext =
            Zeroizing::new(
                serde_json::to_vec(&document).map_err(|e| KeysError::Invalid {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?,
            );
        keystore::write_sealed(path, &plaintext, passphrase, work_factor)?;
        Ok(())
    }

    /// Reads the keys sealed at `path` for `network`.
    ///
    /// # Errors
    /// [`KeysError::File`] (wrong passphrase, I/O, not an age file), [`KeysError::Invalid`]
    /// or [`KeysError::Network`].
    pub fn open(
        path: &Path,
        network: Network,
        passphrase: &SecretString,
    ) -> Result<Self, KeysError> {
        let plaintext = keystore::read_sealed(path, passphrase)?;
        let invalid = |reason: &str| KeysError::Invalid {
            path: path.display().to_string(),
            reason: reason.to_owned(),
        };
        let mut document: SecretDocument = serde_json::from_slice(&plaintext)
            .map_err(|_| invalid("the decrypted document is not a wallet secret"))?;
        if document.version != SECRET_VERSION {
            return Err(invalid("unknown format version"));
        }
        if document.role != SECRET_ROLE {
            return Err(invalid("it is not a wallet secret"));
        }
        if document.network != network {
            return Err(KeysError::Network {
                path: path.display().to_string(),
                expected: network,
                found: document.network,
            });
        }
        match (
            document.mnemonic.take(),
            document.external.take(),
            document.internal.take(),
        ) {
            (Some(words), None, None) => {
                let words = Zeroizing::new(words);
                Self::from_mnemonic(&words)
            }
            (None, Some(external), Some(internal)) => {
                let (external, internal) = (Zeroizing::new(external), Zeroizing::new(internal));
                Self::from_descriptors(&external, &internal)
            }
            _ => Err(invalid("it holds neither a mnemonic nor a descriptor pair")),
        }
    }
}

impl FromStr for WalletKeys {
    type Err = KeysError;

    /// A mnemonic.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_mnemonic(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn a_mnemonic_gives_bip86_descriptors_with_key_origins() {
        // BIP-86's own test mnemonic; its first receive address on mainnet is
        // bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr.
        let keys = WalletKeys::from_mnemonic(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
             abandon about",
        )
        .expect("valid");
        let pair = keys.descriptors(Network::Bitcoin).expect("descriptors");
        assert!(pair.private);
        let (public, _) = parse_descriptor("receive", &pair.external).expect("parses");
        let first = public
            .at_derivation_index(0)
            .expect("index")
            .address(Network::Bitcoin)
            .expect("address");
        assert_eq!(
            first.to_string(),
            "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr"
        );
        assert!(public
            .to_string()
            .starts_with("tr([73c5da0a/86'/0'/0']xpub"));
    }

    #[test]
    fn bad_mnemonics_and_mixed_descriptors_are_refused() {
        assert!(matches!(
            WalletKeys::from_mnemonic("abandon abandon abandon"),
            Err(KeysError::Mnemonic(_))
        ));
        // A wrong checksum word.
        assert!(matches!(
            WalletKeys::from_mnemonic(&"abandon ".repeat(12)),
            Err(KeysError::Mnemonic(_))
        ));
        let keys = WalletKeys::from_entropy(&[7; 16]).expect("keys");
        let private = keys.descriptors(Network::Regtest).expect("pair");
        let (public, _) = parse_descriptor("receive", &private.internal).expect("parses");
        assert!(matches!(
            WalletKeys::from_descriptors(&private.external, &public.to_string()),
            Err(KeysError::MixedDescriptors)
        ));
        let err = WalletKeys::from_descriptors("tr(nonsense)", "tr(nonsense)").expect_err("bad");
        assert!(
            matches!(
                err,
                KeysError::Descriptor {
                    which: "receive",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn sealed_keys_open_with_their_passphrase_and_network_only() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wallet.age");
        let keys = WalletKeys::generate().expect("keys");
        let words = keys.mnemonic_words().expect("mnemonic").to_owned();
        keys.seal(
            &path,
            Network::Regtest,
            &pass("pw"),
            keystore::MIN_WORK_FACTOR,
        )
        .expect("sealed");
        let file = std::fs::read_to_string(&path).expect("read");
        assert!(file.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        for word in words.split(' ') {
            assert!(
                !file.contains(&format!(" {word} ")),
                "the file holds a word"
            );
        }
        let opened = WalletKeys::open(&path, Network::Regtest, &pass("pw")).expect("opens");
        assert_eq!(opened.mnemonic_words(), Some(words.as_str()));
        assert!(matches!(
            WalletKeys::open(&path, Network::Regtest, &pass("nope")),
            Err(KeysError::File(KeystoreError::WrongPassphrase(_)))
        ));
        assert!(matches!(
            WalletKeys::open(&path, Network::Testnet, &pass("pw")),
            Err(KeysError::Network { .. })
        ));
        // Never overwritten.
        assert!(matches!(
            keys.seal(
                &path,
                Network::Regtest,
                &pass("pw"),
                keystore::MIN_WORK_FACTOR
            ),
            Err(KeysError::File(KeystoreError::Exists(_)))
        ));
        assert_eq!(format!("{keys:?}"), "WalletKeys::Mnemonic(..)");
    }
}
