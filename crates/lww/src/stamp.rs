//! Hybrid logical clock stamps.
//!
//! Rules:
//! - A [`Stamp`] is `(wall_ms, counter, node)`: wall time in milliseconds since the Unix
//!   epoch (`0..=MAX_WALL_MS`), a logical counter and the writer's node (client) id of at
//!   most [`MAX_NODE_CHARS`] characters without control characters. The constructor
//!   enforces these bounds, so every `Stamp` value is valid.
//! - Stamps are totally ordered by `(wall_ms, counter, node)`; nodes compare byte-wise.
//! - The canonical text form is `<wall_ms, 15 digits>-<counter, 10 digits>-<node>`, e.g.
//!   `001700000000000-0000000003-device-a`. Both numbers are zero-padded to a fixed width,
//!   so comparing two canonical strings byte-wise (Rust `str` order, Postgres
//!   `COLLATE "C"`) gives the same order as comparing the stamps. The counter gets 10
//!   digits, not 6, because a `u32` needs them and a shorter pad would break that order.
//! - Parsing accepts exactly the canonical form, or an RFC 3339 timestamp (counter 0,
//!   node `""`, sub-millisecond digits truncated) so simple clients can send ISO times.
//!   Anything else is a [`StampError`]. Parsing never panics.
//! - serde uses the canonical string in both directions (and therefore also accepts
//!   RFC 3339 strings when deserialising).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest wall time a stamp can carry: the largest 15-digit number of milliseconds
/// (about the year 33658), so the canonical form keeps its fixed width.
pub const MAX_WALL_MS: i64 = 999_999_999_999_999;

/// Longest node id, in characters.
pub const MAX_NODE_CHARS: usize = 128;

const WALL_DIGITS: usize = 15;
const COUNTER_DIGITS: usize = 10;
/// How much of a rejected input an error message repeats, so one huge input cannot
/// produce a huge log line.
const ECHO_CHARS: usize = 64;

/// Why a stamp could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    /// The text is neither the canonical form nor an RFC 3339 timestamp.
    #[error(
        "invalid stamp {input:?}: expected `<15-digit wall ms>-<10-digit counter>-<node id>` \
         or an RFC 3339 timestamp"
    )]
    Malformed {
        /// The start of the rejected text.
        input: String,
    },
    /// The wall time is before the Unix epoch or after [`MAX_WALL_MS`].
    #[error("stamp wall time {wall_ms} ms is outside 0..={MAX_WALL_MS}")]
    WallOutOfRange {
        /// The rejected wall time in ms since the epoch.
        wall_ms: i64,
    },
    /// The node id is longer than [`MAX_NODE_CHARS`] characters.
    #[error("stamp node id has {chars} characters, at most {MAX_NODE_CHARS} are allowed")]
    NodeTooLong {
        /// Length of the rejected node id in characters.
        chars: usize,
    },
    /// The node id contains a control character.
    #[error("stamp node id contains a control character")]
    NodeControlChar,
}

/// A hybrid logical clock stamp; see the module docs for its order and text form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    // Field order matters: the derived `Ord` compares fields in declaration order.
    wall_ms: i64,
    counter: u32,
    node: String,
}

impl Stamp {
    /// Builds a stamp, checking the wall time range and the node id.
    pub fn new(wall_ms: i64, counter: u32, node: impl Into<String>) -> Result<Self, StampError> {
        if !(0..=MAX_WALL_MS).contains(&wall_ms) {
            return Err(StampError::WallOutOfRange { wall_ms });
        }
        let node = node.into();
        validate_node(&node)?;
        Ok(Self {
            wall_ms,
            counter,
            node,
        })
    }

    /// The stamp of a plain wall time: counter 0, empty node (what an RFC 3339 string
    /// parses to). Sub-millisecond precision is truncated.
    pub fn from_datetime(at: DateTime<Utc>) -> Result<Self, StampError> {
        Self::new(at.timestamp_millis(), 0, String::new())
    }

    /// Wall time in milliseconds since the Unix epoch.
    pub fn wall_ms(&self) -> i64 {
        self.wall_ms
    }

