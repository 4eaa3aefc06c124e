//! Dates as mail and logs write them, from a `SystemTime` passed in (no clock read here).

use std::time::{SystemTime, UNIX_EPOCH};

/// An RFC 5322 §3.3 `date-time` in UTC: `Tue, 1 Jul 2025 09:05:03 +0000`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_secs(1_751_360_703);
/// assert_eq!(smtp_relay::date::rfc5322(t), "Tue, 1 Jul 2025 09:05:03 +0000");
/// ```
pub fn rfc5322(time: SystemTime) -> String {
    let (days, secs) = split(time);
    let (y, m, d) = civil_from_days(days);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(m - 1) as usize];
    let (h, min, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    format!("{weekday}, {d} {month} {y} {h:02}:{min:02}:{s:02} +0000")
}

/// An RFC 3339 timestamp in UTC: `2025-07-01T09:05:03Z`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_secs(1_751_360_703);
/// assert_eq!(smtp_relay::date::rfc3339(t), "2025-07-01T09:05:03Z");
/// ```
pub fn rfc3339(time: SystemTime) -> String {
    let (days, secs) = split(time);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}Z")
}

/// Days since the epoch and seconds into the day (times before 1970 count as 1970).
fn split(time: SystemTime) -> (i64, i64) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    (secs.div_euclid(86_400), secs.rem_euclid(86_400))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(rfc5322(at(0)), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        // A leap day, and the last second of a century leap year.
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc5322(at(978_307_199)), "Sun, 31 Dec 2000 23:59:59 +0000");
        assert_eq!(rfc3339(at(4_102_444_800)), "2100-01-01T00:00:00Z");
    }
}
