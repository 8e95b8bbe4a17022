//! The signing boundary. The daemon decides *whether* to sign; a [`Signer`] holds the key and
//! produces the signatures. The keystore signer ([`KeystoreSigner`]) is the default; a remote
//! signer (a separate process holding the key, with its own policy check) implements the same
//! trait and receives everything it needs to re-check the delegation itself.

use async_trait::async_trait;
use bitcoin::secp256k1::{Keypair, XOnlyPublicKey};
use fiamma_covenant::delegation::DelegationSighashes;
use fiamma_covenant::signing::{sign_delegation, CovenantSignError, CovenantSignatures};
use fiamma_staking::registration::Registration;

/// What a member asks its signer to sign: one delegation, already checked by the daemon.
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    /// The staking txid, as the node files the delegation.
    pub staking_txid: &'a str,
    /// The params version the delegation was checked against.
    pub params_version: u32,
    /// The whole registration, so that a remote signer can run its own policy check.
    pub registration: &'a Registration,
    /// The three messages to sign.
    pub sighashes: &'a DelegationSighashes,
    /// The verifier keys the slashing signatures are encrypted to.
    pub verifiers: &'a [XOnlyPublicKey],
}

/// Why a signer did not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// Signing itself failed.
    #[error(transparent)]
    Sign(#[from] CovenantSignError),
    /// The signer's own policy refused the request.
    #[error("the signer refused: {0}")]
    Policy(String),
    /// The signer could not be reached (a remote signer).
    #[error("the signer is unavailable: {0}")]
    Unavailable(String),
}

/// Holds a covenant member's key and signs delegations with it.
#[async_trait]
pub trait Signer: Send + Sync {
    /// The member's key.
    fn public_key(&self) -> XOnlyPublicKey;

    /// Adaptor-signs both slashing transactions to each verifier key and signs the unbonding
    /// transaction. Adaptor signatures use fresh randomness: two calls give different
    /// signatures, which is why the daemon records what it signed before sending it.
    async fn sign(&self, request: SignRequest<'_>) -> Result<CovenantSignatures, SignerError>;
}

/// The default signer: the key from the member's keystore, in memory.
pub struct KeystoreSigner {
    keypair: Keypair,
}

impl KeystoreSigner {
    /// A signer with `keypair` (opened from the keystore).
    pub fn new(keypair: Keypair) -> Self {
        KeystoreSigner { keypair }
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

    async fn sign(&self, request: SignRequest<'_>) -> Result<CovenantSignatures, SignerError> {
        Ok(sign_delegation(
            &self.keypair,
            request.sighashes,
            request.verifiers,
            &mut rand::thread_rng(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{SecretKey, SECP256K1};

    #[test]
    fn debug_shows_the_public_key_only() {
        let secret = SecretKey::from_slice(&[0x3c; 32]).expect("valid");
        let signer = KeystoreSigner::new(Keypair::from_secret_key(SECP256K1, &secret));
        let shown = format!("{signer:?}");
        assert!(shown.contains(&signer.public_key().to_string()), "{shown}");
        assert!(
            !shown.contains(&hex::encode(secret.secret_bytes())),
            "{shown}"
        );
        assert!(!shown.contains("3c3c3c"), "{shown}");
    }
}
