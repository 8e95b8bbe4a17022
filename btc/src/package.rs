//! Package acceptance (`submitpackage`): the rules Bitcoin Core ≥ 29 applies to a package on
//! top of each member's own checks, as far as a one-parent-one-child checkpoint broadcast
//! needs them (`CHECKPOINTS.md` §13.7):
//!
//! - topology: 1 to 25 distinct transactions, a child last and only its parents before it,
//!   no parent spending another, no two members spending one outpoint;
//! - TRUC (BIP-431): version 3 transactions spend only version 3 unconfirmed parents and
//!   vice versa, weigh at most 10,000 vB, have at most one unconfirmed ancestor and one
//!   unconfirmed descendant, and a child of an unconfirmed TRUC parent is at most 1,000 vB;
//! - ephemeral dust: a transaction with a dust output pays no fee, has one dust output at
//!   most, and its child in the package spends it;
//! - fees: a member below the minimum relay fee rate is carried by the package's fee rate.
//!
//! Pure: the caller passes what the mempool knows about unconfirmed parents.

use std::collections::BTreeSet;

use bitcoin::{Amount, OutPoint, Transaction, Txid};

use super::policy::min_relay_fee;

/// Most transactions in a package (Bitcoin Core's `MAX_PACKAGE_COUNT`).
pub const MAX_PACKAGE_COUNT: usize = 25;
/// Largest TRUC transaction, in virtual bytes (`TRUC_MAX_VSIZE`).
pub const TRUC_MAX_VSIZE: u64 = 10_000;
/// Largest child of an unconfirmed TRUC parent (`TRUC_CHILD_MAX_VSIZE`).
pub const TRUC_CHILD_MAX_VSIZE: u64 = 1_000;

/// The package is not a child with its unconfirmed parents: refused before any member is
/// looked at (Bitcoin Core answers these with a JSON-RPC error, not per-transaction results).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// Empty or more than [`MAX_PACKAGE_COUNT`] transactions.
    #[error("Array must contain between 1 and {MAX_PACKAGE_COUNT} transactions.")]
    Count(usize),
    /// A transaction appears twice.
    #[error("package-contains-duplicates, {0} appears twice")]
    Duplicate(Txid),
    /// Not a child with its parents, or parents depend on each other.
    #[error("package topology disallowed. not child-with-parents or parents depend on each other. ({0})")]
    NotChildWithParents(String),
    /// Two members spend the same outpoint.
    #[error("conflict-in-package, {0} spent twice")]
    Conflict(OutPoint),
}

/// Checks the shape of a package: distinct transactions, the last one (the child) spends an
/// output of every other one, no other member spends a member, no outpoint spent twice.
///
/// # Errors
/// [`TopologyError`] naming the first rule broken.
pub fn check_topology(txs: &[Transaction]) -> Result<(), TopologyError> {
    if txs.is_empty() || txs.len() > MAX_PACKAGE_COUNT {
        return Err(TopologyError::Count(txs.len()));
    }
    let txids: Vec<Txid> = txs.iter().map(Transaction::compute_txid).collect();
    let mut seen = BTreeSet::new();
    for txid in &txids {
        if !seen.insert(*txid) {
            return Err(TopologyError::Duplicate(*txid));
        }
    }
    let mut spent = BTreeSet::new();
    for input in txs.iter().flat_map(|tx| &tx.input) {
        if !spent.insert(input.previous_output) {
            return Err(TopologyError::Conflict(input.previous_output));
        }
    }
    let Some((child, parents)) = txs.split_last() else {
        return Err(TopologyError::Count(0));
    };
    for (parent, txid) in parents.iter().zip(&txids) {
        if !child.input.iter().any(|i| i.previous_output.txid == *txid) {
            return Err(TopologyError::NotChildWithParents(format!(
                "the last transaction does not spend {txid}"
            )));
        }
        if parent
            .input
            .iter()
            .any(|i| seen.contains(&i.previous_output.txid))
        {
            return Err(TopologyError::NotChildWithParents(format!(
                "parent {txid} spends another member"
            )));
        }
    }
    Ok(())
}

