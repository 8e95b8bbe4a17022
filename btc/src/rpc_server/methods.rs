//! The served JSON-RPC methods: Bitcoin Core's names, parameters, results and error codes.

use std::collections::BTreeSet;
use std::str::FromStr;

use bitcoin::consensus::encode::{deserialize, serialize_hex};
use bitcoin::{Address, BlockHash, FeeRate, MerkleBlock, Network, OutPoint, Transaction, Txid};
use serde_json::{json, Value};

use super::super::backend::RejectionKind;
use super::super::package::{TopologyError, MAX_PACKAGE_COUNT};
use super::super::policy::{Accepted, TxReject, MIN_RELAY_FEE_SAT_PER_VB};
use super::super::regtest::{mine_shared, PackageError, PackageTx, RegtestChain, SharedChain};
use super::error::{code, RpcError};
use super::params::{parse_hash, type_name, Params};
use super::views::{self, ChainPosition};

const NETWORK: Network = Network::Regtest;

/// Bitcoin Core's largest `generatetoaddress` request it serves in one call.
const MAX_GENERATE: i64 = 10_000;

/// Runs one JSON-RPC call against the chain.
pub async fn call(
    chain: &SharedChain,
    method: &str,
    params: Option<&Value>,
) -> Result<Value, RpcError> {
    let p = |names: &[&str], required: usize| Params::parse(method, params, names, required);
    match method {
        "getblockchaininfo" => {
            p(&[], 0)?;
            Ok(blockchain_info(&*chain.read().await))
        }
        "getnetworkinfo" => {
            p(&[], 0)?;
            Ok(network_info())
        }
        "getblockcount" => {
            p(&[], 0)?;
            Ok(json!(chain.read().await.tip().height))
        }
        "getbestblockhash" => {
            p(&[], 0)?;
            Ok(json!(chain.read().await.tip().hash.to_string()))
        }
        "getblockhash" => {
            let p = p(&["height"], 1)?;
            let height = p.int(0, 0)?;
            let chain = chain.read().await;
            u32::try_from(height)
                .ok()
                .and_then(|h| chain.index().entry(h))
                .map(|e| json!(e.hash.to_string()))
                .ok_or_else(|| RpcError::invalid_parameter("Block height out of range"))
        }
        "getblockheader" => {
            let p = p(&["blockhash", "verbose"], 1)?;
            let hash: BlockHash = p.hash(0, "hash")?;
            let verbose = p.bool(1, true)?;
            let chain = chain.read().await;
            let pos = position(&chain, &hash)?;
            if verbose {
                Ok(views::header(pos))
            } else {
                Ok(json!(serialize_hex(&pos.entry.header)))
            }
        }
        "getblock" => {
            let p = p(&["blockhash", "verbosity"], 1)?;
            let hash: BlockHash = p.hash(0, "blockhash")?;
            let verbosity = p.verbosity(1, 1)?;
            let chain = chain.read().await;
            let pos = position(&chain, &hash)?;
            let block = chain
                .block(&hash)?
                .ok_or_else(|| RpcError::not_found("Block not found"))?;
            match verbosity {
                0 => Ok(json!(serialize_hex(&block))),
                1 => Ok(views::block(&block, pos, verbosity, &[], NETWORK)),
                2 | 3 => {
                    let spent = chain.spent_outputs(&hash)?.unwrap_or_default();
                    Ok(views::block(&block, pos, verbosity, &spent, NETWORK))
                }
                other => Err(RpcError::invalid_parameter(format!(
                    "Verbosity must be in range 0 to 3 (not {other})"
                ))),
            }
        }
        "getrawtransaction" => {
            let p = p(&["txid", "verbose", "blockhash"], 1)?;
            let txid: Txid = p.hash(0, "parameter 1")?;
            let verbose = p.verbosity(1, 0)?;
            let in_block: Option<BlockHash> = match p.get(2) {
                Some(_) => Some(p.hash(2, "parameter 3")?),
                None => None,
            };
            raw_transaction(&*chain.read().await, &txid, verbose, in_block)
        }
        "sendrawtransaction" => {
            let p = p(&["hexstring", "maxfeerate", "maxburnamount"], 1)?;
            let tx = decode_tx(p.str(0)?)?;
            let max = max_fee_rate(&p, 1)?;
            let mut chain = chain.write().await;
            chain
                .submit_transaction_capped(&tx, max)
                .map(|txid| json!(txid.to_string()))
                .map_err(|r| RpcError::new(r.kind.rpc_code(), r.reason))
        }
        "testmempoolaccept" => {
            let p = p(&["rawtxs", "maxfeerate"], 1)?;
            let txs = decode_txs(p.array(0)?)?;
            let results = chain.read().await.test_accept_package(&txs);
            Ok(json!(txs
                .iter()
                .zip(results)
                .map(|(tx, result)| test_accept(tx, result))
                .collect::<Vec<_>>()))
        }
        "submitpackage" => {
            let p = p(&["package", "maxfeerate", "maxburnamount"], 1)?;
            let txs = decode_txs(p.array(0)?)?;
            let max = max_fee_rate(&p, 1)?;
            let submitted = chain.write().await.submit_package(&txs, max);
            submit_package_answer(&txs, submitted)
        }
        "gettxout" => {
            let p = p(&["txid", "n", "include_mempool"], 2)?;
            let txid: Txid = p.hash(0, "txid")?;
            let vout = u32::try_from(p.int(1, 0)?)
                .map_err(|_| RpcError::invalid_parameter("Invalid vout"))?;
            let include_mempool = p.bool(2, true)?;
            Ok(tx_out(
                &*chain.read().await,
                OutPoint::new(txid, vout),
                include_mempool,
            ))
        }
        "getrawmempool" => {
            let p = p(&["verbose", "mempool_sequence"], 0)?;
            let verbose = p.bool(0, false)?;
            Ok(raw_mempool(&*chain.read().await, verbose))
        }
        "gettxspendingprevout" => {
            let p = p(&["outputs"], 1)?;
            let outputs = p
                .array(0)?
                .iter()
                .map(|o| {
                    let txid = o
                        .get("txid")
                        .and_then(Value::as_str)
                        .ok_or_else(|| RpcError::invalid_parameter("Missing txid"))?;
                    let vout = o
                        .get("vout")
                        .and_then(Value::as_u64)
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| {
                            RpcError::invalid_parameter("Invalid parameter, missing vout key")
                        })?;
                    Ok(OutPoint::new(parse_hash(txid, "txid")?, vout))
                })
                .collect::<Result<Vec<_>, RpcError>>()?;
            let chain = chain.read().await;
            Ok(json!(outputs
                .iter()
                .map(|op| {
                    let mut o = json!({"txid": op.txid.to_string(), "vout": op.vout});
                    if let Some((spender, _)) = chain.mempool().spender(op) {
                        o["spendingtxid"] = json!(spender.to_string());
                    }
                    o
                })
                .collect::<Vec<_>>()))
        }
        "gettxoutproof" => {
            let p = p(&["txids", "blockhash"], 1)?;
            let mut txids = BTreeSet::new();
            for v in p.array(0)? {
                let s = v.as_str().ok_or_else(|| {
                    RpcError::new(code::TYPE_ERROR, "JSON value is not a string as expected")
                })?;
                let txid: Txid = parse_hash(s, "txid")?;
                if !txids.insert(txid) {
                    return Err(RpcError::invalid_parameter(format!(
                        "Invalid parameter, duplicated txid: {s}"
                    )));
                }
            }
            let in_block: Option<BlockHash> = match p.get(1) {
                Some(_) => Some(p.hash(1, "blockhash")?),
                None => None,
            };
            tx_out_proof(&*chain.read().await, &txids, in_block)
        }
        "generatetoaddress" => {
            let p = p(&["nblocks", "address", "maxtries"], 2)?;
            let count = p.int(0, 0)?;
            if !(0..=MAX_GENERATE).contains(&count) {
                return Err(RpcError::invalid_parameter(format!(
                    "nblocks must be between 0 and {MAX_GENERATE}"
                )));
            }
            let address = Address::from_str(p.str(1)?)
                .ok()
                .and_then(|a| a.require_network(NETWORK).ok())
                .ok_or_else(|| RpcError::not_found("Error: Invalid address"))?;
            let count = u32::try_from(count).unwrap_or(0);
            let mined = mine_shared(chain, count, address.script_pubkey()).await?;
            Ok(json!(mined
                .hashes
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()))
        }
        "invalidateblock" | "reconsiderblock" => {
            let p = p(&["blockhash"], 1)?;
            let hash: BlockHash = p.hash(0, "blockhash")?;
            let chain = chain.clone();
            let invalidate = method == "invalidateblock";
            // Rebuilding or reorganizing the chainstate is CPU-bound work in the kernel.
            tokio::task::spawn_blocking(move || {
                let mut chain = chain.blocking_write();
                if invalidate {
                    chain.invalidate_block(&hash)
                } else {
                    chain.reconsider_block(&hash)
                }
            })
            .await
            .map_err(RpcError::internal)??;
            Ok(Value::Null)
        }
        _ => Err(RpcError::new(code::METHOD_NOT_FOUND, "Method not found")),
    }
}

