//! The persistent BDK wallet of fiamma's stakers (and later its sequencer).
//!
//! - [`keys`]: where the wallet's keys come from: a BIP-39 mnemonic (BIP-86 taproot
//!   descriptors) or imported descriptors (watch-only when public), and the secret's encrypted
//!   file in the keystore format of `fiamma-role` (age, scrypt);
//! - [`store`]: BDK's persister traits over sqlx (SQLite by default, PostgreSQL as an option);
//! - [`wallet`]: the wallet itself: addresses, balance, sync over Bitcoin Core's JSON-RPC
//!   (`bdk_bitcoind_rpc`), payments as PSBTs, signing and finalizing;
//! - [`psbt`]: what an external signer needs to sign a taproot script-path spend (leaf scripts,
//!   control blocks, key origins), and reading its signatures back.

pub mod keys;
pub mod psbt;
pub mod store;
pub mod wallet;

pub use keys::{KeyOrigin, KeysError, WalletKeys};
pub use store::{BlockingWalletStore, WalletStore, WalletStoreError};
pub use wallet::{Wallet, WalletError};
