//! Script building blocks and the three leaves of a staking output (PROTOCOL §1–2).
//!
//! The scripts are assembled byte by byte so that they match Babylon's exactly; every building
//! block is one of the forms listed in PROTOCOL §2.

use bitcoin::opcodes::all::{
    OP_CHECKSIG, OP_CHECKSIGADD, OP_CHECKSIGVERIFY, OP_CSV, OP_NUMEQUAL, OP_NUMEQUALVERIFY,
    OP_PUSHBYTES_32,
};
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::ScriptBuf;

use crate::keys::StakingKeys;

/// The largest relative timelock a staking script may carry (a 16-bit block count).
pub const MAX_TIMELOCK_BLOCKS: u32 = u16::MAX as u32;

/// Why a script could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The relative timelock is outside `1..=65535` blocks.
    #[error("timelock of {0} blocks is not in 1..=65535")]
    Timelock(u32),
    /// A multisig was asked for with no keys.
    #[error("multisig needs at least one key")]
    NoKeys,
    /// A multisig quorum outside `1..=n`.
    #[error("multisig quorum {quorum} is not in 1..={keys}")]
    Quorum {
        /// The quorum asked for.
        quorum: u32,
        /// The number of keys.
        keys: usize,
    },
}

/// Checks that `blocks` is a valid staking or unbonding time: 1..=65535.
pub fn check_timelock(blocks: u32) -> Result<u16, ScriptError> {
    match u16::try_from(blocks) {
        Ok(t) if t > 0 => Ok(t),
        _ => Err(ScriptError::Timelock(blocks)),
    }
}

/// Appends the minimal script-number push of `n` (PROTOCOL §1: 1..=16 as `OP_1..OP_16`,
/// otherwise little-endian bytes with a sign pad when the top bit is set; 0 is never pushed by
/// the protocol and gives the empty push `00`).
pub fn push_num(script: &mut Vec<u8>, n: u32) {
    if (1..=16).contains(&n) {
        // OP_1 is 0x51, OP_16 is 0x60; n ≤ 16 fits a byte.
        script.push(0x50 + n as u8);
        return;
    }
    let mut bytes = Vec::with_capacity(5);
    let mut rest = n;
    while rest > 0 {
        bytes.push((rest & 0xff) as u8);
        rest >>= 8;
    }
    if bytes.last().is_some_and(|b| b & 0x80 != 0) {
        bytes.push(0x00);
    }
    // At most 5 bytes, so a direct push opcode (the length itself).
    script.push(bytes.len() as u8);
    script.extend_from_slice(&bytes);
}

fn push_key(script: &mut Vec<u8>, key: &XOnlyPublicKey) {
    script.push(OP_PUSHBYTES_32.to_u8());
    script.extend_from_slice(&key.serialize());
}

fn push_sig(script: &mut Vec<u8>, key: &XOnlyPublicKey, verify: bool) {
    push_key(script, key);
    script.push(if verify {
        OP_CHECKSIGVERIFY.to_u8()
    } else {
        OP_CHECKSIG.to_u8()
    });
}

fn push_multisig(script: &mut Vec<u8>, keys: &[XOnlyPublicKey], quorum: u32, verify: bool) {
    if let [only] = keys {
        push_sig(script, only, verify);
        return;
    }
    for (i, key) in keys.iter().enumerate() {
        push_key(script, key);
        script.push(if i == 0 {
            OP_CHECKSIG.to_u8()
        } else {
            OP_CHECKSIGADD.to_u8()
        });
    }
    push_num(script, quorum);
    script.push(if verify {
        OP_NUMEQUALVERIFY.to_u8()
    } else {
        OP_NUMEQUAL.to_u8()
    });
}

/// `sig(pk, verify)`: `20 <pk> ad` when `verify`, else `20 <pk> ac`.
pub fn sig_script(key: &XOnlyPublicKey, verify: bool) -> ScriptBuf {
    let mut script = Vec::with_capacity(34);
    push_sig(&mut script, key, verify);
    ScriptBuf::from_bytes(script)
}

/// `timelock(pk, t)`: `20 <pk> ad <t> b2`, spendable by `pk` once `t` blocks have passed.
pub fn timelock_script(key: &XOnlyPublicKey, blocks: u32) -> Result<ScriptBuf, ScriptError> {
    check_timelock(blocks)?;
    let mut script = Vec::with_capacity(39);
    push_sig(&mut script, key, true);
    push_num(&mut script, blocks);
    script.push(OP_CSV.to_u8());
    Ok(ScriptBuf::from_bytes(script))
}

