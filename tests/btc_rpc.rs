//! Bad input to `fiamma regtest`'s JSON-RPC gets Bitcoin Core's error code and a clear
//! message, and leaves the chain and the mempool unchanged.

mod btc_support;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, OutPoint, ScriptBuf};
use bitcoincore_rpc::{jsonrpc, Auth, Client, RpcApi};
use btc_support::{csv_script, csv_spend, serve, KeyWallet, PASSWORD, USER};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FEE: Amount = Amount::from_sat(1_000);

fn call(client: &Client, method: &str, params: &[Value]) -> Result<Value, (i32, String)> {
    client.call::<Value>(method, params).map_err(|e| match e {
        bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Rpc(rpc)) => (rpc.code, rpc.message),
        other => panic!("transport error: {other}"),
    })
}

/// What must not change when a call is refused.
fn snapshot(client: &Client) -> (Value, Value) {
    (
        call(client, "getbestblockhash", &[]).expect("tip"),
        call(client, "getrawmempool", &[]).expect("mempool"),
    )
}

fn refused(client: &Client, method: &str, params: &[Value], code: i32, message_start: &str) {
    let before = snapshot(client);
    match call(client, method, params) {
        Err((got, message)) => {
            assert_eq!(got, code, "{method}: {message}");
            assert!(
                message.starts_with(message_start),
                "{method}: {message:?} does not start with {message_start:?}"
            );
        }
        Ok(v) => panic!("{method} succeeded: {v}"),
    }
    assert_eq!(snapshot(client), before, "{method} changed the chain");
}

