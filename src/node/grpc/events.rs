//! Event streams: replay the event log from the store, then follow live events. The forwarder
//! subscribes before replaying, so nothing committed in between is missed, and re-reads the
//! store if the live feed skips, so the stream has no gaps. The staking and the finality module
//! share it; each brings its own log and message type.
//!
//! Bounds (see [`ServerLimits`]): replay reads pages of [`REPLAY_BATCH`] events, each query
//! holding one of the `max_concurrent_replays` slots, so streams cannot take the handlers' pool;
//! one subscription replays at most `max_replay_events` stored events, then ends
//! RESOURCE_EXHAUSTED saying where to resume; a live subscriber that falls more than the live
//! buffer behind (it does not read) is cut off RESOURCE_EXHAUSTED the same way.

use std::future::Future;

use fiamma_proto::staking::v1 as pb;
use tokio::sync::{broadcast, mpsc};
use tonic::Status;

use super::convert::event_to_pb;
use super::limits::ServerLimits;
use crate::node::module::StakingModule;

/// Events read from the store per query while replaying.
pub(crate) const REPLAY_BATCH: u32 = 500;

/// Sends the staking module's events from sequence `next` on into `out` until the client goes away.
pub(super) async fn forward(
    module: StakingModule,
    limits: ServerLimits,
    next: u64,
    out: mpsc::Sender<Result<pb::Event, Status>>,
) {
    let live = module.subscribe();
    forward_log(
        &limits,
        live,
        |from| {
            let module = module.clone();
            async move {
                module
                    .store()
                    .events_from(from, REPLAY_BATCH)
                    .await
                    .map_err(Status::from)
            }
        },
        |e| e.sequence,
        event_to_pb,
        next,
        out,
    )
    .await;
}

/// Sends events of one log from sequence `next` on into `out` until the client goes away, the
/// live feed closes, or a bound of `limits` ends the stream (with a status naming it and the
/// sequence to resume from). `replay(from)` reads stored events with sequence ≥ `from` in
/// order (empty when there are none); `live` must have been subscribed before the first replay.
pub(crate) async fn forward_log<E, M, R, Fut>(
    limits: &ServerLimits,
    mut live: broadcast::Receiver<E>,
    replay: R,
    sequence: fn(&E) -> u64,
    to_message: fn(&E) -> M,
    mut next: u64,
    out: mpsc::Sender<Result<M, Status>>,
) where
    E: Clone,
    R: Fn(u64) -> Fut,
    Fut: Future<Output = Result<Vec<E>, Status>>,
{
    let max_replay = limits.config().max_replay_events;
    let mut replayed = 0u64;
    loop {
        // Replay from the store until it has nothing newer.
        loop {
            if replayed >= max_replay {
                let _ = out
                    .send(Err(Status::resource_exhausted(format!(
                        "this stream replayed max_replay_events = {max_replay} stored events; \
                         subscribe again from sequence {next}"
                    ))))
                    .await;
                return;
            }
            let batch = match limits.replay_slot().await {
                // The slot is held for the query only, not while the client reads.
                Ok(_slot) => replay(next).await,
                Err(e) => Err(e),
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    let _ = out.send(Err(e)).await;
                    return;
                }
            };
            if batch.is_empty() {
                break;
            }
            for e in batch {
                if replayed >= max_replay {
                    break;
                }
                replayed += 1;
                next = sequence(&e) + 1;
                if out.send(Ok(to_message(&e))).await.is_err() {
                    return;
                }
            }
        }
        // Follow the live feed while it stays contiguous.
        loop {
            let received = tokio::select! {
                r = live.recv() => r,
                () = out.closed() => return,
            };
            match received {
                Ok(e) if sequence(&e) < next => continue,
                Ok(e) if sequence(&e) == next => {
                    next += 1;
                    if out.send(Ok(to_message(&e))).await.is_err() {
                        return;
                    }
                }
                // A gap without lag (an event published out of order): re-read the store.
                Ok(_) => break,
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    let _ = out
                        .send(Err(Status::resource_exhausted(format!(
                            "this stream fell {skipped} events behind the live feed (its buffer \
                             is full: read faster); subscribe again from sequence {next}"
                        ))))
                        .await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::config::ServerConfig;

    /// A log of events 1..=`stored` in the store; events are their sequence numbers.
    fn start(
        stored: u64,
        config: ServerConfig,
        live_buffer: usize,
    ) -> (broadcast::Sender<u64>, mpsc::Receiver<Result<u64, Status>>) {
        let (live, subscribed) = broadcast::channel(live_buffer);
        let (out, received) = mpsc::channel(1);
        let limits = ServerLimits::new(config);
        tokio::spawn(async move {
            forward_log(
                &limits,
                subscribed,
                move |from| async move {
                    Ok((from..=stored).take(REPLAY_BATCH as usize).collect())
                },
                |e| *e,
                |e| *e,
                1,
                out,
            )
            .await;
        });
        (live, received)
    }

    #[tokio::test]
    async fn replay_stops_at_the_cap_and_says_where_to_resume() {
        let config = ServerConfig {
            max_replay_events: 5,
            ..ServerConfig::default()
        };
        let (_live, mut received) = start(20, config, 16);
        for sequence in 1..=5 {
            assert_eq!(received.recv().await.map(Result::ok), Some(Some(sequence)));
        }
        let status = received.recv().await.expect("a status").expect_err("cut");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("max_replay_events = 5")
                && status.message().contains("from sequence 6"),
            "{}",
            status.message()
        );
        assert!(received.recv().await.is_none(), "the stream ends");
    }

    #[tokio::test]
    async fn a_live_subscriber_that_does_not_read_is_cut_off() {
        let (live, mut received) = start(0, ServerConfig::default(), 4);
        // Let the forwarder reach the live feed before publishing.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        for sequence in 1..=20 {
            let _ = live.send(sequence);
        }
        let mut last = 0;
        let status = loop {
            match received.recv().await.expect("open until cut off") {
                Ok(sequence) => {
                    assert_eq!(sequence, last + 1, "no gap before the cut");
                    last = sequence;
                }
                Err(status) => break status,
            }
        };
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status
                .message()
                .contains(&format!("from sequence {}", last + 1)),
            "{}",
            status.message()
        );
    }
}