/// `multisig(keys, q, verify)`: `keys` must already be sorted ascending (see
/// [`crate::keys::sorted_keys`]); a single key becomes `sig(key, verify)`.
pub fn multisig_script(
    keys: &[XOnlyPublicKey],
    quorum: u32,
    verify: bool,
) -> Result<ScriptBuf, ScriptError> {
    if keys.is_empty() {
        return Err(ScriptError::NoKeys);
    }
    if quorum == 0 || quorum as usize > keys.len() {
        return Err(ScriptError::Quorum {
            quorum,
            keys: keys.len(),
        });
    }
    let mut script = Vec::with_capacity(34 * keys.len() + 4);
    push_multisig(&mut script, keys, quorum, verify);
    Ok(ScriptBuf::from_bytes(script))
}

/// Unbonding leaf: `sig(S, verify) ‖ multisig(C, q, false)`.
pub fn unbonding_script(keys: &StakingKeys) -> ScriptBuf {
    let mut script = Vec::with_capacity(34 * (1 + keys.covenants().len()) + 4);
    push_sig(&mut script, &keys.staker(), true);
    push_multisig(&mut script, keys.covenants(), keys.covenant_quorum(), false);
    ScriptBuf::from_bytes(script)
}

/// Slashing leaf: `sig(S, verify) ‖ multisig(V, 1, true) ‖ multisig(C, q, false)`.
pub fn slashing_script(keys: &StakingKeys) -> ScriptBuf {
    let n = 1 + keys.verifiers().len() + keys.covenants().len();
    let mut script = Vec::with_capacity(34 * n + 8);
    push_sig(&mut script, &keys.staker(), true);
    push_multisig(&mut script, keys.verifiers(), 1, true);
    push_multisig(&mut script, keys.covenants(), keys.covenant_quorum(), false);
    ScriptBuf::from_bytes(script)
}

/// The three leaves of a staking output for staking time `T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StakingScripts {
    /// `timelock(S, T)`.
    pub timelock: ScriptBuf,
    /// `sig(S, verify) ‖ multisig(C, q, false)`.
    pub unbonding: ScriptBuf,
    /// `sig(S, verify) ‖ multisig(V, 1, true) ‖ multisig(C, q, false)`.
    pub slashing: ScriptBuf,
}

impl StakingScripts {
    /// Builds the three leaves; `staking_time` must be in 1..=65535 blocks.
    pub fn new(keys: &StakingKeys, staking_time: u32) -> Result<Self, ScriptError> {
        Ok(StakingScripts {
            timelock: timelock_script(&keys.staker(), staking_time)?,
            unbonding: unbonding_script(keys),
            slashing: slashing_script(keys),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::key;

    fn num(n: u32) -> String {
        let mut v = Vec::new();
        push_num(&mut v, n);
        hex::encode(v)
    }

    #[test]
    fn script_numbers_are_minimal() {
        assert_eq!(num(1), "51");
        assert_eq!(num(16), "60");
        assert_eq!(num(17), "0111");
        assert_eq!(num(100), "0164");
        assert_eq!(num(128), "028000");
        assert_eq!(num(1000), "02e803");
        assert_eq!(num(65535), "03ffff00");
    }

    #[test]
    fn push_num_agrees_with_rust_bitcoin() {
        for n in [1u32, 5, 16, 17, 127, 128, 255, 256, 32767, 32768, 65535] {
            let ours = num(n);
            let theirs = bitcoin::script::Builder::new()
                .push_int(i64::from(n))
                .into_script();
            assert_eq!(ours, hex::encode(theirs.as_bytes()), "n = {n}");
        }
    }

    #[test]
    fn timelock_bounds() {
        assert_eq!(timelock_script(&key(1), 0), Err(ScriptError::Timelock(0)));
        assert_eq!(
            timelock_script(&key(1), 65536),
            Err(ScriptError::Timelock(65536))
        );
        let s = timelock_script(&key(1), 65535).unwrap();
        assert!(hex::encode(s.as_bytes()).ends_with("ad03ffff00b2"));
    }

    #[test]
    fn single_key_multisig_is_a_plain_checksig() {
        let k = key(1);
        assert_eq!(
            multisig_script(&[k], 1, true).unwrap(),
            sig_script(&k, true)
        );
        assert_eq!(
            multisig_script(&[k], 1, false).unwrap(),
            sig_script(&k, false)
        );
    }

    #[test]
    fn multisig_shape_and_errors() {
        let keys = crate::keys::sorted_keys(&[key(1), key(2), key(3)]).unwrap();
        let s = multisig_script(&keys, 2, false).unwrap();
        let b = s.as_bytes();
        assert_eq!(b.len(), 3 * 34 + 2);
        assert_eq!(b[33], 0xac);
        assert_eq!(b[67], 0xba);
        assert_eq!(&b[b.len() - 2..], &[0x52, 0x9c]);
        let v = multisig_script(&keys, 2, true).unwrap();
        assert_eq!(v.as_bytes().last(), Some(&0x9d));
        assert_eq!(multisig_script(&[], 1, true), Err(ScriptError::NoKeys));
        assert_eq!(
            multisig_script(&keys, 4, true),
            Err(ScriptError::Quorum { quorum: 4, keys: 3 })
        );
    }
}
