//! Answers the proxy gives from its own config: the models a consumer may use, and a
//! token estimate for providers that cannot count one.

use bytes::Bytes;
use serde_json::{Value, json};
use sluice_shared::catalog;
use sluice_shared::snapshot::CompiledConsumer;
use sluice_translate::canonical::{Part, Request};

/// `GET /{consumer}/v1/models`, in OpenAI's list format: each registry's allow-list, or
/// for a registry without one, the models catalog's models of its provider.
pub fn models(consumer: &CompiledConsumer) -> Bytes {
    let catalog = catalog::models();
    let mut data: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for upstream in &consumer.upstreams {
        let Ok(target) = &upstream.target else {
            continue;
        };
        if !target.enabled {
            continue;
        }
        let provider = target.provider.as_str();
        let names: Vec<&str> = if upstream.allowed.is_empty() {
            catalog
                .iter()
                .filter(|m| m.provider == provider)
                .map(|m| m.model.as_str())
                .collect()
        } else {
            upstream.allowed.iter().map(String::as_str).collect()
        };
        for name in names {
            if seen.insert(name.to_string()) {
                data.push(
                    json!({"id": name, "object": "model", "created": 0, "owned_by": provider}),
                );
            }
        }
    }
    Bytes::from(json!({"object": "list", "data": data}).to_string())
}

/// Roughly four characters per token, plus a few tokens of framing per message and
/// tool: the estimate OpenAI's own guidance gives for English text.
pub fn estimate_tokens(req: &Request) -> u64 {
    fn chars(parts: &[Part]) -> usize {
        parts
            .iter()
            .map(|p| match p {
                Part::Text(t) | Part::Reasoning(t) => t.len(),
                Part::ToolCall(c) => c.name.len() + c.arguments.len(),
                Part::ToolResult { content, .. } => chars(content),
                Part::Image(_) => 85 * 4,
            })
            .sum()
    }
    let text: usize = req.system.iter().map(String::len).sum::<usize>()
        + req
            .messages
            .iter()
            .map(|m| chars(&m.content))
            .sum::<usize>()
        + req
            .tools
            .iter()
            .map(|t| {
                t.name.len()
                    + t.parameters.to_string().len()
                    + t.description.as_ref().map_or(0, String::len)
            })
            .sum::<usize>();
    let framing = 4 * (req.messages.len() + req.tools.len()) + 3;
    (text.div_ceil(4) + framing) as u64
}
