//! The two leaves of a checkpoint output (§13.3), built byte by byte and parsed back strictly.
//!
//! ```text
//! quorum(set) = 00 ‖ for each (kᵢ, wᵢ) ascending: 7c 20 <kᵢ> ac 63 num(wᵢ) 93 68 ‖ 03 555555 a2
//! recovery    = multisig(C, q, verify = true) ‖ num(R) b2
//! ```
//!
//! In `quorum`, the accumulator starts at 0 above the signature slots; each block swaps it
//! under the next slot, `CHECKSIG` turns the slot into 1 (valid signature) or 0 (empty slot;
//! a non-empty invalid signature fails the script, BIP-0342), and `IF` adds the weight. The
//! script ends with the single element `acc ≥ T`, as tapscript's MINIMALIF and clean-stack
//! rules require.

use bitcoin::opcodes::all::{
    OP_ADD, OP_CHECKSIG, OP_CHECKSIGADD, OP_CHECKSIGVERIFY, OP_CSV, OP_ENDIF,
    OP_GREATERTHANOREQUAL, OP_IF, OP_NUMEQUALVERIFY, OP_PUSHBYTES_0, OP_PUSHBYTES_32, OP_SWAP,
};
use bitcoin::{Script, ScriptBuf};
use fiamma_staking::keys::sorted_keys;
use fiamma_staking::script::{check_timelock, multisig_script, push_num, ScriptError};
use secp256k1::XOnlyPublicKey;

use super::weights::{CheckpointSet, SetError, SetMember, THRESHOLD};

/// Bytes of one member's block: `7c 20 <k> ac 63 num(w) 93 68`, with num(w) of 1 to 4 bytes.
const MAX_BLOCK_LEN: usize = 42;

/// `quorum(set)`: 42 bytes per member at most, 42n + 6 in all.
pub fn quorum_script(set: &CheckpointSet) -> ScriptBuf {
    let mut script = Vec::with_capacity(MAX_BLOCK_LEN * set.len() + 6);
    script.push(OP_PUSHBYTES_0.to_u8());
    for member in set.members() {
        script.push(OP_SWAP.to_u8());
        script.push(OP_PUSHBYTES_32.to_u8());
        script.extend_from_slice(&member.key.serialize());
        script.push(OP_CHECKSIG.to_u8());
        script.push(OP_IF.to_u8());
        push_num(&mut script, member.weight);
        script.push(OP_ADD.to_u8());
        script.push(OP_ENDIF.to_u8());
    }
    push_num(&mut script, THRESHOLD);
    script.push(OP_GREATERTHANOREQUAL.to_u8());
    ScriptBuf::from_bytes(script)
}

/// Why a leaf script is not one of the checkpoint templates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptParseError {
    /// The bytes do not follow the template; `at` is the offset where they stop matching.
    #[error("leaf script does not follow the {template} template at byte {at}")]
    Template {
        /// `quorum` or `recovery`.
        template: &'static str,
        /// Offset of the first byte that does not fit.
        at: usize,
    },
    /// A key in the script is not a valid x-only key.
    #[error("bytes at {at} are not a valid x-only key")]
    Key {
        /// Offset of the key.
        at: usize,
    },
    /// The members do not form a set (order, weights, total).
    #[error(transparent)]
    Set(#[from] SetError),
    /// The recovery leaf's keys, quorum or timelock are invalid.
    #[error(transparent)]
    Recovery(#[from] ScriptError),
    /// The recovery keys are not strictly ascending or repeat.
    #[error("recovery leaf keys are not strictly ascending")]
    RecoveryKeyOrder,
}

/// A byte cursor over a leaf script.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    template: &'static str,
}

impl<'a> Cursor<'a> {
    fn fail(&self) -> ScriptParseError {
        ScriptParseError::Template {
            template: self.template,
            at: self.at,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn byte(&mut self, expected: u8) -> Result<(), ScriptParseError> {
        if self.peek() == Some(expected) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.fail())
        }
    }

    fn key(&mut self) -> Result<XOnlyPublicKey, ScriptParseError> {
        self.byte(OP_PUSHBYTES_32.to_u8())?;
        let at = self.at;
        let bytes = self.bytes.get(at..at + 32).ok_or_else(|| self.fail())?;
        let key = XOnlyPublicKey::from_slice(bytes).map_err(|_| ScriptParseError::Key { at })?;
        self.at += 32;
        Ok(key)
    }

