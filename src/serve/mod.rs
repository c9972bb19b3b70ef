//! `reconcile --watch --listen ADDR` (DESIGN §11): metrics, health, the
//! status JSON and a dashboard over HTTP, served on threads of their own, so
//! that no load on the endpoints can slow the watch's rounds or its lease
//! renewals. The endpoints read the ledger on a connection of their own
//! (`reading`, itself on a thread of its own) and what the watch loop
//! reports after each round (`watched`); they never wait on the loop, and
//! the loop never waits on them.

mod metrics;
mod page;
mod reading;
mod watched;

pub use watched::{EnvRound, Watched};

use crate::engine::Who;
use crate::error::{Error, Result};
use crate::store::{DbUrl, Limits};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reading::Reader;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A bound socket: bound before anything else happens, so that a port in use
/// is an error at start, not after the first round.
pub struct Listener {
    socket: tokio::net::TcpListener,
    pub addr: SocketAddr,
}

pub async fn bind(addr: SocketAddr) -> Result<Listener> {
    let socket = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "another process listens there: stop it, or pick another port with --listen"
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need privileges: pick a port above 1024 with --listen"
            }
            _ => "pass an address of this machine, such as --listen 127.0.0.1:9464",
        };
        Error::input(format!("cannot listen on {addr}: {e}")).hint(hint)
    })?;
    let addr = socket.local_addr().unwrap_or(addr);
    Ok(Listener { socket, addr })
}

/// The server, running until `stop` is cancelled.
pub struct Server {
    /// Fired when the server's thread has finished.
    done: tokio::sync::oneshot::Receiver<()>,
    stop: CancellationToken,
}

struct App {
    reader: Arc<Reader>,
    watched: Watched,
    /// `--interval`: rounds failing for two of them make the watcher unhealthy.
    interval: Duration,
}

/// Threads answering requests: two, so that a slow client never holds up
/// the others, on a machine of any size.
const HTTP_THREADS: usize = 2;

/// Starts serving on `listener`, on a runtime of its own. `who` only names
/// the reader's session.
pub fn start(
    listener: Listener,
    url: DbUrl,
    limits: Limits,
    who: Who,
    watched: Watched,
    interval: Duration,
    stop: CancellationToken,
) -> Result<Server> {
    let cannot = |e: std::io::Error| Error::input(format!("cannot start the HTTP server: {e}"));
    let socket = listener.socket.into_std().map_err(cannot)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(HTTP_THREADS)
        .thread_name("shipctl-http")
        .enable_all()
        .build()
        .map_err(cannot)?;
    let app = Arc::new(App {
        reader: Reader::new(url, limits, who, watched.clone(), stop.clone()).map_err(cannot)?,
        watched,
        interval,
    });
    let router = Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/status", get(status))
        .fallback(not_found)
        .with_state(app);
    let until = stop.clone();
    let (finished, done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("shipctl-http".into())
        .spawn(move || {
            let served = runtime.block_on(async move {
                let socket = tokio::net::TcpListener::from_std(socket)?;
                axum::serve(socket, router)
                    .with_graceful_shutdown(until.cancelled_owned())
                    .await
            });
            if let Err(e) = served {
                crate::render::write_stderr(&format!("watch: the HTTP server stopped: {e}"));
            }
            // Requests still in flight are dropped: the watch is stopping.
            runtime.shutdown_background();
            let _ = finished.send(());
        })
        .map_err(cannot)?;
    Ok(Server { done, stop })
}

impl Server {
    /// Stops accepting, lets requests in flight finish for a moment, then
    /// drops the rest: the watch's exit is never held up by a client.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.done).await;
    }
}

fn respond(code: StatusCode, content_type: &'static str, body: String) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

const JSON: &str = "application/json";

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let reading = app.reader.get().await;
    let watched = app.watched.state();
    respond(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        metrics::render(&reading, watched.as_ref()),
    )
}

async fn dashboard(State(app): State<Arc<App>>) -> Response {
    let reading = app.reader.get().await;
    let watched = app.watched.state();
    respond(
        StatusCode::OK,
        "text/html; charset=utf-8",
        page::render(&reading, watched.as_ref()),
    )
}

async fn status(State(app): State<Arc<App>>) -> Response {
    let reading = app.reader.get().await;
    match &reading.ledger {
        Ok(s) => respond(StatusCode::OK, JSON, format!("{}\n", s.status_json)),
        Err(e) => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            JSON,
            error_body("unavailable", e),
        ),
    }
}

fn error_body(kind: &str, message: &str) -> String {
    serde_json::json!({ "error": { "kind": kind, "message": message } }).to_string()
}

/// 200 while rounds reach the ledger and the endpoints can read it; 503 with
/// the reason once rounds have failed for two intervals, or at once when the
/// ledger cannot be read (a reading unanswered for one interval, at most the
/// read limit).
async fn healthz(State(app): State<Arc<App>>) -> Response {
    // A reading unanswered for one --interval (a second at least, so that a
    // busy database is not called down) is a silent database: 503 within two.
    let within = app.interval.max(Duration::from_secs(1));
    let reading = app.reader.get_within(within).await;
    let watched = app.watched.state();
    let last_round = watched
        .as_ref()
        .and_then(|w| w.last_round)
        .map(|t| t.to_string());
    let failing_for = watched
        .as_ref()
        .and_then(|w| w.failing_since)
        .map(|since| since.elapsed());
    let last_error = watched.as_ref().and_then(|w| w.last_error.clone());
    let reason = match (&reading.ledger, failing_for) {
        (Err(e), _) => Some(format!("the ledger cannot be read: {e}")),
        (Ok(_), Some(failing)) if failing >= app.interval * 2 => Some(format!(
            "rounds have failed for {} (two --interval are {}): {}",
            crate::duration::format(Duration::from_secs(failing.as_secs())),
            crate::duration::format(app.interval * 2),
            last_error.as_deref().unwrap_or("no message")
        )),
        _ => None,
    };
    let body = serde_json::json!({
        "status": if reason.is_none() { "ok" } else { "unhealthy" },
        "reason": reason,
        "last_round": last_round,
        "last_error": last_error,
        "leader": watched.as_ref().is_none_or(|w| w.leader),
    });
    let code = if reason.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond(code, JSON, format!("{body}\n"))
}

async fn not_found() -> Response {
    respond(
        StatusCode::NOT_FOUND,
        JSON,
        error_body(
            "not_found",
            "no such page: the endpoints are /, /metrics, /healthz and /api/status",
        ),
    )
}
