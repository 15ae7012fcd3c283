//! What of a request the canonical model does not carry, for the cache key.
//!
//! The cache keys a request by its canonical form, so one question asked in two
//! dialects finds one answer. But the canonical model holds only what sluice
//! translates; a provider reads the rest too. Two requests alike but for `seed`,
//! `reasoning_effort`, Anthropic's `thinking` or the Responses API's `conversation`
//! would share one key, and the second would be served the first one's answer (across
//! consumers, with a global cache). So every top-level member outside the dialect's
//! canonical set joins the key. (A request asking for more than a canonical answer
//! holds, several choices say, is not cached at all: `Request::demands`.)
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

/// The top-level members of `body` the canonical model does not carry, sorted by name
/// (`null` ones left out, as the parse leaves them).
pub fn uncarried(dialect: Dialect, body: &Value) -> BTreeMap<&str, &Value> {
    let carried = carried(dialect);
    body.as_object()
        .into_iter()
        .flatten()
        .filter(|(key, value)| !value.is_null() && !carried.contains(&key.as_str()))
        .map(|(key, value)| (key.as_str(), value))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_the_translation_drops_are_kept_sorted() {
        let body = json!({"model": "m", "seed": 7, "messages": [], "reasoning_effort": "high",
            "stream": true, "user": "u", "frequency_penalty": null, "n": 1});
        let got = uncarried(Dialect::OpenAiChat, &body);
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            ["n", "reasoning_effort", "seed"]
        );
        let body = json!({"model": "m", "max_tokens": 9, "messages": [], "metadata": {"user_id": "u"},
            "thinking": {"type": "enabled", "budget_tokens": 1024}});
        let got = uncarried(Dialect::Anthropic, &body);
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), ["thinking"]);
        let plain = json!({"model": "m", "input": "hi", "instructions": "be brief", "text": {}});
        assert!(uncarried(Dialect::Responses, &plain).is_empty());
    }
}
