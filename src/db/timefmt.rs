//! RFC 3339 UTC timestamps as stored in SQLite and written to logs (`2026-11-27T05:59:04.123456Z`).
//! Pure formatting and parsing over stack buffers: no I/O, no allocation when formatting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of a formatted timestamp: fixed width, so that text order is time order in SQLite.
pub(crate) const TIMESTAMP_LEN: usize = 27;

/// The latest instant we format (9999-12-31T23:59:59.999999Z): keeps the width fixed at four year digits.
const MAX_UNIX_SECS: u64 = 253_402_300_799;

/// A formatted timestamp held on the stack.
#[derive(Clone, Copy)]
pub(crate) struct Timestamp {
    buf: [u8; TIMESTAMP_LEN],
}

impl Timestamp {
    /// The timestamp text.
    pub(crate) fn as_str(&self) -> &str {
        // The buffer only ever holds ASCII digits and separators written by `format`.
        std::str::from_utf8(&self.buf).unwrap_or("1970-01-01T00:00:00.000000Z")
    }
}

impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Formats `t` with microsecond precision. Instants before 1970 format as the epoch, after 9999 as its end:
/// clocks that far off are not worth an error on the recording path.
pub(crate) fn format(t: SystemTime) -> Timestamp {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let (secs, micros) = if since.as_secs() > MAX_UNIX_SECS {
        (MAX_UNIX_SECS, 999_999)
    } else {
        (since.as_secs(), since.subsec_micros())
    };
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    put_digits(&mut buf[0..4], year as u64);
    put_digits(&mut buf[5..7], month as u64);
    put_digits(&mut buf[8..10], day as u64);
    put_digits(&mut buf[11..13], rem / 3600);
    put_digits(&mut buf[14..16], (rem / 60) % 60);
    put_digits(&mut buf[17..19], rem % 60);
    put_digits(&mut buf[20..26], micros as u64);
    Timestamp { buf }
}

fn put_digits(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard Hinnant's
/// `civil_from_days`, restricted to non-negative day counts).
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400) as u32 + u32::from(month <= 2);
    (year, month, day)
}

/// Parses any RFC 3339 timestamp (as read back from the database) into a `SystemTime`.
pub(crate) fn parse(text: &str) -> Option<SystemTime> {
    let dt = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let secs = u64::try_from(dt.unix_timestamp()).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, dt.nanosecond()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format(UNIX_EPOCH).as_str(), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::new(1_795_759_144, 123_456_789);
        assert_eq!(format(t).as_str(), "2026-11-27T05:59:04.123456Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(format(leap).as_str(), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn clamps_out_of_range() {
        let far = UNIX_EPOCH + Duration::from_secs(MAX_UNIX_SECS * 2);
        assert_eq!(format(far).as_str(), "9999-12-31T23:59:59.999999Z");
    }

    proptest! {
        #[test]
        fn agrees_with_time_crate(secs in 0u64..MAX_UNIX_SECS, micros in 0u32..1_000_000) {
            let t = UNIX_EPOCH + Duration::new(secs, micros * 1000);
            let ours = format(t);
            prop_assert_eq!(parse(ours.as_str()), Some(t));
            let theirs = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap();
            prop_assert_eq!(&ours.as_str()[..10], format!("{:04}-{:02}-{:02}", theirs.year(), theirs.month() as u8, theirs.day()));
        }

        #[test]
        fn text_order_is_time_order(a in 0u64..MAX_UNIX_SECS, b in 0u64..MAX_UNIX_SECS) {
            let ta = format(UNIX_EPOCH + Duration::from_secs(a));
            let tb = format(UNIX_EPOCH + Duration::from_secs(b));
            prop_assert_eq!(a.cmp(&b), ta.as_str().cmp(tb.as_str()));
        }
    }
}