    /// A minimal positive script number of at most 4 bytes (num(x) of PROTOCOL §1).
    fn num(&mut self) -> Result<u32, ScriptParseError> {
        let start = self.at;
        let op = self.peek().ok_or_else(|| self.fail())?;
        let value = match op {
            0x51..=0x60 => {
                self.at += 1;
                u32::from(op - 0x50)
            }
            1..=4 => {
                let len = usize::from(op);
                let bytes = self
                    .bytes
                    .get(start + 1..start + 1 + len)
                    .ok_or_else(|| self.fail())?;
                let mut le = [0u8; 4];
                le[..len].copy_from_slice(bytes);
                self.at += 1 + len;
                u32::from_le_bytes(le)
            }
            _ => return Err(self.fail()),
        };
        // Only the minimal encoding of a positive number fits the template.
        let mut canonical = Vec::with_capacity(5);
        push_num(&mut canonical, value);
        if value == 0 || self.bytes[start..self.at] != canonical[..] {
            self.at = start;
            return Err(self.fail());
        }
        Ok(value)
    }

    fn end(&self) -> Result<(), ScriptParseError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(self.fail())
        }
    }
}

/// Parses a leaf as `quorum(set)` and returns the set: keys strictly ascending, weights in
/// 1..=Q written as minimal pushes, Σw ≤ Q, and the threshold exactly `03 555555`.
///
/// # Errors
/// [`ScriptParseError`] naming where the bytes leave the template or why the members are
/// not a set.
pub fn parse_quorum_script(script: &Script) -> Result<CheckpointSet, ScriptParseError> {
    let mut c = Cursor {
        bytes: script.as_bytes(),
        at: 0,
        template: "quorum",
    };
    c.byte(OP_PUSHBYTES_0.to_u8())?;
    let mut members = Vec::new();
    while c.peek() == Some(OP_SWAP.to_u8()) {
        c.at += 1;
        let key = c.key()?;
        c.byte(OP_CHECKSIG.to_u8())?;
        c.byte(OP_IF.to_u8())?;
        let weight = c.num()?;
        c.byte(OP_ADD.to_u8())?;
        c.byte(OP_ENDIF.to_u8())?;
        members.push(SetMember { key, weight });
    }
    if c.num()? != THRESHOLD {
        return Err(c.fail());
    }
    c.byte(OP_GREATERTHANOREQUAL.to_u8())?;
    c.end()?;
    Ok(CheckpointSet::from_members(members)?)
}

/// The recovery leaf: the covenant committee's `q`-of-`n` after `R` blocks (§13.8).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecoveryLeaf {
    keys: Vec<XOnlyPublicKey>,
    quorum: u32,
    blocks: u16,
}

impl RecoveryLeaf {
    /// The leaf for covenant keys `keys` (any order; sorted here), quorum `q` and `R` blocks.
    ///
    /// # Errors
    /// [`ScriptParseError::Recovery`] for a repeated key, an empty list, `q` outside 1..=n
    /// or `R` outside 1..=65535.
    pub fn new(
        keys: &[XOnlyPublicKey],
        quorum: u32,
        blocks: u32,
    ) -> Result<Self, ScriptParseError> {
        let keys = sorted_keys(keys).map_err(|_| ScriptParseError::RecoveryKeyOrder)?;
        let blocks = check_timelock(blocks)?;
        // Validates the key count and quorum.
        multisig_script(&keys, quorum, true)?;
        Ok(RecoveryLeaf {
            keys,
            quorum,
            blocks,
        })
    }

    /// The committee keys, ascending.
    pub fn keys(&self) -> &[XOnlyPublicKey] {
        &self.keys
    }

    /// The quorum q.
    pub fn quorum(&self) -> u32 {
        self.quorum
    }

    /// R: the blocks the base must have been confirmed before this leaf may spend it.
    pub fn blocks(&self) -> u16 {
        self.blocks
    }

    /// `multisig(C, q, verify = true) ‖ num(R) b2`: the script leaves R on the stack, like the
    /// timelock leaf of a staking output.
    pub fn script(&self) -> ScriptBuf {
        // `new` checked keys and quorum, so `multisig_script` cannot fail; an empty script
        // would never verify, should it.
        let mut script = multisig_script(&self.keys, self.quorum, true)
            .map(ScriptBuf::into_bytes)
            .unwrap_or_default();
        push_num(&mut script, u32::from(self.blocks));
        script.push(OP_CSV.to_u8());
        ScriptBuf::from_bytes(script)
    }

