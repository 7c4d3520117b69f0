//! `proxyscope live --metrics`: a real Prometheus (Debian's `prometheus` package) scrapes the
//! endpoint on loopback, and the value of a counter is read back through Prometheus' HTTP API;
//! `promtool check metrics` lints the exposition.
//!
//! Needs root (capture on lo) and the `prometheus` / `promtool` binaries (`scripts/deps --test`);
//! without them the test records a skip (`common::skip`), a failure under `CI=true`. Everything
//! listens on 127.0.0.1 only; Prometheus' data goes to a temporary directory.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills a child process when dropped (a failed test leaves nothing running).
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// GET `path` on 127.0.0.1:`port` (HTTP/1.0, read to EOF): (status, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Percent-encodes a PromQL query for a URL.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_live_metrics() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip("not root: live --metrics captures on lo (CAP_NET_RAW)");
        return;
    }
    if !have("prometheus") || !have("promtool") {
        common::skip("prometheus/promtool missing (scripts/deps --test installs them)");
        return;
    }
    // Refused connections to a port nobody listens on: counted with outcome="refused".
    let refused = free_port();
    let mut live = Reaper(
        Command::new(common::bin())
            .args([
                "live",
                "-i",
                "lo",
                "--format",
                "ndjson",
                "--report-every",
                "1",
                "--duration",
                "40",
                "--metrics",
                "127.0.0.1:0",
                "-f",
                &format!("tcp port {refused}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn proxyscope live"),
    );
    // The chosen port is on stderr; the first summary on stdout says the capture runs.
    let mut err = BufReader::new(live.0.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("proxyscope: metrics at http://127.0.0.1:")
        .and_then(|r| r.strip_suffix("/metrics"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no metrics address on stderr: {line:?}"));
    let mut out = BufReader::new(live.0.stdout.take().unwrap());
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("\"summary\""), "{line}");
    std::thread::spawn(move || {
        // Keep draining both pipes so the child never blocks on a full pipe.
        let mut sink = String::new();
        let _ = out.read_to_string(&mut sink);
    });
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = err.read_to_string(&mut sink);
    });
    for _ in 0..3 {
        let e = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], refused)),
            Duration::from_secs(2),
        );
        assert!(e.is_err(), "port {refused} should refuse");
    }

    // The exposition itself: 404 elsewhere, and promtool finds nothing to complain about.
    assert_eq!(http_get(port, "/nothing").unwrap().0, 404);
    // Closed connections are judged a quiet second after their end.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = http_get(port, "/metrics").unwrap();
        assert_eq!(status, 200, "{body}");
        if body.contains("outcome=\"refused\"} 3") {
            break body;
        }
        assert!(Instant::now() < deadline, "no refused connections:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        body.contains("# TYPE proxyscope_connections_total counter"),
        "{body}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let lint = promtool.wait_with_output().unwrap();
    assert!(
        lint.status.success() && lint.stdout.is_empty() && lint.stderr.is_empty(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    // A real Prometheus scraping it every second.
    let dir = std::env::temp_dir().join(format!("proxyscope-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: proxyscope\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let prom = Reaper(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus"),
    );
    let query = urlencode("proxyscope_connections_total{outcome=\"refused\"}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let value = loop {
        if let Ok((200, body)) = http_get(prom_port, &format!("/api/v1/query?query={query}")) {
            let j: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if let Some(v) = j["data"]["result"][0]["value"][1].as_str() {
                if v == "3" {
                    break j;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never returned 3 refused connections"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let metric = &value["data"]["result"][0]["metric"];
    assert_eq!(metric["server"], format!("127.0.0.1:{refused}"), "{value}");
    assert_eq!(metric["job"], "proxyscope", "{value}");
    // The scrape itself was healthy.
    let (_, up) = http_get(
        prom_port,
        &format!("/api/v1/query?query={}", urlencode("up")),
    )
    .unwrap();
    assert!(up.contains("\"1\""), "{up}");
    drop(prom);
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(live.0.id() as libc::pid_t, libc::SIGTERM) };
    let st = live.0.wait().unwrap();
    assert!(st.success(), "{st:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
