//! The consensus rules one header must meet given the headers before it on its branch:
//! nBits decoding and proof of work (Bitcoin Core's `CheckProofOfWork`), the difficulty a
//! network requires next (`GetNextWorkRequired`), median time past, and the version floor.
//!
//! Everything here is a function of values; the chain decides which ancestors it passes in.

use bitcoin::block::Header;
use bitcoin::consensus::Params;
use bitcoin::pow::{CompactTarget, Target, Work};
use bitcoin::Network;

/// Seconds a header's time may lie ahead of the caller's clock (Bitcoin Core's
/// `MAX_FUTURE_BLOCK_TIME`).
pub const MAX_FUTURE_BLOCK_TIME: u64 = 2 * 60 * 60;

/// Number of preceding headers whose median time a new header must exceed.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// BIP-94 (testnet4): the first header of a retarget period may be at most this many seconds
/// older than its parent, which closes the time-warp attack.
pub const MAX_TIMEWARP: u32 = 600;

/// Read access to the headers before a candidate header, on the candidate's own branch.
pub(crate) trait Ancestry {
    /// The header at `height` on this branch, or `None` when the chain does not hold it
    /// (below the checkpoint).
    fn header_at(&self, height: u32) -> Option<&Header>;
}

/// Why an nBits value does not encode a usable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BitsError {
    /// The sign bit is set on a non-zero mantissa.
    #[error("nbits {0:#010x} encodes a negative target")]
    Negative(u32),
    /// The mantissa shifted by the exponent does not fit in 256 bits.
    #[error("nbits {0:#010x} encodes a target wider than 256 bits")]
    Overflow(u32),
    /// The target is zero, which no hash can meet.
    #[error("nbits {0:#010x} encodes a zero target")]
    Zero(u32),
    /// The target is easier than the network's proof-of-work limit.
    #[error("nbits {0:#010x} encodes a target above the network's proof-of-work limit")]
    AboveLimit(u32),
}

/// Decodes `bits` exactly as Bitcoin Core's `CheckProofOfWork` does and refuses negative,
/// overflowing, zero and above-limit targets.
pub fn target_from_bits(bits: CompactTarget, params: &Params) -> Result<Target, BitsError> {
    let raw = bits.to_consensus();
    let size = raw >> 24;
    // Core applies the sign and overflow tests to the mantissa after the small-size shift.
    let word = if size <= 3 {
        (raw & 0x007f_ffff) >> (8 * (3 - size))
    } else {
        raw & 0x007f_ffff
    };
    if word != 0 && raw & 0x0080_0000 != 0 {
        return Err(BitsError::Negative(raw));
    }
    if word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32)) {
        return Err(BitsError::Overflow(raw));
    }
    if word == 0 {
        return Err(BitsError::Zero(raw));
    }
    // With the sign bit clear and no overflow, rust-bitcoin's decoding equals Core's.
    let target = Target::from_compact(bits);
    // rust-bitcoin's limits are Core's `powLimit` rounded down to a compact value; no compact
    // target lies strictly between the two, so this comparison refuses exactly what Core does.
    if target > params.max_attainable_target {
        return Err(BitsError::AboveLimit(raw));
    }
    Ok(target)
}

