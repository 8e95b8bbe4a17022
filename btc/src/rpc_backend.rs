//! The [`Backend`] trait over any Bitcoin Core node's JSON-RPC (or `fiamma regtest`).
//!
//! Calls go through `bitcoincore-rpc`, the client `bdk_bitcoind_rpc` uses, on tokio's
//! blocking pool. Spent-by lookups for mined spends need no spent index on the node: the
//! funding transaction's block is found with `getrawtransaction` and later blocks are scanned.
//!
//! Node requirements: Bitcoin Core 24 or later (`gettxspendingprevout`) running with
//! `-txindex=1`, since without it `getrawtransaction` only finds mempool transactions and
//! mined ones would read as unknown. `fiamma regtest` indexes every transaction.

use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Block, BlockHash, CompactTarget, MerkleBlock, OutPoint, Transaction, Txid};
use bitcoincore_rpc::{jsonrpc, Auth, Client, RpcApi};
use serde_json::{json, Value};

use super::backend::{
    Backend, BackendError, BroadcastError, ChainTip, HeaderEntry, OutPointStatus, Rejection,
    RejectionKind, TxStatus,
};

/// Bitcoin Core's code for an unknown block, transaction or address.
const RPC_INVALID_ADDRESS_OR_KEY: i32 = -5;
/// Bitcoin Core's code for an invalid parameter (e.g. a height above the tip).
const RPC_INVALID_PARAMETER: i32 = -8;

/// A Bitcoin Core node reached over JSON-RPC.
#[derive(Clone)]
pub struct RpcBackend {
    client: Arc<Client>,
}

impl std::fmt::Debug for RpcBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcBackend").finish_non_exhaustive()
    }
}

/// The node's error code, when the call reached the node and it answered with an error.
fn node_code(e: &bitcoincore_rpc::Error) -> Option<i32> {
    match e {
        bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Rpc(rpc)) => Some(rpc.code),
        _ => None,
    }
}

fn backend_error(e: bitcoincore_rpc::Error) -> BackendError {
    match e {
        bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Rpc(rpc)) => BackendError::Node {
            code: i64::from(rpc.code),
            message: rpc.message,
        },
        bitcoincore_rpc::Error::JsonRpc(other) => BackendError::Transport(other.to_string()),
        other => BackendError::Malformed(other.to_string()),
    }
}

/// `Ok(None)` when the node says the object does not exist (`code`), the error otherwise.
fn absent_on<T>(
    r: Result<T, bitcoincore_rpc::Error>,
    code: i32,
) -> Result<Option<T>, BackendError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if node_code(&e) == Some(code) => Ok(None),
        Err(e) => Err(backend_error(e)),
    }
}

impl RpcBackend {
    /// A backend for the node at `url` (e.g. `http://127.0.0.1:18443`) with user/password
    /// authentication.
    pub fn new(url: &str, user: &str, password: &str) -> Result<Self, BackendError> {
        let client = Client::new(url, Auth::UserPass(user.to_owned(), password.to_owned()))
            .map_err(|e| BackendError::Transport(e.to_string()))?;
        Ok(RpcBackend {
            client: Arc::new(client),
        })
    }

    /// The underlying client, for calls the trait does not cover.
    pub fn client(&self) -> Arc<Client> {
        self.client.clone()
    }

    /// Runs a blocking client call on tokio's blocking pool.
    async fn with_client<T, F>(&self, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Client) -> Result<T, BackendError> + Send + 'static,
    {
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || f(&client))
            .await
            .map_err(|e| BackendError::Transport(format!("rpc task failed: {e}")))?
    }
}

/// Header and height of an active-chain block, from `getblockheader` verbose.
fn header_entry(client: &Client, hash: &BlockHash) -> Result<Option<HeaderEntry>, BackendError> {
    let Some(info) = absent_on(
        client.get_block_header_info(hash),
        RPC_INVALID_ADDRESS_OR_KEY,
    )?
    else {
        return Ok(None);
    };
    // Core reports -1 confirmations for blocks off the active chain.
    if info.confirmations < 0 {
        return Ok(None);
    }
    let bits = u32::from_str_radix(&info.bits, 16)
        .map_err(|_| BackendError::Malformed(format!("bits {:?} of block {hash}", info.bits)))?;
    let header = Header {
        version: info.version,
        prev_blockhash: info.previous_block_hash.unwrap_or_else(|| {
            // Only the genesis block has no previous block; its field is all zeros.
            <BlockHash as bitcoin::hashes::Hash>::all_zeros()
        }),
        merkle_root: info.merkle_root,
        time: u32::try_from(info.time)
            .map_err(|_| BackendError::Malformed(format!("time of block {hash}")))?,
        bits: CompactTarget::from_consensus(bits),
        nonce: info.nonce,
    };
    if header.block_hash() != *hash {
        return Err(BackendError::Malformed(format!(
            "header fields of block {hash} hash to {}",
            header.block_hash()
        )));
    }
    let height = u32::try_from(info.height)
        .map_err(|_| BackendError::Malformed(format!("height of block {hash}")))?;
    Ok(Some(HeaderEntry { header, height }))
}

