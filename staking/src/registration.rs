//! What a staker submits to register a delegation (PROTOCOL §8, pre-approval flow), and how a
//! staker builds it: the unbonding transaction, both slashing transactions and the staker's
//! pre-signatures on the slashing transactions.

use bitcoin::secp256k1::{schnorr, Keypair, XOnlyPublicKey};
use bitcoin::{Amount, OutPoint, TapSighash, Transaction, TxOut};

use crate::account::Account;
use crate::context::SigningContexts;
use crate::keys::{KeyError, StakingKeys};
use crate::params::Params;
use crate::pop::{sign_pop, PopRole, ProofOfPossession};
use crate::sighash::{sign, tapscript_sighash, SighashError};
use crate::slashing::{build_slashing_tx, SlashingTerms, SlashingTxError};
use crate::taproot::{Leaf, TaprootError, TaprootOutput};
use crate::unbonding::{build_unbonding_tx, UnbondingError};

/// A delegation registration as submitted by the staker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The staker's BTC key.
    pub staker_pk: XOnlyPublicKey,
    /// The staker's account on the node, bound by the proof of possession.
    pub staker_account: Account,
    /// Proof of possession of `staker_pk` for `staker_account` (BIP-0340 or BIP-0322).
    pub pop: ProofOfPossession,
    /// The verifier(s) the stake is delegated to.
    pub verifier_pks: Vec<XOnlyPublicKey>,
    /// Staking time `T`, in blocks.
    pub staking_time: u32,
    /// Staked value, in satoshis.
    pub staking_value_sat: u64,
    /// The (unsigned or signed) staking transaction.
    pub staking_tx: Transaction,
    /// Index of the staking output in `staking_tx`.
    pub staking_output_index: u32,
    /// The slashing transaction spending the staking output.
    pub slashing_tx: Transaction,
    /// The staker's BIP-0340 signature on `slashing_tx` (slashing leaf of the staking output).
    pub staker_slashing_sig: schnorr::Signature,
    /// Unbonding time `U`, in blocks.
    pub unbonding_time: u32,
    /// The unbonding transaction.
    pub unbonding_tx: Transaction,
    /// The slashing transaction spending the unbonding output.
    pub unbonding_slashing_tx: Transaction,
    /// The staker's signature on `unbonding_slashing_tx` (slashing leaf of the unbonding output).
    pub staker_unbonding_slashing_sig: schnorr::Signature,
}

