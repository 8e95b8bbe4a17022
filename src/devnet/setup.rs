//! The devnet's fixed world: every party's keys (derived from public labels, so each run is
//! the same network and nothing here is a secret worth keeping), the staking parameters, the
//! signing contexts and the finality settings.

use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Keypair, SecretKey, XOnlyPublicKey, SECP256K1};
use bitcoin::{Address, Amount, Network, ScriptBuf};
use fiamma_finality::rounds::LivenessRules;
use fiamma_staking::context::SigningContexts;
use fiamma_staking::params::{Params, ParamsVersions};
use fiamma_staking::rate::SlashingRate;

use super::error::DevnetError;
use crate::node::checkpoint::CheckpointConfig;
use crate::node::config::FinalityConfig;

/// Chain id of the signing contexts.
pub const CHAIN_ID: &str = "fiamma-devnet";
/// Module address of the signing contexts.
pub const MODULE_ADDRESS: &str = "fmma-devnet-staking";
/// Covenant committee size.
pub const COVENANT_MEMBERS: u32 = 5;
/// Covenant quorum.
pub const COVENANT_QUORUM: u32 = 3;
/// Confirmations (k) before a staking transaction counts.
pub const CONFIRMATION_DEPTH: u32 = 2;
/// Staking time T of every devnet stake, in blocks: long enough for the whole story.
pub const STAKING_TIME: u32 = 150;
/// Unbonding time U, in blocks (long enough for a checkpoint recovery leaf: 2k ≤ R ≤ U/2).
pub const UNBONDING_TIME: u32 = 10;
/// N: a scheduled checkpoint round every this many rounds (once a genesis is registered).
pub const CHECKPOINT_INTERVAL: u64 = 5;
/// R: blocks after which the covenant committee may spend a checkpoint output.
pub const CHECKPOINT_RECOVERY: u32 = 5;
/// V: the value of every checkpoint output.
pub const CHECKPOINT_VALUE: Amount = Amount::from_sat(1_000);
/// The exact unbonding fee.
pub const UNBONDING_FEE: Amount = Amount::from_sat(2_000);
/// Fee of each slashing transaction.
pub const SLASHING_FEE: Amount = Amount::from_sat(2_000);
/// Share of a stake a slashing transaction burns, in ten-thousandths (10%).
pub const SLASHING_RATE_BPS: u16 = 1_000;
/// Randomness values each verifier commits to at once.
pub const PUB_RAND_PER_COMMIT: u64 = 1_000;
/// Least randomness values per commitment.
pub const MIN_PUB_RAND: u64 = 100;
/// Between two polls of the chain by the node's follower.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(150);

/// The verifiers' names, in order.
pub const VERIFIER_NAMES: [&str; 4] = ["A", "B", "C", "D"];
/// The verifier that equivocates.
pub const EQUIVOCATOR: usize = 2;
/// Each staker's stake: (verifier index, value). The stakes are uneven so that the voting
/// power table says something, and the verifiers other than the equivocator hold more than
/// two thirds of the power on their own, so rounds stay final after it is slashed.
pub const STAKES: [(usize, Amount); 4] = [
    (0, Amount::from_sat(300_000_000)),
    (1, Amount::from_sat(250_000_000)),
    (2, Amount::from_sat(100_000_000)),
    (3, Amount::from_sat(150_000_000)),
];
/// The staker that unbonds (its verifier is honest).
pub const UNBONDER: usize = 3;

/// A secret key derived from a public label: `sha256("fiamma devnet/" ‖ label)`, hashed again
/// in the (never seen) case that it is not a valid scalar.
pub fn devnet_secret(label: &str) -> SecretKey {
    let mut digest = sha256::Hash::hash(format!("fiamma devnet/{label}").as_bytes());
    loop {
        if let Ok(sk) = SecretKey::from_slice(digest.as_byte_array()) {
            return sk;
        }
        digest = sha256::Hash::hash(digest.as_byte_array());
    }
}

/// The key pair of a devnet label.
pub fn devnet_keypair(label: &str) -> Keypair {
    Keypair::from_secret_key(SECP256K1, &devnet_secret(label))
}

/// 32 seed bytes of a devnet wallet.
pub fn wallet_seed(label: &str) -> [u8; 32] {
    devnet_secret(&format!("wallet/{label}")).secret_bytes()
}

/// Covenant member `i` (0-based).
pub fn covenant_keypair(i: u32) -> Keypair {
    devnet_keypair(&format!("covenant/{i}"))
}

