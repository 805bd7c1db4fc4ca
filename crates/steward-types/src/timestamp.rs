//! A UTC instant with microsecond precision, serialized as RFC 3339 with `Z`.
//!
//! Microseconds because that is what both PostgreSQL and our SQLite encoding keep exactly: a value
//! survives a database round trip unchanged, which the audit hash chain depends on.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

#[derive(Debug, thiserror::Error)]
#[error("not an RFC 3339 timestamp in range: {0}")]
pub struct TimestampError(String);

impl Timestamp {
    pub fn from_unix_micros(micros: i64) -> Result<Self, TimestampError> {
        let nanos = i128::from(micros) * 1_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map(|_| Self(micros))
            .map_err(|e| TimestampError(e.to_string()))
    }

    pub fn from_unix_seconds(seconds: i64) -> Result<Self, TimestampError> {
        seconds
            .checked_mul(1_000_000)
            .ok_or_else(|| TimestampError("overflow".into()))
            .and_then(Self::from_unix_micros)
    }

    /// Truncates to microseconds.
    pub fn from_offset_date_time(at: OffsetDateTime) -> Self {
        let micros = at.unix_timestamp_nanos() / 1_000;
        // An OffsetDateTime spans ±9999 years, whose microseconds fit in i64 comfortably.
        Self(i64::try_from(micros).expect("OffsetDateTime range fits in i64 microseconds"))
    }

    pub fn parse_rfc3339(text: &str) -> Result<Self, TimestampError> {
        OffsetDateTime::parse(text, &Rfc3339)
            .map(Self::from_offset_date_time)
            .map_err(|e| TimestampError(format!("{text:?}: {e}")))
    }

    pub fn unix_micros(self) -> i64 {
        self.0
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub fn to_offset_date_time(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .expect("a Timestamp is only built from in-range values")
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1_000_000)))
    }

    pub fn plus_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis.saturating_mul(1_000)))
    }

    /// Whole seconds from `self` to `later` (negative when `later` is earlier).
    pub fn seconds_until(self, later: Timestamp) -> i64 {
        (later.0 - self.0).div_euclid(1_000_000)
    }

    /// RFC 3339 in UTC with `Z`, with microseconds when they are not zero.
    pub fn to_rfc3339(self) -> String {
        let at = self.to_offset_date_time();
        let micros = self.0.rem_euclid(1_000_000);
        let base = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        );
        if micros == 0 { format!("{base}Z") } else { format!("{base}.{micros:06}Z") }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339_with_micros() {
        let at = Timestamp::from_unix_micros(1_795_000_000_123_456).unwrap();
        let text = at.to_rfc3339();
        assert!(text.ends_with(".123456Z"), "{text}");
        assert_eq!(Timestamp::parse_rfc3339(&text).unwrap(), at);
    }

    #[test]
    fn whole_seconds_have_no_fraction() {
        let at = Timestamp::from_unix_seconds(0).unwrap();
        assert_eq!(at.to_rfc3339(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn offsets_are_normalized_to_utc() {
        let at = Timestamp::parse_rfc3339("2026-01-01T02:00:00+02:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-01-01T00:00:00Z");
    }
}
