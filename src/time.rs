//! Capture time: the only clock the analysis core knows.
//!
//! Owns: `Timestamp` (nanoseconds since the Unix epoch, as read from the capture's record
//! headers) and its formatting. Must not: read the system clock (only `main.rs` and live capture
//! do that). Timestamps are kept as integers; formatting happens only for what is printed.

use std::fmt;

/// A point in capture time, in nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

pub const NANOS_PER_SEC: i64 = 1_000_000_000;
pub const NANOS_PER_MILLI: i64 = 1_000_000;

impl Timestamp {
    pub fn from_parts(secs: i64, nanos: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(NANOS_PER_SEC).saturating_add(nanos))
    }

    /// Nanoseconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn nanos_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Seconds from `earlier` to `self` as a float, for printing and JSON.
    pub fn secs_since(self, earlier: Timestamp) -> f64 {
        self.nanos_since(earlier) as f64 / NANOS_PER_SEC as f64
    }

    pub fn add_nanos(self, nanos: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(nanos))
    }

    /// UTC year, month, day, hour, minute, second and microsecond (what `Display` writes).
    pub fn civil(self) -> (i64, u32, u32, i64, i64, i64, i64) {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (y, m, d, sod / 3600, (sod / 60) % 60, sod % 60, nanos / 1000)
    }

    /// Seconds since the epoch as a float (Wireshark's `frame.time_epoch`).
    pub fn epoch_secs(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d, h, mi, s, micros) = self.civil();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            y, m, d, h, mi, s, micros
        )
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A length of capture time, in nanoseconds (never negative when built from a flag). Displayed
/// exactly and parseably (`3s`, `1m30s`, `500ms`), so that command-line defaults shown by
/// `--help` come from the configuration's `Default` and read back as the same value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(i64);

impl Duration {
    pub const fn from_nanos(n: i64) -> Duration {
        Duration(n)
    }

    pub const fn from_millis(ms: i64) -> Duration {
        Duration(ms * NANOS_PER_MILLI)
    }

    pub const fn from_secs(s: i64) -> Duration {
        Duration(s * NANOS_PER_SEC)
    }

    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// As the standard library's duration (negative values as zero), for wall-clock waits.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0.max(0) as u64)
    }
}

