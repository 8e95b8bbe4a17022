//! The Events stream: replays the event log from the store, then follows live events. It
//! subscribes before replaying, so nothing committed in between is missed, and falls back to
//! the store whenever the live feed skips (a slow client), so the stream has no gaps.

use fiamma_proto::staking::v1 as pb;
use tokio::sync::{broadcast, mpsc};
use tonic::Status;

use super::convert::event_to_pb;
use crate::node::module::StakingModule;

/// Events read from the store per query while replaying.
const REPLAY_BATCH: u32 = 500;

/// Sends events from sequence `next` on into `out` until the client goes away.
pub(super) async fn forward(
    module: StakingModule,
    mut next: u64,
    out: mpsc::Sender<Result<pb::Event, Status>>,
) {
    let mut live = module.subscribe();
    loop {
        // Replay from the store until it has nothing newer.
        loop {
            let batch = match module.store().events_from(next, REPLAY_BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    let _ = out.send(Err(e.into())).await;
                    return;
                }
            };
            if batch.is_empty() {
                break;
            }
            for e in batch {
                next = e.sequence + 1;
                if out.send(Ok(event_to_pb(&e))).await.is_err() {
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
                Ok(e) if e.sequence < next => continue,
                Ok(e) if e.sequence == next => {
                    next += 1;
                    if out.send(Ok(event_to_pb(&e))).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
