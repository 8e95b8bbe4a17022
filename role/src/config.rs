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
