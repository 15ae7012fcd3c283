//! The sign-in page of the authorization server: the consumer's API key, or one of
//! its OpenID providers, with the authorization request's parameters carried along.

use axum::response::Html;
use sluice_shared::snapshot::{CompiledConsumer, CompiledGateway};

use super::{AuthorizeParams, idp};

/// Text made safe inside HTML, attribute values included.
pub fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The sign-in form: the consumer's API key, or one of its OpenID providers, with the
/// request's parameters carried.
pub(super) fn form(
    p: &AuthorizeParams,
    gateway: &CompiledGateway,
    consumer: &CompiledConsumer,
    error: Option<&str>,
) -> Html<String> {
    let fields = serde_json::to_value(p).unwrap_or_default();
    let hidden: String = fields
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k, v.as_str()?)))
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(k),
                escape(v)
            )
        })
        .collect();
    let error = error
        .map(|e| format!("<p role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let providers: String = idp::providers(gateway, consumer)
        .iter()
        .map(|a| {
            let name = url::Url::parse(&a.issuer)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_else(|| a.issuer.clone());
            format!(
                "<p><button type=\"submit\" name=\"idp\" value=\"{}\" formnovalidate>Sign in with {}</button></p>",
                a.id,
                escape(&name)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sluice: sign in</title></head>\
         <body><h1>Sign in to {}</h1>{error}<form method=\"post\">{hidden}\
         <label>API key <input type=\"password\" name=\"api_key\" autocomplete=\"off\" required></label>\
         <button type=\"submit\">Allow</button>{providers}</form></body></html>",
        escape(&consumer.name)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }
}
