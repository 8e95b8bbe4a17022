//! The encrypted keystore of a role's BTC key.
//!
//! A keystore is two files side by side:
//! - `NAME.age`: an ASCII-armored [age](https://age-encryption.org/v1) file encrypted with a
//!   passphrase (age's scrypt recipient), whose plaintext is a small JSON document
//!   `{"version":1,"role":"covenant","secret_key":"<64 hex>"}`. Anyone can back it up and open
//!   it with the `age` or `rage` command-line tools (`age -d NAME.age`).
//! - `NAME.pub`: the plain JSON `{"version":1,"role":"covenant","public_key":"<x-only hex>"}`,
//!   so the key can be shown and configured without the passphrase.
//!
//! Opening checks that the decrypted secret belongs to the public key on disk. The secret key
//! never appears in an error, a log line or a `Debug` output of this module's types.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::secrecy::{ExposeSecret, SecretString};
use bitcoin::secp256k1::{Keypair, SecretKey, XOnlyPublicKey, SECP256K1};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The keystore format version.
pub const KEYSTORE_VERSION: u32 = 1;
/// The scrypt work factor (log2 N) of new keystores: about a second on a current machine,
/// as age itself picks.
pub const DEFAULT_WORK_FACTOR: u8 = 18;
/// The least work factor accepted for a new keystore.
pub const MIN_WORK_FACTOR: u8 = 10;
/// The largest work factor accepted when opening (N = 2^22 takes several seconds and 4 GiB).
pub const MAX_WORK_FACTOR: u8 = 22;
/// Largest keystore file read.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Why a keystore cannot be created or opened. No variant carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// Creating would overwrite an existing keystore.
    #[error("keystore {0} already exists; move it away first, nothing was written")]
    Exists(PathBuf),
    /// A file cannot be read or written.
    #[error("keystore file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The passphrase does not open the keystore.
    #[error("wrong passphrase for keystore {0}")]
    WrongPassphrase(PathBuf),
    /// The file is not a keystore of this format.
    #[error("keystore file {path} is not a valid keystore: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The keystore holds a key of another role.
    #[error("keystore {path} holds a {found} key, not a {expected} key")]
    WrongRole {
        /// The file.
        path: PathBuf,
        /// The role asked for.
        expected: String,
        /// The role recorded.
        found: String,
    },
    /// The secret does not belong to the public key recorded beside it.
    #[error("keystore {0}: the secret key does not match the public key file")]
    Mismatch(PathBuf),
    /// An empty passphrase, or a work factor out of range.
    #[error("{0}")]
    Refused(&'static str),
}

/// The public half of a keystore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyFile {
    /// Format version.
    pub version: u32,
    /// Which role's key.
    pub role: String,
    /// The x-only BTC key.
    pub public_key: XOnlyPublicKey,
}

#[derive(Serialize, Deserialize)]
struct SecretDocument {
    version: u32,
    role: String,
    secret_key: String,
}

