//! The gRPC service `fiamma.staker.v1.Staker` over the component: each request read by the
//! one codec (`fiamma_proto::codec::staker`), each error mapped to a code and a message a
//! person can act on.

use std::sync::Arc;

use fiamma_proto::codec::staker as c;
use fiamma_proto::staker::v1 as pb;
use fiamma_proto::staker::v1::staker_server::{Staker as StakerApi, StakerServer};
use tonic::{Code, Request, Response, Status};

use crate::plan::PsbtBundle;
use crate::staker::{Action, StakeOutcome, Staker, StakerError};

/// The service.
#[derive(Clone)]
pub struct StakerService {
    staker: Arc<Staker>,
}

impl StakerService {
    /// The service over `staker`.
    pub fn new(staker: Arc<Staker>) -> Self {
        StakerService { staker }
    }

    /// The tonic server of this service.
    pub fn server(self) -> StakerServer<Self> {
        StakerServer::new(self)
    }
}

fn status(e: StakerError) -> Status {
    use fiamma_wallet::WalletError as W;
    let code = match &e {
        StakerError::Node(n) if n.is_transient() => Code::Unavailable,
        StakerError::Bitcoin(_) => Code::Unavailable,
        StakerError::Store(_) => Code::Internal,
        StakerError::Wallet(W::Store(_)) => Code::Internal,
        StakerError::Wallet(W::Sync { .. }) => Code::Unavailable,
        StakerError::UnknownDelegation(_) | StakerError::NoPendingPlan(_) => Code::NotFound,
        _ => Code::FailedPrecondition,
    };
    Status::new(code, e.to_string())
}

fn field(e: fiamma_proto::codec::FieldError) -> Status {
    Status::invalid_argument(e.to_string())
}

#[tonic::async_trait]
impl StakerApi for StakerService {
    async fn wallet_address(
        &self,
        _: Request<pb::WalletAddressRequest>,
    ) -> Result<Response<pb::WalletAddressResponse>, Status> {
        let address = self
            .staker
            .wallet()
            .await
            .next_address()
            .await
            .map_err(|e| status(e.into()))?;
        Ok(Response::new(pb::WalletAddressResponse {
            address: address.to_string(),
        }))
    }

    async fn wallet_balance(
        &self,
        _: Request<pb::WalletBalanceRequest>,
    ) -> Result<Response<pb::WalletBalanceResponse>, Status> {
        let wallet = self.staker.wallet().await;
        let b = wallet.balance();
        Ok(Response::new(pb::WalletBalanceResponse {
            confirmed_sat: c::sat(b.confirmed),
            pending_sat: c::sat(b.trusted_pending + b.untrusted_pending),
            immature_sat: c::sat(b.immature),
            synced_height: wallet.synced_height(),
            watch_only: wallet.is_watch_only(),
        }))
    }

    async fn wallet_sync(
        &self,
        _: Request<pb::WalletSyncRequest>,
    ) -> Result<Response<pb::WalletSyncResponse>, Status> {
        let synced_height = self.staker.sync().await.map_err(status)?;
        Ok(Response::new(pb::WalletSyncResponse { synced_height }))
    }

    async fn wallet_send(
        &self,
        request: Request<pb::WalletSendRequest>,
    ) -> Result<Response<pb::WalletSendResponse>, Status> {
        let network = self.staker.wallet().await.network();
        let (address, amount, fee_rate) =
            c::send_request(request.get_ref(), network).map_err(field)?;
        let sent = self
            .staker
            .send(&address, amount, fee_rate)
            .await
            .map_err(status)?;
        Ok(Response::new(match sent {
            Ok(txid) => pb::WalletSendResponse {
                txid: txid.to_string(),
                psbt: String::new(),
            },
            Err(psbt) => pb::WalletSendResponse {
                txid: String::new(),
                psbt: psbt.to_string(),
            },
        }))
    }

