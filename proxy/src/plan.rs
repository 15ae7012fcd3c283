//! Planning an upstream call: which provider API, what body, and how the answer goes
//! back. A route whose client and provider speak the same dialect forwards the client's
//! bytes with at most a few top-level fields spliced in; any other route parses the
//! request into the canonical model and renders it for the provider.

use bytes::Bytes;
use serde_json::json;
use sluice_shared::catalog;
use sluice_shared::model::Provider;
use sluice_shared::snapshot::{UpstreamTarget, WireApi};
use sluice_translate::{Dialect, RenderOptions, json_edit};

use crate::body::Peek;
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

fn edit(body: &[u8], key: &str, value: &serde_json::Value) -> Result<Vec<u8>, ProxyError> {
    json_edit::set(body, key, value.to_string().as_bytes())
        .map_err(|_| ProxyError::MalformedJson("the body is not a JSON object".into()))
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
                Bytes::from(edit(&body, "model", &json!(model))?)
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

    if client == upstream && !canonical {
        // The client's bytes, copied only when a field must be spliced in.
        let mut body = body;
        if model_changed {
            body = Bytes::from(edit(&body, "model", &json!(model))?);
        }
        let mut strip_usage = false;
        if client == Dialect::OpenAiChat && peek.stream && !peek.include_usage() {
            // Usage is always asked for so every stream can be accounted; the chunk that
            // carries it is dropped on the way back since the client did not ask.
            body = Bytes::from(edit(
                &body,
                "stream_options",
                &json!({"include_usage": true}),
            )?);
            strip_usage = true;
        }
        if client == Dialect::Anthropic && peek.max_tokens.is_none() {
            let max = json!(default_max_tokens(target.provider, model));
            body = Bytes::from(edit(&body, "max_tokens", &max)?);
        }
        return Ok(Plan {
            body,
            api_path: api_path(upstream),
            answer: Answer::Passthrough {
                dialect: client,
                strip_usage,
            },
        });
    }

    let mut req = sluice_translate::parse_request(client, &body)?;
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
}
