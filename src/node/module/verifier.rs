//! CreateVerifier and SelectiveSlashingEvidence.

use bitcoin::secp256k1::{SecretKey, XOnlyPublicKey, SECP256K1};
use bitcoin::Txid;
use fiamma_staking::account::Account;
use fiamma_staking::pop::{PopRole, ProofOfPossession};

use super::{CreateVerifierError, SlashingEvidenceError, StakingModule};
use crate::node::store::{Description, NewVerifier, Pop, SlashingReason};

/// A verifier registration with every field decoded.
#[derive(Debug, Clone)]
pub struct VerifierRegistration {
    /// The verifier's account.
    pub account: Account,
    /// The account as the registrant wrote it (bech32).
    pub account_text: String,
    /// The verifier's BTC key.
    pub btc_pk: XOnlyPublicKey,
    /// Proof of possession (BIP-340 or BIP-322).
    pub pop: ProofOfPossession,
    /// Description, lengths already checked.
    pub description: Description,
    /// Commission, canonical decimal in [0, 1].
    pub commission: String,
}

impl StakingModule {
    /// Registers a verifier: checks its proof of possession, then that the key is new.
    /// Returns the sequence number of its `verifier_created` event.
    pub async fn create_verifier(
        &self,
        reg: VerifierRegistration,
    ) -> Result<u64, CreateVerifierError> {
        reg.pop
            .verify(&self.contexts, PopRole::Verifier, &reg.account, &reg.btc_pk)?;
        let mut tx = self.store.begin().await?;
        if tx.verifier(&reg.btc_pk).await?.is_some() {
            return Err(CreateVerifierError::Duplicate(reg.btc_pk));
        }
        tx.insert_verifier(&NewVerifier {
            btc_pk: reg.btc_pk,
            account: reg.account_text,
            description: reg.description,
            commission: reg.commission,
            pop: Pop::of(&reg.pop),
        })
        .await?;
        let events = self.commit(tx).await?;
        Ok(events.last().map_or(0, |e| e.sequence))
    }

    /// Slashes the verifier of delegation `staking_txid` whose secret key was recovered from
    /// a slashing transaction it broadcast itself (PROTOCOL §5 Extract, §11). Returns its key.
    pub async fn selective_slashing_evidence(
        &self,
        staking_txid: &Txid,
        secret_key: &SecretKey,
    ) -> Result<XOnlyPublicKey, SlashingEvidenceError> {
        let derived = secret_key.x_only_public_key(SECP256K1).0;
        let mut tx = self.store.begin().await?;
        let delegation = tx
            .delegation(staking_txid)
            .await?
            .ok_or(SlashingEvidenceError::UnknownDelegation(*staking_txid))?;
        let verifier = delegation.registration.verifier_btc_pk;
        if derived != verifier {
            return Err(SlashingEvidenceError::KeyMismatch {
                txid: *staking_txid,
                derived,
                verifier,
            });
        }
        let mut state = tx
            .verifier(&verifier)
            .await?
            .ok_or(SlashingEvidenceError::MissingVerifier(verifier))?
            .state;
        state
            .slash(tx.tip())
            .map_err(|source| SlashingEvidenceError::AlreadySlashed { verifier, source })?;
        tx.slash_verifier(
            &verifier,
            &state,
            SlashingReason::SelectiveSlashing,
            Some((staking_txid, &secret_key.secret_bytes())),
        )
        .await?;
        self.commit(tx).await?;
        Ok(verifier)
    }
}
