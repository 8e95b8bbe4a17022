//! The staker's decisions, without I/O: every transaction and PSBT of a delegation's life,
//! built from values the caller passes (params, the wallet's funding PSBT, the node's
//! covenant signatures, the tip) and checked before anything is signed or broadcast.
//!
//! One stake is signed in one round trip to the signer (the wallet itself, or an external one
//! that only sees PSBTs): the funding transaction, the two slashing pre-signatures, the
//! staker's unbonding signature (so unbonding later needs no signer), and the proof of
//! possession as a BIP-322 signature by the key's P2TR address (PROTOCOL §6).

use bitcoin::hashes::Hash;
use bitcoin::psbt::Psbt;
use bitcoin::secp256k1::{schnorr, XOnlyPublicKey};
use bitcoin::{
    absolute, transaction, Address, Amount, FeeRate, Network, OutPoint, ScriptBuf, Sequence,
    TapSighash, Transaction, TxIn, TxOut, Witness,
};
use fiamma_staking::account::Account;
use fiamma_staking::bip322;
use fiamma_staking::context::SigningContexts;
use fiamma_staking::delegation::validate_delegation;
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::params::Params;
use fiamma_staking::pop::{pop_message, PopRole, ProofOfPossession};
use fiamma_staking::registration::{
    build_unsigned_registration, Registration, UnsignedChoices, UnsignedRegistration,
};
use fiamma_staking::sighash::{tapscript_sighash, verify};
use fiamma_staking::taproot::{Leaf, TaprootOutput};
use fiamma_staking::witness::{timelock_witness, unbonding_witness, KeySignature};
use fiamma_wallet::psbt::{self, PsbtError};
use fiamma_wallet::KeyOrigin;
use serde::{Deserialize, Serialize};

/// Why a plan was refused. Nothing was signed or broadcast.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The amount is outside the params.
    #[error("staking amount {value} is outside the node's params: between {min} and {max}")]
    Amount {
        /// Asked.
        value: Amount,
        /// Least.
        min: Amount,
        /// Greatest.
        max: Amount,
    },
    /// The time is outside the params.
    #[error(
        "staking time {time} blocks is outside the node's params: between {min} and {max} blocks"
    )]
    Time {
        /// Asked.
        time: u32,
        /// Least.
        min: u32,
        /// Greatest.
        max: u32,
    },
    /// The wallet's transaction left out the staking output.
    #[error("the funding transaction {0} does not pay the staking output")]
    NoStakingOutput(String),
    /// A transaction or key of the protocol cannot be built.
    #[error("cannot build the delegation: {0}")]
    Build(String),
    /// A PSBT is unusable.
    #[error(transparent)]
    Psbt(#[from] PsbtError),
    /// The signer's signature does not verify.
    #[error("the signer's {what} signature does not verify for key {key}: was it signed by the wallet's staker key?")]
    Signature {
        /// Which one.
        what: &'static str,
        /// The key.
        key: XOnlyPublicKey,
    },
    /// A signed PSBT is not the one exported.
    #[error("the signed {what} PSBT is not the one exported: its transaction differs")]
    Swapped {
        /// Which one.
        what: &'static str,
    },
    /// The signer returned no key-path signature for the proof of possession.
    #[error("the proof-of-possession PSBT carries no key-path signature by {0}")]
    NoPop(XOnlyPublicKey),
    /// The registration fails the validation library.
    #[error("the delegation fails validation against the params (nothing was sent): {0}")]
    Invalid(String),
    /// A covenant signature served by the node does not verify.
    #[error("covenant member {key}'s unbonding signature does not verify")]
    CovenantSignature {
        /// The member.
        key: XOnlyPublicKey,
    },
    /// Fewer covenant signatures than the quorum.
    #[error("{got} covenant unbonding signatures, the quorum is {quorum}")]
    Quorum {
        /// Valid signatures.
        got: usize,
        /// Needed.
        quorum: u32,
    },
    /// The output is worth less than the withdrawal fee.
    #[error("output {outpoint} ({value}) does not cover the withdrawal fee {fee}")]
    Dust {
        /// The output.
        outpoint: OutPoint,
        /// Its value.
        value: Amount,
        /// The fee.
        fee: Amount,
    },
}

fn build(e: impl std::fmt::Display) -> PlanError {
    PlanError::Build(e.to_string())
}

/// What a staker asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StakeTerms {
    /// The verifier.
    pub verifier: XOnlyPublicKey,
    /// The value to stake.
    pub value: Amount,
    /// The staking time `T`, in blocks.
    pub staking_time: u32,
    /// The fee of each slashing transaction.
    pub slashing_fee: Amount,
}

/// Checks `terms` against `params` (the version in force).
///
/// # Errors
/// [`PlanError::Amount`] or [`PlanError::Time`].
pub fn check_terms(params: &Params, terms: &StakeTerms) -> Result<(), PlanError> {
    let (min, max) = (
        Amount::from_sat(params.min_staking_value_sat),
        Amount::from_sat(params.max_staking_value_sat),
    );
    if terms.value < min || terms.value > max {
        return Err(PlanError::Amount {
            value: terms.value,
            min,
            max,
        });
    }
    let (min, max) = (
        params.min_staking_time_blocks,
        params.max_staking_time_blocks,
    );
    if terms.staking_time < min || terms.staking_time > max {
        return Err(PlanError::Time {
            time: terms.staking_time,
            min,
            max,
        });
    }
    Ok(())
}

