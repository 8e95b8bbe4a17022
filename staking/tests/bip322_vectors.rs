//! BIP-0322 against the spec's vectors (as carried in `tests/data/babylon/pop_vectors.json`):
//! message hashes, the `to_spend` / `to_sign` transaction ids, and a P2WPKH signature made by
//! another implementation.

use std::str::FromStr;

use bitcoin::hashes::Hash;
use bitcoin::{Address, Network, Witness};
use fiamma_staking::bip322::{to_sign, to_spend, verify_simple, Bip322Error, MessageHash};
use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/babylon/pop_vectors.json"
);

fn bip322() -> Value {
    let text = std::fs::read_to_string(VECTORS).expect("pop vectors");
    let json: Value = serde_json::from_str(&text).expect("json");
    json["bip322"].clone()
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("missing {field}"))
}

/// Standard base64 (with padding), enough for the vectors.
fn base64(input: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in input.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64 digit") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn message_hashes_match() {
    let v = bip322();
    assert_eq!(
        MessageHash::hash(b"").to_string(),
        text(&v, "msg_hash_empty")
    );
    assert_eq!(
        MessageHash::hash(b"Hello World").to_string(),
        text(&v, "msg_hash_hello_world")
    );
}

#[test]
fn virtual_transaction_ids_match() {
    let v = bip322();
    let address = Address::from_str("bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l")
        .expect("address")
        .require_network(Network::Bitcoin)
        .expect("mainnet");
    let script = address.script_pubkey();
    for (message, spend_field, sign_field) in [
        (
            &b""[..],
            "to_spend_txid_empty_for_bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l",
            "to_sign_txid_empty",
        ),
        (
            &b"Hello World"[..],
            "to_spend_txid_hello_world",
            "to_sign_txid_hello_world",
        ),
    ] {
        let spend = to_spend(&script, message);
        assert_eq!(spend.compute_txid().to_string(), text(&v, spend_field));
        let sign = to_sign(&spend, Witness::new());
        assert_eq!(sign.compute_txid().to_string(), text(&v, sign_field));
    }
}

#[test]
fn p2wpkh_signature_from_another_implementation_verifies() {
    let case = &bip322()["verify_case"];
    assert_eq!(text(case, "network"), "testnet3");
    let address = Address::from_str(text(case, "address"))
        .expect("address")
        .require_network(Network::Testnet)
        .expect("testnet");
    let message = base64(text(case, "msg_base64"));
    let witness: Witness =
        bitcoin::consensus::deserialize(&base64(text(case, "sig_base64"))).expect("witness");
    assert_eq!(
        verify_simple(&address.script_pubkey(), &message, &witness),
        Ok(())
    );
    let mut other = message.clone();
    other.push(0);
    assert_eq!(
        verify_simple(&address.script_pubkey(), &other, &witness),
        Err(Bip322Error::Invalid)
    );
}
