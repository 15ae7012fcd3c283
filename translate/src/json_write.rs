//! Compact JSON out, byte for byte as `serde_json` writes it, with strings escaped
//! eight bytes at a time.
//!
//! `serde_json` looks every byte of every string up in its escape table. A translated
//! request is mostly strings (an agent's conversation: tens to hundreds of KiB of
//! turns), and that byte loop was the largest single cost of translating one, a quarter
//! of the time on a 128 KiB conversation (`perf` of the translate bench). Here a word
//! of eight bytes is tested for a quote, a backslash or a control character at once,
//! and the runs between escapes are copied whole. Numbers go through `serde_json`
//! itself, so they come out as its shortest round-trip forms.
//!
//! `Object` and `Array` write the same JSON member by member, for the converters that
//! write a request, a whole answer or a stream's events straight from the canonical
//! model.

use serde_json::Value;

/// `value` as compact JSON, as `serde_json::to_vec` writes it.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(&mut out, value);
    out
}

/// Append `value` to `out` as compact JSON. Members go out in the map's own order.
pub fn write(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // A `Number` always serializes; writing into a `Vec` cannot fail.
        Value::Number(n) => {
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Value::String(s) => string(out, s),
        Value::Array(items) => array(out, items, write),
        Value::Object(members) => {
            out.push(b'{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, key);
                out.push(b':');
                write(out, item);
            }
            out.push(b'}');
        }
    }
}

/// A JSON array of `items`, each written by `each`.
pub fn array<T>(out: &mut Vec<u8>, items: &[T], each: fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

/// Bytes `serde_json` escapes: the control characters, the quote and the backslash.
const fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// How many leading bytes of `bytes` need no escape, found eight at a time. In a word
/// read little-endian, each test sets the high bit of the first byte that is below
/// 0x20, a quote or a backslash (the borrow that may also mark bytes after it never
/// marks one before), so the lowest bit set names the first byte to escape.
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
    let mut i = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let marks = below(w, 0x20) | zero(w ^ (ONES * 0x22)) | zero(w ^ (ONES * 0x5c));
        if marks != 0 {
            return i + (marks.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + bytes[i..]
        .iter()
        .position(|&b| needs_escape(b))
        .unwrap_or(bytes.len() - i)
}

/// A JSON string, escaped as `serde_json` escapes it: the runs between escapes are
/// copied whole, so a string with none is one copy after one scan.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    escaped(out, s);
    out.push(b'"');
}

/// One JSON string of `pieces` with `separator` between them, as `string` would write
/// their `join`, without making the joined copy first.
pub fn joined<'a>(out: &mut Vec<u8>, pieces: impl IntoIterator<Item = &'a str>, separator: &str) {
    out.push(b'"');
    for (i, piece) in pieces.into_iter().enumerate() {
        if i > 0 {
            escaped(out, separator);
        }
        escaped(out, piece);
    }
    out.push(b'"');
}

/// The inside of a JSON string: `s` with its quotes, backslashes and control
/// characters escaped.
pub fn escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    loop {
        let i = start + plain_prefix(&bytes[start..]);
        if i == bytes.len() {
            break;
        }
        out.extend_from_slice(&bytes[start..i]);
        let b = bytes[i];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// An object written member by member straight into the output, closed when it is
/// dropped. The converters write requests, answers and stream events from the
/// canonical model through it rather than building a `Value` tree first: for a
/// request that tree held a copy of every string of the conversation and a map node
/// per block, which cost as much as the writing itself.
/// Members go out in the order written; each key is the caller's to write once.
pub struct Object<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Object<'o> {
    pub fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// The output, placed for the value of member `key`, which the caller writes next.
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        string(self.out, key);
        self.out.push(b':');
        self.out
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        string(self.key(key), value);
        self
    }

    pub fn value(&mut self, key: &str, value: &Value) -> &mut Self {
        write(self.key(key), value);
        self
    }

    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key).extend_from_slice(b"null");
        self
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.value(key, &Value::Bool(value))
    }

    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        self.value(key, &Value::from(value))
    }

    /// A float as `serde_json` writes it (shortest round trip; not finite is `null`).
    pub fn f64(&mut self, key: &str, value: f64) -> &mut Self {
        self.value(key, &Value::from(value))
    }

    pub fn object(&mut self, key: &str) -> Object<'_> {
        Object::open(self.key(key))
    }

    pub fn array(&mut self, key: &str) -> Array<'_> {
        Array::open(self.key(key))
    }
}

