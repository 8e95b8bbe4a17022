//! The completeness check and witness assembly (§13.3, §13.6.3, §13.8).
//!
//! Quorum witness: `[slot_n … slot_1, quorum(set), control]`, one slot per member ordered by
//! key descending (the script checks keys ascending and each check consumes the top of the
//! stack); a slot holds a 64-byte signature or is empty. A candidate is *complete* when the
//! base-set weight of valid signatures reaches T; anyone may then assemble the witness.
//!
//! Recovery witness: `[covenant slots…, recovery, control]` with exactly q signatures (the
//! leaf's `NUMEQUALVERIFY` counts them), nSequence R.

use std::collections::BTreeMap;

use bitcoin::secp256k1::schnorr;
use bitcoin::{TapSighash, Witness};
use fiamma_staking::sighash::verify;
use fiamma_staking::witness::push_slots;
use secp256k1::XOnlyPublicKey;

use super::output::{CheckpointLeaf, CheckpointOutput};
use super::script::RecoveryLeaf;
use super::weights::{CheckpointSet, THRESHOLD};

/// Why signatures do not complete a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompletenessError {
    /// A signature by a key that has no slot in the spent leaf.
    #[error("{0} has no slot in the spent leaf")]
    NotASigner(XOnlyPublicKey),
    /// Two signatures by one key.
    #[error("two signatures by {0}")]
    Duplicate(XOnlyPublicKey),
    /// A signature that does not verify over the sighash: Bitcoin fails the whole script on
    /// a non-empty invalid signature, so it may not go into a slot.
    #[error("the signature by {0} does not verify over the checkpoint's sighash")]
    InvalidSignature(XOnlyPublicKey),
    /// The valid signatures weigh less than T.
    #[error("signatures weigh {weight}, a checkpoint needs {threshold}")]
    Incomplete {
        /// Their weight.
        weight: u32,
        /// T.
        threshold: u32,
    },
    /// Fewer covenant signatures than the recovery leaf's quorum.
    #[error("{got} covenant signatures, the recovery leaf needs {quorum}")]
    CovenantQuorum {
        /// Distinct valid signatures.
        got: usize,
        /// q.
        quorum: u32,
    },
}

/// Signatures that complete a checkpoint: every one valid, by a distinct member, together
/// worth at least T.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteSignatures {
    sigs: BTreeMap<[u8; 32], schnorr::Signature>,
    weight: u32,
}

impl CompleteSignatures {
    /// Their summed weight (≥ T).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// How many signatures.
    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    /// Always false: a complete set of signatures has at least one.
    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }
}

/// Checks signatures `sigs` over `sighash` against the base set: each by a distinct member and
/// valid; complete when their weight reaches T.
///
/// # Errors
/// [`CompletenessError`]: the first foreign, repeated or invalid signature, else
/// [`CompletenessError::Incomplete`].
pub fn check_complete(
    base_set: &CheckpointSet,
    sighash: &TapSighash,
    sigs: &[(XOnlyPublicKey, schnorr::Signature)],
) -> Result<CompleteSignatures, CompletenessError> {
    let mut map = BTreeMap::new();
    let mut weight: u32 = 0;
    for (key, sig) in sigs {
        let w = base_set
            .weight_of(key)
            .ok_or(CompletenessError::NotASigner(*key))?;
        verify(sighash, sig, key).map_err(|_| CompletenessError::InvalidSignature(*key))?;
        if map.insert(key.serialize(), *sig).is_some() {
            return Err(CompletenessError::Duplicate(*key));
        }
        // Σw ≤ Q < 2³², so the sum cannot overflow.
        weight += w;
    }
    if weight < THRESHOLD {
        return Err(CompletenessError::Incomplete {
            weight,
            threshold: THRESHOLD,
        });
    }
    Ok(CompleteSignatures { sigs: map, weight })
}

/// The quorum-path witness of `base_output` (built for `base_set`) from complete signatures.
pub fn quorum_witness(
    base_output: &CheckpointOutput,
    base_set: &CheckpointSet,
    complete: &CompleteSignatures,
) -> Witness {
    let keys: Vec<XOnlyPublicKey> = base_set.members().iter().map(|m| m.key).collect();
    let mut witness = Witness::new();
    push_slots(&mut witness, &keys, &complete.sigs);
    finish(witness, base_output, CheckpointLeaf::Quorum)
}

