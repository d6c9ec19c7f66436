//! Durations as written in the configuration: `100ms`, `2s`, `5m`, `1h`, `1m30s`.
//!
//! Grammar: one or more `<decimal digits><unit>` parts, units `h`, `m`, `s`, `ms`, in that
//! (decreasing) order, each at most once, no spaces, no sign, no fractions. A bare number is
//! rejected because its unit would be a guess.

use std::fmt;
use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl DurationError {
    fn new(input: &str, reason: &'static str) -> Self {
        // Keep error messages short even for pathological input.
        let input: String = input.chars().take(40).collect();
        Self { input, reason }
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration `{}`: {}",
            self.input.escape_debug(),
            self.reason
        )
    }
}

impl std::error::Error for DurationError {}

/// Units in the order they must appear, with their length in milliseconds.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses a configuration duration such as `100ms`, `2s`, `5m`, `1h` or `1m30s`.
///
/// ```
/// use std::time::Duration;
/// use keepalive_d::config::parse_duration;
///
/// assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
/// assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
/// assert!(parse_duration("5").is_err()); // which unit?
/// assert!(parse_duration("-1s").is_err());
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::new(
            input,
            "empty; write e.g. `2s` or `100ms`",
        ));
    }
    if input.starts_with('-') {
        return Err(DurationError::new(
            input,
            "negative durations are not allowed",
        ));
    }
    if input.starts_with('+') {
        return Err(DurationError::new(input, "write durations without a sign"));
    }
    let bytes = input.as_bytes();
    let mut pos = 0;
    let mut total: u64 = 0;
    // Index into UNITS of the next unit allowed (units must strictly decrease).
    let mut next_unit = 0;
    while pos < bytes.len() {
        let digits_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == digits_start {
            return Err(DurationError::new(
                input,
                "expected a number followed by a unit (ms, s, m or h), e.g. `2s`",
            ));
        }
        let digits = &input[digits_start..pos];
        if pos == bytes.len() {
            return Err(DurationError::new(
                input,
                "missing unit: write e.g. `2s` or `100ms` (units: ms, s, m, h)",
            ));
        }
        if bytes[pos] == b'.' || bytes[pos] == b',' {
            return Err(DurationError::new(
                input,
                "fractions are not allowed: use a smaller unit, e.g. `1500ms` for 1.5 seconds",
            ));
        }
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &input[unit_start..pos];
        if unit.is_empty() {
            return Err(DurationError::new(
                input,
                "unexpected character: a duration is digits and units only, e.g. `1m30s`",
            ));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(DurationError::new(
                input,
                "unknown unit: use ms, s, m (minutes) or h",
            ));
        };
        if index < next_unit {
            return Err(DurationError::new(
                input,
                "units must appear in decreasing order (h, m, s, ms), each at most once",
            ));
        }
        next_unit = index + 1;
        let value: u64 = digits
            .parse()
            .map_err(|_| DurationError::new(input, "number too large"))?;
        total = value
            .checked_mul(UNITS[index].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| DurationError::new(input, "duration too large"))?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration in the configuration syntax, the inverse of [`parse_duration`].
///
/// Sub-millisecond parts are dropped (the configuration has millisecond resolution).
///
/// ```
/// use std::time::Duration;
/// use keepalive_d::config::format_duration;
///
/// assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
/// assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
/// assert_eq!(format_duration(Duration::ZERO), "0s");
/// ```
pub fn format_duration(duration: Duration) -> String {
    // u128 -> u64: saturate; parse_duration never produces more than u64::MAX ms.
    let mut ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, unit_ms) in UNITS {
        let count = ms / unit_ms;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(name);
            ms %= unit_ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_documented_forms() {
        let cases = [
            ("100ms", 100),
            ("2s", 2_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("0s", 0),
            ("1m30s", 90_000),
            ("1h2m3s4ms", 3_723_004),
            ("40s950ms", 40_950),
            ("007s", 7_000),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_ambiguous_and_negative_forms() {
        let cases = [
            ("", "empty"),
            ("5", "missing unit"),
            ("0", "missing unit"),
            ("-1s", "negative"),
            ("+1s", "without a sign"),
            ("1.5s", "fractions"),
            ("1,5s", "fractions"),
            ("1 s", "unexpected character"),
            (" 1s", "expected a number"),
            ("1S", "unknown unit"),
            ("1us", "unknown unit"),
            ("1d", "unknown unit"),
            ("1min", "unknown unit"),
            ("s", "expected a number"),
            ("1s1m", "decreasing order"),
            ("1s1s", "decreasing order"),
            ("1s2", "missing unit"),
            ("99999999999999999999999s", "too large"),
            ("18446744073709551615h", "too large"),
        ];
        for (text, reason) in cases {
            let err = parse_duration(text).unwrap_err().to_string();
            assert!(err.contains(reason), "{text:?}: {err}");
        }
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(format_duration(Duration::from_millis(90_000)), "1m30s");
        assert_eq!(format_duration(Duration::from_micros(1_500)), "1ms");
    }

    proptest! {
        #[test]
        fn parse_inverts_format(ms in any::<u64>()) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn parsed_durations_format_back_to_an_equal_value(s in "[0-9]{1,6}(h|m|s|ms)") {
            if let Ok(d) = parse_duration(&s) {
                prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
            }
        }
    }
}
