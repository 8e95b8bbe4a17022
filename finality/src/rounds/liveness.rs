//! Liveness (`PROTOCOL.md` §11): a verifier in the active set that misses more than
//! `window − min_signed` of its last `window` rounds is jailed.

use std::collections::VecDeque;

/// The liveness parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessRules {
    window: u64,
    min_signed: u64,
    jail_duration: u64,
}

/// Liveness parameters that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LivenessRulesError {
    /// An empty window.
    #[error("the liveness window is empty")]
    EmptyWindow,
    /// More signed rounds required than the window holds.
    #[error("min_signed {min_signed} exceeds the window {window}")]
    MinSignedAboveWindow {
        /// The window.
        window: u64,
        /// The required signed rounds.
        min_signed: u64,
    },
}

impl LivenessRules {
    /// Rules with a window of `window` rounds, at least `min_signed` of them signed, and
    /// `jail_duration` rounds before a jailed verifier may ask to be unjailed.
    ///
    /// # Errors
    /// [`LivenessRulesError`] for an empty window or `min_signed > window`.
    pub fn new(
        window: u64,
        min_signed: u64,
        jail_duration: u64,
    ) -> Result<Self, LivenessRulesError> {
        if window == 0 {
            return Err(LivenessRulesError::EmptyWindow);
        }
        if min_signed > window {
            return Err(LivenessRulesError::MinSignedAboveWindow { window, min_signed });
        }
        Ok(LivenessRules {
            window,
            min_signed,
            jail_duration,
        })
    }

    /// The number of rounds looked back on.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// The least number of signed rounds in the window.
    pub fn min_signed(&self) -> u64 {
        self.min_signed
    }

    /// Rounds a verifier stays jailed before it may ask to be unjailed.
    pub fn jail_duration(&self) -> u64 {
        self.jail_duration
    }

    /// The most rounds that may be missed in the window: `window − min_signed`.
    pub fn max_missed(&self) -> u64 {
        self.window - self.min_signed
    }
}

/// One verifier's record of the last `window` rounds in which it was in the active set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningWindow {
    signed: VecDeque<bool>,
    missed: u64,
}

impl SigningWindow {
    /// Rebuilds a window from stored per-round flags, oldest first (`true` = signed); only the
    /// last `rules.window()` flags are kept.
    pub fn from_flags(flags: impl IntoIterator<Item = bool>, rules: &LivenessRules) -> Self {
        let mut window = SigningWindow::default();
        for signed in flags {
            window.push(signed, rules);
        }
        window
    }

    /// Records whether the verifier signed its latest round and returns whether it has now
    /// missed more than `window − min_signed` of the rounds in the window (jail it). A
    /// verifier that is jailed starts again from an empty window ([`SigningWindow::clear`]).
    pub fn record(&mut self, signed: bool, rules: &LivenessRules) -> bool {
        self.push(signed, rules);
        self.missed > rules.max_missed()
    }

    fn push(&mut self, signed: bool, rules: &LivenessRules) {
        self.signed.push_back(signed);
        self.missed += u64::from(!signed);
        // The window is at most `rules.window` long, so one pop restores it; a loop keeps it
        // right should the rules have shrunk since the window was built.
        while self.signed.len() as u64 > rules.window() {
            if self.signed.pop_front() == Some(false) {
                self.missed -= 1;
            }
        }
    }

    /// Forgets all recorded rounds.
    pub fn clear(&mut self) {
        self.signed.clear();
        self.missed = 0;
    }

    /// Missed rounds in the window.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The recorded flags, oldest first (`true` = signed).
    pub fn flags(&self) -> impl Iterator<Item = bool> + '_ {
        self.signed.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rules_must_be_satisfiable() {
        assert_eq!(
            LivenessRules::new(0, 0, 1),
            Err(LivenessRulesError::EmptyWindow)
        );
        assert_eq!(
            LivenessRules::new(5, 6, 1),
            Err(LivenessRulesError::MinSignedAboveWindow {
                window: 5,
                min_signed: 6
            })
        );
        assert_eq!(LivenessRules::new(5, 5, 0).map(|r| r.max_missed()), Ok(0));
    }

    #[test]
    fn jails_on_the_first_miss_beyond_the_allowance() {
        let rules = LivenessRules::new(5, 3, 10).expect("valid rules");
        let mut w = SigningWindow::default();
        assert!(!w.record(false, &rules));
        assert!(!w.record(true, &rules));
        assert!(!w.record(false, &rules));
        assert!(w.record(false, &rules), "third miss of five > 5 - 3");
    }

    #[test]
    fn old_misses_slide_out_of_the_window() {
        let rules = LivenessRules::new(4, 2, 10).expect("valid rules");
        let mut w = SigningWindow::default();
        for signed in [false, false, true, true] {
            assert!(!w.record(signed, &rules));
        }
        // Each old miss leaves the window as a new one enters.
        for _ in 0..2 {
            assert!(!w.record(false, &rules));
            assert_eq!(w.missed(), 2);
        }
        assert!(
            w.record(false, &rules),
            "three misses in [signed, missed × 3]"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn missed_counts_the_misses_among_the_last_window_rounds(
            flags in proptest::collection::vec(any::<bool>(), 0..60),
            window in 1u64..20,
        ) {
            let rules = LivenessRules::new(window, 0, 0).expect("valid rules");
            let w = SigningWindow::from_flags(flags.iter().copied(), &rules);
            let start = flags.len().saturating_sub(window as usize);
            let expected = flags[start..].iter().filter(|s| !**s).count() as u64;
            prop_assert_eq!(w.missed(), expected);
            prop_assert_eq!(w.flags().collect::<Vec<_>>(), flags[start..].to_vec());
        }
    }
}
