//! The `fiamma.staking.v1.Staking` gRPC service over the staking module, and the server with
//! gRPC health and reflection.

pub mod convert;
pub(crate) mod events;
pub mod limits;
mod status;

use std::future::Future;
use std::pin::Pin;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::Txid;
use fiamma_proto::finality::v1::finality_server::FinalityServer;
use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_server::{Staking, StakingServer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use self::convert as c;
use self::limits::{check_response, fill_page, ServerLimits};
use crate::node::config::ServerConfig;
use crate::node::finality::grpc::{self as finality_grpc, FinalityGrpc};
use crate::node::finality::FinalityModule;
use crate::node::module::{CovenantSigsInput, StakingModule, VerifierRegistration};
use crate::node::store::DelegationFilter;

/// Largest request the server decodes (a registration holds four transactions of at most
/// [`convert::MAX_TX_BYTES`]).
pub const MAX_REQUEST_BYTES: usize = 4 * convert::MAX_TX_BYTES + 64 * 1024;

/// The gRPC face of the staking module.
#[derive(Clone)]
pub struct StakingGrpc {
    module: StakingModule,
    limits: ServerLimits,
}

impl StakingGrpc {
    /// Serves `module` with the default limits.
    pub fn new(module: StakingModule) -> Self {
        Self::with_limits(module, ServerLimits::default())
    }

    /// Serves `module` within `limits` (shared with the server's other services).
    pub fn with_limits(module: StakingModule, limits: ServerLimits) -> Self {
        StakingGrpc { module, limits }
    }
}

fn txid_key(bytes: &[u8]) -> Option<Txid> {
    <[u8; 32]>::try_from(bytes).ok().map(Txid::from_byte_array)
}

fn pk_key(bytes: &[u8]) -> Option<XOnlyPublicKey> {
    XOnlyPublicKey::from_slice(bytes).ok()
}

/// CreateDelegation's fields decoded into a [`fiamma_staking::registration::Registration`] (stateless: nothing is validated
/// against params or the chain yet); public for the fuzz checks.
pub use fiamma_proto::codec::registration_of_request as registration;

type EventStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl Staking for StakingGrpc {
    async fn create_verifier(
        &self,
        request: Request<pb::CreateVerifierRequest>,
    ) -> Result<Response<pb::CreateVerifierResponse>, Status> {
        let r = request.into_inner();
        let reg = VerifierRegistration {
            account: c::account("account", &r.account)?,
            account_text: r.account.clone(),
            btc_pk: c::key("btc_pk", &r.btc_pk)?,
            pop: c::pop("pop", r.pop.as_ref())?,
            description: c::description(r.description.as_ref())?,
            commission: c::commission("commission", &r.commission)?,
        };
        let event_sequence = self.module.create_verifier(reg).await?;
        Ok(Response::new(pb::CreateVerifierResponse { event_sequence }))
    }

    async fn create_delegation(
        &self,
        request: Request<pb::CreateDelegationRequest>,
    ) -> Result<Response<pb::CreateDelegationResponse>, Status> {
        let r = request.into_inner();
        let reg = registration(&r)?;
        let (txid, params_version) = self.module.create_delegation(reg, r.staker_account).await?;
        Ok(Response::new(pb::CreateDelegationResponse {
            staking_txid: txid.to_string(),
            params_version,
        }))
    }

    async fn add_covenant_sigs(
        &self,
        request: Request<pb::AddCovenantSigsRequest>,
    ) -> Result<Response<pb::AddCovenantSigsResponse>, Status> {
        let r = request.into_inner();
        let txid = c::txid("staking_txid", &r.staking_txid)?;
        let s = r.sigs.ok_or_else(|| c::FieldError {
            field: "sigs",
            reason: "missing covenant signatures".into(),
        })?;
        let input = CovenantSigsInput {
            covenant_pk: c::key("sigs.covenant_pk", &s.covenant_pk)?,
            slashing: c::adaptor_sig("sigs.slashing_adaptor_sig", &s.slashing_adaptor_sig)?,
            unbonding_slashing: c::adaptor_sig(
                "sigs.unbonding_slashing_adaptor_sig",
                &s.unbonding_slashing_adaptor_sig,
            )?,
            unbonding: c::schnorr_sig("sigs.unbonding_sig", &s.unbonding_sig)?,
        };
        let (status, signatures) = self.module.add_covenant_sigs(&txid, input).await?;
        Ok(Response::new(pb::AddCovenantSigsResponse {
            status: c::status_to_pb(status).into(),
            signatures,
        }))
    }

    async fn add_inclusion_proof(
        &self,
        request: Request<pb::AddInclusionProofRequest>,
    ) -> Result<Response<pb::AddInclusionProofResponse>, Status> {
        let r = request.into_inner();
        let txid = c::txid("staking_txid", &r.staking_txid)?;
        let (block, branch) = c::merkle_branch(r.proof.as_ref())?;
        let (status, start, end) = self
            .module
            .add_inclusion_proof(&txid, &block, &branch.into())
            .await?;
        Ok(Response::new(pb::AddInclusionProofResponse {
            status: c::status_to_pb(status).into(),
            start_height: start.unwrap_or(0),
            end_height: end.unwrap_or(0),
        }))
    }

    async fn selective_slashing_evidence(
        &self,
        request: Request<pb::SelectiveSlashingEvidenceRequest>,
    ) -> Result<Response<pb::SelectiveSlashingEvidenceResponse>, Status> {
        let r = request.into_inner();
        let txid = c::txid("staking_txid", &r.staking_txid)?;
        let sk = c::secret_key("recovered_verifier_sk", &r.recovered_verifier_sk)?;
        let verifier = self.module.selective_slashing_evidence(&txid, &sk).await?;
        Ok(Response::new(pb::SelectiveSlashingEvidenceResponse {
            verifier_btc_pk: verifier.serialize().to_vec(),
        }))
    }

    async fn params(
        &self,
        request: Request<pb::ParamsRequest>,
    ) -> Result<Response<pb::ParamsResponse>, Status> {
        let (version, params) = match request.into_inner().selector {
            Some(pb::params_request::Selector::Version(v)) => (v, self.module.params_version(v)?),
            Some(pb::params_request::Selector::BtcHeight(h)) => self.module.params_at(h)?,
            None => {
                let (tip, _) = self.module.store().tip().await?;
                self.module.params_at(tip)?
            }
        };
        Ok(Response::new(pb::ParamsResponse {
            params: Some(c::params_to_pb(version, params)),
        }))
    }

    async fn verifier(
        &self,
        request: Request<pb::VerifierRequest>,
    ) -> Result<Response<pb::VerifierResponse>, Status> {
        let pk = c::key("btc_pk", &request.into_inner().btc_pk)?;
        let v = self.module.verifier(&pk).await?;
        let (tip, _) = self.module.store().tip().await?;
        let power = self
            .module
            .voting_power_table(tip)
            .await?
            .into_iter()
            .find(|e| e.verifier == pk)
            .map_or(0, |e| e.power_sat);
        Ok(Response::new(pb::VerifierResponse {
            verifier: Some(c::verifier_to_pb(&v)),
            active_power_sat: i64::try_from(power).unwrap_or(i64::MAX),
        }))
    }

    async fn verifiers(
        &self,
        request: Request<pb::VerifiersRequest>,
    ) -> Result<Response<pb::VerifiersResponse>, Status> {
        let (after, size) = c::page(request.into_inner().page.as_ref(), pk_key)?;
        let store = self.module.store();
        let (verifiers, next) =
            fill_page(
                &self.limits,
                after,
                size,
                |after: Option<XOnlyPublicKey>, n| async move {
                    store.verifiers(after.as_ref(), n).await
                },
                |v| v.registration.btc_pk,
                c::verifier_to_pb,
            )
            .await?;
        Ok(Response::new(pb::VerifiersResponse {
            page: Some(c::next_token(
                next.map(|k| k.serialize()).as_ref().map(|k| &k[..]),
            )),
            verifiers,
        }))
    }

    async fn delegation(
        &self,
        request: Request<pb::DelegationRequest>,
    ) -> Result<Response<pb::DelegationResponse>, Status> {
        let txid = c::txid("staking_txid", &request.into_inner().staking_txid)?;
        let d = self.module.delegation(&txid).await?;
        Ok(Response::new(pb::DelegationResponse {
            delegation: Some(c::delegation_to_pb(&d)),
        }))
    }

    async fn delegations(
        &self,
        request: Request<pb::DelegationsRequest>,
    ) -> Result<Response<pb::DelegationsResponse>, Status> {
        let r = request.into_inner();
        let optional_key = |field, bytes: &[u8]| {
            if bytes.is_empty() {
                Ok(None)
            } else {
                c::key(field, bytes).map(Some)
            }
        };
        let filter = DelegationFilter {
            status: c::status_filter("status", r.status)?,
            staker: optional_key("staker_btc_pk", &r.staker_btc_pk)?,
            verifier: optional_key("verifier_btc_pk", &r.verifier_btc_pk)?,
        };
        let (after, size) = c::page(r.page.as_ref(), txid_key)?;
        let module = &self.module;
        let filter = &filter;
        delegation_page(&self.limits, after, size, |after: Option<Txid>, n| async move {
            module.delegations(filter, after.as_ref(), n).await
        })
        .await
        .map(Response::new)
    }

    async fn pending_delegations(
        &self,
        request: Request<pb::PendingDelegationsRequest>,
    ) -> Result<Response<pb::PendingDelegationsResponse>, Status> {
        let r = request.into_inner();
        let pk = c::key("covenant_pk", &r.covenant_pk)?;
        let (after, size) = c::page(r.page.as_ref(), txid_key)?;
        let module = &self.module;
        let pk = &pk;
        let page = delegation_page(
            &self.limits,
            after,
            size,
            |after: Option<Txid>, n| async move {
                module.pending_for_covenant(pk, after.as_ref(), n).await
            },
        )
        .await?;
        Ok(Response::new(pb::PendingDelegationsResponse {
            delegations: page.delegations,
            page: page.page,
        }))
    }

    async fn voting_power_table(
        &self,
        request: Request<pb::VotingPowerTableRequest>,
    ) -> Result<Response<pb::VotingPowerTableResponse>, Status> {
        let h = request.into_inner().btc_height;
        let table = self.module.voting_power_table(h).await?;
        let total: u64 = table.iter().map(|e| e.power_sat).sum();
        let response = pb::VotingPowerTableResponse {
            btc_height: h,
            entries: table.iter().map(c::voting_power_to_pb).collect(),
            total_power_sat: i64::try_from(total).unwrap_or(i64::MAX),
        };
        check_response(&self.limits, &response)?;
        Ok(Response::new(response))
    }

    type EventsStream = EventStream;

    async fn events(
        &self,
        request: Request<pb::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let peer = request.remote_addr();
        let from = c::int64("from_sequence", request.into_inner().from_sequence)?.max(1);
        let permit = self.limits.open_event_stream(peer)?;
        let (tx, rx) = mpsc::channel(EVENT_CHANNEL);
        let (module, limits) = (self.module.clone(), self.limits.clone());
        tokio::spawn(async move {
            // The subscription's slots are freed when the forwarder ends.
            let _permit = permit;
            events::forward(module, limits, from, tx).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Messages buffered per Events stream between the forwarder and the client.
pub(crate) const EVENT_CHANNEL: usize = 256;

/// One page of delegations read by `fetch(after, n)`, bounded in items and bytes.
async fn delegation_page<F, Fut>(
    limits: &ServerLimits,
    after: Option<Txid>,
    size: u32,
    fetch: F,
) -> Result<pb::DelegationsResponse, Status>
where
    F: FnMut(Option<Txid>, u32) -> Fut,
    Fut: Future<
        Output = Result<Vec<crate::node::store::Delegation>, crate::node::module::QueryError>,
    >,
{
    let (delegations, next) = fill_page(
        limits,
        after,
        size,
        fetch,
        |d| d.registration.staking_txid,
        c::delegation_to_pb,
    )
    .await?;
    Ok(pb::DelegationsResponse {
        page: Some(c::next_token(
            next.map(|t| t.to_byte_array()).as_ref().map(|k| &k[..]),
        )),
        delegations,
    })
}

/// Why the gRPC server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not load the descriptors.
    #[error("grpc reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// [`serve_with`] the default limits.
pub async fn serve(
    module: StakingModule,
    finality: Option<FinalityModule>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_with(
        ServerConfig::default(),
        module,
        finality,
        listener,
        shutdown,
    )
    .await
}

/// Serves the staking service, the finality service when given, gRPC health (each service
/// SERVING) and server reflection on `listener` until `shutdown` completes, within `config`:
/// calls in flight and their duration, HTTP/2 streams per connection, keepalive, Events
/// streams, replay and response sizes (see [`limits`]).
pub async fn serve_with(
    config: ServerConfig,
    module: StakingModule,
    finality: Option<FinalityModule>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let limits = ServerLimits::new(config);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<StakingServer<StakingGrpc>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(fiamma_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let node_health = module.health().subscribe();
    let staking = StakingServer::new(StakingGrpc::with_limits(module, limits.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        // A backstop: pages are cut to fit before this.
        .max_encoding_message_size(config.max_response_bytes);
    let finality = match finality {
        Some(module) => {
            health.set_serving::<FinalityServer<FinalityGrpc>>().await;
            Some(finality_grpc::server_with(module, limits.clone()))
        }
        None => None,
    };
    // Started after the services' initial statuses are set, so that it has the last word.
    let follows_health = tokio::spawn(report_health(
        node_health,
        health.clone(),
        finality.is_some(),
    ));
    let served = tonic::transport::Server::builder()
        .max_concurrent_streams(config.max_streams_per_connection)
        .http2_keepalive_interval(Some(config.keepalive_interval))
        .http2_keepalive_timeout(Some(config.keepalive_timeout))
        // Dead peers that never answer are found by the kernel too (e.g. a half-open socket).
        .tcp_keepalive(Some(config.keepalive_interval))
        .layer(limits.layer())
        .add_service(health_service)
        .add_service(reflection)
        .add_service(staking)
        .add_optional_service(finality)
        // Without TCP_NODELAY each small reply waits for the client's delayed ACK (~40 ms).
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await;
    follows_health.abort();
    served?;
    Ok(())
}

/// Keeps gRPC health (the whole server and each service) in step with the node's health:
/// NOT_SERVING while the node does not close rounds (see [`crate::node::health`]); the
/// reason is in the node's log.
async fn report_health(
    mut node: tokio::sync::watch::Receiver<crate::node::health::Health>,
    reporter: tonic_health::server::HealthReporter,
    finality: bool,
) {
    use tonic_health::ServingStatus;
    loop {
        let status = match *node.borrow_and_update() {
            crate::node::health::Health::Serving => ServingStatus::Serving,
            crate::node::health::Health::NotServing { .. } => ServingStatus::NotServing,
        };
        reporter.set_service_status("", status).await;
        reporter
            .set_service_status(
                <StakingServer<StakingGrpc> as tonic::server::NamedService>::NAME,
                status,
            )
            .await;
        if finality {
            reporter
                .set_service_status(
                    <FinalityServer<FinalityGrpc> as tonic::server::NamedService>::NAME,
                    status,
                )
                .await;
        }
        if node.changed().await.is_err() {
            return;
        }
    }
}
