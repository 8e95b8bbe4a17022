//! CreateDelegation, AddCovenantSigs and AddInclusionProof.

use std::sync::atomic::Ordering;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::secp256k1::{schnorr, XOnlyPublicKey};
use bitcoin::{BlockHash, Transaction, Txid};
use fiamma_covenant::adaptor::AdaptorSignature;
use fiamma_covenant::delegation::{DelegationSighashes as CovenantTxSighashes, DelegationTxs};
use fiamma_covenant::signing::{CovenantSignatures, VerifierAdaptorSig};
use fiamma_covenant::verification::verify_covenant_signatures_on;
use fiamma_staking::delegation::{validate_delegation, DelegationSighashes};
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::light_client::InclusionProof;
use fiamma_staking::params::Params;
use fiamma_staking::registration::Registration;
use fiamma_staking::state::{DelegationState, DelegationStatus, RecordInclusionError};

use super::{
    rules, CovenantSigsError, CreateDelegationError, InclusionProofError, StakingModule,
    StoredDelegationError,
};
use crate::node::store::{
    CovenantSigs, Delegation, NewDelegation, OrderedSigs, Pop, Registered, SigningView,
};

/// One covenant member's decoded signatures for one delegation.
#[derive(Debug, Clone)]
pub struct CovenantSigsInput {
    /// The member's key.
    pub covenant_pk: XOnlyPublicKey,
    /// Adaptor signature on the staking slashing transaction.
    pub slashing: AdaptorSignature,
    /// Adaptor signature on the unbonding slashing transaction.
    pub unbonding_slashing: AdaptorSignature,
    /// Signature on the unbonding transaction.
    pub unbonding: schnorr::Signature,
}

fn decode_tx(
    d: &Delegation,
    what: &'static str,
    bytes: &[u8],
) -> Result<Transaction, StoredDelegationError> {
    deserialize(bytes).map_err(|e| StoredDelegationError::Decode {
        txid: d.registration.staking_txid,
        what,
        reason: e.to_string(),
    })
}

/// The committee's messages of a delegation stored before they were kept with it, computed
/// from its stored transactions.
fn stored_sighashes(
    d: &Delegation,
    keys: &StakingKeys,
) -> Result<DelegationSighashes, StoredDelegationError> {
    let r = &d.registration;
    let staking_tx = decode_tx(d, "staking transaction", &r.staking_tx)?;
    let slashing_tx = decode_tx(d, "slashing transaction", &r.slashing_tx)?;
    let unbonding_tx = decode_tx(d, "unbonding transaction", &r.unbonding_tx)?;
    let unbonding_slashing_tx = decode_tx(
        d,
        "unbonding slashing transaction",
        &r.unbonding_slashing_tx,
    )?;
    let sighashes = CovenantTxSighashes::compute(&DelegationTxs {
        keys,
        staking_time: r.staking_time_blocks,
        unbonding_time: r.unbonding_time_blocks,
        staking_tx: &staking_tx,
        staking_output_index: r.staking_output_index as usize,
        slashing_tx: &slashing_tx,
        unbonding_tx: &unbonding_tx,
        unbonding_slashing_tx: &unbonding_slashing_tx,
    })
    .map_err(|e| StoredDelegationError::Decode {
        txid: r.staking_txid,
        what: "sighashes",
        reason: e.to_string(),
    })?;
    Ok(sighashes.messages())
}

impl StakingModule {
    fn params_of(&self, d: &Delegation) -> Result<&Params, StoredDelegationError> {
        self.params_version_of(&d.registration.staking_txid, d.registration.params_version)
    }

    fn params_version_of(
        &self,
        staking_txid: &Txid,
        version: u32,
    ) -> Result<&Params, StoredDelegationError> {
        self.params
            .get(version)
            .ok_or(StoredDelegationError::UnknownParamsVersion {
                txid: *staking_txid,
                version,
            })
    }

