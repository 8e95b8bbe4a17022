//! `validate_delegation`: every registration rule of PROTOCOL §4, §7 and §8, shared by the
//! node, the covenant daemon and the staker so that they cannot disagree.
//!
//! Cheap stateless checks run first, signatures last. Each rule has its own error variant that
//! carries the offending value.

use bitcoin::hashes::Hash as _;
use bitcoin::{Amount, OutPoint, TapSighash, Transaction, TxOut, Txid};

use crate::context::SigningContexts;
use crate::identifiable::{IdentifiableStaking, OpReturnError};
use crate::keys::{KeyError, StakingKeys};
use crate::params::Params;
use crate::pop::{PopError, PopRole};
use crate::registration::Registration;
use crate::sighash::{tapscript_sighash_for_leaf, verify, SighashError, SignatureError};
use crate::slashing::{validate_slashing_tx, SlashingSummary, SlashingTerms, SlashingTxError};
use crate::staking_tx::{find_staking_output, StakingTxError};
use crate::taproot::{Leaf, TaprootError, TaprootOutput};
use crate::unbonding::{validate_unbonding_tx, UnbondingError};

/// Why a registration was rejected; one variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelegationError {
    /// More verifier keys than `max_verifiers_per_delegation` (one, per §8).
    #[error("{got} verifier keys, at most {max} allowed")]
    TooManyVerifiers {
        /// Verifier keys given.
        got: usize,
        /// The parameter's limit.
        max: u32,
    },
    /// The staker, verifier and covenant key sets are invalid (no verifier, a repeated key).
    #[error("delegation keys: {0}")]
    Keys(#[from] KeyError),
    /// Staking time outside `[min_staking_time_blocks, max_staking_time_blocks]`.
    #[error("staking time {time} is not in [{min}, {max}]")]
    StakingTime {
        /// The staking time given.
        time: u32,
        /// The parameter's minimum.
        min: u32,
        /// The parameter's maximum.
        max: u32,
    },
    /// Staking value outside `[min_staking_value_sat, max_staking_value_sat]`.
    #[error("staking value {value} sat is not in [{min}, {max}]")]
    StakingValue {
        /// The staking value given.
        value: u64,
        /// The parameter's minimum.
        min: u64,
        /// The parameter's maximum.
        max: u64,
    },
    /// Unbonding time other than `unbonding_time_blocks`.
    #[error("unbonding time {got}, the parameters require exactly {want}")]
    UnbondingTime {
        /// The unbonding time given.
        got: u32,
        /// The parameter.
        want: u32,
    },
    /// An output of the protocol could not be built from the registration.
    #[error(transparent)]
    Taproot(#[from] TaprootError),
    /// The staking transaction does not hold exactly one staking output of the stated value.
    #[error("staking transaction: {0}")]
    StakingOutput(StakingTxError),
    /// The staking output is at another index than stated.
    #[error("staking output is at index {found}, the registration says {stated}")]
    StakingOutputIndex {
        /// The index stated in the registration.
        stated: u32,
        /// The index where the staking output is.
        found: u32,
    },
    /// More than one identifiable-staking OP_RETURN with the configured tag.
    #[error("{0} identifiable-staking op_returns with the configured tag, expected one")]
    SeveralOpReturns(usize),
    /// The tagged OP_RETURN is malformed.
    #[error("identifiable-staking op_return: {0}")]
    OpReturn(OpReturnError),
    /// The OP_RETURN names another staker, verifier or staking time than the registration.
    #[error("identifiable-staking op_return {op_return:?} does not describe this delegation")]
    OpReturnMismatch {
        /// What the OP_RETURN says.
        op_return: Box<IdentifiableStaking>,
    },
    /// The unbonding transaction breaks a rule of §4.
    #[error(transparent)]
    Unbonding(#[from] UnbondingError),
    /// The slashing transaction of the staking output breaks a rule of §4.
    #[error("staking slashing transaction: {0}")]
    Slashing(SlashingTxError),
    /// The slashing transaction of the unbonding output breaks a rule of §4.
    #[error("unbonding slashing transaction: {0}")]
    UnbondingSlashing(SlashingTxError),
    /// The staker's proof of possession does not verify.
    #[error(transparent)]
    Pop(#[from] PopError),
    /// The staker's pre-signature on the staking slashing transaction does not verify.
    #[error("staker signature on the staking slashing transaction: {0}")]
    StakerSlashingSignature(SignatureError),
    /// The staker's pre-signature on the unbonding slashing transaction does not verify.
    #[error("staker signature on the unbonding slashing transaction: {0}")]
    StakerUnbondingSlashingSignature(SignatureError),
    /// A sighash could not be computed (cannot happen once the shapes are checked).
    #[error(transparent)]
    Sighash(#[from] SighashError),
}

/// The messages every party signs for a delegation (BIP-0341 tapscript, `SIGHASH_DEFAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelegationSighashes {
    /// Staking slashing transaction, slashing leaf of the staking output. Covenant members
    /// adaptor-sign it to each verifier key; the staker pre-signs it.
    pub slashing: TapSighash,
    /// Unbonding transaction, unbonding leaf of the staking output. Covenant members sign it.
    pub unbonding: TapSighash,
    /// Unbonding slashing transaction, slashing leaf of the unbonding output.
    pub unbonding_slashing: TapSighash,
}

/// Why the messages of a delegation could not be computed (never once the shapes of §4 are
/// checked; typed anyway, with the transaction it concerns).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SighashesError {
    /// The spent output has no such leaf.
    #[error("leaf for the {what}: {source}")]
    Leaf {
        /// Which transaction.
        what: &'static str,
        /// The cause.
        source: TaprootError,
    },
    /// The BIP-0341 encoder refused the transaction.
    #[error("sighash of the {what}: {source}")]
    Sighash {
        /// Which transaction.
        what: &'static str,
        /// The cause.
        source: SighashError,
    },
}

impl From<SighashesError> for DelegationError {
    fn from(e: SighashesError) -> Self {
        match e {
            SighashesError::Leaf { source, .. } => DelegationError::Taproot(source),
            SighashesError::Sighash { source, .. } => DelegationError::Sighash(source),
        }
    }
}

/// The three signed spends of a delegation and the protocol outputs they spend: input 0 of
/// the staking slashing and the unbonding transaction spends the staking output, input 0 of
/// the unbonding slashing transaction spends output 0 of the unbonding transaction.
#[derive(Debug, Clone, Copy)]
pub struct DelegationSpends<'a> {
    /// The staking output.
    pub staking_output: &'a TaprootOutput,
    /// The staking output as funded (value and pkScript).
    pub staking_prevout: &'a TxOut,
    /// The unbonding output.
    pub unbonding_output: &'a TaprootOutput,
    /// The unbonding output as funded.
    pub unbonding_prevout: &'a TxOut,
    /// The staking slashing transaction.
    pub slashing_tx: &'a Transaction,
    /// The unbonding transaction.
    pub unbonding_tx: &'a Transaction,
    /// The unbonding slashing transaction.
    pub unbonding_slashing_tx: &'a Transaction,
}

impl DelegationSighashes {
    /// Length of [`DelegationSighashes::to_bytes`].
    pub const ENCODED_LEN: usize = 96;

    /// The one computation of a delegation's messages, shared by registration checks, the
    /// covenant committee and the node, so that all of them sign and check the same bytes.
    pub fn compute(s: &DelegationSpends<'_>) -> Result<Self, SighashesError> {
        let leaf_sighash = |tx: &Transaction,
                            prevout: &TxOut,
                            output: &TaprootOutput,
                            leaf: Leaf,
                            what: &'static str| {
            let leaf_hash = output
                .leaf_hash(leaf)
                .map_err(|source| SighashesError::Leaf { what, source })?;
            tapscript_sighash_for_leaf(tx, 0, std::slice::from_ref(prevout), leaf_hash)
                .map_err(|source| SighashesError::Sighash { what, source })
        };
        Ok(DelegationSighashes {
            slashing: leaf_sighash(
                s.slashing_tx,
                s.staking_prevout,
                s.staking_output,
                Leaf::Slashing,
                "staking slashing transaction",
            )?,
            unbonding: leaf_sighash(
                s.unbonding_tx,
                s.staking_prevout,
                s.staking_output,
                Leaf::Unbonding,
                "unbonding transaction",
            )?,
            unbonding_slashing: leaf_sighash(
                s.unbonding_slashing_tx,
                s.unbonding_prevout,
                s.unbonding_output,
                Leaf::Slashing,
                "unbonding slashing transaction",
            )?,
        })
    }

    /// `slashing ‖ unbonding ‖ unbonding_slashing`, for storage.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..32].copy_from_slice(self.slashing.as_byte_array());
        out[32..64].copy_from_slice(self.unbonding.as_byte_array());
        out[64..].copy_from_slice(self.unbonding_slashing.as_byte_array());
        out
    }

    /// The inverse of [`DelegationSighashes::to_bytes`]; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::ENCODED_LEN {
            return None;
        }
        let hash = |range: std::ops::Range<usize>| {
            let mut h = [0u8; 32];
            h.copy_from_slice(&bytes[range]);
            TapSighash::from_byte_array(h)
        };
        Some(DelegationSighashes {
            slashing: hash(0..32),
            unbonding: hash(32..64),
            unbonding_slashing: hash(64..96),
        })
    }
}

