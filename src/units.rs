//! Units in recipes: sizes (`100MB`, `1GiB`), durations (`500ms`, `30s`, `5m`) and rates (`4/s`,
//! `60/min`). Each parses from a YAML string (sizes also from a plain integer of bytes) and fails
//! with a message saying what was expected.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

/// A duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

/// `count` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub count: f64,
    pub per: Duration,
}

pub const SIZE_EXPECTED: &str =
    "a size such as `100MB`, `512KiB` or `1GiB` (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)";
pub const SPAN_EXPECTED: &str = "a duration such as `500ms`, `30s`, `5m` or `2h`";
pub const RATE_EXPECTED: &str = "a rate such as `4/s`, `60/min` or `1000/h`";

/// Split `12.5GiB` into (12.5, "GiB").
fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let value: f64 = num.parse().ok()?;
    value.is_finite().then_some((value, unit.trim()))
}

impl Size {
    pub fn parse(s: &str) -> Result<Size, String> {
        let bad = || format!("expected {SIZE_EXPECTED}, found `{s}`");
        let (value, unit) = number_and_unit(s).ok_or_else(bad)?;
        let factor: u64 = match unit {
            "B" | "" => 1,
            "KB" | "kB" => 1000,
            "MB" => 1000_u64.pow(2),
            "GB" => 1000_u64.pow(3),
            "TB" => 1000_u64.pow(4),
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            _ => return Err(bad()),
        };
        let bytes = value * factor as f64;
        if bytes.fract() != 0.0 || bytes > u64::MAX as f64 {
            return Err(format!("`{s}` is not a whole number of bytes"));
        }
        Ok(Size(bytes as u64))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (name, factor) in UNITS {
            if self.0 >= factor && self.0.is_multiple_of(factor) {
                return write!(f, "{}{name}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Span {
    pub fn parse(s: &str) -> Result<Span, String> {
        let bad = || format!("expected {SPAN_EXPECTED}, found `{s}`");
        let (value, unit) = number_and_unit(s).ok_or_else(bad)?;
        let seconds = match unit {
            "ms" => value / 1000.0,
            "s" => value,
            "m" | "min" => value * 60.0,
            "h" => value * 3600.0,
            _ => return Err(bad()),
        };
        Duration::try_from_secs_f64(seconds).map(Span).map_err(|_| format!("`{s}` is out of range"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            write!(f, "{ms}ms")
        } else if !ms.is_multiple_of(60_000) || ms == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{}m", ms / 60_000)
        }
    }
}

impl Rate {
    pub fn parse(s: &str) -> Result<Rate, String> {
        let bad = || format!("expected {RATE_EXPECTED}, found `{s}`");
        let (count, per) = s.split_once('/').ok_or_else(bad)?;
        let count: f64 = count.trim().parse().map_err(|_| bad())?;
        let per = match per.trim() {
            "s" | "sec" => Duration::from_secs(1),
            "min" | "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if !(count.is_finite() && count > 0.0) {
            return Err(format!("a rate must be above zero, found `{s}`"));
        }
        Ok(Rate { count, per })
    }

    /// Events per second.
    pub fn per_second(&self) -> f64 {
        self.count / self.per.as_secs_f64()
    }
}

/// Rates are shown per second, minute or hour.
const RATE_UNITS: [(f64, &str); 3] = [(1.0, "s"), (60.0, "min"), (3600.0, "h")];

/// A rate for people (every place etd prints one, and the plan's JSON): the count as written
/// when it is a whole number (`60/min`, `4/s`); else a whole number per second, minute or hour
/// where one is exact (a 5/s budget split over 6 tasks is `50/min`); else three significant
/// digits in the first of s, min, h that gives at least 1 (`1.43/s`, `8.57/min`, `0.5/h`).
impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let own = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        if let Some(n) = whole(self.count) {
            return write!(f, "{n}/{own}");
        }
        let per_second = self.per_second();
        for (secs, unit) in RATE_UNITS {
            if let Some(n) = whole(per_second * secs) {
                return write!(f, "{n}/{unit}");
            }
        }
        let (secs, unit) = RATE_UNITS.into_iter().find(|(secs, _)| per_second * secs >= 1.0).unwrap_or(RATE_UNITS[2]);
        write!(f, "{}/{unit}", three_significant(per_second * secs))
    }
}

/// `v` as a whole number of at least 1, when it is one (to floating-point noise).
fn whole(v: f64) -> Option<u64> {
    let r = v.round();
    ((1.0..1e15).contains(&r) && (v - r).abs() <= 1e-9 * r).then_some(r as u64)
}

/// `v` with three significant digits (at most), trailing zeros dropped: `3.33`, `12.3`, `0.5`.
fn three_significant(v: f64) -> String {
    let magnitude = if v > 0.0 { v.log10().floor() as i32 } else { 0 };
    let decimals = (2 - magnitude).clamp(0, 12) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Deserialize through a string parser; sizes also accept an integer byte count.
macro_rules! string_unit {
    ($ty:ty, $expected:expr, $allow_int:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expected)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        <$ty>::parse(v).map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        if $allow_int {
                            <$ty>::parse(&v.to_string()).map_err(E::custom)
                        } else {
                            Err(E::custom(format!("expected {}, found the bare number {v}", $expected)))
                        }
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        Err(E::custom(format!("expected {}, found {v}", $expected)))
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$ty, E> {
                        Err(E::custom(format!("expected {}, found {v}", $expected)))
                    }
                }
                d.deserialize_any(V)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

string_unit!(Size, SIZE_EXPECTED, true);
string_unit!(Span, SPAN_EXPECTED, false);
string_unit!(Rate, RATE_EXPECTED, false);

/// Rate helper for sources' defaults.
pub fn rate(count: f64, per_seconds: u64) -> Rate {
    Rate { count, per: Duration::from_secs(per_seconds) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("100MB"), Ok(Size(100_000_000)));
        assert_eq!(Size::parse("1GiB"), Ok(Size(1 << 30)));
        assert_eq!(Size::parse("1.5KiB"), Ok(Size(1536)));
        assert_eq!(Size::parse("42"), Ok(Size(42)));
        assert_eq!(Size::parse("7 MB"), Ok(Size(7_000_000)));
        for bad in ["1 gigabyte", "GB", "1.5B", "-1MB", "1Gb", ""] {
            assert!(Size::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Size(1 << 30).to_string(), "1GiB");
        assert_eq!(Size(1000).to_string(), "1000B");
    }

    #[test]
    fn spans() {
        assert_eq!(Span::parse("500ms"), Ok(Span(Duration::from_millis(500))));
        assert_eq!(Span::parse("30s"), Ok(Span(Duration::from_secs(30))));
        assert_eq!(Span::parse("5m"), Ok(Span(Duration::from_secs(300))));
        assert_eq!(Span::parse("2h"), Ok(Span(Duration::from_secs(7200))));
        for bad in ["30", "1GB", "4/s", "s", "1 day", "99999999999999999999999s"] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Span(Duration::from_secs(120)).to_string(), "2m");
    }

    #[test]
    fn rates() {
        let r = Rate::parse("4/s").unwrap();
        assert_eq!(r.per_second(), 4.0);
        assert_eq!(Rate::parse("60/min").unwrap().per_second(), 1.0);
        for bad in ["4", "4/day", "0/s", "x/s", "30s", "-1/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_read_well() {
        let per_second = |v: f64| Rate { count: v, per: Duration::from_secs(1) }.to_string();
        for written in ["4/s", "60/min", "1000/h", "600/min", "1/s"] {
            assert_eq!(Rate::parse(written).unwrap().to_string(), written);
        }
        // A budget split between tasks: whole per minute or hour where exact.
        assert_eq!(per_second(5.0 / 6.0), "50/min");
        assert_eq!(per_second(1.0 / 6.0), "10/min");
        assert_eq!(per_second(1.0 / 60.0 / 4.0), "15/h");
        assert_eq!(Rate::parse("1.5/s").unwrap().to_string(), "90/min");
        // Otherwise three significant digits in the first unit reaching 1.
        assert_eq!(per_second(10.0 / 3.0), "200/min");
        assert_eq!(per_second(10.0 / 7.0), "1.43/s");
        assert_eq!(per_second(1.0 / 7.0), "8.57/min");
        assert_eq!(per_second(100.0 / 7.0), "14.3/s");
        assert_eq!(per_second(1.0 / 7000.0), "0.514/h");
        assert_eq!(Rate::parse("0.5/h").unwrap().to_string(), "0.5/h");
        assert_eq!(Rate::parse("2.5/h").unwrap().to_string(), "2.5/h");
        // What is shown parses back to the same rate within its digits.
        let shown = per_second(10.0 / 7.0);
        assert!((Rate::parse(&shown).unwrap().per_second() - 10.0 / 7.0).abs() < 0.01);
    }

    #[test]
    fn yaml_errors_say_what_was_expected() {
        let err = serde_yaml::from_str::<Span>("30").unwrap_err().to_string();
        assert!(err.contains("duration"), "{err}");
        let err = serde_yaml::from_str::<Size>("1 gigabyte").unwrap_err().to_string();
        assert!(err.contains("100MB"), "{err}");
        assert_eq!(serde_yaml::from_str::<Size>("1024").unwrap(), Size(1024));
    }
}
