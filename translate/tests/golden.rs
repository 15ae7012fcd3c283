//! Golden tests: every fixture in every dialect, translated to every dialect, compared
//! with a reviewed snapshot (`cargo insta review` after an intended change). Streams are
//! also decoded back from each client dialect and checked for meaning: the same text,
//! complete tool-call arguments, finish reason and usage, whatever the path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use serde_json::Value;
use sluice_translate::canonical::{Event, FinishReason, Usage};
use sluice_translate::sse::SseParser;
use sluice_translate::{
    Decoder, Dialect, Encoder, EncoderOptions, RenderOptions, parse_request, parse_response,
    render_request, render_response,
};

const DIALECTS: [(Dialect, &str); 3] = [
    (Dialect::OpenAiChat, "openai_chat"),
    (Dialect::Anthropic, "anthropic"),
    (Dialect::Responses, "responses"),
];

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Timestamps the converters fill with the clock when a provider gave none.
fn scrub_times(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\"created") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(colon) = rest.find(':') else { break };
        let (key, after) = rest.split_at(colon + 1);
        out.push_str(key);
        let trimmed = after.trim_start();
        out.push_str(&after[..after.len() - trimmed.len()]);
        let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let value = &trimmed[..digits];
            out.push_str(if value == "1761000000" {
                value
            } else {
                "[now]"
            });
        }
        rest = &trimmed[digits..];
    }
    out.push_str(rest);
    out
}

fn pretty(bytes: &[u8]) -> String {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    scrub_times(&serde_json::to_string_pretty(&v).unwrap())
}

#[test]
fn requests_translate_to_every_dialect() {
    let opts = RenderOptions {
        default_max_tokens: Some(8192),
        max_completion_tokens: false,
    };
    for (from, from_name) in DIALECTS {
        let req = parse_request(from, &fixture(&format!("request_{from_name}.json"))).unwrap();
        for (to, to_name) in DIALECTS {
            let out = render_request(to, &req, &opts).unwrap();
            insta::assert_snapshot!(format!("request__{from_name}__to__{to_name}"), pretty(&out));
        }
    }
}

#[test]
fn responses_translate_to_every_dialect() {
    for (from, from_name) in DIALECTS {
        let resp = parse_response(from, &fixture(&format!("response_{from_name}.json"))).unwrap();
        for (to, to_name) in DIALECTS {
            let out = render_response(to, &resp);
            insta::assert_snapshot!(
                format!("response__{from_name}__to__{to_name}"),
                pretty(&out)
            );
            // What the client dialect says, read back, means the same.
            let back = parse_response(to, &out).unwrap();
            assert_eq!(
                back.content
                    .iter()
                    .filter(|p| !matches!(p, sluice_translate::canonical::Part::Reasoning(_)))
                    .count(),
                resp.content
                    .iter()
                    .filter(|p| !matches!(p, sluice_translate::canonical::Part::Reasoning(_)))
                    .count(),
                "{from_name} -> {to_name}"
            );
            assert_eq!(
                back.usage,
                carried(resp.usage, to),
                "{from_name} -> {to_name}"
            );
            assert_eq!(back.finish, resp.finish, "{from_name} -> {to_name}");
        }
    }
}

/// Usage as a dialect can carry it: Anthropic reports no reasoning-token count, the
/// OpenAI dialects no cache-write count (those tokens stay in the input total).
fn carried(usage: Option<Usage>, to: Dialect) -> Option<Usage> {
    usage.map(|mut u| {
        if to == Dialect::Anthropic {
            u.reasoning_tokens = 0;
        } else {
            u.cache_creation_tokens = 0;
        }
        u
    })
}

/// Decode an SSE body in `dialect`, feeding it in small pieces as a network would.
fn decode(dialect: Dialect, body: &[u8], piece: usize) -> Vec<Event> {
    let mut parser = SseParser::default();
    let mut decoder = Decoder::new(dialect);
    let mut sse = Vec::new();
    let mut events = Vec::new();
    for chunk in body.chunks(piece) {
        parser.push(chunk, &mut sse).unwrap();
    }
    parser.finish(&mut sse).unwrap();
    for e in &sse {
        decoder.decode(e, &mut events).unwrap();
    }
    events
}

fn encode(dialect: Dialect, events: &[Event], include_usage: bool) -> Vec<u8> {
    let mut enc = Encoder::new(dialect, EncoderOptions { include_usage });
    let mut out = BytesMut::new();
    for e in events {
        enc.encode(e, &mut out);
    }
    enc.finish(&mut out);
    out.to_vec()
}

