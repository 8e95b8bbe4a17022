//! The delegation and verifier state machines of PROTOCOL §8.
//!
//! A delegation moves PENDING → VERIFIED → ACTIVE → UNBONDED | EXPIRED, and backwards only
//! when Bitcoin takes back the block a step rested on (a reorg: [`DelegationState::undo_inclusion`],
//! [`DelegationState::undo_spend`]). One that is not included k-deep within the params'
//! `pending_expiry_blocks` of its registration goes from PENDING or VERIFIED straight to EXPIRED
//! ([`DelegationState::expire_unincluded`]). The machine decides only from values the caller passes in: the BTC tip height, the rules of the
//! params version the delegation was registered under, and facts already checked elsewhere
//! (that a covenant member's signatures verify, that the staking transaction sits in a k-deep
//! best-chain block, that its output was spent). It performs no I/O and no signature checks.
//!
//! Besides the status it keeps the heights at which the delegation gained and lost voting
//! power, so the voting power table at any past height follows from stored values alone.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use bitcoin::secp256k1::XOnlyPublicKey;

/// Status of a delegation (PROTOCOL §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DelegationStatus {
    /// Registered; the covenant quorum has not signed yet.
    Pending,
    /// Covenant quorum reached; not yet active.
    Verified,
    /// Staking transaction k-deep and `tip + U < end_height`: carries voting power.
    Active,
    /// A spend of the staking output was observed.
    Unbonded,
    /// `tip + U ≥ end_height`, or never included k-deep within `pending_expiry_blocks` of
    /// its registration.
    Expired,
}

impl DelegationStatus {
    /// Every status, in protocol order.
    pub const ALL: [DelegationStatus; 5] = [
        DelegationStatus::Pending,
        DelegationStatus::Verified,
        DelegationStatus::Active,
        DelegationStatus::Unbonded,
        DelegationStatus::Expired,
    ];

    /// The upper-case protocol name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DelegationStatus::Pending => "PENDING",
            DelegationStatus::Verified => "VERIFIED",
            DelegationStatus::Active => "ACTIVE",
            DelegationStatus::Unbonded => "UNBONDED",
            DelegationStatus::Expired => "EXPIRED",
        }
    }

    /// Whether no further transition can leave this status.
    pub fn is_terminal(self) -> bool {
        matches!(self, DelegationStatus::Unbonded | DelegationStatus::Expired)
    }

    /// Position on the one-way path; a transition always increases it.
    fn rank(self) -> u8 {
        match self {
            DelegationStatus::Pending => 0,
            DelegationStatus::Verified => 1,
            DelegationStatus::Active => 2,
            DelegationStatus::Unbonded | DelegationStatus::Expired => 3,
        }
    }
}

impl fmt::Display for DelegationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of PROTOCOL §8's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delegation status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for DelegationStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DelegationStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// One status change, applied with the BTC tip at `height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Status before.
    pub from: DelegationStatus,
    /// Status after.
    pub to: DelegationStatus,
    /// BTC tip height when the change was applied.
    pub height: u32,
}

/// The parts of the delegation's params version that the machine needs (PROTOCOL §7).
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The covenant committee.
    pub covenant_pks: &'a [XOnlyPublicKey],
    /// Distinct committee members whose signatures make the delegation VERIFIED.
    pub covenant_quorum: u32,
    /// k: blocks that must be built on the including block (`tip − height ≥ k`).
    pub confirmation_depth: u32,
}

/// Why a covenant member's signatures cannot be counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddCovenantSigsError {
    /// The key is not in the committee of the delegation's params version.
    #[error("covenant key {member} is not in the committee of this delegation's params version")]
    NotInCommittee {
        /// The submitted key.
        member: XOnlyPublicKey,
    },
    /// The member's signatures are already recorded.
    #[error("covenant member {member} has already signed this delegation")]
    AlreadySigned {
        /// The submitted key.
        member: XOnlyPublicKey,
    },
    /// Signatures are accepted only while PENDING or VERIFIED.
    #[error(
        "delegation is {status}; covenant signatures are accepted only while PENDING or VERIFIED"
    )]
    NotAcceptingSignatures {
        /// The delegation's status.
        status: DelegationStatus,
    },
}

