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

    /// RFC 3339 in UTC with microsecond precision, e.g. `2026-11-26T08:12:37.123456Z`.
    pub fn rfc3339(self) -> String {
        self.to_string()
    }

    /// Seconds since the epoch as a float (Wireshark's `frame.time_epoch`).
    pub fn epoch_secs(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            y,
            m,
            d,
            sod / 3600,
            (sod / 60) % 60,
            sod % 60,
            nanos / 1000
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

/// Formats a duration in nanoseconds for humans: `850µs`, `12.3ms`, `4.20s`, `3m05s`, `2h05m`,
/// `35d13h` (each unit truncated, never rounded up into the next).
pub fn human_duration(nanos: i64) -> String {
    let n = nanos.max(0);
    if n < NANOS_PER_MILLI {
        format!("{}µs", n / 1000)
    } else if n < NANOS_PER_SEC {
        format!("{:.1}ms", n as f64 / NANOS_PER_MILLI as f64)
    } else if n < 60 * NANOS_PER_SEC {
        format!("{:.2}s", n as f64 / NANOS_PER_SEC as f64)
    } else {
        let s = n / NANOS_PER_SEC;
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else if s < 86_400 {
            format!("{}h{:02}m", s / 3600, (s / 60) % 60)
        } else {
            format!("{}d{:02}h", s / 86_400, (s / 3600) % 24)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