/// The nBits Bitcoin Core requires of the header that follows `parent` (at `parent_height`,
/// with [`difficulty_anchor`] `parent_anchor`) with timestamp `time`.
///
/// Mainnet, testnet and signet retarget every 2016 blocks from the period's timespan, clamped to
/// a factor of four and capped at the proof-of-work limit; testnet3/4 and regtest allow a
/// minimum-difficulty header more than 20 minutes after its parent, and otherwise require the
/// last difficulty that was not such an exception; testnet4 retargets from the first header of
/// the period (BIP-94); regtest never retargets. `Err(height)` names an ancestor the rule
/// needs that `ancestry` does not hold.
pub(crate) fn next_work_required(
    params: &Params,
    ancestry: &impl Ancestry,
    parent_height: u32,
    parent: &Header,
    parent_anchor: CompactTarget,
    time: u32,
) -> Result<CompactTarget, u32> {
    let interval = retarget_interval(params);
    let height = parent_height.saturating_add(1);

    if height % interval != 0 {
        if !params.allow_min_difficulty_blocks {
            return Ok(parent.bits);
        }
        if u64::from(time) > u64::from(parent.time) + 2 * params.pow_target_spacing {
            return Ok(pow_limit_bits(params));
        }
        return Ok(parent_anchor);
    }

    if params.no_pow_retargeting {
        return Ok(parent.bits);
    }
    let first_height = height - interval;
    let first = ancestry.header_at(first_height).ok_or(first_height)?;
    // A negative span (timestamps need not increase) clamps to the minimum like any short one.
    let timespan = u64::from(parent.time.saturating_sub(first.time));
    let base_bits = if enforces_bip94(params) {
        first.bits
    } else {
        parent.bits
    };
    Ok(CompactTarget::from_next_work_required(
        base_bits, timespan, params,
    ))
}

/// The nBits Bitcoin Core's minimum-difficulty walk returns when it starts at this header (at
/// `height` with `bits`): the walk steps back over minimum-difficulty exceptions until a period
/// start or a real difficulty, so the answer is this header's own bits when it is either, and
/// otherwise its parent's anchor (`parent_anchor`, `None` where the chain's record begins).
///
/// Kept per header, this makes the walk O(1) instead of up to 2015 steps.
pub(crate) fn difficulty_anchor(
    params: &Params,
    height: u32,
    bits: CompactTarget,
    parent_anchor: Option<CompactTarget>,
) -> CompactTarget {
    if height % retarget_interval(params) == 0 || bits != pow_limit_bits(params) {
        return bits;
    }
    parent_anchor.unwrap_or(bits)
}

/// nBits of the network's proof-of-work limit.
fn pow_limit_bits(params: &Params) -> CompactTarget {
    params.max_attainable_target.to_compact_lossy()
}

/// Number of blocks between difficulty retargets (2016 on every network).
pub(crate) fn retarget_interval(params: &Params) -> u32 {
    // timespan / spacing is 2016 for every network rust-bitcoin defines; the fallback keeps the
    // arithmetic total if a future parameter set were ever out of range.
    u32::try_from(params.difficulty_adjustment_interval()).unwrap_or(u32::MAX)
}

/// Whether the network follows BIP-94 (testnet4): retarget from the period's first header and
/// refuse time-warped period starts.
fn enforces_bip94(params: &Params) -> bool {
    params.network == Network::Testnet4
}

/// BIP-94 (testnet4 only): whether a header at `height` with `time` starts a retarget period
/// more than [`MAX_TIMEWARP`] seconds before its parent's `parent_time`.
pub(crate) fn is_time_warp(params: &Params, height: u32, time: u32, parent_time: u32) -> bool {
    enforces_bip94(params)
        && height % retarget_interval(params) == 0
        && time < parent_time.saturating_sub(MAX_TIMEWARP)
}

/// Median of the timestamps of `parent` and up to ten headers before it (fewer when the chain's
/// record starts later): a new header's time must be strictly greater.
pub(crate) fn median_time_past(
    ancestry: &impl Ancestry,
    parent_height: u32,
    parent: &Header,
) -> u32 {
    let mut times = Vec::with_capacity(MEDIAN_TIME_SPAN);
    times.push(parent.time);
    let mut height = parent_height;
    while times.len() < MEDIAN_TIME_SPAN && height > 0 {
        height -= 1;
        match ancestry.header_at(height) {
            Some(header) => times.push(header.time),
            None => break,
        }
    }
    times.sort_unstable();
    times[times.len() / 2]
}