/// Sends one raw HTTP request and returns the status code and body.
async fn http(addr: std::net::SocketAddr, auth: &str, body: &str) -> (u16, String) {
    use base64::Engine;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        base64::engine::general_purpose::STANDARD.encode(auth),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_core_error_codes_and_changes_nothing() {
    let served = serve().await;
    let addr = served.server.addr;
    let url = served.url.clone();

    // Wrong or missing password: HTTP 401, like Bitcoin Core, and no JSON body.
    let good = json!({"method": "getblockcount", "params": [], "id": 1}).to_string();
    let (status, body) = http(addr, &format!("{USER}:wrong"), &good).await;
    assert_eq!((status, body.trim()), (401, ""));
    let (status, body) = http(addr, &format!("{USER}:{PASSWORD}"), &good).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["result"],
        0
    );
    // JSON-RPC 1.0 errors use Core's HTTP statuses; 2.0 errors are HTTP 200.
    let unknown = json!({"method": "getwalletinfo", "id": 1}).to_string();
    assert_eq!(
        http(addr, &format!("{USER}:{PASSWORD}"), &unknown).await.0,
        404
    );
    let unknown2 = json!({"jsonrpc": "2.0", "method": "getwalletinfo", "id": 1}).to_string();
    let (status, body) = http(addr, &format!("{USER}:{PASSWORD}"), &unknown2).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["error"]["code"],
        -32601
    );
    let (status, _) = http(addr, &format!("{USER}:{PASSWORD}"), "{not json").await;
    assert_eq!(status, 500);

    tokio::task::spawn_blocking(move || {
        let client =
            Client::new(&url, Auth::UserPass(USER.into(), PASSWORD.into())).expect("client");
        let wrong = Client::new(&url, Auth::UserPass(USER.into(), "nope".into())).expect("client");
        assert!(matches!(
            wrong.get_block_count(),
            Err(bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Transport(
                _
            )))
        ));

        let wallet = KeyWallet::new(3);
        let other = KeyWallet::new(4);
        client
            .generate_to_address(101, &wallet.address)
            .expect("mine");
        let coinbase = |height: u64| {
            let block = client
                .get_block(&client.get_block_hash(height).expect("hash"))
                .expect("block");
            (
                OutPoint::new(block.txdata[0].compute_txid(), 0),
                block.txdata[0].output[0].value,
            )
        };

        refused(&client, "getwalletinfo", &[], -32601, "Method not found");
        refused(
            &client,
            "sendrawtransaction",
            &[json!("zz")],
            -22,
            "TX decode failed",
        );
        refused(
            &client,
            "sendrawtransaction",
            &[json!("0200")],
            -22,
            "TX decode failed",
        );
        refused(
            &client,
            "sendrawtransaction",
            &[],
            -1,
            "sendrawtransaction hexstring",
        );
        refused(
            &client,
            "getrawtransaction",
            &[json!("abc")],
            -8,
            "parameter 1 must be of length 64",
        );
        refused(
            &client,
            "getrawtransaction",
            &[json!("42".repeat(32))],
            -5,
            "No such mempool or blockchain transaction",
        );
        refused(
            &client,
            "getblockhash",
            &[json!(1000)],
            -8,
            "Block height out of range",
        );
        refused(
            &client,
            "getblockhash",
            &[json!("1")],
            -3,
            "JSON value of type string is not of expected type number",
        );
        refused(
            &client,
            "getblock",
            &[json!("00".repeat(32))],
            -5,
            "Block not found",
        );
        refused(
            &client,
            "gettxoutproof",
            &[json!(["42".repeat(32)])],
            -5,
            "Transaction not yet in block",
        );
        refused(
            &client,
            "generatetoaddress",
            &[json!(1), json!("notanaddress")],
            -5,
            "Error: Invalid address",
        );

        // A valid spend, then the refused variants of it.
        let (coin1, value1) = coinbase(1);
        let spend = wallet.spend(coin1, value1, other.script(), FEE);
        // A parent and its child, tested together, are both allowed; the child alone is not.
        let child = other.spend(
            OutPoint::new(spend.compute_txid(), 0),
            value1 - FEE,
            wallet.script(),
            FEE,
        );
        let checked = call(
            &client,
            "testmempoolaccept",
            &[json!([serialize_hex(&spend), serialize_hex(&child)])],
        )
        .expect("test");
        assert_eq!(checked[0]["allowed"], true, "{checked}");
        assert_eq!(checked[1]["allowed"], true, "{checked}");
        let alone = call(
            &client,
            "testmempoolaccept",
            &[json!([serialize_hex(&child)])],
        )
        .expect("test");
        assert_eq!(alone[0]["reject-reason"], "missing-inputs", "{alone}");
        assert_eq!(
            call(&client, "getrawmempool", &[]).expect("mempool"),
            json!([])
        );
        refused(
            &client,
            "sendrawtransaction",
            &[json!(serialize_hex(&spend)), json!(0.00000001)],
            -25,
            "Fee exceeds maximum configured by user",
        );
        let txid = client.send_raw_transaction(&spend).expect("accepted");
        let verbose = call(&client, "getrawmempool", &[json!(true)]).expect("mempool");
        assert_eq!(
            verbose[txid.to_string()]["fees"]["base"],
            json!(FEE.to_btc())
        );
        let decoded = client
            .get_raw_transaction_info(&txid, None)
            .expect("verbose tx");
        assert_eq!((decoded.txid, decoded.blockhash), (txid, None));

        let double = wallet.spend(coin1, value1, wallet.script(), FEE * 3);
        refused(
            &client,
            "sendrawtransaction",
            &[json!(serialize_hex(&double))],
            -26,
            "txn-mempool-conflict",
        );
        let checked = call(
            &client,
            "testmempoolaccept",
            &[json!([serialize_hex(&double)])],
        )
        .expect("test");
        assert_eq!(
            (
                checked[0]["allowed"].clone(),
                checked[0]["reject-reason"].clone()
            ),
            (json!(false), json!("txn-mempool-conflict"))
        );

        let (coin2, value2) = coinbase(2);
        let mut forged = wallet.spend(coin2, value2, other.script(), FEE);
        let mut witness = forged.input[0].witness.to_vec();
        witness[0][0] ^= 1;
        forged.input[0].witness = bitcoin::Witness::from_slice(&witness);
        refused(
            &client,
            "sendrawtransaction",
            &[json!(serialize_hex(&forged))],
            -26,
            "mandatory-script-verify-flag-failed",
        );

        // A CSV output spent one block too early.
        let csv_value = value2 - FEE;
        let fund = wallet.spend(
            coin2,
            value2,
            ScriptBuf::new_p2wsh(&csv_script(3).wscript_hash()),
            FEE,
        );
        client.send_raw_transaction(&fund).expect("fund csv");
        client
            .generate_to_address(1, &wallet.address)
            .expect("mine");
        client
            .generate_to_address(1, &wallet.address)
            .expect("mine");
        let early = csv_spend(
            OutPoint::new(fund.compute_txid(), 0),
            csv_value - FEE,
            3,
            3,
            other.script(),
        );
        refused(
            &client,
            "sendrawtransaction",
            &[json!(serialize_hex(&early))],
            -26,
            "non-BIP68-final",
        );

        // The mined spend: sending it again, and spending its input again.
        refused(
            &client,
            "sendrawtransaction",
            &[json!(serialize_hex(&spend))],
            -27,
            "Transaction outputs already in utxo set",
        );
        refused(
            &client,
            "sendrawtransaction",
            &[json!(serialize_hex(&double))],
            -25,
            "bad-txns-inputs-missingorspent",
        );
        assert_eq!(
            call(
                &client,
                "gettxout",
                &[json!(coin1.txid.to_string()), json!(0)]
            )
            .expect("txout"),
            Value::Null
        );
        let out = call(&client, "gettxout", &[json!(txid.to_string()), json!(0)]).expect("txout");
        assert_eq!(out["confirmations"], 2);
        assert_eq!(out["scriptPubKey"]["type"], "witness_v1_taproot");

        // Result shapes that typed clients parse.
        let info = client.get_blockchain_info().expect("getblockchaininfo");
        assert_eq!((info.chain, info.blocks), (bitcoin::Network::Regtest, 103));
        let best = client.get_best_block_hash().expect("best");
        let header = client.get_block_header_info(&best).expect("header");
        assert_eq!(
            (header.height, header.confirmations, header.n_tx),
            (103, 1, 1)
        );
        let mined_in = client
            .get_raw_transaction_info(&txid, None)
            .expect("tx")
            .blockhash
            .expect("mined");
        let block = call(
            &client,
            "getblock",
            &[json!(mined_in.to_string()), json!(2)],
        )
        .expect("block");
        assert!(block["tx"]
            .as_array()
            .expect("txs")
            .iter()
            .any(|t| t["txid"] == json!(txid.to_string())));
        // Verbosity 3 adds each input's prevout from Bitcoin Core's undo data; 2 and 3 the fee.
        let block = call(
            &client,
            "getblock",
            &[json!(mined_in.to_string()), json!(3)],
        )
        .expect("block");
        let mined_spend = block["tx"]
            .as_array()
            .expect("txs")
            .iter()
            .find(|t| t["txid"] == json!(txid.to_string()))
            .expect("spend in block");
        assert_eq!(mined_spend["fee"], json!(FEE.to_btc()));
        let prevout = &mined_spend["vin"][0]["prevout"];
        assert_eq!(
            (
                prevout["generated"].clone(),
                prevout["height"].clone(),
                prevout["value"].clone()
            ),
            (json!(true), json!(1), json!(value1.to_btc()))
        );
        let block_info = client.get_block_info(&mined_in).expect("getblock 1");
        assert!(block_info.tx.contains(&txid));

        // One more block and the CSV spend is valid.
        client
            .generate_to_address(1, &wallet.address)
            .expect("mine");
        client
            .send_raw_transaction(&early)
            .expect("csv spend after 3 blocks");
    })
    .await
    .expect("rpc flow");
}