/// Where slashed funds go: a P2TR address of the devnet's slashing pool.
pub fn slashing_address() -> Address {
    let (key, _) = devnet_keypair("slashing-pool").x_only_public_key();
    Address::p2tr(SECP256K1, key, None, Network::Regtest)
}

/// Where mined coinbases go once the parties are funded.
pub fn miner_script() -> ScriptBuf {
    let (key, _) = devnet_keypair("miner").x_only_public_key();
    Address::p2tr(SECP256K1, key, None, Network::Regtest).script_pubkey()
}

/// The covenant committee's keys.
pub fn covenant_keys() -> Vec<XOnlyPublicKey> {
    (0..COVENANT_MEMBERS)
        .map(|i| covenant_keypair(i).x_only_public_key().0)
        .collect()
}

/// The one params version of the devnet.
///
/// # Errors
/// [`DevnetError::Refused`] if the constants above break a rule of §7.
pub fn params() -> Result<Params, DevnetError> {
    let refused = |e: &dyn std::fmt::Display| DevnetError::refused("devnet params", e);
    Ok(Params {
        covenant_pks: covenant_keys(),
        covenant_quorum: COVENANT_QUORUM,
        min_staking_value_sat: 100_000,
        max_staking_value_sat: 1_000_000_000,
        min_staking_time_blocks: 10,
        max_staking_time_blocks: 10_000,
        slashing_pk_script: slashing_address().script_pubkey(),
        min_slashing_tx_fee_sat: 1_000,
        slashing_rate: SlashingRate::from_ten_thousandths(SLASHING_RATE_BPS)
            .map_err(|e| refused(&e))?,
        unbonding_time_blocks: UNBONDING_TIME,
        unbonding_fee_sat: UNBONDING_FEE.to_sat(),
        btc_confirmation_depth: CONFIRMATION_DEPTH,
        max_active_verifiers: 100,
        min_pub_rand: MIN_PUB_RAND,
        identifiable_staking_tag: None,
        btc_activation_height: 0,
        max_verifiers_per_delegation: 1,
        limits: fiamma_staking::params::ResourceLimits::default(),
    })
}

/// The params versions the node runs with.
///
/// # Errors
/// [`DevnetError::Refused`] if the params are invalid.
pub fn params_versions() -> Result<ParamsVersions, DevnetError> {
    ParamsVersions::new(vec![params()?]).map_err(|e| DevnetError::refused("devnet params", e))
}

/// The signing contexts every party uses.
pub fn contexts() -> SigningContexts {
    SigningContexts::new(CHAIN_ID, MODULE_ADDRESS)
}

/// The node's finality settings: rounds every `round_interval`, the default vote expiry and
/// liveness rules, and checkpoints.
///
/// # Errors
/// [`DevnetError::Refused`] if the liveness rules are invalid.
pub fn finality_config(round_interval: Duration) -> Result<FinalityConfig, DevnetError> {
    Ok(FinalityConfig {
        round_interval,
        vote_expiry: 10,
        max_start_ahead: PUB_RAND_PER_COMMIT,
        liveness: LivenessRules::new(100, 50, 100)
            .map_err(|e| DevnetError::refused("devnet liveness rules", e))?,
        proof_retention_rounds: crate::node::config::DEFAULT_PROOF_RETENTION_ROUNDS,
        // The genesis encodes the first round with stake; checkpoint rounds start once the
        // story registers it.
        checkpoint: Some(CheckpointConfig {
            genesis_round: 1,
            value: CHECKPOINT_VALUE,
            interval_rounds: CHECKPOINT_INTERVAL,
            recovery_blocks: Some(CHECKPOINT_RECOVERY),
        }),
    })
}

/// A key in the short form the story prints: the first 8 hex digits.
pub fn short(key: &XOnlyPublicKey) -> String {
    key.serialize()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_devnet_params_are_valid_and_keys_distinct() {
        let p = params().expect("valid constants");
        p.validate().expect("valid params");
        let mut keys = covenant_keys();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), COVENANT_MEMBERS as usize);
        let verifier = devnet_keypair("verifier/A").x_only_public_key().0;
        assert!(!keys.contains(&verifier));
        // The equivocator's stake is less than a third of the total.
        let total: u64 = STAKES.iter().map(|(_, v)| v.to_sat()).sum();
        let honest: u64 = STAKES
            .iter()
            .filter(|(i, _)| *i != EQUIVOCATOR)
            .map(|(_, v)| v.to_sat())
            .sum();
        assert!(honest * 3 > total * 2);
    }
}
