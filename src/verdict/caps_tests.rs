//! The aggregator's bounds (a flood of distinct clients must not hold a builder each, and the
//! counts must stay exact when it overflows) and its notion of one client host.

use super::*;
use crate::flow::testkit::fr;
use crate::topology::Topology;

fn finding(client: IpAddr, n: u64) -> Finding {
    Finding {
        signature: SignatureId::SynUnanswered,
        severity: Severity::Critical,
        client,
        server: "10.0.0.2:80".parse().unwrap(),
        flow: Some(n),
        weight: 1,
        first_ts: fr(n).ts,
        last_ts: fr(n).ts,
        note: "1 SYN, no answer".into(),
        evidence: vec![],
        facts: vec![],
    }
}

fn client(i: usize) -> IpAddr {
    IpAddr::from([10, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8])
}

#[test]
fn clients_beyond_the_builder_cap_are_counted_exactly_with_a_note() {
    let mut a = Aggregator::new(10, Thresholds::default());
    let n = MAX_CLIENT_BUILDERS + 500;
    for i in 0..n {
        a.add(finding(client(i), i as u64), None);
    }
    // The capped builders, plus one that takes every later client.
    assert_eq!(a.builders.len(), MAX_CLIENT_BUILDERS + 1);
    assert_eq!(a.overflowed, 500);
    let v = a.finish(&Topology::default());
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].flow_count, n as u64);
    assert!(v[0]
        .notes
        .iter()
        .any(|(t, _)| t.contains(&format!("more than {} clients", MAX_CLIENT_BUILDERS))));
}

#[test]
fn below_the_cap_nothing_is_merged_or_noted() {
    let mut a = Aggregator::new(10, Thresholds::default());
    for i in 0..100 {
        a.add(finding(client(i), i as u64), None);
    }
    assert_eq!(a.overflowed, 0);
    let v = a.finish(&Topology::default());
    assert_eq!(v[0].flow_count, 100);
    assert!(!v[0].notes.iter().any(|(t, _)| t.contains("more than")));
}

#[test]
fn loopback_addresses_are_one_client_host() {
    assert_eq!(
        same_host("::1".parse().unwrap()),
        same_host("127.0.0.1".parse().unwrap())
    );
    assert_eq!(
        same_host("127.0.0.53".parse().unwrap()),
        same_host("::1".parse().unwrap())
    );
    assert_eq!(
        same_host("::ffff:10.0.0.1".parse().unwrap()),
        "10.0.0.1".parse::<IpAddr>().unwrap()
    );
    // Global addresses of two families stay two hosts.
    assert_ne!(
        same_host("2001:db8::1".parse().unwrap()),
        same_host("10.0.0.1".parse().unwrap())
    );
}

#[test]
fn a_refusal_on_loopback_ipv6_absorbed_by_ipv4_loopback_is_info() {
    // curl: [::1]:80 refused at 1 ms, 127.0.0.1:80 connected at 2 ms.
    let mut a = Aggregator::new(10, Thresholds::default());
    let mut ok = crate::flow::testkit::established(2, "127.0.0.1:40000", "127.0.0.1:80", 2, 5);
    ok.resp_stats.bytes = 100;
    a.observe_flow(&ok);
    let mut f = finding("::1".parse().unwrap(), 1);
    f.signature = SignatureId::ConnectionRefused;
    f.server = "[::1]:80".parse().unwrap();
    a.add(f, None);
    let v = a.finish(&Topology::default());
    assert_eq!(v[0].severity, Severity::Info, "{:?}", v[0].notes);
    // Without the success, the refusal stands.
    let mut a = Aggregator::new(10, Thresholds::default());
    let mut f = finding("::1".parse().unwrap(), 1);
    f.signature = SignatureId::ConnectionRefused;
    f.server = "[::1]:80".parse().unwrap();
    a.add(f, None);
    assert_eq!(
        a.finish(&Topology::default())[0].severity,
        Severity::Critical
    );
}

/// Fuzzing regression (analyze_capture): a connection whose RST is timestamped before its data
/// (capture time stepped back) gave a verdict window that ended before it began.
#[test]
fn a_finding_with_time_running_backwards_gives_an_ordered_window() {
    let mut a = Aggregator::new(10, Thresholds::default());
    let mut f = finding("10.0.0.1".parse().unwrap(), 900);
    f.last_ts = fr(5).ts;
    a.add(f, None);
    let v = a.finish(&Topology::default());
    assert_eq!((v[0].first_ts, v[0].last_ts), (fr(5).ts, fr(900).ts));
}