    /// Logical counter (orders stamps within one millisecond).
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The writer's node (client) id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The wall time as a `DateTime`.
    pub fn wall_time(&self) -> DateTime<Utc> {
        // Always `Some`: MAX_WALL_MS is far inside chrono's range.
        DateTime::from_timestamp_millis(self.wall_ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Internal constructor for values already known to be in range (the node was
    /// validated when it was first accepted).
    pub(crate) fn from_trusted(wall_ms: i64, counter: u32, node: String) -> Self {
        Self {
            wall_ms: wall_ms.clamp(0, MAX_WALL_MS),
            counter,
            node,
        }
    }
}

/// Checks a node id against the length and character rules.
pub(crate) fn validate_node(node: &str) -> Result<(), StampError> {
    let chars = node.chars().count();
    if chars > MAX_NODE_CHARS {
        return Err(StampError::NodeTooLong { chars });
    }
    if node.chars().any(char::is_control) {
        return Err(StampError::NodeControlChar);
    }
    Ok(())
}

/// Writes `n` into all of `out` as zero-padded ASCII digits (the caller makes sure
/// it fits: `n < 10^out.len()`).
fn fill_padded(out: &mut [u8], mut n: u64) {
    for digit in out.iter_mut().rev() {
        // `n % 10` < 10 always fits a u8.
        *digit = b'0' + u8::try_from(n % 10).unwrap_or_default();
        n /= 10;
    }
}

/// The canonical form. Written by hand rather than with `{:015}`-style padding: a
/// push formats ~9 stamps per change, and `core::fmt`'s padding (one `write_char` per
/// pad digit) was a third of a push's own CPU time.
impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NODE_START: usize = WALL_DIGITS + 1 + COUNTER_DIGITS + 1;
        let mut head = [b'-'; NODE_START];
        // `wall_ms` is in `0..=MAX_WALL_MS` (15 digits) by construction.
        fill_padded(
            &mut head[..WALL_DIGITS],
            u64::try_from(self.wall_ms).unwrap_or_default(),
        );
        fill_padded(
            &mut head[WALL_DIGITS + 1..NODE_START - 1],
            u64::from(self.counter),
        );
        // Digits and dashes only: always UTF-8.
        f.write_str(std::str::from_utf8(&head).map_err(|_| fmt::Error)?)?;
        f.write_str(&self.node)
    }
}

impl FromStr for Stamp {
    type Err = StampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((wall, counter, node)) = split_canonical(s) {
            // Fixed-width ASCII digits always fit: 15 digits < i64::MAX, 10 digits may
            // exceed u32::MAX, which `parse` reports.
            let wall_ms: i64 = wall.parse().map_err(|_| malformed(s))?;
            let counter: u32 = counter.parse().map_err(|_| malformed(s))?;
            return Self::new(wall_ms, counter, node);
        }
        match DateTime::parse_from_rfc3339(s) {
            Ok(at) => Self::from_datetime(at.with_timezone(&Utc)),
            Err(_) => Err(malformed(s)),
        }
    }
}

/// Splits `s` into the canonical form's three parts when it has that shape.
fn split_canonical(s: &str) -> Option<(&str, &str, &str)> {
    let bytes = s.as_bytes();
    let counter_start = WALL_DIGITS + 1;
    let node_start = counter_start + COUNTER_DIGITS + 1;
    if bytes.len() < node_start
        || bytes[WALL_DIGITS] != b'-'
        || bytes[node_start - 1] != b'-'
        || !bytes[..WALL_DIGITS].iter().all(u8::is_ascii_digit)
        || !bytes[counter_start..node_start - 1]
            .iter()
            .all(u8::is_ascii_digit)
    {
        return None;
    }
    // The checked prefix is ASCII, so these indices are char boundaries.
    Some((
        s.get(..WALL_DIGITS)?,
        s.get(counter_start..node_start - 1)?,
        s.get(node_start..)?,
    ))
}

