//! The headers of cross-origin answers, from a gateway's `cors` policy.

use http::{HeaderName, HeaderValue};
use sluice_shared::snapshot::policies::Cors;

fn pair(name: &'static str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_static(name),
        HeaderValue::from_str(value).ok()?,
    ))
}

/// Headers on every answer to an allowed origin.
pub fn answer_headers(cors: &Cors, allow_origin: &str) -> Vec<(HeaderName, HeaderValue)> {
    let mut out: Vec<_> = [
        pair("access-control-allow-origin", allow_origin),
        pair("access-control-expose-headers", &cors.expose),
        pair("vary", "Origin"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if cors.credentials {
        out.extend(pair("access-control-allow-credentials", "true"));
    }
    out
}

/// The extra headers of a preflight answer.
pub fn preflight_headers(cors: &Cors) -> Vec<(HeaderName, HeaderValue)> {
    [
        pair("access-control-allow-methods", &cors.methods),
        pair("access-control-allow-headers", &cors.headers),
        pair("access-control-max-age", &cors.max_age.to_string()),
    ]
    .into_iter()
    .flatten()
    .collect()
}
