//! Reading a role's TOML config file, with one error type for every role.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a role's config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid config.
    #[error("config file {path} is invalid: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A value is out of range.
    #[error("config file {path}: {field} {reason}")]
    Range {
        /// The file.
        path: PathBuf,
        /// The setting.
        field: &'static str,
        /// What it must be.
        reason: &'static str,
    },
}

impl ConfigError {
    /// `field` of the file at `path` is out of range: it must be as `reason` says.
    pub fn range(path: &Path, field: &'static str, reason: &'static str) -> Self {
        ConfigError::Range {
            path: path.to_owned(),
            field,
            reason,
        }
    }
}

/// Why a role's Bitcoin JSON-RPC password cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The file cannot be read.
    #[error("cannot read the bitcoin rpc password file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Neither a file nor the environment variable gives one.
    #[error("no bitcoin rpc password: set bitcoin.rpc_password_file or {env}")]
    Missing {
        /// The variable that was looked at.
        env: &'static str,
    },
}

/// The `[bitcoin]` table of a role's config: Bitcoin Core's (or `fiamma regtest`'s) JSON-RPC.
/// The password is never in the file: see [`BitcoinRpc::password`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitcoinRpc {
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// JSON-RPC user.
    pub rpc_user: String,
    /// A file holding the password (else the role's environment variable).
    pub rpc_password_file: Option<PathBuf>,
}

impl BitcoinRpc {
    /// The password: the first line of `rpc_password_file`, else the variable `env`.
    ///
    /// # Errors
    /// [`PasswordError`].
    pub fn password(&self, env: &'static str) -> Result<String, PasswordError> {
        rpc_password(self.rpc_password_file.as_deref(), env)
    }
}

/// A role's Bitcoin JSON-RPC password: the first line of `file` when the config names one,
/// else the environment variable `env`. The config file itself never holds it, so it can be
/// shared or committed without the secret.
///
/// # Errors
/// [`PasswordError`].
pub fn rpc_password(file: Option<&Path>, env: &'static str) -> Result<String, PasswordError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| PasswordError::File {
            path: path.to_owned(),
            source,
        })?;
        return Ok(text.lines().next().unwrap_or("").to_owned());
    }
    std::env::var(env).map_err(|_| PasswordError::Missing { env })
}

/// Checks the timing settings every role has: `poll_interval_ms` (10 ms to 1 h) and
/// `call_timeout_ms` (100 ms to 10 min).
///
/// # Errors
/// [`ConfigError::Range`] naming the setting.
pub fn check_timing(
    path: &Path,
    poll_interval_ms: u64,
    call_timeout_ms: u64,
) -> Result<(), ConfigError> {
    if !(10..=3_600_000).contains(&poll_interval_ms) {
        return Err(ConfigError::range(
            path,
            "poll_interval_ms",
            "must be between 10 and 3600000",
        ));
    }
    if !(100..=600_000).contains(&call_timeout_ms) {
        return Err(ConfigError::range(
            path,
            "call_timeout_ms",
            "must be between 100 and 600000",
        ));
    }
    Ok(())
}

/// Makes each relative path in `paths` relative to the folder of the config file at `path`.
pub fn resolve_paths<'a>(path: &Path, paths: impl IntoIterator<Item = &'a mut PathBuf>) {
    let base = path.parent().unwrap_or(Path::new("."));
    for p in paths {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
}

/// Reads and parses the TOML file at `path` (range checks are the caller's).
///
/// # Errors
/// [`ConfigError::Read`] or [`ConfigError::Parse`].
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        reason: e.message().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_out_of_range_is_named() {
        let path = Path::new("/etc/fiamma/role.toml");
        assert!(check_timing(path, 10, 100).is_ok());
        let poll = check_timing(path, 9, 100).expect_err("too short a poll");
        assert!(poll.to_string().contains("poll_interval_ms"), "{poll}");
        let call = check_timing(path, 1000, 600_001).expect_err("too long a timeout");
        assert!(call.to_string().contains("call_timeout_ms"), "{call}");
    }

    #[test]
    fn the_rpc_password_comes_from_its_file_else_the_environment() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\nignored\n").expect("write");
        let env = "FIAMMA_ROLE_CONFIG_TEST_RPC_PASSWORD";
        std::env::set_var(env, "from-env");
        assert_eq!(rpc_password(Some(&file), env).expect("file"), "s3cret");
        assert_eq!(rpc_password(None, env).expect("env"), "from-env");
        std::env::remove_var(env);
        let missing = rpc_password(None, env).expect_err("neither");
        assert!(missing.to_string().contains(env), "{missing}");
        let unreadable = rpc_password(Some(&dir.path().join("absent")), env).expect_err("no file");
        assert!(unreadable.to_string().contains("absent"), "{unreadable}");
    }

    #[test]
    fn relative_paths_are_taken_from_the_config_folder() {
        let mut relative = PathBuf::from("keys/role.age");
        let mut absolute = PathBuf::from("/var/lib/role.age");
        resolve_paths(
            Path::new("/etc/fiamma/role.toml"),
            [&mut relative, &mut absolute],
        );
        assert_eq!(relative, Path::new("/etc/fiamma/keys/role.age"));
        assert_eq!(absolute, Path::new("/var/lib/role.age"));
    }
}