/// The fee of each slashing transaction: the params' least, or `fee_rate` over a generous
/// estimate of its size (one script-path input with the committee's witness, two outputs).
pub fn slashing_fee(params: &Params, fee_rate: FeeRate) -> Amount {
    const SLASHING_VBYTES: u64 = 120 + 17 * 16;
    let by_rate = fee_rate
        .checked_mul_by_weight(bitcoin::Weight::from_vb_unchecked(SLASHING_VBYTES))
        .unwrap_or(Amount::MAX_MONEY);
    by_rate.max(params.min_slashing_fee())
}

/// The staking output's script for `staker` and `terms` under `params`.
///
/// # Errors
/// [`PlanError::Build`] when the keys are not distinct or the time is out of range.
pub fn staking_output(
    params: &Params,
    staker: XOnlyPublicKey,
    verifier: XOnlyPublicKey,
    staking_time: u32,
) -> Result<(StakingKeys, TaprootOutput), PlanError> {
    let keys = StakingKeys::new(
        staker,
        &[verifier],
        &params.covenant_pks,
        params.covenant_quorum,
    )
    .map_err(build)?;
    let output = TaprootOutput::staking(&keys, staking_time).map_err(build)?;
    Ok((keys, output))
}

/// The PSBTs of one stake, exported to the signer together.
#[derive(Debug, Clone, PartialEq)]
pub struct StakePsbts {
    /// The wallet's payment of the staking output (its inputs carry their key origins).
    pub funding: Psbt,
    /// The slashing transaction, by the staking output's slashing leaf.
    pub slashing: Psbt,
    /// The unbonding slashing transaction, by the unbonding output's slashing leaf.
    pub unbonding_slashing: Psbt,
    /// The unbonding transaction, by the staking output's unbonding leaf.
    pub unbonding: Psbt,
    /// The BIP-322 `to_sign` transaction of the proof of possession (key path of the
    /// staker key's P2TR address).
    pub pop: Psbt,
}

/// [`StakePsbts`] as a file: a JSON object of base64 PSBTs, one per transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsbtBundle {
    /// The funding transaction.
    pub funding: String,
    /// The slashing transaction.
    pub slashing: String,
    /// The unbonding slashing transaction.
    pub unbonding_slashing: String,
    /// The unbonding transaction.
    pub unbonding: String,
    /// The proof of possession.
    pub pop: String,
}

impl StakePsbts {
    /// Each PSBT, with its name, for signing them all alike.
    pub fn each_mut(&mut self) -> [(&'static str, &mut Psbt); 5] {
        [
            ("funding", &mut self.funding),
            ("slashing", &mut self.slashing),
            ("unbonding slashing", &mut self.unbonding_slashing),
            ("unbonding", &mut self.unbonding),
            ("proof of possession", &mut self.pop),
        ]
    }

    /// The file form.
    pub fn to_bundle(&self) -> PsbtBundle {
        PsbtBundle {
            funding: self.funding.to_string(),
            slashing: self.slashing.to_string(),
            unbonding_slashing: self.unbonding_slashing.to_string(),
            unbonding: self.unbonding.to_string(),
            pop: self.pop.to_string(),
        }
    }

    /// From the file form.
    ///
    /// # Errors
    /// [`PlanError::Build`] naming the PSBT that does not decode.
    pub fn from_bundle(bundle: &PsbtBundle) -> Result<Self, PlanError> {
        let parse = |what: &str, text: &str| {
            text.trim()
                .parse::<Psbt>()
                .map_err(|e| PlanError::Build(format!("the {what} PSBT does not decode: {e}")))
        };
        Ok(StakePsbts {
            funding: parse("funding", &bundle.funding)?,
            slashing: parse("slashing", &bundle.slashing)?,
            unbonding_slashing: parse("unbonding slashing", &bundle.unbonding_slashing)?,
            unbonding: parse("unbonding", &bundle.unbonding)?,
            pop: parse("proof of possession", &bundle.pop)?,
        })
    }
}

/// A stake ready for its signer.
#[derive(Debug, Clone, PartialEq)]
pub struct StakePlan {
    /// Every transaction of the registration and what the staker signs.
    pub unsigned: UnsignedRegistration,
    /// What the signer signs.
    pub psbts: StakePsbts,
    /// The unbonding transaction's sighash (the staker's signature on it is kept).
    pub unbonding_sighash: TapSighash,
}

/// The staker key's BIP-86 P2TR address, which signs the BIP-322 proof of possession.
pub fn pop_address(staker: XOnlyPublicKey, network: Network) -> Address {
    Address::p2tr(bitcoin::secp256k1::SECP256K1, staker, None, network)
}

/// Plans a stake of `terms` funded by the wallet's `funding` PSBT (which pays the staking
/// output of [`staking_output`]): the registration's transactions and the PSBTs to sign.
///
/// # Errors
/// [`PlanError`] when the funding does not pay the staking output or a transaction cannot be
/// built.
#[allow(clippy::too_many_arguments)]
pub fn plan_stake(
    params: &Params,
    contexts: &SigningContexts,
    network: Network,
    staker: &KeyOrigin,
    account: Account,
    terms: &StakeTerms,
    funding: Psbt,
) -> Result<StakePlan, PlanError> {
    check_terms(params, terms)?;
    let (keys, output) = staking_output(params, staker.key, terms.verifier, terms.staking_time)?;
    let script = output.script_pubkey();
    let tx = funding.unsigned_tx.clone();
    let index = tx
        .output
        .iter()
        .position(|o| o.script_pubkey == script && o.value == terms.value)
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| PlanError::NoStakingOutput(tx.compute_txid().to_string()))?;
    let unsigned = build_unsigned_registration(
        params,
        UnsignedChoices {
            staker_pk: staker.key,
            account,
            verifier_pks: vec![terms.verifier],
            staking_tx: tx,
            staking_output_index: index,
            staking_time: terms.staking_time,
            slashing_fee: terms.slashing_fee,
        },
    )
    .map_err(build)?;
    let unbonding_output =
        TaprootOutput::unbonding(&keys, params.unbonding_time_blocks).map_err(build)?;
    let leaf = |o: &TaprootOutput, l: Leaf| o.leaf_script(l).map(|s| s.to_owned()).map_err(build);