    /// Registers a delegation as PENDING: every rule of PROTOCOL §4, §7 and §8 through
    /// `validate_delegation` under the params version in force at the node's tip, then the
    /// state checks (verifier registered and not slashed, staking transaction new).
    pub async fn create_delegation(
        &self,
        reg: Registration,
        staker_account: String,
    ) -> Result<(Txid, u32), CreateDelegationError> {
        let mut tip = self.tip_hint.load(Ordering::Relaxed);
        let (mut version, params) = self.params.at_height(tip)?;
        let mut validated = validate_delegation(params, &self.contexts, &reg)?;
        let staking_txid = validated.staking_txid();
        let verifier = match validated.keys.verifiers() {
            [one] => *one,
            several => return Err(CreateDelegationError::SeveralVerifiers(several.len())),
        };
        let state = DelegationState::new(reg.staking_time, reg.unbonding_time);
        loop {
            let new = NewDelegation {
                staking_txid,
                staker_account: staker_account.clone(),
                staker_btc_pk: reg.staker_pk,
                pop: Pop::of(&reg.pop),
                verifier_btc_pk: verifier,
                staking_time_blocks: reg.staking_time,
                staking_value_sat: reg.staking_value_sat,
                staking_tx: serialize(&reg.staking_tx),
                staking_output_index: reg.staking_output_index,
                slashing_tx: serialize(&reg.slashing_tx),
                staker_slashing_sig: reg.staker_slashing_sig.as_ref().to_vec(),
                unbonding_time_blocks: reg.unbonding_time,
                unbonding_tx: serialize(&reg.unbonding_tx),
                unbonding_txid: validated.unbonding_outpoint.txid,
                unbonding_slashing_tx: serialize(&reg.unbonding_slashing_tx),
                staker_unbonding_slashing_sig: reg.staker_unbonding_slashing_sig.as_ref().to_vec(),
                params_version: version,
            };
            // The state checks, the row and its event in one statement under the node-wide
            // lock, provided the tip is still the one the params version was chosen at.
            match self
                .store
                .register_delegation(&new, &state, &validated.sighashes, tip)
                .await?
            {
                Registered::Inserted(events) => {
                    self.publish(&events);
                    self.signing_cache.put(SigningView {
                        staking_txid,
                        staker_btc_pk: reg.staker_pk,
                        verifier_btc_pk: verifier,
                        params_version: version,
                        state: state.registered_at(tip),
                        covenant_sighashes: Some(validated.sighashes),
                    });
                    return Ok((staking_txid, version));
                }
                Registered::TipMoved(now) => {
                    self.tip_hint.store(now, Ordering::Relaxed);
                    tip = now;
                    let (version_now, params_now) = self.params.at_height(tip)?;
                    if version_now != version {
                        // The tip crossed an activation height: check under the new version.
                        validated = validate_delegation(params_now, &self.contexts, &reg)?;
                        version = version_now;
                    }
                }
                Registered::UnknownVerifier => {
                    return Err(CreateDelegationError::UnknownVerifier(verifier))
                }
                Registered::VerifierSlashed => {
                    return Err(CreateDelegationError::VerifierSlashed(verifier))
                }
                Registered::Duplicate => {
                    return Err(CreateDelegationError::Duplicate(staking_txid))
                }
            }
        }
    }

    /// Counts one covenant member's signatures: the state checks (member of the committee,
    /// not signed yet, still PENDING or VERIFIED) first on the delegation as read, then
    /// EncVerify and BIP-340 verification against the messages stored at registration, then
    /// the change.
    ///
    /// The change is one statement guarded by the state it was decided on. A signature that
    /// moves no status commutes with every other message, so it takes no node-wide lock; the
    /// one that reaches the quorum appends an event and takes the ordered path. When the guard
    /// finds the delegation changed, it is read again and the decision made afresh; that ends,
    /// since every change adds a signature or moves the status forward, and both are bounded.
    pub async fn add_covenant_sigs(
        &self,
        staking_txid: &Txid,
        sigs: CovenantSigsInput,
    ) -> Result<(DelegationStatus, u32), CovenantSigsError> {
        // One connection for the reads and the unordered write of this message.
        let mut conn = self.store.connection().await?;
        let mut d = match self.signing_cache.get(staking_txid) {
            Some(view) => view,
            None => conn
                .signing_view(staking_txid)
                .await?
                .ok_or(CovenantSigsError::UnknownDelegation(*staking_txid))?,
        };
        let params = self.params_version_of(staking_txid, d.params_version)?;
        let rules = rules(params);
        d.state.check_covenant_signer(sigs.covenant_pk, &rules)?;
        let messages = match d.covenant_sighashes {
            Some(m) => m,
            None => {
                let full = conn
                    .delegation(staking_txid)
                    .await?
                    .ok_or(CovenantSigsError::UnknownDelegation(*staking_txid))?;
                stored_sighashes(&full, &self.keys_of(&d, params)?)?
            }
        };
        self.verify_covenant_sigs(&d, params, &messages, &sigs)?;
        let stored = CovenantSigs {
            covenant_pk: sigs.covenant_pk,
            slashing_adaptor_sig: sigs.slashing.to_bytes().to_vec(),
            unbonding_sig: sigs.unbonding.as_ref().to_vec(),
            unbonding_slashing_adaptor_sig: sigs.unbonding_slashing.to_bytes().to_vec(),
        };
        let verifier = d.verifier_btc_pk;
        loop {
            let before = d.state.record().clone();
            let mut state = d.state.clone();
            // Whether the signature moves the delegation does not depend on the tip; the tip
            // is only recorded when it does, and then the statement checks it is current.
            let added = state.add_covenant_signatures(sigs.covenant_pk, &rules, 0)?;
            if added.transitions.is_empty() {
                if conn
                    .add_covenant_sigs(staking_txid, &stored, &before, &state)
                    .await?
                {
                    let status = state.status();
                    self.signing_cache.put(SigningView { state, ..d });
                    return Ok((status, added.signatures));
                }
            } else {
                let tip = self.tip_hint.load(Ordering::Relaxed);
                let mut state = d.state.clone();
                let added = state.add_covenant_signatures(sigs.covenant_pk, &rules, tip)?;
                match conn
                    .add_covenant_sigs_ordered(
                        staking_txid,
                        &verifier,
                        &stored,
                        &before,
                        &state,
                        &added.transitions,
                        tip,
                    )
                    .await?
                {
                    OrderedSigs::Applied(events) => {
                        self.publish(&events);
                        let status = state.status();
                        self.signing_cache.put(SigningView { state, ..d });
                        return Ok((status, added.signatures));
                    }
                    OrderedSigs::TipMoved(now) => {
                        // Decide again at the current tip; the delegation is unchanged.
                        self.tip_hint.store(now, Ordering::Relaxed);
                        continue;
                    }
                    OrderedSigs::Changed => {}
                }
            }
            // The stored delegation is not the view: read it and decide again.
            self.signing_cache.forget(staking_txid);
            d = conn
                .signing_view(staking_txid)
                .await?
                .ok_or(CovenantSigsError::UnknownDelegation(*staking_txid))?;
        }
    }

