//! The two dialects' date formats, written into fixed-size buffers. A list of 100 tokens writes
//! up to 300 dates; chrono's `format` re-parses its pattern and goes through `core::fmt` for each,
//! which was the largest part of a list's own CPU time (docs/benchmarks.md, section 4).
//!
//! Years outside 0..=9999 (only a corrupt item could hold one) fall back to chrono.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

const DAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Quay's format: RFC 2822 in UTC written as `-0000`, e.g. `Wed, 08 Jan 2025 19:32:48 -0000`.
pub fn serialize_rfc2822<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    with_rfc2822(*at, |text| s.serialize_str(text))
}

pub fn serialize_optional_rfc2822<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize_rfc2822(at, s),
        None => s.serialize_none(),
    }
}

/// Unleash's format: ISO 8601 in UTC with milliseconds, as JavaScript's `Date.toJSON`,
/// e.g. `2023-04-19T08:15:14.000Z`.
pub fn serialize_iso8601<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    with_iso8601(*at, |text| s.serialize_str(text))
}

pub fn serialize_optional_iso8601<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize_iso8601(at, s),
        None => s.serialize_none(),
    }
}

/// The `Token-Expiration` header's value: RFC 2822 in UTC written as `+0000` (as chrono's
/// `to_rfc2822`, which panics for a year past 9999), e.g. `Thu, 03 Dec 2026 16:41:28 +0000`.
/// `None` for a year outside 0..=9999, which RFC 2822 cannot write: the header is left out.
pub fn rfc2822_header(at: DateTime<Utc>) -> Option<String> {
    rfc2822_bytes(at, b"+0000").map(|out| ascii(&out).to_owned())
}

fn with_rfc2822<R>(at: DateTime<Utc>, f: impl FnOnce(&str) -> R) -> R {
    match rfc2822_bytes(at, b"-0000") {
        Some(out) => f(ascii(&out)),
        None => f(&at.format("%a, %d %b %Y %H:%M:%S -0000").to_string()),
    }
}

/// RFC 2822 with the zone `zone`, or `None` beyond four-digit years.
fn rfc2822_bytes(at: DateTime<Utc>, zone: &[u8; 5]) -> Option<[u8; 31]> {
    let year = four_digit_year(at)?;
    let mut out = *b"Ddd, 00 Mmm 0000 00:00:00 -0000";
    out[0..3].copy_from_slice(DAYS[at.weekday().num_days_from_monday() as usize]);
    digits(&mut out[5..7], at.day());
    out[8..11].copy_from_slice(MONTHS[at.month0() as usize]);
    digits(&mut out[12..16], year);
    digits(&mut out[17..19], at.hour());
    digits(&mut out[20..22], at.minute());
    digits(&mut out[23..25], at.second());
    out[26..31].copy_from_slice(zone);
    Some(out)
}

fn with_iso8601<R>(at: DateTime<Utc>, f: impl FnOnce(&str) -> R) -> R {
    let Some(year) = four_digit_year(at) else {
        return f(&at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    };
    let mut out = *b"0000-00-00T00:00:00.000Z";
    digits(&mut out[0..4], year);
    digits(&mut out[5..7], at.month());
    digits(&mut out[8..10], at.day());
    digits(&mut out[11..13], at.hour());
    digits(&mut out[14..16], at.minute());
    digits(&mut out[17..19], at.second());
    // A leap second's milliseconds run past 999; JavaScript has no leap seconds.
    digits(&mut out[20..23], at.timestamp_subsec_millis().min(999));
    f(ascii(&out))
}

fn four_digit_year(at: DateTime<Utc>) -> Option<u32> {
    u32::try_from(at.year()).ok().filter(|y| *y <= 9999)
}

/// Writes `n` as zero-padded decimal into all of `out` (callers size `out` to fit).
fn digits(out: &mut [u8], mut n: u32) {
    for place in out.iter_mut().rev() {
        *place = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn ascii(bytes: &[u8]) -> &str {
    // Only ASCII digits, letters and punctuation are ever written.
    std::str::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn rfc2822(at: DateTime<Utc>) -> String {
        with_rfc2822(at, str::to_owned)
    }

    fn iso8601(at: DateTime<Utc>) -> String {
        with_iso8601(at, str::to_owned)
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_dialects_formats() {
        assert_eq!(
            rfc2822(at("2025-01-08T19:32:48.123Z")),
            "Wed, 08 Jan 2025 19:32:48 -0000"
        );
        assert_eq!(
            iso8601(at("2023-04-19T08:15:14Z")),
            "2023-04-19T08:15:14.000Z"
        );
    }

    #[test]
    fn agree_with_chrono_on_every_weekday_month_and_millisecond_step() {
        let mut when = at("1999-12-31T23:59:58.001Z");
        for _ in 0..3000 {
            assert_eq!(
                rfc2822(when),
                when.format("%a, %d %b %Y %H:%M:%S -0000").to_string()
            );
            assert_eq!(
                iso8601(when),
                when.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
            when += Duration::hours(13) + Duration::milliseconds(7_321);
        }
    }

    #[test]
    fn years_beyond_four_digits_fall_back_to_chrono() {
        let far = at("9999-12-31T23:59:59Z") + Duration::days(2);
        assert_eq!(
            rfc2822(far),
            far.format("%a, %d %b %Y %H:%M:%S -0000").to_string()
        );
        assert_eq!(
            iso8601(DateTime::<Utc>::MIN_UTC),
            DateTime::<Utc>::MIN_UTC
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        );
    }

    #[test]
    fn serializes_as_json_strings_and_null() {
        #[derive(serde::Serialize)]
        struct Both {
            #[serde(serialize_with = "serialize_rfc2822")]
            quay: DateTime<Utc>,
            #[serde(serialize_with = "serialize_optional_iso8601")]
            unleash: Option<DateTime<Utc>>,
        }
        let text = serde_json::to_string(&Both {
            quay: at("2025-01-08T19:32:48Z"),
            unleash: None,
        })
        .unwrap();
        assert_eq!(
            text,
            r#"{"quay":"Wed, 08 Jan 2025 19:32:48 -0000","unleash":null}"#
        );
    }
}
