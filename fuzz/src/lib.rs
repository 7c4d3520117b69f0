//! Helpers shared by the fuzz targets: link types in seed order, a tiny deterministic split
//! generator, and the report invariants checked on every `analyze` run.

use proxyscope::capture::LinkType;

/// Link types in the order the first byte of a `decode` input selects them (`make-seeds.py`
/// writes the same index).
pub const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
];

/// `inner` is a sub-slice of `outer` (decoders borrow, never copy).
#[track_caller]
pub fn assert_within(outer: &[u8], inner: &[u8], what: &str) {
    if inner.is_empty() {
        return;
    }
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    assert!(
        i >= o && i + inner.len() <= o + outer.len(),
        "{} is not inside the frame",
        what
    );
}

/// xorshift64*: split points and interleavings chosen by the fuzzer's seed, reproducibly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

pub mod report;
pub mod stream;
