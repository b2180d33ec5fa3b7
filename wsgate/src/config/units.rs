//! HAProxy's units: times default to milliseconds (`us ms s m h d`), sizes
//! to bytes (`k m g`, powers of 1024).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("'{0}' is not a number")]
    NotANumber(String),
    #[error("unknown unit '{unit}' in '{value}' (expected {expected})")]
    UnknownUnit {
        value: String,
        unit: String,
        expected: &'static str,
    },
    #[error("'{0}' is too large")]
    Overflow(String),
}

/// Parses a HAProxy time such as `10s`, `100` (ms) or `1h`.
pub fn parse_time(value: &str) -> Result<Duration, UnitError> {
    let (number, unit) = split_number(value)?;
    let micros_per_unit: u64 = match unit {
        "us" => 1,
        "" | "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => {
            return Err(UnitError::UnknownUnit {
                value: value.to_owned(),
                unit: unit.to_owned(),
                expected: "us, ms, s, m, h or d",
            })
        }
    };
    number
        .checked_mul(micros_per_unit)
        .map(Duration::from_micros)
        .ok_or_else(|| UnitError::Overflow(value.to_owned()))
}

/// HAProxy 2.6's reading of a time with trailing letters after a valid
/// unit (`15min` is 15m): it warns and ignores the rest, later versions
/// refuse it. Returns the value and the part that was read (`15m`), or
/// `None` when even the prefix is not a time.
pub fn parse_time_prefix(value: &str) -> Option<(Duration, String)> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &value[digits..];
    let unit_len = if rest.starts_with("us") || rest.starts_with("ms") {
        2
    } else if rest.starts_with(['s', 'm', 'h', 'd']) {
        1
    } else {
        return None;
    };
    let read = &value[..digits + unit_len];
    if read.len() == value.len() {
        return None;
    }
    parse_time(read).ok().map(|d| (d, read.to_owned()))
}

/// Parses a HAProxy size such as `16384`, `16k` or `1m`.
pub fn parse_size(value: &str) -> Result<u64, UnitError> {
    let (number, unit) = split_number(value)?;
    let factor: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => {
            return Err(UnitError::UnknownUnit {
                value: value.to_owned(),
                unit: unit.to_owned(),
                expected: "k, m or g",
            })
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| UnitError::Overflow(value.to_owned()))
}

fn split_number(value: &str) -> Result<(u64, &str), UnitError> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(UnitError::NotANumber(value.to_owned()));
    }
    let (number, unit) = value.split_at(digits);
    let number = number
        .parse::<u64>()
        .map_err(|_| UnitError::Overflow(value.to_owned()))?;
    Ok((number, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_default_to_milliseconds() {
        assert_eq!(parse_time("100").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_time("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_time("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_time("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_time("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_time("250us").unwrap(), Duration::from_micros(250));
        assert!(matches!(
            parse_time("10x"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(parse_time("s"), Err(UnitError::NotANumber(_))));
    }

    #[test]
    fn sizes_use_powers_of_1024() {
        assert_eq!(parse_size("16384").unwrap(), 16384);
        assert_eq!(parse_size("16k").unwrap(), 16384);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert!(parse_size("1t").is_err());
    }
}
