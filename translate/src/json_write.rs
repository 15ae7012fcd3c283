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
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
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
    out.push(b'"');
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