/// Bitcoin Core's default `maxfeerate`: 0.10 BTC/kvB.
const DEFAULT_MAX_FEE_RATE_SAT_PER_KVB: u64 = 10_000_000;

/// `maxfeerate` in BTC/kvB (number or string); 0 means no limit.
fn max_fee_rate(p: &Params, i: usize) -> Result<Option<FeeRate>, RpcError> {
    let invalid = |v: &Value| RpcError::new(code::TYPE_ERROR, format!("Invalid amount {v}"));
    let amount = match p.get(i) {
        None => return Ok(Some(per_kvb(DEFAULT_MAX_FEE_RATE_SAT_PER_KVB))),
        Some(v @ Value::Number(n)) => n
            .as_f64()
            .and_then(|btc| bitcoin::Amount::from_btc(btc).ok())
            .ok_or_else(|| invalid(v))?,
        Some(v @ Value::String(s)) => {
            bitcoin::Amount::from_str_in(s, bitcoin::Denomination::Bitcoin)
                .map_err(|_| invalid(v))?
        }
        Some(other) => {
            return Err(RpcError::new(
                code::TYPE_ERROR,
                format!(
                    "JSON value of type {} is not of expected type number",
                    type_name(other)
                ),
            ))
        }
    };
    let sats = amount.to_sat();
    Ok((sats > 0).then(|| per_kvb(sats)))
}

