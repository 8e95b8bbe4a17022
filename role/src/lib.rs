//! What every role program (covenant member, verifier, staker, slasher) shares:
//!
//! - [`config`]: reading a role's TOML config, one error type;
//! - [`keystore`]: the role's BTC key, encrypted at rest in a standard format (age, scrypt);
//! - [`passphrase`]: where the keystore passphrase comes from (file, environment, terminal);
//! - [`store`]: the role's local store (SQLite by default, PostgreSQL as an option), migrated
//!   by the role itself;
//! - [`daemon`]: the daemon's shutdown signal, health and metrics endpoint;
//! - [`component`]: the daemon loop every role runs.

pub mod component;
pub mod config;
pub mod daemon;
pub mod keystore;
pub mod passphrase;
pub mod store;

pub use age::secrecy::SecretString;
