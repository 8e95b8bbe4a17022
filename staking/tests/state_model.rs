//! Model-based test of the delegation and verifier state machines (`fiamma_staking::state`):
//! random sequences of registrations, covenant signatures, inclusions, spends, tip moves,
//! pending expiry, reorgs and slashings are applied both to the real machines and to a
//! small model written straight from PROTOCOL §8, and every answer is compared: the status,
//! the transitions, the refusals (a wrong refusal fails as surely as a wrong acceptance), the
//! voting power at every height seen, and that the stored record restores to the same state.

use std::collections::BTreeSet;

use bitcoin::secp256k1::{Keypair, Secp256k1, SecretKey, XOnlyPublicKey};
use fiamma_staking::state::{
    AddCovenantSigsError, DelegationState, DelegationStatus as S, RecordInclusionError, Rules,
    SlashVerifierError, Transition, VerifierState,
};
use proptest::prelude::*;

fn key(i: u8) -> XOnlyPublicKey {
    let secp = Secp256k1::signing_only();
    let sk = SecretKey::from_slice(&[i.max(1); 32]).expect("1..=255 repeated is a valid key");
    Keypair::from_secret_key(&secp, &sk).x_only_public_key().0
}

/// The model of one delegation: plain fields, each rule of PROTOCOL §8 written out.
#[derive(Debug, Clone)]
struct Model {
    status: S,
    staking_time: u32,
    unbonding_time: u32,
    registered: u32,
    signers: BTreeSet<XOnlyPublicKey>,
    verified: Option<u32>,
    start: Option<u32>,
    activated: Option<u32>,
    ended: Option<u32>,
}

/// The parameters of one case.
struct Case {
    committee: Vec<XOnlyPublicKey>,
    quorum: u32,
    k: u32,
    expiry: u32,
}

fn t(from: S, to: S, height: u32) -> Transition {
    Transition { from, to, height }
}

impl Model {
    fn new(staking_time: u32, unbonding_time: u32, registered: u32) -> Self {
        Model {
            status: S::Pending,
            staking_time,
            unbonding_time,
            registered,
            signers: BTreeSet::new(),
            verified: None,
            start: None,
            activated: None,
            ended: None,
        }
    }

    fn ended(&self) -> bool {
        matches!(self.status, S::Unbonded | S::Expired)
    }

    fn check_signer(&self, member: XOnlyPublicKey, c: &Case) -> Result<(), AddCovenantSigsError> {
        if !matches!(self.status, S::Pending | S::Verified) {
            return Err(AddCovenantSigsError::NotAcceptingSignatures {
                status: self.status,
            });
        }
        if !c.committee.contains(&member) {
            return Err(AddCovenantSigsError::NotInCommittee { member });
        }
        if self.signers.contains(&member) {
            return Err(AddCovenantSigsError::AlreadySigned { member });
        }
        Ok(())
    }

    fn sign(
        &mut self,
        member: XOnlyPublicKey,
        c: &Case,
        tip: u32,
    ) -> Result<Vec<Transition>, AddCovenantSigsError> {
        self.check_signer(member, c)?;
        self.signers.insert(member);
        let mut out = Vec::new();
        if self.status == S::Pending && self.signers.len() as u32 >= c.quorum {
            self.status = S::Verified;
            self.verified = Some(tip);
            out.push(t(S::Pending, S::Verified, tip));
            out.extend(self.advance(c, tip));
        }
        Ok(out)
    }

    fn include(
        &mut self,
        height: u32,
        c: &Case,
        tip: u32,
    ) -> Result<Vec<Transition>, RecordInclusionError> {
        if self.ended() {
            return Err(RecordInclusionError::Ended {
                status: self.status,
            });
        }
        if let Some(h) = self.start {
            return Err(RecordInclusionError::AlreadyIncluded { height: h });
        }
        if height > tip {
            return Err(RecordInclusionError::AboveTip { height, tip });
        }
        if tip - height < c.k {
            return Err(RecordInclusionError::NotDeepEnough {
                height,
                depth: tip - height,
                k: c.k,
            });
        }
        if u64::from(height) + u64::from(self.staking_time) > u64::from(u32::MAX) {
            return Err(RecordInclusionError::EndHeightOverflow {
                height,
                staking_time: self.staking_time,
            });
        }
        self.start = Some(height);
        Ok(self.advance(c, tip))
    }

