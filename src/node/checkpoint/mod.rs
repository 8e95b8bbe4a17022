//! Bitcoin-checked checkpoints in the node (`CHECKPOINTS.md`, proposed `PROTOCOL.md` §13),
//! over the pure core of `fiamma_finality::checkpoint`:
//!
//! - a genesis output is registered once ([`genesis`]): a k-deep output of value V paying
//!   round h₀'s checkpoint output, h₀ the first round from `genesis_round` with a set;
//! - when a round closes, the node decides whether it is a checkpoint round (scheduled every
//!   N rounds, or a rotation round) and builds its candidate on the base ([`close`]);
//! - verifiers sign the candidate's M; each checkpoint vote counts as the verifier's vote on
//!   the round, and a second message for the round (its §10 vote message) is equivocation
//!   ([`votes`]);
//! - the round is final by §10's tally over its power table and complete when the base set's
//!   signed weight reaches T; then the signed candidate is its certificate in the one form
//!   Bitcoin checks ([`close::tally_checkpoint_rounds`]);
//! - the node follows the chain on Bitcoin with the reader and moves the base to each
//!   k-deep checkpoint it finds ([`follow`]).
//!
//! Everything is written under the finality module's lock order (see
//! [`crate::node::finality`]): the finality state row first, then the verifier's row.

pub mod close;
pub mod errors;
pub mod follow;
pub mod genesis;
pub mod queries;
pub mod source;
pub mod store;
pub mod votes;

use std::sync::Arc;

use bitcoin::Amount;
use fiamma_finality::checkpoint::{
    CheckpointParams, CheckpointParamsError, CheckpointRules, RecoveryLeaf, ScriptParseError,
};
use fiamma_staking::params::Params;

use crate::btc::Backend;

/// The `[checkpoint]` settings of a node (§13.1), before they meet the staking params.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// The earliest round the genesis may encode (h₀ is the first closed round from it on
    /// with a non-empty active set).
    pub genesis_round: u64,
    /// V.
    pub value: Amount,
    /// N.
    pub interval_rounds: u64,
    /// R; `None` takes U/2.
    pub recovery_blocks: Option<u32>,
}

/// The checkpoint rules a node runs with: its settings checked against the staking params.
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    /// h₀.
    pub genesis_round: u64,
    /// V.
    pub value: Amount,
    /// The round-kind rules (N and the rotation spacing, `vote_expiry`).
    pub rules: CheckpointRules,
    /// The recovery leaf of every checkpoint output: the covenant committee after R.
    pub recovery: RecoveryLeaf,
    /// R.
    pub recovery_blocks: u32,
    /// k: confirmations before a checkpoint is the base.
    pub confirmation_depth: u32,
}

/// Why checkpoint settings do not fit the staking params.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointSettingsError {
    /// A §13.1 rule.
    #[error("[checkpoint]: {0}")]
    Params(#[from] CheckpointParamsError),
    /// h₀ = 0 (rounds are numbered from 1).
    #[error("[checkpoint] genesis_round must be at least 1")]
    GenesisRound,
    /// The covenant committee does not make a recovery leaf.
    #[error("[checkpoint]: the covenant committee does not make a recovery leaf: {0}")]
    Recovery(#[from] ScriptParseError),
}

impl CheckpointSettingsError {
    /// The `[checkpoint]` key to fix (or the staking param that does not allow checkpoints).
    pub fn key(&self) -> &'static str {
        match self {
            CheckpointSettingsError::Params(CheckpointParamsError::Value(_)) => "value_sat",
            CheckpointSettingsError::Params(CheckpointParamsError::Interval) => "interval_rounds",
            CheckpointSettingsError::Params(CheckpointParamsError::RecoveryBlocks { .. }) => {
                "recovery_blocks"
            }
            CheckpointSettingsError::Params(CheckpointParamsError::MaxActiveVerifiers(_)) => {
                "max_active_verifiers"
            }
            CheckpointSettingsError::GenesisRound => "genesis_round",
            CheckpointSettingsError::Recovery(_) => "covenant_pks",
        }
    }
}

impl CheckpointSettings {
    /// Resolves `config` against the latest staking params (`params`: covenant committee,
    /// k, U, `max_active_verifiers`) and the finality `vote_expiry`.
    ///
    /// # Errors
    /// [`CheckpointSettingsError`] naming the first rule broken (§13.1).
    pub fn new(
        config: &CheckpointConfig,
        params: &Params,
        vote_expiry: u64,
    ) -> Result<Self, CheckpointSettingsError> {
        if config.genesis_round == 0 {
            return Err(CheckpointSettingsError::GenesisRound);
        }
        let recovery_blocks = config
            .recovery_blocks
            .unwrap_or(params.unbonding_time_blocks / 2);
        CheckpointParams {
            genesis: bitcoin::OutPoint::null(),
            genesis_round: config.genesis_round,
            value: config.value,
            interval_rounds: config.interval_rounds,
            recovery_blocks,
        }
        .validate(
            params.btc_confirmation_depth,
            params.unbonding_time_blocks,
            params.max_active_verifiers,
        )?;
        Ok(CheckpointSettings {
            genesis_round: config.genesis_round,
            value: config.value,
            rules: CheckpointRules {
                interval_rounds: config.interval_rounds,
                vote_expiry,
            },
            recovery: RecoveryLeaf::new(
                &params.covenant_pks,
                params.covenant_quorum,
                recovery_blocks,
            )?,
            recovery_blocks,
            confirmation_depth: params.btc_confirmation_depth,
        })
    }
}

/// Checkpoints as the finality module runs them: the settings and the Bitcoin backend the
/// genesis is checked on and the chain is followed on.
#[derive(Clone)]
pub struct Checkpoints {
    /// The settings.
    pub settings: Arc<CheckpointSettings>,
    /// The Bitcoin backend.
    pub backend: Arc<dyn Backend>,
}
