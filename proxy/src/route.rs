//! Which proxy endpoint a request path names. The first segment is the consumer's slug;
//! the rest is the API the client speaks, which decides the dialect of the request, the
//! answer and the errors.

use sluice_translate::Dialect;

/// An API a consumer can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/messages`
    Messages,
    /// `POST /v1/messages/count_tokens`
    CountTokens,
    /// `POST /v1/responses`
    Responses,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `GET /v1/models`
    Models,
}

impl Api {
    /// The dialect the client speaks on this API.
    pub fn dialect(self) -> Dialect {
        match self {
            Self::Messages | Self::CountTokens => Dialect::Anthropic,
            Self::Responses => Dialect::Responses,
            Self::ChatCompletions | Self::Embeddings | Self::Models => Dialect::OpenAiChat,
        }
    }

    /// Whether this is a chat request, which body-aware policies look into.
    pub fn is_chat(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions | Self::Messages | Self::Responses
        )
    }

    pub fn method(self) -> http::Method {
        match self {
            Self::Models => http::Method::GET,
            _ => http::Method::POST,
        }
    }
}

/// An endpoint of the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    Health,
    Ready,
    /// `GET /healthz/upstreams`: every registry's live health as this proxy sees it.
    Upstreams,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    Consumer {
        consumer: &'a str,
        api: Api,
    },
}

/// Map a path (without query) to an endpoint, `None` for anything else.
pub fn parse(path: &str) -> Option<Endpoint<'_>> {
    match path {
        "/healthz" => return Some(Endpoint::Health),
        "/readyz" => return Some(Endpoint::Ready),
        "/healthz/upstreams" => return Some(Endpoint::Upstreams),
        "/metrics" => return Some(Endpoint::Metrics),
        _ => {}
    }
    let rest = path.strip_prefix('/')?;
    let (consumer, api) = rest.split_once('/')?;
    if consumer.is_empty() {
        return None;
    }
    let api = match api.trim_end_matches('/') {
        "v1/chat/completions" => Api::ChatCompletions,
        "v1/messages" => Api::Messages,
        "v1/messages/count_tokens" => Api::CountTokens,
        "v1/responses" => Api::Responses,
        "v1/embeddings" => Api::Embeddings,
        "v1/models" => Api::Models,
        _ => return None,
    };
    Some(Endpoint::Consumer { consumer, api })
}

/// The dialect to answer in before the path is known to be valid: the one the path
/// looks like, so even a 404 reaches an Anthropic SDK in its own shape.
pub fn guess_dialect(path: &str) -> Dialect {
    if path.contains("/v1/messages") {
        Dialect::Anthropic
    } else if path.contains("/v1/responses") {
        Dialect::Responses
    } else {
        Dialect::OpenAiChat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let at = |consumer, api| Some(Endpoint::Consumer { consumer, api });
        assert_eq!(
            parse("/app/v1/chat/completions"),
            at("app", Api::ChatCompletions)
        );
        assert_eq!(
            parse("/app/v1/chat/completions/"),
            at("app", Api::ChatCompletions)
        );
        assert_eq!(parse("/app/v1/messages"), at("app", Api::Messages));
        assert_eq!(
            parse("/app/v1/messages/count_tokens"),
            at("app", Api::CountTokens)
        );
        assert_eq!(parse("/app/v1/responses"), at("app", Api::Responses));
        assert_eq!(parse("/app/v1/embeddings"), at("app", Api::Embeddings));
        assert_eq!(parse("/app/v1/models"), at("app", Api::Models));
        assert_eq!(parse("/healthz"), Some(Endpoint::Health));
        for bad in [
            "/",
            "",
            "//v1/chat/completions",
            "/app",
            "/app/v1/chat",
            "/app/v2/chat/completions",
            "/app/v1/messages/other",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(guess_dialect("/x/v1/messages/zzz"), Dialect::Anthropic);
    }
}