fn per_kvb(sats: u64) -> FeeRate {
    FeeRate::from_sat_per_kwu(sats / 4)
}

/// A `testmempoolaccept` / `submitpackage` array: 1 to 25 hex transactions.
fn decode_txs(raw: &[Value]) -> Result<Vec<Transaction>, RpcError> {
    if raw.is_empty() || raw.len() > MAX_PACKAGE_COUNT {
        return Err(RpcError::invalid_parameter(
            "Array must contain between 1 and 25 transactions.",
        ));
    }
    raw.iter()
        .map(|v| match v {
            Value::String(s) => decode_tx(s),
            other => Err(RpcError::new(
                code::TYPE_ERROR,
                format!(
                    "JSON value of type {} is not of expected type string",
                    type_name(other)
                ),
            )),
        })
        .collect()
}

/// Bitcoin Core's `submitpackage` answer: a topology error is a JSON-RPC error (-25); anything
/// else is a result whose `package_msg` says `success` or `transaction failed`, with the
/// refused member's `error` in `tx-results`.
fn submit_package_answer(
    txs: &[Transaction],
    submitted: Result<Vec<PackageTx>, PackageError>,
) -> Result<Value, RpcError> {
    let mut results = serde_json::Map::new();
    let msg = match submitted {
        Err(PackageError::Topology(TopologyError::Count(_))) => {
            return Err(RpcError::invalid_parameter(
                "Array must contain between 1 and 25 transactions.",
            ))
        }
        Err(PackageError::Topology(e)) => {
            return Err(RpcError::new(
                RejectionKind::MissingOrSpentInputs.rpc_code(),
                e.to_string(),
            ))
        }
        Err(PackageError::Rejected(rejection)) => {
            for tx in txs {
                let txid = tx.compute_txid();
                let mut r = json!({"txid": txid.to_string()});
                r["error"] = if txid == rejection.txid {
                    json!(rejection.reason)
                } else {
                    json!("package-not-validated")
                };
                results.insert(tx.compute_wtxid().to_string(), r);
            }
            "transaction failed"
        }
        Ok(members) => {
            let added: Vec<&PackageTx> = members.iter().filter(|m| m.added).collect();
            let fee: u64 = added.iter().map(|m| m.fee.to_sat()).sum();
            let vsize: u64 = added.iter().map(|m| m.vsize).sum::<u64>().max(1);
            let rate = bitcoin::Amount::from_sat(fee * 1000 / vsize);
            let includes: Vec<String> = added.iter().map(|m| m.wtxid.to_string()).collect();
            for m in &members {
                let mut r = json!({"txid": m.txid.to_string(), "vsize": m.vsize});
                if m.added {
                    r["fees"] = json!({
                        "base": views::btc(m.fee),
                        "effective-feerate": views::btc(rate),
                        "effective-includes": includes,
                    });
                }
                results.insert(m.wtxid.to_string(), r);
            }
            "success"
        }
    };
    Ok(json!({
        "package_msg": msg,
        "tx-results": results,
        "replaced-transactions": [],
    }))
}

