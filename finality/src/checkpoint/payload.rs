//! The checkpoint payload (§13.4): `"fmma" ‖ kind ‖ u64be(h) ‖ round_hash ‖ state` (77 bytes)
//! in an output `6a 4c 4d ‖ payload` of value 0. It shares the §10 anchor's layout; the byte
//! after the tag tells them apart (0x00 anchor, 0x01 quorum checkpoint, 0x02 recovery
//! checkpoint).

use bitcoin::{Amount, Script, ScriptBuf, TxOut};

use crate::round::anchor::{
    payload_script, split_payload, AnchorError, PayloadBody, ANCHOR_PAYLOAD_LEN,
};
use crate::round::RoundHash;

/// How a checkpoint spent its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckpointKind {
    /// 0x01: the base set's signatures worth at least T (the quorum leaf).
    Quorum,
    /// 0x02: the covenant committee after R blocks (the recovery leaf); readers flag it.
    Recovery,
}

impl CheckpointKind {
    /// The payload byte.
    pub fn byte(self) -> u8 {
        match self {
            CheckpointKind::Quorum => 0x01,
            CheckpointKind::Recovery => 0x02,
        }
    }

    /// The kind of a payload byte, if it is a checkpoint kind.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0x01 => Some(CheckpointKind::Quorum),
            0x02 => Some(CheckpointKind::Recovery),
            _ => None,
        }
    }
}

/// What a checkpoint publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckpointPayload {
    /// Quorum or recovery checkpoint.
    pub kind: CheckpointKind,
    /// The checkpoint round h.
    pub round: u64,
    /// Round h's round hash.
    pub round_hash: RoundHash,
    /// The state root of round h (§13.4; zero when there is no state).
    pub state: [u8; 32],
}

/// Why an output script is not a checkpoint payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Length, prefix or tag are not those of an `"fmma"` payload.
    #[error(transparent)]
    Layout(#[from] AnchorError),
    /// The kind byte is not 0x01 or 0x02 (0x00 is the §10 anchor).
    #[error("payload kind {0:#04x} is not a checkpoint kind")]
    Kind(u8),
}

impl CheckpointPayload {
    /// The 77 payload bytes.
    pub fn payload(&self) -> [u8; ANCHOR_PAYLOAD_LEN] {
        PayloadBody {
            round: self.round,
            round_hash: self.round_hash.0,
            digest: self.state,
        }
        .payload(self.kind.byte())
    }

    /// `6a 4c 4d ‖ payload` (80 bytes).
    pub fn script_pubkey(&self) -> ScriptBuf {
        payload_script(&self.payload())
    }

    /// The zero-value output carrying the payload.
    pub fn txout(&self) -> TxOut {
        TxOut {
            value: Amount::ZERO,
            script_pubkey: self.script_pubkey(),
        }
    }

    /// Reads a payload back; only the exact encoding is accepted.
    ///
    /// # Errors
    /// [`PayloadError`] with the reason.
    pub fn from_script(script: &Script) -> Result<Self, PayloadError> {
        let (kind, body) = split_payload(script)?;
        let kind = CheckpointKind::from_byte(kind).ok_or(PayloadError::Kind(kind))?;
        Ok(CheckpointPayload {
            kind,
            round: body.round,
            round_hash: RoundHash(body.round_hash),
            state: body.digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round::anchor::Anchor;

    #[test]
    fn payload_bytes_and_round_trip() {
        let payload = CheckpointPayload {
            kind: CheckpointKind::Recovery,
            round: 2160,
            round_hash: RoundHash([0xaa; 32]),
            state: [0xbb; 32],
        };
        let script = payload.script_pubkey();
        assert_eq!(
            hex::encode(script.as_bytes()),
            format!(
                "6a4c4d666d6d6102{}{}{}",
                "0000000000000870",
                "aa".repeat(32),
                "bb".repeat(32)
            )
        );
        assert_eq!(CheckpointPayload::from_script(&script), Ok(payload));
        // An anchor is not a checkpoint, and a checkpoint is not an anchor.
        let anchor = Anchor {
            round: 1,
            round_hash: RoundHash([0; 32]),
            certificate_hash: [0; 32],
        };
        assert_eq!(
            CheckpointPayload::from_script(&anchor.script_pubkey()),
            Err(PayloadError::Kind(0))
        );
        assert_eq!(
            Anchor::from_script(&script),
            Err(AnchorError::Version(0x02))
        );
        assert!(matches!(
            CheckpointPayload::from_script(&ScriptBuf::from_bytes(vec![0x6a])),
            Err(PayloadError::Layout(AnchorError::Length(1)))
        ));
    }
}