    let mut slashing = psbt::from_unsigned(unsigned.slashing_tx.clone())?;
    psbt::add_script_spend(
        &mut slashing,
        0,
        unsigned.staking_txout.clone(),
        output.spend_info(),
        &leaf(&output, Leaf::Slashing)?,
        staker,
    )?;
    let unbonding_txout = unsigned
        .unbonding_tx
        .output
        .first()
        .cloned()
        .ok_or_else(|| build("the unbonding transaction has no output"))?;
    let mut unbonding_slashing = psbt::from_unsigned(unsigned.unbonding_slashing_tx.clone())?;
    psbt::add_script_spend(
        &mut unbonding_slashing,
        0,
        unbonding_txout,
        unbonding_output.spend_info(),
        &leaf(&unbonding_output, Leaf::Slashing)?,
        staker,
    )?;
    let unbonding_leaf = leaf(&output, Leaf::Unbonding)?;
    let mut unbonding = psbt::from_unsigned(unsigned.unbonding_tx.clone())?;
    psbt::add_script_spend(
        &mut unbonding,
        0,
        unsigned.staking_txout.clone(),
        output.spend_info(),
        &unbonding_leaf,
        staker,
    )?;
    let unbonding_sighash = tapscript_sighash(
        &unsigned.unbonding_tx,
        0,
        std::slice::from_ref(&unsigned.staking_txout),
        &unbonding_leaf,
    )
    .map_err(build)?;

    let message = pop_message(contexts, PopRole::Staker, &account);
    let to_spend = bip322::to_spend(&pop_address(staker.key, network).script_pubkey(), &message);
    let mut pop = psbt::from_unsigned(bip322::to_sign(&to_spend, Witness::new()))?;
    let input = pop.inputs.first_mut().ok_or(PsbtError::NoInput(0))?;
    input.witness_utxo = to_spend.output.first().cloned();
    input.tap_internal_key = Some(staker.key);
    input.tap_key_origins.insert(
        staker.key,
        (Vec::new(), (staker.fingerprint, staker.path.clone())),
    );

    Ok(StakePlan {
        unsigned,
        psbts: StakePsbts {
            funding,
            slashing,
            unbonding_slashing,
            unbonding,
            pop,
        },
        unbonding_sighash,
    })
}

/// A signed stake: the registration and the staker's unbonding signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedStake {
    /// The registration, checked with `validate_delegation`.
    pub registration: Registration,
    /// The staker's signature on the unbonding transaction.
    pub unbonding_sig: schnorr::Signature,
}

fn same_tx(what: &'static str, a: &Psbt, b: &Psbt) -> Result<(), PlanError> {
    if a.unsigned_tx == b.unsigned_tx {
        Ok(())
    } else {
        Err(PlanError::Swapped { what })
    }
}

