//! The staker role: a persistent BDK wallet ([`fiamma_wallet`]) that stakes with one
//! verifier through the pre-approval flow of PROTOCOL §8, unbonds and withdraws.
//!
//! - [`plan`]: pure: the terms check, the PSBTs the staker's key signs for one stake (funding,
//!   both slashing pre-signatures, the unbonding signature, the BIP-322 proof of possession),
//!   the registration assembled from them and checked with `validate_delegation`, and the
//!   unbonding and withdrawal transactions.
//! - [`store`]: the staker's local store: each delegation it created and the step it reached;
//! - [`staker`]: the component (`new`, `step`, `run`) and the owner's requests.

pub mod config;
pub mod daemon;
pub mod plan;
pub mod service;
pub mod staker;
pub mod store;
