//! The `fiamma.finality.v1.Finality` gRPC service over [`FinalityModule`], and its event
//! stream: replay from the store, then the live feed, falling back to the store whenever the
//! live feed skips, so the stream has no gaps.

use std::pin::Pin;

use fiamma_finality::rounds::VoteOutcome;
use fiamma_proto::finality::v1 as pb;
use fiamma_proto::finality::v1::finality_server::{Finality, FinalityServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{store, wire, FinalityModule};
use crate::node::grpc::convert::int64;
use crate::node::grpc::events::{forward_log, REPLAY_BATCH};
use crate::node::grpc::limits::ServerLimits;
use crate::node::grpc::EVENT_CHANNEL;
use crate::node::store::StoreError;

/// Largest request the service decodes: two votes, or a proof at its caps, fit well within.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The gRPC face of the finality module.
#[derive(Clone)]
pub struct FinalityGrpc {
    module: FinalityModule,
    limits: ServerLimits,
}

/// The tonic service for `module` with the default limits, ready for `Server::add_service`.
pub fn server(module: FinalityModule) -> FinalityServer<FinalityGrpc> {
    server_with(module, ServerLimits::default())
}

/// The tonic service for `module` within `limits` (shared with the server's other services).
pub fn server_with(module: FinalityModule, limits: ServerLimits) -> FinalityServer<FinalityGrpc> {
    FinalityServer::new(FinalityGrpc { module, limits })
        .max_decoding_message_size(MAX_REQUEST_BYTES)
}

type EventStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl Finality for FinalityGrpc {
    async fn submit_proof(
        &self,
        request: Request<pb::SubmitProofRequest>,
    ) -> Result<Response<pb::SubmitProofResponse>, Status> {
        let (id, round) = self.module.submit_proof(request.into_inner()).await?;
        Ok(Response::new(pb::SubmitProofResponse {
            proof_id: id.as_bytes().to_vec(),
            round,
        }))
    }

    async fn commit_pub_rand_list(
        &self,
        request: Request<pb::CommitPubRandListRequest>,
    ) -> Result<Response<pb::CommitPubRandListResponse>, Status> {
        self.module.commit_pub_rand(request.into_inner()).await?;
        Ok(Response::new(pb::CommitPubRandListResponse {}))
    }

    async fn add_finality_sig(
        &self,
        request: Request<pb::AddFinalitySigRequest>,
    ) -> Result<Response<pb::AddFinalitySigResponse>, Status> {
        let outcome = match self.module.add_vote(request.into_inner()).await? {
            VoteOutcome::Counted => pb::VoteOutcome::Counted,
            VoteOutcome::Disagrees => pb::VoteOutcome::Disagrees,
            VoteOutcome::Equivocation(_) => pb::VoteOutcome::Equivocation,
        };
        Ok(Response::new(pb::AddFinalitySigResponse {
            outcome: outcome as i32,
        }))
    }

    async fn equivocation_evidence(
        &self,
        request: Request<pb::EquivocationEvidenceRequest>,
    ) -> Result<Response<pb::EquivocationEvidenceResponse>, Status> {
        let (pk, sk) = self
            .module
            .equivocation_evidence(request.into_inner())
            .await?;
        Ok(Response::new(pb::EquivocationEvidenceResponse {
            verifier_btc_pk: pk.serialize().to_vec(),
            extracted_secret_key: sk.secret_bytes().to_vec(),
        }))
    }

    async fn unjail_verifier(
        &self,
        request: Request<pb::UnjailVerifierRequest>,
    ) -> Result<Response<pb::UnjailVerifierResponse>, Status> {
        self.module.unjail(request.into_inner()).await?;
        Ok(Response::new(pb::UnjailVerifierResponse {}))
    }

    async fn round(
        &self,
        request: Request<pb::RoundRequest>,
    ) -> Result<Response<pb::RoundResponse>, Status> {
        let r = request.into_inner();
        let (round, next_results_from) = self
            .module
            .round(r.round, r.results_from, r.results_limit)
            .await?;
        Ok(Response::new(pb::RoundResponse {
            round: Some(round),
            next_results_from,
        }))
    }

    async fn rounds(
        &self,
        request: Request<pb::RoundsRequest>,
    ) -> Result<Response<pb::RoundsResponse>, Status> {
        let r = request.into_inner();
        let (rounds, latest_round) = self.module.rounds(r.from_round, r.limit).await?;
        Ok(Response::new(pb::RoundsResponse {
            rounds,
            latest_round,
        }))
    }

    async fn round_proofs(
        &self,
        request: Request<pb::RoundProofsRequest>,
    ) -> Result<Response<pb::RoundProofsResponse>, Status> {
        let r = request.into_inner();
        let (proofs, next_position) = self
            .module
            .round_proofs(r.round, r.from_position, r.limit)
            .await?;
        Ok(Response::new(pb::RoundProofsResponse {
            proofs,
            next_position,
        }))
    }

    async fn verifier(
        &self,
        request: Request<pb::VerifierRequest>,
    ) -> Result<Response<pb::VerifierResponse>, Status> {
        let pk = wire::key("verifier_btc_pk", &request.into_inner().verifier_btc_pk)?;
        let verifier = self.module.verifier(&pk).await?;
        Ok(Response::new(pb::VerifierResponse {
            verifier: Some(verifier),
        }))
    }

    async fn evidence(
        &self,
        request: Request<pb::EvidenceRequest>,
    ) -> Result<Response<pb::EvidenceResponse>, Status> {
        let pk = wire::key("verifier_btc_pk", &request.into_inner().verifier_btc_pk)?;
        let evidence = self.module.evidence(&pk).await?;
        Ok(Response::new(pb::EvidenceResponse {
            evidence: Some(evidence),
        }))
    }

    async fn slashed_verifiers(
        &self,
        _request: Request<pb::SlashedVerifiersRequest>,
    ) -> Result<Response<pb::SlashedVerifiersResponse>, Status> {
        let verifiers = self.module.slashed_verifiers().await?;
        Ok(Response::new(pb::SlashedVerifiersResponse { verifiers }))
    }

    async fn checkpoints(
        &self,
        _request: Request<pb::CheckpointsRequest>,
    ) -> Result<Response<pb::CheckpointsResponse>, Status> {
        Ok(Response::new(self.module.checkpoints_view().await?))
    }

    async fn checkpoint_round(
        &self,
        request: Request<pb::CheckpointRoundRequest>,
    ) -> Result<Response<pb::CheckpointRoundResponse>, Status> {
        let checkpoint = self
            .module
            .checkpoint_round_view(request.into_inner().round)
            .await?;
        Ok(Response::new(pb::CheckpointRoundResponse {
            checkpoint: Some(checkpoint),
        }))
    }

    async fn add_checkpoint_sig(
        &self,
        request: Request<pb::AddCheckpointSigRequest>,
    ) -> Result<Response<pb::AddCheckpointSigResponse>, Status> {
        let outcome = match self
            .module
            .add_checkpoint_vote(request.into_inner())
            .await?
        {
            VoteOutcome::Equivocation(_) => pb::VoteOutcome::Equivocation,
            VoteOutcome::Counted | VoteOutcome::Disagrees => pb::VoteOutcome::Counted,
        };
        Ok(Response::new(pb::AddCheckpointSigResponse {
            outcome: outcome as i32,
        }))
    }

    async fn register_checkpoint_genesis(
        &self,
        request: Request<pb::RegisterCheckpointGenesisRequest>,
    ) -> Result<Response<pb::RegisterCheckpointGenesisResponse>, Status> {
        let genesis = self
            .module
            .register_checkpoint_genesis(request.into_inner())
            .await?;
        Ok(Response::new(pb::RegisterCheckpointGenesisResponse {
            genesis: Some(genesis.to_pb()),
        }))
    }

    type EventsStream = EventStream;

    async fn events(
        &self,
        request: Request<pb::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let peer = request.remote_addr();
        let from = int64("from_sequence", request.into_inner().from_sequence)
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .max(1);
        let permit = self.limits.open_event_stream(peer)?;
        let (tx, rx) = mpsc::channel(EVENT_CHANNEL);
        let (module, limits) = (self.module.clone(), self.limits.clone());
        tokio::spawn(async move {
            // The subscription's slots are freed when the forwarder ends.
            let _permit = permit;
            forward(module, limits, from, tx).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Sends the finality module's events from sequence `next` on into `out` until the client goes
/// away.
async fn forward(
    module: FinalityModule,
    limits: ServerLimits,
    next: u64,
    out: mpsc::Sender<Result<pb::Event, Status>>,
) {
    let live = module.subscribe();
    forward_log(
        &limits,
        live,
        |from| {
            let pool = module.pool.clone();
            async move {
                let mut conn = pool.acquire().await.map_err(StoreError::from)?;
                Ok(store::events_from(&mut conn, from, REPLAY_BATCH).await?)
            }
        },
        |e| e.sequence,
        pb::Event::clone,
        next,
        out,
    )
    .await;
}
