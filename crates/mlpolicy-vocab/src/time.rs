//! Timestamps as Azure writes them (RFC 3339), through `jiff`.

use jiff::Timestamp;

/// Seconds since the Unix epoch now.
pub fn now_secs() -> i64 {
    Timestamp::now().as_second()
}

/// Seconds since the epoch as RFC 3339 UTC with whole seconds (`2025-11-27T08:04:05Z`).
pub fn rfc3339(secs: i64) -> String {
    let t = Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The current time as RFC 3339 UTC with whole seconds.
pub fn rfc3339_now() -> String {
    rfc3339(now_secs())
}

/// Seconds since the epoch of an RFC 3339 date-time (`2025-06-01T10:00:00Z`,
/// `2025-06-01T10:00:00.1234567+02:00`); `None` when malformed.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    text.trim().parse::<Timestamp>().ok().map(Timestamp::as_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_230_645), "2025-11-27T08:04:05Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses_what_graph_arm_and_people_write() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2025-11-27T08:04:05.1234567Z"), Some(1_764_230_645));
        assert_eq!(parse_rfc3339("2025-11-27T10:04:05+02:00"), Some(1_764_230_645));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in
            ["", "2025-11-27", "2025-13-01T00:00:00Z", "2025-11-27T08:04:05", "2025-11-27T08:04:05.Z", "yesterday"]
        {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
