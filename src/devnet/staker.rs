//! A staker: its BDK wallet pays a staking output; the registration (unbonding and slashing
//! transactions, pre-signatures, proof of possession) is built from that transaction and
//! checked with the shared validation library before it is sent; the signed staking
//! transaction is broadcast only once the covenant committee has co-signed; and unbonding
//! uses the committee's signatures the node serves.

use bitcoin::secp256k1::{Keypair, XOnlyPublicKey};
use bitcoin::{Amount, Transaction, Txid, Witness};
use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use fiamma_staking::account::Account;
use fiamma_staking::context::SigningContexts;
use fiamma_staking::delegation::validate_delegation;
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::params::Params;
use fiamma_staking::registration::{build_registration, Registration, StakerChoices};
use fiamma_staking::sighash::{sign, tapscript_sighash, verify};
use fiamma_staking::taproot::{Leaf, TaprootOutput};
use fiamma_staking::witness::{unbonding_witness, KeySignature};
use tonic::transport::Channel;

use super::error::DevnetError;
use super::setup::{self, SLASHING_FEE, STAKING_TIME};
use super::wallet::DevnetWallet;
use super::wire;
use crate::btc::{Backend, RpcBackend};
use crate::node::grpc::convert as c;

/// One staker and its stake.
pub struct Staker {
    /// "staker 1", …
    pub name: String,
    keypair: Keypair,
    account: Account,
    /// The wallet that funds the stake.
    pub wallet: DevnetWallet,
    /// The verifier the stake is delegated to.
    pub verifier: XOnlyPublicKey,
    /// The staked value.
    pub value: Amount,
    signed_staking_tx: Option<Transaction>,
    registration: Option<Registration>,
}

impl Staker {
    /// Staker `number` (1-based), staking `value` with `verifier`.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] when its wallet cannot be created.
    pub async fn new(
        number: usize,
        verifier: XOnlyPublicKey,
        value: Amount,
    ) -> Result<Self, DevnetError> {
        let name = format!("staker {number}");
        let keypair = setup::devnet_keypair(&format!("staker/{number}"));
        let account = wire::account_of(&keypair.x_only_public_key().0);
        let wallet = DevnetWallet::new(&name, &setup::wallet_seed(&name)).await?;
        Ok(Staker {
            name,
            keypair,
            account,
            wallet,
            verifier,
            value,
            signed_staking_tx: None,
            registration: None,
        })
    }

    /// The staker's BTC key.
    pub fn key(&self) -> XOnlyPublicKey {
        self.keypair.x_only_public_key().0
    }

    fn keys(&self, params: &Params) -> Result<StakingKeys, DevnetError> {
        StakingKeys::new(
            self.key(),
            &[self.verifier],
            &params.covenant_pks,
            params.covenant_quorum,
        )
        .map_err(|e| DevnetError::refused(&self.name, e))
    }

