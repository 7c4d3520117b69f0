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
                v.notes.first().cloned().unwrap_or_default()
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
        SignatureId::TimeWaitPileup => {
            v.summary = v.notes.first().cloned().unwrap_or_default();
            let holder = v
                .facts
                .iter()
                .find(|f| f.0 == "holder")
                .map(|f| f.1.clone())
                .unwrap_or_default();
            v.likely_causes = vec![
                "no keep-alive between these hosts: a new connection per request".into(),
                "ephemeral port exhaustion on the closing side when the rate keeps up".into(),
            ];
            v.next_checks = vec![
                format!("on {}: `ss -tan state time-wait | wc -l`", holder),
                "enable keep-alive / upstream connection pooling (nginx: `keepalive` in the upstream block and `proxy_http_version 1.1`)".into(),
                "`sysctl net.ipv4.ip_local_port_range net.ipv4.tcp_tw_reuse`".into(),
            ];
            v.wireshark_filter = format!("{af}.addr=={ip} && tcp.port=={port} && (tcp.flags.fin==1 || tcp.analysis.reused_ports)");
        }
    }
}
