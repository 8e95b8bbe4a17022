//! Event streams: replay the event log from the store, then follow live events. The forwarder
//! subscribes before replaying, so nothing committed in between is missed, and falls back to the
//! store whenever the live feed skips (a slow client), so the stream has no gaps. The staking
//! and the finality module share it; each brings its own log and message type.

use std::future::Future;

use fiamma_proto::staking::v1 as pb;
use tokio::sync::{broadcast, mpsc};
use tonic::Status;

use super::convert::event_to_pb;
use crate::node::module::StakingModule;

/// Events read from the store per query while replaying.
pub(crate) const REPLAY_BATCH: u32 = 500;

/// Sends the staking module's events from sequence `next` on into `out` until the client goes away.
pub(super) async fn forward(
    module: StakingModule,
    next: u64,
    out: mpsc::Sender<Result<pb::Event, Status>>,
) {
    let live = module.subscribe();
    forward_log(
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

/// Sends events of one log from sequence `next` on into `out` until the client goes away or the
/// live feed closes. `replay(from)` reads stored events with sequence ≥ `from` in order (empty
/// when there are none); `live` must have been subscribed before the first replay.
pub(crate) async fn forward_log<E, M, R, Fut>(
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
    loop {
        // Replay from the store until it has nothing newer.
        loop {
            let batch = match replay(next).await {
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
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
