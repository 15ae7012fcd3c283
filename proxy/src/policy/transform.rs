//! Request-body rewrites, done in the client's own dialect before the request is
//! planned: tools added, a system prompt put in, text masked. Each parses the body
//! once and writes it back; a request no rewriting policy touches keeps its bytes.

use bytes::Bytes;
use serde_json::{Value, json};
use sluice_shared::snapshot::mask::Masker;
use sluice_shared::snapshot::policies::{InjectedTool, PromptPosition};
use sluice_translate::Dialect;

use crate::error::ProxyError;

/// Keys whose string values are conversation text in one of the three dialects:
/// message content and its text parts, system prompts, Responses' `input` and
/// `instructions`, tool results' `output`, and tool-call `arguments`.
const TEXT_KEYS: &[&str] = &[
    "content",
    "text",
    "system",
    "instructions",
    "input",
    "output",
    "arguments",
];

fn parse(body: &[u8]) -> Result<Value, ProxyError> {
    serde_json::from_slice(body).map_err(|e| ProxyError::MalformedJson(e.to_string()))
}

fn write(v: &Value) -> Bytes {
    Bytes::from(v.to_string())
}

fn object(v: &mut Value) -> Result<&mut serde_json::Map<String, Value>, ProxyError> {
    v.as_object_mut()
        .ok_or_else(|| ProxyError::MalformedJson("the body is not a JSON object".into()))
}

/// The name of a tool in a dialect's `tools` list.
fn tool_name(dialect: Dialect, tool: &Value) -> Option<&str> {
    match dialect {
        Dialect::OpenAiChat => tool.pointer("/function/name"),
        Dialect::Anthropic | Dialect::Responses => tool.get("name"),
    }
    .and_then(Value::as_str)
}

/// A gateway tool in a dialect's shape.
fn tool_value(dialect: Dialect, t: &InjectedTool) -> Value {
    let mut v = match dialect {
        Dialect::OpenAiChat => json!({"type": "function", "function": {
            "name": t.name, "parameters": t.parameters}}),
        Dialect::Anthropic => json!({"name": t.name, "input_schema": t.parameters}),
        Dialect::Responses => {
            json!({"type": "function", "name": t.name, "parameters": t.parameters})
        }
    };
    if let Some(d) = &t.description {
        let at = if dialect == Dialect::OpenAiChat {
            &mut v["function"]
        } else {
            &mut v
        };
        at["description"] = json!(d);
    }
    v
}

/// Add the gateway's tools; a client tool of the same name is replaced, since the
/// gateway's definition is the one its backend implements.
pub fn inject_tools(
    dialect: Dialect,
    body: &[u8],
    tools: &[InjectedTool],
) -> Result<Bytes, ProxyError> {
    let mut v = parse(body)?;
    let obj = object(&mut v)?;
    let list = obj.entry("tools").or_insert_with(|| json!([]));
    let Some(list) = list.as_array_mut() else {
        return Err(ProxyError::InvalidRequest("tools must be an array".into()));
    };
    list.retain(|t| !tool_name(dialect, t).is_some_and(|n| tools.iter().any(|g| g.name == n)));
    list.extend(tools.iter().map(|t| tool_value(dialect, t)));
    Ok(write(&v))
}

/// Join `extra` to an existing system text at `position`.
fn joined(existing: &str, extra: &str, position: PromptPosition) -> String {
    match position {
        PromptPosition::Replace => extra.to_string(),
        _ if existing.is_empty() => extra.to_string(),
        PromptPosition::Prepend => format!("{extra}\n\n{existing}"),
        PromptPosition::Append => format!("{existing}\n\n{extra}"),
    }
}

/// Put a system prompt into the request, where its dialect keeps one.
pub fn inject_prompt(
    dialect: Dialect,
    body: &[u8],
    text: &str,
    position: PromptPosition,
) -> Result<Bytes, ProxyError> {
    let mut v = parse(body)?;
    let obj = object(&mut v)?;
    match dialect {
        Dialect::OpenAiChat => {
            let Some(messages) = obj.get_mut("messages").and_then(Value::as_array_mut) else {
                return Err(ProxyError::InvalidRequest(
                    "messages must be an array".into(),
                ));
            };
            let is_system = |m: &Value| {
                matches!(
                    m.get("role").and_then(Value::as_str),
                    Some("system" | "developer")
                )
            };
            let leading = messages.iter().take_while(|m| is_system(m)).count();
            let message = json!({"role": "system", "content": text});
            match position {
                PromptPosition::Prepend => messages.insert(0, message),
                PromptPosition::Append => messages.insert(leading, message),
                PromptPosition::Replace => {
                    messages.retain(|m| !is_system(m));
                    messages.insert(0, message);
                }
            }
        }
        Dialect::Anthropic | Dialect::Responses => {
            let key = if dialect == Dialect::Anthropic {
                "system"
            } else {
                "instructions"
            };
            match obj.get_mut(key) {
                // Anthropic's list of text blocks keeps its blocks (and their
                // cache_control marks).
                Some(Value::Array(blocks)) if position != PromptPosition::Replace => {
                    let block = json!({"type": "text", "text": text});
                    if position == PromptPosition::Prepend {
                        blocks.insert(0, block);
                    } else {
                        blocks.push(block);
                    }
                }
                Some(Value::String(existing)) => *existing = joined(existing, text, position),
                _ => {
                    obj.insert(key.to_string(), json!(text));
                }
            }
        }
    }
    Ok(write(&v))
}

