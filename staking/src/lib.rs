//! Babylon-compatible Bitcoin staking: scripts, outputs, transactions, parameters and the rules
//! that check a delegation (`PROTOCOL.md` §1–4, §6–8).
//!
//! Everything here is pure: values in, values or typed errors out. No I/O, no clock.

pub mod account;
pub mod bip322;
pub mod context;
pub mod delegation;
pub mod identifiable;
pub mod keys;
pub mod light_client;
pub mod params;
pub mod pop;
pub mod rate;
pub mod registration;
pub mod script;
pub mod sighash;
pub mod slashing;
pub mod spend;
pub mod staking_tx;
pub mod state;
pub mod taproot;
pub mod unbonding;
pub mod witness;

#[cfg(test)]
mod testutil;