    fn advance(&mut self, c: &Case, tip: u32) -> Vec<Transition> {
        let Some(start) = self.start else {
            return Vec::new();
        };
        if self.ended() {
            return Vec::new();
        }
        let end = u64::from(start) + u64::from(self.staking_time);
        if u64::from(tip) + u64::from(self.unbonding_time) >= end {
            let from = self.status;
            self.status = S::Expired;
            self.ended = Some(tip);
            return vec![t(from, S::Expired, tip)];
        }
        if self.status == S::Verified && tip >= start && tip - start >= c.k {
            self.status = S::Active;
            self.activated = Some(tip);
            return vec![t(S::Verified, S::Active, tip)];
        }
        Vec::new()
    }

    fn expire(&mut self, c: &Case, tip: u32) -> Option<Transition> {
        let waiting = matches!(self.status, S::Pending | S::Verified) && self.start.is_none();
        if waiting && u64::from(tip) >= u64::from(self.registered) + u64::from(c.expiry) {
            let from = self.status;
            self.status = S::Expired;
            self.ended = Some(tip);
            return Some(t(from, S::Expired, tip));
        }
        None
    }

    fn spend(&mut self, tip: u32) -> Option<Transition> {
        if self.ended() {
            return None;
        }
        let from = self.status;
        self.status = S::Unbonded;
        self.ended = Some(tip);
        Some(t(from, S::Unbonded, tip))
    }

    fn before_quorum_or_after(&self) -> S {
        if self.verified.is_some() {
            S::Verified
        } else {
            S::Pending
        }
    }

    fn undo_inclusion(&mut self, fork: u32, tip: u32) -> Option<Transition> {
        match self.start {
            Some(start) if start > fork && self.status != S::Unbonded => {
                self.start = None;
                self.activated = None;
                self.ended = None;
                let from = self.status;
                self.status = self.before_quorum_or_after();
                (from != self.status).then(|| t(from, self.status, tip))
            }
            _ => None,
        }
    }

    fn undo_spend(&mut self, tip: u32) -> Option<Transition> {
        if self.status != S::Unbonded {
            return None;
        }
        self.ended = None;
        self.status = if self.activated.is_some() {
            S::Active
        } else {
            self.before_quorum_or_after()
        };
        Some(t(S::Unbonded, self.status, tip))
    }

    fn active_at(&self, h: u32) -> bool {
        self.activated.is_some_and(|a| a <= h) && self.ended.is_none_or(|e| h < e)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Register {
        staking_time: u32,
        unbonding_time: u32,
    },
    Sign {
        delegation: usize,
        member: u8,
    },
    Include {
        delegation: usize,
        back: u32,
    },
    Tip(u32),
    Expire,
    Spend(usize),
    Reorg {
        delegation: usize,
        depth: u32,
    },
    UndoSpend(usize),
    Slash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (1u32..400, 1u32..60).prop_map(|(staking_time, unbonding_time)| Op::Register {
            staking_time,
            unbonding_time
        }),
        4 => (0usize..4, 0u8..8).prop_map(|(delegation, member)| Op::Sign { delegation, member }),
        2 => (0usize..4, 0u32..30).prop_map(|(delegation, back)| Op::Include { delegation, back }),
        3 => (0u32..25).prop_map(Op::Tip),
        1 => Just(Op::Expire),
        1 => (0usize..4).prop_map(Op::Spend),
        1 => (0usize..4, 0u32..12).prop_map(|(delegation, depth)| Op::Reorg { delegation, depth }),
        1 => (0usize..4).prop_map(Op::UndoSpend),
        1 => Just(Op::Slash),
    ]
}

