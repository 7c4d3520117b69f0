//! Sequence-number arithmetic modulo 2^32 (RFC 793 §3.3, RFC 1982 serial-number comparison).
//!
//! Comparisons are as Wireshark's `LT_SEQ`/`GT_SEQ`: `a < b` iff `(a - b) as i32 < 0`.

#[inline]
pub fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[inline]
pub fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

#[inline]
pub fn gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_around() {
        assert!(lt(0xFFFF_FFF0, 0x10));
        assert!(gt(0x10, 0xFFFF_FFF0));
        assert!(le(5, 5) && !lt(5, 5) && !gt(5, 5));
        assert!(lt(1, 2) && !lt(2, 1));
    }
}
