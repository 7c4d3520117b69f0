//! Invariants of a finished analysis and its reports: frame numbers name frames of the capture,
//! every "n of m" has n ≤ m, the JSON report parses back to what was written.

use serde_json::Value;

/// Every frame reference in `v` (`"frame": n` and `{"file": _, "number": n}`) names a frame in
/// `1..=frames`.
#[track_caller]
pub fn check_frame_numbers(v: &Value, frames: u64, what: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "frame" {
                    if let Some(n) = x.as_u64() {
                        assert!(
                            (1..=frames).contains(&n),
                            "{}: frame {} outside 1..={}",
                            what,
                            n,
                            frames
                        );
                    }
                }
                if k == "number" && m.contains_key("file") {
                    let n = x.as_u64().expect("frame number is a number");
                    assert!(
                        (1..=frames).contains(&n),
                        "{}: frame {} outside 1..={}",
                        what,
                        n,
                        frames
                    );
                }
                check_frame_numbers(x, frames, what);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| check_frame_numbers(x, frames, what)),
        _ => {}
    }
}

/// A number written with optional thousands commas, ending at byte `end` (exclusive) of `s`;
/// returns its value and where it starts.
fn number_before(s: &[u8], end: usize) -> Option<(u64, usize)> {
    let mut i = end;
    while i > 0
        && (s[i - 1].is_ascii_digit()
            || (s[i - 1] == b',' && i >= 2 && s[i - 2].is_ascii_digit() && i < end))
    {
        i -= 1;
    }
    if i == end || !s[i].is_ascii_digit() {
        return None;
    }
    let txt: String = s[i..end]
        .iter()
        .filter(|c| c.is_ascii_digit())
        .map(|&c| c as char)
        .collect();
    Some((txt.parse().ok()?, i))
}

fn number_after(s: &[u8], start: usize) -> Option<u64> {
    let mut i = start;
    while i < s.len()
        && (s[i].is_ascii_digit()
            || (s[i] == b',' && i + 1 < s.len() && s[i + 1].is_ascii_digit() && i > start))
    {
        i += 1;
    }
    if i == start {
        return None;
    }
    // "10.0.0.1", "3.5 s", "12:00": not a count.
    if i < s.len()
        && matches!(s[i], b'.' | b':' | b'/')
        && i + 1 < s.len()
        && s[i + 1].is_ascii_digit()
    {
        return None;
    }
    if i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'%') {
        return None;
    }
    let txt: String = s[start..i]
        .iter()
        .filter(|c| c.is_ascii_digit())
        .map(|&c| c as char)
        .collect();
    txt.parse().ok()
}

/// Every "N of M" (also "N word word of M", e.g. "3 connection attempts of 10") in `text` has
/// N ≤ M.
#[track_caller]
pub fn check_n_of_m(text: &str, what: &str) {
    let s = text.as_bytes();
    let mut from = 0;
    while let Some(p) = text[from..].find(" of ") {
        let at = from + p;
        from = at + 4;
        let Some(m) = number_after(s, at + 4) else {
            continue;
        };
        // Up to two words between N and "of".
        let mut end = at;
        let mut n = None;
        for _ in 0..3 {
            if let Some((v, start)) = number_before(s, end) {
                // "#3 of", "x3 of", "v1 of": not a count.
                if start == 0
                    || matches!(
                        s[start - 1],
                        b' ' | b'(' | b'\n' | b'\t' | b'|' | b'*' | b'['
                    )
                {
                    n = Some(v);
                }
                break;
            }
            let mut i = end;
            while i > 0 && (s[i - 1].is_ascii_alphabetic() || s[i - 1] == b'-') {
                i -= 1;
            }
            if i == end || i == 0 || s[i - 1] != b' ' {
                break;
            }
            end = i - 1;
        }
        if let Some(n) = n {
            assert!(n <= m, "{}: \"{} of {}\" in: {}", what, n, m, text);
        }
    }
}

/// Checks every string value of the JSON report.
pub fn check_strings(v: &Value, what: &str) {
    match v {
        Value::String(s) => check_n_of_m(s, what),
        Value::Object(m) => m.values().for_each(|x| check_strings(x, what)),
        Value::Array(a) => a.iter().for_each(|x| check_strings(x, what)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_of_m_forms() {
        check_n_of_m("3 of 10 connections", "t");
        check_n_of_m("606,312 of 4,000,000 body bytes", "t");
        check_n_of_m("retransmission #9 of 5", "t");
        check_n_of_m("12 ports of 10.0.0.1", "t");
        check_n_of_m("3 connection attempts of 10 from", "t");
        assert!(std::panic::catch_unwind(|| check_n_of_m("11 of 10 connections", "t")).is_err());
        assert!(
            std::panic::catch_unwind(|| check_n_of_m("5 connection attempts of 4", "t")).is_err()
        );
        assert!(
            std::panic::catch_unwind(|| check_n_of_m("4,001 of 4,000 body bytes", "t")).is_err()
        );
    }
}
