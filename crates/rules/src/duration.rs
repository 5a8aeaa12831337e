//! Prometheus-style durations (`5m`, `1h30m`, `28d`, `4w`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A whole number of seconds, written and read in Prometheus duration syntax.
///
/// [`Display`](fmt::Display) follows Prometheus' `model.Duration`: years and weeks are only used
/// when they divide the duration exactly, so 28 days print as `4w` and 30 days as `30d` (what
/// Sloth puts into rule names and the `sloth_window` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration(u64);

/// A string that is not a Prometheus duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected e.g. 5m, 1h30m, 28d or 4w")]
pub struct DurationError(String);

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const WEEK: u64 = 7 * DAY;
const YEAR: u64 = 365 * DAY;

impl PromDuration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }

    /// Whole seconds.
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// Hours as a float (for burn-rate factors).
    pub fn hours(self) -> f64 {
        self.0 as f64 / HOUR as f64
    }

    /// Days as a float (for `slo:time_period:days`).
    pub fn days(self) -> f64 {
        self.0 as f64 / DAY as f64
    }
}

impl FromStr for PromDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DurationError(s.to_owned());
        if s.is_empty() {
            return Err(err());
        }
        let mut total: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let n: u64 = rest[..digits].parse().map_err(|_| err())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = match &rest[..unit_len] {
                "y" => YEAR,
                "w" => WEEK,
                "d" => DAY,
                "h" => HOUR,
                "m" => MINUTE,
                "s" => 1,
                _ => return Err(err()),
            };
            rest = &rest[unit_len..];
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(err)?;
        }
        if total == 0 {
            return Err(err());
        }
        Ok(Self(total))
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        // (unit, size, only when exact) — as Prometheus' model.Duration.String.
        for (unit, size, exact) in [
            ("y", YEAR, true),
            ("w", WEEK, true),
            ("d", DAY, false),
            ("h", HOUR, false),
            ("m", MINUTE, false),
            ("s", 1, false),
        ] {
            if exact && !rest.is_multiple_of(size) {
                continue;
            }
            let n = rest / size;
            if n > 0 {
                write!(f, "{n}{unit}")?;
                rest -= n * size;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for PromDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_formatting() {
        for (input, out) in [
            ("28d", "4w"),
            ("30d", "30d"),
            ("5m", "5m"),
            ("90m", "1h30m"),
            ("1d", "1d"),
            ("3d", "3d"),
            ("365d", "1y"),
        ] {
            let d: PromDuration = input.parse().unwrap();
            assert_eq!(d.to_string(), out);
        }
        assert!("".parse::<PromDuration>().is_err());
        assert!("5".parse::<PromDuration>().is_err());
        assert!("5x".parse::<PromDuration>().is_err());
        assert!("0m".parse::<PromDuration>().is_err());
    }
}
