//! Editing a JSON request body without re-serializing it.
//!
//! A same-dialect route forwards the client's bytes as they are; at most one top-level
//! field changes (`model` pinned to the resolved name, `stream_options` injected so usage
//! is always reported, Anthropic's `max_tokens` filled in). This module finds top-level
//! fields by scanning the bytes and splices the new value in, so the rest of the
//! document, number formatting and key order included, reaches the provider untouched.
//! The same scanner finds the `usage` of an answer that passes through ([`NearEnd`]).
//!
//! The top level is read strictly; nested arrays and objects are skipped by their
//! brackets and strings (see `Scanner::container`), about four times faster than
//! following their grammar.

use std::borrow::Cow;
use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body is not a JSON object")]
pub struct NotAnObject;

/// A top-level field: its (unescaped) key and the byte range of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    /// Borrowed from the body unless the key has escapes.
    pub key: Cow<'a, str>,
    pub value: Range<usize>,
}

/// The top-level fields of a JSON object, in document order.
pub fn fields(body: &[u8]) -> Result<Vec<Field<'_>>, NotAnObject> {
    Fields::new(body).collect()
}

/// The top-level fields of a JSON object, one at a time: a reader that wants a few
/// keys allocates nothing and can stop early. An error ends the iteration.
pub struct Fields<'a> {
    s: Scanner<'a>,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Next,
    Done,
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Self {
            s: Scanner { b: body, i: 0 },
            state: State::Start,
        }
    }

    fn field(&mut self) -> Result<Option<Field<'a>>, NotAnObject> {
        let s = &mut self.s;
        if self.state == State::Start {
            s.ws();
            s.expect(b'{')?;
            s.ws();
            if s.peek() == Some(b'}') {
                return Ok(None);
            }
        } else {
            s.ws();
            match s.next() {
                Some(b',') => {}
                Some(b'}') => return Ok(None),
                _ => return Err(NotAnObject),
            }
        }
        self.state = State::Next;
        s.ws();
        let key_range = s.string()?;
        let body = s.b;
        let raw_key = &body[key_range.clone()];
        let key = if raw_key.contains(&b'\\') {
            Cow::Owned(
                serde_json::from_slice::<String>(&body[key_range.start - 1..key_range.end + 1])
                    .map_err(|_| NotAnObject)?,
            )
        } else {
            Cow::Borrowed(std::str::from_utf8(raw_key).map_err(|_| NotAnObject)?)
        };
        s.ws();
        s.expect(b':')?;
        s.ws();
        let start = s.i;
        s.value(0)?;
        Ok(Some(Field {
            key,
            value: start..s.i,
        }))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, NotAnObject>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state == State::Done {
            return None;
        }
        let field = self.field().transpose();
        if !matches!(field, Some(Ok(_))) {
            self.state = State::Done;
        }
        field
    }
}

/// A top-level field that providers put at or near the end of their answers
/// (`usage`), looked for from the end. A match counts only if the rest of the document
/// reads as the remaining members of the top-level object (which a nested key's rest
/// cannot: it has more than one closing bracket), so a long answer's content is
/// skipped rather than scanned. A body this cannot settle, such as one with the key
/// twice, is read from the start as [`get`] does. Only the members after a match are
/// checked, so of a malformed body it may return what [`get`] refuses.
pub struct NearEnd {
    key: &'static str,
    /// The key's rarest byte (by [`RARITY`]) and its place in the key: the search runs
    /// backwards over that byte with `memrchr`, a vector scan, and compares the whole
    /// key only where it is found. memchr's reverse substring search has no vector
    /// scan; on an 842-byte answer it cost about 1,000 instructions a request.
    rare: (u8, usize),
}

/// Letters from the most to the least frequent in English text (which is what JSON
/// keys and answers are mostly made of); a byte not listed counts as rarest.
const RARITY: &[u8] = b"etaoinsrhldcu_mfpgwybvkxjqz";

