//! The last known [`SigningView`] of recently registered delegations, so that a covenant
//! member's signatures are checked and counted without reading the delegation first.
//!
//! Only a guess: what a view holds besides the state never changes once registered, and the
//! state is the guard of the statement that counts a signature, which writes nothing when
//! the stored delegation differs; the caller then reads it and tries again. Errors decided on
//! a stale view are still right, since statuses only move forward and signers only grow.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bitcoin::Txid;

use crate::node::store::SigningView;

/// How many delegations are remembered; the oldest registered is forgotten first.
const CAPACITY: usize = 16_384;

/// A bounded map from staking txid to the last known view.
#[derive(Default)]
pub(crate) struct SigningCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    views: HashMap<Txid, SigningView>,
    order: VecDeque<Txid>,
}

impl SigningCache {
    /// The view last stored for `txid`.
    pub(crate) fn get(&self, txid: &Txid) -> Option<SigningView> {
        self.lock().views.get(txid).cloned()
    }

    /// Remembers `view` (replacing an older one for the same delegation).
    pub(crate) fn put(&self, view: SigningView) {
        let mut inner = self.lock();
        let txid = view.staking_txid;
        if inner.views.insert(txid, view).is_none() {
            inner.order.push_back(txid);
            while inner.order.len() > CAPACITY {
                if let Some(old) = inner.order.pop_front() {
                    inner.views.remove(&old);
                }
            }
        }
    }

    /// Forgets `txid`'s view (it proved stale).
    pub(crate) fn forget(&self, txid: &Txid) {
        let mut inner = self.lock();
        if inner.views.remove(txid).is_some() {
            inner.order.retain(|t| t != txid);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent with anything
        // that matters: every entry is only a guess.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::secp256k1::{Keypair, SecretKey, SECP256K1};
    use fiamma_staking::state::DelegationState;

    fn view(i: u32) -> SigningView {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_be_bytes());
        let pk = Keypair::from_secret_key(SECP256K1, &SecretKey::from_slice(&[7; 32]).unwrap())
            .x_only_public_key()
            .0;
        SigningView {
            staking_txid: Txid::from_byte_array(b),
            staker_btc_pk: pk,
            verifier_btc_pk: pk,
            params_version: 0,
            state: DelegationState::new(100, 5),
            covenant_sighashes: None,
        }
    }

    #[test]
    fn keeps_the_latest_capacity_views() {
        let cache = SigningCache::default();
        for i in 0..CAPACITY as u32 + 2 {
            cache.put(view(i));
        }
        assert!(cache.get(&view(0).staking_txid).is_none());
        assert!(cache.get(&view(1).staking_txid).is_none());
        assert!(cache.get(&view(2).staking_txid).is_some());
        cache.put(view(2));
        cache.forget(&view(2).staking_txid);
        assert!(cache.get(&view(2).staking_txid).is_none());
        assert_eq!(cache.lock().order.len(), CAPACITY - 1);
    }
}
