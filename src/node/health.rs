//! Whether the node may act on its view of Bitcoin: one shared, typed state with a reason.
//!
//! The chain follower sets it (a reorg deeper than k, a backend that stopped answering); the
//! round closer reads it before each close and skips the close while the node is unhealthy,
//! since the stake table it would close on is frozen or wrong; the gRPC health service
//! follows it. Every change is logged once, with its reason.

use std::sync::Arc;

use tokio::sync::watch;

/// The node's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The node follows Bitcoin and closes rounds.
    Serving,
    /// The node stopped closing rounds until the cause goes away.
    NotServing {
        /// Why, for operators (logged and kept here).
        reason: String,
    },
}

/// The shared health state; cheap to clone. Starts [`Health::Serving`].
#[derive(Debug, Clone)]
pub struct NodeHealth {
    state: Arc<watch::Sender<Health>>,
}

impl Default for NodeHealth {
    fn default() -> Self {
        NodeHealth {
            state: Arc::new(watch::Sender::new(Health::Serving)),
        }
    }
}

impl NodeHealth {
    /// A healthy node.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current state.
    pub fn current(&self) -> Health {
        self.state.borrow().clone()
    }

    /// Why the node is not serving, or `None` when it is.
    pub fn not_serving_reason(&self) -> Option<String> {
        match &*self.state.borrow() {
            Health::Serving => None,
            Health::NotServing { reason } => Some(reason.clone()),
        }
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<Health> {
        self.state.subscribe()
    }

    /// Marks the node serving again; logs when it was not.
    pub fn set_serving(&self) {
        self.state.send_if_modified(|state| {
            if *state == Health::Serving {
                return false;
            }
            tracing::warn!("node healthy again: rounds resume");
            *state = Health::Serving;
            true
        });
    }

    /// Marks the node not serving for `reason`; logs when the state or the reason changed.
    pub fn set_not_serving(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.state.send_if_modified(|state| {
            if matches!(state, Health::NotServing { reason: r } if *r == reason) {
                return false;
            }
            tracing::error!(%reason, "node NOT_SERVING: rounds stop until this clears");
            *state = Health::NotServing { reason };
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_seen_once_and_carry_the_reason() {
        let health = NodeHealth::new();
        let mut rx = health.subscribe();
        assert_eq!(health.current(), Health::Serving);
        health.set_serving();
        assert!(!rx.has_changed().expect("open"), "no change, no wake-up");
        health.set_not_serving("deep reorg");
        assert!(rx.has_changed().expect("open"));
        assert_eq!(
            *rx.borrow_and_update(),
            Health::NotServing {
                reason: "deep reorg".into()
            }
        );
        health.set_not_serving("deep reorg");
        assert!(!rx.has_changed().expect("open"), "same reason, no wake-up");
        assert_eq!(health.not_serving_reason().as_deref(), Some("deep reorg"));
        health.set_serving();
        assert_eq!(*rx.borrow_and_update(), Health::Serving);
        assert_eq!(health.not_serving_reason(), None);
    }
}
