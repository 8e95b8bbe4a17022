//! The server's bounds at run time (the `[server]` table, [`ServerConfig`]): calls in flight and
//! their duration ([`GuardLayer`], before any handler runs), Events subscriptions in all and per
//! connection ([`ServerLimits::open_event_stream`]), replay queries in flight
//! ([`ServerLimits::replay_slot`]) and response bytes ([`fill_page`], [`check_response`]).
//! Every refusal names the limit and its value.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::node::config::ServerConfig;

/// The shared limit state of one server. Cheap to clone.
#[derive(Clone)]
pub struct ServerLimits {
    inner: Arc<Inner>,
}

struct Inner {
    config: ServerConfig,
    requests: Arc<Semaphore>,
    event_streams: Arc<Semaphore>,
    replays: Arc<Semaphore>,
    /// Open Events subscriptions per connection, keyed by the peer's address (one TCP
    /// connection per address and port).
    per_connection: Mutex<HashMap<SocketAddr, usize>>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits::new(ServerConfig::default())
    }
}

impl ServerLimits {
    /// Fresh counters for `config`.
    pub fn new(config: ServerConfig) -> Self {
        ServerLimits {
            inner: Arc::new(Inner {
                config,
                requests: Arc::new(Semaphore::new(config.max_concurrent_requests)),
                event_streams: Arc::new(Semaphore::new(config.max_event_streams)),
                replays: Arc::new(Semaphore::new(config.max_concurrent_replays)),
                per_connection: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The limits.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The tower layer bounding calls in flight and their duration.
    pub fn layer(&self) -> GuardLayer {
        GuardLayer {
            limits: self.clone(),
        }
    }

    /// Admits one more Events subscription from `peer`, or refuses it RESOURCE_EXHAUSTED when
    /// `max_event_streams` or `max_event_streams_per_connection` are reached. The slot is
    /// held until the permit is dropped (when the stream ends).
    pub fn open_event_stream(&self, peer: Option<SocketAddr>) -> Result<EventStreamPermit, Status> {
        let c = &self.inner.config;
        let global = self
            .inner
            .event_streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "too many Events streams open on this node (max_event_streams = {}); \
                     retry later",
                    c.max_event_streams
                ))
            })?;
        if let Some(addr) = peer {
            let mut open = self.per_connection();
            let n = open.entry(addr).or_insert(0);
            if *n >= c.max_event_streams_per_connection {
                return Err(Status::resource_exhausted(format!(
                    "too many Events streams open on this connection \
                     (max_event_streams_per_connection = {}); close one first",
                    c.max_event_streams_per_connection
                )));
            }
            *n += 1;
        }
        Ok(EventStreamPermit {
            _global: global,
            peer,
            limits: self.clone(),
        })
    }

    /// Waits for one of the `max_concurrent_replays` replay slots: replays read the store
    /// through the handlers' pool, and this keeps idle-but-replaying streams from taking it all.
    pub async fn replay_slot(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.inner
            .replays
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the node is shutting down"))
    }

    fn per_connection(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, usize>> {
        // A panic while holding the lock cannot leave the counts inconsistent (each update
        // is one statement), so a poisoned lock is still usable.
        self.inner
            .per_connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One admitted Events subscription; dropping it frees its slots.
pub struct EventStreamPermit {
    _global: OwnedSemaphorePermit,
    peer: Option<SocketAddr>,
    limits: ServerLimits,
}

impl Drop for EventStreamPermit {
    fn drop(&mut self) {
        if let Some(addr) = self.peer {
            let mut open = self.limits.per_connection();
            if let Some(n) = open.get_mut(&addr) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&addr);
                }
            }
        }
    }
}

/// Refuses a response larger than `max_response_bytes` (for responses that are not pages).
pub fn check_response<M: prost::Message>(limits: &ServerLimits, message: &M) -> Result<(), Status> {
    let max = limits.config().max_response_bytes;
    let len = message.encoded_len();
    if len > max {
        return Err(Status::resource_exhausted(format!(
            "the response would be {len} bytes, over max_response_bytes = {max}"
        )));
    }
    Ok(())
}

/// Items read from the store per query while filling a page: bounds the memory one page
/// request holds (a delegation carries up to four transactions).
const FETCH_CHUNK: u32 = 50;
/// Room left in a page for everything but its items (the page token, the framing).
const PAGE_OVERHEAD: usize = 1024;

