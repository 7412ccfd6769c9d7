//! Parsers for the unit-bearing settings: durations (`90d`, `36h`, Go-style `1h30m`) and byte sizes
//! (`33554432`, `32MiB`, `10MB`). Pure over strings: no I/O, no knowledge of where a value came from.

use std::time::Duration;

/// Longest accepted duration string; anything longer is a typo or an attack on the parser, not a setting.
const MAX_DURATION_LEN: usize = 64;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("duration is too long (more than {MAX_DURATION_LEN} characters)")]
    TooLong,
    #[error("expected a number before each unit, e.g. 90d, 36h, 30m or 1h30m")]
    MissingNumber,
    #[error("missing unit after {0}: use d, h, m, s, ms, us or ns (only 0 may stand alone)")]
    MissingUnit(u64),
    #[error("unknown unit {0:?}: use d, h, m, s, ms, us or ns")]
    UnknownUnit(String),
    #[error("duration is too large")]
    Overflow,
}

/// Parses a duration: one or more `<integer><unit>` groups (`d`, `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`),
/// as Go's `time.ParseDuration` accepts them plus days; a bare `0` is zero.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.len() > MAX_DURATION_LEN {
        return Err(DurationError::TooLong);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::MissingNumber);
        }
        let number: u64 = rest[..digits].parse().map_err(|_| DurationError::Overflow)?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos_per_unit: u128 = match unit {
            "" => return Err(DurationError::MissingUnit(number)),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "d" => 86_400 * 1_000_000_000,
            other => return Err(DurationError::UnknownUnit(other.to_string())),
        };
        let nanos = u128::from(number).checked_mul(nanos_per_unit).ok_or(DurationError::Overflow)?;
        let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| DurationError::Overflow)?;
        // The remainder is below 1e9, so it always fits in u32.
        let sub = (nanos % 1_000_000_000) as u32;
        total = total.checked_add(Duration::new(secs, sub)).ok_or(DurationError::Overflow)?;
    }
    Ok(total)
}

/// Why a byte-size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("empty size")]
    Empty,
    #[error("expected a number of bytes, optionally with a unit such as 512KiB, 32MiB or 10MB")]
    MissingNumber,
    #[error("unknown size unit {0:?}: use B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024)")]
    UnknownUnit(String),
    #[error("size is too large")]
    Overflow,
}

/// Parses a byte size: plain bytes (`33554432`) or an integer with a unit, case-insensitive, optional
/// space: `B`, `KB`/`MB`/`GB` (powers of 1000), `KiB`/`MiB`/`GiB` and the nginx-style `K`/`M`/`G`
/// (powers of 1024).
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(SizeError::Empty);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(SizeError::MissingNumber);
    }
    let number: u64 = s[..digits].parse().map_err(|_| SizeError::Overflow)?;
    let unit = s[digits..].trim_start();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(SizeError::UnknownUnit(unit.to_string())),
    };
    number.checked_mul(multiplier).ok_or(SizeError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_in_every_accepted_form() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("36h"), Ok(Duration::from_secs(36 * 3_600)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(30 * 60)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(129_600)));
        assert_eq!(parse_duration("2m3s4ms"), Ok(Duration::from_millis(123_004)));
        assert_eq!(parse_duration("5us"), Ok(Duration::from_micros(5)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration(" 30s "), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_are_rejected() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("30"), Err(DurationError::MissingUnit(30)));
        assert_eq!(parse_duration("h"), Err(DurationError::MissingNumber));
        assert_eq!(parse_duration("1.5h"), Err(DurationError::UnknownUnit(".".into())));
        assert_eq!(parse_duration("3w"), Err(DurationError::UnknownUnit("w".into())));
        assert_eq!(parse_duration("-1h"), Err(DurationError::MissingNumber));
        assert_eq!(parse_duration("99999999999999999999d"), Err(DurationError::Overflow));
        assert_eq!(parse_duration("999999999999999999d"), Err(DurationError::Overflow));
    }

    #[test]
    fn sizes_in_every_accepted_form() {
        assert_eq!(parse_size("33554432"), Ok(32 << 20));
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("32mib"), Ok(32 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("512 KB"), Ok(512_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("100B"), Ok(100));
    }

    #[test]
    fn bad_sizes_are_rejected() {
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert_eq!(parse_size("MiB"), Err(SizeError::MissingNumber));
        assert_eq!(parse_size("-5"), Err(SizeError::MissingNumber));
        assert_eq!(parse_size("5TB"), Err(SizeError::UnknownUnit("TB".into())));
        assert_eq!(parse_size("1.5MiB"), Err(SizeError::UnknownUnit(".5MiB".into())));
        assert_eq!(parse_size("99999999999999999999GiB"), Err(SizeError::Overflow));
        assert_eq!(parse_size("99999999999GiB"), Err(SizeError::Overflow));
    }

    proptest! {
        #[test]
        fn duration_parser_never_panics(s in "\\PC{0,80}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn size_parser_never_panics(s in "\\PC{0,40}") {
            let _ = parse_size(&s);
        }

        #[test]
        fn hours_and_minutes_add_up(h in 0u64..10_000, m in 0u64..10_000) {
            let got = parse_duration(&format!("{h}h{m}m")).unwrap();
            prop_assert_eq!(got, Duration::from_secs(h * 3600 + m * 60));
        }
    }
}