    /// Parses a leaf as a recovery leaf: `20 <k> ad` (one key) or
    /// `20 <k₁> ac (20 <kᵢ> ba)* num(q) 9d` with keys strictly ascending, then `num(R) b2`.
    ///
    /// # Errors
    /// [`ScriptParseError`] where the bytes leave the template or the values are invalid.
    pub fn parse(script: &Script) -> Result<Self, ScriptParseError> {
        let mut c = Cursor {
            bytes: script.as_bytes(),
            at: 0,
            template: "recovery",
        };
        let mut keys = vec![c.key()?];
        let quorum = if c.peek() == Some(OP_CHECKSIGVERIFY.to_u8()) {
            c.at += 1;
            1
        } else {
            c.byte(OP_CHECKSIG.to_u8())?;
            while c.peek() == Some(OP_PUSHBYTES_32.to_u8()) {
                keys.push(c.key()?);
                c.byte(OP_CHECKSIGADD.to_u8())?;
            }
            if keys.len() < 2 {
                return Err(c.fail());
            }
            let q = c.num()?;
            c.byte(OP_NUMEQUALVERIFY.to_u8())?;
            q
        };
        let blocks = c.num()?;
        c.byte(OP_CSV.to_u8())?;
        c.end()?;
        if keys
            .windows(2)
            .any(|w| w[0].serialize() >= w[1].serialize())
        {
            return Err(ScriptParseError::RecoveryKeyOrder);
        }
        let leaf = RecoveryLeaf::new(&keys, quorum, blocks)?;
        // Byte equality with the rebuilt leaf rules out any encoding the builder would not
        // produce.
        if leaf.script() != *script {
            return Err(ScriptParseError::Template {
                template: "recovery",
                at: 0,
            });
        }
        Ok(leaf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::testkit::key;
    use crate::checkpoint::weights::WEIGHT_SCALE;

    fn num(n: u32) -> String {
        let mut v = Vec::new();
        push_num(&mut v, n);
        hex::encode(v)
    }

    #[test]
    fn threshold_and_scale_pushes_are_three_bytes() {
        assert_eq!(num(WEIGHT_SCALE), "03ffff7f");
        assert_eq!(num(THRESHOLD), "03555555");
    }

    #[test]
    fn quorum_script_layout_and_round_trip() {
        let set = CheckpointSet::from_powers([(key(1), 1), (key(2), 1), (key(3), 1)]).unwrap();
        let script = quorum_script(&set);
        // Equal thirds: 2796202 = 0x2aaaaa each.
        assert_eq!(script.len(), 3 * 42 + 6);
        let hex = hex::encode(script.as_bytes());
        assert!(hex.starts_with("007c20"));
        assert!(hex.ends_with("ac6303aaaa2a936803555555a2"));
        assert_eq!(parse_quorum_script(&script), Ok(set));
    }

    #[test]
    fn quorum_script_parse_refuses_everything_off_template() {
        let set = CheckpointSet::from_powers([(key(1), 5), (key(2), 1)]).unwrap();
        let good = quorum_script(&set).into_bytes();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            // Flipping a key byte may still give a valid key: then the order or the
            // rebuilt set differs.
            if let Ok(parsed) = parse_quorum_script(Script::from_bytes(&bad)) {
                assert_ne!(parsed, set, "byte {at}");
                assert_eq!(quorum_script(&parsed).as_bytes(), &bad[..], "byte {at}");
            }
        }
        for cut in 0..good.len() {
            assert!(parse_quorum_script(Script::from_bytes(&good[..cut])).is_err());
        }
        let mut longer = good.clone();
        longer.push(0x51);
        assert!(parse_quorum_script(Script::from_bytes(&longer)).is_err());
        // A non-minimal weight push (1 written as 01 01) is off template.
        let one = CheckpointSet::from_powers([(key(1), 1)]).unwrap();
        let minimal = hex::encode(quorum_script(&one).as_bytes());
        let padded = minimal.replace("ac6303ffff7f93", "ac6304ffff7f0093");
        assert_ne!(padded, minimal);
        let padded = ScriptBuf::from_bytes(hex::decode(padded).unwrap());
        assert!(matches!(
            parse_quorum_script(&padded),
            Err(ScriptParseError::Template { .. })
        ));
    }

    #[test]
    fn recovery_leaf_round_trips_and_refuses_bad_values() {
        for (keys, q) in [(vec![key(3)], 1), (vec![key(3), key(1), key(2)], 2)] {
            let leaf = RecoveryLeaf::new(&keys, q, 144).unwrap();
            assert_eq!(RecoveryLeaf::parse(&leaf.script()), Ok(leaf.clone()));
            assert!(hex::encode(leaf.script().as_bytes()).ends_with("029000b2"));
        }
        assert!(RecoveryLeaf::new(&[key(1)], 1, 0).is_err());
        assert!(RecoveryLeaf::new(&[key(1)], 1, 65_536).is_err());
        assert!(RecoveryLeaf::new(&[key(1), key(2)], 3, 10).is_err());
        assert!(RecoveryLeaf::new(&[key(1), key(1)], 1, 10).is_err());
        let quorum = quorum_script(&CheckpointSet::from_powers([(key(1), 1)]).unwrap());
        assert!(RecoveryLeaf::parse(&quorum).is_err());
        let leaf = RecoveryLeaf::new(&[key(1), key(2)], 2, 10).unwrap();
        let bytes = leaf.script().into_bytes();
        for cut in 0..bytes.len() {
            assert!(RecoveryLeaf::parse(Script::from_bytes(&bytes[..cut])).is_err());
        }
    }
}