/// A registration that passed every rule, with everything derived while checking it.
#[derive(Debug, Clone)]
pub struct ValidatedDelegation {
    /// The checked key sets (verifiers and covenants sorted).
    pub keys: StakingKeys,
    /// The staking output.
    pub staking_output: TaprootOutput,
    /// Where the staking output is.
    pub staking_outpoint: OutPoint,
    /// The staked value.
    pub staking_value: Amount,
    /// The staking time `T`.
    pub staking_time: u32,
    /// The unbonding output.
    pub unbonding_output: TaprootOutput,
    /// Where the unbonding output will be (output 0 of the unbonding transaction).
    pub unbonding_outpoint: OutPoint,
    /// The unbonded value (staking value − unbonding fee).
    pub unbonding_value: Amount,
    /// The staker's change output of both slashing transactions.
    pub slashing_change_output: TaprootOutput,
    /// What the staking slashing transaction moves.
    pub slashing: SlashingSummary,
    /// What the unbonding slashing transaction moves.
    pub unbonding_slashing: SlashingSummary,
    /// The identifiable-staking OP_RETURN, when the staking transaction carries one.
    pub op_return: Option<IdentifiableStaking>,
    /// The messages the covenant committee and the staker sign.
    pub sighashes: DelegationSighashes,
}

