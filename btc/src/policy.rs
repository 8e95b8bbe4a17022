//! Mempool acceptance: Bitcoin Core's checks for a single transaction against a coin view,
//! with Bitcoin Core's reject reasons.
//!
//! The checks run in Core's order: context-free checks, finality (nLockTime, BIP-113),
//! input existence, coinbase maturity, amounts, BIP-68 relative locks, the minimum relay
//! fee, and last Bitcoin Core's own script interpreter with every consensus flag. Pure
//! apart from the interpreter call, which is deterministic.

use std::collections::BTreeSet;

use bitcoin::{absolute, Amount, OutPoint, Sequence, Transaction, TxOut, Txid};

use super::backend::RejectionKind;
use super::kernel::{verify_scripts, ScriptFailure};

/// Confirmations a coinbase output needs before it can be spent.
pub const COINBASE_MATURITY: u32 = 100;

/// Bitcoin Core's default minimum relay fee rate, in satoshis per virtual byte.
pub const MIN_RELAY_FEE_SAT_PER_VB: u64 = 1;

/// Bitcoin Core's standardness limit on transaction weight.
pub const MAX_STANDARD_TX_WEIGHT: u64 = 400_000;

/// BIP-68: when set in nSequence, the input has no relative lock.
const SEQUENCE_DISABLE_FLAG: u32 = 1 << 31;
/// BIP-68: when set, the lock counts 512-second units instead of blocks.
const SEQUENCE_TYPE_FLAG: u32 = 1 << 22;
/// BIP-68: the lock value.
const SEQUENCE_VALUE_MASK: u32 = 0x0000_ffff;

/// An output a transaction spends, as the coin view sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentCoin {
    /// The output.
    pub output: TxOut,
    /// Height of its block; the next block's height for a mempool parent.
    pub height: u32,
    /// Whether a coinbase created it.
    pub is_coinbase: bool,
    /// Median time past of the block before the coin's block (BIP-68 time locks count from it).
    pub prev_median_time_past: u32,
}

/// Where the transaction would be mined: the next block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextBlock {
    /// Height of the next block (tip + 1).
    pub height: u32,
    /// Median time past of the current tip (BIP-113 lock time reference).
    pub median_time_past: u32,
}

/// A transaction passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Inputs minus outputs.
    pub fee: Amount,
    /// Virtual size in vbytes.
    pub vsize: u64,
}

/// Why the mempool refused a transaction. The message is Bitcoin Core's reject reason,
/// followed by its debug detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxReject {
    /// No inputs.
    #[error("bad-txns-vin-empty")]
    NoInputs,
    /// No outputs.
    #[error("bad-txns-vout-empty")]
    NoOutputs,
    /// A coinbase cannot be relayed.
    #[error("coinbase")]
    Coinbase,
    /// The same outpoint appears twice among the inputs.
    #[error("bad-txns-inputs-duplicate, {0} spent twice")]
    DuplicateInput(OutPoint),
    /// An output or the output total exceeds 21 million BTC.
    #[error("bad-txns-txouttotal-toolarge")]
    OutputTotalTooLarge,
    /// Heavier than the standard limit.
    #[error("tx-size, weight {0} exceeds {MAX_STANDARD_TX_WEIGHT}")]
    TooLarge(u64),
    /// The same transaction is already in the mempool.
    #[error("txn-already-in-mempool")]
    AlreadyInMempool,
    /// Another mempool transaction spends one of the inputs.
    #[error("txn-mempool-conflict, {outpoint} already spent by {spender}")]
    MempoolConflict {
        /// The contested outpoint.
        outpoint: OutPoint,
        /// The mempool transaction that spends it.
        spender: Txid,
    },
    /// nLockTime is not yet reached at the next block.
    #[error("non-final, lock time {lock_time} not reached at height {height} (median time {median_time_past})")]
    NonFinal {
        /// The transaction's lock time.
        lock_time: absolute::LockTime,
        /// Height of the next block.
        height: u32,
        /// Median time past of the tip.
        median_time_past: u32,
    },
    /// An input does not exist or is spent.
    #[error("bad-txns-inputs-missingorspent, {0} missing or spent")]
    MissingInputs(OutPoint),
    /// A coinbase output is spent before 100 confirmations.
    #[error("bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth {depth}")]
    PrematureCoinbaseSpend {
        /// Depth of the coinbase at the next block.
        depth: u32,
    },
    /// Outputs exceed inputs.
    #[error("bad-txns-in-belowout, value in ({value_in}) < value out ({value_out})")]
    InBelowOut {
        /// Sum of the spent outputs.
        value_in: Amount,
        /// Sum of the new outputs.
        value_out: Amount,
    },
    /// A BIP-68 relative lock of an input is not yet reached.
    #[error("non-BIP68-final, input {input} relative lock {sequence} not reached")]
    NonBip68Final {
        /// The locked input.
        input: usize,
        /// Its nSequence.
        sequence: Sequence,
    },
    /// Fee below the minimum relay fee rate.
    #[error("min relay fee not met, {fee} < {min}")]
    MinRelayFee {
        /// The fee paid.
        fee: Amount,
        /// The minimum for this size.
        min: Amount,
    },
    /// Bitcoin Core's interpreter refused an input's script.
    #[error("mandatory-script-verify-flag-failed ({0})")]
    Script(ScriptFailure),
}