/// The recovery-path witness: q valid covenant signatures over `sighash` (that of the
/// recovery leaf); of more than q, those of the q smallest keys are used.
///
/// # Errors
/// [`CompletenessError`] for a foreign, repeated or invalid signature, or fewer than q.
pub fn recovery_witness(
    base_output: &CheckpointOutput,
    recovery: &RecoveryLeaf,
    sighash: &TapSighash,
    sigs: &[(XOnlyPublicKey, schnorr::Signature)],
) -> Result<Witness, CompletenessError> {
    let mut map = BTreeMap::new();
    for (key, sig) in sigs {
        if !recovery.keys().contains(key) {
            return Err(CompletenessError::NotASigner(*key));
        }
        verify(sighash, sig, key).map_err(|_| CompletenessError::InvalidSignature(*key))?;
        if map.insert(key.serialize(), *sig).is_some() {
            return Err(CompletenessError::Duplicate(*key));
        }
    }
    let quorum = recovery.quorum();
    if map.len() < quorum as usize {
        return Err(CompletenessError::CovenantQuorum {
            got: map.len(),
            quorum,
        });
    }
    let keep: Vec<[u8; 32]> = map.keys().take(quorum as usize).copied().collect();
    map.retain(|k, _| keep.contains(k));
    let mut witness = Witness::new();
    push_slots(&mut witness, recovery.keys(), &map);
    Ok(finish(witness, base_output, CheckpointLeaf::Recovery))
}

fn finish(mut witness: Witness, output: &CheckpointOutput, leaf: CheckpointLeaf) -> Witness {
    witness.push(output.leaf_script(leaf).as_bytes());
    witness.push(output.control_block(leaf).serialize());
    witness
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::testkit::{key, kp};
    use bitcoin::hashes::Hash;
    use fiamma_staking::sighash::sign;

    #[test]
    fn completeness_counts_weight_not_signatures() {
        let set = CheckpointSet::from_powers([(key(1), 2), (key(2), 1), (key(3), 1)]).unwrap();
        let sighash = TapSighash::from_byte_array([5; 32]);
        let sig = |i: u8| (key(i), sign(&sighash, &kp(i)));
        // 2 of 4: exactly half.
        assert!(matches!(
            check_complete(&set, &sighash, &[sig(1)]),
            Err(CompletenessError::Incomplete { .. })
        ));
        // 3 of 4.
        let complete = check_complete(&set, &sighash, &[sig(1), sig(3)]).unwrap();
        assert!(complete.weight() >= THRESHOLD);
        assert_eq!(
            check_complete(&set, &sighash, &[sig(1), sig(4)]),
            Err(CompletenessError::NotASigner(key(4)))
        );
        assert_eq!(
            check_complete(&set, &sighash, &[sig(1), sig(1)]),
            Err(CompletenessError::Duplicate(key(1)))
        );
        let bad = (key(2), sign(&TapSighash::from_byte_array([6; 32]), &kp(2)));
        assert_eq!(
            check_complete(&set, &sighash, &[sig(1), bad]),
            Err(CompletenessError::InvalidSignature(key(2)))
        );
        // Slots: key descending, empty where a member did not sign, then leaf and control.
        let recovery = RecoveryLeaf::new(&[key(9)], 1, 10).unwrap();
        let output = CheckpointOutput::new(&set, &recovery);
        let witness = quorum_witness(&output, &set, &complete);
        assert_eq!(witness.len(), 3 + 2);
        let mut keys: Vec<_> = set.members().iter().map(|m| m.key).collect();
        keys.reverse();
        for (item, k) in witness.iter().zip(&keys) {
            let signed = *k == key(1) || *k == key(3);
            assert_eq!(item.len(), if signed { 64 } else { 0 });
        }
    }

    #[test]
    fn recovery_takes_exactly_q_signatures() {
        let set = CheckpointSet::from_powers([(key(1), 1)]).unwrap();
        let recovery = RecoveryLeaf::new(&[key(5), key(6), key(7)], 2, 10).unwrap();
        let output = CheckpointOutput::new(&set, &recovery);
        let sighash = TapSighash::from_byte_array([5; 32]);
        let sig = |i: u8| (key(i), sign(&sighash, &kp(i)));
        let witness =
            recovery_witness(&output, &recovery, &sighash, &[sig(5), sig(6), sig(7)]).unwrap();
        assert_eq!(witness.iter().take(3).filter(|i| i.len() == 64).count(), 2);
        assert_eq!(
            recovery_witness(&output, &recovery, &sighash, &[sig(5)]),
            Err(CompletenessError::CovenantQuorum { got: 1, quorum: 2 })
        );
        assert_eq!(
            recovery_witness(&output, &recovery, &sighash, &[sig(1), sig(5)]),
            Err(CompletenessError::NotASigner(key(1)))
        );
    }
}
