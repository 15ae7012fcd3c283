//! Editing a JSON request body without re-serializing it.
//!
//! A same-dialect route forwards the client's bytes as they are; at most one top-level
//! field changes (`model` pinned to the resolved name, `stream_options` injected so usage
//! is always reported, Anthropic's `max_tokens` filled in). This module finds top-level
//! fields by scanning the bytes and splices the new value in, so the rest of the
//! document, number formatting and key order included, reaches the provider untouched.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body is not a JSON object")]
pub struct NotAnObject;

/// A top-level field: its (unescaped) key and the byte range of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub key: String,
    pub value: Range<usize>,
}

/// The top-level fields of a JSON object, in document order.
pub fn fields(body: &[u8]) -> Result<Vec<Field>, NotAnObject> {
    let mut s = Scanner { b: body, i: 0 };
    s.ws();
    s.expect(b'{')?;
    let mut out = Vec::new();
    s.ws();
    if s.peek() == Some(b'}') {
        return Ok(out);
    }
    loop {
        s.ws();
        let key_range = s.string()?;
        let raw_key = &body[key_range.clone()];
        let key = if raw_key.contains(&b'\\') {
            serde_json::from_slice::<String>(&body[key_range.start - 1..key_range.end + 1])
                .map_err(|_| NotAnObject)?
        } else {
            String::from_utf8(raw_key.to_vec()).map_err(|_| NotAnObject)?
        };
        s.ws();
        s.expect(b':')?;
        s.ws();
        let start = s.i;
        s.value(0)?;
        out.push(Field {
            key,
            value: start..s.i,
        });
        s.ws();
        match s.next() {
            Some(b',') => continue,
            Some(b'}') => return Ok(out),
            _ => return Err(NotAnObject),
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

/// The raw bytes of a top-level field's value.
pub fn get<'a>(body: &'a [u8], key: &str) -> Result<Option<&'a [u8]>, NotAnObject> {
    Ok(fields(body)?
        .into_iter()
        .find(|f| f.key == key)
        .map(|f| &body[f.value]))
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
        let start = self.i;
        loop {
            let rest = self.b.get(self.i..).ok_or(NotAnObject)?;
            let at = memchr::memchr2(b'"', b'\\', rest).ok_or(NotAnObject)?;
            self.i += at;
            match self.next() {
                Some(b'"') => return Ok(start..self.i - 1),
                _ => {
                    // An escape: skip the escaped byte (a `\u` sequence's hex digits are
                    // plain bytes and need no care).
                    self.next().ok_or(NotAnObject)?;
                }
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), NotAnObject> {
        if depth > MAX_DEPTH {
            return Err(NotAnObject);
        }
        match self.peek().ok_or(NotAnObject)? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        self.expect(b':')?;
                        self.ws();
                    }
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(c) if c == close => return Ok(()),
                        _ => return Err(NotAnObject),
                    }
                }
            }
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
    use super::*;

    #[test]
    fn finds_top_level_fields_only() {
        let body =
            br#" { "model" : "a\"b", "messages":[{"model":"inner"}], "n":1.50e2 ,"o":{"x":[]}} "#;
        let f = fields(body).expect("object");
        let keys: Vec<_> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["model", "messages", "n", "o"]);
        assert_eq!(&body[f[0].value.clone()], br#""a\"b""#);
        assert_eq!(&body[f[2].value.clone()], b"1.50e2");
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
        ] {
            assert!(fields(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(300), "]".repeat(300));
        assert!(fields(deep.as_bytes()).is_err());
    }
}