/// Why an inclusion of the staking transaction cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordInclusionError {
    /// An inclusion is already recorded.
    #[error("staking transaction inclusion is already recorded at height {height}")]
    AlreadyIncluded {
        /// The recorded inclusion height.
        height: u32,
    },
    /// The delegation has ended.
    #[error("delegation is {status}; an inclusion can no longer be recorded")]
    Ended {
        /// The delegation's status.
        status: DelegationStatus,
    },
    /// The block is above the tip the caller passed.
    #[error("inclusion height {height} is above the tip {tip}")]
    AboveTip {
        /// The claimed inclusion height.
        height: u32,
        /// The tip height.
        tip: u32,
    },
    /// Fewer than k blocks are built on the including block.
    #[error("staking transaction at height {height} has depth {depth}, below the required {k}")]
    NotDeepEnough {
        /// The inclusion height.
        height: u32,
        /// `tip − height`.
        depth: u32,
        /// The params version's k.
        k: u32,
    },
    /// The end height `height + staking time` does not fit a BTC height.
    #[error("end height overflows: inclusion height {height} + staking time {staking_time}")]
    EndHeightOverflow {
        /// The inclusion height.
        height: u32,
        /// The staking time in blocks.
        staking_time: u32,
    },
}

/// What adding one covenant member's signatures did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CovenantSigsAdded {
    /// Distinct committee members that have signed, this one included.
    pub signatures: u32,
    /// Status changes it caused, in order (at quorum: to VERIFIED, possibly on to ACTIVE).
    pub transitions: Vec<Transition>,
}

/// The stored facts of one delegation, as persisted; [`DelegationState::restore`] checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationRecord {
    /// Current status.
    pub status: DelegationStatus,
    /// Staking time T in blocks.
    pub staking_time_blocks: u32,
    /// Unbonding time U in blocks.
    pub unbonding_time_blocks: u32,
    /// BTC tip height when it was registered: the start of its `pending_expiry_blocks` window.
    pub registered_height: u32,
    /// Committee members whose signatures were counted.
    pub covenant_signers: BTreeSet<XOnlyPublicKey>,
    /// Tip height when the quorum was reached.
    pub verified_height: Option<u32>,
    /// Height of the block including the staking transaction.
    pub start_height: Option<u32>,
    /// Tip height when the delegation became ACTIVE.
    pub activated_height: Option<u32>,
    /// Tip height when it became UNBONDED or EXPIRED.
    pub ended_height: Option<u32>,
}

/// A stored record that no sequence of transitions can produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inconsistent {status} delegation record: {reason}")]
pub struct RestoreError {
    /// The record's status.
    pub status: DelegationStatus,
    /// The broken invariant.
    pub reason: &'static str,
}

/// One delegation's state; every change goes through a method that returns its transitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationState {
    record: DelegationRecord,
}

impl DelegationState {
    /// A newly registered delegation: PENDING, no signatures, not included, registered at
    /// height 0 (see [`registered_at`](Self::registered_at)).
    pub fn new(staking_time_blocks: u32, unbonding_time_blocks: u32) -> Self {
        DelegationState {
            record: DelegationRecord {
                status: DelegationStatus::Pending,
                staking_time_blocks,
                unbonding_time_blocks,
                registered_height: 0,
                covenant_signers: BTreeSet::new(),
                verified_height: None,
                start_height: None,
                activated_height: None,
                ended_height: None,
            },
        }
    }

    /// The same state, registered at BTC tip `height`.
    pub fn registered_at(mut self, height: u32) -> Self {
        self.record.registered_height = height;
        self
    }

    /// Rebuilds a state from stored facts, refusing records that transitions cannot produce.
    pub fn restore(record: DelegationRecord) -> Result<Self, RestoreError> {
        let fail = |reason| {
            Err(RestoreError {
                status: record.status,
                reason,
            })
        };
        let status = record.status;
        if (status == DelegationStatus::Pending) != record.verified_height.is_none()
            && !status.is_terminal()
        {
            return fail("verified height must be set exactly when past PENDING");
        }
        if record.activated_height.is_some() && record.start_height.is_none() {
            return fail("an activated delegation must have an inclusion height");
        }
        if (status == DelegationStatus::Active) != record.activated_height.is_some()
            && !status.is_terminal()
        {
            return fail("activated height must be set exactly when ACTIVE");
        }
        if status.is_terminal() != record.ended_height.is_some() {
            return fail("ended height must be set exactly when UNBONDED or EXPIRED");
        }
        if let (Some(activated), Some(ended)) = (record.activated_height, record.ended_height) {
            if activated > ended {
                return fail("activated after it ended");
            }
        }
        if record.activated_height.is_some() && record.verified_height.is_none() {
            return fail("activated without a covenant quorum");
        }
        Ok(DelegationState { record })
    }

