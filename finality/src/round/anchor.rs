//! The anchor output of the sequencer's synchronization transaction (`PROTOCOL.md` §10): the
//! round hash and the certificate digest of a final round, published on Bitcoin.
//!
//! The 77-byte payload `"fmma" ‖ 0x00 ‖ u64be(h) ‖ round_hash ‖ sha256(certificate)` is too
//! long for a direct push (at most 75 bytes), so it follows `OP_PUSHDATA1` with a one-byte
//! length, the minimal push for 76..=255 bytes. The script is therefore
//! `6a 4c 4d ‖ payload`, 80 bytes, within Bitcoin Core's 83-byte standard `OP_RETURN` limit.

use bitcoin::opcodes::all::{OP_PUSHDATA1, OP_RETURN};
use bitcoin::{Amount, Script, ScriptBuf, TxOut};
use thiserror::Error;

use super::RoundHash;

/// The tag that marks an anchor payload.
pub const ANCHOR_TAG: [u8; 4] = *b"fmma";
/// The payload version this module writes and reads.
pub const ANCHOR_VERSION: u8 = 0x00;
/// Bytes of the payload: tag, version, round, round hash, certificate digest.
pub const ANCHOR_PAYLOAD_LEN: usize = 4 + 1 + 8 + 32 + 32;
/// The script's first three bytes: `OP_RETURN OP_PUSHDATA1 77`.
pub const ANCHOR_SCRIPT_PREFIX: [u8; 3] = [
    OP_RETURN.to_u8(),
    OP_PUSHDATA1.to_u8(),
    ANCHOR_PAYLOAD_LEN as u8,
];
/// Bytes of the whole output script.
pub const ANCHOR_SCRIPT_LEN: usize = ANCHOR_SCRIPT_PREFIX.len() + ANCHOR_PAYLOAD_LEN;

/// What an anchor output commits to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Anchor {
    /// The round number h.
    pub round: u64,
    /// The round hash the verifiers signed.
    pub round_hash: RoundHash,
    /// `sha256` of the round's finality certificate.
    pub certificate_hash: [u8; 32],
}

/// The script is not an anchor output of this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AnchorError {
    /// The script is not 80 bytes long.
    #[error("anchor script is {0} bytes, expected {ANCHOR_SCRIPT_LEN}")]
    Length(usize),
    /// The script does not start with `OP_RETURN OP_PUSHDATA1 77`.
    #[error("anchor script starts with {}, expected 6a4c4d", hex::encode(.0))]
    Prefix([u8; 3]),
    /// The payload tag is not `fmma`.
    #[error("anchor tag is {}, expected 666d6d61 (\"fmma\")", hex::encode(.0))]
    Tag([u8; 4]),
    /// The payload version is not 0.
    #[error("anchor version {0:#04x} is unknown")]
    Version(u8),
}

impl Anchor {
    /// `"fmma" ‖ 0x00 ‖ u64be(h) ‖ round_hash ‖ sha256(certificate)`.
    pub fn payload(&self) -> [u8; ANCHOR_PAYLOAD_LEN] {
        PayloadBody {
            round: self.round,
            round_hash: self.round_hash.0,
            digest: self.certificate_hash,
        }
        .payload(ANCHOR_VERSION)
    }

    /// The output script `OP_RETURN OP_PUSHDATA1 77 ‖ payload`.
    pub fn script_pubkey(&self) -> ScriptBuf {
        payload_script(&self.payload())
    }

    /// The zero-value output carrying the anchor.
    pub fn txout(&self) -> TxOut {
        TxOut {
            value: Amount::ZERO,
            script_pubkey: self.script_pubkey(),
        }
    }

    /// Reads an anchor back from an output script; only the exact encoding above is accepted.
    pub fn from_script(script: &Script) -> Result<Anchor, AnchorError> {
        let (version, body) = split_payload(script)?;
        if version != ANCHOR_VERSION {
            return Err(AnchorError::Version(version));
        }
        Ok(Anchor {
            round: body.round,
            round_hash: RoundHash(body.round_hash),
            certificate_hash: body.digest,
        })
    }
}

/// The fields after the version byte of every `"fmma"` payload (the §10 anchor and the §13
/// checkpoints): `u64be(h) ‖ round_hash ‖ digest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PayloadBody {
    pub(crate) round: u64,
    pub(crate) round_hash: [u8; 32],
    pub(crate) digest: [u8; 32],
}

impl PayloadBody {
    /// `"fmma" ‖ version ‖ u64be(h) ‖ round_hash ‖ digest`.
    pub(crate) fn payload(&self, version: u8) -> [u8; ANCHOR_PAYLOAD_LEN] {
        let mut payload = [0u8; ANCHOR_PAYLOAD_LEN];
        payload[..4].copy_from_slice(&ANCHOR_TAG);
        payload[4] = version;
        payload[5..13].copy_from_slice(&self.round.to_be_bytes());
        payload[13..45].copy_from_slice(&self.round_hash);
        payload[45..].copy_from_slice(&self.digest);
        payload
    }
}