/// Reads the signatures of `signed` (the plan's PSBTs as the signer returned them), checks
/// each against what the plan asked, and assembles the registration, checked with
/// [`validate_delegation`] as the node and the committee will check it. The funding PSBT is
/// the wallet's to finalize.
///
/// # Errors
/// [`PlanError`]: a PSBT swapped or unsigned, a signature by another key, an invalid
/// registration.
pub fn complete_stake(
    plan: &StakePlan,
    signed: &StakePsbts,
    params: &Params,
    contexts: &SigningContexts,
    network: Network,
) -> Result<SignedStake, PlanError> {
    let staker = plan.unsigned.staker_pk;
    same_tx("funding", &plan.psbts.funding, &signed.funding)?;
    same_tx("slashing", &plan.psbts.slashing, &signed.slashing)?;
    same_tx(
        "unbonding slashing",
        &plan.psbts.unbonding_slashing,
        &signed.unbonding_slashing,
    )?;
    same_tx("unbonding", &plan.psbts.unbonding, &signed.unbonding)?;
    same_tx("proof of possession", &plan.psbts.pop, &signed.pop)?;
    // The leaf comes from the exported PSBT, never from what the signer returned.
    let leaf_sig = |what: &'static str, exported: &Psbt, p: &Psbt, sighash: &TapSighash| {
        let leaf = exported
            .inputs
            .first()
            .and_then(|i| i.tap_scripts.values().next())
            .map(|(s, _)| s.clone())
            .ok_or(PsbtError::NoInput(0))?;
        let sig = psbt::script_signature(p, 0, &staker, &leaf)?;
        verify(sighash, &sig, &staker).map_err(|_| PlanError::Signature { what, key: staker })?;
        Ok::<_, PlanError>(sig)
    };
    let slashing = leaf_sig(
        "slashing",
        &plan.psbts.slashing,
        &signed.slashing,
        &plan.unsigned.slashing_sighash,
    )?;
    let unbonding_slashing = leaf_sig(
        "unbonding slashing",
        &plan.psbts.unbonding_slashing,
        &signed.unbonding_slashing,
        &plan.unsigned.unbonding_slashing_sighash,
    )?;
    let unbonding_sig = leaf_sig(
        "unbonding",
        &plan.psbts.unbonding,
        &signed.unbonding,
        &plan.unbonding_sighash,
    )?;
    let key_sig = signed
        .pop
        .inputs
        .first()
        .and_then(|i| i.tap_key_sig)
        .ok_or(PlanError::NoPop(staker))?;
    let pop = ProofOfPossession::Bip322 {
        address: pop_address(staker, network).into_unchecked(),
        witness: Witness::p2tr_key_spend(&key_sig),
    };
    let registration = plan
        .unsigned
        .clone()
        .with_signatures(pop, slashing, unbonding_slashing);
    validate_delegation(params, contexts, &registration)
        .map_err(|e| PlanError::Invalid(e.to_string()))?;
    Ok(SignedStake {
        registration,
        unbonding_sig,
    })
}

/// The co-signed unbonding transaction of `reg`: the staker's signature and the committee's
/// (each checked against the sighash; those that do not verify are left out, and at least the
/// quorum must remain).
///
/// # Errors
/// [`PlanError::Quorum`], [`PlanError::Signature`] or [`PlanError::Build`].
pub fn cosigned_unbonding(
    params: &Params,
    reg: &Registration,
    staker_sig: &schnorr::Signature,
    covenant: &[KeySignature],
) -> Result<Transaction, PlanError> {
    let verifier = *reg
        .verifier_pks
        .first()
        .ok_or_else(|| build("the registration names no verifier"))?;
    let (keys, output) = staking_output(params, reg.staker_pk, verifier, reg.staking_time)?;
    let leaf = output.leaf_script(Leaf::Unbonding).map_err(build)?;
    let staked = output.txout(Amount::from_sat(reg.staking_value_sat));
    let sighash = tapscript_sighash(&reg.unbonding_tx, 0, &[staked], leaf).map_err(build)?;
    verify(&sighash, staker_sig, &reg.staker_pk).map_err(|_| PlanError::Signature {
        what: "unbonding",
        key: reg.staker_pk,
    })?;
    let valid: Vec<KeySignature> = covenant
        .iter()
        .filter(|(key, sig)| {
            params.covenant_pks.contains(key) && verify(&sighash, sig, key).is_ok()
        })
        .copied()
        .collect();
    if valid.len() < params.covenant_quorum as usize {
        return Err(PlanError::Quorum {
            got: valid.len(),
            quorum: params.covenant_quorum,
        });
    }
    let mut tx = reg.unbonding_tx.clone();
    let witness = unbonding_witness(&output, &keys, &valid, staker_sig).map_err(build)?;
    tx.input
        .first_mut()
        .ok_or_else(|| build("the unbonding transaction has no input"))?
        .witness = witness;
    Ok(tx)
}

/// Which output a withdrawal spends by its timelock path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawFrom {
    /// The staking output, after `T` (an expired delegation never unbonded).
    Staking,
    /// The unbonding output, after `U`.
    Unbonding,
    /// The change output of the staking slashing transaction, after `U`.
    SlashingChange,
    /// The change output of the unbonding slashing transaction, after `U`.
    UnbondingSlashingChange,
}

impl WithdrawFrom {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            WithdrawFrom::Staking => "staking",
            WithdrawFrom::Unbonding => "unbonding",
            WithdrawFrom::SlashingChange => "slashing_change",
            WithdrawFrom::UnbondingSlashingChange => "unbonding_slashing_change",
        }
    }
}