    /// The key sets of a stored delegation under its params version.
    fn keys_of(
        &self,
        d: &SigningView,
        params: &Params,
    ) -> Result<StakingKeys, StoredDelegationError> {
        StakingKeys::new(
            d.staker_btc_pk,
            &[d.verifier_btc_pk],
            &params.covenant_pks,
            params.covenant_quorum,
        )
        .map_err(|e| StoredDelegationError::Decode {
            txid: d.staking_txid,
            what: "key sets",
            reason: e.to_string(),
        })
    }

    fn verify_covenant_sigs(
        &self,
        d: &SigningView,
        params: &Params,
        messages: &DelegationSighashes,
        sigs: &CovenantSigsInput,
    ) -> Result<(), CovenantSigsError> {
        let keys = self.keys_of(d, params)?;
        let verifier = d.verifier_btc_pk;
        verify_covenant_signatures_on(
            &keys,
            messages,
            &CovenantSignatures {
                covenant: sigs.covenant_pk,
                slashing: vec![VerifierAdaptorSig {
                    verifier,
                    signature: sigs.slashing,
                }],
                unbonding_slashing: vec![VerifierAdaptorSig {
                    verifier,
                    signature: sigs.unbonding_slashing,
                }],
                unbonding: sigs.unbonding,
            },
        )?;
        Ok(())
    }
    /// Activates a delegation from a Merkle proof that its staking transaction sits in a
    /// best-chain block of the node's header chain, k-deep at the node's tip.
    pub async fn add_inclusion_proof(
        &self,
        staking_txid: &Txid,
        block_hash: &BlockHash,
        proof: &InclusionProof,
    ) -> Result<(DelegationStatus, Option<u32>, Option<u32>), InclusionProofError> {
        let d = self
            .store
            .delegation(staking_txid)
            .await?
            .ok_or(InclusionProofError::UnknownDelegation(*staking_txid))?;
        // An ended delegation is refused before its transaction is read: one that expired
        // unincluded keeps no transactions.
        let status = d.state.status();
        if status.is_terminal() {
            return Err(RecordInclusionError::Ended { status }.into());
        }
        let staking_tx = decode_tx(&d, "staking transaction", &d.registration.staking_tx)?;
        let inclusion = {
            let guard = self
                .header_chain
                .read()
                .map_err(|_| InclusionProofError::NoHeaderChain)?;
            let chain = guard.as_ref().ok_or(InclusionProofError::NoHeaderChain)?;
            chain.verify_transaction_inclusion(block_hash, &staking_tx, proof)?
        };
        if inclusion.index == 0 {
            return Err(InclusionProofError::Coinbase {
                txid: *staking_txid,
                block: *block_hash,
            });
        }
        self.apply_inclusion(staking_txid, inclusion.height).await
    }

    /// Records a checked inclusion at `height` and advances the delegation at the tip.
    pub(crate) async fn apply_inclusion(
        &self,
        staking_txid: &Txid,
        height: u32,
    ) -> Result<(DelegationStatus, Option<u32>, Option<u32>), InclusionProofError> {
        let mut tx = self.store.begin().await?;
        let mut d = tx
            .lock_delegation(staking_txid)
            .await?
            .ok_or(InclusionProofError::UnknownDelegation(*staking_txid))?;
        let registered = d.registration.params_version;
        let (at_inclusion, _) = self.params.at_height(height)?;
        if at_inclusion != registered {
            return Err(InclusionProofError::ParamsVersionChanged {
                txid: *staking_txid,
                height,
                registered,
                at_inclusion,
            });
        }
        let params = self.params_of(&d)?;
        let transitions = d.state.record_inclusion(height, &rules(params), tx.tip())?;
        tx.save_state(staking_txid, &d.state, None).await?;
        tx.record_transitions(staking_txid, &d.registration.verifier_btc_pk, &transitions);
        self.commit(tx).await?;
        Ok((
            d.state.status(),
            d.state.start_height(),
            d.state.end_height(),
        ))
    }
}