fn decode_tx(hex_str: &str) -> Result<Transaction, RpcError> {
    hex::decode(hex_str)
        .ok()
        .and_then(|bytes| deserialize::<Transaction>(&bytes).ok())
        .ok_or_else(|| {
            RpcError::new(
                code::DESERIALIZATION_ERROR,
                "TX decode failed. Make sure the tx has at least one input.",
            )
        })
}

fn position<'a>(chain: &'a RegtestChain, hash: &BlockHash) -> Result<ChainPosition<'a>, RpcError> {
    let index = chain.index();
    let height = index
        .height_of(hash)
        .ok_or_else(|| RpcError::not_found("Block not found"))?;
    let entry = index
        .entry(height)
        .ok_or_else(|| RpcError::not_found("Block not found"))?;
    Ok(ChainPosition {
        entry,
        height,
        confirmations: index.confirmations(height),
        next: index.entry(height + 1).map(|e| e.hash),
    })
}

/// The Bitcoin Core version whose consensus engine (libbitcoinkernel) validates the chain.
const KERNEL_CLIENT_VERSION: u32 = 319_900;

/// `getnetworkinfo`: a node without peers. Clients read `version` to pick result formats.
fn network_info() -> Value {
    let relay_fee_per_kvb = bitcoin::Amount::from_sat(MIN_RELAY_FEE_SAT_PER_VB * 1000);
    json!({
        "version": KERNEL_CLIENT_VERSION,
        "subversion": format!("/fiamma-regtest:{}/", env!("CARGO_PKG_VERSION")),
        "protocolversion": 70016,
        "localservices": "0000000000000000",
        "localservicesnames": [],
        "localrelay": true,
        "timeoffset": 0,
        "networkactive": false,
        "connections": 0,
        "connections_in": 0,
        "connections_out": 0,
        "networks": [],
        "relayfee": views::btc(relay_fee_per_kvb),
        "incrementalfee": views::btc(relay_fee_per_kvb),
        "localaddresses": [],
        "warnings": [],
    })
}

fn blockchain_info(chain: &RegtestChain) -> Value {
    let index = chain.index();
    let tip = index.tip();
    let bits = tip.header.bits.to_consensus();
    json!({
        "chain": "regtest",
        "blocks": index.tip_height(),
        "headers": index.tip_height(),
        "bestblockhash": tip.hash.to_string(),
        "bits": format!("{bits:08x}"),
        "difficulty": views::difficulty(bits),
        "time": tip.header.time,
        "mediantime": tip.median_time_past,
        "verificationprogress": 1.0,
        "initialblockdownload": false,
        "chainwork": hex::encode(tip.chain_work.to_be_bytes()),
        "size_on_disk": 0,
        "pruned": false,
        "warnings": [],
    })
}

fn raw_transaction(
    chain: &RegtestChain,
    txid: &Txid,
    verbose: i64,
    in_block: Option<BlockHash>,
) -> Result<Value, RpcError> {
    let found = chain.transaction(txid)?;
    if let Some(block_hash) = in_block {
        if chain.index().height_of(&block_hash).is_none() {
            return Err(RpcError::not_found("Block hash not found"));
        }
        let in_that_block = found
            .as_ref()
            .and_then(|(_, loc)| *loc)
            .and_then(|loc| chain.index().entry(loc.height))
            .is_some_and(|e| e.hash == block_hash);
        if !in_that_block {
            return Err(RpcError::not_found(
                "No such transaction found in the provided block. Use gettransaction for wallet transactions.",
            ));
        }
    }
    let (tx, location) = found.ok_or_else(|| {
        RpcError::not_found(
            "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
        )
    })?;
    if verbose == 0 {
        return Ok(json!(serialize_hex(&tx)));
    }
    let mut obj = views::transaction(&tx, NETWORK);
    if in_block.is_some() {
        obj["in_active_chain"] = json!(true);
    }
    if let Some(entry) = location.and_then(|l| chain.index().entry(l.height).map(|e| (l, e))) {
        let (loc, entry) = entry;
        obj["blockhash"] = json!(entry.hash.to_string());
        obj["confirmations"] = json!(chain.index().confirmations(loc.height));
        obj["time"] = json!(entry.header.time);
        obj["blocktime"] = json!(entry.header.time);
    }
    Ok(obj)
}