/// The output a withdrawal from `from` spends: its outpoint, its value, the taproot output
/// (for the timelock leaf) and the relative timelock.
///
/// # Errors
/// [`PlanError::Build`].
pub fn withdraw_source(
    params: &Params,
    reg: &Registration,
    from: WithdrawFrom,
) -> Result<(OutPoint, TxOut, TaprootOutput, u32), PlanError> {
    let verifier = *reg
        .verifier_pks
        .first()
        .ok_or_else(|| build("the registration names no verifier"))?;
    let (keys, staking) = staking_output(params, reg.staker_pk, verifier, reg.staking_time)?;
    let change =
        || TaprootOutput::slashing_change(&reg.staker_pk, reg.unbonding_time).map_err(build);
    let change_of = |tx: &Transaction| -> Result<(OutPoint, TxOut, TaprootOutput, u32), PlanError> {
        let output = change()?;
        let script = output.script_pubkey();
        let (i, out) = tx
            .output
            .iter()
            .enumerate()
            .find(|(_, o)| o.script_pubkey == script)
            .ok_or_else(|| build("the slashing transaction has no change output"))?;
        let vout = u32::try_from(i).map_err(build)?;
        Ok((
            OutPoint::new(tx.compute_txid(), vout),
            out.clone(),
            output,
            reg.unbonding_time,
        ))
    };
    match from {
        WithdrawFrom::Staking => Ok((
            OutPoint::new(reg.staking_tx.compute_txid(), reg.staking_output_index),
            staking.txout(Amount::from_sat(reg.staking_value_sat)),
            staking,
            reg.staking_time,
        )),
        WithdrawFrom::Unbonding => {
            let output = TaprootOutput::unbonding(&keys, reg.unbonding_time).map_err(build)?;
            let out = reg
                .unbonding_tx
                .output
                .first()
                .cloned()
                .ok_or_else(|| build("the unbonding transaction has no output"))?;
            Ok((
                OutPoint::new(reg.unbonding_tx.compute_txid(), 0),
                out,
                output,
                reg.unbonding_time,
            ))
        }
        WithdrawFrom::SlashingChange => change_of(&reg.slashing_tx),
        WithdrawFrom::UnbondingSlashingChange => change_of(&reg.unbonding_slashing_tx),
    }
}

/// The unsigned withdrawal of the output of `from` to `to` at `fee_rate`, as a PSBT for the
/// staker's key (timelock leaf, nSequence = the timelock).
///
/// # Errors
/// [`PlanError::Dust`] when the fee eats the output, [`PlanError::Build`].
pub fn withdraw_psbt(
    params: &Params,
    reg: &Registration,
    from: WithdrawFrom,
    to: ScriptBuf,
    fee_rate: FeeRate,
    staker: &KeyOrigin,
) -> Result<Psbt, PlanError> {
    let (outpoint, spent, output, timelock) = withdraw_source(params, reg, from)?;
    let leaf = output
        .leaf_script(Leaf::Timelock)
        .map_err(build)?
        .to_owned();
    let mut tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: outpoint,
            sequence: Sequence::from_height(u16::try_from(timelock).map_err(build)?),
            ..TxIn::default()
        }],
        output: vec![TxOut {
            value: spent.value,
            script_pubkey: to,
        }],
    };
    // The size with a signature in place: [sig, leaf, control block].
    let control = output.control_block(Leaf::Timelock).map_err(build)?;
    let mut sized = tx.clone();
    sized.input[0].witness =
        Witness::from_slice(&[vec![0u8; 64], leaf.to_bytes(), control.serialize()]);
    let fee = fee_rate
        .checked_mul_by_weight(sized.weight())
        .ok_or_else(|| build("fee rate overflow"))?;
    let value = spent
        .value
        .checked_sub(fee)
        .filter(|v| *v >= Amount::from_sat(330))
        .ok_or(PlanError::Dust {
            outpoint,
            value: spent.value,
            fee,
        })?;
    tx.output[0].value = value;
    let mut p = psbt::from_unsigned(tx)?;
    psbt::add_script_spend(&mut p, 0, spent, output.spend_info(), &leaf, staker)?;
    Ok(p)
}

/// The withdrawal transaction from a signed [`withdraw_psbt`].
///
/// # Errors
/// [`PlanError`] when the signature is missing or does not verify.
pub fn complete_withdraw(
    params: &Params,
    reg: &Registration,
    from: WithdrawFrom,
    signed: &Psbt,
) -> Result<Transaction, PlanError> {
    let (_, spent, output, _) = withdraw_source(params, reg, from)?;
    let leaf = output.leaf_script(Leaf::Timelock).map_err(build)?;
    let sig = psbt::script_signature(signed, 0, &reg.staker_pk, leaf)?;
    let sighash = tapscript_sighash(&signed.unsigned_tx, 0, &[spent], leaf).map_err(build)?;
    verify(&sighash, &sig, &reg.staker_pk).map_err(|_| PlanError::Signature {
        what: "withdrawal",
        key: reg.staker_pk,
    })?;
    let mut tx = signed.unsigned_tx.clone();
    tx.input[0].witness = timelock_witness(&output, &sig).map_err(build)?;
    Ok(tx)
}

