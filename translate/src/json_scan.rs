//! A strict one-pass JSON reader for the few fields sluice reads on every request,
//! that agrees with serde or steps aside.
//!
//! serde's derive copies out each key, checks it as UTF-8 and matches it against the
//! field names, and walks every ignored member through a visitor: for a request's
//! `model` and `stream`, or an answer's usage counts, most of the work is skipping.
//! Readers built on [`Scan`] look only at the members they want and skip the rest with
//! `memchr`, and they answer only when they are sure serde would have answered the
//! same: a key with an escape or a byte above 0x7f, a value of a kind they do not read
//! plainly, a repeated member or nesting deeper than [`MAX_DEPTH`] makes them return
//! `None`, and the caller parses with serde as before (which also gives the error). So
//! what they return is serde's answer, and what they decline costs only the bytes
//! they looked at. Skipped values are checked as serde's `IgnoredAny` checks them.

/// Nesting beyond this in a skipped value is left to serde.
pub const MAX_DEPTH: usize = 64;

/// What a member's key named, for [`Scan::object`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// The reader's member at this index (below 32); a second one is left to serde,
    /// whose derive refuses it.
    Known(usize),
    Other,
}

/// A position in a JSON document.
#[derive(Debug)]
pub struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { b: bytes, i: 0 }
    }

    /// How far the reader has come.
    pub fn position(&self) -> usize {
        self.i
    }

    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skip JSON's whitespace.
    pub fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    /// Whether nothing but whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    pub fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    /// `literal` if it is next.
    pub fn word(&mut self, literal: &[u8]) -> bool {
        let found = self.b[self.i..].starts_with(literal);
        if found {
            self.i += literal.len();
        }
        found
    }

    pub fn null(&mut self) -> bool {
        self.word(b"null")
    }

    /// `true` or `false`.
    pub fn boolean(&mut self) -> Option<bool> {
        if self.word(b"true") {
            Some(true)
        } else if self.word(b"false") {
            Some(false)
        } else {
            None
        }
    }

    /// An object (whitespace before it skipped), each member's value read by `member`
    /// given its key (a [`Scan::plain`] string), whitespace around each value skipped.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<Member>,
    ) -> Option<()> {
        self.ws();
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        let mut seen = 0u32;
        loop {
            let key = self.plain()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            if let Member::Known(k) = member(self, key)? {
                let bit = 1u32.checked_shl(u32::try_from(k).ok()?)?;
                if seen & bit != 0 {
                    return None;
                }
                seen |= bit;
            }
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string of printable ASCII without escapes (JSON allows DEL); its contents.
    /// Keys are short: they are scanned a word at a time, which costs less than
    /// `memchr`'s set-up.
    pub fn plain(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        let end = start + first_special(&self.b[start..])?;
        if self.b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        Some(&self.b[start..end])
    }

    /// One or more digits.
    pub fn digits(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.b[start..self.i])
    }

    /// Any value, as serde's `IgnoredAny` accepts it: strings with any bytes but
    /// control bytes (not checked as UTF-8, as serde does not check a string it
    /// ignores) and valid escapes, numbers by JSON's grammar.
    pub fn skip(&mut self) -> Option<()> {
        self.skip_nested(0)
    }

    fn skip_nested(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string(),
            b'{' => {
                self.i += 1;
                self.ws();
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.skip_nested(depth + 1)?;
                    if self.close(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.skip_nested(depth + 1)?;
                    if self.close(b']')? {
                        return Some(());
                    }
                }
            }
            b't' => self.word(b"true").then_some(()),
            b'f' => self.word(b"false").then_some(()),
            b'n' => self.null().then_some(()),
            _ => self.number(),
        }
    }

    /// After a member or element: `true` at the closing `end`, `false` after a comma.
    fn close(&mut self, end: u8) -> Option<bool> {
        self.ws();
        let next = self.peek()?;
        self.i += 1;
        let closed = next == end;
        (closed || next == b',').then(|| {
            self.ws();
            closed
        })
    }

    /// A string as serde ignores it.
    fn string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let start = self.i;
            let end = start + memchr::memchr2(b'"', b'\\', &self.b[start..])?;
            if has_control(&self.b[start..end]) {
                return None;
            }
            self.i = end + 1;
            if self.b[end] == b'"' {
                return Some(());
            }
            match self.peek()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                b'u' => {
                    let hex = self.b.get(self.i + 1..self.i + 5)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.i += 5;
                }
                _ => return None,
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        let int = self.digits()?;
        if int.len() > 1 && int[0] == b'0' {
            return None;
        }
        if self.eat(b'.').is_some() {
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.digits()?;
        }
        Some(())
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether `text` has a byte below 0x20, a word at a time (the classic "has a byte less
/// than" test: exact about whether there is one).
fn has_control(text: &[u8]) -> bool {
    let mut words = text.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        if w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|&c| c < 0x20)
}

