//! Planning an upstream call: which provider API, what body, and how the answer goes
//! back. A route whose client and provider speak the same dialect forwards the client's
//! bytes with at most a few top-level fields spliced in; any other route parses the
//! request into the canonical model and renders it for the provider.

use bytes::Bytes;
use sluice_shared::catalog;
use sluice_shared::model::Provider;
use sluice_shared::snapshot::{UpstreamTarget, WireApi};
use sluice_translate::json_edit;
use sluice_translate::peek::Peek;
use sluice_translate::{Dialect, RenderOptions};

use crate::error::ProxyError;
use crate::exchange::Answer;
use crate::route::Api;

/// The provider's dialect on a target.
pub fn upstream_dialect(target: &UpstreamTarget) -> Result<Dialect, ProxyError> {
    match target.wire {
        WireApi::OpenAiChat => Ok(Dialect::OpenAiChat),
        WireApi::OpenAiResponses => Ok(Dialect::Responses),
        WireApi::AnthropicMessages => Ok(Dialect::Anthropic),
        WireApi::Unsupported => Err(ProxyError::ProviderUnsupported(target.provider.as_str())),
    }
}

/// The API path of a dialect, under the target's base path.
fn api_path(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::OpenAiChat => "/chat/completions",
        Dialect::Anthropic => "/messages",
        Dialect::Responses => "/responses",
    }
}

/// The output limit sent to a provider that requires one when the client gave none:
/// the model's own limit from the models catalog (exact name, else the longest catalog
/// name the model starts with, for dated snapshots), else 4096.
pub fn default_max_tokens(provider: Provider, model: &str) -> u64 {
    catalog::find_model(provider.as_str(), model).map_or(4096, |m| m.max_output_tokens)
}

/// A planned call.
pub struct Plan {
    pub body: Bytes,
    pub api_path: &'static str,
    pub answer: Answer,
}

