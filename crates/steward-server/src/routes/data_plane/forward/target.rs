//! The forward URL (`spec/gateway.md` §1): `/v1/forward/{integration_id}/{authority}/{path…}?{query}`
//! names the integration and the upstream target `https://{authority}/{path…}?{query}`.
//!
//! The target is cut out of the **raw** request target: the path and query bytes are taken exactly as
//! the client sent them — never percent-decoded, never re-encoded — and then go through the same
//! canonicalizer as an execute URL, which rejects what an execute URL would not accept with the same
//! codes. This module only splits; it judges nothing but the integration id segment.

use axum::http::Uri;
use steward_types::ErrorCode;

use crate::http::ApiError;

/// The route prefix; everything after it is `{integration_id}/{authority}/{path…}`.
pub const PREFIX: &str = "/v1/forward/";

/// The routes as axum registers them (the wildcard is never decoded by us: the raw URI is read
/// instead). The wildcard matches no empty rest, so the bare prefixes are routed too: they get
/// `path_param_invalid` in the forward shape rather than a generic 404.
pub const ROUTES: [&str; 3] = ["/v1/forward/{*target}", "/v1/forward/", "/v1/forward"];

/// What a forward URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTarget {
    /// The integration whose secret the call needs, as written in the URL (`i_…`).
    pub integration_id: String,
    /// `https://{authority}/{path…}` plus `?{query}` when the request had a `?`, from the raw bytes.
    pub url: String,
}

/// Splits the raw request target. The only refusal is an integration id segment that cannot be an
/// id (empty, or with characters no id has, e.g. a percent-encoding): 400 `path_param_invalid`.
/// Everything about the upstream URL (empty authority, userinfo, bad percent-encodings, …) is left to
/// canonicalization, so it fails at the same pipeline step and with the same code as in execute.
pub fn parse(uri: &Uri) -> Result<ForwardTarget, ApiError> {
    let rest = match uri.path() {
        "/v1/forward" => "",
        path => path
            .strip_prefix(PREFIX)
            .ok_or_else(|| shape_error("the path does not start with /v1/forward/"))?,
    };
    let (integration_id, after) = rest.split_once('/').unwrap_or((rest, ""));
    if integration_id.is_empty() {
        return Err(shape_error("the integration id segment is empty"));
    }
    if !integration_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')) {
        let shown: String = integration_id.chars().take(64).collect();
        return Err(shape_error(&format!("{shown:?} is not an integration id (i_…)")));
    }
    // `{authority}` runs to the next `/`; the rest, without that `/`, is the upstream path.
    let (authority, path) = after.split_once('/').unwrap_or((after, ""));
    let mut url = String::with_capacity(9 + after.len() + uri.query().map_or(0, |q| q.len() + 1));
    url.push_str("https://");
    url.push_str(authority);
    url.push('/');
    url.push_str(path);
    if let Some(query) = uri.query() {
        url.push('?');
        url.push_str(query);
    }
    Ok(ForwardTarget { integration_id: integration_id.to_owned(), url })
}

fn shape_error(detail: &str) -> ApiError {
    ApiError::new(
        ErrorCode::PathParamInvalid,
        format!(
            "a forward URL is /v1/forward/{{integration_id}}/{{host[:port]}}/{{path}}?{{query}}, e.g. \
             /v1/forward/i_abc/api.openai.com/v1/responses: {detail}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(raw: &str) -> Result<ForwardTarget, ApiError> {
        parse(&raw.parse::<Uri>().unwrap())
    }

    fn url(raw: &str) -> String {
        target(raw).unwrap().url
    }

    #[test]
    fn splits_integration_authority_path_and_query() {
        let parsed = target("/v1/forward/i_abc/api.openai.com/v1/responses?stream=true&x=1").unwrap();
        assert_eq!(parsed.integration_id, "i_abc");
        assert_eq!(parsed.url, "https://api.openai.com/v1/responses?stream=true&x=1");
    }

    #[test]
    fn keeps_the_port_and_ip_literals() {
        assert_eq!(
            url("/v1/forward/i_a/api.example.test:8443/v1/items"),
            "https://api.example.test:8443/v1/items"
        );
        assert_eq!(url("/v1/forward/i_a/[::1]:8443/x"), "https://[::1]:8443/x");
        assert_eq!(url("/v1/forward/i_a/127.0.0.1/x"), "https://127.0.0.1/x");
    }

    #[test]
    fn raw_bytes_are_kept_exactly() {
        // No decoding (%2F stays, %7e stays lowercase), no re-encoding, dot segments and doubled
        // slashes untouched: canonicalization decides, as for an execute URL.
        assert_eq!(
            url("/v1/forward/i_a/h.test/a%2Fb/%7e/./../c//d?q=%20+%zz&&k"),
            "https://h.test/a%2Fb/%7e/./../c//d?q=%20+%zz&&k"
        );
        assert_eq!(url("/v1/forward/i_a/h.test/x%00y"), "https://h.test/x%00y");
        assert_eq!(url(r#"/v1/forward/i_a/h.test/{"a"}"#), r#"https://h.test/{"a"}"#);
    }

    #[test]
    fn an_empty_path_is_the_root_and_an_empty_query_is_kept() {
        assert_eq!(url("/v1/forward/i_a/h.test"), "https://h.test/");
        assert_eq!(url("/v1/forward/i_a/h.test/"), "https://h.test/");
        assert_eq!(url("/v1/forward/i_a/h.test?a=1"), "https://h.test/?a=1");
        assert_eq!(url("/v1/forward/i_a/h.test/x?"), "https://h.test/x?");
    }

    #[test]
    fn a_missing_or_odd_authority_is_left_to_canonicalization() {
        // These build URLs canonicalization refuses (`request_url_invalid`, userinfo forbidden).
        assert_eq!(url("/v1/forward/i_a"), "https:///");
        assert_eq!(url("/v1/forward/i_a//x"), "https:///x");
        assert_eq!(url("/v1/forward/i_a/user@h.test/x"), "https://user@h.test/x");
        assert_eq!(url("/v1/forward/i_a/h%2etest/x"), "https://h%2etest/x");
    }

    #[test]
    fn a_bad_integration_segment_is_path_param_invalid() {
        for raw in [
            "/v1/forward//h.test/x",
            "/v1/forward/i%5Fa/h.test/x",
            "/v1/forward/i.a/h.test",
            "/v1/forward/",
            "/v1/forward",
        ] {
            let error = target(raw).unwrap_err();
            assert_eq!(error.code, ErrorCode::PathParamInvalid, "{raw}");
            assert!(
                error.message.contains("/v1/forward/{integration_id}/{host[:port]}/{path}"),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn an_absolute_form_request_target_uses_its_path() {
        let parsed = target("https://steward.test:8081/v1/forward/i_a/h.test/x?y").unwrap();
        assert_eq!(parsed.url, "https://h.test/x?y");
    }
}
