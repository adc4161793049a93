//! The one place YAML is parsed, and the scalar types that validate themselves while being
//! parsed: a value rejected inside its visitor keeps the exact line and column of the value.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A problem with a configuration file, located as `file:line:column` when the parser knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

/// Reads and parses one YAML file into `T`.
pub fn load_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::whole_file(path, format!("cannot read: {e}")))?;
    parse_str(path, &text)
}

/// Parses YAML text; `path` only names the source in errors.
pub fn parse_str<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    serde_yaml::from_str(text).map_err(|e| {
        let location = e.location();
        // The library appends " at line N column M"; we print the location up front instead.
        let mut message = e.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        ConfigError {
            file: path.to_path_buf(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message,
        }
    })
}

/// A scalar parsed from a string that checks itself; see the module comment.
pub trait ParseScalar: Sized {
    const EXPECTING: &'static str;
    fn parse(text: &str) -> Result<Self, String>;
}

/// Deserializes any [`ParseScalar`] from a YAML string, keeping the value's location on error.
pub fn deserialize_scalar<'de, D: Deserializer<'de>, T: ParseScalar>(d: D) -> Result<T, D::Error> {
    struct ScalarVisitor<T>(std::marker::PhantomData<T>);
    impl<T: ParseScalar> Visitor<'_> for ScalarVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::EXPECTING)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            T::parse(v).map_err(E::custom)
        }
    }
    d.deserialize_str(ScalarVisitor(std::marker::PhantomData))
}

macro_rules! scalar_deserialize {
    ($t:ty) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::config::yaml::deserialize_scalar(d)
            }
        }
    };
}
pub(crate) use scalar_deserialize;

/// A duration written like `30s`, `15m`, `2h 30m`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl ParseScalar for HumanDuration {
    const EXPECTING: &'static str = "a duration such as 30s, 15m, 1h or 7d";
    fn parse(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text)
            .map(HumanDuration)
            .map_err(|e| format!("invalid duration {text:?}: {e} (expected e.g. 30s, 15m, 1h, 7d)"))
    }
}
scalar_deserialize!(HumanDuration);

/// A size written like `512KiB`, `64MiB`, `1GiB` (or plain bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ParseScalar for ByteSize {
    const EXPECTING: &'static str = "a size such as 512KiB, 64MiB or 1GiB";
    fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let shift = match unit.trim() {
            "" | "B" => 0,
            "KiB" => 10,
            "MiB" => 20,
            "GiB" => 30,
            other => {
                return Err(format!(
                    "invalid size {text:?}: unit {other:?} is not B, KiB, MiB or GiB"
                ));
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("invalid size {text:?}: expected a whole number and a unit"))?;
        n.checked_shl(shift)
            .filter(|v| v >> shift == n && *v > 0)
            .map(ByteSize)
            .ok_or_else(|| format!("invalid size {text:?}: must be above 0 and below 16 EiB"))
    }
}
scalar_deserialize!(ByteSize);

/// A cron expression with seconds, checked with the same parser the scheduler uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule(pub String);

impl ParseScalar for CronSchedule {
    const EXPECTING: &'static str = "a cron expression with seconds, e.g. \"*/30 * * * * *\"";
    fn parse(text: &str) -> Result<Self, String> {
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(text)
            .map(|_| CronSchedule(text.to_string()))
            .map_err(|e| {
                format!(
                    "invalid cron expression {text:?}: {e} (six fields: sec min hour day month weekday)"
                )
            })
    }
}
scalar_deserialize!(CronSchedule);

/// A compiled regular expression.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl ParseScalar for Pattern {
    const EXPECTING: &'static str = "a regular expression";
    fn parse(text: &str) -> Result<Self, String> {
        regex::Regex::new(text)
            .map(Pattern)
            .map_err(|e| format!("invalid regular expression: {e}"))
    }
}
scalar_deserialize!(Pattern);

/// Deserializes an unsigned integer that must lie in `min..=max`, keeping its location.
pub fn deserialize_bounded<'de, D: Deserializer<'de>>(
    d: D,
    what: &'static str,
    min: u64,
    max: u64,
) -> Result<u64, D::Error> {
    struct Bounded {
        what: &'static str,
        min: u64,
        max: u64,
    }
    impl Visitor<'_> for Bounded {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} from {} to {}", self.what, self.min, self.max)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            if v < self.min || v > self.max {
                return Err(E::custom(format!(
                    "{} must be from {} to {}, got {v}",
                    self.what, self.min, self.max
                )));
            }
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            if v < 0 {
                return Err(E::custom(format!(
                    "{} must be from {} to {}, got {v}",
                    self.what, self.min, self.max
                )));
            }
            self.visit_u64(v as u64)
        }
    }
    d.deserialize_u64(Bounded { what, min, max })
}

#[cfg(test)]
mod byte_size_tests {
    use super::*;

    #[test]
    fn sizes_with_binary_units() {
        for (text, bytes) in [
            ("512KiB", 512 << 10),
            ("64MiB", 64 << 20),
            ("1GiB", 1 << 30),
            ("10", 10),
        ] {
            assert_eq!(ByteSize::parse(text).unwrap().0, bytes, "{text}");
        }
        for bad in ["", "0MiB", "64MB", "1.5GiB", "-1", "99999999999GiB"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        every: CronSchedule,
        #[allow(dead_code)]
        wait: Option<HumanDuration>,
    }

    #[test]
    fn errors_point_at_the_bad_value() {
        let err = parse_str::<Sample>(Path::new("x.yaml"), "every: \"* * *\"\n").unwrap_err();
        assert_eq!((err.line, err.column), (Some(1), Some(8)));
        assert!(err.message.contains("invalid cron expression"), "{err}");
        assert!(
            err.to_string()
                .starts_with("x.yaml:1:8: every: invalid cron"),
            "{err}"
        );

        let err = parse_str::<Sample>(Path::new("x.yaml"), "every: \"0 * * * * *\"\nwait: soon\n")
            .unwrap_err();
        assert_eq!((err.line, err.column), (Some(2), Some(7)));
        assert!(err.message.contains("invalid duration"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_place() {
        let err = parse_str::<Sample>(Path::new("x.yaml"), "every: \"0 * * * * *\"\nwiat: 5s\n")
            .unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("unknown field `wiat`"), "{err}");
    }

    #[test]
    fn accepts_good_values() {
        let s: Sample = parse_str(
            Path::new("x.yaml"),
            "every: \"*/30 * * * * *\"\nwait: 15m\n",
        )
        .unwrap();
        assert_eq!(s.every.0, "*/30 * * * * *");
        assert_eq!(s.wait.unwrap().0, Duration::from_secs(900));
    }
}
