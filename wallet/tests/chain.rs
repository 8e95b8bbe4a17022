//! The wallet against the embedded regtest chain (Bitcoin Core's consensus engine) served over
//! JSON-RPC as `fiamma regtest` serves it: created from a fresh mnemonic and sealed, funded by
//! mining, synced, paying, reopened from its sealed file; a watch-only copy whose PSBTs a
//! separate signer signs; a script-path spend of a taproot leaf signed through the PSBT's key
//! origin. Every transaction is mined into a block the engine accepts.

use std::sync::Arc;

use bdk_bitcoind_rpc::bitcoincore_rpc::{Auth, Client, RpcApi};
use bdk_wallet::KeychainKind;
use bitcoin::absolute::LockTime;
use bitcoin::opcodes::all::OP_CHECKSIG;
use bitcoin::script::Builder;
use bitcoin::secp256k1::SECP256K1;
use bitcoin::taproot::{LeafVersion, TaprootBuilder};
use bitcoin::transaction::Version;
use bitcoin::{Amount, FeeRate, Network, OutPoint, Sequence, Transaction, TxIn, TxOut, Witness};
use fiamma_btc::rpc_server::{self, RpcAuth};
use fiamma_btc::{EmbeddedBackend, RegtestChain};
use fiamma_role::keystore::MIN_WORK_FACTOR;
use fiamma_role::SecretString;
use fiamma_wallet::wallet::Sealing;
use fiamma_wallet::{psbt, Wallet, WalletError, WalletKeys, WalletStore};

const USER: &str = "fiamma";
const PASSWORD: &str = "s3cret";

struct Chain {
    client: Arc<Client>,
    _server: rpc_server::RpcServer,
    _embedded: EmbeddedBackend,
}

async fn chain() -> Chain {
    let embedded = EmbeddedBackend::new(RegtestChain::in_memory().expect("chain"));
    let auth = RpcAuth {
        user: USER.into(),
        password: PASSWORD.into(),
    };
    let server = rpc_server::spawn(
        "127.0.0.1:0".parse().expect("addr"),
        embedded.shared(),
        &auth,
    )
    .await
    .expect("bind");
    let url = format!("http://{}", server.addr);
    let client = Client::new(&url, Auth::UserPass(USER.into(), PASSWORD.into())).expect("client");
    Chain {
        client: Arc::new(client),
        _server: server,
        _embedded: embedded,
    }
}

impl Chain {
    async fn mine(&self, n: u64, to: &bitcoin::Address) {
        let (client, to) = (self.client.clone(), to.clone());
        tokio::task::spawn_blocking(move || client.generate_to_address(n, &to).expect("mine"))
            .await
            .expect("task");
    }

    async fn broadcast(&self, tx: &Transaction) -> bitcoin::Txid {
        let (client, tx) = (self.client.clone(), tx.clone());
        tokio::task::spawn_blocking(move || client.send_raw_transaction(&tx))
            .await
            .expect("task")
            .expect("the mempool accepts it")
    }

    /// Mines one block and checks `txid` is in it (accepted by the consensus engine).
    async fn confirm(&self, txid: bitcoin::Txid, to: &bitcoin::Address) {
        self.mine(1, to).await;
        let client = self.client.clone();
        let info =
            tokio::task::spawn_blocking(move || client.get_raw_transaction_info(&txid, None))
                .await
                .expect("task")
                .expect("known");
        assert_eq!(info.confirmations, Some(1), "{txid} is mined");
    }
}

/// A key no wallet here holds.
fn foreign(seed: u8) -> bitcoin::secp256k1::XOnlyPublicKey {
    bitcoin::secp256k1::Keypair::from_seckey_slice(SECP256K1, &[seed; 32])
        .expect("key")
        .x_only_public_key()
        .0
}

