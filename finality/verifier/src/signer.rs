//! The signing boundary. The daemon decides *whether* to sign and records it first; a
//! [`Signer`] holds the key and produces commitments, votes and the unjail signature. The
//! keystore signer ([`KeystoreSigner`]) is the default; a remote signer implements the same trait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bitcoin::secp256k1::{schnorr, Keypair, Message, XOnlyPublicKey, SECP256K1};
use fiamma_finality::checkpoint::{CheckpointMessage, CheckpointVote};
use fiamma_finality::commitment::{CommitmentRangeError, RandomnessCommitment};
use fiamma_finality::committed::{CommittedRandomness, RoundNotCommitted};
use fiamma_finality::eots::RandomnessDomain;
use fiamma_finality::merkle::{Digest, Proof};
use fiamma_finality::rounds::unjail_message;
use fiamma_finality::rounds::Vote;
use fiamma_staking::context::SigningContexts;

/// Why a signer did not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// The range cannot be committed.
    #[error(transparent)]
    Range(#[from] CommitmentRangeError),
    /// The round is outside the commitment.
    #[error(transparent)]
    NotCommitted(#[from] RoundNotCommitted),
    /// The signer could not be reached (a remote signer).
    #[error("the signer is unavailable: {0}")]
    Unavailable(String),
}

/// Holds a verifier's key and signs with it.
#[async_trait]
pub trait Signer: Send + Sync {
    /// The verifier's key.
    fn public_key(&self) -> XOnlyPublicKey;

    /// The commitment to the randomness of rounds `start .. start + num − 1` bound to `domain`,
    /// and the BIP-340 signature on it in `contexts`.
    async fn commit(
        &self,
        domain: &RandomnessDomain,
        contexts: &SigningContexts,
        start: u64,
        num: u64,
    ) -> Result<(RandomnessCommitment, schnorr::Signature), SignerError>;

    /// The EOTS vote on `round_hash` for `round`, with the randomness of the commitment
    /// starting at `start` of `num` rounds bound to `domain`. The caller has recorded the
    /// message as the one signed for the round.
    async fn vote(
        &self,
        domain: &RandomnessDomain,
        contexts: &SigningContexts,
        (start, num): (u64, u64),
        round: u64,
        round_hash: Digest,
    ) -> Result<Vote, SignerError>;

    /// The checkpoint vote on M for checkpoint round `round` (§13.5), with the randomness of
    /// the commitment starting at `start` of `num` rounds bound to `domain`, and the proof that
    /// its public randomness is committed. The caller has recorded sha256(M) as the one message
    /// signed for the round.
    async fn checkpoint_vote(
        &self,
        domain: &RandomnessDomain,
        (start, num): (u64, u64),
        round: u64,
        message: &CheckpointMessage,
    ) -> Result<(CheckpointVote, Proof), SignerError>;

    /// The BIP-340 signature asking to be unjailed from the jailing at `since_round`.
    async fn unjail(
        &self,
        contexts: &SigningContexts,
        since_round: u64,
    ) -> Result<schnorr::Signature, SignerError>;
}

type Cached = HashMap<(Vec<u8>, u64, u64), Arc<CommittedRandomness>>;

/// The default signer: the key from the keystore, in memory, with the randomness of the
/// commitments in use kept derived (one scalar multiplication per round, done once).
pub struct KeystoreSigner {
    keypair: Keypair,
    cache: Mutex<Cached>,
}

/// Commitments whose derived randomness is kept; older ones are derived again when asked.
const CACHED_COMMITMENTS: usize = 4;

impl KeystoreSigner {
    /// A signer with `keypair` (opened from the keystore).
    pub fn new(keypair: Keypair) -> Self {
        KeystoreSigner {
            keypair,
            cache: Mutex::default(),
        }
    }

    fn randomness(
        &self,
        domain: &RandomnessDomain,
        start: u64,
        num: u64,
    ) -> Result<Arc<CommittedRandomness>, SignerError> {
        let id = (domain.as_bytes().to_vec(), start, num);
        if let Some(r) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Ok(r.clone());
        }
        let derived = Arc::new(CommittedRandomness::derive_in(
            &self.keypair.secret_key(),
            domain.clone(),
            start,
            num,
        )?);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHED_COMMITMENTS {
            if let Some(oldest) = cache.keys().min_by_key(|(_, s, _)| *s).cloned() {
                cache.remove(&oldest);
            }
        }
        cache.insert(id, derived.clone());
        Ok(derived)
    }
}