fn rules(c: &Case) -> Rules<'_> {
    Rules {
        covenant_pks: &c.committee,
        covenant_quorum: c.quorum,
        confirmation_depth: c.k,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn delegations_and_verifier_follow_the_model(
        n in 1u8..6,
        quorum_seed in 0u32..6,
        k in 0u32..6,
        expiry in 1u32..40,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let case = Case {
            // Members 1..=n; keys n+1.. are outsiders the machine must refuse.
            committee: (1..=n).map(key).collect(),
            quorum: quorum_seed % u32::from(n) + 1,
            k,
            expiry,
        };
        let r = rules(&case);
        let mut tip = 100u32;
        let mut real: Vec<DelegationState> = Vec::new();
        let mut model: Vec<Model> = Vec::new();
        let mut verifier = VerifierState::registered();
        let mut slashed_at: Option<u32> = None;
        let mut seen_tips = BTreeSet::from([tip]);
        for op in ops {
            match op {
                Op::Register { staking_time, unbonding_time } => {
                    real.push(DelegationState::new(staking_time, unbonding_time).registered_at(tip));
                    model.push(Model::new(staking_time, unbonding_time, tip));
                }
                Op::Sign { delegation, member } if delegation < real.len() => {
                    let m = key(member + 1);
                    prop_assert_eq!(
                        real[delegation].check_covenant_signer(m, &r),
                        model[delegation].check_signer(m, &case)
                    );
                    let got = real[delegation]
                        .add_covenant_signatures(m, &r, tip)
                        .map(|added| added.transitions);
                    let want = model[delegation].sign(m, &case, tip);
                    prop_assert_eq!(got, want);
                }
                Op::Include { delegation, back } if delegation < real.len() => {
                    let height = tip.saturating_sub(back).saturating_add(u32::from(back % 7 == 3));
                    let got = real[delegation].record_inclusion(height, &r, tip);
                    let want = model[delegation].include(height, &case, tip);
                    prop_assert_eq!(got, want);
                }
                Op::Tip(step) => {
                    tip += step;
                    seen_tips.insert(tip);
                    for (d, m) in real.iter_mut().zip(model.iter_mut()) {
                        prop_assert_eq!(d.advance(tip, &r), m.advance(&case, tip));
                    }
                }
                Op::Expire => {
                    for (d, m) in real.iter_mut().zip(model.iter_mut()) {
                        prop_assert_eq!(d.expire_unincluded(tip, expiry), m.expire(&case, tip));
                    }
                }
                Op::Spend(delegation) if delegation < real.len() => {
                    prop_assert_eq!(real[delegation].observe_spend(tip), model[delegation].spend(tip));
                }
                Op::Reorg { delegation, depth } if delegation < real.len() => {
                    let fork = tip.saturating_sub(depth);
                    prop_assert_eq!(
                        real[delegation].undo_inclusion(fork, tip),
                        model[delegation].undo_inclusion(fork, tip)
                    );
                }
                Op::UndoSpend(delegation) if delegation < real.len() => {
                    prop_assert_eq!(real[delegation].undo_spend(tip), model[delegation].undo_spend(tip));
                }
                Op::Slash => {
                    let got = verifier.slash(tip);
                    let want = match slashed_at {
                        Some(height) => Err(SlashVerifierError::AlreadySlashed { height }),
                        None => {
                            slashed_at = Some(tip);
                            Ok(())
                        }
                    };
                    prop_assert_eq!(got, want);
                }
                // An operation on a delegation not registered yet: nothing to do.
                _ => {}
            }
            for (d, m) in real.iter().zip(&model) {
                prop_assert_eq!(d.status(), m.status);
                prop_assert_eq!(d.start_height(), m.start);
                prop_assert_eq!(d.covenant_signers(), &m.signers);
                for &h in &seen_tips {
                    let power = d.is_active_at(h) && verifier.has_power_at(h);
                    let model_power = m.active_at(h) && slashed_at.is_none_or(|s| h < s);
                    prop_assert_eq!(power, model_power, "voting power at {}", h);
                }
                prop_assert_eq!(DelegationState::restore(d.record().clone()), Ok(d.clone()));
            }
        }
    }
}
