//! Durations as humans write them in specs: `"250ms"`, `"5s"`, `"2m"`.
//!
//! A bare number is rejected on purpose: `timeout = 5` could mean seconds or
//! milliseconds, and a drill measured against the wrong unit is worse than
//! no drill.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A spec duration. Serializes back to humantime's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn from_secs_f64(s: f64) -> Self {
        Dur(Duration::from_secs_f64(s))
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }
    pub fn as_micros(self) -> u64 {
        self.0.as_micros() as u64
    }
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for Dur {
    fn from(d: Duration) -> Self {
        Dur(d)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl std::str::FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        humantime::parse_duration(t).map(Dur).map_err(|e| {
            format!("bad duration {s:?}: {e}; write a number and a unit, like \"250ms\", \"5s\" or \"2m\"")
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string like \"250ms\", \"5s\" or \"2m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "bad duration {v}: a bare number has no unit; write \"{v}s\" or \"{v}ms\""
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "bad duration {v}: a bare number has no unit; write \"{v}s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(
            "250ms".parse::<Dur>().unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!("5s".parse::<Dur>().unwrap().0, Duration::from_secs(5));
        assert_eq!("2m".parse::<Dur>().unwrap().0, Duration::from_secs(120));
        assert_eq!("0".parse::<Dur>().unwrap().0, Duration::ZERO);
    }

    #[test]
    fn rejects_garbage() {
        assert!("5 parsecs".parse::<Dur>().is_err());
        assert!("".parse::<Dur>().is_err());
        assert!("fast".parse::<Dur>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn display_round_trips(ms in 0u64..10_000_000) {
            let d = Dur(Duration::from_millis(ms));
            let back: Dur = d.to_string().parse().unwrap();
            proptest::prop_assert_eq!(back, d);
        }
    }
}
