//! The rollup sequencer: the `fiamma-sequencer` component, as `fiamma sequencer submit` and
//! `anchor` run it. It submits its ZK proofs to the node, and once a round is final checks the
//! certificate itself and anchors the round on Bitcoin with the §10 `OP_RETURN` output, paid
//! from its BDK wallet.

use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Address, FeeRate, Txid};
use bitcoincore_rpc::Client;
use fiamma_finality::zk::{ProofSystem, ZkProof};
use fiamma_proto::client::{CheckpointOutputView, GrpcNode};
use fiamma_sequencer::config::WALLET_NAME;
use fiamma_sequencer::sequencer::{
    txid_of, AnchorOutcome, CheckpointOutcome, GenesisOutcome, Sequencer as Component,
    SequencerError, SequencerSettings,
};
use fiamma_sequencer::store::SequencerStore;
use fiamma_staking::context::SigningContexts;

use super::error::DevnetError;
use super::wallet::{self, WALLET_FEE_RATE_SAT_VB};
use crate::btc::RpcBackend;

/// The real Fiamma Groth16 (BN254) proof: its verifying key, proof and public inputs, as
/// Fiamma's prover wrote them (see tests/data/README.md for their origin).
const FIAMMA_VK: &[u8] =
    include_bytes!("../../tests/data/zk/fiamma-arkworks-groth16-bn254/valid/vk.bitvm");
const FIAMMA_PROOF: &[u8] =
    include_bytes!("../../tests/data/zk/fiamma-arkworks-groth16-bn254/valid/proof.bitvm");
const FIAMMA_INPUTS: &[u8] =
    include_bytes!("../../tests/data/zk/fiamma-arkworks-groth16-bn254/valid/public_input.bitvm");
/// The proof of Fiamma's "challenge" example: well formed, but not a proof of the statement
/// above, so it fails verification under the first verifying key.
const CHALLENGE_PROOF: &[u8] =
    include_bytes!("../../tests/data/zk/fiamma-arkworks-groth16-bn254/challenge/proof.bitvm");

const PARTY: &str = "sequencer";

/// The real Fiamma proof.
///
/// # Errors
/// [`DevnetError::Refused`] if the embedded parts exceed the size caps (they do not).
pub fn fiamma_proof() -> Result<ZkProof, DevnetError> {
    ZkProof::new(
        ProofSystem::Groth16Bn254,
        FIAMMA_VK.to_vec(),
        FIAMMA_PROOF.to_vec(),
        FIAMMA_INPUTS.to_vec(),
    )
    .map_err(|e| DevnetError::refused(PARTY, e))
}

/// The Fiamma statement with another circuit's proof: a corrupted submission.
///
/// # Errors
/// [`DevnetError::Refused`] if the embedded parts exceed the size caps (they do not).
pub fn corrupted_proof() -> Result<ZkProof, DevnetError> {
    ZkProof::new(
        ProofSystem::Groth16Bn254,
        FIAMMA_VK.to_vec(),
        CHALLENGE_PROOF.to_vec(),
        FIAMMA_INPUTS.to_vec(),
    )
    .map_err(|e| DevnetError::refused(PARTY, e))
}

/// The sequencer: the component `fiamma sequencer anchor` and `run` drive
/// ([`fiamma_sequencer::sequencer::Sequencer`]), paying from the devnet's wallet and keeping
/// its progress in an in-memory store.
pub struct Sequencer {
    component: Component,
    address: Address,
}

/// A final round's certificate, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCertificate {
    /// Its signers.
    pub signers: usize,
    /// Their power and the round's total.
    pub power: (u64, u64),
    /// `sha256` of the encoded certificate.
    pub digest: [u8; 32],
}

fn refused(e: impl std::fmt::Display) -> DevnetError {
    DevnetError::refused(PARTY, e)
}

