//! Bitcoin Core's JSON shapes for blocks, headers, transactions and scripts. Pure: values in,
//! JSON out.

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Address, Amount, Block, BlockHash, Network, Script, Transaction};
use serde_json::{json, Map, Value};

use super::super::index::BlockEntry;
use super::super::kernel::SpentOutput;

/// An amount as Bitcoin Core prints it: a JSON number of BTC.
pub fn btc(amount: Amount) -> Value {
    json!(amount.to_btc())
}

/// Bitcoin Core's `GetDifficulty`: the ratio of the difficulty-1 target to `bits`' target.
pub fn difficulty(bits: u32) -> f64 {
    let mut shift = (bits >> 24) & 0xff;
    let mantissa = f64::from(bits & 0x00ff_ffff);
    if mantissa == 0.0 {
        return 0.0;
    }
    let mut diff = f64::from(0x0000_ffffu32) / mantissa;
    while shift < 29 {
        diff *= 256.0;
        shift += 1;
    }
    while shift > 29 {
        diff /= 256.0;
        shift -= 1;
    }
    diff
}

/// Bitcoin Core's name for the output type of `script`.
pub fn script_type(script: &Script) -> &'static str {
    if script.is_p2tr() {
        "witness_v1_taproot"
    } else if script.is_p2wpkh() {
        "witness_v0_keyhash"
    } else if script.is_p2wsh() {
        "witness_v0_scripthash"
    } else if script.is_p2pkh() {
        "pubkeyhash"
    } else if script.is_p2sh() {
        "scripthash"
    } else if script.is_op_return() {
        "nulldata"
    } else if script.is_p2pk() {
        "pubkey"
    } else if script.is_multisig() {
        "multisig"
    } else if script.witness_version().is_some() {
        "witness_unknown"
    } else {
        "nonstandard"
    }
}

/// A `scriptPubKey` object: asm, hex, type, and the address when there is one.
pub fn script_pubkey(script: &Script, network: Network) -> Value {
    let mut obj = Map::new();
    obj.insert("asm".into(), json!(script.to_asm_string()));
    obj.insert("hex".into(), json!(hex::encode(script.as_bytes())));
    if let Ok(address) = Address::from_script(script, network) {
        obj.insert("address".into(), json!(address.to_string()));
    }
    obj.insert("type".into(), json!(script_type(script)));
    Value::Object(obj)
}

/// A decoded transaction (`getrawtransaction` verbose, `getblock` verbosity 2).
pub fn transaction(tx: &Transaction, network: Network) -> Value {
    let vin: Vec<Value> = tx
        .input
        .iter()
        .map(|input| {
            let mut obj = Map::new();
            if tx.is_coinbase() {
                obj.insert(
                    "coinbase".into(),
                    json!(hex::encode(input.script_sig.as_bytes())),
                );
            } else {
                obj.insert("txid".into(), json!(input.previous_output.txid.to_string()));
                obj.insert("vout".into(), json!(input.previous_output.vout));
                obj.insert(
                    "scriptSig".into(),
                    json!({
                        "asm": input.script_sig.to_asm_string(),
                        "hex": hex::encode(input.script_sig.as_bytes()),
                    }),
                );
            }
            if !input.witness.is_empty() {
                let items: Vec<String> = input.witness.iter().map(hex::encode).collect();
                obj.insert("txinwitness".into(), json!(items));
            }
            obj.insert("sequence".into(), json!(input.sequence.0));
            Value::Object(obj)
        })
        .collect();
    let vout: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, out)| {
            json!({
                "value": btc(out.value),
                "n": n,
                "scriptPubKey": script_pubkey(&out.script_pubkey, network),
            })
        })
        .collect();
    json!({
        "txid": tx.compute_txid().to_string(),
        "hash": tx.compute_wtxid().to_string(),
        "version": tx.version.0,
        "size": tx.total_size(),
        "vsize": tx.vsize(),
        "weight": tx.weight().to_wu(),
        "locktime": tx.lock_time.to_consensus_u32(),
        "vin": vin,
        "vout": vout,
        "hex": serialize_hex(tx),
    })
}