impl NearEnd {
    /// A finder for `key`, which must need no escaping.
    pub fn new(key: &'static str) -> Self {
        debug_assert!(!key.is_empty() && !key.contains(['"', '\\']));
        let rank = |b: u8| RARITY.iter().position(|&r| r == b.to_ascii_lowercase());
        let rare = key
            .bytes()
            .enumerate()
            .max_by_key(|&(_, b)| rank(b).unwrap_or(usize::MAX))
            .map_or((b'"', 0), |(i, b)| (b, i));
        Self { key, rare }
    }

    /// Where `"key"` last starts in `hay`.
    fn rfind(&self, hay: &[u8]) -> Option<usize> {
        let (byte, at) = self.rare;
        let key = self.key.as_bytes();
        memchr::memrchr_iter(byte, hay).find_map(|i| {
            // The quoted key starts a quote before the key, which starts `at` before i.
            let start = i.checked_sub(at + 1)?;
            let quoted = hay.get(start..start + key.len() + 2)?;
            (quoted[0] == b'"' && quoted[key.len() + 1] == b'"' && &quoted[1..=key.len()] == key)
                .then_some(start)
        })
    }

    /// The raw bytes of the field's value.
    pub fn get<'a>(&self, body: &'a [u8]) -> Result<Option<&'a [u8]>, NotAnObject> {
        let skip = |value: &'a [u8]| {
            let mut s = Scanner { b: value, i: 0 };
            s.value(0).ok().map(|()| (&value[..s.i], s.i))
        };
        match self.find(body, skip) {
            Some(found) => Ok(Some(found)),
            None => get(body, self.key),
        }
    }

    /// The field's value as `read` reads it from the bytes where the value starts
    /// (returning what it read and the value's length), or `None`.
    ///
    /// One pass for a value that is parsed anyway: [`get`] would scan it to find its
    /// end, and the caller's parser would then read it again (for the usage of an
    /// answer passed through, the scan cost about 2,400 instructions a request).
    pub fn read<'a, T>(
        &self,
        body: &'a [u8],
        read: impl Fn(&'a [u8]) -> Option<(T, usize)>,
    ) -> Option<T> {
        if let Some(found) = self.find(body, &read) {
            return Some(found);
        }
        let raw = get(body, self.key).ok()??;
        read(raw)
            .filter(|(_, len)| *len == raw.len())
            .map(|(t, _)| t)
    }

    /// The last-placed candidates for the key, tried with `read`: the first whose value
    /// reads and is followed by the rest of the top-level object only.
    fn find<'a, T>(
        &self,
        body: &'a [u8],
        read: impl Fn(&'a [u8]) -> Option<(T, usize)>,
    ) -> Option<T> {
        let mut end = body.len();
        // A few tries: the key may also appear, quoted whole, inside the content.
        for _ in 0..4 {
            let at = self.rfind(&body[..end])?;
            end = at;
            // A quote after an odd number of backslashes is escaped: the match is
            // then inside a string.
            let backslashes = body[..at].iter().rev().take_while(|&&c| c == b'\\').count();
            if backslashes % 2 != 0 {
                continue;
            }
            let Some(start) = value_start(body, at + self.key.len() + 2) else {
                continue;
            };
            if let Some((found, len)) = read(&body[start..])
                && rest_closes(body, start + len)
            {
                return Some(found);
            }
        }
        None
    }
}

/// Where the value of the member whose key ends at `i` starts: past `:` and
/// whitespace.
fn value_start(body: &[u8], i: usize) -> Option<usize> {
    let mut s = Scanner { b: body, i };
    s.ws();
    s.expect(b':').ok()?;
    s.ws();
    Some(s.i)
}

