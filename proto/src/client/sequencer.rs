//! What a rollup's sequencer asks of the node: it submits proofs, and reads final rounds with
//! their certificate and active set so that it can check the certificate itself before
//! anchoring the round on Bitcoin (PROTOCOL §10).

use async_trait::async_trait;
use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_finality::eots::{PublicRandomness, Signature};
use fiamma_finality::merkle::Digest;
use fiamma_finality::rounds::{Certificate, CertificateEntry};
use fiamma_finality::zk::ZkProof;

use super::{Code, FinalityNode, GrpcNode, NodeError};
use crate::codec::finality::bytes32;
use crate::codec::{self, FieldError};
use crate::finality::v1 as fpb;

use super::RoundStatus;

/// A certificate as served: decoded, and the encoding and digest the node published beside it
/// (a reader compares them with its own rather than trusting them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedCertificate {
    /// The entries, decoded.
    pub certificate: Certificate,
    /// The node's encoding of the entries.
    pub encoded: Vec<u8>,
    /// The node's digest of that encoding.
    pub digest: Vec<u8>,
}

/// A closed round as a sequencer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundCertificateView {
    /// The round.
    pub round: u64,
    /// The node's round hash.
    pub round_hash: Digest,
    /// Its status.
    pub status: RoundStatus,
    /// The verifiers that may vote in it and their power.
    pub active_set: Vec<(XOnlyPublicKey, u64)>,
    /// The power of the active set, as served.
    pub total_power_sat: u64,
    /// The certificate; set once the round is final.
    pub certificate: Option<ServedCertificate>,
}

/// Decodes a served round into what a sequencer checks; the first field that does not decode
/// is named.
///
/// # Errors
/// [`FieldError`].
pub fn round_certificate_view(r: &fpb::Round) -> Result<RoundCertificateView, FieldError> {
    let round_hash = bytes32("round_hash", &r.round_hash)?;
    let active_set = r
        .active_set
        .iter()
        .map(|e| {
            Ok((
                codec::key("active_set.verifier_btc_pk", &e.verifier_btc_pk)?,
                e.power_sat,
            ))
        })
        .collect::<Result<Vec<_>, FieldError>>()?;
    let certificate = r
        .certificate
        .as_ref()
        .map(|c| {
            let entries = c
                .entries
                .iter()
                .map(|e| {
                    Ok(CertificateEntry {
                        verifier: codec::key("certificate.verifier_btc_pk", &e.verifier_btc_pk)?,
                        public_randomness: PublicRandomness::from_byte_array(bytes32(
                            "certificate.public_randomness",
                            &e.public_randomness,
                        )?),
                        signature: Signature::from_byte_array(bytes32(
                            "certificate.signature",
                            &e.signature,
                        )?),
                    })
                })
                .collect::<Result<Vec<_>, FieldError>>()?;
            Ok::<_, FieldError>(ServedCertificate {
                certificate: Certificate {
                    round: r.round,
                    round_hash,
                    entries,
                },
                encoded: c.encoded.clone(),
                digest: c.digest.clone(),
            })
        })
        .transpose()?;
    Ok(RoundCertificateView {
        round: r.round,
        round_hash,
        status: r.status(),
        active_set,
        total_power_sat: r.total_power_sat,
        certificate,
    })
}

/// What a sequencer asks of the node, on top of the finality calls (rounds, events).
#[async_trait]
pub trait SequencerNode: FinalityNode {
    /// Submits `proof`; the node's proof id and the round it will be in.
    async fn submit_proof(&self, proof: &ZkProof) -> Result<([u8; 32], u64), NodeError>;

    /// Closed round `round` with its active set and certificate; `None` when it is not closed.
    async fn round_certificate(
        &self,
        round: u64,
    ) -> Result<Option<RoundCertificateView>, NodeError>;
}

#[async_trait]
impl SequencerNode for GrpcNode {
    async fn submit_proof(&self, proof: &ZkProof) -> Result<([u8; 32], u64), NodeError> {
        const CALL: &str = "SubmitProof";
        let r = self
            .finality
            .clone()
            .submit_proof(fpb::SubmitProofRequest {
                proof_system: u32::from(proof.system().code()),
                verifying_key: proof.verifying_key().to_vec(),
                proof: proof.proof().to_vec(),
                public_inputs: proof.public_inputs().to_vec(),
            })
            .await
            .map_err(|s| NodeError::status(CALL, &s))?
            .into_inner();
        let id = bytes32("proof_id", &r.proof_id)
            .map_err(|source| NodeError::Decode { call: CALL, source })?;
        Ok((id, r.round))
    }

    async fn round_certificate(
        &self,
        round: u64,
    ) -> Result<Option<RoundCertificateView>, NodeError> {
        const CALL: &str = "Round";
        let r = match self
            .finality
            .clone()
            .round(fpb::RoundRequest {
                round,
                results_from: 0,
                // The results are not needed: only the round's header, set and certificate.
                results_limit: 1,
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(NodeError::status(CALL, &s)),
        };
        let Some(served) = r.round else {
            return Err(NodeError::Decode {
                call: CALL,
                source: codec::bad("round", "missing"),
            });
        };
        round_certificate_view(&served)
            .map(Some)
            .map_err(|source| NodeError::Decode { call: CALL, source })
    }
}