impl TxReject {
    /// Bitcoin Core's category of this rejection.
    pub fn kind(&self) -> RejectionKind {
        match self {
            TxReject::MissingInputs(_) => RejectionKind::MissingOrSpentInputs,
            _ => RejectionKind::Rejected,
        }
    }

    /// Bitcoin Core's short reject reason, as `testmempoolaccept` reports it.
    pub fn short_reason(&self) -> String {
        let full = self.to_string();
        match full.split_once(", ") {
            Some((short, _)) if !matches!(self, TxReject::Script(_)) => short.to_owned(),
            _ => full,
        }
    }
}

/// Checks that need nothing but the transaction.
pub fn check_stateless(tx: &Transaction) -> Result<(), TxReject> {
    if tx.input.is_empty() {
        return Err(TxReject::NoInputs);
    }
    if tx.output.is_empty() {
        return Err(TxReject::NoOutputs);
    }
    if tx.is_coinbase() {
        return Err(TxReject::Coinbase);
    }
    let mut seen = BTreeSet::new();
    for input in &tx.input {
        if !seen.insert(input.previous_output) {
            return Err(TxReject::DuplicateInput(input.previous_output));
        }
    }
    let total = tx
        .output
        .iter()
        .try_fold(Amount::ZERO, |acc, out| acc.checked_add(out.value));
    if !matches!(total, Some(t) if t <= Amount::MAX_MONEY) {
        return Err(TxReject::OutputTotalTooLarge);
    }
    let weight = tx.weight().to_wu();
    if weight > MAX_STANDARD_TX_WEIGHT {
        return Err(TxReject::TooLarge(weight));
    }
    Ok(())
}

/// Whether nLockTime allows the transaction in the next block (Bitcoin Core's `IsFinalTx`
/// with BIP-113 median time).
pub fn is_final(tx: &Transaction, next: NextBlock) -> bool {
    let satisfied = match tx.lock_time {
        absolute::LockTime::Blocks(h) => h.to_consensus_u32() < next.height,
        absolute::LockTime::Seconds(t) => t.to_consensus_u32() < next.median_time_past,
    };
    tx.lock_time == absolute::LockTime::ZERO
        || satisfied
        || tx.input.iter().all(|i| i.sequence == Sequence::MAX)
}

/// The first input whose BIP-68 relative lock is not met in the next block
/// (Bitcoin Core's `SequenceLocks`); `None` when all are met.
pub fn first_unmet_relative_lock(
    tx: &Transaction,
    coins: &[SpentCoin],
    next: NextBlock,
) -> Option<usize> {
    if tx.version.0 < 2 {
        return None;
    }
    tx.input.iter().zip(coins).position(|(input, coin)| {
        let seq = input.sequence.0;
        if seq & SEQUENCE_DISABLE_FLAG != 0 {
            return false;
        }
        let value = i64::from(seq & SEQUENCE_VALUE_MASK);
        if seq & SEQUENCE_TYPE_FLAG != 0 {
            let min_time = i64::from(coin.prev_median_time_past) + (value << 9) - 1;
            min_time >= i64::from(next.median_time_past)
        } else {
            let min_height = i64::from(coin.height) + value - 1;
            min_height >= i64::from(next.height)
        }
    })
}

/// The minimum relay fee of `vsize` virtual bytes.
pub fn min_relay_fee(vsize: u64) -> Amount {
    Amount::from_sat(vsize.saturating_mul(MIN_RELAY_FEE_SAT_PER_VB))
}

