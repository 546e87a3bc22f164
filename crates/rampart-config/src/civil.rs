//! Calendar dates to and from days since 1970-01-01, proleptic Gregorian (Howard Hinnant's
//! algorithms). The one copy, used for RFC 3339 times (`revoke_before` here, log
//! timestamps) and certificate validity in `rampart-server`.

/// Days since 1970-01-01 to (year, month 1–12, day 1–31).
pub fn from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month 1–12, day 1–31) to days since 1970-01-01 (negative before it). The month
/// and day are not checked against each other: the caller validates them.
pub fn to_days(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds as RFC 3339 in UTC (`2026-12-02T21:26:15Z`).
pub fn rfc3339(unix: i64) -> String {
    let (y, m, d) = from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_unix_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_247_564), "2026-12-02T21:39:24Z");
    }

    #[test]
    fn known_dates() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (11_016, (2000, 2, 29)),
            (19_723, (2024, 1, 1)),
            (19_782, (2024, 2, 29)),
            (20_414, (2025, 11, 22)),
            (20_454, (2026, 1, 1)),
            (-1, (1969, 12, 31)),
        ] {
            assert_eq!(from_days(days), date, "{days}");
            assert_eq!(to_days(date.0, i64::from(date.1), i64::from(date.2)), days);
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        let mut last = from_days(-1);
        for days in 0..146_097 {
            let (y, m, d) = from_days(days);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            assert_ne!((y, m, d), last);
            assert_eq!(to_days(y, i64::from(m), i64::from(d)), days);
            last = (y, m, d);
        }
    }
}