    /// The stored facts, for persisting.
    pub fn record(&self) -> &DelegationRecord {
        &self.record
    }

    /// Current status.
    pub fn status(&self) -> DelegationStatus {
        self.record.status
    }

    /// Distinct covenant members whose signatures were counted.
    pub fn covenant_signers(&self) -> &BTreeSet<XOnlyPublicKey> {
        &self.record.covenant_signers
    }

    /// Height of the block including the staking transaction, once recorded.
    pub fn start_height(&self) -> Option<u32> {
        self.record.start_height
    }

    /// `start_height + T`, once the inclusion is recorded.
    pub fn end_height(&self) -> Option<u32> {
        self.record
            .start_height
            .map(|start| start.saturating_add(self.record.staking_time_blocks))
    }

    /// Whether the delegation counted toward its verifier's voting power at BTC height `h`:
    /// it had become ACTIVE at or before `h` and had not ended by `h`.
    pub fn is_active_at(&self, h: u32) -> bool {
        self.record.activated_height.is_some_and(|a| a <= h)
            && self.record.ended_height.is_none_or(|e| h < e)
    }

    /// Whether [`add_covenant_signatures`](Self::add_covenant_signatures) would count
    /// `member`: still PENDING or VERIFIED, a committee member, not signed yet. Lets a caller
    /// refuse before it spends time verifying signatures.
    pub fn check_covenant_signer(
        &self,
        member: XOnlyPublicKey,
        rules: &Rules<'_>,
    ) -> Result<(), AddCovenantSigsError> {
        let status = self.record.status;
        if !matches!(
            status,
            DelegationStatus::Pending | DelegationStatus::Verified
        ) {
            return Err(AddCovenantSigsError::NotAcceptingSignatures { status });
        }
        if !rules.covenant_pks.contains(&member) {
            return Err(AddCovenantSigsError::NotInCommittee { member });
        }
        if self.record.covenant_signers.contains(&member) {
            return Err(AddCovenantSigsError::AlreadySigned { member });
        }
        Ok(())
    }

    /// Counts `member`'s signatures, which the caller has verified against the delegation's
    /// transactions. At the quorum the delegation becomes VERIFIED and, if its inclusion is
    /// already recorded, is advanced at `tip` at once.
    pub fn add_covenant_signatures(
        &mut self,
        member: XOnlyPublicKey,
        rules: &Rules<'_>,
        tip: u32,
    ) -> Result<CovenantSigsAdded, AddCovenantSigsError> {
        self.check_covenant_signer(member, rules)?;
        let status = self.record.status;
        self.record.covenant_signers.insert(member);
        let signatures = u32::try_from(self.record.covenant_signers.len()).unwrap_or(u32::MAX);
        let mut transitions = Vec::new();
        if status == DelegationStatus::Pending && signatures >= rules.covenant_quorum {
            self.record.verified_height = Some(tip);
            transitions.push(self.move_to(DelegationStatus::Verified, tip));
            transitions.extend(self.advance(tip, rules));
        }
        Ok(CovenantSigsAdded {
            signatures,
            transitions,
        })
    }

    /// Records that the staking transaction sits in the best-chain block at `height`, which
    /// must be k-deep at `tip`; then advances at `tip`.
    pub fn record_inclusion(
        &mut self,
        height: u32,
        rules: &Rules<'_>,
        tip: u32,
    ) -> Result<Vec<Transition>, RecordInclusionError> {
        let status = self.record.status;
        if status.is_terminal() {
            return Err(RecordInclusionError::Ended { status });
        }
        if let Some(recorded) = self.record.start_height {
            return Err(RecordInclusionError::AlreadyIncluded { height: recorded });
        }
        let depth = tip
            .checked_sub(height)
            .ok_or(RecordInclusionError::AboveTip { height, tip })?;
        let k = rules.confirmation_depth;
        if depth < k {
            return Err(RecordInclusionError::NotDeepEnough { height, depth, k });
        }
        let staking_time = self.record.staking_time_blocks;
        if height.checked_add(staking_time).is_none() {
            return Err(RecordInclusionError::EndHeightOverflow {
                height,
                staking_time,
            });
        }
        self.record.start_height = Some(height);
        Ok(self.advance(tip, rules))
    }