/// The mined spend of `outpoint`, scanning the active chain from `from_height`.
fn scan_for_spend(
    client: &Client,
    outpoint: &OutPoint,
    from_height: u32,
) -> Result<Option<OutPointStatus>, BackendError> {
    let tip = client.get_block_count().map_err(backend_error)?;
    for height in u64::from(from_height)..=tip {
        let hash = client.get_block_hash(height).map_err(backend_error)?;
        let block = client.get_block(&hash).map_err(backend_error)?;
        for tx in &block.txdata {
            if let Some(vin) = tx.input.iter().position(|i| i.previous_output == *outpoint) {
                return Ok(Some(OutPointStatus::Spent {
                    txid: tx.compute_txid(),
                    vin: u32::try_from(vin).unwrap_or(u32::MAX),
                    height: u32::try_from(height).unwrap_or(u32::MAX),
                }));
            }
        }
    }
    Ok(None)
}

fn outpoint_status(client: &Client, outpoint: &OutPoint) -> Result<OutPointStatus, BackendError> {
    let spending: Value = client
        .call(
            "gettxspendingprevout",
            &[json!([{"txid": outpoint.txid.to_string(), "vout": outpoint.vout}])],
        )
        .map_err(backend_error)?;
    if let Some(spender) = spending
        .get(0)
        .and_then(|s| s.get("spendingtxid"))
        .and_then(Value::as_str)
    {
        let txid: Txid = spender
            .parse()
            .map_err(|_| BackendError::Malformed(format!("spendingtxid {spender}")))?;
        let tx = client
            .get_raw_transaction(&txid, None)
            .map_err(backend_error)?;
        let vin = tx
            .input
            .iter()
            .position(|i| i.previous_output == *outpoint)
            .ok_or_else(|| BackendError::Malformed(format!("{txid} does not spend {outpoint}")))?;
        return Ok(OutPointStatus::SpentInMempool {
            txid,
            vin: u32::try_from(vin).unwrap_or(u32::MAX),
        });
    }
    if let Some(out) = client
        .get_tx_out(&outpoint.txid, outpoint.vout, Some(true))
        .map_err(backend_error)?
    {
        return Ok(OutPointStatus::Unspent {
            confirmations: out.confirmations,
        });
    }
    let Some(info) = absent_on(
        client.get_raw_transaction_info(&outpoint.txid, None),
        RPC_INVALID_ADDRESS_OR_KEY,
    )?
    else {
        return Ok(OutPointStatus::Unknown);
    };
    let Some(block_hash) = info.blockhash else {
        return Ok(OutPointStatus::Unknown);
    };
    let Some(entry) = header_entry(client, &block_hash)? else {
        return Ok(OutPointStatus::Unknown);
    };
    let exists = usize::try_from(outpoint.vout).is_ok_and(|v| v < info.vout.len());
    if !exists {
        return Ok(OutPointStatus::Unknown);
    }
    Ok(scan_for_spend(client, outpoint, entry.height)?.unwrap_or(OutPointStatus::Unknown))
}

/// Reads a `submitpackage` answer: `Ok` when `package_msg` is `success`, else the first
/// member with an `error` in `tx-results` (by package order), or the package message blamed on
/// `blamed` (the child) when no member carries one.
fn package_outcome(
    answer: &Value,
    txs: &[Transaction],
    blamed: Txid,
) -> Result<(), BroadcastError> {
    let msg = answer
        .get("package_msg")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            BackendError::Malformed("submitpackage answer without package_msg".into())
        })?;
    if msg == "success" {
        return Ok(());
    }
    let results = answer.get("tx-results");
    let errors: Vec<(Txid, String)> = txs
        .iter()
        .filter_map(|tx| {
            let wtxid = tx.compute_wtxid().to_string();
            results
                .and_then(|r| r.get(&wtxid))
                .and_then(|r| r.get("error"))
                .and_then(Value::as_str)
                .map(|error| (tx.compute_txid(), error.to_owned()))
        })
        .collect();
    // Members Core did not get to say nothing about why; the refused one does.
    let failed = errors
        .iter()
        .find(|(_, e)| e != "package-not-validated")
        .or(errors.first())
        .cloned();
    let (txid, error) = failed.unwrap_or((blamed, String::new()));
    let kind = if error.starts_with("missing-inputs")
        || error.starts_with("bad-txns-inputs-missingorspent")
    {
        RejectionKind::MissingOrSpentInputs
    } else {
        RejectionKind::Rejected
    };
    let reason = if error.is_empty() {
        msg.to_owned()
    } else {
        format!("{msg}: {error}")
    };
    Err(Rejection { txid, kind, reason }.into())
}

#[async_trait::async_trait]
impl Backend for RpcBackend {
    async fn tip(&self) -> Result<ChainTip, BackendError> {
        self.with_client(|c| {
            let hash = c.get_best_block_hash().map_err(backend_error)?;
            let entry = header_entry(c, &hash)?
                .ok_or_else(|| BackendError::Malformed(format!("best block {hash} unknown")))?;
            Ok(ChainTip {
                height: entry.height,
                hash,
            })
        })
        .await
    }

