//! One frame through `decode` for each link type. The first byte picks the link type (the
//! seeds from `make-seeds.py` use the same order as `proxyscope_fuzz::LINKS`), the rest is the
//! frame. Invariants beyond "no panic": a decoded segment borrows its payload from inside the
//! frame, never more than the wire length says, and `truncated` says exactly when bytes are
//! missing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proxyscope::decode::{self, Decoded};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let link = proxyscope_fuzz::LINKS[sel as usize % proxyscope_fuzz::LINKS.len()];
    let _ = decode::host_direction(link, frame);
    if let Ok(ip) = decode::network_layer(link, frame) {
        proxyscope_fuzz::assert_within(frame, ip, "network layer");
    }
    match decode::decode(link, frame) {
        Decoded::Tcp(seg) => {
            proxyscope_fuzz::assert_within(frame, seg.payload, "TCP payload");
            assert!(
                seg.payload.len() as u64 <= seg.payload_len as u64,
                "captured payload {} longer than the wire length {}",
                seg.payload.len(),
                seg.payload_len
            );
            assert_eq!(
                seg.truncated,
                (seg.payload.len() as u32) < seg.payload_len,
                "truncated flag"
            );
            assert!(
                (seg.payload_len as usize) < frame.len() + 65_536,
                "payload length {} from a {}-byte frame",
                seg.payload_len,
                frame.len()
            );
        }
        Decoded::Icmp(_) | Decoded::Skip(_) => {}
    }
});
