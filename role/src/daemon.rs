//! The daemon loop's surroundings: a shutdown signal, health, and Prometheus metrics served
//! over HTTP (`GET /health`, `GET /metrics`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A shutdown signal: cheap to clone, fired once.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Fires a [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl ShutdownTrigger {
    /// Fires the signal; every [`Shutdown::wait`] returns.
    pub fn fire(&self) {
        let _ = self.tx.send(true);
    }
}

impl Shutdown {
    /// A new signal and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// A signal fired by Ctrl-C or SIGTERM.
    pub fn on_signals() -> Shutdown {
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            wait_for_signal().await;
            trigger.fire();
        });
        shutdown
    }

    /// Whether it has fired.
    pub fn is_fired(&self) -> bool {
        *self.rx.borrow()
    }

    /// Returns once it has fired (or its trigger is gone).
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|fired| *fired).await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Whether the role is doing its job, and if not, why.
#[derive(Debug, Clone, Default)]
pub struct Health {
    problem: Arc<Mutex<Option<String>>>,
}

impl Health {
    /// Healthy.
    pub fn ok(&self) {
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Unhealthy, for `reason`.
    pub fn failing(&self, reason: impl Into<String>) {
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason.into());
    }

    /// `None` when healthy, else the reason.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Counters and gauges in Prometheus' text format. Names are fixed by the role; label values
/// are the role's own words (never input from the network).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    values: Arc<Mutex<BTreeMap<String, (&'static str, f64)>>>,
}

impl Metrics {
    /// Adds 1 to counter `name{labels}`.
    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values
            .entry(series(name, labels))
            .or_insert(("counter", 0.0))
            .1 += 1.0;
    }

    /// Sets gauge `name{labels}` to `value`.
    pub fn set(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.insert(series(name, labels), ("gauge", value));
    }

    /// The current value of `name{labels}`, if it was ever set.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.get(&series(name, labels)).map(|(_, v)| *v)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        let mut typed = std::collections::BTreeSet::new();
        for (series, (kind, value)) in values.iter() {
            let name = series.split('{').next().unwrap_or(series);
            if typed.insert(name.to_owned()) {
                out.push_str(&format!("# TYPE {name} {kind}\n"));
            }
            out.push_str(&format!("{series} {value}\n"));
        }
        out
    }
}

fn series(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Serves `GET /health` (200 `ok`, or 503 with the reason) and `GET /metrics` on `listener`
/// until `shutdown` fires. A minimal HTTP/1.0 responder: one request per connection, requests
/// over 8 KiB refused.
pub async fn serve_status(
    listener: TcpListener,
    health: Health,
    metrics: Metrics,
    shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut socket, _)) = accepted else {
            continue;
        };
        let (health, metrics) = (health.clone(), metrics.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut buf))
                    .await;
            let Ok(Ok(n)) = read else { return };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (code, body) = match path {
                "/health" => match health.problem() {
                    None => ("200 OK", "ok\n".to_owned()),
                    Some(reason) => ("503 Service Unavailable", format!("{reason}\n")),
                },
                "/metrics" => ("200 OK", metrics.render()),
                _ => ("404 Not Found", "try /health or /metrics\n".to_owned()),
            };
            let response = format!(
                "HTTP/1.0 {code}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}

/// The status address cannot be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve status on {addr}: {source}")]
pub struct StatusBindError {
    /// The address.
    pub addr: SocketAddr,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// When `addr` is set, binds it now (so that a taken address stops the role at start) and
/// serves [`serve_status`] on it in a task until `shutdown`.
///
/// # Errors
/// [`StatusBindError`].
pub async fn spawn_status(
    addr: Option<SocketAddr>,
    health: &Health,
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> Result<(), StatusBindError> {
    let Some(addr) = addr else { return Ok(()) };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StatusBindError { addr, source })?;
    tokio::spawn(serve_status(
        listener,
        health.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_the_text_format() {
        let m = Metrics::default();
        m.inc("fiamma_signed_total", &[]);
        m.inc("fiamma_signed_total", &[]);
        m.inc("fiamma_refused_total", &[("reason", "params \"x\"")]);
        m.set("fiamma_lag", &[], 3.0);
        let text = m.render();
        assert!(
            text.contains("# TYPE fiamma_signed_total counter\nfiamma_signed_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains("fiamma_refused_total{reason=\"params \\\"x\\\"\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE fiamma_lag gauge\nfiamma_lag 3\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn health_and_metrics_are_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (trigger, shutdown) = Shutdown::new();
        let health = Health::default();
        health.failing("node unreachable");
        let task = tokio::spawn(serve_status(
            listener,
            health.clone(),
            Metrics::default(),
            shutdown,
        ));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).await.expect("read");
            out
        };
        let sick = get("/health").await;
        assert!(
            sick.starts_with("HTTP/1.0 503") && sick.ends_with("node unreachable\n"),
            "{sick}"
        );
        health.ok();
        assert!(get("/health").await.starts_with("HTTP/1.0 200"));
        trigger.fire();
        task.await.expect("stops");
    }
}