/// Where the first byte of `text` lies that ends a plain string: a quote, a
/// backslash, a control byte or one above 0x7f.
///
/// Each test below may also flag bytes above a flagged one (a borrow carries upwards),
/// never one below, so the lowest flag of a word is exact.
fn first_special(text: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(word) = text.get(at..at + 8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let flags = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w)
            | w;
        let flags = flags & HIGH;
        if flags != 0 {
            return Some(at + flags.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let rest = text[at..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c))?;
    Some(at + rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(json: &str) -> Option<usize> {
        let mut s = Scan::new(json.as_bytes());
        s.skip().map(|()| s.position())
    }

    #[test]
    fn byte_classes_are_found_in_every_position() {
        for len in 0..24 {
            let plain = vec![b'a'; len];
            assert!(!has_control(&plain));
            assert_eq!(first_special(&plain), None);
            for at in 0..len {
                for (byte, control, special) in [
                    (0x00, true, true),
                    (0x1f, true, true),
                    (b' ', false, false),
                    (b'"', false, true),
                    (b'\\', false, true),
                    (0x7f, false, false),
                    (0x80, false, true),
                    (0xff, false, true),
                ] {
                    let mut text = plain.clone();
                    text[at] = byte;
                    assert_eq!(has_control(&text), control, "{text:?}");
                    // A second special byte later does not move the first.
                    if at + 1 < len {
                        text[at + 1] = b'"';
                    }
                    let want = if special {
                        Some(at)
                    } else if at + 1 < len {
                        Some(at + 1)
                    } else {
                        None
                    };
                    assert_eq!(first_special(&text), want, "{text:?}");
                }
            }
        }
    }

    #[test]
    fn values_are_skipped_as_serde_ignores_them() {
        for ok in [
            r#""""#,
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00""#,
            "\"caf\u{e9} \u{1F600}\"",
            "\"\x7f\"",
            "0",
            "-0",
            "-12.5e+3",
            "1E9",
            "[]",
            "{}",
            r#"[1, "two" ,{"three":[true,false,null]} ]"#,
            r#"{"a" : {"b":{}} , "a":1}"#,
        ] {
            assert_eq!(skips(ok), Some(ok.len()), "{ok}");
            let parsed = serde_json::from_str::<serde::de::IgnoredAny>(ok);
            assert!(parsed.is_ok(), "{ok}");
        }
        for bad in [
            "",
            "\"a",
            "\"a\tb\"",
            r#""\x""#,
            r#""\u12g4""#,
            r#""\u12""#,
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "tru",
            "nul",
            "[1,]",
            "[1 2]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{1:2}",
            "[",
        ] {
            assert_eq!(skips(bad), None, "{bad}");
        }
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 2),
            "]".repeat(MAX_DEPTH + 2)
        );
        assert_eq!(skips(&deep), None);
        let fine = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(skips(&fine), Some(fine.len()));
    }

    #[test]
    fn objects_name_their_members_once() {
        let mut s = Scan::new(br#" {"a": 1, "b" :"x", "a":2}"#);
        let mut keys = Vec::new();
        let read = s.object(|s, key| {
            keys.push(key.to_vec());
            s.skip()?;
            Some(if key == b"b" {
                Member::Known(0)
            } else {
                Member::Other
            })
        });
        assert_eq!(read, Some(()));
        assert_eq!(keys, [b"a".to_vec(), b"b".to_vec(), b"a".to_vec()]);
        let mut twice = Scan::new(br#"{"b":1,"b":2}"#);
        assert_eq!(
            twice.object(|s, _| s.skip().map(|()| Member::Known(0))),
            None
        );
        for bad in [r#"{"\u0061":1}"#, "{\"caf\u{e9}\":1}", "{\"a\":1", "[]"] {
            let mut s = Scan::new(bad.as_bytes());
            assert_eq!(s.object(|s, _| s.skip().map(|()| Member::Other)), None);
        }
    }
}
