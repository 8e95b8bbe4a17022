//! The rollup sequencer: submits its ZK proofs to the node, and once a
//! round is final, checks the certificate itself (with `fiamma-sequencer`'s check, the one
//! `fiamma sequencer` runs) and anchors the round on Bitcoin with the §10 `OP_RETURN` output,
//! paid from its BDK wallet.

use bitcoin::{Amount, Transaction};
use fiamma_finality::round::anchor::Anchor;
use fiamma_finality::round::RoundHash;
use fiamma_finality::zk::{ProofSystem, ZkProof};
use fiamma_proto::client::round_certificate_view;
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::finality::v1::finality_client::FinalityClient;
use fiamma_sequencer::plan::check;
use fiamma_staking::context::SigningContexts;
use tonic::transport::Channel;

use super::error::DevnetError;
use super::setup;
use super::wallet::DevnetWallet;

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

/// The sequencer.
pub struct Sequencer {
    /// The wallet that pays for anchors.
    pub wallet: DevnetWallet,
    contexts: SigningContexts,
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

impl Sequencer {
    /// The sequencer.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] when its wallet cannot be created.
    pub async fn new(contexts: SigningContexts) -> Result<Self, DevnetError> {
        Ok(Sequencer {
            wallet: DevnetWallet::new(PARTY, &setup::wallet_seed(PARTY)).await?,
            contexts,
        })
    }

    /// Submits `proof` to the node (verifiers fetch it from there); returns its proof id and the round it will be in.
    ///
    /// # Errors
    /// [`DevnetError::Rpc`] when the node refuses it.
    pub async fn submit(
        &self,
        client: &mut FinalityClient<Channel>,
        proof: ZkProof,
    ) -> Result<([u8; 32], u64), DevnetError> {
        let id = *proof.proof_id().as_bytes();
        let r = client
            .submit_proof(fpb::SubmitProofRequest {
                proof_system: u32::from(proof.system().code()),
                verifying_key: proof.verifying_key().to_vec(),
                proof: proof.proof().to_vec(),
                public_inputs: proof.public_inputs().to_vec(),
            })
            .await
            .map_err(|s| DevnetError::rpc(PARTY, "SubmitProof", &s))?
            .into_inner();
        if r.proof_id != id {
            return Err(DevnetError::unexpected(
                "SubmitProof",
                format!("proof id {}", hex::encode(id)),
                hex::encode(&r.proof_id),
            ));
        }
        Ok((id, r.round))
    }

    /// Checks the certificate of a final round before anchoring it, as `fiamma sequencer`
    /// does: its encoding and digest, every EOTS signature on the round's vote message, and
    /// more than two thirds of the round's power.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] naming the first check that fails.
    pub fn check_certificate(&self, round: &fpb::Round) -> Result<CheckedCertificate, DevnetError> {
        let refuse =
            |why: String| DevnetError::refused(PARTY, format!("round {}: {why}", round.round));
        let view = round_certificate_view(round).map_err(|e| refuse(e.to_string()))?;
        let checked = check(&view, &self.contexts).map_err(|e| refuse(e.to_string()))?;
        let power = |p: u128| u64::try_from(p).unwrap_or(u64::MAX);
        Ok(CheckedCertificate {
            signers: checked.signers,
            power: (power(checked.voted_power), power(checked.total_power)),
            digest: checked.anchor.certificate_hash,
        })
    }

    /// The anchor transaction of a final round: the `OP_RETURN` of §10 and change, signed by
    /// the wallet. Blocks on signing; run it on the blocking pool.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] when the wallet cannot pay for it.
    pub fn anchor_tx(
        &mut self,
        round: u64,
        round_hash: [u8; 32],
        certificate_digest: [u8; 32],
    ) -> Result<(Transaction, Anchor), DevnetError> {
        let anchor = Anchor {
            round,
            round_hash: RoundHash(round_hash),
            certificate_hash: certificate_digest,
        };
        let tx = self.wallet.pay(&[(anchor.script_pubkey(), Amount::ZERO)])?;
        Ok((tx, anchor))
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