impl ValidatedDelegation {
    /// The staking transaction id.
    pub fn staking_txid(&self) -> Txid {
        self.staking_outpoint.txid
    }

    /// The staking output as a transaction output (the prevout of its spends).
    pub fn staking_txout(&self) -> TxOut {
        self.staking_output.txout(self.staking_value)
    }

    /// The unbonding output as a transaction output.
    pub fn unbonding_txout(&self) -> TxOut {
        self.unbonding_output.txout(self.unbonding_value)
    }
}

/// Checks a registration against the parameter version in force (`params`, valid per
/// [`Params::validate`]) and the node's signing contexts: every rule of §4 (staking output,
/// OP_RETURN, unbonding and both slashing transactions), §7 (bounds, exact unbonding time and
/// fee) and §8 (one verifier, proof of possession, staker pre-signatures on both slashing
/// transactions).
pub fn validate_delegation(
    params: &Params,
    contexts: &SigningContexts,
    registration: &Registration,
) -> Result<ValidatedDelegation, DelegationError> {
    let r = registration;
    if r.verifier_pks.len() > params.max_verifiers_per_delegation as usize {
        return Err(DelegationError::TooManyVerifiers {
            got: r.verifier_pks.len(),
            max: params.max_verifiers_per_delegation,
        });
    }
    let keys = StakingKeys::new(
        r.staker_pk,
        &r.verifier_pks,
        &params.covenant_pks,
        params.covenant_quorum,
    )?;
    check_bounds(params, r)?;

    // Staking transaction: exactly one output equal to the staking output, at the stated index.
    let staking_output = TaprootOutput::staking(&keys, r.staking_time)?;
    let staking_value = Amount::from_sat(r.staking_value_sat);
    let staking_txout = staking_output.txout(staking_value);
    let found = find_staking_output(&r.staking_tx, &staking_txout)
        .map_err(DelegationError::StakingOutput)?;
    if found != r.staking_output_index {
        return Err(DelegationError::StakingOutputIndex {
            stated: r.staking_output_index,
            found,
        });
    }
    let op_return = check_op_return(params, r, &staking_txout)?;
    let staking_outpoint = OutPoint::new(r.staking_tx.compute_txid(), found);

    // Unbonding transaction: exact time (checked above), fee and output.
    let unbonding_output = TaprootOutput::unbonding(&keys, r.unbonding_time)?;
    let unbonding_value = validate_unbonding_tx(
        &r.unbonding_tx,
        staking_outpoint,
        staking_value,
        &unbonding_output,
        params.unbonding_fee(),
    )?;
    let unbonding_outpoint = OutPoint::new(r.unbonding_tx.compute_txid(), 0);

    // Both slashing transactions pay the same change output.
    let slashing_change_output = TaprootOutput::slashing_change(&r.staker_pk, r.unbonding_time)?;
    let change_script = slashing_change_output.script_pubkey();
    let terms = SlashingTerms {
        slashing_pk_script: &params.slashing_pk_script,
        slashing_rate: params.slashing_rate,
        min_fee: params.min_slashing_fee(),
    };
    let slashing = validate_slashing_tx(
        &r.slashing_tx,
        staking_outpoint,
        staking_value,
        &terms,
        &change_script,
    )
    .map_err(DelegationError::Slashing)?;
    let unbonding_slashing = validate_slashing_tx(
        &r.unbonding_slashing_tx,
        unbonding_outpoint,
        unbonding_value,
        &terms,
        &change_script,
    )
    .map_err(DelegationError::UnbondingSlashing)?;

    // Signatures last: they are the expensive checks.
    r.pop
        .verify(contexts, PopRole::Staker, &r.staker_account, &r.staker_pk)?;
    let unbonding_txout = unbonding_output.txout(unbonding_value);
    let sighashes = DelegationSighashes::compute(&DelegationSpends {
        staking_output: &staking_output,
        staking_prevout: &staking_txout,
        unbonding_output: &unbonding_output,
        unbonding_prevout: &unbonding_txout,
        slashing_tx: &r.slashing_tx,
        unbonding_tx: &r.unbonding_tx,
        unbonding_slashing_tx: &r.unbonding_slashing_tx,
    })?;
    verify(&sighashes.slashing, &r.staker_slashing_sig, &r.staker_pk)
        .map_err(DelegationError::StakerSlashingSignature)?;
    verify(
        &sighashes.unbonding_slashing,
        &r.staker_unbonding_slashing_sig,
        &r.staker_pk,
    )
    .map_err(DelegationError::StakerUnbondingSlashingSignature)?;

    Ok(ValidatedDelegation {
        keys,
        staking_output,
        staking_outpoint,
        staking_value,
        staking_time: r.staking_time,
        unbonding_output,
        unbonding_outpoint,
        unbonding_value,
        slashing_change_output,
        slashing,
        unbonding_slashing,
        op_return,
        sighashes,
    })
}