/// What a stream means to a client: its text, each tool call's id, name and complete
/// arguments, the finish reason, the usage, and whether it ended in an error.
#[derive(Debug, PartialEq)]
struct Meaning {
    text: String,
    calls: Vec<(String, String, Value)>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    error: bool,
}

fn meaning(events: &[Event]) -> Meaning {
    let mut m = Meaning {
        text: String::new(),
        calls: Vec::new(),
        finish: None,
        usage: None,
        error: false,
    };
    let mut args: Vec<String> = Vec::new();
    for e in events {
        match e {
            Event::Text(t) => m.text.push_str(t),
            Event::ToolCallStart { index, id, name } => {
                assert_eq!(*index, m.calls.len());
                m.calls.push((id.clone(), name.clone(), Value::Null));
                args.push(String::new());
            }
            Event::ToolCallArguments { index, fragment } => args[*index].push_str(fragment),
            Event::Finish(f) => m.finish = Some(f.clone()),
            Event::Usage(u) => m.usage = Some(*u),
            Event::Error(_) => m.error = true,
            _ => {}
        }
    }
    for (call, a) in m.calls.iter_mut().zip(args) {
        call.2 = if a.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str(&a).unwrap()
        };
    }
    m
}

#[test]
fn streams_translate_to_every_dialect() {
    for (from, from_name) in DIALECTS {
        let body = fixture(&format!("stream_{from_name}.sse"));
        let events = decode(from, &body, 7);
        assert_eq!(events, decode(from, &body, body.len()), "split-independent");
        let source = meaning(&events);
        assert!(source.finish.is_some() && source.usage.is_some() && !source.error);
        for (to, to_name) in DIALECTS {
            let out = encode(to, &events, true);
            insta::assert_snapshot!(
                format!("stream__{from_name}__to__{to_name}"),
                scrub_times(std::str::from_utf8(&out).unwrap())
            );
            let back = meaning(&decode(to, &out, 5));
            assert_eq!(back.text, source.text, "{from_name} -> {to_name}");
            assert_eq!(back.calls, source.calls, "{from_name} -> {to_name}");
            assert_eq!(back.finish, source.finish, "{from_name} -> {to_name}");
            assert_eq!(
                back.usage,
                carried(source.usage, to),
                "{from_name} -> {to_name}"
            );
        }
    }
}

#[test]
fn failed_and_cut_streams_end_with_an_error_event_in_every_dialect() {
    for (fixture_name, from) in [
        ("stream_openai_chat_error.sse", Dialect::OpenAiChat),
        ("stream_openai_chat_truncated.sse", Dialect::OpenAiChat),
        ("stream_anthropic_error.sse", Dialect::Anthropic),
    ] {
        let events = decode(from, &fixture(fixture_name), 11);
        for (to, to_name) in DIALECTS {
            let out = encode(to, &events, true);
            let text = scrub_times(std::str::from_utf8(&out).unwrap());
            insta::assert_snapshot!(
                format!(
                    "error__{}__to__{to_name}",
                    fixture_name.trim_end_matches(".sse")
                ),
                text
            );
            let mut parser = SseParser::default();
            let mut sse = Vec::new();
            parser.push(&out, &mut sse).unwrap();
            let last = sse.last().unwrap();
            let is_error = match to {
                Dialect::OpenAiChat => last.data.contains("\"error\""),
                Dialect::Anthropic => last.event.as_deref() == Some("error"),
                Dialect::Responses => last.event.as_deref() == Some("response.failed"),
            };
            assert!(is_error, "{fixture_name} -> {to_name}: {text}");
            assert!(!text.contains("[DONE]") && !text.contains("message_stop"));
        }
    }
}

#[test]
fn usage_chunk_only_when_the_client_asked() {
    let events = decode(Dialect::Anthropic, &fixture("stream_anthropic.sse"), 64);
    let with = String::from_utf8(encode(Dialect::OpenAiChat, &events, true)).unwrap();
    let without = String::from_utf8(encode(Dialect::OpenAiChat, &events, false)).unwrap();
    assert!(with.contains("\"prompt_tokens\":120"));
    assert!(!without.contains("prompt_tokens"));
    assert!(without.ends_with("data: [DONE]\n\n"));
}