/// A keystore on disk, named by its `.age` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keystore {
    secret_path: PathBuf,
    public_path: PathBuf,
    role: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, KeystoreError> {
    let file = fs::File::open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(KeystoreError::Invalid {
            path: path.to_owned(),
            reason: format!("larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    Ok(bytes)
}

/// Writes `bytes` to a new file at `path` (never replacing one), readable by the owner only,
/// and syncs it.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => KeystoreError::Exists(path.to_owned()),
        _ => io(path)(e),
    })?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

impl Keystore {
    /// The keystore of `role` at `path` (the `.age` file; the public key file is beside it
    /// with the extension `.pub`).
    pub fn at(path: impl Into<PathBuf>, role: &str) -> Self {
        let secret_path = path.into();
        let public_path = secret_path.with_extension("pub");
        Keystore {
            secret_path,
            public_path,
            role: role.to_owned(),
        }
    }

    /// The encrypted file.
    pub fn secret_path(&self) -> &Path {
        &self.secret_path
    }

    /// The public key file.
    pub fn public_path(&self) -> &Path {
        &self.public_path
    }

    /// Writes `secret` encrypted with `passphrase` at scrypt work factor `work_factor`, and
    /// its public key beside it. Refuses to overwrite either file.
    ///
    /// # Errors
    /// [`KeystoreError::Exists`], [`KeystoreError::Io`], or [`KeystoreError::Refused`] for an
    /// empty passphrase or a work factor outside `MIN_WORK_FACTOR..=MAX_WORK_FACTOR`.
    pub fn create(
        &self,
        secret: &SecretKey,
        passphrase: &SecretString,
        work_factor: u8,
    ) -> Result<XOnlyPublicKey, KeystoreError> {
        check_new_secret(passphrase, work_factor)?;
        for path in [&self.secret_path, &self.public_path] {
            if path.exists() {
                return Err(KeystoreError::Exists(path.clone()));
            }
        }
        let public_key = secret.x_only_public_key(SECP256K1).0;
        let document = Zeroizing::new(
            serde_json::to_vec(&SecretDocument {
                version: KEYSTORE_VERSION,
                role: self.role.clone(),
                secret_key: hex::encode(secret.secret_bytes()),
            })
            .map_err(|e| KeystoreError::Invalid {
                path: self.secret_path.clone(),
                reason: e.to_string(),
            })?,
        );
        write_sealed(&self.secret_path, &document, passphrase, work_factor)?;
        let public = PublicKeyFile {
            version: KEYSTORE_VERSION,
            role: self.role.clone(),
            public_key,
        };
        let mut text =
            serde_json::to_string_pretty(&public).map_err(|e| KeystoreError::Invalid {
                path: self.public_path.clone(),
                reason: e.to_string(),
            })?;
        text.push('\n');
        write_new(&self.public_path, text.as_bytes())?;
        Ok(public_key)
    }

    /// The public key, read from the public key file (no passphrase needed).
    ///
    /// # Errors
    /// [`KeystoreError::Io`], [`KeystoreError::Invalid`] or [`KeystoreError::WrongRole`].
    pub fn public_key(&self) -> Result<XOnlyPublicKey, KeystoreError> {
        let bytes = read_bounded(&self.public_path)?;
        let file: PublicKeyFile =
            serde_json::from_slice(&bytes).map_err(|e| KeystoreError::Invalid {
                path: self.public_path.clone(),
                reason: e.to_string(),
            })?;
        self.check_role(&self.public_path, &file.role)?;
        Ok(file.public_key)
    }

    /// Decrypts the key with `passphrase` and checks it against the public key file.
    ///
    /// # Errors
    /// [`KeystoreError::WrongPassphrase`], [`KeystoreError::Mismatch`], and the errors of
    /// reading either file.
    pub fn open(&self, passphrase: &SecretString) -> Result<Keypair, KeystoreError> {
        let expected = self.public_key()?;
        let invalid = |reason: String| KeystoreError::Invalid {
            path: self.secret_path.clone(),
            reason,
        };
        let plaintext = read_sealed(&self.secret_path, passphrase)?;
        let document: SecretDocument = serde_json::from_slice(&plaintext)
            .map_err(|_| invalid("the decrypted document is not a keystore document".into()))?;
        let SecretDocument {
            version,
            role,
            secret_key,
        } = document;
        let secret_hex = Zeroizing::new(secret_key);
        if version != KEYSTORE_VERSION {
            return Err(invalid(format!(
                "format version {version} is not {KEYSTORE_VERSION}"
            )));
        }
        self.check_role(&self.secret_path, &role)?;
        let bytes = Zeroizing::new(
            hex::decode(secret_hex.as_bytes())
                .map_err(|_| invalid("the secret key is not hex".into()))?,
        );
        let secret = SecretKey::from_slice(&bytes)
            .map_err(|_| invalid("the secret key is not a valid secp256k1 key".into()))?;
        let keypair = Keypair::from_secret_key(SECP256K1, &secret);
        if keypair.x_only_public_key().0 != expected {
            return Err(KeystoreError::Mismatch(self.secret_path.clone()));
        }
        Ok(keypair)
    }

    fn check_role(&self, path: &Path, found: &str) -> Result<(), KeystoreError> {
        if found == self.role {
            Ok(())
        } else {
            Err(KeystoreError::WrongRole {
                path: path.to_owned(),
                expected: self.role.clone(),
                found: found.to_owned(),
            })
        }
    }
}

fn check_new_secret(passphrase: &SecretString, work_factor: u8) -> Result<(), KeystoreError> {
    if passphrase.expose_secret().is_empty() {
        return Err(KeystoreError::Refused("the passphrase is empty"));
    }
    if !(MIN_WORK_FACTOR..=MAX_WORK_FACTOR).contains(&work_factor) {
        return Err(KeystoreError::Refused(
            "the scrypt work factor must be between 10 and 22",
        ));
    }
    Ok(())
}

/// Writes `plaintext` to a new file at `path` (never replacing one, owner-only), encrypted
/// with `passphrase` in the keystore's format: ASCII-armored age with an scrypt recipient at
/// `work_factor`. For secrets other than one key, such as a wallet's mnemonic; the keystore
/// writes its own document with it.
///
/// # Errors
/// [`KeystoreError::Exists`], [`KeystoreError::Io`], or [`KeystoreError::Refused`] for an
/// empty passphrase or a work factor outside `MIN_WORK_FACTOR..=MAX_WORK_FACTOR`.
pub fn write_sealed(
    path: &Path,
    plaintext: &[u8],
    passphrase: &SecretString,
    work_factor: u8,
) -> Result<(), KeystoreError> {
    check_new_secret(passphrase, work_factor)?;
    let ciphertext = encrypt(plaintext, passphrase, work_factor).map_err(io(path))?;
    write_new(path, &ciphertext)
}

/// Reads and decrypts a file written by [`write_sealed`] (or a keystore's `.age` file).
///
/// # Errors
/// [`KeystoreError::WrongPassphrase`], [`KeystoreError::Io`], or [`KeystoreError::Invalid`]
/// when the file is not an age file of this format.
pub fn read_sealed(
    path: &Path,
    passphrase: &SecretString,
) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
    let ciphertext = read_bounded(path)?;
    decrypt(&ciphertext, passphrase).map_err(|e| match e {
        age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
            KeystoreError::WrongPassphrase(path.to_owned())
        }
        other => KeystoreError::Invalid {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    })
}

