//! The HTML report in a real browser: headless Chromium loads the page proxyscope wrote and the
//! tests read the DOM after its script ran (`--dump-dom`).
//! - The page has what an incident ticket needs: verdict cards, the path with its broken hops,
//!   a sequence diagram per causal chain, a timeline per hop, evidence frames, copy buttons.
//! - It fetches nothing: Chromium runs with a proxy that is a listener of this test, with
//!   loopback not bypassed, so every request the page makes arrives here. A control page with an
//!   `<img>` proves the listener sees page requests; Chromium's own background services
//!   (google.com hosts) are ignored.
//! - Its Content-Security-Policy holds: markup injected into the report (as if escaping had
//!   failed) neither loads nor runs, while the same injection without the policy does both.
//! - Capture text stays text in the DOM (captures/hostile-nginx-any.pcap).
//!
//! Needs Debian's `chromium` (scripts/deps --test installs it); without it the tests record a
//! skip (a failure under CI=true).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn chromium() -> Option<&'static str> {
    for b in ["chromium", "chromium-browser"] {
        if Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return Some(b);
        }
    }
    common::skip("chromium is not installed (apt-get install chromium; scripts/deps --test does)");
    None
}

/// An HTTP proxy that records the first line of every request and answers nothing.
struct Recorder {
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    fn start() -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ls, st) = (lines.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
                        let mut buf = [0u8; 1024];
                        let n = c.read(&mut buf).unwrap_or(0);
                        let text = String::from_utf8_lossy(&buf[..n]);
                        ls.lock()
                            .unwrap()
                            .push(text.lines().next().unwrap_or("").to_string());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Recorder {
            port,
            lines,
            stop,
            thread: Some(thread),
        }
    }

    /// Requests recorded so far that Chromium's own background services did not make.
    fn page_requests(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| !is_chromium_service(l))
            .cloned()
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `GET http://clients2.google.com/…`, `CONNECT update.googleapis.com:443 …`: Chromium's
/// component updater, time and sign-in services, whatever page is loaded.
fn is_chromium_service(line: &str) -> bool {
    let target = line.split_whitespace().nth(1).unwrap_or("");
    let host = target
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    [
        ".google.com",
        ".googleapis.com",
        ".gstatic.com",
        ".gvt1.com",
    ]
    .iter()
    .any(|s| host.ends_with(s))
}

/// Loads `page` in headless Chromium behind `proxy`; returns the DOM after load (and writes a
/// screenshot when asked).
fn load(browser: &str, page: &Path, proxy: &Recorder, screenshot: Option<&Path>) -> String {
    let profile = common::TempPath::new(
        &format!(
            "chromium-profile-{}",
            page.file_name().unwrap().to_string_lossy()
        ),
        "",
    );
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--proxy-server=http://127.0.0.1:{}", proxy.port))
    // By default Chromium reaches loopback directly; send everything to the recorder.
    .arg("--proxy-bypass-list=<-loopback>");
    match screenshot {
        Some(p) => {
            c.arg("--window-size=1280,2400")
                .arg(format!("--screenshot={}", p.display()));
        }
        None => {
            c.arg("--dump-dom");
        }
    }
    let mut child = c
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish loading {} in 90 s", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = reader.join().unwrap();
    let _ = std::fs::remove_dir_all(profile.path());
    // Requests still in flight when the page was done reach the recorder shortly after.
    std::thread::sleep(Duration::from_millis(300));
    dom
}

fn report_html(capture: &str, test: &str) -> common::TempPath {
    let t = common::TempPath::new(test, ".html");
    let o = Command::new(common::bin())
        .args(["analyze", "-o"])
        .arg(t.path())
        .arg(common::repo().join("captures").join(capture))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    t
}

fn count(s: &str, needle: &str) -> usize {
    s.matches(needle).count()
}

#[test]
fn the_report_has_verdicts_chains_and_timelines_and_fetches_nothing() {
    let Some(browser) = chromium() else { return };
    let page = report_html("mixed-nginx-any.pcap", "html_mixed");
    let proxy = Recorder::start();
    let dom = load(browser, page.path(), &proxy, None);
    assert!(
        dom.contains("data-js=\"ok\""),
        "the page's script did not run (CSP hash?):\n{dom}"
    );
    // verdict cards
    assert!(dom.contains("id=\"verdict-1\" data-signature=\"gateway-error\" data-severity=\"critical\" data-hop=\"client-&gt;proxy\"")
        || dom.contains("id=\"verdict-1\" data-signature=\"gateway-error\" data-severity=\"critical\" data-hop=\"client->proxy\""),
        "{dom}");
    assert!(dom.contains("id=\"verdict-2\" data-signature=\"connection-refused\""));
    for needle in [
        "likely causes",
        "next checks",
        "Wireshark filter",
        "#187",
        "#190",
    ] {
        assert!(dom.contains(needle), "{needle} missing");
    }
    // copy buttons point at their filters
    assert_eq!(count(&dom, "class=\"copy\""), 2);
    assert!(dom.contains("id=\"filter-1\"") && dom.contains("data-target=\"filter-1\""));
    // the path: both hops broken
    assert_eq!(count(&dom, "data-broken=\"true\""), 2, "{dom}");
    // the chain's sequence diagram: request, SYN, RST, 502
    assert!(dom.contains("id=\"sequence-1\""));
    assert_eq!(count(&dom, "class=\"step\""), 4);
    for f in [
        "data-frame=\"#187\"",
        "data-frame=\"#189\"",
        "data-frame=\"#190\"",
        "data-frame=\"#191\"",
    ] {
        assert!(dom.contains(f), "{f}");
    }
    // a timeline per hop: 28 connections each, verdict windows shaded, 502s marked
    for (id, n) in [
        ("timeline-client-proxy", 28),
        ("timeline-proxy-backend", 28),
    ] {
        let start = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id}"));
        let svg = &dom[start..start + dom[start..].find("</svg>").unwrap()];
        assert_eq!(count(svg, "class=\"conn\""), n, "{id}");
        assert!(
            svg.contains("class=\"fault-window\""),
            "{id}: no verdict window"
        );
        assert_eq!(
            count(svg, "data-outcome=\"critical\""),
            12,
            "{id}: 12 failed connections"
        );
    }
    assert_eq!(count(&dom, "data-status=\"502\""), 12, "12 × 502 marked");
    let reqs = proxy.page_requests();
    assert!(reqs.is_empty(), "the report made requests: {reqs:?}");

    // a screenshot renders
    let shot = common::TempPath::new("html_mixed_shot", ".png");
    load(browser, page.path(), &proxy, Some(shot.path()));
    let png = std::fs::read(shot.path()).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    assert!(proxy.page_requests().is_empty());
}

