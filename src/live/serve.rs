//! The `/metrics` endpoint of `proxyscope live --metrics ADDR:PORT` (the `tiny_http` crate,
//! which only this module uses).
//!
//! Owns: one listening socket and the thread that answers it. Must not: compute metrics (it
//! encodes `report::metrics::LiveMetrics` on each request). Answers `GET /metrics` (and `/`)
//! with the OpenMetrics text exposition when the client accepts it (Prometheus does), else the
//! Prometheus text format 0.0.4; anything else with 404 / 405; stops when dropped.

use crate::error::{Error, Result};
use crate::report::metrics::LiveMetrics;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The body when the client asks for OpenMetrics (Prometheus does).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The body otherwise (curl, promtool, older clients): Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long the server thread waits for a request before it looks at its stop flag.
const POLL: Duration = Duration::from_millis(200);

pub struct MetricsServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (ADDR:PORT; port 0 picks a free one, see `addr`) and starts answering.
    pub fn start(addr: &str, metrics: Arc<LiveMetrics>) -> Result<MetricsServer> {
        let bad = |reason: String| Error::Output {
            what: format!("--metrics {addr}"),
            reason,
        };
        let sa: SocketAddr = addr.parse().map_err(|_| {
            Error::Usage(format!(
                "--metrics {addr}: expected ADDR:PORT, e.g. 127.0.0.1:9187 or [::1]:9187"
            ))
        })?;
        let server = tiny_http::Server::http(sa).map_err(|e| bad(format!("cannot listen: {e}")))?;
        let local = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| bad("not an IP listener".into()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let req = match server.recv_timeout(POLL) {
                        Ok(Some(r)) => r,
                        Ok(None) => continue,
                        Err(_) => break,
                    };
                    let path = req.url().split('?').next().unwrap_or("");
                    let resp = match (req.method(), path) {
                        (tiny_http::Method::Get | tiny_http::Method::Head, "/metrics" | "/") => {
                            let om = req.headers().iter().any(|h| {
                                h.field.equiv("Accept")
                                    && h.value.as_str().contains("application/openmetrics-text")
                            });
                            let (body, ctype) = if om {
                                (metrics.encode(), OPENMETRICS)
                            } else {
                                (metrics.encode_prometheus_text(), PROMETHEUS_TEXT)
                            };
                            let header = tiny_http::Header::from_bytes(
                                &b"Content-Type"[..],
                                ctype.as_bytes(),
                            )
                            .expect("static header");
                            tiny_http::Response::from_string(body).with_header(header)
                        }
                        (tiny_http::Method::Get | tiny_http::Method::Head, _) => {
                            tiny_http::Response::from_string("not found: metrics are at /metrics\n")
                                .with_status_code(404)
                        }
                        _ => tiny_http::Response::from_string("method not allowed\n")
                            .with_status_code(405),
                    };
                    // A client that went away is its own problem.
                    let _ = req.respond(resp);
                }
            })
            .map_err(|e| bad(format!("cannot start the server thread: {e}")))?;
        Ok(MetricsServer {
            addr: local,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