    /// Applies the passage of time to `tip`: an included delegation whose `tip + U` reached
    /// its end height EXPIRES; a VERIFIED one whose inclusion is k-deep becomes ACTIVE. A tip
    /// lower than before (a reorg) never moves a delegation back.
    pub fn advance(&mut self, tip: u32, rules: &Rules<'_>) -> Vec<Transition> {
        let mut transitions = Vec::new();
        let (Some(start), Some(end)) = (self.record.start_height, self.end_height()) else {
            return transitions;
        };
        if self.record.status.is_terminal() {
            return transitions;
        }
        if tip.saturating_add(self.record.unbonding_time_blocks) >= end {
            self.record.ended_height = Some(tip);
            transitions.push(self.move_to(DelegationStatus::Expired, tip));
            return transitions;
        }
        let k_deep = tip
            .checked_sub(start)
            .is_some_and(|depth| depth >= rules.confirmation_depth);
        if self.record.status == DelegationStatus::Verified && k_deep {
            self.record.activated_height = Some(tip);
            transitions.push(self.move_to(DelegationStatus::Active, tip));
        }
        transitions
    }

    /// Ends a PENDING or VERIFIED delegation whose staking transaction was not recorded as
    /// included k-deep by `tip ≥ registered_height + expiry_blocks` (the params'
    /// `pending_expiry_blocks`): it becomes EXPIRED and holds nothing any more. Anything else
    /// is left alone.
    pub fn expire_unincluded(&mut self, tip: u32, expiry_blocks: u32) -> Option<Transition> {
        let waiting = matches!(
            self.record.status,
            DelegationStatus::Pending | DelegationStatus::Verified
        ) && self.record.start_height.is_none();
        let deadline = self.record.registered_height.saturating_add(expiry_blocks);
        if !waiting || tip < deadline {
            return None;
        }
        self.record.ended_height = Some(tip);
        Some(self.move_to(DelegationStatus::Expired, tip))
    }

    /// Takes back the inclusion when Bitcoin reorganized away every block above `fork` and
    /// the recorded inclusion height is among them: the inclusion, the activation and an
    /// expiry that followed from them are forgotten and the delegation is back where the
    /// quorum left it (VERIFIED, or PENDING without one). The caller re-proves the inclusion
    /// on the new chain. An UNBONDED delegation keeps its status (it holds no power either
    /// way; its spend is re-checked on its own), and an inclusion at or below `fork` stands.
    pub fn undo_inclusion(&mut self, fork: u32, tip: u32) -> Option<Transition> {
        let start = self.record.start_height?;
        if start <= fork || self.record.status == DelegationStatus::Unbonded {
            return None;
        }
        self.record.start_height = None;
        self.record.activated_height = None;
        self.record.ended_height = None;
        let back = self.quorum_status();
        if back == self.record.status {
            return None;
        }
        Some(self.move_back(back, tip))
    }

    /// Takes back an observed spend when the block holding it left the best chain and the
    /// spend is not in the new one: the delegation returns to the status the spend ended
    /// (ACTIVE if it had been activated, else VERIFIED or PENDING). The caller then
    /// [`advance`](Self::advance)s it, since expiry may have come meanwhile. Anything but
    /// UNBONDED is left alone.
    pub fn undo_spend(&mut self, tip: u32) -> Option<Transition> {
        if self.record.status != DelegationStatus::Unbonded {
            return None;
        }
        self.record.ended_height = None;
        let back = if self.record.activated_height.is_some() {
            DelegationStatus::Active
        } else {
            self.quorum_status()
        };
        Some(self.move_back(back, tip))
    }

    /// VERIFIED once the quorum was reached, else PENDING.
    fn quorum_status(&self) -> DelegationStatus {
        if self.record.verified_height.is_some() {
            DelegationStatus::Verified
        } else {
            DelegationStatus::Pending
        }
    }

    /// A step back, which only a reorg causes.
    fn move_back(&mut self, to: DelegationStatus, height: u32) -> Transition {
        let from = self.record.status;
        debug_assert!(to.rank() < from.rank(), "undo {from} -> {to} goes forwards");
        self.record.status = to;
        Transition { from, to, height }
    }