/// Fills one page of at most `size` items and `max_response_bytes` bytes. `fetch(after, n)`
/// reads up to `n` items after key `after` in key order; `key` is an item's key. Returns the
/// page's messages and, when more items may follow, the key to continue after. A page is
/// never empty when an item exists: one item over the byte limit is refused
/// RESOURCE_EXHAUSTED naming the limit.
pub async fn fill_page<T, M, K, F, Fut, E>(
    limits: &ServerLimits,
    mut after: Option<K>,
    size: u32,
    mut fetch: F,
    key: impl Fn(&T) -> K,
    to_pb: impl Fn(&T) -> M,
) -> Result<(Vec<M>, Option<K>), Status>
where
    M: prost::Message,
    F: FnMut(Option<K>, u32) -> Fut,
    Fut: Future<Output = Result<Vec<T>, E>>,
    E: Into<Status>,
{
    let budget = limits
        .config()
        .max_response_bytes
        .saturating_sub(PAGE_OVERHEAD);
    let mut page = Vec::new();
    let mut used = 0usize;
    loop {
        let want = size.saturating_sub(u32::try_from(page.len()).unwrap_or(u32::MAX));
        if want == 0 {
            // Full by count: more may follow.
            return Ok((page, after));
        }
        let n = want.min(FETCH_CHUNK);
        let chunk = fetch(after.take(), n).await.map_err(Into::into)?;
        let exhausted = chunk.len() < n as usize;
        for item in &chunk {
            let message = to_pb(item);
            let len = message.encoded_len();
            // Tag and length prefix of a repeated message field.
            let cost = len + 1 + prost::encoding::encoded_len_varint(len as u64);
            if used + cost > budget {
                if page.is_empty() {
                    return Err(Status::resource_exhausted(format!(
                        "one item is {len} bytes, over max_response_bytes = {}",
                        limits.config().max_response_bytes
                    )));
                }
                // Full by bytes: this item starts the next page.
                return Ok((page, after));
            }
            used += cost;
            page.push(message);
            after = Some(key(item));
        }
        if exhausted {
            return Ok((page, None));
        }
    }
}

/// Tower layer: at most `max_concurrent_requests` calls in flight (more are refused
/// RESOURCE_EXHAUSTED at once, before any work), each answered within `request_timeout`
/// (DEADLINE_EXCEEDED). Health checks are exempt, so an overloaded node still reports.
#[derive(Clone)]
pub struct GuardLayer {
    limits: ServerLimits,
}

impl<S> tower_layer::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            limits: self.limits.clone(),
        }
    }
}

/// The service of [`GuardLayer`].
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    limits: ServerLimits,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

impl<S, B, R> tower_service::Service<http::Request<B>> for Guard<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call (tower's clone-and-swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let c = *self.limits.config();
        if request.uri().path().starts_with(HEALTH_PREFIX) {
            return Box::pin(inner.call(request));
        }
        let permit = self.limits.inner.requests.clone().try_acquire_owned();
        Box::pin(async move {
            let Ok(_permit) = permit else {
                return Ok(Status::resource_exhausted(format!(
                    "the node is busy: max_concurrent_requests = {} calls in flight; retry \
                     shortly",
                    c.max_concurrent_requests
                ))
                .into_http());
            };
            match tokio::time::timeout(c.request_timeout, inner.call(request)).await {
                Ok(response) => response.map(|mut r| {
                    cap_message(&mut r);
                    r
                }),
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "the call took longer than request_timeout_ms = {}",
                    c.request_timeout.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

/// Longest `grpc-message` the server sends, in (percent-encoded) bytes.
pub const MAX_MESSAGE_BYTES: usize = 1000;

/// Cuts an error's `grpc-message` header to [`MAX_MESSAGE_BYTES`] (whole characters, then
/// "…"): every refusal stays short whatever the handler put in it.
fn cap_message<R>(response: &mut http::Response<R>) {
    const NAME: &str = "grpc-message";
    const ELLIPSIS: &[u8] = b"%E2%80%A6";
    let Some(value) = response.headers().get(NAME) else {
        return;
    };
    let bytes = value.as_bytes();
    if bytes.len() <= MAX_MESSAGE_BYTES {
        return;
    }
    let mut cut = MAX_MESSAGE_BYTES - ELLIPSIS.len();
    // Not inside a %XX escape.
    while cut > 0 && (bytes[cut - 1] == b'%' || (cut >= 2 && bytes[cut - 2] == b'%')) {
        cut -= 1;
    }
    // Not inside a UTF-8 character: back over escaped continuation bytes (%80..%BF).
    while cut >= 3
        && bytes.get(cut) == Some(&b'%')
        && matches!(
            bytes.get(cut + 1),
            Some(b'8' | b'9' | b'A' | b'B' | b'a' | b'b')
        )
    {
        cut -= 3;
    }
    let capped = [&bytes[..cut], ELLIPSIS].concat();
    if let Ok(v) = http::HeaderValue::from_bytes(&capped) {
        response.headers_mut().insert(NAME, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        for text in ["x".repeat(5000), "é".repeat(3000), "a€".repeat(2000)] {
            let mut response: http::Response<()> =
                Status::invalid_argument(text.clone()).into_http();
            cap_message(&mut response);
            let sent = response.headers()["grpc-message"].as_bytes().to_vec();
            assert!(sent.len() <= MAX_MESSAGE_BYTES, "{}", sent.len());
            let status = Status::from_header_map(response.headers()).expect("a status");
            assert!(status.message().ends_with('…'), "{}", status.message());
            let kept = status.message().trim_end_matches('…');
            assert!(text.starts_with(kept), "a prefix of whole characters");
        }
        let mut short: http::Response<()> = Status::not_found("short").into_http();
        cap_message(&mut short);
        assert_eq!(
            Status::from_header_map(short.headers())
                .expect("status")
                .message(),
            "short"
        );
    }
}