impl fmt::Display for Duration {
    /// Exact: the largest units first, each non-zero part once (`1h30m`, `2s500ms`, `0s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 <= 0 {
            return f.write_str("0s");
        }
        let mut n = self.0;
        for (unit, ns) in [
            ("d", 86_400 * NANOS_PER_SEC),
            ("h", 3600 * NANOS_PER_SEC),
            ("m", 60 * NANOS_PER_SEC),
            ("s", NANOS_PER_SEC),
            ("ms", NANOS_PER_MILLI),
            ("us", 1_000),
            ("ns", 1),
        ] {
            if n >= ns {
                write!(f, "{}{}", n / ns, unit)?;
                n %= ns;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Duration {
    type Err = String;

    /// As typed on the command line (`parse_duration`; a bare number is seconds).
    fn from_str(s: &str) -> Result<Duration, String> {
        parse_duration(s, NANOS_PER_SEC).map(Duration)
    }
}

/// Formats a duration in nanoseconds for humans: `850µs`, `12.3ms`, `4.20s`, `3m05s`, `2h05m`,
/// `35d13h` (each unit truncated, never rounded up into the next).
pub fn human_duration(nanos: i64) -> String {
    let mut s = String::new();
    write_human_duration(&mut s, nanos);
    s
}

/// `human_duration` appended to `out` (the `flows` table writes one per row: no allocation).
pub fn write_human_duration(out: &mut String, nanos: i64) {
    use fmt::Write;
    let n = nanos.max(0);
    // Writing to a `String` cannot fail.
    let _ = if n < NANOS_PER_MILLI {
        write!(out, "{}µs", n / 1000)
    } else if n < NANOS_PER_SEC {
        write!(out, "{:.1}ms", n as f64 / NANOS_PER_MILLI as f64)
    } else if n < 60 * NANOS_PER_SEC {
        write!(out, "{:.2}s", n as f64 / NANOS_PER_SEC as f64)
    } else {
        let s = n / NANOS_PER_SEC;
        if s < 3600 {
            write!(out, "{}m{:02}s", s / 60, s % 60)
        } else if s < 86_400 {
            write!(out, "{}h{:02}m", s / 3600, (s / 60) % 60)
        } else {
            write!(out, "{}d{:02}h", s / 86_400, (s / 3600) % 24)
        }
    };
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a duration as typed on the command line, in nanoseconds: a bare number is in
/// `bare_unit_ns` (seconds for every flag today), otherwise one or more number+unit parts,
/// largest first or not: `500ms`, `6s`, `1.5s`, `1m30s`, `2h`, `1d12h`. Units: `ns`, `us`/`µs`,
/// `ms`, `s`, `m`, `h`, `d`. Negative values, empty input and unknown units are errors.
pub fn parse_duration(s: &str, bare_unit_ns: i64) -> Result<i64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let bad = || {
        format!(
            "'{}' is not a duration (examples: 6s, 500ms, 1m30s, 2h; a bare number is {})",
            s,
            match bare_unit_ns {
                NANOS_PER_SEC => "seconds".to_string(),
                n => format!("{} ns units", n),
            }
        )
    };
    let scaled = |num: &str, unit: i64| -> Result<i64, String> {
        let v: f64 = num.parse().map_err(|_| bad())?;
        let ns = v * unit as f64;
        if !(v.is_finite() && v >= 0.0 && ns < i64::MAX as f64) {
            return Err(bad());
        }
        Ok(ns.round() as i64)
    };
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return scaled(t, bare_unit_ns);
    }
    let mut total: i64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit_ns = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => NANOS_PER_MILLI,
            "s" => NANOS_PER_SEC,
            "m" | "min" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            "d" => 86_400 * NANOS_PER_SEC,
            _ => return Err(bad()),
        };
        total = total.checked_add(scaled(num, unit_ns)?).ok_or_else(bad)?;
        rest = next;
    }
    Ok(total)
}

