//! The covenant member role: a committee member's daemon that checks every delegation waiting
//! for its signatures with its **own** params and the one validation library, signs it
//! through a [`signer::Signer`], records what it signed before sending it, and submits it to
//! the node.
//!
//! - [`member`]: the component (`new`, `step`, `run`);
//! - [`signer`]: the signing boundary and the keystore signer;
//! - [`store`]: the local store (SQLite or PostgreSQL);
//! - [`config`] and [`daemon`]: `fiamma covenant run`.

pub mod config;
pub mod daemon;
pub mod member;
pub mod signer;
pub mod store;
