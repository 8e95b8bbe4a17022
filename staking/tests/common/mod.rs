//! Deterministic keys and Bitcoin Core script verification shared by the integration tests.

use bitcoin::consensus::serialize;
use bitcoin::secp256k1::{Keypair, SecretKey, XOnlyPublicKey, SECP256K1};
use bitcoin::{Transaction, TxOut};
use bitcoinkernel::{PrecomputedTransactionData, ScriptPubkey, VERIFY_ALL};

#[allow(dead_code)] // not every test binary uses it
/// The key pair whose secret key is 32 bytes of `i` (`i` ≥ 1).
pub fn keypair(i: u8) -> Keypair {
    let sk = SecretKey::from_slice(&[i; 32]).expect("1..=255 repeated is a valid scalar");
    Keypair::from_secret_key(SECP256K1, &sk)
}

/// The x-only key of [`keypair`]`(i)`.
#[allow(dead_code)] // not every test binary uses it
pub fn key(i: u8) -> XOnlyPublicKey {
    keypair(i).x_only_public_key().0
}

/// Whether libbitcoinkernel's script interpreter (all flags, taproot included, with the spent
/// output) accepts input 0 of `tx` spending `prevout`.
#[allow(dead_code)] // not every test binary uses it
pub fn kernel_accepts(tx: &Transaction, prevout: &TxOut) -> bool {
    let kernel_tx = bitcoinkernel::Transaction::new(&serialize(tx)).expect("kernel parses tx");
    let script = ScriptPubkey::new(prevout.script_pubkey.as_bytes()).expect("script");
    let amount = i64::try_from(prevout.value.to_sat()).expect("value fits i64");
    let spent = [bitcoinkernel::TxOut::new(&script, amount)];
    let data = PrecomputedTransactionData::new(&kernel_tx, &spent).expect("precomputed data");
    bitcoinkernel::verify(
        &script,
        Some(amount),
        &kernel_tx,
        0,
        Some(VERIFY_ALL),
        &data,
    )
    .is_ok()
}
