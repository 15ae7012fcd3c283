//! The names of the tools a request hands the model, for the tool allowlist.
//!
//! The allowlist cannot lean on the canonical parse: that parse refuses what sluice
//! cannot translate (an `input_audio` part, a `custom` tool, Chat's old `functions`),
//! yet a pass-through route sends such a body to the provider as it came, tools and
//! all. So this reader looks at the tool lists alone, in every shape the three
//! dialects give them, and fails closed: a list it cannot read, or one given twice
//! (a provider takes the last, a first-wins reader would check the other), is an
//! invalid request, never an empty list.

use serde::Deserialize;

use crate::util::from_request;
use crate::{Dialect, TranslateError};

/// The members of a request that define tools. serde's derive refuses a member given
/// twice, at this level and in each tool.
#[derive(Deserialize)]
struct Defined {
    #[serde(default)]
    tools: Option<Vec<ToolIn>>,
    /// Chat Completions' deprecated function definitions, still served by OpenAI.
    #[serde(default)]
    functions: Option<Vec<Named>>,
    /// Anthropic's MCP connector: servers whose tools the provider calls itself.
    #[serde(default)]
    mcp_servers: Option<Vec<Named>>,
}

/// One entry of a `tools` list, in any dialect: Chat's `function` and `custom`
/// wrappers, a bare `name` (Anthropic, Responses, Anthropic's server tools), or only a
/// `type` (Responses' hosted tools, `web_search_preview` and the like).
#[derive(Deserialize)]
struct ToolIn {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    function: Option<Named>,
    #[serde(default)]
    custom: Option<Named>,
    /// Responses' hosted MCP tool names its server here.
    #[serde(default)]
    server_label: Option<String>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

/// Every name under which `body` offers the model a tool: each tool's own names
/// (function, custom and top-level `name` alike, all of them where an entry carries
/// several), its `type` when it has no name, and `mcp:<server>` for each MCP server the
/// provider is to call. An entry with neither a name nor a type, or a tools member
/// that is not a list of objects, is an invalid request.
pub fn tool_names(dialect: Dialect, body: &[u8]) -> Result<Vec<String>, TranslateError> {
    let d: Defined = from_request(body)?;
    let mut names = Vec::new();
    for t in d.tools.into_iter().flatten() {
        let before = names.len();
        if dialect == Dialect::Responses
            && t.kind.as_deref() == Some("mcp")
            && let Some(label) = &t.server_label
        {
            names.push(format!("mcp:{label}"));
        }
        names.extend(
            [t.function, t.custom]
                .into_iter()
                .flatten()
                .map(|n| n.name)
                .chain(t.name),
        );
        if names.len() == before {
            names.push(t.kind.ok_or_else(|| {
                TranslateError::InvalidRequest("a tool has neither a name nor a type".into())
            })?);
        }
    }
    names.extend(d.functions.into_iter().flatten().map(|f| f.name));
    names.extend(
        d.mcp_servers
            .into_iter()
            .flatten()
            .map(|s| format!("mcp:{}", s.name)),
    );
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dialect: Dialect, body: &str) -> Vec<String> {
        tool_names(dialect, body.as_bytes()).expect("readable")
    }

    #[test]
    fn every_dialects_tool_shapes_are_named() {
        assert_eq!(
            names(
                Dialect::OpenAiChat,
                r#"{"messages":[{"role":"user","content":[{"type":"input_audio",
                "input_audio":{"data":"AA==","format":"wav"}}]}],
                "tools":[{"type":"function","function":{"name":"a","parameters":{}}},
                         {"type":"custom","custom":{"name":"b","format":{"type":"text"}}}],
                "functions":[{"name":"c","parameters":{}}]}"#
            ),
            ["a", "b", "c"]
        );
        assert_eq!(
            names(
                Dialect::Anthropic,
                r#"{"tools":[{"name":"a","input_schema":{}},
                             {"type":"web_search_20250305","name":"web_search"},
                             {"type":"bash_20250124","name":"bash"}],
                "mcp_servers":[{"type":"url","url":"https://x.example/mcp","name":"x"}]}"#
            ),
            ["a", "web_search", "bash", "mcp:x"]
        );
        assert_eq!(
            names(
                Dialect::Responses,
                r#"{"tools":[{"type":"function","name":"a","parameters":{}},
                             {"type":"web_search_preview"},
                             {"type":"mcp","server_label":"wiki","server_url":"https://w.example"},
                             {"type":"custom","name":"b"}]}"#
            ),
            ["a", "web_search_preview", "mcp:wiki", "b"]
        );
        // An entry with several names is checked under each of them.
        assert_eq!(
            names(
                Dialect::OpenAiChat,
                r#"{"tools":[{"name":"x","function":{"name":"y"}}]}"#
            ),
            ["y", "x"]
        );
        assert!(names(Dialect::OpenAiChat, r#"{"tools":null,"messages":[]}"#).is_empty());
        assert!(names(Dialect::Anthropic, r#"{"tools":[]}"#).is_empty());
    }

    /// What this reader cannot be sure of is refused, never read as no tools.
    #[test]
    fn unreadable_or_doubled_tool_lists_are_refused() {
        for body in [
            r#"{"tools":[{"type":"function","function":{"name":"a"}}],"tools":[]}"#,
            r#"{"functions":[],"functions":[{"name":"a"}]}"#,
            r#"{"tools":[{"function":{"name":"a","name":"b"}}]}"#,
            r#"{"tools":[{"name":"a","name":"b"}]}"#,
            r#"{"tools":[{"parameters":{}}]}"#,
            r#"{"tools":["a"]}"#,
            r#"{"tools":{"name":"a"}}"#,
            r#"{"tools":[{"function":{"parameters":{}}}]}"#,
            r#"{"tools":[{"name":7}]}"#,
            r#"{"mcp_servers":[{"url":"https://x.example"}]}"#,
        ] {
            assert!(
                matches!(
                    tool_names(Dialect::OpenAiChat, body.as_bytes()),
                    Err(TranslateError::InvalidRequest(_))
                ),
                "{body}"
            );
        }
    }
}