/// `body` with top-level members set to raw JSON values: spliced into one copy where the
/// peek laid the body out (the usual case: no scan at all), else one scan and copy of
/// the body a member (a body only serde could read, or one a policy rewrote).
fn set_members(
    body: Bytes,
    peek: &Peek,
    changes: &[(&'static str, &[u8])],
) -> Result<Bytes, ProxyError> {
    if changes.is_empty() {
        return Ok(body);
    }
    if let Some(out) = peek.layout.as_ref().and_then(|l| l.apply(&body, changes)) {
        return Ok(Bytes::from(out));
    }
    let mut body = body;
    for &(key, value) in changes {
        body = Bytes::from(
            json_edit::set(&body, key, value)
                .map_err(|_| ProxyError::MalformedJson("the body is not a JSON object".into()))?,
        );
    }
    Ok(body)
}

/// An answer through the canonical model would drop what `demands` names: refused
/// with a clear error rather than answered with less than was asked.
fn refuse_demands(demands: Option<&'static str>) -> Result<(), ProxyError> {
    match demands {
        Some(what) => Err(ProxyError::UnsupportedFeature(format!(
            "{what} cannot be given on this route: its answer is translated or filtered"
        ))),
        None => Ok(()),
    }
}

/// A model name as a JSON string.
fn json_string(text: &str) -> Vec<u8> {
    serde_json::to_vec(text).unwrap_or_default()
}

/// Plan a chat-like call (`chat/completions`, `messages`, `responses`) or an
/// embeddings / token-count call, which only ever pass through. `canonical` makes a
/// chat answer go through the canonical model even in one dialect, for the response
/// stage's policies.
pub fn plan(
    api: Api,
    target: &UpstreamTarget,
    body: Bytes,
    peek: &Peek,
    model: &str,
    canonical: bool,
) -> Result<Plan, ProxyError> {
    let upstream = upstream_dialect(target)?;
    let client = api.dialect();
    let model_changed = peek.model.as_deref() != Some(model);
    match api {
        Api::Embeddings | Api::CountTokens => {
            let api_path = if api == Api::Embeddings {
                if !(target.provider.speaks_openai_chat() || target.provider == Provider::Openai) {
                    return Err(ProxyError::NoEmbeddings(target.provider.as_str()));
                }
                "/embeddings"
            } else {
                "/messages/count_tokens"
            };
            let body = if model_changed {
                set_members(body, peek, &[("model", &json_string(model))])?
            } else {
                body
            };
            return Ok(Plan {
                body,
                api_path,
                answer: Answer::Passthrough {
                    dialect: client,
                    strip_usage: false,
                },
            });
        }
        Api::Models => return Err(ProxyError::MethodNotAllowed),
        Api::ChatCompletions | Api::Messages | Api::Responses => {}
    }

    if client == upstream {
        // The client's bytes, copied once when fields must be spliced in; with a
        // response stage the answer alone goes through the canonical model, so what
        // the client sent beyond that model (a seed, a reasoning effort) still reaches
        // the provider.
        let model_json;
        let max_json;
        let mut changes: Vec<(&'static str, &[u8])> = Vec::new();
        if model_changed {
            model_json = json_string(model);
            changes.push(("model", &model_json));
        }
        let mut strip_usage = false;
        if client == Dialect::OpenAiChat && peek.stream && !peek.include_usage() {
            // Usage is always asked for so every stream can be accounted; the chunk that
            // carries it is dropped on the way back since the client did not ask.
            changes.push(("stream_options", br#"{"include_usage":true}"#));
            strip_usage = true;
        }
        if client == Dialect::Anthropic && peek.max_tokens.is_none() {
            max_json = default_max_tokens(target.provider, model).to_string();
            changes.push(("max_tokens", max_json.as_bytes()));
        }
        let answer = if canonical {
            refuse_demands(sluice_translate::answer_demands(client, &body)?)?;
            Answer::Translate {
                upstream,
                client,
                stream: peek.stream,
                include_usage: peek.include_usage(),
            }
        } else {
            Answer::Passthrough {
                dialect: client,
                strip_usage,
            }
        };
        let body = set_members(body, peek, &changes)?;
        return Ok(Plan {
            body,
            api_path: api_path(upstream),
            answer,
        });
    }

    let mut req = sluice_translate::parse_request(client, &body)?;
    refuse_demands(req.demands)?;
    req.model = model.to_string();
    let opts = RenderOptions {
        default_max_tokens: Some(default_max_tokens(target.provider, model)),
        max_completion_tokens: target.provider == Provider::Openai,
    };
    let body = sluice_translate::render_request(upstream, &req, &opts)?;
    Ok(Plan {
        body: Bytes::from(body),
        api_path: api_path(upstream),
        answer: Answer::Translate {
            upstream,
            client,
            stream: req.stream,
            include_usage: peek.include_usage(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_tokens_come_from_the_catalog_with_dated_names() {
        let exact = default_max_tokens(Provider::Anthropic, "claude-sonnet-4-5");
        assert!(exact > 4096, "{exact}");
        assert_eq!(
            default_max_tokens(Provider::Anthropic, "claude-sonnet-4-5-20250929"),
            exact
        );
        assert_eq!(
            default_max_tokens(Provider::Anthropic, "no-such-model"),
            4096
        );
    }

    /// The changes a pass-through route makes land as a scan and splice of each would
    /// make them, and a layout read from another body (one a policy rewrote) is not
    /// applied to this one.
    #[test]
    fn members_are_set_in_one_copy_or_by_rescanning() {
        let changes: [(&'static str, &[u8]); 3] = [
            ("model", b"\"gpt-4.1-mini\""),
            ("stream_options", br#"{"include_usage":true}"#),
            ("max_tokens", b"4096"),
        ];
        let rescanned = |body: &[u8]| {
            let mut body = body.to_vec();
            for (key, value) in changes {
                body = json_edit::set(&body, key, value).expect("an object");
            }
            body
        };
        let body = br#" { "stream": true, "model" : "gpt-4o","messages":[{"role":"user","content":"hi"}] } "#;
        let peek = Peek::parse(body).expect("read");
        assert!(peek.layout.is_some());
        let spliced = set_members(Bytes::from_static(body), &peek, &changes).expect("set");
        assert_eq!(&spliced[..], &rescanned(body)[..]);

        // A policy's rewrite of the body: the layout of the original is refused.
        let rewritten = br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"[masked]"}]}"#;
        let out = set_members(Bytes::from_static(rewritten), &peek, &changes).expect("set");
        assert_eq!(&out[..], &rescanned(rewritten)[..]);
        let value: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(value["messages"][0]["content"], "[masked]");
        assert_eq!(value["model"], "gpt-4.1-mini");
    }
}