/// Where a block sits in the active chain, for its JSON view.
#[derive(Debug, Clone, Copy)]
pub struct ChainPosition<'a> {
    /// The block's index entry.
    pub entry: &'a BlockEntry,
    /// Its height.
    pub height: u32,
    /// Its confirmations.
    pub confirmations: u32,
    /// The next block's hash, when it is not the tip.
    pub next: Option<BlockHash>,
}

/// A verbose block header (`getblockheader` true).
pub fn header(pos: ChainPosition<'_>) -> Value {
    let h = &pos.entry.header;
    let bits = h.bits.to_consensus();
    let mut obj = json!({
        "hash": pos.entry.hash.to_string(),
        "confirmations": pos.confirmations,
        "height": pos.height,
        "version": h.version.to_consensus(),
        "versionHex": format!("{:08x}", h.version.to_consensus()),
        "merkleroot": h.merkle_root.to_string(),
        "time": h.time,
        "mediantime": pos.entry.median_time_past,
        "nonce": h.nonce,
        "bits": format!("{bits:08x}"),
        "difficulty": difficulty(bits),
        "chainwork": hex::encode(pos.entry.chain_work.to_be_bytes()),
        "nTx": pos.entry.tx_count,
    });
    if pos.height > 0 {
        obj["previousblockhash"] = json!(h.prev_blockhash.to_string());
    }
    if let Some(next) = pos.next {
        obj["nextblockhash"] = json!(next.to_string());
    }
    obj
}

/// A verbose block (`getblock` verbosity 1: txids; 2: decoded transactions with their fee;
/// 3: also each input's `prevout`). `spent` is the block's undo data, one list per
/// non-coinbase transaction; fees and prevouts are left out where it is missing.
pub fn block(
    block: &Block,
    pos: ChainPosition<'_>,
    verbosity: i64,
    spent: &[Vec<SpentOutput>],
    network: Network,
) -> Value {
    let mut obj = header(pos);
    obj["strippedsize"] = json!(pos.entry.stripped_size);
    obj["size"] = json!(pos.entry.size);
    obj["weight"] = json!(pos.entry.weight);
    let txs: Vec<Value> = if verbosity >= 2 {
        block
            .txdata
            .iter()
            .enumerate()
            .map(|(i, tx)| {
                let mut view = transaction(tx, network);
                let prevouts = i.checked_sub(1).and_then(|u| spent.get(u));
                if let Some(prevouts) = prevouts.filter(|p| p.len() == tx.input.len()) {
                    let value_in: Amount = prevouts.iter().map(|p| p.output.value).sum();
                    let value_out: Amount = tx.output.iter().map(|o| o.value).sum();
                    if let Some(fee) = value_in.checked_sub(value_out) {
                        view["fee"] = btc(fee);
                    }
                    if verbosity >= 3 {
                        for (vin, prevout) in prevouts.iter().enumerate() {
                            view["vin"][vin]["prevout"] = json!({
                                "generated": prevout.is_coinbase,
                                "height": prevout.height,
                                "value": btc(prevout.output.value),
                                "scriptPubKey": script_pubkey(&prevout.output.script_pubkey, network),
                            });
                        }
                    }
                }
                view
            })
            .collect()
    } else {
        block
            .txdata
            .iter()
            .map(|tx| json!(tx.compute_txid().to_string()))
            .collect()
    };
    obj["tx"] = json!(txs);
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regtest_difficulty_matches_core() {
        // Core prints doubles with 16 significant digits.
        assert_eq!(
            format!("{:.15e}", difficulty(0x207f_ffff)),
            "4.656542373906925e-10"
        );
        assert_eq!(difficulty(0x1d00_ffff), 1.0);
    }

    #[test]
    fn script_types_use_core_names() {
        let genesis = bitcoin::constants::genesis_block(Network::Regtest);
        let out = &genesis.txdata[0].output[0].script_pubkey;
        assert_eq!(script_type(out), "pubkey");
        let v = script_pubkey(
            &bitcoin::ScriptBuf::new_op_return([1u8; 2]),
            Network::Regtest,
        );
        assert_eq!(v["type"], "nulldata");
        assert!(v.get("address").is_none());
    }
}