/// Markup injected into the report (escaping gone wrong) is stopped by the page's policy: no
/// request, no script. Without the policy the same injection does both — the check can fail.
#[test]
fn the_content_security_policy_stops_injected_loads_and_scripts() {
    let Some(browser) = chromium() else { return };
    let page = report_html("refused-nginx-backleg.pcap", "html_csp");
    let html = std::fs::read_to_string(page.path()).unwrap();
    let inject = "<main>\n<img src=\"http://example.invalid/injected.png\"><script>document.documentElement.setAttribute('data-pwned','1')</script><link rel=\"stylesheet\" href=\"http://example.invalid/injected.css\">";
    let with_csp = html.replacen("<main>", inject, 1);
    assert_ne!(with_csp, html);
    let without_csp: String = with_csp
        .lines()
        .filter(|l| !l.contains("Content-Security-Policy"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(without_csp.len(), with_csp.len());

    let write = |name: &str, text: &str| {
        let t = common::TempPath::new(name, ".html");
        std::fs::File::create(t.path())
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        t
    };
    let a = write("html_csp_on", &with_csp);
    let proxy = Recorder::start();
    let dom = load(browser, a.path(), &proxy, None);
    assert!(
        dom.contains("data-js=\"ok\""),
        "the report's own script must still run"
    );
    assert!(
        !dom.contains("data-pwned=\"1\""),
        "an injected script ran despite the policy"
    );
    let reqs = proxy.page_requests();
    assert!(
        reqs.is_empty(),
        "injected markup fetched despite the policy: {reqs:?}"
    );
    drop(proxy);

    let b = write("html_csp_off", &without_csp);
    let proxy = Recorder::start();
    let dom = load(browser, b.path(), &proxy, None);
    assert!(
        dom.contains("data-pwned=\"1\""),
        "control: without the policy the script runs"
    );
    let reqs = proxy.page_requests();
    assert!(
        reqs.iter().any(|r| r.contains("example.invalid/injected")),
        "control: without the policy the recorder sees the page's requests, got {reqs:?}"
    );
}

/// The hostile capture's markup is text in the browser too.
#[test]
fn capture_markup_is_text_in_the_dom() {
    let Some(browser) = chromium() else { return };
    let page = report_html("hostile-nginx-any.pcap", "html_hostile");
    let html = std::fs::read_to_string(page.path()).unwrap();
    assert!(
        !html.chars().any(|c| c.is_control() && c != '\n'),
        "control characters in the HTML file"
    );
    let proxy = Recorder::start();
    let dom = load(browser, page.path(), &proxy, None);
    assert!(dom.contains("data-js=\"ok\""));
    let lower = dom.to_ascii_lowercase();
    assert_eq!(count(&lower, "<img"), 0, "an <img> element");
    assert_eq!(count(&lower, "<script"), 1, "only the report's own script");
    assert_eq!(count(&lower, "<center"), 0);
    assert_eq!(count(&lower, "<h1"), 1, "only the report's title");
    assert_eq!(count(&lower, "<b>"), 0);
    assert!(dom.contains("&lt;img src=\"https://example.invalid/x.png\"&gt;&lt;script&gt;x()&lt;/script&gt;\\x1b[31m**b**`t`\\x1b]0;T\\x07"), "body text not shown");
    assert!(dom.contains("evil\\x1b[31m&lt;b&gt;**srv**&lt;/b&gt;|`x`\\x1b]0;srv-title\\x07"));
    assert!(proxy.page_requests().is_empty());
}

/// The copy button's handler is wired: clicked (by a script added to a copy of the page without
/// its policy, the only way to run one), the first filter's button reports `copied`.
#[test]
fn the_copy_button_copies_the_filter() {
    let Some(browser) = chromium() else { return };
    let page = report_html("refused-nginx-backleg.pcap", "html_copy");
    let html: String = std::fs::read_to_string(page.path())
        .unwrap()
        .lines()
        .filter(|l| !l.contains("Content-Security-Policy"))
        .collect::<Vec<_>>()
        .join("\n")
        .replacen(
            "</body>",
            "<script>document.querySelector('button.copy').click();</script></body>",
            1,
        );
    let t = common::TempPath::new("html_copy_click", ".html");
    std::fs::write(t.path(), html).unwrap();
    let proxy = Recorder::start();
    let dom = load(browser, t.path(), &proxy, None);
    assert!(
        dom.contains("data-target=\"filter-1\">copied</button>"),
        "the click did not reach the handler:\n{dom}"
    );
}
