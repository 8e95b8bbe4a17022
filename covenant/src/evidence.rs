//! Selective-slashing evidence (`PROTOCOL.md` §5, §11): a verifier that broadcasts a slashing
//! transaction itself must decrypt covenant adaptor signatures to do so, and the decrypted
//! signatures in its witness reveal its secret key through Extract.

use bitcoin::Witness;
use fiamma_staking::keys::StakingKeys;
use secp256k1::schnorr::Signature;
use secp256k1::XOnlyPublicKey;

use crate::adaptor::{AdaptorSignature, DecryptionKey};

/// Why no verifier key could be recovered from a slashing witness.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// The witness does not have the slashing path's shape for this delegation.
    #[error("slashing witness has {found} items, expected {expected} for this delegation")]
    WitnessShape {
        /// Items in the witness.
        found: usize,
        /// Covenant slots + verifier slots + staker signature + leaf script + control block.
        expected: usize,
    },
    /// No covenant signature in the witness is one of the given adaptor signatures decrypted
    /// with the verifier's key.
    #[error("no covenant signature in the witness reveals the key of verifier {0}")]
    NoReveal(XOnlyPublicKey),
}

/// The secret key of `verifier` (up to negation: its x-only public key is `verifier`), from
/// the witness of a slashing transaction spending the delegation's slashing leaf and the
/// covenant adaptor signatures encrypted to `verifier` over that transaction's sighash.
///
/// Every covenant slot of the witness (§4 order: key descending) that holds a signature is
/// tried against the adaptor signature of the same covenant key; the first extraction whose
/// public key is `verifier` is returned.
pub fn extract_verifier_key(
    keys: &StakingKeys,
    verifier: &XOnlyPublicKey,
    covenant_sigs: &[(XOnlyPublicKey, AdaptorSignature)],
    witness: &Witness,
) -> Result<DecryptionKey, EvidenceError> {
    let covenants = keys.covenants();
    let expected = covenants.len() + keys.verifiers().len() + 3;
    if witness.len() != expected {
        return Err(EvidenceError::WitnessShape {
            found: witness.len(),
            expected,
        });
    }
    for (covenant, presig) in covenant_sigs {
        let Some(position) = covenants.iter().position(|c| c == covenant) else {
            continue;
        };
        // The first key in the script consumes the top of the stack, the last witness item
        // before the verifier slots: ascending index i sits at item n − 1 − i.
        let slot = witness.nth(covenants.len() - 1 - position);
        let Some(signature) = slot.and_then(|item| Signature::from_slice(item).ok()) else {
            continue;
        };
        if let Ok(key) = presig.extract(&signature) {
            if key.x_only_public_key() == *verifier {
                return Ok(key);
            }
        }
    }
    Err(EvidenceError::NoReveal(*verifier))
}