    /// Applies an observed spend of the staking output: any delegation that has not ended
    /// becomes UNBONDED. A spend of an ended delegation (e.g. the timelock path after
    /// expiry) changes nothing.
    pub fn observe_spend(&mut self, tip: u32) -> Option<Transition> {
        if self.record.status.is_terminal() {
            return None;
        }
        self.record.ended_height = Some(tip);
        Some(self.move_to(DelegationStatus::Unbonded, tip))
    }

    fn move_to(&mut self, to: DelegationStatus, height: u32) -> Transition {
        let from = self.record.status;
        debug_assert!(
            to.rank() > from.rank(),
            "transition {from} -> {to} goes backwards"
        );
        self.record.status = to;
        Transition { from, to, height }
    }
}

/// Status of a verifier (PROTOCOL §8–9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VerifierStatus {
    /// Registered; its ACTIVE delegations carry voting power.
    Registered,
    /// Slashed; its delegations carry no voting power.
    Slashed,
}

impl VerifierStatus {
    /// The upper-case name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifierStatus::Registered => "REGISTERED",
            VerifierStatus::Slashed => "SLASHED",
        }
    }
}

impl fmt::Display for VerifierStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a verifier cannot be slashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlashVerifierError {
    /// It is slashed already.
    #[error("verifier is already slashed since height {height}")]
    AlreadySlashed {
        /// Tip height at which it was slashed.
        height: u32,
    },
}

/// A verifier's slashing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifierState {
    slashed_height: Option<u32>,
}

impl VerifierState {
    /// A registered verifier.
    pub fn registered() -> Self {
        VerifierState::default()
    }

    /// Rebuilds the state from the stored slashing height.
    pub fn restore(slashed_height: Option<u32>) -> Self {
        VerifierState { slashed_height }
    }

    /// Current status.
    pub fn status(&self) -> VerifierStatus {
        if self.slashed_height.is_some() {
            VerifierStatus::Slashed
        } else {
            VerifierStatus::Registered
        }
    }

    /// Tip height at which it was slashed.
    pub fn slashed_height(&self) -> Option<u32> {
        self.slashed_height
    }

    /// Marks the verifier SLASHED at tip `height`; from then on its delegations have no power.
    pub fn slash(&mut self, height: u32) -> Result<(), SlashVerifierError> {
        if let Some(height) = self.slashed_height {
            return Err(SlashVerifierError::AlreadySlashed { height });
        }
        self.slashed_height = Some(height);
        Ok(())
    }

    /// Whether its delegations counted at BTC height `h`.
    pub fn has_power_at(&self, h: u32) -> bool {
        self.slashed_height.is_none_or(|s| h < s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Keypair, Secp256k1, SecretKey};
    use proptest::prelude::*;

    fn key(i: u8) -> XOnlyPublicKey {
        let secp = Secp256k1::signing_only();
        let sk = SecretKey::from_slice(&[i.max(1); 32]).expect("1..=255 repeated is a valid key");
        Keypair::from_secret_key(&secp, &sk).x_only_public_key().0
    }

    fn committee(n: u8) -> Vec<XOnlyPublicKey> {
        (1..=n).map(key).collect()
    }

    fn rules(pks: &[XOnlyPublicKey], quorum: u32, k: u32) -> Rules<'_> {
        Rules {
            covenant_pks: pks,
            covenant_quorum: quorum,
            confirmation_depth: k,
        }
    }

    #[test]
    fn status_names_round_trip() {
        for status in DelegationStatus::ALL {
            assert_eq!(status.as_str().parse::<DelegationStatus>(), Ok(status));
        }
        assert_eq!(
            "active".parse::<DelegationStatus>(),
            Err(UnknownStatus("active".into()))
        );
    }

    #[test]
    fn quorum_makes_the_delegation_verified_exactly_at_q() {
        let pks = committee(9);
        let r = rules(&pks, 5, 6);
        let mut d = DelegationState::new(1000, 100);
        for (i, pk) in pks.iter().take(4).enumerate() {
            let added = d.add_covenant_signatures(*pk, &r, 50).expect("member");
            assert_eq!(added.signatures, i as u32 + 1);
            assert!(added.transitions.is_empty());
            assert_eq!(d.status(), DelegationStatus::Pending);
        }
        let added = d.add_covenant_signatures(pks[4], &r, 50).expect("member");
        assert_eq!(
            added.transitions,
            vec![Transition {
                from: DelegationStatus::Pending,
                to: DelegationStatus::Verified,
                height: 50
            }]
        );
        // Late members are still counted while VERIFIED.
        let added = d.add_covenant_signatures(pks[5], &r, 51).expect("member");
        assert_eq!((added.signatures, added.transitions.len()), (6, 0));
    }