impl Sequencer {
    /// The sequencer, asking the node over `node`, broadcasting through `bitcoin` and syncing
    /// its wallet over `rpc`. It anchors each round it is asked to, confirmed once mined.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] when its wallet cannot be created, [`DevnetError::Local`] when
    /// its store cannot.
    pub async fn new(
        contexts: SigningContexts,
        node: Arc<GrpcNode>,
        bitcoin: RpcBackend,
        rpc: Arc<Client>,
    ) -> Result<Self, DevnetError> {
        let store = SequencerStore::open("sqlite::memory:")
            .await
            .map_err(|e| DevnetError::local("open the sequencer's store", e))?;
        let wallet_store = store
            .wallet(WALLET_NAME)
            .await
            .map_err(|e| DevnetError::local("open the sequencer's wallet store", e))?;
        let mut wallet = wallet::create(PARTY, wallet_store).await?;
        let address = wallet
            .next_address()
            .await
            .map_err(|e| DevnetError::Wallet {
                who: PARTY.to_owned(),
                reason: e.to_string(),
            })?;
        let settings = SequencerSettings {
            contexts,
            anchor_every: 1,
            start_round: None,
            confirmations: 1,
            fee_rate: FeeRate::from_sat_per_vb(WALLET_FEE_RATE_SAT_VB)
                .ok_or_else(|| refused("fee rate out of range"))?,
            max_pending: 24,
            poll_interval: Duration::from_secs(1),
        };
        let component = Component::new(
            settings,
            node.clone(),
            Arc::new(bitcoin),
            rpc,
            wallet,
            store,
        )
        .with_checkpoints(node);
        Ok(Sequencer { component, address })
    }

    /// The address the devnet funds it at.
    pub fn receive_address(&self) -> &Address {
        &self.address
    }

    /// Syncs its wallet; returns the height reached.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the chain cannot be read.
    pub async fn sync(&self) -> Result<u32, DevnetError> {
        self.component.sync_wallet().await.map_err(refused)
    }

    /// Submits `proof` to the node (verifiers fetch it from there); returns its proof id and
    /// the round it will be in.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the node refuses it or answers another id.
    pub async fn submit(&self, proof: ZkProof) -> Result<([u8; 32], u64), DevnetError> {
        self.component.submit(&proof).await.map_err(refused)
    }

    /// Checks the certificate of a closed round before anchoring it, as `fiamma sequencer`
    /// does: its encoding and digest, every EOTS signature on the round's vote message, and
    /// more than two thirds of the round's power.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] naming the first check that fails.
    pub async fn check_certificate(&self, round: u64) -> Result<CheckedCertificate, DevnetError> {
        let checked = self
            .component
            .checked_round(round)
            .await
            .map_err(|e| refused(format!("round {round}: {e}")))?;
        let power = |p: u128| u64::try_from(p).unwrap_or(u64::MAX);
        Ok(CheckedCertificate {
            signers: checked.signers,
            power: (power(checked.voted_power), power(checked.total_power)),
            digest: checked.anchor.certificate_hash,
        })
    }

    /// One step of `fiamma sequencer checkpoint genesis`: pays V to the genesis script the
    /// node serves (once), and registers the funding once it is k deep. `None` while it is
    /// not deep yet (mine, and step again).
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the node has no genesis script, or refuses the output.
    pub async fn checkpoint_genesis(&self) -> Result<Option<CheckpointOutputView>, DevnetError> {
        match self.component.checkpoint_genesis(Duration::ZERO).await {
            Ok(GenesisOutcome::Registered(g) | GenesisOutcome::AlreadyRegistered(g)) => Ok(Some(g)),
            Err(SequencerError::GenesisNotDeep { .. }) => Ok(None),
            Err(e) => Err(refused(format!("checkpoint genesis: {e}"))),
        }
    }

    /// One checkpoint pass of `fiamma sequencer run`: a READY checkpoint is broadcast with
    /// its fee-paying child as a package; recorded ones are followed until k deep.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when a READY round cannot be sent or a service fails.
    pub async fn checkpoint_pass(&self) -> Result<Vec<CheckpointOutcome>, DevnetError> {
        self.component
            .checkpoint_pass()
            .await
            .map_err(|e| refused(format!("checkpoint pass: {e}")))
    }

    /// Anchors final round `round` (the §10 `OP_RETURN`, paid from the wallet, recorded, then
    /// broadcast); the anchor transaction's id.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the round does not check, the wallet cannot pay, or
    /// Bitcoin refuses the transaction.
    pub async fn anchor(&self, round: u64) -> Result<Txid, DevnetError> {
        match self.component.anchor_round(round).await.map_err(refused)? {
            AnchorOutcome::Broadcast { result, .. } if !result.is_empty() => Err(refused(format!(
                "bitcoin refused the anchor of round {round}: {result}"
            ))),
            outcome => Ok(txid_of(&outcome)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fiamma_finality::zk::Verdict;

    #[test]
    fn the_embedded_proofs_are_one_valid_and_one_invalid() {
        assert_eq!(fiamma_proof().unwrap().verify().unwrap(), Verdict::Valid);
        assert_eq!(
            corrupted_proof().unwrap().verify().unwrap(),
            Verdict::Invalid
        );
    }
}