fn test_accept(tx: &Transaction, result: Result<Accepted, TxReject>) -> Value {
    let txid = tx.compute_txid().to_string();
    let wtxid = tx.compute_wtxid().to_string();
    match result {
        Ok(accepted) => {
            let vsize = accepted.vsize.max(1);
            let rate = bitcoin::Amount::from_sat(accepted.fee.to_sat() * 1000 / vsize);
            json!({
                "txid": txid,
                "wtxid": wtxid,
                "allowed": true,
                "vsize": accepted.vsize,
                "fees": {
                    "base": views::btc(accepted.fee),
                    "effective-feerate": views::btc(rate),
                    "effective-includes": [wtxid],
                },
            })
        }
        Err(reject) => {
            let short = if reject.kind() == RejectionKind::MissingOrSpentInputs {
                "missing-inputs".to_owned()
            } else {
                reject.short_reason()
            };
            json!({
                "txid": txid,
                "wtxid": wtxid,
                "allowed": false,
                "reject-reason": short,
                "reject-details": reject.to_string(),
            })
        }
    }
}

fn tx_out(chain: &RegtestChain, outpoint: OutPoint, include_mempool: bool) -> Value {
    let index = chain.index();
    let best = index.tip().hash.to_string();
    if include_mempool && chain.mempool().spender(&outpoint).is_some() {
        return Value::Null;
    }
    if let Some(coin) = index.coin(&outpoint) {
        return json!({
            "bestblock": best,
            "confirmations": index.confirmations(coin.height),
            "value": views::btc(coin.output.value),
            "scriptPubKey": views::script_pubkey(&coin.output.script_pubkey, NETWORK),
            "coinbase": coin.is_coinbase,
        });
    }
    match chain.mempool().output(&outpoint) {
        Some(out) if include_mempool => json!({
            "bestblock": best,
            "confirmations": 0,
            "value": views::btc(out.value),
            "scriptPubKey": views::script_pubkey(&out.script_pubkey, NETWORK),
            "coinbase": false,
        }),
        _ => Value::Null,
    }
}

fn raw_mempool(chain: &RegtestChain, verbose: bool) -> Value {
    let pool = chain.mempool();
    if !verbose {
        return json!(pool
            .ordered()
            .map(|e| e.tx.compute_txid().to_string())
            .collect::<Vec<_>>());
    }
    let height = chain.tip().height;
    let mut map = serde_json::Map::new();
    for entry in pool.ordered() {
        let txid = entry.tx.compute_txid();
        let depends: Vec<String> = entry
            .tx
            .input
            .iter()
            .filter(|i| pool.contains(&i.previous_output.txid))
            .map(|i| i.previous_output.txid.to_string())
            .collect();
        let spentby: Vec<String> = (0..entry.tx.output.len())
            .filter_map(|vout| {
                let op = OutPoint::new(txid, u32::try_from(vout).ok()?);
                pool.spender(&op).map(|(t, _)| t.to_string())
            })
            .collect();
        map.insert(
            txid.to_string(),
            json!({
                "vsize": entry.vsize,
                "weight": entry.tx.weight().to_wu(),
                "height": height,
                "wtxid": entry.tx.compute_wtxid().to_string(),
                "fees": {
                    "base": views::btc(entry.fee),
                    "modified": views::btc(entry.fee),
                },
                "depends": depends,
                "spentby": spentby,
                "bip125-replaceable": false,
                "unbroadcast": false,
            }),
        );
    }
    Value::Object(map)
}

fn tx_out_proof(
    chain: &RegtestChain,
    txids: &BTreeSet<Txid>,
    in_block: Option<BlockHash>,
) -> Result<Value, RpcError> {
    let block_hash = match in_block {
        Some(hash) => hash,
        None => {
            let first = txids
                .iter()
                .next()
                .ok_or_else(|| RpcError::invalid_parameter("Invalid parameter, txids empty"))?;
            let location = chain
                .index()
                .location(first)
                .ok_or_else(|| RpcError::not_found("Transaction not yet in block"))?;
            chain
                .index()
                .entry(location.height)
                .map(|e| e.hash)
                .ok_or_else(|| RpcError::not_found("Transaction not yet in block"))?
        }
    };
    let block = chain
        .block(&block_hash)?
        .ok_or_else(|| RpcError::not_found("Block not found"))?;
    let in_it = block
        .txdata
        .iter()
        .filter(|tx| txids.contains(&tx.compute_txid()))
        .count();
    if in_it != txids.len() {
        return Err(RpcError::not_found(
            "Not all transactions found in specified or retrieved block",
        ));
    }
    let proof = MerkleBlock::from_block_with_predicate(&block, |t| txids.contains(t));
    Ok(json!(serialize_hex(&proof)))
}