fn mask_value(v: &mut Value, text: bool, masker: &Masker, changed: &mut bool) {
    match v {
        Value::String(s) if text => {
            if let Some(masked) = masker.mask(s) {
                *s = masked;
                *changed = true;
            }
        }
        Value::Array(items) => {
            for item in items {
                mask_value(item, text, masker, changed);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                mask_value(item, TEXT_KEYS.contains(&k.as_str()), masker, changed);
            }
        }
        _ => {}
    }
}

/// The body with its conversation text masked; `None` when nothing matched.
pub fn mask_request(body: &[u8], masker: &Masker) -> Result<Option<Bytes>, ProxyError> {
    let mut v = parse(body)?;
    let mut changed = false;
    mask_value(&mut v, false, masker, &mut changed);
    Ok(changed.then(|| write(&v)))
}

fn collect_text(v: &Value, text: bool, out: &mut String) {
    match v {
        Value::String(s) if text => {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(s);
        }
        Value::Array(items) => items.iter().for_each(|i| collect_text(i, text, out)),
        Value::Object(map) => {
            for (k, item) in map {
                collect_text(item, TEXT_KEYS.contains(&k.as_str()), out);
            }
        }
        _ => {}
    }
}

/// All of a request's conversation text, one piece a line.
pub fn request_text(body: &[u8]) -> String {
    let mut out = String::new();
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        collect_text(&v, false, &mut out);
    }
    out
}

/// Fill `{{name}}` placeholders; an unknown name becomes empty.
pub fn render(template: &str, var: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                out.push_str(&var(after[..close].trim()).unwrap_or_default());
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool() -> InjectedTool {
        InjectedTool {
            name: "lookup".into(),
            description: Some("Look it up".into()),
            parameters: json!({"type": "object", "properties": {"q": {"type": "string"}}}),
        }
    }

    #[test]
    fn tools_are_added_in_each_dialect_and_replace_namesakes() {
        let body = br#"{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"lookup","parameters":{}}},{"type":"function","function":{"name":"keep","parameters":{}}}]}"#;
        let v: Value =
            serde_json::from_slice(&inject_tools(Dialect::OpenAiChat, body, &[tool()]).unwrap())
                .unwrap();
        let names: Vec<&str> = v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["keep", "lookup"]);
        assert_eq!(v["tools"][1]["function"]["description"], "Look it up");

        let body = br#"{"model":"m","max_tokens":5,"messages":[]}"#;
        let v: Value =
            serde_json::from_slice(&inject_tools(Dialect::Anthropic, body, &[tool()]).unwrap())
                .unwrap();
        assert_eq!(
            v["tools"][0]["input_schema"]["properties"]["q"]["type"],
            "string"
        );
        let v: Value =
            serde_json::from_slice(&inject_tools(Dialect::Responses, body, &[tool()]).unwrap())
                .unwrap();
        assert_eq!(v["tools"][0]["type"], "function");
        assert_eq!(v["tools"][0]["name"], "lookup");
    }

    #[test]
    fn prompts_go_where_each_dialect_keeps_them() {
        let body = br#"{"messages":[{"role":"system","content":"client"},{"role":"user","content":"hi"}]}"#;
        let out = |p| -> Value {
            serde_json::from_slice(&inject_prompt(Dialect::OpenAiChat, body, "gw", p).unwrap())
                .unwrap()
        };
        let roles = |v: &Value| -> Vec<String> {
            v["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["content"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(roles(&out(PromptPosition::Prepend)), ["gw", "client", "hi"]);
        assert_eq!(roles(&out(PromptPosition::Append)), ["client", "gw", "hi"]);
        assert_eq!(roles(&out(PromptPosition::Replace)), ["gw", "hi"]);

        let body = br#"{"system":"client","messages":[]}"#;
        let v: Value = serde_json::from_slice(
            &inject_prompt(Dialect::Anthropic, body, "gw", PromptPosition::Append).unwrap(),
        )
        .unwrap();
        assert_eq!(v["system"], "client\n\ngw");
        let body = br#"{"system":[{"type":"text","text":"client"}],"messages":[]}"#;
        let v: Value = serde_json::from_slice(
            &inject_prompt(Dialect::Anthropic, body, "gw", PromptPosition::Prepend).unwrap(),
        )
        .unwrap();
        assert_eq!(v["system"][0]["text"], "gw");
        let v: Value = serde_json::from_slice(
            &inject_prompt(
                Dialect::Responses,
                b"{\"input\":\"hi\"}",
                "gw",
                PromptPosition::Prepend,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(v["instructions"], "gw");
    }

    #[test]
    fn masking_touches_text_only() {
        let masker = Masker::compile(&[], &["email".to_string()], 256).unwrap();
        let body = br#"{"model":"a@b.co","messages":[{"role":"user","content":[{"type":"text","text":"mail a@b.co"},{"type":"image_url","image_url":{"url":"https://x/a@b.co"}}]}]}"#;
        let v: Value =
            serde_json::from_slice(&mask_request(body, &masker).unwrap().unwrap()).unwrap();
        assert_eq!(v["model"], "a@b.co");
        assert_eq!(v["messages"][0]["content"][0]["text"], "mail [EMAIL]");
        assert_eq!(
            v["messages"][0]["content"][1]["image_url"]["url"],
            "https://x/a@b.co"
        );
        assert!(
            mask_request(br#"{"messages":[{"content":"clean"}]}"#, &masker)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn templates() {
        let var = |n: &str| (n == "header.x-user").then(|| "ana".to_string());
        assert_eq!(
            render("Hi {{ header.x-user }}, {{claim.sub}}!", var),
            "Hi ana, !"
        );
        assert_eq!(render("open {{ never closed", var), "open {{ never closed");
    }
}