/// Parses an RFC 3339 date-time: `2026-11-26T08:12:37Z`, `2026-11-26T08:12:37.25+02:00`
/// (a space may stand for the `T`; the zone is required).
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
    let bad = || {
        format!(
            "'{}' is not an RFC 3339 time (example: 2026-11-26T08:12:37Z or 2026-11-26T09:12:37.5+01:00)",
            s
        )
    };
    let b = s.trim().as_bytes();
    if b.len() < 20 {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let part = std::str::from_utf8(&b[r]).map_err(|_| bad())?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let digits = &b[start..i.min(start + 9)];
        for (k, c) in digits.iter().enumerate() {
            nanos += (c - b'0') as i64 * 10i64.pow(8 - k as u32);
        }
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            let o = oh * 3600 + om * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Ok(Timestamp::from_parts(secs, nanos))
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn durations_print_exactly_and_read_back() {
        for (d, text) in [
            (Duration::from_secs(3), "3s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(2500), "2s500ms"),
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(86_400 + 3600), "1d1h"),
            (Duration::from_nanos(1_500), "1us500ns"),
            (Duration::from_nanos(0), "0s"),
        ] {
            assert_eq!(d.to_string(), text);
            assert_eq!(text.parse::<Duration>().unwrap(), d, "{}", text);
        }
        assert_eq!("7".parse::<Duration>().unwrap(), Duration::from_secs(7));
        assert!("7 parsecs".parse::<Duration>().is_err());
        assert_eq!(
            Duration::from_secs(2).to_std(),
            std::time::Duration::from_secs(2)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units() {
        let s = NANOS_PER_SEC;
        assert_eq!(parse_duration("6s", s), Ok(6 * s));
        assert_eq!(parse_duration("1m30s", s), Ok(90 * s));
        assert_eq!(parse_duration("500ms", s), Ok(500 * NANOS_PER_MILLI));
        assert_eq!(parse_duration("2h", s), Ok(7200 * s));
        assert_eq!(parse_duration("1d12h", s), Ok(36 * 3600 * s));
        assert_eq!(parse_duration("1.5s", s), Ok(1_500_000_000));
        assert_eq!(parse_duration("250us", s), Ok(250_000));
        assert_eq!(parse_duration("250µs", s), Ok(250_000));
        assert_eq!(parse_duration("10ns", s), Ok(10));
        assert_eq!(parse_duration(" 2m ", s), Ok(120 * s));
    }

    #[test]
    fn bare_numbers_keep_their_unit() {
        let s = NANOS_PER_SEC;
        assert_eq!(parse_duration("3", s), Ok(3 * s));
        assert_eq!(parse_duration("0.25", s), Ok(s / 4));
        assert_eq!(parse_duration("300", s), Ok(300 * s));
        assert_eq!(
            parse_duration("7", NANOS_PER_MILLI),
            Ok(7 * NANOS_PER_MILLI)
        );
    }

    #[test]
    fn bad_durations_are_errors() {
        for bad in [
            "", "s", "6x", "6 s", "-1s", "1s-", "m5", "1..2s", "abc", "1e3", "inf",
        ] {
            let e = parse_duration(bad, NANOS_PER_SEC);
            assert!(e.is_err(), "{:?} parsed as {:?}", bad, e);
        }
        assert!(parse_duration("6x", NANOS_PER_SEC)
            .unwrap_err()
            .contains("examples: 6s"));
    }

    #[test]
    fn rfc3339_times() {
        let t = parse_rfc3339("2026-11-26T08:12:37.5Z").unwrap();
        assert_eq!(t, Timestamp::from_parts(1_795_680_757, 500_000_000));
        assert_eq!(t.to_string(), "2026-11-26T08:12:37.500000Z");
        // The same instant with an offset, and with a space for the T.
        assert_eq!(parse_rfc3339("2026-11-26T09:12:37.5+01:00").unwrap(), t);
        assert_eq!(parse_rfc3339("2026-11-26 03:12:37.5-05:00").unwrap(), t);
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00Z").unwrap(),
            Timestamp::from_parts(951_782_400, 0)
        );
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:00.000000001Z").unwrap(),
            Timestamp(1)
        );
        for bad in [
            "2026-11-26",
            "2026-11-26T08:12:37",
            "2026-13-01T00:00:00Z",
            "yesterday",
            "2026-11-26T08:12:37.Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{}", bad);
        }
    }

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000Z");
        // 2026-11-26T08:12:37.5Z
        let t = Timestamp::from_parts(1_795_680_757, 500_000_000);
        assert_eq!(t.to_string(), "2026-11-26T08:12:37.500000Z");
        // leap day
        let t = Timestamp::from_parts(951_782_400, 0);
        assert_eq!(t.to_string(), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(850_000), "850µs");
        assert_eq!(human_duration(12_300_000), "12.3ms");
        assert_eq!(human_duration(4_200_000_000), "4.20s");
        assert_eq!(human_duration(185 * NANOS_PER_SEC), "3m05s");
    }

    #[test]
    fn human_durations_hours_and_days() {
        let s = NANOS_PER_SEC;
        // Below an hour: minutes and seconds, as before.
        assert_eq!(human_duration(3599 * s), "59m59s");
        assert_eq!(human_duration(3600 * s - 1), "59m59s");
        // From an hour: hours and minutes.
        assert_eq!(human_duration(3600 * s), "1h00m");
        assert_eq!(human_duration((2 * 3600 + 5 * 60 + 59) * s), "2h05m");
        assert_eq!(human_duration((23 * 3600 + 59 * 60) * s), "23h59m");
        assert_eq!(human_duration(86_400 * s - 1), "23h59m");
        // From a day: days and hours.
        assert_eq!(human_duration(86_400 * s), "1d00h");
        assert_eq!(human_duration((86_400 + 3 * 3600 + 59 * 60) * s), "1d03h");
        // The "3071347m43s" (184 280 863 s).
        assert_eq!(human_duration(184_280_863 * s), "2132d21h");
    }
}
