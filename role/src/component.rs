//! The daemon loop every role runs: a step, then a wait for an event from the node that may
//! bring work (or for the poll interval), again and again until shutdown.
//!
//! A role implements [`Component`]; [`run`] drives it. The step is the role's catch-up path and
//! its only way of doing work, so the event stream is a hint: a lost connection, a gap or a
//! closed stream only costs latency, never correctness.

use std::fmt::{Debug, Display};
use std::time::Duration;

use async_trait::async_trait;
use tokio_stream::{Stream, StreamExt};

use crate::daemon::{Health, Metrics, Shutdown};

/// A role's component as [`run`] drives it.
#[async_trait]
pub trait Component: Send + Sync {
    /// One event from the node.
    type Event: Send;
    /// Why the event stream broke.
    type StreamError: Send;
    /// The node's event stream.
    type Events: Stream<Item = Result<Self::Event, Self::StreamError>> + Send + Unpin;
    /// What one step did.
    type Report: Debug + Send;
    /// Why one step failed.
    type Error: Display + Send;

    /// The counter bumped on each failed step, e.g. `fiamma_verifier_step_errors_total`.
    const STEP_ERRORS: &'static str;
    /// After an event that brings work, how long to wait for more before stepping, so that a
    /// burst of events (or the replay of the log after a restart) is served by one step.
    const DEBOUNCE: Duration;

    /// One pass over everything the role has to do.
    async fn step(&self) -> Result<Self::Report, Self::Error>;

    /// The node's events after the last one [`Component::note_event`] saw; `None` when the
    /// node cannot be reached (the loop tries again after the next step).
    async fn subscribe(&self) -> Option<Self::Events>;

    /// Records that `event` was seen; true when it may bring work.
    fn note_event(&self, event: &Self::Event) -> bool;

    /// The longest wait between two steps.
    fn poll_interval(&self) -> Duration;

    /// Where a failed step is reported.
    fn health(&self) -> &Health;

    /// Where [`Component::STEP_ERRORS`] is counted.
    fn metrics(&self) -> &Metrics;
}

/// Steps `component` until `shutdown` fires: a step, then a wait for an event that may bring
/// work (plus [`Component::DEBOUNCE`]) or for the poll interval. A failed step is logged,
/// reported on health and retried; the loop never stops on its own.
pub async fn run<C: Component>(component: &C, shutdown: Shutdown) {
    let mut stream: Option<C::Events> = None;
    while !shutdown.is_fired() {
        match component.step().await {
            Ok(report) => tracing::debug!(?report, "step done"),
            Err(e) => {
                tracing::warn!(error = %e, "step failed; retrying");
                component.health().failing(e.to_string());
                component.metrics().inc(C::STEP_ERRORS, &[]);
            }
        }
        let poll = tokio::time::sleep(component.poll_interval());
        tokio::pin!(poll);
        let debounce = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(debounce);
        let mut work = false;
        loop {
            if stream.is_none() {
                stream = component.subscribe().await;
            }
            let next = async {
                match stream.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = &mut poll => break,
                _ = &mut debounce, if work => break,
                item = next => match item {
                    Some(Ok(event)) => {
                        if component.note_event(&event) && !work {
                            work = true;
                            debounce.as_mut().reset(tokio::time::Instant::now() + C::DEBOUNCE);
                        }
                    }
                    // Reconnected on the next pass; the step is the catch-up path.
                    Some(Err(_)) | None => {
                        stream = None;
                        break;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use tokio::sync::mpsc;
    use tokio_stream::wrappers::UnboundedReceiverStream;

    use super::*;

    /// Counts its steps; its events are numbers, and even ones bring work.
    struct Counter {
        steps: AtomicU64,
        fail_first: bool,
        events: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Result<u64, ()>>>>,
        health: Health,
        metrics: Metrics,
    }

    #[async_trait]
    impl Component for Counter {
        type Event = u64;
        type StreamError = ();
        type Events = UnboundedReceiverStream<Result<u64, ()>>;
        type Report = u64;
        type Error = String;
        const STEP_ERRORS: &'static str = "test_step_errors_total";
        const DEBOUNCE: Duration = Duration::from_millis(5);

        async fn step(&self) -> Result<u64, String> {
            let n = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail_first && n == 1 {
                return Err("first step fails".to_owned());
            }
            self.health.ok();
            Ok(n)
        }

        async fn subscribe(&self) -> Option<Self::Events> {
            let rx = self.events.lock().expect("lock").take()?;
            Some(UnboundedReceiverStream::new(rx))
        }

        fn note_event(&self, event: &u64) -> bool {
            event % 2 == 0
        }

        fn poll_interval(&self) -> Duration {
            Duration::from_secs(3600)
        }

        fn health(&self) -> &Health {
            &self.health
        }

        fn metrics(&self) -> &Metrics {
            &self.metrics
        }
    }

    fn counter(fail_first: bool) -> (Arc<Counter>, mpsc::UnboundedSender<Result<u64, ()>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let c = Counter {
            steps: AtomicU64::new(0),
            fail_first,
            events: std::sync::Mutex::new(Some(rx)),
            health: Health::default(),
            metrics: Metrics::default(),
        };
        (Arc::new(c), tx)
    }

    async fn eventually(what: &str, done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("never: {what}");
    }

    async fn steps_reach(c: &Counter, n: u64) {
        eventually("steps reach n", || c.steps.load(Ordering::SeqCst) >= n).await;
    }

    #[tokio::test]
    async fn steps_on_events_that_bring_work_and_batches_a_burst() {
        let (c, tx) = counter(false);
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn({
            let c = c.clone();
            async move { run(&*c, shutdown).await }
        });
        steps_reach(&c, 1).await;
        // Odd events bring no work: no step.
        tx.send(Ok(1)).expect("send");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(c.steps.load(Ordering::SeqCst), 1);
        // A burst within the debounce is one step.
        for e in [2, 4, 6] {
            tx.send(Ok(e)).expect("send");
        }
        steps_reach(&c, 2).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(c.steps.load(Ordering::SeqCst), 2);
        trigger.fire();
        task.await.expect("stops on shutdown");
    }

    #[tokio::test]
    async fn a_failed_step_is_reported_and_a_broken_stream_means_another_step() {
        let (c, tx) = counter(true);
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn({
            let c = c.clone();
            async move { run(&*c, shutdown).await }
        });
        eventually("the failure is counted", || {
            c.metrics.get("test_step_errors_total", &[]) == Some(1.0)
        })
        .await;
        assert_eq!(c.health.problem().as_deref(), Some("first step fails"));
        tx.send(Err(())).expect("send");
        steps_reach(&c, 2).await;
        eventually("healthy again", || c.health.problem().is_none()).await;
        assert_eq!(c.steps.load(Ordering::SeqCst), 2);
        trigger.fire();
        task.await.expect("stops on shutdown");
    }
}