fn encrypt(
    plaintext: &[u8],
    passphrase: &SecretString,
    work_factor: u8,
) -> Result<Vec<u8>, std::io::Error> {
    let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
    recipient.set_work_factor(work_factor);
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor)?;
    let mut writer = encryptor.wrap_output(armor)?;
    writer.write_all(plaintext)?;
    writer.finish()?.finish()?;
    Ok(out)
}

fn decrypt(
    ciphertext: &[u8],
    passphrase: &SecretString,
) -> Result<Zeroizing<Vec<u8>>, age::DecryptError> {
    let decryptor = age::Decryptor::new(ArmoredReader::new(ciphertext))?;
    let mut identity = age::scrypt::Identity::new(passphrase.clone());
    identity.set_max_work_factor(MAX_WORK_FACTOR);
    let mut reader = decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))?;
    let mut plaintext = Zeroizing::new(Vec::new());
    reader.read_to_end(&mut plaintext)?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn secret() -> SecretKey {
        SecretKey::from_slice(&[0x4b; 32]).expect("valid")
    }

    #[test]
    fn a_created_keystore_opens_with_its_passphrase_only() {
        let dir = tempfile::tempdir().expect("dir");
        let ks = Keystore::at(dir.path().join("member.age"), "covenant");
        let public = ks
            .create(&secret(), &pass("correct horse"), MIN_WORK_FACTOR)
            .expect("created");
        assert_eq!(ks.public_key().expect("public"), public);
        let keypair = ks.open(&pass("correct horse")).expect("opens");
        assert_eq!(keypair.secret_key(), secret());
        let wrong = ks
            .open(&pass("battery staple"))
            .expect_err("wrong passphrase");
        assert!(
            matches!(wrong, KeystoreError::WrongPassphrase(_)),
            "{wrong}"
        );
        assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");
    }

    #[test]
    fn the_files_hold_no_encoding_of_the_secret() {
        let dir = tempfile::tempdir().expect("dir");
        let ks = Keystore::at(dir.path().join("k.age"), "covenant");
        ks.create(&secret(), &pass("p"), MIN_WORK_FACTOR)
            .expect("created");
        let raw = secret().secret_bytes();
        let encodings: Vec<Vec<u8>> = vec![
            raw.to_vec(),
            hex::encode(raw).into_bytes(),
            hex::encode_upper(raw).into_bytes(),
            base64_of(&raw).into_bytes(),
        ];
        for path in [ks.secret_path(), ks.public_path()] {
            let file = fs::read(path).expect("read");
            for e in &encodings {
                assert!(
                    !file.windows(e.len()).any(|w| w == e.as_slice()),
                    "{} holds the secret",
                    path.display()
                );
            }
        }
        let text = fs::read_to_string(ks.secret_path()).expect("armored text");
        assert!(text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    }

    fn base64_of(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        bytes
            .chunks(3)
            .flat_map(|c| {
                let n = (u32::from(c[0]) << 16)
                    | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                    | u32::from(*c.get(2).unwrap_or(&0));
                let chars = c.len() + 1;
                (0..4).map(move |i| {
                    if i < chars {
                        ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
                    } else {
                        '='
                    }
                })
            })
            .collect()
    }

    #[test]
    fn create_never_overwrites_and_refuses_bad_settings() {
        let dir = tempfile::tempdir().expect("dir");
        let ks = Keystore::at(dir.path().join("k.age"), "covenant");
        assert!(matches!(
            ks.create(&secret(), &pass(""), MIN_WORK_FACTOR),
            Err(KeystoreError::Refused(_))
        ));
        assert!(matches!(
            ks.create(&secret(), &pass("p"), 9),
            Err(KeystoreError::Refused(_))
        ));
        ks.create(&secret(), &pass("p"), MIN_WORK_FACTOR)
            .expect("created");
        let before = fs::read(ks.secret_path()).expect("read");
        let other = SecretKey::from_slice(&[7; 32]).expect("valid");
        assert!(matches!(
            ks.create(&other, &pass("p"), MIN_WORK_FACTOR),
            Err(KeystoreError::Exists(_))
        ));
        assert_eq!(fs::read(ks.secret_path()).expect("read"), before);
    }

    #[test]
    fn another_roles_key_or_a_swapped_public_file_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let ks = Keystore::at(dir.path().join("k.age"), "covenant");
        ks.create(&secret(), &pass("p"), MIN_WORK_FACTOR)
            .expect("created");
        let as_verifier = Keystore::at(ks.secret_path(), "verifier");
        assert!(matches!(
            as_verifier.open(&pass("p")),
            Err(KeystoreError::WrongRole { .. })
        ));
        let other = Keystore::at(dir.path().join("other.age"), "covenant");
        let other_key = SecretKey::from_slice(&[7; 32]).expect("valid");
        other
            .create(&other_key, &pass("p"), MIN_WORK_FACTOR)
            .expect("created");
        fs::copy(other.public_path(), ks.public_path()).expect("swap");
        assert!(matches!(
            ks.open(&pass("p")),
            Err(KeystoreError::Mismatch(_))
        ));
    }

    #[test]
    fn garbage_is_invalid_not_a_wrong_passphrase() {
        let dir = tempfile::tempdir().expect("dir");
        let ks = Keystore::at(dir.path().join("k.age"), "covenant");
        ks.create(&secret(), &pass("p"), MIN_WORK_FACTOR)
            .expect("created");
        fs::write(ks.secret_path(), b"not an age file").expect("write");
        assert!(matches!(
            ks.open(&pass("p")),
            Err(KeystoreError::Invalid { .. })
        ));
    }
}
