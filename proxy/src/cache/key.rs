//! What of a request the canonical model does not carry, for the cache key.
//!
//! The cache keys a request by its canonical form, so one question asked in two
//! dialects finds one answer. But the canonical model holds only what sluice
//! translates; a provider reads the rest too. Two requests alike but for `seed`,
//! `reasoning_effort`, Anthropic's `thinking` or the Responses API's `conversation`
//! would share one key, and the second would be served the first one's answer (across
//! consumers, with a global cache). So every top-level member outside the dialect's
//! canonical set joins the key. A member that asks for an answer the canonical one
//! cannot hold (several choices, log-probabilities, audio, stored server-side state)
//! keeps the request out of the cache: a hit would answer something else than asked.
//!
//! Fields the canonical parse skips inside the members it reads (a message's `name`,
//! an image's `detail`) are not seen here.

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_translate::Dialect;

/// The members each dialect's canonical parse reads, or that never change the answer
/// (`stream`, `stream_options`, the end user, Anthropic's `metadata`).
fn carried(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::OpenAiChat => &[
            "model",
            "messages",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "response_format",
            "stop",
            "temperature",
            "top_p",
            "max_tokens",
            "max_completion_tokens",
            "stream",
            "stream_options",
            "user",
        ],
        Dialect::Anthropic => &[
            "model",
            "messages",
            "system",
            "max_tokens",
            "tools",
            "tool_choice",
            "stop_sequences",
            "temperature",
            "top_p",
            "stream",
            "metadata",
        ],
        Dialect::Responses => &[
            "model",
            "input",
            "instructions",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "max_output_tokens",
            "temperature",
            "top_p",
            "text",
            "stream",
            "user",
        ],
    }
}

/// Why a member keeps its request out of the cache, if it does.
fn uncacheable(key: &str, value: &Value) -> Option<&'static str> {
    match key {
        "n" => (value.as_u64() != Some(1)).then_some("several choices"),
        "logprobs" | "top_logprobs" => {
            (value != &Value::Bool(false)).then_some("log-probabilities")
        }
        "audio" | "modalities" => Some("audio output"),
        // Responses: extra output items, and state kept by the provider.
        "include" => Some("extra output items"),
        "conversation" | "background" => Some("state the provider keeps"),
        _ => None,
    }
}

/// The top-level members of `body` the canonical model does not carry, sorted by name
/// (`null` ones left out, as the parse leaves them); `Err` with the reason when one of
/// them keeps the request out of the cache.
pub fn uncarried(dialect: Dialect, body: &Value) -> Result<BTreeMap<&str, &Value>, &'static str> {
    let carried = carried(dialect);
    let mut out = BTreeMap::new();
    for (key, value) in body.as_object().into_iter().flatten() {
        if value.is_null() || carried.contains(&key.as_str()) {
            continue;
        }
        if let Some(why) = uncacheable(key, value) {
            return Err(why);
        }
        out.insert(key.as_str(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_the_translation_drops_are_kept_sorted() {
        let body = json!({"model": "m", "seed": 7, "messages": [], "reasoning_effort": "high",
            "stream": true, "user": "u", "frequency_penalty": null, "n": 1, "logprobs": false});
        let got = uncarried(Dialect::OpenAiChat, &body).unwrap();
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            ["logprobs", "n", "reasoning_effort", "seed"]
        );
        let body = json!({"model": "m", "max_tokens": 9, "messages": [], "metadata": {"user_id": "u"},
            "thinking": {"type": "enabled", "budget_tokens": 1024}});
        let got = uncarried(Dialect::Anthropic, &body).unwrap();
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), ["thinking"]);
        let plain = json!({"model": "m", "input": "hi", "instructions": "be brief", "text": {}});
        assert!(uncarried(Dialect::Responses, &plain).unwrap().is_empty());
    }

    #[test]
    fn answers_the_canonical_one_cannot_hold_are_not_cached() {
        for (dialect, body) in [
            (Dialect::OpenAiChat, json!({"messages": [], "n": 3})),
            (
                Dialect::OpenAiChat,
                json!({"messages": [], "logprobs": true}),
            ),
            (
                Dialect::OpenAiChat,
                json!({"messages": [], "top_logprobs": 2}),
            ),
            (
                Dialect::OpenAiChat,
                json!({"messages": [], "modalities": ["text", "audio"]}),
            ),
            (
                Dialect::Responses,
                json!({"input": "hi", "conversation": "conv_1"}),
            ),
            (
                Dialect::Responses,
                json!({"input": "hi", "include": ["reasoning.encrypted_content"]}),
            ),
        ] {
            assert!(uncarried(dialect, &body).is_err(), "{body}");
        }
    }
}
