//! The child that pays for a checkpoint candidate (CHECKPOINTS.md §13.7), built by the
//! sequencer's BDK wallet against the embedded regtest chain served over JSON-RPC as
//! `fiamma regtest` serves it: a 0-fee version 3 parent with a 0-sat pay-to-anchor output is
//! refused alone, and enters the mempool and a block (Bitcoin Core's consensus engine) with
//! the child, which pays the wallet's fee rate for both.

use std::sync::Arc;

use bdk_bitcoind_rpc::bitcoincore_rpc::{Auth, Client, RpcApi};
use bitcoin::hashes::Hash;
use bitcoin::{
    absolute, transaction, Amount, FeeRate, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxOut, Witness,
};
use fiamma_btc::rpc_server::{self, RpcAuth};
use fiamma_btc::{Backend, EmbeddedBackend, RegtestChain, RpcBackend, TxStatus};
use fiamma_finality::checkpoint::candidate::{p2a_txout, P2A_SCRIPT};
use fiamma_sequencer::checkpoint::{build_child, ChildError, MAX_CHILD_VSIZE};
use fiamma_wallet::{Wallet, WalletError, WalletKeys, WalletStore};

const USER: &str = "fiamma";
const PASSWORD: &str = "s3cret";

/// `OP_TRUE`, in P2WSH: anyone can spend it with the script as the witness.
fn anyone() -> ScriptBuf {
    ScriptBuf::from_bytes(vec![0x51])
}

/// A 0-fee version 3 spend of `coin` (P2WSH(OP_TRUE) worth `value`) keeping all of it, with a
/// 0-sat P2A output: the fee shape of a checkpoint candidate.
fn zero_fee_parent(coin: OutPoint, value: Amount) -> Transaction {
    Transaction {
        version: transaction::Version(3),
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: coin,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[anyone().into_bytes()]),
        }],
        output: vec![
            TxOut {
                value,
                script_pubkey: ScriptBuf::new_p2wsh(&anyone().wscript_hash()),
            },
            p2a_txout(),
        ],
    }
}

async fn blocking<T: Send + 'static>(
    client: &Arc<Client>,
    f: impl FnOnce(&Client) -> T + Send + 'static,
) -> T {
    let client = client.clone();
    tokio::task::spawn_blocking(move || f(&client))
        .await
        .expect("task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_pays_for_a_zero_fee_candidate_and_the_package_is_mined() {
    let embedded = EmbeddedBackend::new(RegtestChain::in_memory().expect("chain"));
    let server = rpc_server::spawn(
        "127.0.0.1:0".parse().expect("addr"),
        embedded.shared(),
        &RpcAuth {
            user: USER.into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .expect("bind");
    let url = format!("http://{}", server.addr);
    let client =
        Arc::new(Client::new(&url, Auth::UserPass(USER.into(), PASSWORD.into())).expect("client"));
    let bitcoin = RpcBackend::new(&url, USER, PASSWORD).expect("backend");

    let dir = tempfile::tempdir().expect("dir");
    let url_db = fiamma_role::store::sqlite_url(&dir.path().join("wallet.sqlite"));
    let mut wallet = Wallet::create(
        WalletStore::open(&url_db, "sequencer")
            .await
            .expect("store"),
        Network::Regtest,
        &WalletKeys::generate().expect("keys"),
        None,
    )
    .await
    .expect("wallet");
    let address = wallet.next_address().await.expect("address");
    let to = address.clone();
    blocking(&client, move |c| {
        c.generate_to_address(101, &to).expect("mine")
    })
    .await;
    wallet.sync(client.clone()).await.expect("sync");
    let rate = FeeRate::from_sat_per_vb(3).expect("rate");

    // The wallet funds an anyone-can-spend coin; the candidate-shaped parent spends it.
    let p2wsh = ScriptBuf::new_p2wsh(&anyone().wscript_hash());
    let value = Amount::from_sat(100_000);
    let mut psbt = wallet
        .build_payment(&[(p2wsh.clone(), value)], rate)
        .await
        .expect("payment");
    let funding = wallet.sign_payment(&mut psbt).expect("signed");
    bitcoin.broadcast(&funding).await.expect("funding");
    let to = address.clone();
    blocking(&client, move |c| {
        c.generate_to_address(1, &to).expect("mine")
    })
    .await;
    wallet.sync(client.clone()).await.expect("sync");
    let vout = funding
        .output
        .iter()
        .position(|o| o.script_pubkey == p2wsh)
        .expect("funded");
    let parent = zero_fee_parent(
        OutPoint::new(funding.compute_txid(), u32::try_from(vout).expect("vout")),
        value,
    );
    let refused = bitcoin.broadcast(&parent).await.unwrap_err();
    assert!(
        refused.to_string().contains("min relay fee not met"),
        "{refused}"
    );

    // No coin to pay with: every wallet coin is promised elsewhere.
    let all: Vec<OutPoint> = wallet.bdk().list_unspent().map(|u| u.outpoint).collect();
    assert!(matches!(
        build_child(&mut wallet, &parent, rate, &all).await,
        Err(ChildError::Wallet(WalletError::Build { .. }))
    ));
    // A parent without a P2A output.
    let mut no_anchor = parent.clone();
    no_anchor.output.pop();
    assert!(matches!(
        build_child(&mut wallet, &no_anchor, rate, &[]).await,
        Err(ChildError::NoAnchor(_))
    ));

    let child = build_child(&mut wallet, &parent, rate, &[])
        .await
        .expect("child");
    assert_eq!(child.version, transaction::Version(3));
    let anchor = OutPoint::new(parent.compute_txid(), 1);
    let p2a_in = child
        .input
        .iter()
        .find(|i| i.previous_output == anchor)
        .expect("spends the anchor");
    assert!(p2a_in.witness.is_empty());
    assert_eq!(parent.output[1].script_pubkey.as_bytes(), P2A_SCRIPT);
    let vsize = child.vsize() as u64;
    assert!(vsize <= MAX_CHILD_VSIZE, "{vsize}");
    // Its fee covers both at the rate, with no more than a few vbytes to spare.
    let spent: Amount = {
        let mut total = Amount::ZERO;
        for input in &child.input {
            if input.previous_output == anchor {
                continue;
            }
            let tx = bitcoin
                .transaction(&input.previous_output.txid)
                .await
                .expect("read")
                .expect("known");
            total += tx.output[input.previous_output.vout as usize].value;
        }
        total
    };
    let fee = spent - child.output.iter().map(|o| o.value).sum::<Amount>();
    let both = parent.vsize() as u64 + vsize;
    assert!(
        fee >= rate.fee_vb(both).expect("fee"),
        "{fee} for {both} vB"
    );
    assert!(
        fee <= rate.fee_vb(both + 10).expect("fee"),
        "{fee} for {both} vB"
    );

    let txids = bitcoin
        .broadcast_package(&[parent.clone(), child.clone()])
        .await
        .expect("the package enters the mempool");
    assert_eq!(txids, vec![parent.compute_txid(), child.compute_txid()]);
    let to = address.clone();
    let mined = blocking(&client, move |c| {
        c.generate_to_address(1, &to).expect("mine")
    })
    .await;
    for tx in [&parent, &child] {
        match bitcoin.tx_status(&tx.compute_txid()).await.expect("status") {
            TxStatus::Confirmed { block_hash, .. } => assert_eq!(block_hash, mined[0]),
            other => panic!("{} not mined: {other:?}", tx.compute_txid()),
        }
    }
    assert_ne!(child.compute_txid().to_byte_array(), [0; 32]);
}