/// Runs every mempool check on `tx`. `lookup` resolves an outpoint in the confirmed UTXO set
/// or among unconfirmed mempool outputs; `conflict` names the mempool transaction already
/// spending an outpoint.
pub fn check_transaction(
    tx: &Transaction,
    next: NextBlock,
    lookup: impl Fn(&OutPoint) -> Option<SpentCoin>,
    conflict: impl Fn(&OutPoint) -> Option<Txid>,
) -> Result<Accepted, TxReject> {
    check_transaction_with(tx, next, lookup, conflict, FeeCheck::Individual)
}

/// Whose fee must meet the minimum relay fee rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeeCheck {
    /// The transaction's own fee (`sendrawtransaction`).
    Individual,
    /// The fee of the package it is part of, checked by the caller (`submitpackage`): the
    /// transaction alone may pay less, even nothing.
    Package,
}

/// [`check_transaction`], with the minimum relay fee left to the caller when `fee_check` is
/// [`FeeCheck::Package`]; every other check runs.
pub fn check_transaction_with(
    tx: &Transaction,
    next: NextBlock,
    lookup: impl Fn(&OutPoint) -> Option<SpentCoin>,
    conflict: impl Fn(&OutPoint) -> Option<Txid>,
    fee_check: FeeCheck,
) -> Result<Accepted, TxReject> {
    check_stateless(tx)?;
    if !is_final(tx, next) {
        return Err(TxReject::NonFinal {
            lock_time: tx.lock_time,
            height: next.height,
            median_time_past: next.median_time_past,
        });
    }
    for input in &tx.input {
        if let Some(spender) = conflict(&input.previous_output) {
            return Err(TxReject::MempoolConflict {
                outpoint: input.previous_output,
                spender,
            });
        }
    }
    let coins = tx
        .input
        .iter()
        .map(|i| lookup(&i.previous_output).ok_or(TxReject::MissingInputs(i.previous_output)))
        .collect::<Result<Vec<_>, _>>()?;
    for coin in &coins {
        let depth = next.height.saturating_sub(coin.height);
        if coin.is_coinbase && depth < COINBASE_MATURITY {
            return Err(TxReject::PrematureCoinbaseSpend { depth });
        }
    }
    let value_in = coins.iter().map(|c| c.output.value).sum::<Amount>();
    let value_out = tx.output.iter().map(|o| o.value).sum::<Amount>();
    let fee = value_in
        .checked_sub(value_out)
        .ok_or(TxReject::InBelowOut {
            value_in,
            value_out,
        })?;
    if let Some(input) = first_unmet_relative_lock(tx, &coins, next) {
        return Err(TxReject::NonBip68Final {
            input,
            sequence: tx.input[input].sequence,
        });
    }
    let vsize = tx.vsize() as u64;
    let min = min_relay_fee(vsize);
    if fee_check == FeeCheck::Individual && fee < min {
        return Err(TxReject::MinRelayFee { fee, min });
    }
    let spent: Vec<TxOut> = coins.into_iter().map(|c| c.output).collect();
    verify_scripts(tx, &spent).map_err(TxReject::Script)?;
    Ok(Accepted { fee, vsize })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{transaction, ScriptBuf, TxIn, Witness};
    use proptest::prelude::*;

    fn tx_with(sequence: Sequence, lock_time: absolute::LockTime, version: i32) -> Transaction {
        Transaction {
            version: transaction::Version(version),
            lock_time,
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::all_zeros(), 7),
                script_sig: ScriptBuf::new(),
                sequence,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(1_000),
                script_pubkey: ScriptBuf::new_op_return([0u8; 1]),
            }],
        }
    }

    fn coin(height: u32, is_coinbase: bool) -> SpentCoin {
        SpentCoin {
            // OP_TRUE: anyone can spend, so scripts pass and lock rules decide.
            output: TxOut {
                value: Amount::from_sat(10_000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            },
            height,
            is_coinbase,
            prev_median_time_past: 1_000_000,
        }
    }

    const NEXT: NextBlock = NextBlock {
        height: 200,
        median_time_past: 1_000_000,
    };

    #[test]
    fn height_relative_lock_counts_from_the_coin_height() {
        let tx = tx_with(Sequence::from_height(10), absolute::LockTime::ZERO, 2);
        // Coin at 190: the next block (200) is its 11th confirmation... 190 + 10 - 1 = 199 < 200.
        assert_eq!(
            first_unmet_relative_lock(&tx, &[coin(190, false)], NEXT),
            None
        );
        assert_eq!(
            first_unmet_relative_lock(&tx, &[coin(191, false)], NEXT),
            Some(0)
        );
        // Version 1 transactions have no relative locks.
        let v1 = tx_with(Sequence::from_height(10), absolute::LockTime::ZERO, 1);
        assert_eq!(
            first_unmet_relative_lock(&v1, &[coin(199, false)], NEXT),
            None
        );
    }

    #[test]
    fn time_relative_lock_counts_from_the_previous_median_time() {
        let tx = tx_with(
            Sequence::from_512_second_intervals(2),
            absolute::LockTime::ZERO,
            2,
        );
        let mut c = coin(150, false);
        c.prev_median_time_past = NEXT.median_time_past - 1024;
        assert_eq!(first_unmet_relative_lock(&tx, &[c.clone()], NEXT), None);
        c.prev_median_time_past += 1;
        assert_eq!(first_unmet_relative_lock(&tx, &[c], NEXT), Some(0));
    }

    #[test]
    fn lock_time_is_checked_against_the_next_height() {
        let lock = absolute::LockTime::from_height(200).expect("height");
        let tx = tx_with(Sequence::ENABLE_LOCKTIME_NO_RBF, lock, 2);
        assert!(!is_final(&tx, NEXT));
        let next = NextBlock {
            height: 201,
            ..NEXT
        };
        assert!(is_final(&tx, next));
        // All-final sequences disable nLockTime.
        assert!(is_final(&tx_with(Sequence::MAX, lock, 2), NEXT));
    }

    #[test]
    fn check_transaction_reports_core_reasons() {
        let tx = tx_with(Sequence::MAX, absolute::LockTime::ZERO, 2);
        let none = |_: &OutPoint| None;
        let err = check_transaction(&tx, NEXT, |_| None, none).unwrap_err();
        assert_eq!(err.kind(), RejectionKind::MissingOrSpentInputs);
        assert_eq!(err.short_reason(), "bad-txns-inputs-missingorspent");

        let err = check_transaction(&tx, NEXT, |_| Some(coin(150, true)), none).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth 50"
        );
        let ok = check_transaction(&tx, NEXT, |_| Some(coin(100, true)), none).expect("mature");
        assert_eq!(ok.fee, Amount::from_sat(9_000));

        let spender = Txid::from_byte_array([9; 32]);
        let err =
            check_transaction(&tx, NEXT, |_| Some(coin(1, false)), |_| Some(spender)).unwrap_err();
        assert_eq!(err.short_reason(), "txn-mempool-conflict");
    }

    #[test]
    fn outputs_above_inputs_are_refused() {
        let mut tx = tx_with(Sequence::MAX, absolute::LockTime::ZERO, 2);
        tx.output[0].value = Amount::from_sat(10_001);
        let err = check_transaction(&tx, NEXT, |_| Some(coin(1, false)), |_| None).unwrap_err();
        assert_eq!(err.short_reason(), "bad-txns-in-belowout");
    }

    #[test]
    fn a_failing_script_is_refused_by_the_interpreter() {
        let tx = tx_with(Sequence::MAX, absolute::LockTime::ZERO, 2);
        let mut c = coin(1, false);
        c.output.script_pubkey = ScriptBuf::from_bytes(vec![0x00]); // OP_FALSE
        let err = check_transaction(&tx, NEXT, |_| Some(c.clone()), |_| None).unwrap_err();
        assert!(matches!(
            err,
            TxReject::Script(ScriptFailure { input: 0, .. })
        ));
        assert!(err
            .to_string()
            .starts_with("mandatory-script-verify-flag-failed"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn relative_height_lock_met_exactly_when_depth_reached(
            coin_height in 0u32..10_000, lock in 0u16..1000, next_height in 1u32..12_000
        ) {
            let tx = tx_with(Sequence::from_height(lock), absolute::LockTime::ZERO, 2);
            let next = NextBlock { height: next_height, median_time_past: 0 };
            let unmet = first_unmet_relative_lock(&tx, &[coin(coin_height, false)], next).is_some();
            // Met when the next block is at least `lock` blocks after the coin's block.
            prop_assert_eq!(unmet, i64::from(next_height) - i64::from(coin_height) < i64::from(lock));
        }
    }
}
