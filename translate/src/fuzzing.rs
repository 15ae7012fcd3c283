//! The bodies of the fuzz targets (`translate/fuzz`), here so that the same code also
//! runs on stable Rust in the test suite over generated inputs (`tests/robustness.rs`).
//! Each function must not panic on any input; the assertions inside are invariants.

use bytes::BytesMut;

use crate::canonical::Event;
use crate::sse::SseParser;
use crate::{Decoder, Dialect, Encoder, EncoderOptions, RenderOptions, json_edit};

const DIALECTS: [Dialect; 3] = [Dialect::OpenAiChat, Dialect::Anthropic, Dialect::Responses];

fn pick(data: &[u8]) -> (Dialect, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (DIALECTS[usize::from(*first) % 3], rest),
        None => (Dialect::OpenAiChat, data),
    }
}

/// Parse `data` as a stream in three piece sizes, decode in every dialect, encode the
/// events in every dialect.
pub fn stream(data: &[u8]) {
    for piece in [1, 7, data.len().max(1)] {
        let mut parser = SseParser::new(64 * 1024);
        let mut events = Vec::new();
        for chunk in data.chunks(piece) {
            if parser.push(chunk, &mut events).is_err() {
                return;
            }
        }
        if parser.finish(&mut events).is_err() {
            return;
        }
        for from in DIALECTS {
            let mut decoder = Decoder::new(from);
            let mut canonical: Vec<Event> = Vec::new();
            for e in &events {
                if decoder.decode(e, &mut canonical).is_err() {
                    break;
                }
            }
            for to in DIALECTS {
                let mut encoder = Encoder::new(
                    to,
                    EncoderOptions {
                        include_usage: true,
                    },
                );
                let mut out = BytesMut::new();
                for e in &canonical {
                    encoder.encode(e, &mut out);
                }
                encoder.finish(&mut out);
                encoder.finish(&mut out);
            }
        }
    }
}

/// Parse a request in the dialect the first byte picks; render what parses. A body
/// that is JSON is written back by `json_write` as `serde_json` writes it.
pub fn request(data: &[u8]) {
    let (dialect, body) = pick(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        assert_eq!(
            crate::json_write::to_vec(&value),
            serde_json::to_vec(&value).unwrap_or_default()
        );
    }
    let demands = crate::answer_demands(dialect, body);
    if let Ok(req) = crate::parse_request(dialect, body) {
        // What the parse notes of the answer's shape, the reader on its own notes too.
        if let Ok(alone) = demands {
            assert_eq!(alone, req.demands);
        }
        // The tool allowlist's reader sees every tool the translator would send on
        // (where it reads the body at all: where it cannot, the request is refused).
        if let Ok(names) = crate::tool_names(dialect, body) {
            for t in &req.tools {
                assert!(names.contains(&t.name), "{:?} missed {:?}", names, t.name);
            }
        }
        for to in DIALECTS {
            let opts = RenderOptions {
                default_max_tokens: Some(1024),
                max_completion_tokens: to == Dialect::OpenAiChat,
            };
            if let Ok(out) = crate::render_request(to, &req, &opts) {
                assert!(unique_keys(&out), "{}", String::from_utf8_lossy(&out));
                if let Err(e) = crate::parse_request(to, &out) {
                    panic!("{to:?} does not read back what was written for it: {e}");
                }
            }
        }
    }
}

/// Whether `json` is JSON in which no object names a member twice: the renderers write
/// members one by one, and serde's `Value` would silently keep the last of two.
fn unique_keys(json: &[u8]) -> bool {
    use serde::de::{Error, MapAccess, SeqAccess, Visitor};

    struct Unique;
    impl<'de> serde::Deserialize<'de> for Unique {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Unique)
        }
    }
    impl<'de> Visitor<'de> for Unique {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key) {
                    return Err(A::Error::custom("a member named twice"));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
    }
    serde_json::from_slice::<Unique>(json).is_ok()
}

/// Parse a provider's answer in the dialect the first byte picks; render what parses.
pub fn response(data: &[u8]) {
    let (dialect, body) = pick(data);
    usage_read_near_the_end(body);
    if let Ok(resp) = crate::parse_response(dialect, body) {
        for to in DIALECTS {
            let out = crate::render_response(to, &resp);
            assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
        }
        let _ = resp.into_events();
    }
    let _ = crate::errors::parse_upstream(500, body);
}

/// The plain usage reader agrees with serde on whatever it reads, length included.
pub fn usage_scan(data: &[u8]) {
    for d in DIALECTS {
        assert_eq!(
            crate::usage::at_with(d, data, true),
            crate::usage::at_with(d, data, false),
            "{d:?}"
        );
    }
}

/// The usage read where it ends a body (one pass, from the end) is the one read from
/// the start, in every dialect, for any valid object with unique keys.
fn usage_read_near_the_end(body: &[u8]) {
    let Ok(fields) = json_edit::fields(body) else {
        return;
    };
    let mut keys: Vec<&str> = fields.iter().map(|f| &*f.key).collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1])
        || serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).is_err()
    {
        return;
    }
    for d in DIALECTS {
        let from_start = json_edit::get(body, "usage")
            .ok()
            .flatten()
            .and_then(|raw| crate::usage::at(d, raw).filter(|(_, len)| *len == raw.len()))
            .map(|(u, _)| u);
        assert_eq!(crate::usage::of_body(d, body), from_start);
    }
}

/// Scan, look up and edit: both lookups agree on a valid object, an edited object is
/// still JSON, and a body the peek lays out splices as it edits member by member.
pub fn json_edit(data: &[u8]) {
    let Ok(fields) = json_edit::fields(data) else {
        return;
    };
    let mut keys: Vec<&str> = fields.iter().map(|f| &*f.key).collect();
    keys.sort_unstable();
    let unique = keys.windows(2).all(|w| w[0] != w[1]);
    let valid = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(data).is_ok();
    if unique && valid {
        for key in ["model", "usage", "messages"] {
            let near_end = json_edit::NearEnd::new(key);
            assert_eq!(near_end.get(data), json_edit::get(data, key));
        }
    }
    if unique
        && valid
        && let Ok(out) = json_edit::set(data, "model", b"\"m\"")
    {
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v.get("model").and_then(|m| m.as_str()), Some("m"));
    }
    // A body the peek lays out takes its edits in one splice, with the bytes that
    // setting each member in turn gives.
    if let Some(layout) = crate::peek::Peek::parse(data).ok().and_then(|p| p.layout) {
        let changes: [(&'static str, &[u8]); 3] = [
            ("model", b"\"m\""),
            ("stream_options", br#"{"include_usage":true}"#),
            ("max_tokens", b"1"),
        ];
        let mut rescanned = data.to_vec();
        for (key, value) in changes {
            let Ok(out) = json_edit::set(&rescanned, key, value) else {
                panic!("the peek read an object that the editor refused");
            };
            rescanned = out;
        }
        assert_eq!(layout.apply(data, &changes), Some(rescanned));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_member_named_twice_is_found_at_any_depth() {
        assert!(super::unique_keys(
            br#"{"a":1,"b":{"a":[{"a":null}]},"c":"a"}"#
        ));
        for twice in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"b":{"x":true,"y":1,"x":false}}"#,
            br#"[{"k":[{"a":1,"a":1}]}]"#,
        ] {
            assert!(
                !super::unique_keys(twice),
                "{}",
                String::from_utf8_lossy(twice)
            );
        }
        assert!(!super::unique_keys(b"{"));
    }
}