    /// Builds and signs the staking transaction with the wallet (staking output plus change),
    /// and the registration over it, checked with [`validate_delegation`] as the node and the
    /// committee will check it. Blocks on signing; run it on the blocking pool.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] or [`DevnetError::Refused`] when either cannot be built.
    pub fn prepare(
        &mut self,
        params: &Params,
        contexts: &SigningContexts,
    ) -> Result<&Registration, DevnetError> {
        let output = TaprootOutput::staking(&self.keys(params)?, STAKING_TIME)
            .map_err(|e| DevnetError::refused(&self.name, e))?;
        let script = output.script_pubkey();
        let signed = self.wallet.pay(&[(script.clone(), self.value)])?;
        // The wallet orders outputs at random; the registration names the index.
        let index = signed
            .output
            .iter()
            .position(|o| o.script_pubkey == script && o.value == self.value)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| DevnetError::refused(&self.name, "the wallet left out the stake"))?;
        // The committee sees the transaction without witnesses: the funds stay unspendable
        // by anyone else until the staker broadcasts, after the committee has co-signed.
        let mut unsigned = signed.clone();
        for input in &mut unsigned.input {
            input.witness = Witness::new();
        }
        let reg = build_registration(
            params,
            contexts,
            StakerChoices {
                staker: &self.keypair,
                account: self.account,
                verifier_pks: vec![self.verifier],
                staking_tx: unsigned,
                staking_output_index: index,
                staking_time: STAKING_TIME,
                slashing_fee: SLASHING_FEE,
            },
        )
        .map_err(|e| DevnetError::refused(&self.name, e))?;
        validate_delegation(params, contexts, &reg)
            .map_err(|e| DevnetError::refused(&self.name, format!("own registration: {e}")))?;
        self.signed_staking_tx = Some(signed);
        Ok(self.registration.insert(reg))
    }

    fn registration(&self) -> Result<&Registration, DevnetError> {
        self.registration
            .as_ref()
            .ok_or_else(|| DevnetError::refused(&self.name, "no registration prepared"))
    }

    /// The staking transaction id (the delegation's id).
    ///
    /// # Errors
    /// [`DevnetError::Refused`] before [`Staker::prepare`].
    pub fn staking_txid(&self) -> Result<Txid, DevnetError> {
        Ok(self.registration()?.staking_tx.compute_txid())
    }

    /// Sends CreateDelegation; returns the delegation's id and params version.
    ///
    /// # Errors
    /// [`DevnetError::Rpc`] when the node refuses.
    pub async fn register(
        &self,
        client: &mut StakingClient<Channel>,
    ) -> Result<(String, u32), DevnetError> {
        let request = c::create_delegation_request(self.registration()?)
            .map_err(|e| DevnetError::refused(&self.name, e))?;
        let r = client
            .create_delegation(request)
            .await
            .map_err(|s| DevnetError::rpc(&self.name, "CreateDelegation", &s))?
            .into_inner();
        Ok((r.staking_txid, r.params_version))
    }

    /// Broadcasts the signed staking transaction.
    ///
    /// # Errors
    /// [`DevnetError::Bitcoin`] when the node's mempool refuses it.
    pub async fn broadcast_stake(&self, bitcoin: &RpcBackend) -> Result<Txid, DevnetError> {
        let tx = self
            .signed_staking_tx
            .as_ref()
            .ok_or_else(|| DevnetError::refused(&self.name, "no staking transaction"))?;
        bitcoin
            .broadcast(tx)
            .await
            .map_err(|e| DevnetError::bitcoin(format!("{} broadcasts its stake", self.name), e))
    }

    /// Unbonds: the unbonding transaction of the registration with the staker's signature and
    /// the committee's unbonding signatures read from the node (each checked first), broadcast.
    /// Returns its id and the value it moves to the unbonding output.
    ///
    /// # Errors
    /// [`DevnetError`] when the delegation cannot be read, the signatures do not verify or
    /// the transaction is refused.
    pub async fn unbond(
        &self,
        client: &mut StakingClient<Channel>,
        bitcoin: &RpcBackend,
        params: &Params,
    ) -> Result<(Txid, Amount), DevnetError> {
        let reg = self.registration()?;
        let served = client
            .delegation(pb::DelegationRequest {
                staking_txid: reg.staking_tx.compute_txid().to_string(),
            })
            .await
            .map_err(|s| DevnetError::rpc(&self.name, "Delegation", &s))?
            .into_inner()
            .delegation
            .ok_or_else(|| DevnetError::refused(&self.name, "the node served no delegation"))?;
        let keys = self.keys(params)?;
        let output = TaprootOutput::staking(&keys, reg.staking_time)
            .map_err(|e| DevnetError::refused(&self.name, e))?;
        let leaf = output
            .leaf_script(Leaf::Unbonding)
            .map_err(|e| DevnetError::refused(&self.name, e))?;
        let staked = output.txout(Amount::from_sat(reg.staking_value_sat));
        let sighash = tapscript_sighash(&reg.unbonding_tx, 0, &[staked], leaf)
            .map_err(|e| DevnetError::refused(&self.name, e))?;
        let mut covenant: Vec<KeySignature> = Vec::new();
        for s in &served.covenant_sigs {
            let key = c::key("covenant_pk", &s.covenant_pk)
                .map_err(|e| DevnetError::refused(&self.name, e))?;
            let sig = c::schnorr_sig("unbonding_sig", &s.unbonding_sig)
                .map_err(|e| DevnetError::refused(&self.name, e))?;
            verify(&sighash, &sig, &key).map_err(|e| {
                DevnetError::refused(&self.name, format!("unbonding signature of {key}: {e}"))
            })?;
            covenant.push((key, sig));
        }
        let staker_sig = sign(&sighash, &self.keypair);
        let mut tx = reg.unbonding_tx.clone();
        let witness = unbonding_witness(&output, &keys, &covenant, &staker_sig)
            .map_err(|e| DevnetError::refused(&self.name, e))?;
        let input = tx
            .input
            .first_mut()
            .ok_or_else(|| DevnetError::refused(&self.name, "unbonding tx has no input"))?;
        input.witness = witness;
        let value = tx.output.first().map_or(Amount::ZERO, |o| o.value);
        let txid = bitcoin.broadcast(&tx).await.map_err(|e| {
            DevnetError::bitcoin(format!("{} broadcasts its unbonding", self.name), e)
        })?;
        Ok((txid, value))
    }
}