impl Drop for Object<'_> {
    fn drop(&mut self) {
        self.out.push(b'}');
    }
}

/// An array written item by item straight into the output, closed when it is dropped.
pub struct Array<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Array<'o> {
    pub fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'[');
        Self { out, empty: true }
    }

    /// The output, placed for the next item, which the caller writes next.
    pub fn item(&mut self) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out
    }

    pub fn str(&mut self, value: &str) -> &mut Self {
        string(self.item(), value);
        self
    }

    pub fn object(&mut self) -> Object<'_> {
        Object::open(self.item())
    }
}

impl Drop for Array<'_> {
    fn drop(&mut self) {
        self.out.push(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_are_found_wherever_they_fall_in_a_word() {
        for b in (0u8..0x80).chain([0xc3, 0xa9]) {
            for at in 0..20 {
                let mut bytes = vec![b'a'; 19];
                bytes.insert(at, b);
                let Ok(text) = String::from_utf8(bytes) else {
                    continue;
                };
                let mut ours = Vec::new();
                string(&mut ours, &text);
                let theirs = serde_json::to_vec(&text).expect("serde");
                assert_eq!(ours, theirs, "{b:#x} at {at}");
            }
        }
        let text = "é".repeat(40) + "\"";
        let mut ours = Vec::new();
        string(&mut ours, &text);
        assert_eq!(ours, serde_json::to_vec(&text).expect("serde"));
    }

    #[test]
    fn objects_and_arrays_close_where_they_go_out_of_scope() {
        let mut out = Vec::new();
        {
            let mut o = Object::open(&mut out);
            o.str("model", "m \"1\"")
                .u64("max", 7)
                .f64("t", 0.5)
                .bool("s", true);
            o.f64("nan", f64::NAN);
            o.object("empty");
            {
                let mut list = o.array("list");
                list.str("a");
                list.object()
                    .str("type", "text")
                    .value("v", &json!({"k": [1, null]}));
                Array::open(list.item());
            }
            joined(o.key("text"), ["one", "two \"2\"", ""], "\n\n");
            o.object("choice").str("type", "auto");
        }
        let expected = json!({"model": "m \"1\"", "max": 7, "t": 0.5, "s": true, "nan": null,
            "empty": {}, "list": ["a", {"type": "text", "v": {"k": [1, null]}}, []],
            "text": "one\n\ntwo \"2\"\n\n", "choice": {"type": "auto"}});
        let parsed: Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(parsed, expected);
        let mut none = Vec::new();
        joined(&mut none, [], ",");
        assert_eq!(none, b"\"\"");
    }

    #[test]
    fn values_are_written_as_serde_writes_them() {
        let awkward = "quote \" backslash \\ slash / controls \u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f} \
                       unicode é 漢字 🦀 \u{2028}\u{2029} </script>";
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-1),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(0.1 + 0.2),
            json!(1e300),
            json!(-0.0),
            json!(f64::MIN_POSITIVE),
            json!(""),
            json!(awkward),
            json!([]),
            json!({}),
            json!([[], {}, [[[]]], {"": {}}]),
            json!({awkward: [awkward, 1, 2.5, null, {"k": false}], "b": "x", "a": {"z": [true]}}),
        ];
        for v in &values {
            assert_eq!(to_vec(v), serde_json::to_vec(v).expect("serde"), "{v}");
        }
    }
}
