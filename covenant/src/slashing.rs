//! The slasher side (`PROTOCOL.md` §11): with a verifier's extracted secret key, decrypt the
//! covenant adaptor signatures encrypted to it, sign as the verifier, and assemble the
//! complete slashing witness.

use std::collections::BTreeSet;

use bitcoin::{TapSighash, Transaction, Witness};
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::sighash::{sign_with_aux_rand, verify, SignatureError};
use fiamma_staking::taproot::TaprootOutput;
use fiamma_staking::witness::{slashing_witness, KeySignature, WitnessError};
use rand::{CryptoRng, RngCore};
use secp256k1::schnorr::Signature;
use secp256k1::{Keypair, SecretKey, XOnlyPublicKey, SECP256K1};
use zeroize::Zeroizing;

use crate::adaptor::{AdaptorSignature, DecryptionKey};
use crate::delegation::{DelegationSighashes, SlashingTx};

/// A covenant adaptor signature that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedCovenantSig {
    /// The covenant key named with the signature.
    pub covenant: XOnlyPublicKey,
    /// Why it was not used.
    pub reason: String,
}

/// Why no slashing witness could be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlashError {
    /// The key is not a verifier key of the delegation.
    #[error("{0} is not a verifier key of the delegation")]
    NotAVerifier(XOnlyPublicKey),
    /// Fewer than q covenant signatures decrypted into valid signatures.
    #[error("{valid} covenant signatures decrypt to valid signatures, quorum is {quorum}; rejected: {rejected:?}")]
    CovenantQuorum {
        /// Valid decrypted signatures.
        valid: usize,
        /// The committee's quorum.
        quorum: u32,
        /// The signatures that were not used, with reasons.
        rejected: Vec<RejectedCovenantSig>,
    },
    /// The staker's pre-signature does not verify, so the transaction would be invalid.
    #[error("staker pre-signature: {0}")]
    StakerSignature(SignatureError),
    /// The witness could not be assembled.
    #[error(transparent)]
    Witness(#[from] WitnessError),
    /// The slashing transaction has no input to carry the witness.
    #[error("the {0} has no input")]
    NoInput(SlashingTx),
}

/// Decrypts covenant adaptor signatures with `t` until `quorum` of them are valid BIP-0340
/// signatures over `sighash`; later, unknown or repeated keys are skipped with a reason.
fn decrypt_quorum(
    keys: &StakingKeys,
    sighash: &TapSighash,
    t: &DecryptionKey,
    covenant_sigs: &[(XOnlyPublicKey, AdaptorSignature)],
) -> Result<Vec<KeySignature>, SlashError> {
    let quorum = keys.covenant_quorum();
    let mut valid = Vec::with_capacity(quorum as usize);
    let mut used = BTreeSet::new();
    let mut rejected = Vec::new();
    for (covenant, presig) in covenant_sigs {
        if valid.len() == quorum as usize {
            break;
        }
        let reject = |reason: String| RejectedCovenantSig {
            covenant: *covenant,
            reason,
        };
        if !keys.covenants().contains(covenant) {
            rejected.push(reject("not a covenant committee key".to_owned()));
            continue;
        }
        if used.contains(&covenant.serialize()) {
            rejected.push(reject("second signature for the key".to_owned()));
            continue;
        }
        let signature = match presig.decrypt(t) {
            Ok(signature) => signature,
            Err(e) => {
                rejected.push(reject(e.to_string()));
                continue;
            }
        };
        if let Err(e) = verify(sighash, &signature, covenant) {
            rejected.push(reject(format!("decrypted signature: {e}")));
            continue;
        }
        used.insert(covenant.serialize());
        valid.push((*covenant, signature));
    }
    if valid.len() < quorum as usize {
        return Err(SlashError::CovenantQuorum {
            valid: valid.len(),
            quorum,
            rejected,
        });
    }
    Ok(valid)
}

