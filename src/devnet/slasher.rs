//! The slasher (anyone may run one): reads the key the node extracted from an equivocation,
//! and for every delegation to that verifier whose staking output (or, once unbonding, whose
//! unbonding output) is still unspent, decrypts q covenant adaptor signatures with it, signs
//! as the verifier, adds the staker's pre-signature and broadcasts the slashing transaction
//! of that output.

use bitcoin::secp256k1::{SecretKey, XOnlyPublicKey, SECP256K1};
use bitcoin::{Amount, OutPoint, ScriptBuf, Txid};
use fiamma_covenant::adaptor::AdaptorSignature;
use fiamma_covenant::delegation::{DelegationSighashes, SlashingTx};
use fiamma_covenant::slashing::signed_slashing_tx;
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::finality::v1::finality_client::FinalityClient;
use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use fiamma_staking::keys::StakingKeys;
use tonic::transport::Channel;

use super::error::DevnetError;
use super::wire;
use crate::btc::{Backend, OutPointStatus, RpcBackend};
use crate::node::grpc::convert as c;

const PARTY: &str = "slasher";

/// One slashing transaction broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slashed {
    /// The delegation.
    pub staking_txid: Txid,
    /// Which output it slashed: the staking or the unbonding output.
    pub which: SlashingTx,
    /// The slashing transaction.
    pub slashing_txid: Txid,
    /// What it pays to the slashing script.
    pub slashed: Amount,
    /// The slashing script it pays.
    pub to: ScriptBuf,
    /// What goes back to the staker (after the unbonding time).
    pub change: Amount,
}

fn refuse(e: impl std::fmt::Display) -> DevnetError {
    DevnetError::refused(PARTY, e)
}

/// The extracted key of `verifier`, as the node publishes it, checked to be that verifier's.
///
/// # Errors
/// [`DevnetError::Refused`] when the node has not slashed it or the key is not its key.
pub async fn published_key(
    finality: &mut FinalityClient<Channel>,
    verifier: &XOnlyPublicKey,
) -> Result<SecretKey, DevnetError> {
    let slashed = finality
        .slashed_verifiers(fpb::SlashedVerifiersRequest {})
        .await
        .map_err(|s| DevnetError::rpc(PARTY, "SlashedVerifiers", &s))?
        .into_inner()
        .verifiers;
    let entry = slashed
        .iter()
        .find(|v| v.verifier_btc_pk == verifier.serialize())
        .ok_or_else(|| refuse(format!("verifier {verifier} is not slashed")))?;
    let key = c::secret_key("extracted_secret_key", &entry.extracted_secret_key).map_err(refuse)?;
    // The extracted scalar may be d or n − d; either signs for the x-only key.
    if key.x_only_public_key(SECP256K1).0 != *verifier {
        return Err(refuse(format!(
            "the published key is not the key of {verifier}"
        )));
    }
    Ok(key)
}

/// Slashes every delegation to `verifier` whose staking or unbonding output is unspent,
/// with `key`.
///
/// # Errors
/// [`DevnetError`] when a delegation cannot be read or slashed, or Bitcoin refuses.
pub async fn slash_all(
    staking: &mut StakingClient<Channel>,
    bitcoin: &RpcBackend,
    verifier: &XOnlyPublicKey,
    key: &SecretKey,
) -> Result<Vec<Slashed>, DevnetError> {
    let delegations = staking
        .delegations(pb::DelegationsRequest {
            verifier_btc_pk: verifier.serialize().to_vec(),
            ..pb::DelegationsRequest::default()
        })
        .await
        .map_err(|s| DevnetError::rpc(PARTY, "Delegations", &s))?
        .into_inner()
        .delegations;
    let mut done = Vec::new();
    for d in &delegations {
        let reg = wire::registration_of(d).map_err(refuse)?;
        let staking_txid = reg.staking_tx.compute_txid();
        let outpoint = OutPoint::new(staking_txid, reg.staking_output_index);
        let unbonding = OutPoint::new(reg.unbonding_tx.compute_txid(), 0);
        let which = if is_unspent(bitcoin, &outpoint).await? {
            SlashingTx::Staking
        } else if is_unspent(bitcoin, &unbonding).await? {
            SlashingTx::Unbonding
        } else {
            continue;
        };
        let params = staking
            .params(pb::ParamsRequest {
                selector: Some(pb::params_request::Selector::Version(d.params_version)),
            })
            .await
            .map_err(|s| DevnetError::rpc(PARTY, "Params", &s))?
            .into_inner()
            .params
            .ok_or_else(|| refuse("the node served no params"))?;
        let covenant_pks = params
            .covenant_pks
            .iter()
            .map(|k| c::key("covenant_pks", k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(refuse)?;
        let keys = StakingKeys::new(
            reg.staker_pk,
            &reg.verifier_pks,
            &covenant_pks,
            params.covenant_quorum,
        )
        .map_err(refuse)?;
        let sighashes = DelegationSighashes::of_registration(&reg, &keys).map_err(refuse)?;
        let adaptor_sigs = d
            .covenant_sigs
            .iter()
            .map(|s| {
                Ok::<(XOnlyPublicKey, AdaptorSignature), DevnetError>((
                    c::key("covenant_pk", &s.covenant_pk).map_err(refuse)?,
                    match which {
                        SlashingTx::Staking => {
                            c::adaptor_sig("slashing_adaptor_sig", &s.slashing_adaptor_sig)
                        }
                        SlashingTx::Unbonding => c::adaptor_sig(
                            "unbonding_slashing_adaptor_sig",
                            &s.unbonding_slashing_adaptor_sig,
                        ),
                    }
                    .map_err(refuse)?,
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (unsigned, staker_sig) = match which {
            SlashingTx::Staking => (&reg.slashing_tx, &reg.staker_slashing_sig),
            SlashingTx::Unbonding => (
                &reg.unbonding_slashing_tx,
                &reg.staker_unbonding_slashing_sig,
            ),
        };
        let tx = signed_slashing_tx(
            key,
            &keys,
            &sighashes,
            which,
            unsigned,
            &adaptor_sigs,
            staker_sig,
            &mut rand::thread_rng(),
        )
        .map_err(|e| refuse(format!("delegation {staking_txid}: {e}")))?;
        let slashing_txid = bitcoin.broadcast(&tx).await.map_err(|e| {
            DevnetError::bitcoin(format!("broadcast the slashing of {staking_txid}"), e)
        })?;
        let (to, slashed) = tx
            .output
            .first()
            .map(|o| (o.script_pubkey.clone(), o.value))
            .ok_or_else(|| refuse("slashing transaction without outputs"))?;
        let change = tx.output.get(1).map_or(Amount::ZERO, |o| o.value);
        done.push(Slashed {
            staking_txid,
            which,
            slashing_txid,
            slashed,
            to,
            change,
        });
    }
    Ok(done)
}

async fn is_unspent(bitcoin: &RpcBackend, outpoint: &OutPoint) -> Result<bool, DevnetError> {
    let status = bitcoin
        .outpoint_status(outpoint)
        .await
        .map_err(|e| DevnetError::bitcoin(format!("status of {outpoint}"), e))?;
    Ok(matches!(status, OutPointStatus::Unspent { .. }))
}