    async fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, BackendError> {
        self.with_client(move |c| {
            absent_on(c.get_block_hash(u64::from(height)), RPC_INVALID_PARAMETER)
        })
        .await
    }

    async fn header(&self, hash: &BlockHash) -> Result<Option<HeaderEntry>, BackendError> {
        let hash = *hash;
        self.with_client(move |c| header_entry(c, &hash)).await
    }

    async fn block(&self, hash: &BlockHash) -> Result<Option<Block>, BackendError> {
        let hash = *hash;
        self.with_client(move |c| absent_on(c.get_block(&hash), RPC_INVALID_ADDRESS_OR_KEY))
            .await
    }

    async fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, BackendError> {
        let txid = *txid;
        self.with_client(move |c| {
            absent_on(
                c.get_raw_transaction(&txid, None),
                RPC_INVALID_ADDRESS_OR_KEY,
            )
        })
        .await
    }

    async fn tx_status(&self, txid: &Txid) -> Result<TxStatus, BackendError> {
        let txid = *txid;
        self.with_client(move |c| {
            let Some(info) = absent_on(
                c.get_raw_transaction_info(&txid, None),
                RPC_INVALID_ADDRESS_OR_KEY,
            )?
            else {
                return Ok(TxStatus::Unknown);
            };
            let Some(block_hash) = info.blockhash else {
                return Ok(TxStatus::InMempool);
            };
            let entry = header_entry(c, &block_hash)?.ok_or_else(|| {
                BackendError::Malformed(format!("block {block_hash} of {txid} not active"))
            })?;
            let proof_bytes = c
                .get_tx_out_proof(&[txid], Some(&block_hash))
                .map_err(backend_error)?;
            let proof: MerkleBlock = deserialize(&proof_bytes)
                .map_err(|e| BackendError::Malformed(format!("merkle proof of {txid}: {e}")))?;
            Ok(TxStatus::Confirmed {
                block_hash,
                height: entry.height,
                confirmations: info.confirmations.unwrap_or(0),
                proof,
            })
        })
        .await
    }

    async fn outpoint_status(&self, outpoint: &OutPoint) -> Result<OutPointStatus, BackendError> {
        let outpoint = *outpoint;
        self.with_client(move |c| outpoint_status(c, &outpoint))
            .await
    }

    async fn broadcast_package(&self, txs: &[Transaction]) -> Result<Vec<Txid>, BroadcastError> {
        let hex: Vec<String> = txs.iter().map(serialize_hex).collect();
        let txids: Vec<Txid> = txs.iter().map(Transaction::compute_txid).collect();
        let blamed = txids.last().copied().unwrap_or_else(|| {
            // An empty package names no transaction; the node refuses it anyway.
            <Txid as bitcoin::hashes::Hash>::all_zeros()
        });
        let client = self.client.clone();
        let sent = tokio::task::spawn_blocking(move || {
            client.call::<Value>("submitpackage", &[json!(hex)])
        })
        .await
        .map_err(|e| BackendError::Transport(format!("rpc task failed: {e}")))?;
        let answer = match sent {
            Ok(answer) => answer,
            Err(bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Rpc(rpc))) => {
                // Core answers a package of the wrong shape with -25, the code it also uses
                // for missing inputs: the message tells them apart.
                let kind =
                    RejectionKind::from_rpc_error(i64::from(rpc.code), &rpc.message).map(|kind| {
                        if rpc.message.starts_with("package") {
                            RejectionKind::Rejected
                        } else {
                            kind
                        }
                    });
                return Err(match kind {
                    Some(kind) => Rejection {
                        txid: blamed,
                        kind,
                        reason: rpc.message,
                    }
                    .into(),
                    None => BackendError::Node {
                        code: i64::from(rpc.code),
                        message: rpc.message,
                    }
                    .into(),
                });
            }
            Err(e) => return Err(backend_error(e).into()),
        };
        package_outcome(&answer, txs, blamed)?;
        Ok(txids)
    }

    async fn broadcast(&self, tx: &Transaction) -> Result<Txid, BroadcastError> {
        let tx = tx.clone();
        let txid = tx.compute_txid();
        let client = self.client.clone();
        let sent = tokio::task::spawn_blocking(move || client.send_raw_transaction(&tx))
            .await
            .map_err(|e| BackendError::Transport(format!("rpc task failed: {e}")))?;
        match sent {
            Ok(accepted) => Ok(accepted),
            Err(bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Rpc(rpc))) => {
                match RejectionKind::from_rpc_error(i64::from(rpc.code), &rpc.message) {
                    Some(kind) => Err(Rejection {
                        txid,
                        kind,
                        reason: rpc.message,
                    }
                    .into()),
                    None => Err(BackendError::Node {
                        code: i64::from(rpc.code),
                        message: rpc.message,
                    }
                    .into()),
                }
            }
            Err(e) => Err(backend_error(e).into()),
        }
    }
}
