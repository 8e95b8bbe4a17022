//! Witnesses for the three spending paths (PROTOCOL §4):
//! `[…signatures…, leaf script, control block]`.
//!
//! Covenant and verifier signature slots are ordered by key *descending*: the script checks its
//! keys in ascending order and each check consumes the top of the stack, which is the last
//! witness item. A key that did not sign gets an empty item. The assembly checks counts and
//! membership; whether each signature verifies is checked with [`crate::sighash`] (and, in the
//! end, by the Bitcoin script interpreter).

use std::collections::BTreeMap;

use bitcoin::secp256k1::{schnorr, XOnlyPublicKey};
use bitcoin::Witness;

use crate::keys::StakingKeys;
use crate::taproot::{Leaf, TaprootError, TaprootOutput};

/// A signature together with the key that made it.
pub type KeySignature = (XOnlyPublicKey, schnorr::Signature);

/// Why a witness could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// The output has no leaf for this path.
    #[error(transparent)]
    Leaf(#[from] TaprootError),
    /// A covenant signature by a key outside the committee.
    #[error("{0} is not a covenant committee key")]
    UnknownCovenantKey(XOnlyPublicKey),
    /// A verifier signature by a key that is not a verifier of the delegation.
    #[error("{0} is not a verifier key of the delegation")]
    UnknownVerifierKey(XOnlyPublicKey),
    /// Two signatures for one key.
    #[error("two signatures for key {0}")]
    DuplicateSigner(XOnlyPublicKey),
    /// Fewer covenant signatures than the quorum.
    #[error("{got} covenant signatures, quorum is {quorum}")]
    CovenantQuorum {
        /// Distinct covenant signatures given.
        got: usize,
        /// The committee's quorum.
        quorum: u32,
    },
    /// The slashing path takes exactly one verifier signature.
    #[error("{0} verifier signatures, the slashing path takes exactly 1")]
    VerifierSignatures(usize),
}

/// The witness of the timelock path of `output` (staking, unbonding or slashing change):
/// `[staker_sig, timelock leaf, control block]`. The spending input's nSequence must be at least
/// the output's timelock.
pub fn timelock_witness(
    output: &TaprootOutput,
    staker_sig: &schnorr::Signature,
) -> Result<Witness, WitnessError> {
    let mut witness = Witness::new();
    witness.push(staker_sig.as_ref());
    finish(witness, output, Leaf::Timelock)
}

/// The witness of the unbonding path of a staking output:
/// `[covenant slots (key descending)…, staker_sig, unbonding leaf, control block]`.
///
/// `covenant_sigs` must hold at least `q` signatures by distinct committee keys; when more are
/// given, those of the `q` smallest keys are used, because the script's `OP_NUMEQUAL` needs
/// exactly `q` valid signatures.
pub fn unbonding_witness(
    output: &TaprootOutput,
    keys: &StakingKeys,
    covenant_sigs: &[KeySignature],
    staker_sig: &schnorr::Signature,
) -> Result<Witness, WitnessError> {
    let mut witness = Witness::new();
    push_covenant_slots(&mut witness, keys, covenant_sigs)?;
    witness.push(staker_sig.as_ref());
    finish(witness, output, Leaf::Unbonding)
}

/// The witness of the slashing path of a staking or unbonding output:
/// `[covenant slots…, verifier slots…, staker_sig, slashing leaf, control block]`, both slot
/// groups ordered by key descending. Exactly one verifier signature; at least `q` covenant
/// signatures (see [`unbonding_witness`] for more than `q`).
pub fn slashing_witness(
    output: &TaprootOutput,
    keys: &StakingKeys,
    covenant_sigs: &[KeySignature],
    verifier_sigs: &[KeySignature],
    staker_sig: &schnorr::Signature,
) -> Result<Witness, WitnessError> {
    if verifier_sigs.len() != 1 {
        return Err(WitnessError::VerifierSignatures(verifier_sigs.len()));
    }
    let verifiers = by_key(
        keys.verifiers(),
        verifier_sigs,
        WitnessError::UnknownVerifierKey,
    )?;
    let mut witness = Witness::new();
    push_covenant_slots(&mut witness, keys, covenant_sigs)?;
    push_slots(&mut witness, keys.verifiers(), &verifiers);
    witness.push(staker_sig.as_ref());
    finish(witness, output, Leaf::Slashing)
}

/// Indexes `sigs` by key, rejecting keys outside `allowed` and keys given twice.
fn by_key(
    allowed: &[XOnlyPublicKey],
    sigs: &[KeySignature],
    unknown: fn(XOnlyPublicKey) -> WitnessError,
) -> Result<BTreeMap<[u8; 32], schnorr::Signature>, WitnessError> {
    let mut map = BTreeMap::new();
    for (key, sig) in sigs {
        if !allowed.contains(key) {
            return Err(unknown(*key));
        }
        if map.insert(key.serialize(), *sig).is_some() {
            return Err(WitnessError::DuplicateSigner(*key));
        }
    }
    Ok(map)
}

fn push_covenant_slots(
    witness: &mut Witness,
    keys: &StakingKeys,
    covenant_sigs: &[KeySignature],
) -> Result<(), WitnessError> {
    let mut sigs = by_key(
        keys.covenants(),
        covenant_sigs,
        WitnessError::UnknownCovenantKey,
    )?;
    let quorum = keys.covenant_quorum();
    if sigs.len() < quorum as usize {
        return Err(WitnessError::CovenantQuorum {
            got: sigs.len(),
            quorum,
        });
    }
    // Keep the signatures of the q smallest keys (BTreeMap iterates ascending).
    let keep: Vec<[u8; 32]> = sigs.keys().take(quorum as usize).copied().collect();
    sigs.retain(|k, _| keep.contains(k));
    push_slots(witness, keys.covenants(), &sigs);
    Ok(())
}