/// Whether what follows a value ending at `i` reads as the rest of the top-level
/// object: `, "key": value` any number of times, the closing brace and nothing but
/// whitespace.
fn rest_closes(body: &[u8], i: usize) -> bool {
    let mut s = Scanner { b: body, i };
    loop {
        s.ws();
        match s.next() {
            Some(b',') => {
                s.ws();
                if s.string().is_err() {
                    return false;
                }
                s.ws();
                if s.expect(b':').is_err() {
                    return false;
                }
                s.ws();
                if s.value(0).is_err() {
                    return false;
                }
            }
            Some(b'}') => {
                s.ws();
                return s.i == body.len();
            }
            _ => return false,
        }
    }
}

/// `body` with the top-level `key` set to the raw JSON `value`: replaced in place when
/// present, inserted first otherwise.
pub fn set(body: &[u8], key: &str, value: &[u8]) -> Result<Vec<u8>, NotAnObject> {
    let found = fields(body)?;
    let mut out = Vec::with_capacity(body.len() + key.len() + value.len() + 4);
    match found.iter().find(|f| f.key == key) {
        Some(field) => {
            out.extend_from_slice(&body[..field.value.start]);
            out.extend_from_slice(value);
            out.extend_from_slice(&body[field.value.end..]);
        }
        None => {
            let open = body.iter().position(|&c| c == b'{').ok_or(NotAnObject)?;
            out.extend_from_slice(&body[..=open]);
            out.extend_from_slice(
                serde_json::to_string(key)
                    .map_err(|_| NotAnObject)?
                    .as_bytes(),
            );
            out.push(b':');
            out.extend_from_slice(value);
            if !found.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(&body[open + 1..]);
        }
    }
    Ok(out)
}

/// One change to a top-level member of a body already read (see
/// [`crate::peek::Layout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit<'a> {
    /// The member's value, at this byte range, replaced by raw JSON.
    Replace { value: Range<usize>, with: &'a [u8] },
    /// The member, absent, inserted first (of several, the last edit's leads, as
    /// setting them in turn with [`set`] would). The key is written as it is: a plain
    /// name.
    Insert { key: &'static str, value: &'a [u8] },
}

/// `body` with every edit applied, in one copy. `open` is just past the object's `{`
/// and `empty` whether it has no members; replaced ranges are values of distinct
/// top-level members, so they do not overlap. The body is trusted to be the object
/// those positions were read from: nothing is scanned here, which is the point.
pub fn splice(body: &[u8], open: usize, empty: bool, edits: &[Edit<'_>]) -> Vec<u8> {
    let extra: usize = edits
        .iter()
        .map(|e| match e {
            Edit::Replace { with, .. } => with.len(),
            Edit::Insert { key, value } => key.len() + value.len() + 4,
        })
        .sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    out.extend_from_slice(&body[..open]);
    // Each insertion goes first, so the last one leads, as setting them in turn would.
    let mut inserts = edits
        .iter()
        .rev()
        .filter_map(|e| match e {
            Edit::Insert { key, value } => Some((*key, *value)),
            Edit::Replace { .. } => None,
        })
        .peekable();
    while let Some((key, value)) = inserts.next() {
        debug_assert!(!key.bytes().any(|c| c == b'"' || c == b'\\' || c < 0x20));
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(value);
        if inserts.peek().is_some() || !empty {
            out.push(b',');
        }
    }
    let mut replaces: Vec<(&Range<usize>, &[u8])> = edits
        .iter()
        .filter_map(|e| match e {
            Edit::Replace { value, with } => Some((value, *with)),
            Edit::Insert { .. } => None,
        })
        .collect();
    replaces.sort_unstable_by_key(|(r, _)| r.start);
    let mut at = open;
    for (range, with) in replaces {
        out.extend_from_slice(&body[at..range.start]);
        out.extend_from_slice(with);
        at = range.end;
    }
    out.extend_from_slice(&body[at..]);
    out
}

/// The raw bytes of a top-level field's value. The object is read up to that field
/// only: what follows it is not checked.
pub fn get<'a>(body: &'a [u8], key: &str) -> Result<Option<&'a [u8]>, NotAnObject> {
    for field in Fields::new(body) {
        let field = field?;
        if field.key == key {
            return Ok(Some(&body[field.value]));
        }
    }
    Ok(None)
}

