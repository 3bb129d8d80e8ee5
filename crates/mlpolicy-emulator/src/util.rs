//! Small helpers for the emulator: wall-clock formatting in the styles Azure uses,
//! base64/base64url (`base64`), HMAC-SHA256 for token signatures (`hmac` + `sha2`),
//! percent-decoding, opaque paging tokens and case-insensitive id comparison.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
#[cfg(test)]
use base64::engine::general_purpose::STANDARD;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A moment in UTC, through `jiff` (one calendar for the whole emulator).
fn utc(ms: u64) -> jiff::civil::DateTime {
    let ts = i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned(jiff::tz::TimeZone::UTC).datetime()
}

/// `2024-08-20T16:43:00.5779924Z`: ARM's seven-digit (100 ns) precision, as it stamps
/// `createdOn`, `updatedOn` and `systemData`. The digits below the millisecond are derived from
/// the instant itself, so an instant always prints the same.
pub fn iso8601_ticks(ms: u64) -> String {
    let below_ms = ms.wrapping_mul(7919) % 10_000;
    format!("{}.{:03}{below_ms:04}Z", utc(ms).strftime("%Y-%m-%dT%H:%M:%S"), ms % 1000)
}

/// The same instant as ARM's reads echo it: .NET's round-trip format, trailing zeros of the
/// fraction dropped (`…:08.404039Z`), so a client that compares timestamps as text sees
/// create and read differ.
pub fn iso8601_ticks_trimmed(ms: u64) -> String {
    let full = iso8601_ticks(ms);
    let fraction = full.trim_end_matches('Z').trim_end_matches('0').trim_end_matches('.');
    format!("{fraction}Z")
}

/// `2025-11-27T07:15:13Z` (Graph `createdDateTime` style).
pub fn iso8601_secs(ms: u64) -> String {
    utc(ms).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `11/24/2025 11:31:00 PM`, the US style ARM uses in `ExpiredAuthenticationToken`.
pub fn us_datetime(ms: u64) -> String {
    utc(ms).strftime("%-m/%-d/%Y %-I:%M:%S %p").to_string()
}

/// `20251127T071513Z`, the timestamp part of `x-ms-routing-request-id`.
pub fn compact_timestamp(ms: u64) -> String {
    utc(ms).strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// Unpadded base64url.
pub fn b64url_encode(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Standard padded base64.
#[cfg(test)]
pub fn b64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Decodes standard or url-safe base64, padded or not. `None` on any invalid input.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    if trimmed.contains(['-', '_']) {
        URL_SAFE_NO_PAD.decode(trimmed).ok()
    } else {
        STANDARD_NO_PAD.decode(trimmed).ok().or_else(|| URL_SAFE_NO_PAD.decode(trimmed).ok())
    }
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Checks an HMAC-SHA256 tag in constant time.
pub fn hmac_sha256_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return false;
    };
    mac.update(data);
    mac.verify_slice(tag).is_ok()
}

/// Percent-decodes a path segment (`+` stays `+`). Invalid escapes are kept verbatim.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// ASCII case-insensitive equality.
pub fn eq_ci(a: &str, b: &str) -> bool {
    // Compared from the end: ids of siblings share long prefixes and differ in their last
    // segment, so a mismatch shows after a few bytes instead of a whole id.
    a.len() == b.len() && a.bytes().rev().zip(b.bytes().rev()).all(|(x, y)| x.eq_ignore_ascii_case(&y))
}

/// Encodes a list offset as an opaque continuation token.
pub fn encode_skip_token(offset: usize) -> String {
    b64url_encode(format!("{{\"o\":{offset}}}").as_bytes())
}

/// Decodes a token produced by [`encode_skip_token`].
pub fn decode_skip_token(token: &str) -> Option<usize> {
    let raw = b64_decode(token)?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    v.get("o")?.as_u64().and_then(|o| usize::try_from(o).ok())
}

/// True when `s` parses as a GUID (with dashes, 36 chars).
pub fn is_guid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let tag = hmac_sha256(b"k", b"data");
        assert!(hmac_sha256_verify(b"k", b"data", &tag));
        assert!(!hmac_sha256_verify(b"k", b"datb", &tag));
    }

    #[test]
    fn base64_round_trip() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(b64_decode(&b64url_encode(s.as_bytes())).unwrap(), s.as_bytes());
            assert_eq!(b64_decode(&b64_encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(b64_encode(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn dates_format_like_azure() {
        // 2025-11-24T23:31:00Z
        let ms = 1_764_027_060_000;
        assert_eq!(iso8601_secs(ms), "2025-11-24T23:31:00Z");
        assert_eq!(us_datetime(ms), "11/24/2025 11:31:00 PM");
        assert_eq!(us_datetime(1_764_307_725_000), "11/28/2025 5:28:45 AM");
        assert_eq!(us_datetime(1_764_288_000_000), "11/28/2025 12:00:00 AM", "midnight is 12 AM");
        assert_eq!(compact_timestamp(1_764_307_725_042), "20251128T052845Z");
        let ticks = iso8601_ticks(1_764_307_725_040);
        assert_eq!(ticks.len(), "2025-11-28T05:28:45.0400000Z".len());
        assert!(ticks.starts_with("2025-11-28T05:28:45.040"), "{ticks}");
        let trimmed = iso8601_ticks_trimmed(1_764_307_725_040);
        assert!(ticks.starts_with(trimmed.trim_end_matches('Z')) && !trimmed.ends_with("0Z"), "{trimmed}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%23EXT%23b"), "a#EXT#b");
        assert_eq!(percent_decode("bad%zz%2"), "bad%zz%2");
    }

    #[test]
    fn skip_tokens_round_trip() {
        assert_eq!(decode_skip_token(&encode_skip_token(300)), Some(300));
        assert_eq!(decode_skip_token("???"), None);
    }
}