/// The lowest block version allowed at `height` (BIP-34, BIP-66 and BIP-65 activation
/// heights of the network), or `None` when any version is allowed.
pub(crate) fn minimum_version(params: &Params, height: u32) -> Option<i32> {
    if height >= params.bip65_height {
        Some(4)
    } else if height >= params.bip66_height {
        Some(3)
    } else if height >= params.bip34_height {
        Some(2)
    } else {
        None
    }
}

/// `a + b`, or `None` if the 256-bit sum overflows (rust-bitcoin's `Work` addition does not
/// report overflow in release builds).
pub(crate) fn checked_add_work(a: Work, b: Work) -> Option<Work> {
    let (a, b) = (a.to_le_bytes(), b.to_le_bytes());
    let mut sum = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        sum[i] = s.to_le_bytes()[0];
        carry = s >> 8;
    }
    (carry == 0).then(|| Work::from_le_bytes(sum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Headers by height, for driving the rules without proof of work.
    struct Heights(BTreeMap<u32, Header>);

    impl Ancestry for Heights {
        fn header_at(&self, height: u32) -> Option<&Header> {
            self.0.get(&height)
        }
    }

    fn header(time: u32, bits: u32) -> Header {
        let mut header = bitcoin::constants::genesis_block(Network::Bitcoin).header;
        header.time = time;
        header.bits = CompactTarget::from_consensus(bits);
        header
    }

    #[test]
    fn pow_limits_encode_to_the_known_compact_values() {
        let bits = |network| {
            Params::new(network)
                .max_attainable_target
                .to_compact_lossy()
                .to_consensus()
        };
        assert_eq!(bits(Network::Bitcoin), 0x1d00_ffff);
        assert_eq!(bits(Network::Testnet), 0x1d00_ffff);
        assert_eq!(bits(Network::Signet), 0x1e03_77ae);
        assert_eq!(bits(Network::Regtest), 0x207f_ffff);
    }

    #[test]
    fn bits_decoding_refuses_what_core_refuses() {
        let mainnet = Params::new(Network::Bitcoin);
        let decode = |bits| target_from_bits(CompactTarget::from_consensus(bits), &mainnet);
        assert_eq!(
            decode(0x1d00_ffff),
            Ok(Params::new(Network::Bitcoin).max_attainable_target)
        );
        assert_eq!(decode(0x0480_0001), Err(BitsError::Negative(0x0480_0001)));
        assert_eq!(decode(0xff12_3456), Err(BitsError::Overflow(0xff12_3456)));
        assert_eq!(decode(0x2301_0000), Err(BitsError::Overflow(0x2301_0000)));
        assert_eq!(decode(0x1d00_0000), Err(BitsError::Zero(0x1d00_0000)));
        // A size-1 word shifted to zero is zero even with the sign bit set.
        assert_eq!(decode(0x0180_0012), Err(BitsError::Zero(0x0180_0012)));
        assert_eq!(decode(0x1d01_ffff), Err(BitsError::AboveLimit(0x1d01_ffff)));
        assert_eq!(decode(0x207f_ffff), Err(BitsError::AboveLimit(0x207f_ffff)));
        let regtest = Params::new(Network::Regtest);
        assert!(target_from_bits(CompactTarget::from_consensus(0x207f_ffff), &regtest).is_ok());
    }

    /// A mainnet period of 2016 headers spaced `spacing` seconds apart, all at `bits`.
    fn period(spacing: u32, bits: u32) -> Heights {
        Heights(
            (0..2016)
                .map(|h| (h, header(1_000_000 + h * spacing, bits)))
                .collect(),
        )
    }

    /// The difficulty anchor of every header in `ancestry`, lowest first.
    fn anchor_at(ancestry: &Heights, params: &Params, height: u32) -> CompactTarget {
        let mut anchor = None;
        for (h, header) in ancestry.0.range(..=height) {
            anchor = Some(difficulty_anchor(params, *h, header.bits, anchor));
        }
        anchor.unwrap_or(CompactTarget::from_consensus(0))
    }

    /// nBits required after `parent_height` at `time`.
    fn required(
        ancestry: &Heights,
        params: &Params,
        parent_height: u32,
        time: u32,
    ) -> Result<u32, u32> {
        let parent = ancestry.0[&parent_height];
        let anchor = anchor_at(ancestry, params, parent_height);
        next_work_required(params, ancestry, parent_height, &parent, anchor, time)
            .map(CompactTarget::to_consensus)
    }

    fn retarget(ancestry: &Heights, params: &Params) -> u32 {
        let time = ancestry.0[&2015].time + 600;
        required(ancestry, params, 2015, time).unwrap_or_default()
    }

    #[test]
    fn retarget_keeps_difficulty_when_the_period_took_two_weeks() {
        let mainnet = Params::new(Network::Bitcoin);
        // 2015 gaps of 600 s plus the 600 s the off-by-one leaves out make exactly two weeks.
        let mut chain = period(600, 0x1b04_04cb);
        let last = chain.0.get_mut(&2015).map(|h| h.time += 600);
        assert!(last.is_some());
        assert_eq!(retarget(&chain, &mainnet), 0x1b04_04cb);
    }

    #[test]
    fn retarget_clamps_to_a_factor_of_four() {
        let mainnet = Params::new(Network::Bitcoin);
        let fast = Target::from_compact(CompactTarget::from_consensus(0x1b04_04cb));
        // Periods 16x too fast or too slow move the target by exactly 4x.
        let quick = retarget(&period(37, 0x1b04_04cb), &mainnet);
        assert_eq!(
            quick,
            fast.min_transition_threshold()
                .to_compact_lossy()
                .to_consensus()
        );
        let slow = retarget(&period(9_600, 0x1b04_04cb), &mainnet);
        assert_eq!(
            slow,
            fast.max_transition_threshold(&mainnet)
                .to_compact_lossy()
                .to_consensus()
        );
        // Easing never goes past the proof-of-work limit.
        assert_eq!(retarget(&period(9_600, 0x1d00_ffff), &mainnet), 0x1d00_ffff);
    }

    #[test]
    fn between_retargets_mainnet_and_signet_repeat_the_parent_bits() {
        for network in [Network::Bitcoin, Network::Signet] {
            let params = Params::new(network);
            let chain = period(600, 0x1c00_ffff);
            // Even an hour-late header gets no minimum-difficulty exception here.
            let late = chain.0[&10].time + 3600;
            assert_eq!(required(&chain, &params, 10, late), Ok(0x1c00_ffff));
        }
    }

    #[test]
    fn testnet_allows_minimum_difficulty_after_twenty_minutes() {
        let testnet = Params::new(Network::Testnet);
        let limit = 0x1d00_ffff;
        let mut chain = period(600, 0x1c00_ffff);
        // Heights 5..=9 were minimum-difficulty exceptions.
        for h in 5..10 {
            chain.0.insert(h, header(1_000_000 + h * 600, limit));
        }
        let parent_time = chain.0[&9].time;
        assert_eq!(required(&chain, &testnet, 9, parent_time + 1201), Ok(limit));
        // On time, the walk skips the exceptions back to the real difficulty at height 4.
        assert_eq!(
            required(&chain, &testnet, 9, parent_time + 1200),
            Ok(0x1c00_ffff)
        );
    }

    #[test]
    fn testnet4_retargets_from_the_first_header_of_the_period() {
        let testnet4 = Params::new(Network::Testnet4);
        let mut chain = period(600, 0x1c00_ffff);
        let last = chain.0.get_mut(&2015).map(|h| {
            h.time += 600;
            h.bits = CompactTarget::from_consensus(0x1d00_ffff);
        });
        assert!(last.is_some());
        assert_eq!(retarget(&chain, &testnet4), 0x1c00_ffff);
        // Testnet3 would have retargeted from the exception's minimum difficulty.
        assert_eq!(
            retarget(&chain, &Params::new(Network::Testnet)),
            0x1d00_ffff
        );
    }

    #[test]
    fn the_difficulty_anchor_skips_exceptions_but_not_period_starts() {
        let testnet = Params::new(Network::Testnet);
        let limit = CompactTarget::from_consensus(0x1d00_ffff);
        let real = CompactTarget::from_consensus(0x1c00_ffff);
        let other = CompactTarget::from_consensus(0x1c00_8000);
        assert_eq!(difficulty_anchor(&testnet, 7, real, Some(other)), real);
        assert_eq!(difficulty_anchor(&testnet, 7, limit, Some(other)), other);
        // Where the record begins, an exception anchors itself.
        assert_eq!(difficulty_anchor(&testnet, 7, limit, None), limit);
        // A period start at the limit is a real difficulty, not an exception.
        assert_eq!(difficulty_anchor(&testnet, 4032, limit, Some(other)), limit);
    }

    #[test]
    fn regtest_never_retargets() {
        let regtest = Params::new(Network::Regtest);
        let chain = period(1, 0x207f_ffff);
        assert_eq!(retarget(&chain, &regtest), 0x207f_ffff);
    }

    #[test]
    fn retarget_without_the_period_start_names_the_missing_height() {
        let mainnet = Params::new(Network::Bitcoin);
        let mut chain = period(600, 0x1c00_ffff);
        chain.0.remove(&0);
        let time = chain.0[&2015].time;
        assert_eq!(required(&chain, &mainnet, 2015, time), Err(0));
    }

    #[test]
    fn only_testnet4_refuses_time_warped_period_starts() {
        let testnet4 = Params::new(Network::Testnet4);
        let parent_time = 1_700_000_000;
        assert!(is_time_warp(
            &testnet4,
            4032,
            parent_time - 601,
            parent_time
        ));
        assert!(!is_time_warp(
            &testnet4,
            4032,
            parent_time - 600,
            parent_time
        ));
        // Inside a period, and on other networks, earlier-than-parent times are allowed.
        assert!(!is_time_warp(
            &testnet4,
            4033,
            parent_time - 601,
            parent_time
        ));
        let testnet3 = Params::new(Network::Testnet);
        assert!(!is_time_warp(
            &testnet3,
            4032,
            parent_time - 601,
            parent_time
        ));
    }

    #[test]
    fn median_time_past_takes_the_middle_of_eleven() {
        let times = [10, 3, 7, 1, 9, 2, 8, 4, 6, 5, 11, 100];
        let chain = Heights(
            times
                .iter()
                .enumerate()
                .map(|(h, t)| (h as u32, header(*t, 0x1d00_ffff)))
                .collect(),
        );
        let parent = chain.0[&11];
        // Heights 1..=11 hold 3,7,1,9,2,8,4,6,5,11,100: the median is 6.
        assert_eq!(median_time_past(&chain, 11, &parent), 6);
        // Near the start of the record fewer headers count.
        let parent = chain.0[&2];
        assert_eq!(median_time_past(&chain, 2, &parent), 7);
    }

    #[test]
    fn version_floor_follows_activation_heights() {
        let mainnet = Params::new(Network::Bitcoin);
        assert_eq!(minimum_version(&mainnet, 227_930), None);
        assert_eq!(minimum_version(&mainnet, 227_931), Some(2));
        assert_eq!(minimum_version(&mainnet, 363_725), Some(3));
        assert_eq!(minimum_version(&mainnet, 388_381), Some(4));
    }

    fn work_le(low: &[u8]) -> Work {
        let mut bytes = [0u8; 32];
        bytes[..low.len()].copy_from_slice(low);
        Work::from_le_bytes(bytes)
    }

    #[test]
    fn work_addition_carries_and_reports_overflow() {
        assert_eq!(
            checked_add_work(work_le(&[1]), work_le(&[1])),
            Some(work_le(&[2]))
        );
        assert_eq!(
            checked_add_work(work_le(&[0xff]), work_le(&[1])),
            Some(work_le(&[0, 1]))
        );
        assert_eq!(checked_add_work(work_le(&[0xff; 32]), work_le(&[1])), None);
    }
}
