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
