//! Babylon-compatible Bitcoin staking: scripts, outputs, transactions, parameters and the rules
//! that check a delegation (`PROTOCOL.md` §1–4, §6–8).
//!
//! Everything here is pure: values in, values or typed errors out. No I/O, no clock.
//!
//! Where to start:
//! - building blocks: [`keys`] (x-only keys, [`keys::StakingKeys`]), [`script`] (the three
//!   leaves), [`taproot`] (staking, unbonding and slashing change outputs, control blocks);
//! - transactions: [`staking_tx`] and [`identifiable`] (recognising a staking transaction),
//!   [`unbonding`], [`slashing`] (with [`rate::SlashingRate`]), [`spend`] (their shared input
//!   rules);
//! - signing: [`sighash`] (BIP-0341 tapscript sighash, BIP-0340 sign/verify), [`witness`]
//!   (witness assembly for every path), [`pop`] and [`bip322`] (proof of possession),
//!   [`bip340`] (the challenge and mod-n reduction the covenant and finality crates' own
//!   Schnorr schemes share);
//! - registration: [`params`] (versioned by BTC height), [`registration`] (what a staker
//!   submits, and how to build it), [`delegation::validate_delegation`] (every rule, shared by
//!   the node, the covenant daemon and the staker).

pub mod account;
pub mod bip322;
pub mod bip340;
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