/// The §7 bounds on time and value, and the exact unbonding time.
fn check_bounds(params: &Params, r: &Registration) -> Result<(), DelegationError> {
    let (min_t, max_t) = (
        params.min_staking_time_blocks,
        params.max_staking_time_blocks,
    );
    if !(min_t..=max_t).contains(&r.staking_time) {
        return Err(DelegationError::StakingTime {
            time: r.staking_time,
            min: min_t,
            max: max_t,
        });
    }
    let (min_v, max_v) = (params.min_staking_value_sat, params.max_staking_value_sat);
    if !(min_v..=max_v).contains(&r.staking_value_sat) {
        return Err(DelegationError::StakingValue {
            value: r.staking_value_sat,
            min: min_v,
            max: max_v,
        });
    }
    if r.unbonding_time != params.unbonding_time_blocks {
        return Err(DelegationError::UnbondingTime {
            got: r.unbonding_time,
            want: params.unbonding_time_blocks,
        });
    }
    Ok(())
}

/// The optional V0 OP_RETURN: when an output carries the configured tag, there is exactly one
/// such output, it names this staker, this (single) verifier and this staking time, and no other
/// output pays to the staking script. (At least two outputs follows: the staking output, found
/// by the caller, and the OP_RETURN.)
fn check_op_return(
    params: &Params,
    r: &Registration,
    staking_txout: &TxOut,
) -> Result<Option<IdentifiableStaking>, DelegationError> {
    let Some(tag) = params.identifiable_staking_tag else {
        return Ok(None);
    };
    let mut tagged = r
        .staking_tx
        .output
        .iter()
        .filter(|out| IdentifiableStaking::carries_tag(&out.script_pubkey, &tag));
    let Some(first) = tagged.next() else {
        return Ok(None);
    };
    let more = tagged.count();
    if more > 0 {
        return Err(DelegationError::SeveralOpReturns(1 + more));
    }
    let data = IdentifiableStaking::parse(&first.script_pubkey, &tag)
        .map_err(DelegationError::OpReturn)?;
    let names_this_delegation = data.staker == r.staker_pk
        && r.verifier_pks.as_slice() == [data.verifier]
        && u32::from(data.staking_time) == r.staking_time;
    if !names_this_delegation {
        return Err(DelegationError::OpReturnMismatch {
            op_return: Box::new(data),
        });
    }
    // With the OP_RETURN, no second output may pay to the staking script (whatever its value).
    let same_script = r
        .staking_tx
        .output
        .iter()
        .filter(|out| out.script_pubkey == staking_txout.script_pubkey)
        .count();
    if same_script != 1 {
        return Err(DelegationError::StakingOutput(
            StakingTxError::SeveralMatchingScripts(same_script),
        ));
    }
    Ok(Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::Account;
    use crate::context::SigningOp;
    use crate::params::tests::params;
    use crate::registration::{build_registration, StakerChoices};
    use crate::testutil::{key, keypair};
    use bitcoin::absolute::LockTime;
    use bitcoin::hashes::Hash;
    use bitcoin::secp256k1::XOnlyPublicKey;
    use bitcoin::transaction::Version;
    use bitcoin::{ScriptBuf, Transaction, TxIn};

    const VALUE: u64 = 1_000_000;
    const TIME: u32 = 1_000;

    fn contexts() -> SigningContexts {
        SigningContexts::new("fiamma-test", "fmma1staking")
    }

    fn staking_output(verifiers: &[XOnlyPublicKey], time: u32) -> TaprootOutput {
        let p = params();
        let keys = StakingKeys::new(key(1), verifiers, &p.covenant_pks, p.covenant_quorum)
            .expect("valid keys");
        TaprootOutput::staking(&keys, time).expect("valid time")
    }

    fn staking_tx(outputs: Vec<TxOut>) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([3; 32]), 1),
                ..TxIn::default()
            }],
            output: outputs,
        }
    }

    fn register(params: &Params, tx: Transaction, index: u32) -> Registration {
        let staker = keypair(1);
        build_registration(
            params,
            &contexts(),
            StakerChoices {
                staker: &staker,
                account: Account([9; 20]),
                verifier_pks: vec![key(2)],
                staking_tx: tx,
                staking_output_index: index,
                staking_time: TIME,
                slashing_fee: Amount::from_sat(2_000),
            },
        )
        .expect("registration builds")
    }

    fn valid() -> Registration {
        let out = staking_output(&[key(2)], TIME).txout(Amount::from_sat(VALUE));
        register(&params(), staking_tx(vec![out]), 0)
    }

    fn op_return(staking_time: u16) -> TxOut {
        let data = IdentifiableStaking {
            tag: *b"fmma",
            staker: key(1),
            verifier: key(2),
            staking_time,
        };
        TxOut {
            value: Amount::ZERO,
            script_pubkey: data.script(),
        }
    }

    fn check(r: &Registration) -> Result<ValidatedDelegation, DelegationError> {
        validate_delegation(&params(), &contexts(), r)
    }

    #[test]
    fn a_built_registration_is_valid_and_its_sighashes_verify() {
        let r = valid();
        let v = check(&r).unwrap();
        assert_eq!(v.staking_value, Amount::from_sat(VALUE));
        assert_eq!(v.unbonding_value, Amount::from_sat(VALUE - 1_000));
        assert_eq!(v.slashing.slashed, Amount::from_sat(100_000));
        assert_eq!(v.slashing.fee, Amount::from_sat(2_000));
        assert_eq!(v.staking_txid(), r.staking_tx.compute_txid());
        assert!(v.op_return.is_none());
        let sig = crate::sighash::sign(&v.sighashes.unbonding, &keypair(11));
        assert_eq!(verify(&v.sighashes.unbonding, &sig, &key(11)), Ok(()));
        assert_eq!(v.staking_txout(), r.staking_tx.output[0]);
        assert_eq!(v.unbonding_txout(), r.unbonding_tx.output[0]);
    }

    #[test]
    fn too_many_verifiers() {
        let mut r = valid();
        r.verifier_pks.push(key(3));
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::TooManyVerifiers { got: 2, max: 1 }
        );
    }

    #[test]
    fn repeated_or_missing_keys() {
        let mut r = valid();
        r.verifier_pks = vec![key(11)];
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::Keys(KeyError::Duplicate(key(11)))
        );
        r.verifier_pks = vec![key(1)];
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::Keys(KeyError::Duplicate(key(1)))
        );
        r.verifier_pks.clear();
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::Keys(KeyError::Empty("verifier"))
        );
    }

    #[test]
    fn staking_time_out_of_bounds() {
        let mut r = valid();
        r.staking_time = 9;
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::StakingTime {
                time: 9,
                min: 10,
                max: 65_535
            }
        );
    }

    #[test]
    fn staking_value_out_of_bounds() {
        let mut r = valid();
        r.staking_value_sat = 9_999;
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::StakingValue {
                value: 9_999,
                min: 10_000,
                max: 10_000_000_000
            }
        );
    }

    #[test]
    fn unbonding_time_not_the_parameter() {
        let mut r = valid();
        r.unbonding_time = 100;
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::UnbondingTime {
                got: 100,
                want: 101
            }
        );
    }

    #[test]
    fn staking_output_missing_for_the_stated_value() {
        let mut r = valid();
        r.staking_value_sat = VALUE + 1;
        assert!(matches!(
            check(&r).unwrap_err(),
            DelegationError::StakingOutput(StakingTxError::NoStakingOutput { .. })
        ));
    }

    #[test]
    fn staking_output_at_another_index() {
        let out = staking_output(&[key(2)], TIME).txout(Amount::from_sat(VALUE));
        let change = TxOut {
            value: Amount::from_sat(5_000),
            script_pubkey: ScriptBuf::new(),
        };
        let mut r = register(&params(), staking_tx(vec![change, out]), 1);
        r.staking_output_index = 0;
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::StakingOutputIndex {
                stated: 0,
                found: 1
            }
        );
    }

    #[test]
    fn op_return_accepted_when_it_names_the_delegation() {
        let out = staking_output(&[key(2)], TIME).txout(Amount::from_sat(VALUE));
        let r = register(&params(), staking_tx(vec![out, op_return(1000)]), 0);
        assert_eq!(check(&r).unwrap().op_return.unwrap().staking_time, 1000);
    }

    #[test]
    fn several_op_returns() {
        let out = staking_output(&[key(2)], TIME).txout(Amount::from_sat(VALUE));
        let tx = staking_tx(vec![out, op_return(1000), op_return(1000)]);
        let r = register(&params(), tx, 0);
        assert_eq!(check(&r).unwrap_err(), DelegationError::SeveralOpReturns(2));
    }

    #[test]
    fn malformed_op_return() {
        let out = staking_output(&[key(2)], TIME).txout(Amount::from_sat(VALUE));
        let mut bad = op_return(1000);
        let mut bytes = bad.script_pubkey.to_bytes();
        bytes[6] = 1;
        bad.script_pubkey = ScriptBuf::from_bytes(bytes);
        let r = register(&params(), staking_tx(vec![out, bad]), 0);
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::OpReturn(OpReturnError::Version(1))
        );
    }

    #[test]
    fn op_return_naming_another_delegation() {
        let out = staking_output(&[key(2)], TIME).txout(Amount::from_sat(VALUE));
        let r = register(&params(), staking_tx(vec![out, op_return(999)]), 0);
        assert!(matches!(
            check(&r).unwrap_err(),
            DelegationError::OpReturnMismatch { op_return } if op_return.staking_time == 999
        ));
    }

    #[test]
    fn op_return_with_a_second_output_to_the_staking_script() {
        let output = staking_output(&[key(2)], TIME);
        let tx = staking_tx(vec![
            output.txout(Amount::from_sat(VALUE)),
            op_return(1000),
            output.txout(Amount::from_sat(VALUE + 1)),
        ]);
        let r = register(&params(), tx, 0);
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::StakingOutput(StakingTxError::SeveralMatchingScripts(2))
        );
    }

    #[test]
    fn unbonding_transaction_rule() {
        let mut r = valid();
        r.unbonding_tx.output[0].value = Amount::from_sat(VALUE - 2_000);
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::Unbonding(UnbondingError::OutputValue {
                got: Amount::from_sat(VALUE - 2_000),
                want: Amount::from_sat(VALUE - 1_000)
            })
        );
    }

    #[test]
    fn staking_slashing_transaction_rule() {
        let mut r = valid();
        r.slashing_tx.version = Version(3);
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::Slashing(SlashingTxError::Version(3))
        );
    }

    #[test]
    fn unbonding_slashing_transaction_rule() {
        let mut r = valid();
        r.unbonding_slashing_tx.input[0].previous_output.vout = 1;
        assert!(matches!(
            check(&r).unwrap_err(),
            DelegationError::UnbondingSlashing(SlashingTxError::Shape(_))
        ));
    }

    #[test]
    fn proof_of_possession_for_another_account() {
        let mut r = valid();
        r.staker_account = Account([8; 20]);
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::Pop(PopError::Invalid {
                key: key(1),
                account: Account([8; 20])
            })
        );
        let r = valid();
        let off = contexts().without(SigningOp::StakerPop);
        assert!(matches!(
            validate_delegation(&params(), &off, &r),
            Err(DelegationError::Pop(_))
        ));
    }

    #[test]
    fn staker_slashing_signature_invalid() {
        let mut r = valid();
        r.staker_slashing_sig = r.staker_unbonding_slashing_sig;
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::StakerSlashingSignature(SignatureError::Invalid { key: key(1) })
        );
    }

    #[test]
    fn staker_unbonding_slashing_signature_invalid() {
        let mut r = valid();
        r.staker_unbonding_slashing_sig = r.staker_slashing_sig;
        assert_eq!(
            check(&r).unwrap_err(),
            DelegationError::StakerUnbondingSlashingSignature(SignatureError::Invalid {
                key: key(1)
            })
        );
    }
}