    async fn stake(
        &self,
        request: Request<pb::StakeRequest>,
    ) -> Result<Response<pb::StakeResponse>, Status> {
        let (verifier, amount, time, fee_rate) =
            c::stake_request(request.get_ref()).map_err(field)?;
        let outcome = self
            .staker
            .stake(verifier, amount, time, fee_rate)
            .await
            .map_err(status)?;
        Ok(Response::new(match outcome {
            StakeOutcome::Registered { staking_txid } => pb::StakeResponse {
                staking_txid,
                psbt_bundle: String::new(),
            },
            StakeOutcome::NeedsSignatures {
                staking_txid,
                bundle,
            } => pb::StakeResponse {
                staking_txid,
                psbt_bundle: serde_json::to_string_pretty(&bundle)
                    .map_err(|e| Status::internal(e.to_string()))?,
            },
        }))
    }

    async fn import_psbt(
        &self,
        request: Request<pb::ImportPsbtRequest>,
    ) -> Result<Response<pb::ImportPsbtResponse>, Status> {
        let content = request.into_inner().content;
        let content = content.trim();
        if content.starts_with('{') {
            let bundle: PsbtBundle = serde_json::from_str(content).map_err(|e| {
                Status::invalid_argument(format!("content: not a PSBT bundle: {e}"))
            })?;
            let staking_txid = self.staker.import_stake(&bundle).await.map_err(status)?;
            return Ok(Response::new(pb::ImportPsbtResponse {
                staking_txid,
                withdraw_txid: String::new(),
            }));
        }
        let psbt: bitcoin::psbt::Psbt = content
            .parse()
            .map_err(|e| Status::invalid_argument(format!("content: not a base64 PSBT: {e}")))?;
        let txid = self.staker.import_withdraw(&psbt).await.map_err(status)?;
        Ok(Response::new(pb::ImportPsbtResponse {
            staking_txid: String::new(),
            withdraw_txid: txid.to_string(),
        }))
    }

    async fn unbond(
        &self,
        request: Request<pb::UnbondRequest>,
    ) -> Result<Response<pb::UnbondResponse>, Status> {
        self.staker
            .request_unbond(&request.get_ref().staking_txid)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::UnbondResponse {}))
    }

    async fn withdraw(
        &self,
        request: Request<pb::WithdrawRequest>,
    ) -> Result<Response<pb::WithdrawResponse>, Status> {
        let txid = &request.get_ref().staking_txid;
        let action = self.staker.withdraw(txid).await.map_err(status)?;
        let mut response = pb::WithdrawResponse::default();
        match action {
            Some(Action::Withdrew(from, id)) => {
                response.withdraw_txid = id.to_string();
                response.from = from.as_str().to_owned();
            }
            Some(Action::WithdrawalNeedsSignature(from)) => {
                response.from = from.as_str().to_owned();
                response.psbt = self
                    .staker
                    .store()
                    .get(txid)
                    .await
                    .map_err(|e| status(e.into()))?
                    .and_then(|r| r.withdraw_psbt)
                    .unwrap_or_default();
            }
            _ => {}
        }
        Ok(Response::new(response))
    }

    async fn delegations(
        &self,
        _: Request<pb::DelegationsRequest>,
    ) -> Result<Response<pb::DelegationsResponse>, Status> {
        let views = self.staker.delegations().await.map_err(status)?;
        Ok(Response::new(pb::DelegationsResponse {
            delegations: views
                .into_iter()
                .map(|v| pb::Delegation {
                    staking_txid: v.staking_txid,
                    verifier_btc_pk: v.verifier.serialize().to_vec(),
                    amount_sat: c::sat(v.value),
                    staking_time_blocks: v.staking_time,
                    step: v.step.as_str().to_owned(),
                    status: v.node_status,
                    start_height: v.start_height,
                    end_height: v.end_height,
                    next: v.next,
                })
                .collect(),
        }))
    }
}
