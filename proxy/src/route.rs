//! Which proxy endpoint a request path names. The first segment is the consumer's slug;
//! the rest is the API the client speaks.

/// An endpoint of the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    Health,
    Ready,
    /// `POST /{consumer_slug}/v1/chat/completions`
    ChatCompletions {
        consumer: &'a str,
    },
}

/// Map a path (without query) to an endpoint, `None` for anything else.
pub fn parse(path: &str) -> Option<Endpoint<'_>> {
    match path {
        "/healthz" => return Some(Endpoint::Health),
        "/readyz" => return Some(Endpoint::Ready),
        _ => {}
    }
    let rest = path.strip_prefix('/')?;
    let (consumer, api) = rest.split_once('/')?;
    if consumer.is_empty() {
        return None;
    }
    match api.trim_end_matches('/') {
        "v1/chat/completions" => Some(Endpoint::ChatCompletions { consumer }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse("/app/v1/chat/completions"),
            Some(Endpoint::ChatCompletions { consumer: "app" })
        );
        assert_eq!(
            parse("/app/v1/chat/completions/"),
            Some(Endpoint::ChatCompletions { consumer: "app" })
        );
        assert_eq!(parse("/healthz"), Some(Endpoint::Health));
        for bad in [
            "/",
            "",
            "//v1/chat/completions",
            "/app",
            "/app/v1/chat",
            "/app/v2/chat/completions",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
