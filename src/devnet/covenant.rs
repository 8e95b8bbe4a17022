//! A covenant committee member: reads the delegations waiting for its signature, checks each
//! with the shared validation library (the same rules the node applied), and only then
//! adaptor-signs both slashing transactions to the delegation's verifier and signs its
//! unbonding transaction.

use bitcoin::secp256k1::{Keypair, XOnlyPublicKey};
use fiamma_covenant::delegation::DelegationSighashes;
use fiamma_covenant::signing::{sign_delegation, CovenantSignatures};
use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use fiamma_staking::context::SigningContexts;
use fiamma_staking::delegation::validate_delegation;
use fiamma_staking::params::Params;
use fiamma_staking::registration::Registration;
use tonic::transport::Channel;

use super::error::DevnetError;
use super::setup;
use super::wire;

/// What a member did with one pending delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoSigned {
    /// The delegation.
    pub staking_txid: String,
    /// Its status after the signatures.
    pub status: pb::DelegationStatus,
    /// Signatures it holds now.
    pub signatures: u32,
}

/// One member of the committee, with the params version it signs under.
pub struct CovenantMember {
    /// "covenant 1", …
    pub name: String,
    keypair: Keypair,
    params: Params,
    contexts: SigningContexts,
}

impl CovenantMember {
    /// Member `i` (0-based) of the devnet committee.
    pub fn new(i: u32, params: Params, contexts: SigningContexts) -> Self {
        CovenantMember {
            name: format!("covenant {}", i + 1),
            keypair: setup::covenant_keypair(i),
            params,
            contexts,
        }
    }

    /// The member's key.
    pub fn key(&self) -> XOnlyPublicKey {
        self.keypair.x_only_public_key().0
    }

    /// Signs every delegation pending for this member, each after [`validate_delegation`].
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when a delegation fails the rules (the member signs nothing
    /// for it), [`DevnetError::Rpc`] when the node refuses a call.
    pub async fn sign_pending(
        &self,
        client: &mut StakingClient<Channel>,
    ) -> Result<Vec<CoSigned>, DevnetError> {
        let pending = client
            .pending_delegations(pb::PendingDelegationsRequest {
                covenant_pk: self.key().serialize().to_vec(),
                page: None,
            })
            .await
            .map_err(|s| DevnetError::rpc(&self.name, "PendingDelegations", &s))?
            .into_inner()
            .delegations;
        let mut done = Vec::with_capacity(pending.len());
        for d in &pending {
            let request = self.co_sign(d)?;
            let r = client
                .add_covenant_sigs(request)
                .await
                .map_err(|s| DevnetError::rpc(&self.name, "AddCovenantSigs", &s))?
                .into_inner();
            done.push(CoSigned {
                staking_txid: d.staking_txid.clone(),
                status: r.status(),
                signatures: r.signatures,
            });
        }
        Ok(done)
    }

    /// Checks one served delegation and signs it.
    fn co_sign(&self, d: &pb::Delegation) -> Result<pb::AddCovenantSigsRequest, DevnetError> {
        let refuse = |e: &dyn std::fmt::Display| {
            DevnetError::refused(&self.name, format!("delegation {}: {e}", d.staking_txid))
        };
        if d.params_version != 0 {
            return Err(refuse(&format!(
                "params version {} is not the one this member signs under",
                d.params_version
            )));
        }
        let reg = wire::registration_of(d).map_err(|e| refuse(&e))?;
        let checked =
            validate_delegation(&self.params, &self.contexts, &reg).map_err(|e| refuse(&e))?;
        let sigs = self.sign(&reg, &checked.keys).map_err(|e| refuse(&e))?;
        let first = |list: &[fiamma_covenant::signing::VerifierAdaptorSig]| {
            list.first()
                .map(|s| s.signature.to_bytes().to_vec())
                .ok_or_else(|| refuse(&"no verifier to encrypt to"))
        };
        Ok(pb::AddCovenantSigsRequest {
            staking_txid: d.staking_txid.clone(),
            sigs: Some(pb::CovenantSignatures {
                covenant_pk: self.key().serialize().to_vec(),
                slashing_adaptor_sig: first(&sigs.slashing)?,
                unbonding_sig: sigs.unbonding.as_ref().to_vec(),
                unbonding_slashing_adaptor_sig: first(&sigs.unbonding_slashing)?,
            }),
        })
    }

    fn sign(
        &self,
        reg: &Registration,
        keys: &fiamma_staking::keys::StakingKeys,
    ) -> Result<CovenantSignatures, String> {
        let sighashes =
            DelegationSighashes::of_registration(reg, keys).map_err(|e| e.to_string())?;
        sign_delegation(
            &self.keypair,
            &sighashes,
            keys.verifiers(),
            &mut rand::thread_rng(),
        )
        .map_err(|e| e.to_string())
    }
}
