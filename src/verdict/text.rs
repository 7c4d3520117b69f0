//! The words of a verdict: summary sentence, likely causes, next checks, Wireshark filter.

use super::Verdict;
use crate::signature::{Severity, SignatureId};
use std::net::SocketAddr;

fn addr_field(server: &SocketAddr) -> &'static str {
    if server.is_ipv4() {
        "ip"
    } else {
        "ipv6"
    }
}

fn fact(v: &Verdict, k: &str) -> Option<String> {
    v.facts.iter().find(|f| f.0 == k).map(|f| f.1.clone())
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", n, if n == 1 { one } else { many })
}

pub fn fill(v: &mut Verdict, established: u64) {
    let s = v.server;
    let ip = s.ip();
    let port = s.port();
    let af = addr_field(&s);
    let clients = if v.clients == 1 {
        format!("{}", v.client)
    } else if v.clients as usize >= super::MAX_CLIENTS {
        // Distinct clients are counted up to the cap (a SYN flood from a million sources).
        format!("at least {} clients", v.clients)
    } else {
        format!("{} clients", v.clients)
    };
    let n = v.flow_count;
    let m = v.total_flows;
    match v.signature {
        SignatureId::SynUnanswered => {
            v.summary = format!(
                "{} of {} from {} to {} got no SYN-ACK{}",
                plural(n, "connection attempt", "connection attempts"),
                m,
                clients,
                s,
                if established > 0 {
                    format!(" ({} other connections to it succeeded)", established)
                } else {
                    String::new()
                }
            );
            v.likely_causes = vec![
                format!("{} is down or unreachable", ip),
                "a firewall, ACL or security group silently drops the SYNs".into(),
                "a route blackhole or a wrong address in the configuration".into(),
            ];
            v.next_checks = vec![
                format!("from {}: `nc -vz -w 3 {} {}`", v.client, ip, port),
                format!(
                    "on {}: `ss -ltn 'sport = :{}'` and the firewall (`nft list ruleset`)",
                    ip, port
                ),
                format!("on {}: `ip route get {}`", v.client, ip),
            ];
            v.wireshark_filter = format!(
                "{af}.dst=={ip} && tcp.dstport=={port} && tcp.flags.syn==1 && tcp.flags.ack==0"
            );
        }
        SignatureId::ConnectionRefused => {
            v.summary = format!(
                "{} of {} from {} to {} {} refused with RST: nothing accepts connections on that port",
                plural(n, "connection attempt", "connection attempts"),
                m,
                clients,
                s,
                if n == 1 { "was" } else { "were" }
            );
            v.likely_causes = vec![
                format!("nothing listens on {} (service down, crashed, not started, or listening on another port/address)", s),
                "a firewall rejecting with a TCP reset".into(),
            ];
            v.next_checks = vec![
                format!(
                    "check that something listens on {}: `ss -ltnp 'sport = :{}'` on {}",
                    s, port, ip
                ),
                "check the port in the proxy's upstream configuration".into(),
                format!("`nft list ruleset | grep -n reject` on {}", ip),
            ];
            v.wireshark_filter = format!("{af}.addr=={ip} && tcp.port=={port} && (tcp.flags.reset==1 || (tcp.flags.syn==1 && tcp.flags.ack==0))");
        }
        SignatureId::ConnectionReset => {
            let [info, warn, crit] = v.by_severity;
            let mut parts = Vec::new();
            if crit > 0 {
                parts.push(format!("{} with a request outstanding", crit));
            }
            if warn > 0 {
                parts.push(format!("{} with data in flight", warn));
            }
            if info > 0 {
                parts.push(format!(
                    "{} after a completed exchange or while closing",
                    info
                ));
            }
            v.summary = format!(
                "{} of {} to {} {} reset: {}",
                plural(n, "connection", "connections"),
                m,
                s,
                if n == 1 { "was" } else { "were" },
                parts.join(", ")
            );
            if v.severity == Severity::Info {
                v.likely_causes = vec!["finished connections closed with RST on purpose (common for proxies, load balancers and browsers): not an outage by itself".into()];
            } else {
                v.likely_causes = vec![
                    "the server process crashed, was killed or restarted mid-request".into(),
                    "an idle timeout on a middlebox or proxy shorter than the peer's keep-alive"
                        .into(),
                    "the proxy aborted the upstream request (client gone, timeout)".into(),
                ];
            }
            v.next_checks = vec![
                format!(
                    "server logs and `journalctl`/`dmesg` (OOM killer) on {} around {}",
                    ip, v.first_ts
                ),
                "compare keep-alive and idle timeouts of client, proxy and backend".into(),
            ];
            v.wireshark_filter =
                format!("{af}.addr=={ip} && tcp.port=={port} && tcp.flags.reset==1");
        }
        SignatureId::RetransmissionStorm => {
            v.summary = format!(
                "{} of {} to {} resent the same segment {}+ times (worst: {})",
                plural(n, "connection", "connections"),
                m,
                s,
                v.facts
                    .iter()
                    .find(|f| f.0 == "threshold")
                    .map(|f| f.1.clone())
                    .unwrap_or_else(|| "3".into()),
                v.notes.first().map(|n| n.0.clone()).unwrap_or_default()
            );
            v.likely_causes = vec![
                "packet loss or congestion on the path".into(),
                "a middlebox dropping segments (MTU / PMTUD blackhole, firewall state)".into(),
                "an overloaded receiver or sender".into(),
            ];
            v.next_checks = vec![
                "`nstat -az TcpRetransSegs TcpExtTCPLostRetransmit` and `ip -s link` on both ends"
                    .into(),
                format!("`ping -M do -s 1472 {}` to test the path MTU", ip),
                format!("`ss -ti dst {}` for retransmits and RTT", ip),
            ];
            v.wireshark_filter =
                format!("{af}.addr=={ip} && tcp.port=={port} && tcp.analysis.retransmission");
        }
        SignatureId::TlsStall => {
            let sni = fact(v, "sni")
                .map(|s| format!(" (SNI {})", s))
                .unwrap_or_default();
            v.summary = format!(
                "{} of {} to {}{} sent a ClientHello that got no ServerHello and no alert",
                plural(n, "TLS handshake", "TLS handshakes"),
                m,
                s,
                sni
            );
            v.likely_causes = vec![
                format!(
                    "{} does not speak TLS (a plain-HTTP or other service, or the wrong port)",
                    s
                ),
                "a middlebox or firewall dropping the handshake (e.g. SNI filtering)".into(),
                "an overloaded or hung TLS server".into(),
            ];
            v.next_checks = vec![
                format!(
                    "`openssl s_client -connect {} -servername <name>` from {}",
                    s, v.client
                ),
                format!(
                    "`curl -v http://{}/` to see whether it speaks plain HTTP",
                    s
                ),
                format!(
                    "on {}: the service's logs and `ss -ltnp 'sport = :{}'`",
                    ip, port
                ),
            ];
            v.wireshark_filter = format!("{af}.addr=={ip} && tcp.port=={port} && (tls.handshake.type==1 || tcp.flags.fin==1 || tcp.flags.reset==1)");
        }
        SignatureId::TlsAlert => {
            let alert = fact(v, "alert").unwrap_or_default();
            let from = fact(v, "alert_from").unwrap_or_default();
            v.summary = format!(
                "{} of {} to {} failed with a TLS alert ({}, from the {})",
                plural(n, "TLS handshake", "TLS handshakes"),
                m,
                s,
                alert,
                from
            );
            v.likely_causes = vec![
                "no common TLS version, cipher suite or ALPN protocol between client and server".into(),
                "an unknown SNI name, or a certificate the client rejects (expired, unknown CA, wrong name)".into(),
                "a client certificate required or rejected".into(),
            ];
            v.next_checks = vec![
                format!("`openssl s_client -connect {} -servername <name> -alpn h2,http/1.1` and compare with the ClientHello's offer", s),
                "compare the TLS versions/ciphers/ALPN configured on both sides (ssl_protocols, ssl_ciphers, proxy_ssl_*)".into(),
                format!("the server's certificate: `openssl s_client -connect {} -showcerts | openssl x509 -noout -dates -subject -issuer`", s),
            ];
            v.wireshark_filter = format!("{af}.addr=={ip} && tcp.port=={port} && (tls.handshake.type==1 || tls.handshake.type==2 || tls.record.content_type==21)");
        }
        SignatureId::GatewayError => {
            let statuses = fact(v, "status").unwrap_or_default();
            let server_hdr = fact(v, "server_header")
                .map(|s| format!(" (Server: {})", s))
                .unwrap_or_default();
            let body = fact(v, "body")
                .map(|b| format!("; body: \"{}\"", b.chars().take(80).collect::<String>()))
                .unwrap_or_default();
            v.summary = format!(
                "{} answered {} with a gateway error: {}{}{}",
                s,
                plural(n, "request", "requests"),
                statuses,
                server_hdr,
                body
            );
            v.likely_causes = vec![
                "502: the proxy's upstream refused, reset or sent garbage".into(),
                "503: no healthy upstream (all servers down or marked down), or overload".into(),
                "504: the upstream did not accept the connection or answer in time".into(),
            ];
            let product = fact(v, "server_header")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let logs = if product.contains("nginx") {
                "nginx: error.log `upstream` lines — `connect() failed (111: Connection refused)`, `upstream timed out (110)`"
            } else if product.contains("haproxy") {
                "haproxy: the log line's termination state — `SC--` connection refused, `sH--` server timeout, `SD--` server aborted"
            } else if product.contains("squid") {
                "squid: cache.log and access.log (`TCP_MISS/503`, `ERR_CONNECT_FAIL`)"
            } else if product.contains("apache") {
                "Apache: error_log `proxy:error` lines (`AH00957`, `AH01114`)"
            } else if product.contains("varnish") {
                "Varnish: `varnishlog -g request -q 'RespStatus >= 500'` (`FetchError`)"
            } else if product.contains("caddy") {
                "Caddy: its log's `dial tcp … connect: connection refused` / `context deadline exceeded`"
            } else {
                "the proxy's error log"
            };
            v.next_checks = vec![
                format!("on the proxy at {} around {}: {}", ip, v.first_ts, logs),
                "the proxy's upstream health and the backend's listener (see other verdicts on the backend leg)".into(),
                "capture the proxy→backend leg too (`tcpdump -i any` on the proxy) to see the cause".into(),
            ];
            v.wireshark_filter = format!("{af}.src=={ip} && tcp.srcport=={port} && http.response.code >= 502 && http.response.code <= 504");
        }
        SignatureId::TruncatedResponse => crate::signature::truncated_response::words(v),
        SignatureId::ProxyDenied => crate::signature::proxy_denied::words(v),
        SignatureId::AbortiveClose => {
            v.summary = format!(
                "{} of {} connections to {} ended with an abortive close (RST) after complete exchanges: normal for haproxy and for clients that close with SO_LINGER 0, not a failure",
                n, m, s
            );
            v.likely_causes = vec!["the closing side chose RST over FIN on purpose (haproxy closes finished backend connections so; browsers drop idle keep-alive connections so)".into()];
            v.next_checks =
                vec!["nothing to do unless other verdicts point at this endpoint".into()];
            v.wireshark_filter =
                format!("{af}.addr=={ip} && tcp.port=={port} && tcp.flags.reset==1");
        }
        SignatureId::UpstreamTimeout => {
            v.summary = format!(
                "{} to {} got no response byte until the requester gave up",
                plural(n, "request", "requests"),
                s
            );
            v.likely_causes = vec![
                format!(
                    "{} is hung or too slow (blocked workers, a slow dependency, a long GC)",
                    s
                ),
                "the proxy's read timeout is shorter than the backend's worst-case response time"
                    .into(),
            ];
            v.next_checks = vec![
                format!(
                    "the service's logs and thread dumps on {} around {}",
                    ip, v.first_ts
                ),
                "the proxy's timeouts (nginx `proxy_read_timeout`, haproxy `timeout server`)"
                    .into(),
                format!(
                    "`curl -w '%{{time_starttransfer}}' http://{}/…` directly against the backend",
                    s
                ),
            ];
            v.wireshark_filter = format!("{af}.addr=={ip} && tcp.port=={port} && (http.request || tcp.flags.fin==1 || tcp.flags.reset==1)");
        }
        SignatureId::DirectOkProxiedFails => {
            v.summary = format!(
                "{} reached the service directly with success while {} through the proxy {} failed: the proxy, not the backend, is the problem",
                clients,
                plural(n, "request", "requests"),
                s
            );
            v.likely_causes = vec![
                format!("the proxy at {} is misconfigured (wrong upstream address or port, TLS or Host settings)", s),
                "a firewall / ACL on the proxy's backend side blocks the proxy but not the clients".into(),
                "the proxy marked the backend down (health checks) although it answers".into(),
            ];
            v.next_checks = vec![
                format!(
                    "the upstream configuration of the proxy at {} (address, port, scheme)",
                    ip
                ),
                format!("from the proxy host: `curl -v` the backend the clients reach directly"),
                "the proxy's error log and the firewall on its backend side".into(),
            ];
            v.wireshark_filter = format!("http.response && ({af}.src=={ip} && tcp.srcport=={port} || http.response.code < 400)");
        }
        SignatureId::TimeWaitPileup => crate::signature::time_wait_pileup::words(v),
        SignatureId::PortScan => crate::signature::port_scan::words(v),
        SignatureId::ListenQueueOverflow => crate::signature::listen_queue_overflow::words(v),
    }
}
