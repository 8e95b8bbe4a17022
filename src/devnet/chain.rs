//! The devnet's Bitcoin: an in-memory regtest chain validated by Bitcoin Core's consensus
//! engine, served over Bitcoin Core's JSON-RPC on loopback. The parties reach it only
//! through that JSON-RPC ([`RpcBackend`] and the wallets' `bdk_bitcoind_rpc`), as they would
//! reach a real node; the devnet's miner is the one party that works on the chain directly.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bitcoin::{BlockHash, ScriptBuf, Transaction, Txid};
use rand::RngCore;

use super::error::DevnetError;
use crate::btc::rpc_server::{self, RpcAuth, RpcServer};
use crate::btc::{Backend, EmbeddedBackend, RegtestChain, RpcBackend, TxStatus};

/// The running chain and its JSON-RPC server.
pub struct DevnetChain {
    embedded: EmbeddedBackend,
    server: RpcServer,
    auth: RpcAuth,
}

impl DevnetChain {
    /// Starts a fresh chain at the regtest genesis block and serves it on a free loopback
    /// port, with a random password.
    ///
    /// # Errors
    /// [`DevnetError::Bitcoin`] when the chain cannot start or the port cannot be bound.
    pub async fn start() -> Result<Self, DevnetError> {
        let chain =
            RegtestChain::in_memory().map_err(|e| DevnetError::bitcoin("start the chain", e))?;
        let embedded = EmbeddedBackend::new(chain);
        let mut password = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut password);
        let auth = RpcAuth {
            user: "devnet".to_owned(),
            password: hex::encode(password),
        };
        let server = rpc_server::spawn(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            embedded.shared(),
            &auth,
        )
        .await
        .map_err(|e| DevnetError::bitcoin("serve JSON-RPC", e))?;
        Ok(DevnetChain {
            embedded,
            server,
            auth,
        })
    }

    /// The JSON-RPC address.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The JSON-RPC user and password, for a person joining the running network.
    pub fn rpc_credentials(&self) -> (&str, &str) {
        (&self.auth.user, &self.auth.password)
    }

    /// The chain as the node follows it.
    pub fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(self.embedded.clone())
    }

    /// A new JSON-RPC client, as a party's daemon would hold one.
    ///
    /// # Errors
    /// [`DevnetError::Bitcoin`] when the client cannot be made.
    pub fn client(&self) -> Result<RpcBackend, DevnetError> {
        RpcBackend::new(
            &format!("http://{}", self.server.addr),
            &self.auth.user,
            &self.auth.password,
        )
        .map_err(|e| DevnetError::bitcoin("JSON-RPC client", e))
    }

    /// Mines `count` blocks paying `payout`; returns their hashes and the new tip height.
    ///
    /// # Errors
    /// [`DevnetError::Bitcoin`] when Bitcoin Core's validation refuses a block.
    pub async fn mine(
        &self,
        count: u32,
        payout: &ScriptBuf,
    ) -> Result<(Vec<BlockHash>, u32), DevnetError> {
        let mined = self
            .embedded
            .mine(count, payout)
            .await
            .map_err(|e| DevnetError::bitcoin(format!("mine {count} blocks"), e))?;
        if let Some(dropped) = mined.dropped.first() {
            return Err(DevnetError::bitcoin(
                "mine",
                format!("a mempool transaction was dropped: {dropped:?}"),
            ));
        }
        let tip = self
            .embedded
            .tip()
            .await
            .map_err(|e| DevnetError::bitcoin("tip", e))?;
        Ok((mined.hashes, tip.height))
    }

    /// The height of the block that holds `txid`, if it is mined.
    ///
    /// # Errors
    /// [`DevnetError::Bitcoin`] when the chain cannot answer.
    pub async fn mined_at(&self, txid: &Txid) -> Result<Option<u32>, DevnetError> {
        match self
            .embedded
            .tx_status(txid)
            .await
            .map_err(|e| DevnetError::bitcoin(format!("status of {txid}"), e))?
        {
            TxStatus::Confirmed { height, .. } => Ok(Some(height)),
            _ => Ok(None),
        }
    }

    /// A mined transaction.
    ///
    /// # Errors
    /// [`DevnetError::Bitcoin`] when it is not known.
    pub async fn transaction(&self, txid: &Txid) -> Result<Transaction, DevnetError> {
        self.embedded
            .transaction(txid)
            .await
            .map_err(|e| DevnetError::bitcoin(format!("transaction {txid}"), e))?
            .ok_or_else(|| DevnetError::bitcoin(format!("transaction {txid}"), "not known"))
    }

    /// Stops the JSON-RPC server.
    pub fn stop(self) {
        self.server.task.abort();
    }
}