/// Nesting deeper than this is refused rather than followed.
const MAX_DEPTH: usize = 256;

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), NotAnObject> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(NotAnObject)
        }
    }

    /// A string; returns the range of its contents, without the quotes.
    fn string(&mut self) -> Result<Range<usize>, NotAnObject> {
        self.expect(b'"')?;
        let (b, start) = (self.b, self.i);
        let mut i = start;
        loop {
            if i >= b.len() {
                return Err(NotAnObject);
            }
            // Most strings in a JSON document are short keys and values, for which a
            // plain loop beats setting up a vectorized search; a long one (an answer's
            // content) is handed to `memchr`.
            let short = (i + 32).min(b.len());
            while i < short && b[i] != b'"' && b[i] != b'\\' {
                i += 1;
            }
            if i == short {
                i += memchr::memchr2(b'"', b'\\', b.get(i..).ok_or(NotAnObject)?)
                    .ok_or(NotAnObject)?;
            }
            if b[i] == b'"' {
                self.i = i + 1;
                return Ok(start..i);
            }
            // An escape: skip the escaped byte (a `\u` sequence's hex digits are plain
            // bytes and need no care).
            i += 2;
        }
    }

    /// Skip the array or object that starts here: its brackets must match and its
    /// strings end, but what lies between them is not checked. The bodies read here
    /// are either a client's, which serde has already parsed whole, or a provider's,
    /// which passes through as it came; their top level is what this module edits
    /// and reads, and that is checked by [`Fields`].
    fn container(&mut self, depth: usize) -> Result<(), NotAnObject> {
        let b = self.b;
        let mut closers = [0u8; MAX_DEPTH];
        let mut open = 0;
        let mut i = self.i;
        loop {
            let c = *b.get(i).ok_or(NotAnObject)?;
            match c {
                b'"' => {
                    self.i = i;
                    self.string()?;
                    i = self.i;
                    continue;
                }
                b'{' | b'[' => {
                    if depth + open >= MAX_DEPTH {
                        return Err(NotAnObject);
                    }
                    closers[open] = if c == b'{' { b'}' } else { b']' };
                    open += 1;
                }
                b'}' | b']' => {
                    if open == 0 || closers[open - 1] != c {
                        return Err(NotAnObject);
                    }
                    open -= 1;
                    if open == 0 {
                        self.i = i + 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), NotAnObject> {
        if depth > MAX_DEPTH {
            return Err(NotAnObject);
        }
        match self.peek().ok_or(NotAnObject)? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => self.container(depth),
            _ => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.i += 1;
                }
                if self.i == start {
                    Err(NotAnObject)
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {

    /// The backward search over the key's rarest byte finds what a plain search from
    /// the end finds: the last whole `"key"`, at any place, overlapping or cut short.
    #[test]
    fn the_quoted_key_is_found_last_first() {
        let naive = |hay: &[u8], key: &str| {
            let quoted = format!("\"{key}\"");
            hay.windows(quoted.len())
                .rposition(|w| w == quoted.as_bytes())
        };
        let hays: [&[u8]; 9] = [
            b"",
            b"\"usage\"",
            br#"{"usage":{"a":1},"x":"usage","usage":2}"#,
            br#"usage" "usag"usage"#,
            br#""usage"usage""#,
            br#"{"reasoning":"g","usage":1}"#,
            br#""usageusage""#,
            b"\"usa\"ge\"",
            br#"{"tool_use":1,"use":2}"#,
        ];
        for key in ["usage", "use", "u", "tool_use"] {
            let finder = NearEnd::new(key);
            for hay in hays {
                assert_eq!(
                    finder.rfind(hay),
                    naive(hay, key),
                    "{key} in {:?}",
                    String::from_utf8_lossy(hay)
                );
            }
        }
        assert_eq!(NearEnd::new("usage").rare, (b'g', 3));
    }

    use super::*;

    #[test]
    fn finds_top_level_fields_only() {
        let body =
            br#" { "model" : "a\"b", "messages":[{"model":"inner"}], "n":1.50e2 ,"o":{"x":[]}} "#;
        let f = fields(body).expect("object");
        let keys: Vec<_> = f.iter().map(|f| &*f.key).collect();
        assert_eq!(keys, ["model", "messages", "n", "o"]);
        assert_eq!(&body[f[0].value.clone()], br#""a\"b""#);
        assert_eq!(&body[f[2].value.clone()], b"1.50e2");
    }

    #[test]
    fn a_key_near_the_end_is_found_only_at_the_top_level() {
        let cases: &[&[u8]] = &[
            br#"{"a":1,"usage":{"x":2}}"#,
            br#"{"usage":{"x":2},"service_tier":"default","fp":null} "#,
            br#"{"usage":2,"a":{"usage":1}}"#,
            br#"{"a":[{"usage":1}]}"#,
            br#"{"a":{"usage":1}}"#,
            br#"{"c":"say \"usage\":3}","usage":4}"#,
            br#"{"c":"say \"usage\":3}"}"#,
            br#"{"usage":5,"c":"\"usage\":6}"}"#,
            br#"{"abc\"usage":7}"#,
            br#"{"a":"abc\\","usage":8}"#,
            br#"{"us\u0061ge":9}"#,
            br#"{"usage":"usage","c":"usage"}"#,
            br#"{"a":"b"}"#,
            br#"{"usage" : 10 , "b" : [ ] }"#,
            br#"["usage",1]"#,
        ];
        let usage = NearEnd::new("usage");
        for body in cases {
            assert_eq!(
                usage.get(body),
                get(body, "usage"),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // With the key twice, the last one is the top-level match found from the end.
        assert_eq!(
            usage.get(br#"{"a":{"usage":1},"usage":2}"#),
            Ok(Some(&b"2"[..]))
        );
    }

    #[test]
    fn strings_long_and_short_are_skipped_whole() {
        for len in [0, 1, 23, 24, 25, 100] {
            let text = "x".repeat(len);
            let body = format!(r#"{{"{text}":"{text}\"{text}","k":1}}"#);
            assert_eq!(get(body.as_bytes(), "k"), Ok(Some(&b"1"[..])), "{len}");
            let open = format!(r#"{{"k":"{text}"#);
            assert!(fields(open.as_bytes()).is_err(), "{len}");
        }
    }

    #[test]
    fn escaped_keys_are_recognised() {
        let body = br#"{"mod\u0065l":"x"}"#;
        assert_eq!(get(body, "model").expect("ok"), Some(&br#""x""#[..]));
    }

    #[test]
    fn set_replaces_or_inserts_leaving_the_rest_alone() {
        let body = br#"{"model":"old","temperature":0.70,"messages":[]}"#;
        assert_eq!(
            set(body, "model", br#""new""#).expect("ok"),
            br#"{"model":"new","temperature":0.70,"messages":[]}"#
        );
        assert_eq!(
            set(br#"{"messages":[]}"#, "model", br#""m""#).expect("ok"),
            br#"{"model":"m","messages":[]}"#
        );
        assert_eq!(set(b" {} ", "a", b"1").expect("ok"), b" {\"a\":1} ");
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        for bad in [
            &b""[..],
            b"[]",
            b"{",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"\"x\"",
            b"{\"a\":[}",
            b"{\"a\":{]}",
            b"{\"a\":[1}]}",
            b"{\"a\":\"\\",
            b"{\"a\":\"x\\\"}",
            b"{\"a\":[\"]\"}",
        ] {
            assert!(fields(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(300), "]".repeat(300));
        assert!(fields(deep.as_bytes()).is_err());
    }
}
