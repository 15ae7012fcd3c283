//! A provider's usage object read in one pass without serde (`json_scan`): the counts
//! of a dialect's usage type as plain digits, details objects of counts, every other
//! member skipped. serde's derive took about 5,400 instructions for OpenAI's usage
//! object, the largest item of a passed-through request after the network.

use crate::json_scan::{Member, Scan};

/// A count member of a usage object.
#[derive(Debug)]
pub(crate) struct Count {
    pub name: &'static [u8],
    /// Whether `null` reads as absent (an `Option<u64>`); for a plain `u64` serde
    /// refuses it.
    pub nullable: bool,
}

impl Count {
    /// A count of an `Option<u64>` field: `null` reads as absent.
    pub const fn optional(name: &'static [u8]) -> Self {
        Self {
            name,
            nullable: true,
        }
    }

    /// A count of a `u64` field: `null` is refused, as serde refuses it.
    pub const fn required(name: &'static [u8]) -> Self {
        Self {
            name,
            nullable: false,
        }
    }
}

/// The members of a dialect's usage object that sluice reads: counts at the top, and
/// objects of counts (each `Option<struct>`, so `null` reads as absent).
#[derive(Debug)]
pub(crate) struct Shape {
    pub counts: &'static [Count],
    pub objects: &'static [(&'static [u8], &'static [Count])],
}

/// The most counts a shape may have, all levels together.
const MAX_COUNTS: usize = 8;

/// The counts read, in the shape's order: the top's, then each object's in turn;
/// `None` where a count was absent or `null`.
pub(crate) type Counts = [Option<u64>; MAX_COUNTS];

/// Read the usage object at the start of `bytes` (after any whitespace); its counts and
/// the length up to its closing brace, or `None` when serde should decide.
pub(crate) fn read(shape: &Shape, bytes: &[u8]) -> Option<(Counts, usize)> {
    debug_assert!(
        shape.counts.len() + shape.objects.iter().map(|(_, c)| c.len()).sum::<usize>()
            <= MAX_COUNTS
    );
    let mut s = Scan::new(bytes);
    let mut counts = [None; MAX_COUNTS];
    s.object(|s, key| {
        if let Some(k) = shape.counts.iter().position(|c| c.name == key) {
            counts[k] = count(s, &shape.counts[k])?;
            return Some(Member::Known(k));
        }
        let mut at = shape.counts.len();
        for (o, (name, inner)) in shape.objects.iter().enumerate() {
            if *name == key {
                if !s.null() {
                    let slots = &mut counts[at..at + inner.len()];
                    s.object(|s, key| match inner.iter().position(|c| c.name == key) {
                        Some(k) => {
                            slots[k] = count(s, &inner[k])?;
                            Some(Member::Known(k))
                        }
                        None => s.skip().map(|()| Member::Other),
                    })?;
                }
                return Some(Member::Known(shape.counts.len() + o));
            }
            at += inner.len();
        }
        s.skip().map(|()| Member::Other)
    })?;
    Some((counts, s.position()))
}

/// A count: plain digits, no leading zero, within `u64`; `null` when `count` allows.
fn count(s: &mut Scan<'_>, count: &Count) -> Option<Option<u64>> {
    if s.null() {
        return count.nullable.then_some(None);
    }
    let digits = s.digits()?;
    if matches!(s.peek(), Some(b'.' | b'e' | b'E')) || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape {
        counts: &[Count::required(b"a"), Count::optional(b"b")],
        objects: &[(b"d", &[Count::optional(b"c")])],
    };

    fn counts(json: &str) -> Option<([Option<u64>; 3], usize)> {
        read(&SHAPE, json.as_bytes()).map(|(c, n)| ([c[0], c[1], c[2]], n))
    }

    #[test]
    fn plain_usage_objects_are_read() {
        assert_eq!(
            counts(r#"{"a":1,"b":2,"d":{"c":3}}"#),
            Some(([Some(1), Some(2), Some(3)], 25))
        );
        let spaced = " { \"b\" : null ,\t\"d\":null, \"a\":0 } ,";
        assert_eq!(
            counts(spaced),
            Some(([Some(0), None, None], spaced.len() - 2))
        );
        assert_eq!(counts("{}"), Some(([None; 3], 2)));
        let skipped =
            r#"{"x":[1,-2.5e+3,{"y":"z"},[],true,false,null],"w":{},"d":{"q":0E1,"c":7},"a":9}"#;
        assert_eq!(
            counts(skipped),
            Some(([Some(9), None, Some(7)], skipped.len()))
        );
        // Skipped strings as serde ignores them: escapes, any byte but control bytes.
        let text = r#"{"x":"caf\u00e9 \"q\"","y":"café","a":1}"#;
        assert_eq!(counts(text), Some(([Some(1), None, None], text.len())));
        assert_eq!(
            counts(r#"{"a":18446744073709551615}"#),
            Some(([Some(u64::MAX), None, None], 26))
        );
    }

    #[test]
    fn anything_not_plain_is_left_to_serde() {
        for json in [
            "null",
            "[1]",
            r#"{"a":null}"#,
            r#"{"a":1.0}"#,
            r#"{"a":1e2}"#,
            r#"{"a":-1}"#,
            r#"{"a":01}"#,
            r#"{"a":"1"}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"d":{},"d":{}}"#,
            r#"{"d":{"c":1,"c":1}}"#,
            r#"{"d":[1]}"#,
            r#"{"d":1}"#,
            r#"{"\u0061":1}"#,
            "{\"x\":\"a\tb\"}",
            r#"{"x":01}"#,
            r#"{"x":1.}"#,
            r#"{"x":.5}"#,
            r#"{"x":1e}"#,
            r#"{"x":tru}"#,
            r#"{"x":[1,]}"#,
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a" 1}"#,
            r#"{"a":1"#,
            "",
        ] {
            assert_eq!(counts(json), None, "{json}");
        }
    }
}