    #[test]
    fn signatures_outside_the_committee_or_repeated_are_refused() {
        let pks = committee(3);
        let r = rules(&pks, 2, 1);
        let mut d = DelegationState::new(1000, 100);
        let outsider = key(77);
        assert_eq!(
            d.add_covenant_signatures(outsider, &r, 1),
            Err(AddCovenantSigsError::NotInCommittee { member: outsider })
        );
        d.add_covenant_signatures(pks[0], &r, 1).expect("member");
        assert_eq!(
            d.add_covenant_signatures(pks[0], &r, 1),
            Err(AddCovenantSigsError::AlreadySigned { member: pks[0] })
        );
        assert_eq!(d.covenant_signers().len(), 1);
    }

    #[test]
    fn whole_life_to_active_then_expired() {
        let pks = committee(3);
        let r = rules(&pks, 2, 6);
        let mut d = DelegationState::new(100, 10);
        d.add_covenant_signatures(pks[0], &r, 200).expect("member");
        d.add_covenant_signatures(pks[1], &r, 200).expect("member");
        assert_eq!(d.status(), DelegationStatus::Verified);
        assert_eq!(
            d.record_inclusion(205, &r, 210),
            Err(RecordInclusionError::NotDeepEnough {
                height: 205,
                depth: 5,
                k: 6
            })
        );
        let t = d.record_inclusion(205, &r, 211).expect("k-deep");
        assert_eq!(t.len(), 1);
        assert_eq!(d.status(), DelegationStatus::Active);
        assert_eq!((d.start_height(), d.end_height()), (Some(205), Some(305)));
        assert!(d.advance(294, &r).is_empty(), "294 + 10 < 305");
        assert_eq!(
            d.advance(295, &r),
            vec![Transition {
                from: DelegationStatus::Active,
                to: DelegationStatus::Expired,
                height: 295
            }]
        );
        assert!(d.is_active_at(211) && d.is_active_at(294));
        assert!(!d.is_active_at(210) && !d.is_active_at(295));
        assert_eq!(d.observe_spend(400), None, "a timelock spend after expiry");
    }

    #[test]
    fn a_spend_unbonds_an_active_delegation() {
        let pks = committee(1);
        let r = rules(&pks, 1, 2);
        let mut d = DelegationState::new(1000, 10);
        d.add_covenant_signatures(pks[0], &r, 5).expect("member");
        d.record_inclusion(6, &r, 8).expect("k-deep");
        assert_eq!(d.status(), DelegationStatus::Active);
        let t = d.observe_spend(20).expect("active delegation unbonds");
        assert_eq!(
            (t.from, t.to),
            (DelegationStatus::Active, DelegationStatus::Unbonded)
        );
        assert_eq!(
            d.add_covenant_signatures(pks[0], &r, 21),
            Err(AddCovenantSigsError::NotAcceptingSignatures {
                status: DelegationStatus::Unbonded
            })
        );
        assert_eq!(
            d.record_inclusion(6, &r, 30),
            Err(RecordInclusionError::Ended {
                status: DelegationStatus::Unbonded
            })
        );
    }

    #[test]
    fn inclusion_before_quorum_activates_at_quorum() {
        let pks = committee(2);
        let r = rules(&pks, 2, 1);
        let mut d = DelegationState::new(1000, 10);
        assert!(d.record_inclusion(10, &r, 12).expect("deep").is_empty());
        d.add_covenant_signatures(pks[0], &r, 13).expect("member");
        let added = d.add_covenant_signatures(pks[1], &r, 13).expect("member");
        let path: Vec<_> = added.transitions.iter().map(|t| t.to).collect();
        assert_eq!(
            path,
            vec![DelegationStatus::Verified, DelegationStatus::Active]
        );
    }

    #[test]
    fn inclusion_already_past_its_window_expires_at_once() {
        let pks = committee(1);
        let r = rules(&pks, 1, 1);
        let mut d = DelegationState::new(20, 10);
        d.add_covenant_signatures(pks[0], &r, 1).expect("member");
        let t = d.record_inclusion(100, &r, 110).expect("deep");
        assert_eq!(
            t.iter().map(|t| t.to).collect::<Vec<_>>(),
            vec![DelegationStatus::Expired]
        );
        assert!(!d.is_active_at(110));
    }