/// An unconfirmed transaction a package member spends from (in the mempool or earlier in
/// the package), as the TRUC rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnconfirmedParent {
    /// Its txid.
    pub txid: Txid,
    /// Whether it is version 3.
    pub truc: bool,
    /// How many unconfirmed transactions it spends from itself.
    pub unconfirmed_parents: usize,
    /// Its unconfirmed children other than the member under check.
    pub other_children: usize,
    /// Its dust outputs.
    pub dust: Vec<OutPoint>,
}

/// A member that passed its own checks, with its fee and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    /// The transaction.
    pub tx: &'a Transaction,
    /// Its fee.
    pub fee: Amount,
    /// Its virtual size.
    pub vsize: u64,
    /// The unconfirmed transactions it spends from.
    pub parents: Vec<UnconfirmedParent>,
}

/// Why a package whose members each passed their own checks is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageRuleError {
    /// A TRUC rule is broken.
    #[error("TRUC-violation, {0}")]
    Truc(String),
    /// A transaction with a dust output pays a fee, or has more than one.
    #[error("dust, {0}")]
    Dust(String),
    /// A dust output of an unconfirmed parent is not spent by its child.
    #[error("missing-ephemeral-spends, {child} leaves dust output {dust} unspent")]
    MissingEphemeralSpends {
        /// The child.
        child: Txid,
        /// The unspent dust output.
        dust: OutPoint,
    },
    /// The package's fee rate is below the minimum relay fee rate.
    #[error("package-fee-too-low, package fee {fee} < {min} for {vsize} vB")]
    FeeTooLow {
        /// The package's fee.
        fee: Amount,
        /// The minimum for its size.
        min: Amount,
        /// Its virtual size.
        vsize: u64,
    },
}