/// One item per key of `ascending`, largest key first; empty where the key did not sign
/// (signatures are looked up by the key's 32 bytes).
pub fn push_slots(
    witness: &mut Witness,
    ascending: &[XOnlyPublicKey],
    sigs: &BTreeMap<[u8; 32], schnorr::Signature>,
) {
    for key in ascending.iter().rev() {
        match sigs.get(&key.serialize()) {
            Some(sig) => witness.push(sig.as_ref()),
            None => witness.push([]),
        }
    }
}

fn finish(
    mut witness: Witness,
    output: &TaprootOutput,
    leaf: Leaf,
) -> Result<Witness, WitnessError> {
    let script = output.leaf_script(leaf)?;
    let control_block = output.control_block(leaf)?;
    witness.push(script.as_bytes());
    witness.push(control_block.serialize());
    Ok(witness)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::key;

    fn sig(i: u8) -> schnorr::Signature {
        schnorr::Signature::from_slice(&[i; 64]).expect("64 bytes")
    }

    fn keys() -> StakingKeys {
        StakingKeys::new(key(1), &[key(2), key(3)], &[key(4), key(5), key(6)], 2).unwrap()
    }

    /// The witness item expected in the slot of each key, key descending.
    fn slots(ascending: &[XOnlyPublicKey], signers: &[(XOnlyPublicKey, u8)]) -> Vec<Vec<u8>> {
        ascending
            .iter()
            .rev()
            .map(|k| match signers.iter().find(|(s, _)| s == k) {
                Some((_, i)) => vec![*i; 64],
                None => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn slashing_slots_are_key_descending_with_empty_items() {
        let keys = keys();
        let output = TaprootOutput::staking(&keys, 10).unwrap();
        let (c, v) = (keys.covenants(), keys.verifiers());
        let w = slashing_witness(
            &output,
            &keys,
            &[(c[2], sig(12)), (c[0], sig(10))],
            &[(v[1], sig(21))],
            &sig(30),
        )
        .unwrap();
        let items: Vec<Vec<u8>> = w.iter().map(<[u8]>::to_vec).collect();
        let mut expected = slots(c, &[(c[2], 12), (c[0], 10)]);
        expected.extend(slots(v, &[(v[1], 21)]));
        expected.push(vec![30; 64]);
        expected.push(output.leaf_script(Leaf::Slashing).unwrap().to_bytes());
        expected.push(output.control_block(Leaf::Slashing).unwrap().serialize());
        assert_eq!(items, expected);
    }

    #[test]
    fn unbonding_keeps_exactly_quorum_signatures() {
        let keys = keys();
        let output = TaprootOutput::staking(&keys, 10).unwrap();
        let c = keys.covenants();
        let all: Vec<KeySignature> = c
            .iter()
            .zip([10, 11, 12])
            .map(|(k, i)| (*k, sig(i)))
            .collect();
        let w = unbonding_witness(&output, &keys, &all, &sig(30)).unwrap();
        let items: Vec<Vec<u8>> = w.iter().take(4).map(<[u8]>::to_vec).collect();
        let mut expected = slots(c, &[(c[0], 10), (c[1], 11)]);
        expected.push(vec![30; 64]);
        assert_eq!(items, expected);
        assert_eq!(w.len(), 6);
    }

    #[test]
    fn timelock_witness_has_three_items() {
        let keys = keys();
        let output = TaprootOutput::unbonding(&keys, 10).unwrap();
        let w = timelock_witness(&output, &sig(30)).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(
            w.nth(1).unwrap(),
            output.leaf_script(Leaf::Timelock).unwrap().as_bytes()
        );
    }

    #[test]
    fn wrong_counts_and_keys_are_typed_errors() {
        let keys = keys();
        let output = TaprootOutput::staking(&keys, 10).unwrap();
        let c = keys.covenants();
        let v = keys.verifiers();
        let one = [(c[0], sig(10))];
        let two = [(c[0], sig(10)), (c[1], sig(11))];
        assert_eq!(
            unbonding_witness(&output, &keys, &one, &sig(30)),
            Err(WitnessError::CovenantQuorum { got: 1, quorum: 2 })
        );
        assert_eq!(
            unbonding_witness(
                &output,
                &keys,
                &[(c[0], sig(10)), (c[0], sig(11))],
                &sig(30)
            ),
            Err(WitnessError::DuplicateSigner(c[0]))
        );
        assert_eq!(
            unbonding_witness(&output, &keys, &[(key(9), sig(10))], &sig(30)),
            Err(WitnessError::UnknownCovenantKey(key(9)))
        );
        assert_eq!(
            slashing_witness(&output, &keys, &two, &[], &sig(30)),
            Err(WitnessError::VerifierSignatures(0))
        );
        assert_eq!(
            slashing_witness(
                &output,
                &keys,
                &two,
                &[(v[0], sig(1)), (v[1], sig(2))],
                &sig(30)
            ),
            Err(WitnessError::VerifierSignatures(2))
        );
        assert_eq!(
            slashing_witness(&output, &keys, &two, &[(c[2], sig(1))], &sig(30)),
            Err(WitnessError::UnknownVerifierKey(c[2]))
        );
        let unbonding = TaprootOutput::unbonding(&keys, 10).unwrap();
        assert!(matches!(
            unbonding_witness(&unbonding, &keys, &two, &sig(30)),
            Err(WitnessError::Leaf(_))
        ));
    }
}