/// The complete slashing-path witness of `output` for `sighash`:
/// q covenant signatures (decrypted from `covenant_sigs`, the adaptor signatures encrypted to
/// this verifier), the verifier's own signature made with `verifier_secret`, and the staker's
/// pre-signature, in the slot order of §4.
///
/// `verifier_secret` may be the key as extracted (possibly n − sk): only its x-only public key
/// matters. `rng` supplies the aux randomness of the verifier signature.
pub fn assemble_slashing_witness<R: RngCore + CryptoRng + ?Sized>(
    verifier_secret: &SecretKey,
    keys: &StakingKeys,
    output: &TaprootOutput,
    sighash: &TapSighash,
    covenant_sigs: &[(XOnlyPublicKey, AdaptorSignature)],
    staker_sig: &Signature,
    rng: &mut R,
) -> Result<Witness, SlashError> {
    let mut keypair = Keypair::from_secret_key(SECP256K1, verifier_secret);
    let (verifier, _) = keypair.x_only_public_key();
    if !keys.verifiers().contains(&verifier) {
        keypair.non_secure_erase();
        return Err(SlashError::NotAVerifier(verifier));
    }
    verify(sighash, staker_sig, &keys.staker()).map_err(SlashError::StakerSignature)?;

    let t = DecryptionKey::from_verifier_secret(verifier_secret);
    let covenant = decrypt_quorum(keys, sighash, &t, covenant_sigs);
    let mut aux = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(aux.as_mut());
    let verifier_sig = sign_with_aux_rand(sighash, &keypair, &aux);
    keypair.non_secure_erase();
    Ok(slashing_witness(
        output,
        keys,
        &covenant?,
        &[(verifier, verifier_sig)],
        staker_sig,
    )?)
}

/// `tx` (the staking or unbonding slashing transaction of the delegation) with the complete
/// slashing witness on its input, ready to broadcast. See [`assemble_slashing_witness`].
#[allow(clippy::too_many_arguments)]
pub fn signed_slashing_tx<R: RngCore + CryptoRng + ?Sized>(
    verifier_secret: &SecretKey,
    keys: &StakingKeys,
    sighashes: &DelegationSighashes,
    which: SlashingTx,
    tx: &Transaction,
    covenant_sigs: &[(XOnlyPublicKey, AdaptorSignature)],
    staker_sig: &Signature,
    rng: &mut R,
) -> Result<Transaction, SlashError> {
    let witness = assemble_slashing_witness(
        verifier_secret,
        keys,
        sighashes.slashed_output(which),
        sighashes.slashing_sighash(which),
        covenant_sigs,
        staker_sig,
        rng,
    )?;
    let mut signed = tx.clone();
    let input = signed.input.first_mut().ok_or(SlashError::NoInput(which))?;
    input.witness = witness;
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adaptor::{enc_sign, EncryptionKey};
    use bitcoin::hashes::Hash as _;

    fn secret(i: u8) -> SecretKey {
        SecretKey::from_slice(&[i; 32]).unwrap()
    }

    fn x(sk: &SecretKey) -> XOnlyPublicKey {
        sk.x_only_public_key(SECP256K1).0
    }

    #[test]
    fn decrypts_until_quorum_and_says_why_it_skipped() {
        let verifier = secret(2);
        let covenants = [secret(3), secret(4), secret(5)];
        let keys = StakingKeys::new(
            x(&secret(1)),
            &[x(&verifier)],
            &covenants.iter().map(x).collect::<Vec<_>>(),
            2,
        )
        .unwrap();
        let sighash = TapSighash::from_byte_array([7; 32]);
        let t = EncryptionKey::from_verifier_key(&x(&verifier));
        let presig = |sk: &SecretKey| {
            (
                x(sk),
                enc_sign(
                    &Keypair::from_secret_key(SECP256K1, sk),
                    &t,
                    &sighash.to_byte_array(),
                    &[0; 32],
                )
                .unwrap(),
            )
        };
        let outsider = secret(9);
        let given = [
            presig(&outsider),
            presig(&covenants[0]),
            presig(&covenants[0]),
            // Signed by covenant 2 but named as covenant 1: decrypts, does not verify.
            (x(&covenants[1]), presig(&covenants[2]).1),
            presig(&covenants[2]),
            presig(&covenants[1]),
        ];
        let d = DecryptionKey::from_verifier_secret(&verifier);

        let valid = decrypt_quorum(&keys, &sighash, &d, &given).unwrap();
        assert_eq!(
            valid.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            vec![x(&covenants[0]), x(&covenants[2])]
        );

        match decrypt_quorum(&keys, &sighash, &d, &given[..4]) {
            Err(SlashError::CovenantQuorum {
                valid: 1,
                quorum: 2,
                rejected,
            }) => {
                let reasons: Vec<&str> = rejected.iter().map(|r| r.reason.as_str()).collect();
                assert_eq!(reasons[0], "not a covenant committee key");
                assert_eq!(reasons[1], "second signature for the key");
                assert!(reasons[2].starts_with("decrypted signature"));
            }
            other => panic!("expected a quorum failure, got {other:?}"),
        }
    }
}