fn pass(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn rate() -> FeeRate {
    FeeRate::from_sat_per_vb(2).expect("rate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_wallet_is_funded_pays_and_reopens_with_its_passphrase_only() {
    let chain = chain().await;
    let dir = tempfile::tempdir().expect("dir");
    let url = fiamma_role::store::sqlite_url(&dir.path().join("wallet.sqlite"));
    let secret = dir.path().join("wallet.age");
    let keys = WalletKeys::generate().expect("keys");
    let mut wallet = Wallet::create(
        WalletStore::open(&url, "staker").await.expect("store"),
        Network::Regtest,
        &keys,
        Some(Sealing {
            path: &secret,
            passphrase: &pass("pw"),
            work_factor: MIN_WORK_FACTOR,
        }),
    )
    .await
    .expect("created");
    assert!(!wallet.is_watch_only());
    // A second create over it changes nothing.
    assert!(matches!(
        Wallet::create(
            WalletStore::open(&url, "staker").await.expect("store"),
            Network::Regtest,
            &WalletKeys::generate().expect("keys"),
            None
        )
        .await,
        Err(WalletError::Exists(_))
    ));
    let address = wallet.next_address().await.expect("address");
    chain.mine(101, &address).await;
    assert_eq!(wallet.sync(chain.client.clone()).await.expect("sync"), 101);
    // The coinbases of blocks 1 and 2 are 100 deep by the next block: spendable.
    assert_eq!(wallet.balance().confirmed, Amount::from_int_btc(100));

    let payee = bitcoin::Address::p2tr(SECP256K1, foreign(7), None, Network::Regtest);
    let mut payment = wallet
        .build_payment(&[(payee.script_pubkey(), Amount::from_int_btc(1))], rate())
        .await
        .expect("built");
    let tx = wallet.sign_payment(&mut payment).expect("signed");
    let txid = chain.broadcast(&tx).await;
    let miner = bitcoin::Address::p2tr(SECP256K1, foreign(9), None, Network::Regtest);
    chain.confirm(txid, &miner).await;
    wallet.sync(chain.client.clone()).await.expect("sync");
    let spent = wallet.balance().confirmed;
    // One more coinbase matured with that block (all 101 pay the wallet): 150 BTC, less the
    // payment and its fee.
    assert!(
        spent < Amount::from_int_btc(149) && spent > Amount::from_sat(14_899_000_000),
        "{spent}"
    );
    // More than the wallet holds is refused before anything is signed.
    let too_much = wallet
        .build_payment(
            &[(payee.script_pubkey(), Amount::from_int_btc(500))],
            rate(),
        )
        .await
        .expect_err("insufficient funds");
    assert!(
        too_much
            .to_string()
            .to_lowercase()
            .contains("insufficient funds"),
        "{too_much}"
    );
    drop(wallet);

    // Reopened from the store and the sealed file: same coins, signing keys back.
    let wrong = Wallet::open(
        WalletStore::open(&url, "staker").await.expect("store"),
        Network::Regtest,
        &secret,
        &pass("wrong"),
    )
    .await
    .expect_err("wrong passphrase");
    assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");
    let mut wallet = Wallet::open(
        WalletStore::open(&url, "staker").await.expect("store"),
        Network::Regtest,
        &secret,
        &pass("pw"),
    )
    .await
    .expect("reopened");
    assert_eq!(wallet.synced_height(), 102);
    assert_eq!(wallet.balance().confirmed, spent);
    assert!(!wallet.is_watch_only());
    // Without the keys it loads watch-only.
    let watching = Wallet::load(
        WalletStore::open(&url, "staker").await.expect("store"),
        Network::Regtest,
        None,
    )
    .await
    .expect("loads");
    assert!(watching.is_watch_only());
    wallet.sync(chain.client.clone()).await.expect("sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_only_wallet_pays_and_spends_a_leaf_through_a_separate_signer() {
    let chain = chain().await;
    let dir = tempfile::tempdir().expect("dir");
    let url = fiamma_role::store::sqlite_url(&dir.path().join("w.sqlite"));
    // The signer holds the mnemonic (its own store); the watcher only public descriptors.
    let keys = WalletKeys::from_entropy(&[42; 32]).expect("keys");
    let signer = Wallet::create(
        WalletStore::open(&url, "signer").await.expect("store"),
        Network::Regtest,
        &keys,
        None,
    )
    .await
    .expect("signer");
    let public = WalletKeys::from_descriptors(
        &signer.public_descriptor(KeychainKind::External),
        &signer.public_descriptor(KeychainKind::Internal),
    )
    .expect("public descriptors");
    let mut watcher = Wallet::create(
        WalletStore::open(&url, "watcher").await.expect("store"),
        Network::Regtest,
        &public,
        None,
    )
    .await
    .expect("watcher");
    assert!(watcher.is_watch_only());
    let address = watcher.next_address().await.expect("address");
    chain.mine(101, &address).await;
    watcher.sync(chain.client.clone()).await.expect("sync");

    // A taproot output with one leaf `<key> OP_CHECKSIG` for the wallet's key at index 0, as
    // a staking output's leaves name the staker's key.
    let origin = watcher.key_origin(0).expect("origin");
    assert_eq!(origin, signer.key_origin(0).expect("origin"));
    let leaf = Builder::new()
        .push_x_only_key(&origin.key)
        .push_opcode(OP_CHECKSIG)
        .into_script();
    let info = TaprootBuilder::new()
        .add_leaf(0, leaf.clone())
        .expect("leaf")
        .finalize(SECP256K1, fiamma_staking_nums())
        .expect("tree");
    let output = TxOut {
        value: Amount::from_int_btc(2),
        script_pubkey: bitcoin::ScriptBuf::new_p2tr_tweaked(info.output_key()),
    };
    let mut payment = watcher
        .build_payment(&[(output.script_pubkey.clone(), output.value)], rate())
        .await
        .expect("built");
    assert!(matches!(
        watcher.sign(&mut payment),
        Err(WalletError::WatchOnly(_))
    ));
    // The PSBT travels as a file to the signer and back.
    let out = dir.path().join("pay.psbt");
    psbt::write_file(&out, &payment).expect("written");
    let mut at_signer = psbt::read_file(&out).expect("read");
    signer.sign(&mut at_signer).expect("signed");
    let back = dir.path().join("pay.signed.psbt");
    psbt::write_file(&back, &at_signer).expect("written");
    let mut signed = psbt::read_file(&back).expect("read");
    let tx = watcher
        .finalize(&mut signed)
        .expect("finalized by the watcher");
    let funding = chain.broadcast(&tx).await;
    chain.confirm(funding, &address).await;
    let vout = tx
        .output
        .iter()
        .position(|o| *o == output)
        .expect("the output") as u32;

    // Spend the leaf: the watcher exports, the signer signs by key origin, the watcher
    // assembles the witness.
    let spend = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(funding, vout),
            sequence: Sequence::MAX,
            ..TxIn::default()
        }],
        output: vec![TxOut {
            value: Amount::from_int_btc(2) - Amount::from_sat(1_000),
            script_pubkey: address.script_pubkey(),
        }],
    };
    let mut export = psbt::from_unsigned(spend).expect("psbt");
    psbt::add_script_spend(&mut export, 0, output.clone(), &info, &leaf, &origin).expect("filled");
    assert!(psbt::script_signature(&export, 0, &origin.key, &leaf).is_err());
    signer.sign(&mut export).expect("signed");
    let sig = psbt::script_signature(&export, 0, &origin.key, &leaf).expect("signature");
    let control = info
        .control_block(&(leaf.clone(), LeafVersion::TapScript))
        .expect("control block");
    let mut tx = export.unsigned_tx.clone();
    tx.input[0].witness =
        Witness::from_slice(&[sig.as_ref().to_vec(), leaf.to_bytes(), control.serialize()]);
    let txid = chain.broadcast(&tx).await;
    chain.confirm(txid, &address).await;
    watcher.sync(chain.client.clone()).await.expect("sync");
    assert!(
        watcher.bdk().get_tx(txid).is_some(),
        "the watcher sees the spend"
    );
}

/// BIP-341's provably unspendable internal key.
fn fiamma_staking_nums() -> bitcoin::secp256k1::XOnlyPublicKey {
    "50929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0"
        .parse()
        .expect("key")
}