    #[test]
    fn inclusion_above_the_tip_or_overflowing_is_refused() {
        let pks = committee(1);
        let r = rules(&pks, 1, 0);
        let mut d = DelegationState::new(u32::MAX, 10);
        assert_eq!(
            d.record_inclusion(11, &r, 10),
            Err(RecordInclusionError::AboveTip {
                height: 11,
                tip: 10
            })
        );
        assert_eq!(
            d.record_inclusion(10, &r, 10),
            Err(RecordInclusionError::EndHeightOverflow {
                height: 10,
                staking_time: u32::MAX
            })
        );
        assert_eq!(d.start_height(), None);
    }

    #[test]
    fn verifier_is_slashed_once_and_loses_power_from_then_on() {
        let mut v = VerifierState::registered();
        assert_eq!(v.status(), VerifierStatus::Registered);
        v.slash(40).expect("first slashing");
        assert_eq!(v.status(), VerifierStatus::Slashed);
        assert_eq!(
            v.slash(41),
            Err(SlashVerifierError::AlreadySlashed { height: 40 })
        );
        assert!(v.has_power_at(39) && !v.has_power_at(40));
        assert_eq!(VerifierState::restore(v.slashed_height()), v);
    }

    #[test]
    fn restore_refuses_impossible_records() {
        let mut record = DelegationState::new(100, 10).record().clone();
        record.status = DelegationStatus::Active;
        assert!(DelegationState::restore(record.clone()).is_err());
        record.status = DelegationStatus::Unbonded;
        assert!(
            DelegationState::restore(record.clone()).is_err(),
            "no ended height"
        );
        record.ended_height = Some(5);
        assert!(
            DelegationState::restore(record).is_ok(),
            "spent while pending"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Sign(u8),
        Include(u32),
        Advance(u32),
        Spend,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..12).prop_map(Op::Sign),
            1 => (0u32..400).prop_map(Op::Include),
            3 => (0u32..40).prop_map(Op::Advance),
            1 => Just(Op::Spend),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any sequence of inputs moves the status only forward, reports transitions that
        /// chain from the old status to the new one, keeps terminal statuses, counts only
        /// distinct committee members, and leaves a record that restores to the same state.
        #[test]
        fn transitions_only_move_forward(
            n in 1u8..10,
            quorum_seed in 0u32..10,
            k in 0u32..8,
            staking_time in 1u32..300,
            unbonding_time in 1u32..50,
            ops in proptest::collection::vec(op(), 0..40),
        ) {
            let pks = committee(n);
            let quorum = quorum_seed % u32::from(n) + 1;
            let r = rules(&pks, quorum, k);
            let mut d = DelegationState::new(staking_time, unbonding_time);
            let mut tip = 100u32;
            for op in ops {
                let before = d.status();
                let transitions = match op {
                    Op::Sign(i) => {
                        let member = key(i + 1);
                        match d.add_covenant_signatures(member, &r, tip) {
                            Ok(added) => added.transitions,
                            Err(_) => Vec::new(),
                        }
                    }
                    Op::Include(back) => d
                        .record_inclusion(tip.saturating_sub(back), &r, tip)
                        .unwrap_or_default(),
                    Op::Advance(step) => {
                        tip += step;
                        d.advance(tip, &r)
                    }
                    Op::Spend => d.observe_spend(tip).into_iter().collect(),
                };
                let mut at = before;
                for t in &transitions {
                    prop_assert_eq!(t.from, at);
                    prop_assert!(t.to.rank() > t.from.rank());
                    prop_assert_eq!(t.height, tip);
                    at = t.to;
                }
                prop_assert_eq!(at, d.status());
                if before.is_terminal() {
                    prop_assert_eq!(d.status(), before);
                }
                let signers = u32::try_from(d.covenant_signers().len()).unwrap();
                prop_assert!(signers <= u32::from(n));
                prop_assert!(d.covenant_signers().iter().all(|s| pks.contains(s)));
                if d.status() == DelegationStatus::Pending {
                    prop_assert!(signers < quorum);
                }
                if d.status() == DelegationStatus::Active {
                    prop_assert!(d.is_active_at(tip));
                    let end = d.end_height().unwrap();
                    prop_assert!(tip + unbonding_time < end);
                }
                prop_assert_eq!(DelegationState::restore(d.record().clone()), Ok(d.clone()));
            }
        }
    }
}
