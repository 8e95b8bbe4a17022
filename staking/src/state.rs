//! The delegation state machine of PROTOCOL §8 (work in progress).
