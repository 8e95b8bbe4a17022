//! The embedded chain's mempool: accepted transactions in arrival order, which outpoints
//! they spend, and the outputs they create. It stores; [`super::policy`] decides.

use std::collections::BTreeMap;

use bitcoin::{Amount, Block, OutPoint, Transaction, TxOut, Txid};

/// A transaction waiting to be mined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolEntry {
    /// The transaction.
    pub tx: Transaction,
    /// Its fee.
    pub fee: Amount,
    /// Its virtual size.
    pub vsize: u64,
}

/// Unconfirmed transactions. A transaction may spend outputs of earlier entries; arrival
/// order therefore lists parents before children, and block assembly keeps that order.
#[derive(Debug, Clone, Default)]
pub struct Mempool {
    entries: BTreeMap<Txid, (u64, MempoolEntry)>,
    order: BTreeMap<u64, Txid>,
    spends: BTreeMap<OutPoint, (Txid, u32)>,
    next_seq: u64,
}

impl Mempool {
    /// Adds an entry the policy accepted.
    pub fn insert(&mut self, entry: MempoolEntry) {
        let txid = entry.tx.compute_txid();
        for (vin, input) in entry.tx.input.iter().enumerate() {
            self.spends.insert(
                input.previous_output,
                (txid, u32::try_from(vin).unwrap_or(u32::MAX)),
            );
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, txid);
        self.entries.insert(txid, (seq, entry));
    }

    /// Whether `txid` is in the mempool.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.entries.contains_key(txid)
    }

    /// The entry for `txid`.
    pub fn get(&self, txid: &Txid) -> Option<&MempoolEntry> {
        self.entries.get(txid).map(|(_, e)| e)
    }

    /// The mempool transaction and input that spend `outpoint`.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<(Txid, u32)> {
        self.spends.get(outpoint).copied()
    }

    /// An output created by a mempool transaction.
    pub fn output(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        self.get(&outpoint.txid)?
            .tx
            .output
            .get(usize::try_from(outpoint.vout).ok()?)
    }

    /// Entries in arrival order.
    pub fn ordered(&self) -> impl Iterator<Item = &MempoolEntry> {
        self.order.values().filter_map(|txid| self.get(txid))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the mempool is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes `txid` and every mempool transaction that spends its outputs, directly or
    /// not. Returns the removed txids, `txid` first.
    pub fn remove_with_descendants(&mut self, txid: &Txid) -> Vec<Txid> {
        let mut removed = Vec::new();
        let mut pending = vec![*txid];
        while let Some(next) = pending.pop() {
            let Some((seq, entry)) = self.entries.remove(&next) else {
                continue;
            };
            self.order.remove(&seq);
            for input in &entry.tx.input {
                self.spends.remove(&input.previous_output);
            }
            for vout in 0..entry.tx.output.len() {
                let outpoint = OutPoint::new(next, u32::try_from(vout).unwrap_or(u32::MAX));
                if let Some((child, _)) = self.spends.get(&outpoint) {
                    pending.push(*child);
                }
            }
            removed.push(next);
        }
        removed
    }

    /// Updates the mempool for a connected block: its transactions leave, and so does every
    /// mempool transaction that conflicts with one of them (with its descendants).
    pub fn remove_for_block(&mut self, block: &Block) {
        for tx in block.txdata.iter().skip(1) {
            let txid = tx.compute_txid();
            if let Some((seq, entry)) = self.entries.remove(&txid) {
                self.order.remove(&seq);
                for input in &entry.tx.input {
                    self.spends.remove(&input.previous_output);
                }
                continue;
            }
            for input in &tx.input {
                if let Some((conflict, _)) = self.spender(&input.previous_output) {
                    self.remove_with_descendants(&conflict);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tx::spend;
    use bitcoin::hashes::Hash;
    use bitcoin::Sequence;

    fn entry(tx: Transaction) -> MempoolEntry {
        MempoolEntry {
            tx,
            fee: Amount::ZERO,
            vsize: 0,
        }
    }

    /// Builds conflict-free transactions where tx `i` spends output `i` of a confirmed
    /// transaction (`None`) or of an earlier tx; each tx has an output for every later one.
    fn build_dag(parents: &[Option<usize>]) -> Vec<Transaction> {
        let mut txs: Vec<Transaction> = Vec::new();
        for (i, parent) in parents.iter().enumerate() {
            let vout = u32::try_from(i).expect("small");
            let prev = match parent {
                Some(p) => OutPoint::new(txs[*p].compute_txid(), vout),
                None => OutPoint::new(Txid::all_zeros(), vout),
            };
            let mut tx = spend(prev, Amount::from_sat(u64::from(vout)), Sequence::MAX);
            tx.output = vec![tx.output[0].clone(); parents.len()];
            txs.push(tx);
        }
        txs
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn removal_takes_exactly_the_descendants(
            shape in proptest::collection::vec(proptest::option::of(0usize..32), 1..24),
            victim in 0usize..24,
        ) {
            // A parent index must point backwards; the first tx spends a confirmed coin.
            let parents: Vec<Option<usize>> = shape
                .iter()
                .enumerate()
                .map(|(i, p)| if i == 0 { None } else { p.map(|p| p % i) })
                .collect();
            let txs = build_dag(&parents);
            let mut pool = Mempool::default();
            for tx in &txs {
                pool.insert(entry(tx.clone()));
            }
            let victim = victim % txs.len();
            // The model: a tx goes when its parent goes.
            let mut gone = vec![false; txs.len()];
            gone[victim] = true;
            for i in 0..txs.len() {
                if let Some(p) = parents[i] {
                    gone[i] |= gone[p];
                }
            }
            let removed: std::collections::BTreeSet<Txid> =
                pool.remove_with_descendants(&txs[victim].compute_txid()).into_iter().collect();
            let expected: std::collections::BTreeSet<Txid> = txs
                .iter()
                .zip(&gone)
                .filter(|(_, g)| **g)
                .map(|(t, _)| t.compute_txid())
                .collect();
            proptest::prop_assert_eq!(&removed, &expected);
            proptest::prop_assert_eq!(pool.len(), txs.len() - expected.len());
            for tx in &txs {
                let spender = pool.spender(&tx.input[0].previous_output);
                let kept = !expected.contains(&tx.compute_txid());
                proptest::prop_assert_eq!(spender.map(|(t, _)| t), kept.then(|| tx.compute_txid()));
            }
        }
    }

    #[test]
    fn descendants_leave_with_their_parent() {
        let mut pool = Mempool::default();
        let amount = Amount::from_sat(1);
        let parent = spend(OutPoint::new(Txid::all_zeros(), 0), amount, Sequence::MAX);
        let child = spend(
            OutPoint::new(parent.compute_txid(), 0),
            amount,
            Sequence::MAX,
        );
        let other = spend(OutPoint::new(Txid::all_zeros(), 1), amount, Sequence::MAX);
        pool.insert(entry(parent.clone()));
        pool.insert(entry(child.clone()));
        pool.insert(entry(other.clone()));
        let order: Vec<Txid> = pool.ordered().map(|e| e.tx.compute_txid()).collect();
        assert_eq!(
            order,
            vec![
                parent.compute_txid(),
                child.compute_txid(),
                other.compute_txid()
            ]
        );
        let removed = pool.remove_with_descendants(&parent.compute_txid());
        assert_eq!(removed, vec![parent.compute_txid(), child.compute_txid()]);
        assert_eq!(pool.len(), 1);
        assert!(pool.spender(&OutPoint::new(Txid::all_zeros(), 0)).is_none());
    }
}
