//! Where a keystore passphrase comes from: a file, an environment variable, or a prompt on the
//! terminal. Never a command-line argument, which other users of the machine can read.

use std::io::IsTerminal;
use std::path::PathBuf;

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Longest passphrase file read.
const MAX_PASSPHRASE_BYTES: u64 = 4096;

/// Where to read a passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    /// The first line of a file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A prompt on the controlling terminal.
    Prompt,
}

/// Why no passphrase could be read. Never carries the passphrase.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    /// The passphrase file cannot be read.
    #[error("passphrase file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The passphrase file is larger than a passphrase.
    #[error("passphrase file {0} is larger than {MAX_PASSPHRASE_BYTES} bytes")]
    TooLong(PathBuf),
    /// The variable is not set or not UTF-8.
    #[error("environment variable {0} is not set or not valid UTF-8")]
    Env(String),
    /// No terminal to prompt on.
    #[error(
        "no passphrase: pass --passphrase-file or set {0}; standard input is not a terminal to prompt on"
    )]
    NoTerminal(String),
    /// The prompt failed.
    #[error("cannot read the passphrase from the terminal: {0}")]
    Prompt(std::io::Error),
    /// The two entries of a new passphrase differ.
    #[error("the two passphrases differ")]
    Mismatch,
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    Empty,
}

impl PassphraseSource {
    /// The file when given, else the variable `env_var` when set, else the terminal.
    pub fn choose(file: Option<PathBuf>, env_var: &str) -> Self {
        match file {
            Some(path) => PassphraseSource::File(path),
            None if std::env::var_os(env_var).is_some() => {
                PassphraseSource::Env(env_var.to_owned())
            }
            None => PassphraseSource::Prompt,
        }
    }

    /// Reads the passphrase; a prompt shows `prompt`. `env_var` is named in the error when
    /// there is no terminal.
    ///
    /// # Errors
    /// [`PassphraseError`]: the source cannot be read, or yields an empty passphrase.
    pub fn read(&self, prompt: &str, env_var: &str) -> Result<SecretString, PassphraseError> {
        let text = match self {
            PassphraseSource::File(path) => {
                use std::io::Read;
                let file = std::fs::File::open(path).map_err(|source| PassphraseError::File {
                    path: path.clone(),
                    source,
                })?;
                let mut bytes = Zeroizing::new(Vec::new());
                file.take(MAX_PASSPHRASE_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|source| PassphraseError::File {
                        path: path.clone(),
                        source,
                    })?;
                if bytes.len() as u64 > MAX_PASSPHRASE_BYTES {
                    return Err(PassphraseError::TooLong(path.clone()));
                }
                let text =
                    String::from_utf8(bytes.to_vec()).map_err(|_| PassphraseError::File {
                        path: path.clone(),
                        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
                    })?;
                Zeroizing::new(text.lines().next().unwrap_or_default().to_owned())
            }
            PassphraseSource::Env(name) => {
                Zeroizing::new(std::env::var(name).map_err(|_| PassphraseError::Env(name.clone()))?)
            }
            PassphraseSource::Prompt => {
                if !std::io::stdin().is_terminal() {
                    return Err(PassphraseError::NoTerminal(env_var.to_owned()));
                }
                Zeroizing::new(rpassword::prompt_password(prompt).map_err(PassphraseError::Prompt)?)
            }
        };
        if text.is_empty() {
            return Err(PassphraseError::Empty);
        }
        Ok(SecretString::from(text.to_string()))
    }

    /// Reads a new passphrase: on a terminal it is asked twice and both must agree.
    ///
    /// # Errors
    /// As [`PassphraseSource::read`], and [`PassphraseError::Mismatch`].
    pub fn read_new(&self, env_var: &str) -> Result<SecretString, PassphraseError> {
        let first = self.read("New passphrase: ", env_var)?;
        if *self == PassphraseSource::Prompt {
            let again = self.read("Repeat the passphrase: ", env_var)?;
            if again.expose_secret() != first.expose_secret() {
                return Err(PassphraseError::Mismatch);
            }
        }
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gives_its_first_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("pass");
        std::fs::write(&path, "s3cret phrase\nignored\n").expect("write");
        let source = PassphraseSource::choose(Some(path), "FIAMMA_TEST_UNSET_VAR");
        let p = source.read("", "FIAMMA_TEST_UNSET_VAR").expect("read");
        assert_eq!(p.expose_secret(), "s3cret phrase");
    }

    #[test]
    fn an_empty_or_missing_source_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("empty");
        std::fs::write(&path, "\n").expect("write");
        let empty = PassphraseSource::File(path).read("", "V");
        assert!(matches!(empty, Err(PassphraseError::Empty)));
        let missing = PassphraseSource::File(dir.path().join("nope")).read("", "V");
        assert!(matches!(missing, Err(PassphraseError::File { .. })));
        let unset = PassphraseSource::Env("FIAMMA_TEST_UNSET_VAR".into()).read("", "V");
        assert!(matches!(unset, Err(PassphraseError::Env(_))));
    }
}