impl PackageRuleError {
    /// The transaction to blame, among `members` (the child when the package as a whole is).
    pub fn blame(&self, members: &[Member<'_>]) -> Option<Txid> {
        let last = members.last().map(|m| m.tx.compute_txid());
        match self {
            // The reasons name the offending transaction first.
            PackageRuleError::Truc(reason) | PackageRuleError::Dust(reason) => members
                .iter()
                .map(|m| m.tx.compute_txid())
                .filter_map(|t| reason.find(&t.to_string()).map(|at| (at, t)))
                .min_by_key(|(at, _)| *at)
                .map(|(_, t)| t)
                .or(last),
            PackageRuleError::MissingEphemeralSpends { child, .. } => Some(*child),
            PackageRuleError::FeeTooLow { .. } => last,
        }
    }
}

/// The outputs of `tx` below the dust threshold (3 sat/vB dust relay fee; 240 sat for P2A);
/// `OP_RETURN` outputs are never dust.
pub fn dust_outputs(tx: &Transaction) -> Vec<OutPoint> {
    let txid = tx.compute_txid();
    tx.output
        .iter()
        .enumerate()
        .filter(|(_, o)| o.value < o.script_pubkey.minimal_non_dust())
        .filter_map(|(vout, _)| u32::try_from(vout).ok().map(|v| OutPoint::new(txid, v)))
        .collect()
}

/// Applies the TRUC, ephemeral dust and package fee rules to `members`, the package's
/// transactions not yet in the mempool, in package order.
///
/// # Errors
/// [`PackageRuleError`] naming the first rule broken.
pub fn check_package_rules(members: &[Member<'_>]) -> Result<(), PackageRuleError> {
    for m in members {
        check_truc(m)?;
        check_dust(m)?;
    }
    let fee: Amount = members.iter().map(|m| m.fee).sum();
    let vsize: u64 = members.iter().map(|m| m.vsize).sum();
    let min = min_relay_fee(vsize);
    let all_pay = members.iter().all(|m| m.fee >= min_relay_fee(m.vsize));
    // Only parents may be carried: a child below the rate with paying parents would be left
    // alone in the mempool by Core's per-transaction evaluation.
    let child_pays = members
        .last()
        .is_none_or(|c| c.fee >= min_relay_fee(c.vsize));
    if all_pay || (child_pays && fee >= min) {
        return Ok(());
    }
    Err(PackageRuleError::FeeTooLow { fee, min, vsize })
}

fn check_truc(m: &Member<'_>) -> Result<(), PackageRuleError> {
    let txid = m.tx.compute_txid();
    let truc = m.tx.version.0 == 3;
    if truc && m.vsize > TRUC_MAX_VSIZE {
        return Err(PackageRuleError::Truc(format!(
            "version=3 tx {txid} is too big: {} > {TRUC_MAX_VSIZE} virtual bytes",
            m.vsize
        )));
    }
    for p in &m.parents {
        if p.truc && !truc {
            return Err(PackageRuleError::Truc(format!(
                "non-version=3 tx {txid} cannot spend from version=3 tx {}",
                p.txid
            )));
        }
        if truc && !p.truc {
            return Err(PackageRuleError::Truc(format!(
                "version=3 tx {txid} cannot spend from non-version=3 tx {}",
                p.txid
            )));
        }
    }
    if !truc || m.parents.is_empty() {
        return Ok(());
    }
    if m.parents.len() > 1 || m.parents[0].unconfirmed_parents > 0 {
        return Err(PackageRuleError::Truc(format!(
            "tx {txid} would have too many ancestors"
        )));
    }
    if m.parents[0].other_children > 0 {
        return Err(PackageRuleError::Truc(format!(
            "tx {} would exceed descendant count limit with {txid}",
            m.parents[0].txid
        )));
    }
    if m.vsize > TRUC_CHILD_MAX_VSIZE {
        return Err(PackageRuleError::Truc(format!(
            "version=3 child tx {txid} is too big: {} > {TRUC_CHILD_MAX_VSIZE} virtual bytes",
            m.vsize
        )));
    }
    Ok(())
}

fn check_dust(m: &Member<'_>) -> Result<(), PackageRuleError> {
    let txid = m.tx.compute_txid();
    let dust = dust_outputs(m.tx);
    if dust.len() > 1 {
        return Err(PackageRuleError::Dust(format!(
            "tx {txid} has {} dust outputs, at most one is allowed",
            dust.len()
        )));
    }
    if !dust.is_empty() && m.fee != Amount::ZERO {
        return Err(PackageRuleError::Dust(format!(
            "tx with dust output must be 0-fee ({txid} pays {})",
            m.fee
        )));
    }
    let spent: BTreeSet<OutPoint> = m.tx.input.iter().map(|i| i.previous_output).collect();
    for p in &m.parents {
        if let Some(dust) = p.dust.iter().find(|d| !spent.contains(d)) {
            return Err(PackageRuleError::MissingEphemeralSpends {
                child: txid,
                dust: *dust,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tx::spend;
    use bitcoin::hashes::Hash;
    use bitcoin::{transaction, ScriptBuf, Sequence, TxOut};

    fn p2a() -> TxOut {
        TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(vec![0x51, 0x02, 0x4e, 0x73]),
        }
    }

    fn parent() -> Transaction {
        let mut tx = spend(
            OutPoint::new(Txid::all_zeros(), 0),
            Amount::from_sat(1_000),
            Sequence::MAX,
        );
        tx.version = transaction::Version(3);
        tx.output.push(p2a());
        tx
    }

    fn child_of(parent: &Transaction, vout: u32) -> Transaction {
        let mut tx = spend(
            OutPoint::new(parent.compute_txid(), vout),
            Amount::from_sat(1_000),
            Sequence::MAX,
        );
        tx.version = transaction::Version(3);
        tx
    }

    fn as_parent(tx: &Transaction) -> UnconfirmedParent {
        UnconfirmedParent {
            txid: tx.compute_txid(),
            truc: tx.version.0 == 3,
            unconfirmed_parents: 0,
            other_children: 0,
            dust: dust_outputs(tx),
        }
    }

    #[test]
    fn p2a_at_zero_is_the_one_dust_output_and_op_return_is_never_dust() {
        let p = parent();
        assert_eq!(dust_outputs(&p), vec![OutPoint::new(p.compute_txid(), 1)]);
        assert_eq!(
            p2a().script_pubkey.minimal_non_dust(),
            Amount::from_sat(240)
        );
        let mut ret = p.clone();
        ret.output = vec![TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::new_op_return([1u8; 4]),
        }];
        assert!(dust_outputs(&ret).is_empty());
    }

    #[test]
    fn topology_wants_a_child_last_spending_every_parent() {
        let p = parent();
        let c = child_of(&p, 1);
        assert_eq!(check_topology(&[p.clone(), c.clone()]), Ok(()));
        assert!(matches!(
            check_topology(&[c.clone(), p.clone()]),
            Err(TopologyError::NotChildWithParents(_))
        ));
        assert_eq!(
            check_topology(&[p.clone(), p.clone()]),
            Err(TopologyError::Duplicate(p.compute_txid()))
        );
        assert_eq!(check_topology(&[]), Err(TopologyError::Count(0)));
        let mut twin = c.clone();
        twin.output[0].value = Amount::from_sat(2_000);
        assert!(matches!(
            check_topology(&[p.clone(), c, twin]),
            Err(TopologyError::Conflict(_))
        ));
    }

    #[test]
    fn a_zero_fee_parent_is_carried_only_by_a_child_paying_for_both() {
        let p = parent();
        let c = child_of(&p, 1);
        let members = |child_fee: u64| {
            vec![
                Member {
                    tx: &p,
                    fee: Amount::ZERO,
                    vsize: 100,
                    parents: vec![],
                },
                Member {
                    tx: &c,
                    fee: Amount::from_sat(child_fee),
                    vsize: 100,
                    parents: vec![as_parent(&p)],
                },
            ]
        };
        assert_eq!(check_package_rules(&members(200)), Ok(()));
        assert_eq!(
            check_package_rules(&members(199)),
            Err(PackageRuleError::FeeTooLow {
                fee: Amount::from_sat(199),
                min: Amount::from_sat(200),
                vsize: 200
            })
        );
        // Alone, the parent pays nothing.
        assert!(matches!(
            check_package_rules(&members(200)[..1]),
            Err(PackageRuleError::FeeTooLow { .. })
        ));
    }

    #[test]
    fn truc_and_ephemeral_dust_rules_name_the_transaction() {
        let p = parent();
        let member = |tx, fee, vsize, parents| Member {
            tx,
            fee: Amount::from_sat(fee),
            vsize,
            parents,
        };
        // The child must spend the dust output.
        let c0 = child_of(&p, 0);
        let err = check_package_rules(&[
            member(&p, 0, 100, vec![]),
            member(&c0, 500, 100, vec![as_parent(&p)]),
        ])
        .unwrap_err();
        assert!(matches!(
            err,
            PackageRuleError::MissingEphemeralSpends { .. }
        ));
        // A fee-paying parent with dust.
        let c = child_of(&p, 1);
        let err = check_package_rules(&[
            member(&p, 1, 100, vec![]),
            member(&c, 500, 100, vec![as_parent(&p)]),
        ])
        .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("dust, tx with dust output must be 0-fee"));
        // A version 2 child of a TRUC parent.
        let mut v2 = c.clone();
        v2.version = transaction::Version::TWO;
        let err = check_package_rules(&[
            member(&p, 0, 100, vec![]),
            member(&v2, 500, 100, vec![as_parent(&p)]),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("non-version=3"), "{err}");
        assert_eq!(
            err.blame(&[member(&p, 0, 100, vec![]), member(&v2, 0, 1, vec![])]),
            Some(v2.compute_txid())
        );
        // A TRUC child above 1,000 vB, and one beside another child.
        let err = check_package_rules(&[
            member(&p, 0, 100, vec![]),
            member(&c, 5_000, 1_001, vec![as_parent(&p)]),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("1001 > 1000"), "{err}");
        let mut sibling = as_parent(&p);
        sibling.other_children = 1;
        let err = check_package_rules(&[
            member(&p, 0, 100, vec![]),
            member(&c, 500, 100, vec![sibling]),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("descendant count"), "{err}");
    }
}
