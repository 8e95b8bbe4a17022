//! The V0 identifiable-staking OP_RETURN (PROTOCOL §4):
//! `6a 47 ‖ tag(4) ‖ 0x00 ‖ S(32) ‖ V(32) ‖ u16be(T)`.
//!
//! It lets an indexer recognise a staking transaction without knowing the staker in advance.

use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::script::PushBytesBuf;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Script, ScriptBuf};

use crate::keys::{parse_xonly, KeyError};

/// Length of the pushed payload: tag, version, staker key, verifier key, staking time.
pub const PAYLOAD_LEN: usize = 4 + 1 + 32 + 32 + 2;

/// The only payload version defined.
pub const VERSION_0: u8 = 0;

/// The content of a V0 identifiable-staking OP_RETURN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentifiableStaking {
    /// The network's identifiable-staking tag.
    pub tag: [u8; 4],
    /// The staker's key.
    pub staker: XOnlyPublicKey,
    /// The (single) verifier the stake is delegated to.
    pub verifier: XOnlyPublicKey,
    /// The staking time `T` in blocks.
    pub staking_time: u16,
}

/// Why an output script is not a V0 identifiable-staking OP_RETURN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpReturnError {
    /// The script is not `OP_RETURN` followed by one 71-byte push.
    #[error("script {0} is not OP_RETURN with a 71-byte push")]
    Shape(String),
    /// The tag differs from the configured one.
    #[error("tag {got} differs from the configured tag {want}")]
    Tag {
        /// The tag found.
        got: String,
        /// The configured tag.
        want: String,
    },
    /// A version other than 0.
    #[error("unknown identifiable-staking version {0}")]
    Version(u8),
    /// A key in the payload is not a valid x-only key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A staking time of zero.
    #[error("staking time 0 in the op_return")]
    ZeroStakingTime,
}

impl IdentifiableStaking {
    /// The OP_RETURN output script.
    pub fn script(&self) -> ScriptBuf {
        let mut payload = Vec::with_capacity(PAYLOAD_LEN);
        payload.extend_from_slice(&self.tag);
        payload.push(VERSION_0);
        payload.extend_from_slice(&self.staker.serialize());
        payload.extend_from_slice(&self.verifier.serialize());
        payload.extend_from_slice(&self.staking_time.to_be_bytes());
        // 71 bytes is far below the 520-byte push limit.
        let push = PushBytesBuf::try_from(payload).expect("71 bytes fit a push");
        ScriptBuf::new_op_return(push)
    }

    /// Whether `script` looks like an identifiable-staking OP_RETURN carrying `tag` (right
    /// shape and tag), whatever the rest of its content.
    pub fn carries_tag(script: &Script, tag: &[u8; 4]) -> bool {
        payload(script).is_some_and(|p| &p[..4] == tag)
    }

    /// Parses `script`, requiring the configured `tag`.
    pub fn parse(script: &Script, tag: &[u8; 4]) -> Result<Self, OpReturnError> {
        let p =
            payload(script).ok_or_else(|| OpReturnError::Shape(hex::encode(script.as_bytes())))?;
        if &p[..4] != tag {
            return Err(OpReturnError::Tag {
                got: hex::encode(&p[..4]),
                want: hex::encode(tag),
            });
        }
        if p[4] != VERSION_0 {
            return Err(OpReturnError::Version(p[4]));
        }
        let staker = parse_xonly(&p[5..37])?;
        let verifier = parse_xonly(&p[37..69])?;
        let staking_time = u16::from_be_bytes([p[69], p[70]]);
        if staking_time == 0 {
            return Err(OpReturnError::ZeroStakingTime);
        }
        Ok(IdentifiableStaking {
            tag: *tag,
            staker,
            verifier,
            staking_time,
        })
    }
}

/// The 71-byte payload of `OP_RETURN <71 bytes>`, if the script has exactly that shape.
fn payload(script: &Script) -> Option<&[u8]> {
    let b = script.as_bytes();
    (b.len() == 2 + PAYLOAD_LEN && b[0] == OP_RETURN.to_u8() && b[1] as usize == PAYLOAD_LEN)
        .then(|| &b[2..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::key;

    const TAG: [u8; 4] = *b"fmma";

    fn data() -> IdentifiableStaking {
        IdentifiableStaking {
            tag: TAG,
            staker: key(1),
            verifier: key(2),
            staking_time: 1000,
        }
    }

    #[test]
    fn round_trip() {
        let script = data().script();
        assert_eq!(script.len(), 73);
        assert_eq!(&script.as_bytes()[..2], &[0x6a, 0x47]);
        assert!(IdentifiableStaking::carries_tag(&script, &TAG));
        assert_eq!(IdentifiableStaking::parse(&script, &TAG), Ok(data()));
    }

    #[test]
    fn wrong_tag_version_shape_and_time_are_rejected() {
        let script = data().script();
        assert_eq!(
            IdentifiableStaking::parse(&script, b"bbn1"),
            Err(OpReturnError::Tag {
                got: hex::encode(TAG),
                want: hex::encode(b"bbn1")
            })
        );
        let mut bytes = script.to_bytes();
        bytes[6] = 1;
        assert_eq!(
            IdentifiableStaking::parse(Script::from_bytes(&bytes), &TAG),
            Err(OpReturnError::Version(1))
        );
        assert!(matches!(
            IdentifiableStaking::parse(Script::from_bytes(&bytes[..72]), &TAG),
            Err(OpReturnError::Shape(_))
        ));
        let zero = IdentifiableStaking {
            staking_time: 0,
            ..data()
        };
        assert_eq!(
            IdentifiableStaking::parse(&zero.script(), &TAG),
            Err(OpReturnError::ZeroStakingTime)
        );
        let mut bad_key = script.to_bytes();
        bad_key[7..39].copy_from_slice(&[0xff; 32]);
        assert!(matches!(
            IdentifiableStaking::parse(Script::from_bytes(&bad_key), &TAG),
            Err(OpReturnError::Key(_))
        ));
    }
}