/// Why a registration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildRegistrationError {
    /// The key sets are invalid.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// An output could not be built.
    #[error(transparent)]
    Taproot(#[from] TaprootError),
    /// The staking transaction has no output at the given index.
    #[error("staking transaction has no output {index}")]
    StakingOutputIndex {
        /// The index given.
        index: u32,
    },
    /// The unbonding transaction could not be built.
    #[error(transparent)]
    Unbonding(#[from] UnbondingError),
    /// A slashing transaction could not be built.
    #[error(transparent)]
    Slashing(#[from] SlashingTxError),
    /// A sighash could not be computed.
    #[error(transparent)]
    Sighash(#[from] SighashError),
}

/// What the staker decides; everything else follows from the parameters.
#[derive(Debug, Clone)]
pub struct StakerChoices<'a> {
    /// The staker's key pair.
    pub staker: &'a Keypair,
    /// The staker's account.
    pub account: Account,
    /// The verifier(s) to delegate to.
    pub verifier_pks: Vec<XOnlyPublicKey>,
    /// The staking transaction (its staking output must already be in place).
    pub staking_tx: Transaction,
    /// Index of the staking output.
    pub staking_output_index: u32,
    /// Staking time `T`.
    pub staking_time: u32,
    /// Fee of each slashing transaction (at least `min_slashing_tx_fee_sat`).
    pub slashing_fee: Amount,
}

/// What the staker decides, by public key: for a staker whose key signs elsewhere (a
/// wallet's signer, a hardware wallet through PSBTs).
#[derive(Debug, Clone)]
pub struct UnsignedChoices {
    /// The staker's BTC key.
    pub staker_pk: XOnlyPublicKey,
    /// The staker's account.
    pub account: Account,
    /// The verifier(s) to delegate to.
    pub verifier_pks: Vec<XOnlyPublicKey>,
    /// The staking transaction (its staking output must already be in place).
    pub staking_tx: Transaction,
    /// Index of the staking output.
    pub staking_output_index: u32,
    /// Staking time `T`.
    pub staking_time: u32,
    /// Fee of each slashing transaction (at least `min_slashing_tx_fee_sat`).
    pub slashing_fee: Amount,
}

/// A registration before the staker's signatures: every transaction, and what the staker
/// signs (the two slashing sighashes, by the slashing leaves of the staking and unbonding
/// outputs, and the proof of possession).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedRegistration {
    /// The staker's BTC key.
    pub staker_pk: XOnlyPublicKey,
    /// The staker's account.
    pub staker_account: Account,
    /// The verifier(s).
    pub verifier_pks: Vec<XOnlyPublicKey>,
    /// Staking time `T`.
    pub staking_time: u32,
    /// The staking transaction.
    pub staking_tx: Transaction,
    /// Index of the staking output.
    pub staking_output_index: u32,
    /// The staking output.
    pub staking_txout: TxOut,
    /// The slashing transaction spending the staking output.
    pub slashing_tx: Transaction,
    /// Unbonding time `U`.
    pub unbonding_time: u32,
    /// The unbonding transaction.
    pub unbonding_tx: Transaction,
    /// The slashing transaction spending the unbonding output.
    pub unbonding_slashing_tx: Transaction,
    /// What the staker signs for `slashing_tx`.
    pub slashing_sighash: TapSighash,
    /// What the staker signs for `unbonding_slashing_tx`.
    pub unbonding_slashing_sighash: TapSighash,
}

/// Builds every transaction of a registration: unbonding transaction with the exact fee and
/// time of `params`, both slashing transactions slashing exactly `round_half_up(value × rate)`.
pub fn build_unsigned_registration(
    params: &Params,
    choices: UnsignedChoices,
) -> Result<UnsignedRegistration, BuildRegistrationError> {
    let staker_pk = choices.staker_pk;
    let keys = StakingKeys::new(
        staker_pk,
        &choices.verifier_pks,
        &params.covenant_pks,
        params.covenant_quorum,
    )?;
    let index = choices.staking_output_index;
    let staking_txout: TxOut = choices
        .staking_tx
        .output
        .get(index as usize)
        .cloned()
        .ok_or(BuildRegistrationError::StakingOutputIndex { index })?;
    let staking_value = staking_txout.value;
    let staking_output = TaprootOutput::staking(&keys, choices.staking_time)?;
    let staking_outpoint = OutPoint::new(choices.staking_tx.compute_txid(), index);
    let unbonding_time = params.unbonding_time_blocks;
    let (unbonding_tx, unbonding_output) = build_unbonding_tx(
        &keys,
        staking_outpoint,
        staking_value,
        unbonding_time,
        params.unbonding_fee(),
    )?;
    let change = TaprootOutput::slashing_change(&staker_pk, unbonding_time)?;
    let terms = SlashingTerms {
        slashing_pk_script: &params.slashing_pk_script,
        slashing_rate: params.slashing_rate,
        min_fee: params.min_slashing_fee(),
    };
    let change_script = change.script_pubkey();
    let slashing_tx = build_slashing_tx(
        staking_outpoint,
        staking_value,
        &terms,
        choices.slashing_fee,
        &change_script,
    )?;
    let unbonding_txout = unbonding_tx.output[0].clone();
    let unbonding_slashing_tx = build_slashing_tx(
        OutPoint::new(unbonding_tx.compute_txid(), 0),
        unbonding_txout.value,
        &terms,
        choices.slashing_fee,
        &change_script,
    )?;
    let slashing_leaf = staking_output.leaf_script(Leaf::Slashing)?;
    let slashing_sighash = tapscript_sighash(
        &slashing_tx,
        0,
        std::slice::from_ref(&staking_txout),
        slashing_leaf,
    )?;
    let unbonding_slashing_sighash = tapscript_sighash(
        &unbonding_slashing_tx,
        0,
        &[unbonding_txout],
        unbonding_output.leaf_script(Leaf::Slashing)?,
    )?;
    Ok(UnsignedRegistration {
        staker_pk,
        staker_account: choices.account,
        verifier_pks: choices.verifier_pks,
        staking_time: choices.staking_time,
        staking_tx: choices.staking_tx,
        staking_output_index: index,
        staking_txout,
        slashing_tx,
        unbonding_time,
        unbonding_tx,
        unbonding_slashing_tx,
        slashing_sighash,
        unbonding_slashing_sighash,
    })
}

impl UnsignedRegistration {
    /// The registration with the staker's proof of possession and pre-signatures (as made
    /// by its signer; the node and [`crate::delegation::validate_delegation`] check them).
    pub fn with_signatures(
        self,
        pop: ProofOfPossession,
        staker_slashing_sig: schnorr::Signature,
        staker_unbonding_slashing_sig: schnorr::Signature,
    ) -> Registration {
        Registration {
            staker_pk: self.staker_pk,
            staker_account: self.staker_account,
            pop,
            verifier_pks: self.verifier_pks,
            staking_time: self.staking_time,
            staking_value_sat: self.staking_txout.value.to_sat(),
            staking_tx: self.staking_tx,
            staking_output_index: self.staking_output_index,
            slashing_tx: self.slashing_tx,
            staker_slashing_sig,
            unbonding_time: self.unbonding_time,
            unbonding_tx: self.unbonding_tx,
            unbonding_slashing_tx: self.unbonding_slashing_tx,
            staker_unbonding_slashing_sig,
        }
    }
}

/// Builds a complete registration: [`build_unsigned_registration`] signed by `choices.staker`
/// (BIP-0340 proof of possession, deterministic BIP-0340 pre-signatures).
pub fn build_registration(
    params: &Params,
    contexts: &SigningContexts,
    choices: StakerChoices<'_>,
) -> Result<Registration, BuildRegistrationError> {
    let staker = choices.staker;
    let unsigned = build_unsigned_registration(
        params,
        UnsignedChoices {
            staker_pk: staker.x_only_public_key().0,
            account: choices.account,
            verifier_pks: choices.verifier_pks,
            staking_tx: choices.staking_tx,
            staking_output_index: choices.staking_output_index,
            staking_time: choices.staking_time,
            slashing_fee: choices.slashing_fee,
        },
    )?;
    let pop = ProofOfPossession::Bip340(sign_pop(
        contexts,
        PopRole::Staker,
        &unsigned.staker_account,
        staker,
    ));
    let slashing = sign(&unsigned.slashing_sighash, staker);
    let unbonding_slashing = sign(&unsigned.unbonding_slashing_sighash, staker);
    Ok(unsigned.with_signatures(pop, slashing, unbonding_slashing))
}