fn malformed(s: &str) -> StampError {
    StampError::Malformed {
        input: s.chars().take(ECHO_CHARS).collect(),
    }
}

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn st(wall: i64, counter: u32, node: &str) -> Stamp {
        Stamp::new(wall, counter, node).unwrap()
    }

    #[test]
    fn order_is_wall_then_counter_then_node() {
        let sorted = [
            st(0, 0, ""),
            st(0, 0, "a"),
            st(0, 1, ""),
            st(0, 999_999, "z"),
            st(0, 1_000_000, ""),
            st(0, u32::MAX, "zz"),
            st(1, 0, ""),
            st(MAX_WALL_MS, u32::MAX, "z"),
        ];
        for pair in sorted.windows(2) {
            assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
    }

    #[test]
    fn canonical_form_and_round_trip() {
        let s = st(1_700_000_000_123, 42, "device-a");
        assert_eq!(s.to_string(), "001700000000123-0000000042-device-a");
        assert_eq!(s.to_string().parse::<Stamp>().unwrap(), s);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"001700000000123-0000000042-device-a\"");
        assert_eq!(serde_json::from_str::<Stamp>(&json).unwrap(), s);
        assert_eq!(st(0, 0, "").to_string(), "000000000000000-0000000000-");
        assert_eq!(
            st(MAX_WALL_MS, u32::MAX, "z").to_string(),
            "999999999999999-4294967295-z"
        );
        // Empty node and a node containing dashes survive too.
        for s in [st(0, 0, ""), st(5, 6, "a-b--c-")] {
            assert_eq!(s.to_string().parse::<Stamp>().unwrap(), s);
        }
    }

    #[test]
    fn parses_rfc3339() {
        let s: Stamp = "2024-03-01T12:00:00.123456Z".parse().unwrap();
        assert_eq!(s, st(1_709_294_400_123, 0, ""));
        let offset: Stamp = "2024-03-01T13:00:00.123+01:00".parse().unwrap();
        assert_eq!(offset, s);
        let from_json: Stamp = serde_json::from_str("\"2024-03-01T12:00:00.123Z\"").unwrap();
        assert_eq!(from_json, s);
        assert_eq!(s.wall_time().to_rfc3339(), "2024-03-01T12:00:00.123+00:00");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "garbage",
            "123",
            "00000000000001-0000000001-a",    // 14-digit wall
            "000000000000001-000001-a",       // 6-digit counter is not canonical
            "000000000000001-0000000001",     // missing node separator
            "000000000000001-9999999999-a",   // counter > u32::MAX
            "00000000000000a-0000000001-a",   // non-digit
            "2024-13-01T00:00:00Z",           // bad month
            "2024-03-01 12:00:00",            // not RFC 3339
            "1969-12-31T23:59:59Z",           // before the epoch
            "000000000000001-0000000001-a\n", // control char in node
        ] {
            let err = bad.parse::<Stamp>();
            assert!(err.is_err(), "{bad:?} parsed as {err:?}");
        }
        assert!(matches!(
            "1969-12-31T23:59:59Z".parse::<Stamp>(),
            Err(StampError::WallOutOfRange { wall_ms: -1000 })
        ));
        let long = format!("000000000000001-0000000001-{}", "x".repeat(129));
        assert_eq!(
            long.parse::<Stamp>(),
            Err(StampError::NodeTooLong { chars: 129 })
        );
        assert!(serde_json::from_str::<Stamp>("\"nope\"").is_err());
        assert!(serde_json::from_str::<Stamp>("17").is_err());
    }

    #[test]
    fn constructor_checks_bounds() {
        assert!(Stamp::new(-1, 0, "").is_err());
        assert!(Stamp::new(MAX_WALL_MS + 1, 0, "").is_err());
        assert!(Stamp::new(MAX_WALL_MS, u32::MAX, "n".repeat(MAX_NODE_CHARS)).is_ok());
        assert!(Stamp::new(0, 0, "ü".repeat(MAX_NODE_CHARS)).is_ok());
        assert!(Stamp::new(0, 0, "a\u{0}").is_err());
    }

    #[test]
    fn error_message_is_clear_and_bounded() {
        let err = "x".repeat(1000).parse::<Stamp>().unwrap_err().to_string();
        assert!(err.contains("RFC 3339"), "{err}");
        assert!(err.len() < 250, "{err}");
    }

    proptest! {
        #[test]
        fn string_order_matches_stamp_order(
            a in (0..=MAX_WALL_MS, any::<u32>(), "[a-z0-9-]{0,6}"),
            b in (0..=MAX_WALL_MS, any::<u32>(), "[a-z0-9-]{0,6}"),
            same_wall in any::<bool>(),
        ) {
            let a = st(a.0, a.1, &a.2);
            let b = st(if same_wall { a.wall_ms } else { b.0 }, b.1, &b.2);
            prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
            prop_assert_eq!(a.to_string().parse::<Stamp>().unwrap(), a);
        }

        #[test]
        fn parsed_stamps_round_trip(s in "\\PC{0,40}") {
            // Any input either fails cleanly or yields a stamp whose canonical form
            // parses back to itself.
            if let Ok(stamp) = s.parse::<Stamp>() {
                prop_assert_eq!(stamp.to_string().parse::<Stamp>().unwrap(), stamp);
            }
        }
    }
}