/// `OP_RETURN OP_PUSHDATA1 77 ‖ payload`.
pub(crate) fn payload_script(payload: &[u8; ANCHOR_PAYLOAD_LEN]) -> ScriptBuf {
    let mut script = Vec::with_capacity(ANCHOR_SCRIPT_LEN);
    script.extend_from_slice(&ANCHOR_SCRIPT_PREFIX);
    script.extend_from_slice(payload);
    ScriptBuf::from_bytes(script)
}

/// Splits an `OP_RETURN OP_PUSHDATA1 77 ‖ "fmma" ‖ version ‖ body` script into its version
/// byte and body, refusing any other length, prefix or tag.
pub(crate) fn split_payload(script: &Script) -> Result<(u8, PayloadBody), AnchorError> {
    let bytes = script.as_bytes();
    if bytes.len() != ANCHOR_SCRIPT_LEN {
        return Err(AnchorError::Length(bytes.len()));
    }
    let (prefix, payload) = bytes.split_at(ANCHOR_SCRIPT_PREFIX.len());
    let digest_at = |at: usize| {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&payload[at..at + 32]);
        digest
    };
    if prefix != ANCHOR_SCRIPT_PREFIX {
        let mut found = [0u8; 3];
        found.copy_from_slice(prefix);
        return Err(AnchorError::Prefix(found));
    }
    if payload[..4] != ANCHOR_TAG {
        let mut found = [0u8; 4];
        found.copy_from_slice(&payload[..4]);
        return Err(AnchorError::Tag(found));
    }
    let mut round = [0u8; 8];
    round.copy_from_slice(&payload[5..13]);
    Ok((
        payload[4],
        PayloadBody {
            round: u64::from_be_bytes(round),
            round_hash: digest_at(13),
            digest: digest_at(45),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::script::PushBytesBuf;
    use proptest::prelude::*;

    fn anchor() -> Anchor {
        Anchor {
            round: 0x0102_0304_0506_0708,
            round_hash: RoundHash([0xaa; 32]),
            certificate_hash: [0xbb; 32],
        }
    }

    #[test]
    fn script_bytes_follow_the_protocol() {
        let script = anchor().script_pubkey();
        let expected = format!(
            "6a4c4d{}00{}{}{}",
            hex::encode(b"fmma"),
            "0102030405060708",
            "aa".repeat(32),
            "bb".repeat(32)
        );
        assert_eq!(hex::encode(script.as_bytes()), expected);
        assert_eq!(script.len(), 80);
        assert_eq!(anchor().payload().len(), 77);
        assert!(script.is_op_return());
        assert_eq!(anchor().txout().value, Amount::ZERO);
    }

    #[test]
    fn push_is_the_minimal_one_rust_bitcoin_builds() {
        let push = PushBytesBuf::try_from(anchor().payload().to_vec()).expect("77 bytes");
        assert_eq!(anchor().script_pubkey(), ScriptBuf::new_op_return(push));
    }

    #[test]
    fn script_round_trips() {
        assert_eq!(Anchor::from_script(&anchor().script_pubkey()), Ok(anchor()));
    }

    #[test]
    fn foreign_scripts_are_refused_with_the_reason() {
        let good = anchor().script_pubkey().into_bytes();
        let with = |index: usize, byte: u8| {
            let mut bytes = good.clone();
            bytes[index] = byte;
            ScriptBuf::from_bytes(bytes)
        };
        assert_eq!(
            Anchor::from_script(&ScriptBuf::from_bytes(good[..79].to_vec())),
            Err(AnchorError::Length(79))
        );
        assert_eq!(
            Anchor::from_script(&with(1, 0x4d)),
            Err(AnchorError::Prefix([0x6a, 0x4d, 0x4d]))
        );
        assert_eq!(
            Anchor::from_script(&with(3, b'b')),
            Err(AnchorError::Tag(*b"bmma"))
        );
        assert_eq!(
            Anchor::from_script(&with(7, 0x01)),
            Err(AnchorError::Version(0x01))
        );
        assert_eq!(
            AnchorError::Tag(*b"bmma").to_string(),
            "anchor tag is 626d6d61, expected 666d6d61 (\"fmma\")"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_anchor_round_trips(round: u64, hash: [u8; 32], certificate: [u8; 32]) {
            let anchor = Anchor { round, round_hash: RoundHash(hash), certificate_hash: certificate };
            prop_assert_eq!(Anchor::from_script(&anchor.script_pubkey()), Ok(anchor));
        }

        #[test]
        fn arbitrary_scripts_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            let script = ScriptBuf::from_bytes(bytes);
            if let Ok(anchor) = Anchor::from_script(&script) {
                prop_assert_eq!(anchor.script_pubkey(), script);
            }
        }
    }
}
