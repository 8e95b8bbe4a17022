//! A `bdk_wallet` wallet syncs from the JSON-RPC server through `bdk_bitcoind_rpc`, receives
//! mined coins, and builds, signs and broadcasts a transaction that gets mined.

mod btc_support;

use bdk_bitcoind_rpc::{bitcoincore_rpc::RpcApi, Emitter, NO_EXPECTED_MEMPOOL_TXS};
use bdk_wallet::{KeychainKind, SignOptions, Wallet};
use bitcoin::bip32::Xpriv;
use bitcoin::{Amount, FeeRate, Network};
use bitcoincore_rpc::Client;
use btc_support::{serve, KeyWallet};

fn master(seed: u8) -> Xpriv {
    Xpriv::new_master(Network::Regtest, &[seed; 32]).expect("xprv")
}

fn descriptor(seed: u8, keychain: u32) -> String {
    format!("tr({}/86h/1h/0h/{keychain}/*)", master(seed))
}

/// Feeds every new block and the mempool from the node into the wallet.
fn sync(wallet: &mut Wallet, client: &Client) {
    let tip = wallet.latest_checkpoint();
    let mut emitter = Emitter::new(client, tip.clone(), tip.height(), NO_EXPECTED_MEMPOOL_TXS);
    while let Some(event) = emitter.next_block().expect("next block") {
        wallet
            .apply_block_connected_to(&event.block, event.block_height(), event.connected_to())
            .expect("apply block");
    }
    let mempool = emitter.mempool().expect("mempool");
    wallet.apply_evicted_txs(mempool.evicted);
    wallet.apply_unconfirmed_txs(mempool.update);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bdk_wallet_receives_mined_coins_and_spends_them() {
    let served = serve().await;
    let url = served.url.clone();
    tokio::task::spawn_blocking(move || {
        let client = Client::new(
            &url,
            bitcoincore_rpc::Auth::UserPass(btc_support::USER.into(), btc_support::PASSWORD.into()),
        )
        .expect("client");
        let mut wallet = Wallet::create(descriptor(1, 0), descriptor(1, 1))
            .network(Network::Regtest)
            .create_wallet_no_persist()
            .expect("wallet");
        let address = wallet.reveal_next_address(KeychainKind::External).address;

        client.generate_to_address(101, &address).expect("mine");
        sync(&mut wallet, &client);
        assert_eq!(wallet.latest_checkpoint().height(), 101);
        let balance = wallet.balance();
        // One coinbase has 100 confirmations, the other hundred are immature.
        // Coinbases of blocks 1 and 2 can be spent in block 102 (100 blocks deep); the other
        // 99 are immature.
        assert_eq!(balance.confirmed, Amount::from_int_btc(100));
        assert_eq!(balance.immature, Amount::from_int_btc(50 * 99));

        let payee = KeyWallet::new(9);
        let mut builder = wallet.build_tx();
        builder
            .add_recipient(payee.script(), Amount::from_int_btc(1))
            .fee_rate(FeeRate::from_sat_per_vb(2).expect("rate"));
        let mut psbt = builder.finish().expect("build");
        psbt.sign(&master(1), wallet.secp_ctx()).expect("sign");
        assert!(wallet
            .finalize_psbt(&mut psbt, SignOptions::default())
            .expect("finalize"));
        let tx = psbt.extract_tx().expect("extract");
        let txid = client.send_raw_transaction(&tx).expect("broadcast");

        sync(&mut wallet, &client);
        assert!(client.get_raw_mempool().expect("mempool").contains(&txid));
        let pending = wallet.get_tx(txid).expect("wallet sees its transaction");
        assert!(!pending.chain_position.is_confirmed());

        let block = client.generate_to_address(1, &payee.address).expect("mine")[0];
        sync(&mut wallet, &client);
        let mined = wallet.get_tx(txid).expect("tx");
        assert!(mined.chain_position.is_confirmed());
        let block = client.get_block(&block).expect("block");
        assert!(block.txdata.iter().any(|t| t.compute_txid() == txid));
        let fee = wallet.calculate_fee(&tx).expect("fee");
        // Three mature coinbases at height 102, minus the payment and the fee.
        assert_eq!(
            wallet.balance().confirmed,
            Amount::from_int_btc(150) - Amount::from_int_btc(1) - fee
        );
    })
    .await
    .expect("wallet flow");
}