/// The account a key registers under: the HASH160 of its x-only BTC key, so each key has
/// one.
pub fn account_of(key: &XOnlyPublicKey) -> Account {
    Account(bitcoin::hashes::hash160::Hash::hash(&key.serialize()).to_byte_array())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::bip32::{DerivationPath, Fingerprint};
    use bitcoin::key::TapTweak;
    use bitcoin::secp256k1::{Keypair, SECP256K1};
    use bitcoin::sighash::{Prevouts, SighashCache};
    use bitcoin::taproot::{LeafVersion, TapLeafHash};
    use bitcoin::{TapSighashType, Txid};
    use fiamma_staking::params::ResourceLimits;
    use fiamma_staking::sighash::sign;
    use proptest::prelude::*;

    fn keypair(seed: u8) -> Keypair {
        Keypair::from_seckey_slice(SECP256K1, &[seed; 32]).expect("key")
    }

    fn xonly(seed: u8) -> XOnlyPublicKey {
        keypair(seed).x_only_public_key().0
    }

    fn params() -> Params {
        Params {
            covenant_pks: (10..13).map(xonly).collect(),
            covenant_quorum: 2,
            min_staking_value_sat: 10_000,
            max_staking_value_sat: 10_000_000_000,
            min_staking_time_blocks: 10,
            max_staking_time_blocks: 65_535,
            slashing_pk_script: ScriptBuf::from_bytes([&[0x00, 0x14][..], &[0x5a; 20]].concat()),
            min_slashing_tx_fee_sat: 1_000,
            slashing_rate: "0.1".parse().expect("rate"),
            unbonding_time_blocks: 5,
            unbonding_fee_sat: 1_000,
            btc_confirmation_depth: 2,
            max_active_verifiers: 100,
            min_pub_rand: 10,
            identifiable_staking_tag: None,
            btc_activation_height: 0,
            max_verifiers_per_delegation: 1,
            limits: ResourceLimits::default(),
        }
    }

    fn contexts() -> SigningContexts {
        SigningContexts::new("fiamma-test", "fmma1staking")
    }

    const STAKER: u8 = 1;
    const VERIFIER: u8 = 2;

    fn origin(seed: u8) -> KeyOrigin {
        KeyOrigin {
            key: xonly(seed),
            fingerprint: Fingerprint::from([seed; 4]),
            path: "m/86'/1'/0'/0/0".parse::<DerivationPath>().expect("path"),
        }
    }

    fn terms(value: u64, time: u32) -> StakeTerms {
        StakeTerms {
            verifier: xonly(VERIFIER),
            value: Amount::from_sat(value),
            staking_time: time,
            slashing_fee: slashing_fee(&params(), FeeRate::from_sat_per_vb_u32(2)),
        }
    }

    /// A wallet's funding PSBT: one made-up coin, the staking output first, change after.
    fn funding(terms: &StakeTerms) -> Psbt {
        let (_, output) =
            staking_output(&params(), xonly(STAKER), terms.verifier, terms.staking_time)
                .expect("output");
        let tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([7; 32]), 1),
                ..TxIn::default()
            }],
            output: vec![
                output.txout(terms.value),
                TxOut {
                    value: Amount::from_sat(50_000),
                    script_pubkey: pop_address(xonly(STAKER), Network::Regtest).script_pubkey(),
                },
            ],
        };
        Psbt::from_unsigned_tx(tx).expect("psbt")
    }

    fn plan(terms: &StakeTerms) -> Result<StakePlan, PlanError> {
        plan_stake(
            &params(),
            &contexts(),
            Network::Regtest,
            &origin(STAKER),
            account_of(&xonly(STAKER)),
            terms,
            funding(terms),
        )
    }

    /// Files `signature` under `key` for the PSBT's one leaf, as a signer would.
    fn file_leaf_sig(p: &mut Psbt, key: XOnlyPublicKey, signature: schnorr::Signature) {
        let leaf = p.inputs[0]
            .tap_scripts
            .values()
            .next()
            .expect("leaf")
            .0
            .clone();
        let hash = TapLeafHash::from_script(&leaf, LeafVersion::TapScript);
        p.inputs[0].tap_script_sigs.insert(
            (key, hash),
            bitcoin::taproot::Signature {
                signature,
                sighash_type: TapSighashType::Default,
            },
        );
    }

    fn sign_leaf(p: &mut Psbt, sighash: &TapSighash, key: &Keypair) {
        file_leaf_sig(p, key.x_only_public_key().0, sign(sighash, key));
    }

    /// What a signer holding `key` returns for `plan`'s PSBTs.
    fn signed_by(plan: &StakePlan, key: &Keypair) -> StakePsbts {
        let mut s = plan.psbts.clone();
        sign_leaf(&mut s.slashing, &plan.unsigned.slashing_sighash, key);
        sign_leaf(
            &mut s.unbonding_slashing,
            &plan.unsigned.unbonding_slashing_sighash,
            key,
        );
        sign_leaf(&mut s.unbonding, &plan.unbonding_sighash, key);
        let spent = s.pop.inputs[0].witness_utxo.clone().expect("utxo");
        let sighash = SighashCache::new(&s.pop.unsigned_tx)
            .taproot_key_spend_signature_hash(0, &Prevouts::All(&[spent]), TapSighashType::Default)
            .expect("sighash");
        let tweaked = key.tap_tweak(SECP256K1, None).to_keypair();
        s.pop.inputs[0].tap_key_sig = Some(bitcoin::taproot::Signature {
            signature: sign(&sighash, &tweaked),
            sighash_type: TapSighashType::Default,
        });
        s
    }

    fn complete(plan: &StakePlan, signed: &StakePsbts) -> Result<SignedStake, PlanError> {
        complete_stake(plan, signed, &params(), &contexts(), Network::Regtest)
    }

    #[test]
    fn each_transaction_of_a_stake_pays_what_the_params_say() {
        let t = terms(1_000_000, 100);
        let p = plan(&t).expect("planned");
        let u = &p.unsigned;
        assert_eq!(u.staking_output_index, 0);
        assert_eq!(u.staking_txout.value, t.value);
        let params = params();
        let slashed = params.slashing_rate.slashed_amount(t.value);
        for (tx, spent) in [
            (&u.slashing_tx, t.value),
            (
                &u.unbonding_slashing_tx,
                t.value - Amount::from_sat(params.unbonding_fee_sat),
            ),
        ] {
            assert_eq!(tx.input.len(), 1);
            assert_eq!(tx.output[0].script_pubkey, params.slashing_pk_script);
            let out: Amount = tx.output.iter().map(|o| o.value).sum();
            assert_eq!(spent - out, t.slashing_fee, "the fee is the slashing fee");
            assert_eq!(
                tx.output[0].value,
                params.slashing_rate.slashed_amount(spent)
            );
        }
        assert_eq!(u.slashing_tx.output[0].value, slashed);
        assert_eq!(
            u.unbonding_tx.output[0].value,
            t.value - Amount::from_sat(params.unbonding_fee_sat)
        );
        assert_eq!(u.unbonding_tx.input[0].previous_output.vout, 0);
        // Every PSBT carries what an external signer needs to sign it.
        for (what, psbt) in p.psbts.clone().each_mut() {
            let input = &psbt.inputs[0];
            if what == "funding" {
                continue;
            }
            assert!(input.witness_utxo.is_some(), "{what}");
            assert!(input.tap_internal_key.is_some(), "{what}");
            assert!(input.tap_key_origins.contains_key(&xonly(STAKER)), "{what}");
            if what != "proof of possession" {
                assert_eq!(input.tap_scripts.len(), 1, "{what}");
                assert!(input.tap_merkle_root.is_some(), "{what}");
            }
        }
        let bundle = p.psbts.to_bundle();
        assert_eq!(StakePsbts::from_bundle(&bundle).expect("decodes"), p.psbts);
    }

    #[test]
    fn a_stake_signed_by_the_staker_key_validates() {
        let p = plan(&terms(1_000_000, 100)).expect("planned");
        let s = complete(&p, &signed_by(&p, &keypair(STAKER))).expect("valid");
        assert_eq!(s.registration.staker_pk, xonly(STAKER));
        assert_eq!(s.registration.staking_tx, p.unsigned.staking_tx);
        verify(&p.unbonding_sighash, &s.unbonding_sig, &xonly(STAKER)).expect("unbonding sig");
    }

    #[test]
    fn terms_outside_the_params_are_refused_with_the_bounds() {
        let cases = [
            (terms(9_999, 100), "amount 0.00009999 BTC is outside"),
            (
                terms(10_000_000_001, 100),
                "amount 100.00000001 BTC is outside",
            ),
            (terms(1_000_000, 9), "between 10 and 65535 blocks"),
        ];
        for (t, says) in cases {
            let e = check_terms(&params(), &t).expect_err("out of range");
            assert!(e.to_string().contains(says), "{e}");
            assert!(plan(&t).is_err());
        }
        assert!(check_terms(&params(), &terms(10_000, 10)).is_ok());
        assert!(check_terms(&params(), &terms(10_000_000_000, 65_535)).is_ok());
    }

    #[test]
    fn a_funding_transaction_without_the_staking_output_is_refused() {
        let t = terms(1_000_000, 100);
        let mut f = funding(&t);
        f.unsigned_tx.output[0].value = Amount::from_sat(999_999);
        let e = plan_stake(
            &params(),
            &contexts(),
            Network::Regtest,
            &origin(STAKER),
            account_of(&xonly(STAKER)),
            &t,
            Psbt::from_unsigned_tx(f.unsigned_tx).expect("psbt"),
        )
        .expect_err("no staking output");
        assert!(matches!(e, PlanError::NoStakingOutput(_)), "{e}");
    }

    #[test]
    fn signatures_by_another_key_a_swapped_psbt_or_no_pop_are_refused() {
        let p = plan(&terms(1_000_000, 100)).expect("planned");
        let other = keypair(3);
        // Another key's signatures sit under another key: the staker's are missing.
        let e = complete(&p, &signed_by(&p, &other)).expect_err("other key");
        assert!(matches!(e, PlanError::Psbt(_)), "{e}");
        // A signature by another key filed under the staker's key does not verify.
        let mut forged = signed_by(&p, &keypair(STAKER));
        file_leaf_sig(
            &mut forged.slashing,
            xonly(STAKER),
            sign(&p.unsigned.slashing_sighash, &other),
        );
        let e = complete(&p, &forged).expect_err("forged");
        assert!(
            matches!(
                e,
                PlanError::Signature {
                    what: "slashing",
                    ..
                }
            ),
            "{e}"
        );
        let mut swapped = signed_by(&p, &keypair(STAKER));
        swapped.unbonding.unsigned_tx.lock_time = absolute::LockTime::from_consensus(1);
        let e = complete(&p, &swapped).expect_err("swapped");
        assert!(matches!(e, PlanError::Swapped { what: "unbonding" }), "{e}");
        let mut no_pop = signed_by(&p, &keypair(STAKER));
        no_pop.pop.inputs[0].tap_key_sig = None;
        let e = complete(&p, &no_pop).expect_err("no pop");
        assert!(matches!(e, PlanError::NoPop(_)), "{e}");
    }

    #[test]
    fn unbonding_needs_the_covenant_quorum_and_the_staker_signature() {
        let p = plan(&terms(1_000_000, 100)).expect("planned");
        let s = complete(&p, &signed_by(&p, &keypair(STAKER))).expect("valid");
        let params = params();
        let cov = |seed: u8| (xonly(seed), sign(&p.unbonding_sighash, &keypair(seed)));
        let e = cosigned_unbonding(&params, &s.registration, &s.unbonding_sig, &[cov(10)])
            .expect_err("one of two");
        assert!(matches!(e, PlanError::Quorum { got: 1, quorum: 2 }), "{e}");
        // A signature by a key outside the committee does not count.
        let outsider = (xonly(10), sign(&p.unbonding_sighash, &keypair(20)));
        let e = cosigned_unbonding(
            &params,
            &s.registration,
            &s.unbonding_sig,
            &[outsider, cov(11)],
        )
        .expect_err("one valid");
        assert!(matches!(e, PlanError::Quorum { got: 1, .. }), "{e}");
        let tx = cosigned_unbonding(
            &params,
            &s.registration,
            &s.unbonding_sig,
            &[cov(10), cov(12)],
        )
        .expect("quorum");
        assert_eq!(
            tx.compute_txid(),
            s.registration.unbonding_tx.compute_txid()
        );
        assert!(!tx.input[0].witness.is_empty());
        let wrong = sign(&p.unbonding_sighash, &keypair(3));
        let e = cosigned_unbonding(&params, &s.registration, &wrong, &[cov(10), cov(12)])
            .expect_err("not the staker's");
        assert!(
            matches!(
                e,
                PlanError::Signature {
                    what: "unbonding",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_withdrawal_pays_the_output_less_its_fee_after_the_timelock() {
        let p = plan(&terms(1_000_000, 100)).expect("planned");
        let s = complete(&p, &signed_by(&p, &keypair(STAKER))).expect("valid");
        let reg = &s.registration;
        let to = pop_address(xonly(STAKER), Network::Regtest).script_pubkey();
        let rate = FeeRate::from_sat_per_vb_u32(2);
        for (from, timelock, spent) in [
            (WithdrawFrom::Staking, 100, reg.staking_tx.compute_txid()),
            (WithdrawFrom::Unbonding, 5, reg.unbonding_tx.compute_txid()),
            (
                WithdrawFrom::SlashingChange,
                5,
                reg.slashing_tx.compute_txid(),
            ),
            (
                WithdrawFrom::UnbondingSlashingChange,
                5,
                reg.unbonding_slashing_tx.compute_txid(),
            ),
        ] {
            let (outpoint, out, _, lock) = withdraw_source(&params(), reg, from).expect("source");
            assert_eq!((outpoint.txid, lock), (spent, timelock), "{from:?}");
            let mut psbt = withdraw_psbt(&params(), reg, from, to.clone(), rate, &origin(STAKER))
                .expect("psbt");
            let tx = &psbt.unsigned_tx;
            assert_eq!(tx.input[0].sequence, Sequence::from_height(timelock as u16));
            let fee = out.value - tx.output[0].value;
            assert!(
                fee > Amount::ZERO && fee < Amount::from_sat(1_000),
                "{from:?} {fee}"
            );
            // Signed, it verifies; its vsize matches the fee paid at the rate.
            let leaf = psbt.inputs[0]
                .tap_scripts
                .values()
                .next()
                .expect("leaf")
                .0
                .clone();
            let sighash =
                tapscript_sighash(&psbt.unsigned_tx, 0, std::slice::from_ref(&out), &leaf)
                    .expect("sighash");
            sign_leaf(&mut psbt, &sighash, &keypair(STAKER));
            let done = complete_withdraw(&params(), reg, from, &psbt).expect("complete");
            assert_eq!(
                rate.checked_mul_by_weight(done.weight()),
                Some(fee),
                "{from:?}"
            );
        }
        let e = withdraw_psbt(
            &params(),
            reg,
            WithdrawFrom::SlashingChange,
            to,
            FeeRate::from_sat_per_vb_u32(100_000),
            &origin(STAKER),
        )
        .expect_err("the fee eats the output");
        assert!(matches!(e, PlanError::Dust { .. }), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever the terms inside the params, the slashing transactions spend exactly the
        /// slashed share plus the change plus the fee, and the plan signs and validates.
        #[test]
        fn any_terms_inside_the_params_plan_and_validate(
            value in 10_000u64..=10_000_000_000,
            time in 10u32..=65_535,
        ) {
            let t = terms(value, time);
            let p = plan(&t).expect("planned");
            let out: Amount = p.unsigned.slashing_tx.output.iter().map(|o| o.value).sum();
            prop_assert_eq!(out + t.slashing_fee, t.value);
            prop_assert!(complete(&p, &signed_by(&p, &keypair(STAKER))).is_ok());
        }
    }
}