impl std::fmt::Debug for KeystoreSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoreSigner")
            .field("public_key", &self.public_key().to_string())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Signer for KeystoreSigner {
    fn public_key(&self) -> XOnlyPublicKey {
        self.keypair.x_only_public_key().0
    }

    async fn commit(
        &self,
        domain: &RandomnessDomain,
        contexts: &SigningContexts,
        start: u64,
        num: u64,
    ) -> Result<(RandomnessCommitment, schnorr::Signature), SignerError> {
        let randomness = self.randomness(domain, start, num)?;
        let commitment = *randomness.commitment();
        let mut aux = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut aux);
        Ok((commitment, commitment.sign(&self.keypair, contexts, &aux)))
    }

    async fn vote(
        &self,
        domain: &RandomnessDomain,
        contexts: &SigningContexts,
        (start, num): (u64, u64),
        round: u64,
        round_hash: Digest,
    ) -> Result<Vote, SignerError> {
        let randomness = self.randomness(domain, start, num)?.for_round(round)?;
        Ok(Vote::sign(
            &self.keypair,
            randomness,
            contexts,
            round,
            round_hash,
        ))
    }

    async fn checkpoint_vote(
        &self,
        domain: &RandomnessDomain,
        (start, num): (u64, u64),
        round: u64,
        message: &CheckpointMessage,
    ) -> Result<(CheckpointVote, Proof), SignerError> {
        let randomness = self.randomness(domain, start, num)?.for_round(round)?;
        Ok((
            CheckpointVote::sign(&self.keypair, &randomness.secret, message),
            randomness.proof,
        ))
    }

    async fn unjail(
        &self,
        contexts: &SigningContexts,
        since_round: u64,
    ) -> Result<schnorr::Signature, SignerError> {
        let msg = Message::from_digest(unjail_message(contexts, &self.public_key(), since_round));
        Ok(SECP256K1.sign_schnorr(&msg, &self.keypair))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::SecretKey;

    #[test]
    fn debug_shows_the_public_key_only() {
        let secret = SecretKey::from_slice(&[0x3c; 32]).expect("valid");
        let signer = KeystoreSigner::new(Keypair::from_secret_key(SECP256K1, &secret));
        let shown = format!("{signer:?}");
        assert!(shown.contains(&signer.public_key().to_string()), "{shown}");
        assert!(!shown.contains("3c3c3c"), "{shown}");
    }

    #[tokio::test]
    async fn a_vote_verifies_under_the_commitment_it_was_made_with() {
        let signer =
            KeystoreSigner::new(Keypair::from_seckey_slice(SECP256K1, &[7; 32]).expect("valid"));
        let contexts = SigningContexts::new("c", "m");
        let domain = RandomnessDomain::new("c", "m", &[1; 32]);
        let (c, sig) = signer
            .commit(&domain, &contexts, 10, 5)
            .await
            .expect("commit");
        assert_eq!(c.verify(&signer.public_key(), &contexts, &sig), Ok(()));
        let vote = signer
            .vote(&domain, &contexts, (10, 5), 12, [4; 32])
            .await
            .expect("vote");
        assert_eq!(vote.verify_signature(&contexts), Ok(()));
        assert_eq!(
            c.verify_randomness(12, &vote.public_randomness, &vote.proof),
            Ok(())
        );
        assert!(signer
            .vote(&domain, &contexts, (10, 5), 15, [4; 32])
            .await
            .is_err());
    }
}