/// `invalidateblock` and `reconsiderblock` reorganize the embedded chain as Bitcoin Core does:
/// the invalidated block and its descendants leave the active chain, their transactions go
/// back to the mempool, a new branch can be mined, and reconsidering brings the more-work
/// branch back (taking its transactions out of the mempool again). Unknown blocks and the
/// genesis block are refused without a change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_and_reconsider_reorganize_like_core() {
    let served = serve().await;
    let url = served.url.clone();
    tokio::task::spawn_blocking(move || {
        let client =
            Client::new(&url, Auth::UserPass(USER.into(), PASSWORD.into())).expect("client");
        let wallet = KeyWallet::new(5);
        client
            .generate_to_address(101, &wallet.address)
            .expect("mine");
        let block1 = client
            .get_block(&client.get_block_hash(1).expect("hash"))
            .expect("block 1");
        let coinbase = OutPoint::new(block1.txdata[0].compute_txid(), 0);
        let spend = wallet.spend(
            coinbase,
            block1.txdata[0].output[0].value,
            wallet.script(),
            FEE,
        );
        let txid = client.send_raw_transaction(&spend).expect("spend");
        let old = client
            .generate_to_address(3, &wallet.address)
            .expect("mine 102..104");
        let old_tip = old[2];
        let mempool = |client: &Client| client.get_raw_mempool().expect("mempool");
        assert!(mempool(&client).is_empty());
        let genesis = client.get_block_hash(0).expect("genesis");

        refused(
            &client,
            "invalidateblock",
            &[json!("42".repeat(32))],
            -5,
            "Block not found",
        );
        refused(
            &client,
            "reconsiderblock",
            &[json!("42".repeat(32))],
            -5,
            "Block not found",
        );
        refused(
            &client,
            "invalidateblock",
            &[json!(genesis.to_string())],
            -1,
            "cannot invalidate the genesis block",
        );
        refused(
            &client,
            "invalidateblock",
            &[],
            -1,
            "invalidateblock blockhash",
        );

        // Invalidate 102: the chain falls back to 101 and the spend is unconfirmed again.
        call(&client, "invalidateblock", &[json!(old[0].to_string())]).expect("invalidate");
        assert_eq!(client.get_block_count().expect("count"), 101);
        assert_eq!(
            client.get_best_block_hash().expect("best"),
            client.get_block_hash(101).expect("hash 101")
        );
        assert_eq!(mempool(&client), vec![txid]);
        assert!(client.get_block(&old_tip).is_err(), "off the active chain");
        // Invalidating a block of the invalid branch again changes nothing.
        call(&client, "invalidateblock", &[json!(old[1].to_string())]).expect("again");
        assert_eq!(client.get_block_count().expect("count"), 101);

        // A new branch of one block mines the spend again.
        let new = client
            .generate_to_address(1, &wallet.address)
            .expect("mine 102'");
        assert_ne!(new[0], old[0]);
        assert!(mempool(&client).is_empty());
        let info = client.get_raw_transaction_info(&txid, None).expect("tx");
        assert_eq!(info.blockhash, Some(new[0]));

        // Reconsider 103 (its ancestor 102 is reconsidered with it): the old branch has
        // more work and becomes active again.
        call(&client, "reconsiderblock", &[json!(old[1].to_string())]).expect("reconsider");
        assert_eq!(client.get_block_count().expect("count"), 104);
        assert_eq!(client.get_best_block_hash().expect("best"), old_tip);
        assert!(mempool(&client).is_empty(), "mined in the old branch too");
        let info = client.get_raw_transaction_info(&txid, None).expect("tx");
        assert_eq!(info.blockhash, Some(old[0]));
        // The chain keeps growing on the restored tip.
        client
            .generate_to_address(1, &wallet.address)
            .expect("mine 105");
        assert_eq!(client.get_block_count().expect("count"), 105);
    })
    .await
    .expect("rpc flow");
}
