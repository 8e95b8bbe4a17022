//! Conformance of EOTS Sign, Verify and Extract with the reference vectors
//! (`tests/data/cosmos-bsn/eots_testdata.json`, or the file named by `FIAMMA_EOTS_VECTORS`, which
//! holds one vector object or an array of them).

use fiamma_finality::eots::{self, PublicRandomness, SecretRandomness, Signature};
use secp256k1::{Keypair, SecretKey, XOnlyPublicKey, SECP256K1};
use serde::Deserialize;

const DEFAULT_VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/cosmos-bsn/eots_testdata.json"
);

#[derive(Debug, Deserialize)]
struct Vector {
    sk: String,
    pk: String,
    sr: String,
    pr: String,
    msg1: String,
    msg2: String,
    sig1: String,
    sig2: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum VectorFile {
    One(Vector),
    Many(Vec<Vector>),
}

fn bytes32(field: &str, hex_str: &str) -> [u8; 32] {
    hex::decode(hex_str)
        .unwrap_or_else(|e| panic!("{field}: bad hex: {e}"))
        .try_into()
        .unwrap_or_else(|_| panic!("{field}: not 32 bytes"))
}

fn load() -> (String, Vec<Vector>) {
    let path = std::env::var("FIAMMA_EOTS_VECTORS").unwrap_or_else(|_| DEFAULT_VECTORS.into());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let vectors = match serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
    {
        VectorFile::One(v) => vec![v],
        VectorFile::Many(v) => v,
    };
    assert!(!vectors.is_empty(), "{path} holds no vectors");
    (path, vectors)
}

/// Every mismatch of one vector, empty when it conforms.
fn check(v: &Vector) -> Vec<String> {
    let mut failures = Vec::new();
    let sk = SecretKey::from_slice(&bytes32("sk", &v.sk)).expect("sk is a valid key");
    let kp = Keypair::from_secret_key(SECP256K1, &sk);
    let pk = XOnlyPublicKey::from_slice(&bytes32("pk", &v.pk)).expect("pk is an x-only key");
    if kp.x_only_public_key().0 != pk {
        failures.push("pk is not the x-only key of sk".to_owned());
    }
    let sr = SecretRandomness::from_byte_array(bytes32("sr", &v.sr)).expect("sr is a scalar");
    let pr = PublicRandomness::from_byte_array(bytes32("pr", &v.pr));
    if sr.public() != pr {
        failures.push(format!("x(sr·G) = {}, expected pr {pr}", sr.public()));
    }
    let m1 = hex::decode(&v.msg1).expect("msg1 hex");
    let m2 = hex::decode(&v.msg2).expect("msg2 hex");
    let sig1 = Signature::from_byte_array(bytes32("sig1", &v.sig1));
    let sig2 = Signature::from_byte_array(bytes32("sig2", &v.sig2));
    for (name, msg, sig) in [("sig1", &m1, sig1), ("sig2", &m2, sig2)] {
        let signed = eots::sign(&kp, &sr, msg);
        if signed != sig {
            failures.push(format!("sign gives {name} = {signed}, expected {sig}"));
        }
        if let Err(e) = eots::verify(&pk, &pr, msg, &sig) {
            failures.push(format!("{name}: {e}"));
        }
    }
    if eots::verify(&pk, &pr, &m2, &sig1).is_ok() {
        failures.push("sig1 verifies for msg2".to_owned());
    }
    match eots::extract(&pk, &pr, &m1, &sig1, &m2, &sig2) {
        Ok(key) if key == sk || key == sk.negate() => {}
        Ok(key) => failures.push(format!(
            "extract gives {}, neither sk nor n − sk",
            hex::encode(key.secret_bytes())
        )),
        Err(e) => failures.push(format!("extract: {e}")),
    }
    failures
}

#[test]
fn eots_vectors_sign_verify_and_extract() {
    let (path, vectors) = load();
    let failures: Vec<String> = vectors
        .iter()
        .enumerate()
        .flat_map(|(i, v)| {
            check(v)
                .into_iter()
                .map(move |f| format!("vector {i}: {f}"))
        })
        .collect();
    assert!(failures.is_empty(), "{path}:\n{}", failures.join("\n"));
}

#[test]
fn reference_key_has_odd_y_so_extraction_yields_its_negation() {
    // The bundled vector's key has an odd-y public key; extraction returns n − sk, which is the
    // same x-only key. This pins down the documented behaviour of `extract`.
    let text = std::fs::read_to_string(DEFAULT_VECTORS).expect("bundled vectors");
    let v: Vector = serde_json::from_str(&text).expect("one vector");
    let sk = SecretKey::from_slice(&bytes32("sk", &v.sk)).expect("valid key");
    let (pk, parity) = sk.x_only_public_key(SECP256K1);
    assert_eq!(parity, secp256k1::Parity::Odd);
    let sr = SecretRandomness::from_byte_array(bytes32("sr", &v.sr)).expect("scalar");
    let key = eots::extract(
        &pk,
        &sr.public(),
        &hex::decode(&v.msg1).expect("hex"),
        &Signature::from_byte_array(bytes32("sig1", &v.sig1)),
        &hex::decode(&v.msg2).expect("hex"),
        &Signature::from_byte_array(bytes32("sig2", &v.sig2)),
    )
    .expect("extracts");
    assert_eq!(key, sk.negate());
    assert_eq!(key.x_only_public_key(SECP256K1).0, pk);
}
