use serde_json::json;
use steward_types::ErrorCode;

use super::*;
use crate::fixtures::{ctx, template};

fn req(method: Method, url: &str) -> ExecuteRequest {
    ExecuteRequest { method, url: url.to_owned(), headers: Vec::new(), body_base64: None }
}

fn get(url: &str) -> ExecuteRequest {
    req(Method::Get, url)
}

fn post(body: &[u8], headers: &[(&str, &str)]) -> ExecuteRequest {
    ExecuteRequest {
        method: Method::Post,
        url: "https://api.example.com/v1/items".into(),
        headers: headers.iter().map(|(n, v)| HeaderField::new(*n, *v)).collect(),
        body_base64: Some(STANDARD.encode(body)),
    }
}

fn with_headers(mut r: ExecuteRequest, headers: &[(&str, &str)]) -> ExecuteRequest {
    r.headers = headers.iter().map(|(n, v)| HeaderField::new(*n, *v)).collect();
    r
}

fn ok(r: &ExecuteRequest) -> CanonicalRequest {
    canonicalize(r, &template(), &ctx()).unwrap_or_else(|e| panic!("{} rejected: {e}", r.url))
}

fn code(r: &ExecuteRequest) -> ErrorCode {
    code_with(r, &ctx())
}

fn code_with(r: &ExecuteRequest, ctx: &CanonContext) -> ErrorCode {
    match canonicalize(r, &template(), ctx) {
        Ok(c) => panic!("{} accepted as {}", r.url, c.canonical_url()),
        Err(e) => {
            assert!(!e.message().is_empty());
            e.code()
        }
    }
}

fn url_of(url: &str) -> String {
    ok(&get(url)).canonical_url().to_owned()
}

#[test]
fn canonical_form() {
    let c = ok(&get("HTTPS://API.Example.COM.:443/v1/./x/../items?tag=b&limit=10&tag=a&cursor"));
    assert_eq!(c.canonical_url(), "https://api.example.com/v1/items?cursor&limit=10&tag=b&tag=a");
    assert_eq!((c.scheme(), c.host(), c.port(), c.path()), ("https", "api.example.com", 443, "/v1/items"));
    assert!(c.uses_default_port());
    assert_eq!(c.query_string(), "cursor&limit=10&tag=b&tag=a");
    assert_eq!(c.query()[0].value(), None);
    assert_eq!(c.descriptor().query_keys(), &["cursor", "limit", "tag"]);
    assert_eq!(c.group().id(), "items_read");
    assert_eq!(url_of("https://api.example.com:8443"), "https://api.example.com:8443/");
    assert_eq!(url_of("https://api.example.com/?tag=&tag"), "https://api.example.com/?tag=&tag");
    assert_eq!(url_of("https://api.example.com/?&&limit=1&&"), "https://api.example.com/?limit=1");
    assert_eq!(url_of("https://api.example.com/?"), "https://api.example.com/");
    assert_eq!(url_of("https://api.example.com/?tag=a+b%2fc%7e"), "https://api.example.com/?tag=a+b%2Fc~");
    assert_eq!(url_of("https://api.example.com/?a%2fb=1"), "https://api.example.com/?a%2Fb=1");
}

#[test]
fn host_spellings() {
    assert_eq!(url_of("https://127.0.0.1/"), "https://127.0.0.1/");
    assert_eq!(url_of("https://[::ffff:127.0.0.1]/"), "https://[::ffff:127.0.0.1]/");
    assert_eq!(url_of("https://[0:0:0:0:0:FFFF:7F00:0001]/"), "https://[::ffff:127.0.0.1]/");
    assert_eq!(url_of("https://bücher.example/"), "https://xn--bcher-kva.example/");
    assert_eq!(url_of("https://XN--BCHER-KVA.example./"), "https://xn--bcher-kva.example/");
    for spelling in ["0x7f.1", "0177.0.0.1", "2130706433", "127.1", "0x7f.0.0.1", "127.0.0.01"] {
        assert_eq!(code(&get(&format!("https://{spelling}/"))), ErrorCode::RequestUrlInvalid, "{spelling}");
    }
    assert_eq!(code(&get("https://[::1%25lo]/")), ErrorCode::RequestUrlInvalid);
    assert_eq!(code(&get("https://api%2eexample.com/")), ErrorCode::RequestUrlInvalid);
    assert_eq!(code(&get("https:///v1/items")), ErrorCode::RequestUrlInvalid);
    assert_eq!(code(&get("https://[::1]/")), ErrorCode::RequestHostNotAllowed);
}

#[test]
fn dot_segments_and_percent() {
    assert_eq!(url_of("https://api.example.com/v1/items/a/%2e%2E/b"), "https://api.example.com/v1/items/b");
    assert_eq!(url_of("https://api.example.com/a/b/.%2E/%2e."), "https://api.example.com/");
    assert_eq!(url_of("https://api.example.com/x/%2E%2e/v1/%2e/items"), "https://api.example.com/v1/items");
    assert_eq!(url_of("https://api.example.com/../../v1/items"), "https://api.example.com/v1/items");
    assert_eq!(
        url_of("https://api.example.com/v1/items/%41%7e%c3%a9"),
        "https://api.example.com/v1/items/A~%C3%A9"
    );
    assert_eq!(url_of("https://api.example.com"), "https://api.example.com/");
    // An encoded slash is data, not a separator, for dot-segment removal; that it cannot hide a dot
    // segment from an upstream that decodes it is `encoded_slashes` below.
    for bad in
        ["/v1/items/%", "/v1/items/%2", "/v1/items/%g0", "/v1/items/%00", "/v1/items/%0a", "/v1/items/%7f"]
    {
        assert_eq!(
            code(&get(&format!("https://api.example.com{bad}"))),
            ErrorCode::RequestPercentEncodingInvalid,
            "{bad}"
        );
    }
    assert_eq!(code(&get("https://api.example.com/?limit=%zz")), ErrorCode::RequestPercentEncodingInvalid);
    assert_eq!(code(&get("https://api.example.com/?limit=%0D")), ErrorCode::RequestPercentEncodingInvalid);
}

#[test]
fn step_one_and_two_codes() {
    assert_eq!(code(&get("https://api.example.com/v1 items")), ErrorCode::RequestUrlInvalid);
    assert_eq!(code(&get("https://api.example.com\\v1\\items")), ErrorCode::RequestUrlInvalid);
    assert_eq!(code(&get("https://api.example.com/v1/ïtems")), ErrorCode::RequestUrlInvalid);
    assert_eq!(code(&get("api.example.com/v1/items")), ErrorCode::RequestUrlInvalid);
    assert_eq!(code(&get("https:api.example.com/v1/items")), ErrorCode::RequestUrlInvalid);
    assert_eq!(code(&get("https://api.example.com:0443/")), ErrorCode::RequestUrlInvalid);
    assert_eq!(code(&get("https://api.example.com:65536/")), ErrorCode::RequestUrlInvalid);
    assert_eq!(code(&get("https://user@api.example.com/")), ErrorCode::RequestUrlUserinfoForbidden);
    assert_eq!(code(&get("https://api.example.com/v1/items#")), ErrorCode::RequestUrlFragmentForbidden);
}

#[test]
fn allowlists() {
    assert_eq!(code(&get("http://api.example.com/")), ErrorCode::RequestSchemeNotAllowed);
    assert_eq!(code(&get("ftp://api.example.com/")), ErrorCode::RequestSchemeNotAllowed);
    assert_eq!(code(&get("https://evil.example.com/")), ErrorCode::RequestHostNotAllowed);
    assert_eq!(code(&get("https://api.example.com.evil/")), ErrorCode::RequestHostNotAllowed);
    assert_eq!(code(&get("https://api.example.com:444/")), ErrorCode::RequestPortNotAllowed);
    assert_eq!(code(&get("https://api.example.com/v2/items")), ErrorCode::NoMatchingGroup);
    assert_eq!(code(&req(Method::Delete, "https://api.example.com/v1/items")), ErrorCode::NoMatchingGroup);
}

#[test]
fn query_rules() {
    assert_eq!(code(&get("https://api.example.com/?secret=1")), ErrorCode::RequestQueryKeyNotAllowlisted);
    assert_eq!(code(&get("https://api.example.com/?=1")), ErrorCode::RequestQueryKeyNotAllowlisted);
    assert_eq!(code(&get("https://api.example.com/?LIMIT=1")), ErrorCode::RequestQueryKeyNotAllowlisted);
    assert_eq!(
        code(&get("https://api.example.com/?limit=1&limit=2")),
        ErrorCode::RequestQueryDuplicateKeyForbidden
    );
    assert_eq!(
        code(&get("https://api.example.com/?limit&limit=")),
        ErrorCode::RequestQueryDuplicateKeyForbidden
    );
    assert_eq!(url_of("https://api.example.com/?tag=1&tag=1"), "https://api.example.com/?tag=1&tag=1");
    // `key` is allowlisted by the fixture, but an integration injecting into it reserves it.
    assert_eq!(url_of("https://api.example.com/?key=1"), "https://api.example.com/?key=1");
    let injection = Injection::from_json(&json!({"type": "query", "name": "key"})).unwrap();
    let reserved = ctx().with_integration_injection(Some(injection));
    assert_eq!(
        code_with(&get("https://api.example.com/?key=1"), &reserved),
        ErrorCode::RequestQueryKeyReserved
    );
    assert_eq!(
        code_with(&get("https://api.example.com/?k%65y"), &reserved),
        ErrorCode::RequestQueryKeyReserved
    );
}

#[test]
fn header_rules() {
    let r = with_headers(
        get("https://api.example.com/v1/items"),
        &[
            ("X-Request-Id", "  b \t"),
            ("accept", "application/json"),
            ("x-request-id", "a"),
            ("Authorization", "Bearer stolen"),
            ("cookie", "c=1"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-unlisted", "v"),
            ("x-api-key", "client-supplied"),
            ("content-length", "0"),
        ],
    );
    let c = ok(&r);
    let expected = [
        ("accept", "application/json"),
        ("x-api-key", "client-supplied"),
        ("x-request-id", "a"),
        ("x-request-id", "b"),
    ];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    assert_eq!(c.headers(), expected.as_slice());
    assert_eq!(c.descriptor().normalized_headers(), expected.as_slice());
    // An injected header is never taken from the client.
    let injection = Injection::from_json(&json!({"type": "header", "name": "x-api-key"})).unwrap();
    let c = canonicalize(&r, &template(), &ctx().with_integration_injection(Some(injection))).unwrap();
    assert!(c.headers().iter().all(|(n, _)| n != "x-api-key"));
    // `connection` makes the headers it names hop-by-hop.
    let r2 = with_headers(
        get("https://api.example.com/"),
        &[("connection", "X-Request-Id"), ("x-request-id", "1")],
    );
    assert!(ok(&r2).headers().is_empty());

    let g = || get("https://api.example.com/v1/items");
    for name in ["bad name", "", "x:y", "é"] {
        assert_eq!(code(&with_headers(g(), &[(name, "v")])), ErrorCode::RequestHeaderNameInvalid, "{name:?}");
    }
    for value in ["a\rb", "a\nb", "a\0b", "caf\u{e9}", "\u{1}"] {
        assert_eq!(
            code(&with_headers(g(), &[("accept", value)])),
            ErrorCode::RequestHeaderValueInvalid,
            "{value:?}"
        );
    }
}

#[test]
fn prefix_entries_admit_request_headers() {
    let mut value = crate::fixtures::template_json();
    value["path_groups"][0]["header_forward_allowlist"] = json!(["accept", "x-stainless-*", "x-forwarded-*"]);
    let template = Template::from_json(&value).unwrap();
    let r = with_headers(
        get("https://api.example.com/v1/items"),
        &[
            ("X-Stainless-OS", "Linux"),
            ("x-stainless-retry-count", "0"),
            ("x-stainless", "no"),
            ("x-stainlessy", "no"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-other", "no"),
            ("accept", "application/json"),
        ],
    );
    let c = canonicalize(&r, &template, &ctx()).unwrap();
    let names: Vec<&str> = c.headers().iter().map(|(n, _)| n.as_str()).collect();
    // Never-forwarded names stay out even when a prefix entry admits them.
    assert_eq!(names, ["accept", "x-stainless-os", "x-stainless-retry-count"]);
    // An injected header is never taken from the client, prefix or not.
    let injection = Injection::from_json(&json!({"type": "header", "name": "x-stainless-key"})).unwrap();
    let r = with_headers(get("https://api.example.com/v1/items"), &[("x-stainless-key", "client")]);
    let c = canonicalize(&r, &template, &ctx().with_integration_injection(Some(injection))).unwrap();
    assert!(c.headers().is_empty());
}

#[test]
fn framing() {
    let g = || get("https://api.example.com/v1/items");
    assert_eq!(
        code(&with_headers(g(), &[("content-length", "0"), ("Content-Length", "0")])),
        ErrorCode::AmbiguousFraming
    );
    assert_eq!(code(&with_headers(g(), &[("content-length", "0x0")])), ErrorCode::AmbiguousFraming);
    assert_eq!(code(&with_headers(g(), &[("content-length", "")])), ErrorCode::AmbiguousFraming);
    assert_eq!(code(&with_headers(g(), &[("content-length", "-1")])), ErrorCode::AmbiguousFraming);
    assert_eq!(code(&with_headers(g(), &[("content-length", "3")])), ErrorCode::AmbiguousFraming);
    assert_eq!(code(&with_headers(g(), &[("transfer-encoding", "identity")])), ErrorCode::AmbiguousFraming);
    let body = post(b"{}", &[("content-type", "application/json"), ("content-length", " 2 ")]);
    assert_eq!(ok(&body).body(), b"{}");
    let body = post(b"{}", &[("content-type", "application/json"), ("content-length", "3")]);
    assert_eq!(code(&body), ErrorCode::AmbiguousFraming);
}

#[test]
fn body_rules() {
    let json_ct = [("content-type", "Application/JSON; charset=utf-8")];
    let c = ok(&post(b"{\"name\":\"x\"}", &json_ct));
    assert_eq!(c.body(), b"{\"name\":\"x\"}");
    assert_eq!(c.headers(), &[("content-type".to_owned(), "Application/JSON; charset=utf-8".to_owned())]);
    assert_eq!(c.descriptor().body_sha256().map(str::len), Some(43));
    assert!(ok(&get("https://api.example.com/")).descriptor().body_sha256().is_none());

    let mut bad = post(b"{}", &json_ct);
    for b64 in ["e30", "e30=\n", "e3 0=", "e31=", "!!!!"] {
        bad.body_base64 = Some(b64.into());
        assert_eq!(code(&bad), ErrorCode::RequestBodyBase64Invalid, "{b64}");
    }
    assert_eq!(code(&post(&[b'a'; 65], &json_ct)), ErrorCode::RequestBodyTooLarge);
    let mut small = ctx();
    small.max_request_body_bytes = 8;
    assert_eq!(code_with(&post(&[b'a'; 9], &json_ct), &small), ErrorCode::RequestBodyTooLarge);
    let mut get_body = get("https://api.example.com/v1/items");
    get_body.body_base64 = Some("e30=".into());
    assert_eq!(code(&get_body), ErrorCode::RequestBodyTooLarge);
    assert_eq!(code(&post(b"{}", &[])), ErrorCode::RequestContentTypeMissing);
    assert_eq!(
        code(&post(b"{}", &[("content-type", "text/plain")])),
        ErrorCode::RequestContentTypeNotAllowed
    );
    assert_eq!(
        code(&post(b"{}", &[("content-type", "application/json"), ("content-type", "application/json")])),
        ErrorCode::RequestContentTypeNotAllowed
    );
    // An empty body needs no content type.
    assert!(ok(&post(b"", &[])).body().is_empty());
}

#[test]
fn streaming() {
    let g = || get("https://api.example.com/v1/items");
    assert_eq!(
        code(&with_headers(g(), &[("accept", "text/event-stream")])),
        ErrorCode::RequestStreamingNotSupported
    );
    assert_eq!(
        code(&with_headers(g(), &[("Accept", "application/json, Application/X-NDJSON;q=0.5")])),
        ErrorCode::RequestStreamingNotSupported
    );
    // The fixture allows text/event-stream request bodies so that step 9 is reached.
    assert_eq!(
        code(&post(b"data: x", &[("content-type", "text/event-stream")])),
        ErrorCode::RequestStreamingNotSupported
    );
}

#[test]
fn streaming_is_allowed_in_forward_mode() {
    let forward = ctx().allowing_streaming();
    let request = with_headers(get("https://api.example.com/v1/items"), &[("accept", "text/event-stream")]);
    assert!(canonicalize(&request, &template(), &forward).is_ok());
    let request = post(b"data: x", &[("content-type", "text/event-stream")]);
    assert!(canonicalize(&request, &template(), &forward).is_ok());
}

#[test]
fn descriptor_and_digest() {
    let c = ok(&post(b"{}", &[("content-type", "application/json")]));
    let value = serde_json::to_value(c.descriptor()).unwrap();
    assert_eq!(
        value,
        json!({
            "tenant_id": "t_acme", "workload_id": "w_bot", "integration_id": "i_api",
            "template_id": "tpl_test", "template_version": 3, "method": "POST",
            "canonical_url": "https://api.example.com/v1/items", "action_group": "items_write",
            "risk_tier": "high", "normalized_headers": [["content-type", "application/json"]],
            "query_keys": [], "body_sha256": "RBNvo1WzZ4oRRq0W9-hknpT7T8If536DEMBg9hyq_4o"
        })
    );
    let jcs = c.descriptor().to_jcs().unwrap();
    let expected = hex::encode(steward_crypto::sha256(jcs.as_bytes()));
    assert_eq!(c.digest(), expected);
    assert_eq!(c.digest().len(), 64);
    let other = ok(&post(b"{ }", &[("content-type", "application/json")]));
    assert_ne!(c.digest(), other.digest());
}

#[test]
fn idempotent() {
    for r in [
        get("HTTPS://API.example.com:443/x/%2e%2e/v1/items/%7e%3a?tag=b&tag=a&limit"),
        get("https://[::FFFF:127.0.0.1]:8443/"),
        with_headers(get("https://bücher.example/"), &[("ACCEPT", " a ")]),
        post(b"{\"a\":1}", &[("content-type", "application/json"), ("content-length", "7")]),
    ] {
        let first = ok(&r);
        let second = ok(&first.to_execute_request());
        assert_eq!(first.descriptor(), second.descriptor());
        assert_eq!(first.digest(), second.digest());
        assert_eq!(first.body(), second.body());
    }
}

#[test]
fn execute_request_json_shape() {
    let r: ExecuteRequest = serde_json::from_value(json!({
        "method": "POST", "url": "https://api.example.com/v1/items",
        "headers": [{"name": "content-type", "value": "application/json"}],
        "body_base64": "e30="
    }))
    .unwrap();
    assert_eq!(ok(&r).body(), b"{}");
    assert!(serde_json::from_value::<ExecuteRequest>(json!({"method": "TRACE", "url": "x"})).is_err());
    assert!(
        serde_json::from_value::<ExecuteRequest>(json!({"method": "GET", "url": "x", "extra": 1})).is_err()
    );
}

/// The fixture template with `allowed_hosts` replaced.
fn template_with_hosts(hosts: &[&str]) -> Template {
    let mut value = crate::fixtures::template_json();
    value["allowed_hosts"] = json!(hosts);
    Template::from_json(&value).unwrap_or_else(|e| panic!("{hosts:?} rejected: {e}"))
}

#[test]
fn ipv6_literals_meet_whatever_their_spelling() {
    // RFC 5952 on both sides: lowercase, leading zeros dropped, the longest zero run compressed (the
    // first of equal runs; a single zero field is not), dotted-quad tails written as hex except in
    // ::ffff:a.b.c.d. A template's literal and a request's literal meet when they are one address.
    let spellings: &[(&[&str], &str)] = &[
        (&["[::127.0.0.1]", "[::7f00:1]", "[0:0:0:0:0:0:7F00:0001]", "[0:0::127.0.0.1]"], "[::7f00:1]"),
        (&["[::ffff:127.0.0.1]", "[::FFFF:7F00:1]", "[0:0:0:0:0:ffff:7f00:1]"], "[::ffff:127.0.0.1]"),
        (&["[::ffff:0:127.0.0.1]", "[::ffff:0:7f00:1]"], "[::ffff:0:7f00:1]"),
        (&["[64:ff9b::127.0.0.1]", "[64:FF9B:0:0:0:0:7F00:1]"], "[64:ff9b::7f00:1]"),
        (&["[2001:DB8:0:0:1:0:0:1]", "[2001:db8::1:0:0:1]"], "[2001:db8::1:0:0:1]"),
        (&["[2001:db8:0:1:1:1:1:1]", "[2001:db8::1:1:1:1:1]"], "[2001:db8:0:1:1:1:1:1]"),
        (&["[0::1]", "[::0:1]", "[0:0:0:0:0:0:0:1]", "[::0.0.0.1]"], "[::1]"),
    ];
    for (forms, canonical) in spellings {
        for listed in forms.iter() {
            let template = template_with_hosts(&[listed]);
            assert_eq!(template.hosts(), &[canonical.to_string()], "template lists {listed}");
            for requested in forms.iter() {
                let url = format!("https://{requested}/v1/items");
                let c = canonicalize(&get(&url), &template, &ctx())
                    .unwrap_or_else(|e| panic!("{url} against {listed}: {e}"));
                assert_eq!(c.host(), *canonical, "{url}");
                assert_eq!(c.canonical_url(), format!("https://{canonical}/v1/items"));
            }
        }
        // Two spellings of one address in a template are a duplicate.
        if forms.len() > 1 {
            let mut value = crate::fixtures::template_json();
            value["allowed_hosts"] = json!([forms[0], forms[1]]);
            let err = Template::from_json(&value).expect_err("duplicate hosts");
            assert_eq!(err.code(), ErrorCode::TemplateAllowlistDuplicate, "{forms:?}");
        }
    }
    // A different address does not meet.
    let template = template_with_hosts(&["[::127.0.0.1]"]);
    for other in ["[::ffff:127.0.0.1]", "[::1]", "[::7f00:2]", "127.0.0.1"] {
        let err = canonicalize(&get(&format!("https://{other}/v1/items")), &template, &ctx()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::RequestHostNotAllowed, "{other}");
    }
}

/// The fixture template plus a group that opts in to encoded slashes.
fn template_with_encoded_slash_group() -> Template {
    let mut value = crate::fixtures::template_json();
    value["path_groups"].as_array_mut().unwrap().push(json!({
        "group_id": "projects",
        "risk_tier": "low",
        "approval_mode": "none",
        "methods": ["GET"],
        "path_patterns": ["^/v2/projects/[^/]+$", "^/v2/projects/[^/]+/issues$"],
        "constraints": {"allow_encoded_slashes": true}
    }));
    Template::from_json(&value).unwrap()
}

#[test]
fn encoded_slashes() {
    // A group that does not opt in matches no path with an encoded '/' or '\\' — even where its
    // single-segment pattern would otherwise match (`^/v1/items/[^/]+$`).
    for path in ["/v1/items/a%2Fb", "/v1/items/a%2fb", "/v1/items/a%5Cb", "/v1/items/%2F", "/v1/items/x%5c"] {
        assert_eq!(
            code(&get(&format!("https://api.example.com{path}"))),
            ErrorCode::NoMatchingGroup,
            "{path}"
        );
    }
    let err = canonicalize(&get("https://api.example.com/v1/items/a%2Fb"), &template(), &ctx()).unwrap_err();
    assert!(err.message().contains("allow_encoded_slashes"), "{}", err.message());
    // A dot segment hidden behind an encoded separator is refused outright, whatever the group says:
    // an upstream that decodes %2F would climb out of the segment.
    let traversals = [
        "/v1/items/..%2F..%2Fadmin",
        "/v1/items/..%2f",
        "/v1/items/%2e%2e%2fadmin",
        "/v1/items/%2E%2e%2Fadmin",
        "/v1/items/.%2E%2F",
        "/v1/items/a%2F..",
        "/v1/items/a%2F..%2Fb",
        "/v1/items/a%2F.%2Fb",
        "/v1/items/..%5Cadmin",
        "/v1/items/%2e%2e%5c",
        "/v2/projects/..%2F..%2Fadmin",
        "/v2/projects/group%2F..%2F..%2Fadmin/issues",
        "/v2/projects/%2E%2E%2F",
    ];
    let opted_in = template_with_encoded_slash_group();
    for path in traversals {
        let url = format!("https://api.example.com{path}");
        for t in [&template(), &opted_in] {
            let err = canonicalize(&get(&url), t, &ctx()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::RequestPercentEncodingInvalid, "{path}: {}", err.message());
        }
    }
    // A group that opts in sees the path as is: the encoded slash stays data inside one segment.
    for (path, canonical) in [
        ("/v2/projects/group%2Fproject", "/v2/projects/group%2Fproject"),
        ("/v2/projects/group%2fsub%2fproject/issues", "/v2/projects/group%2Fsub%2Fproject/issues"),
        ("/v2/projects/a%5Cb", "/v2/projects/a%5Cb"),
        ("/v2/projects/..a%2F...", "/v2/projects/..a%2F..."),
    ] {
        let c = canonicalize(&get(&format!("https://api.example.com{path}")), &opted_in, &ctx())
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!((c.path(), c.group().id()), (canonical, "projects"));
        let again = canonicalize(&c.to_execute_request(), &opted_in, &ctx()).unwrap();
        assert_eq!(again.digest(), c.digest());
    }
    // The opt-in is per group: the fixture's own groups still refuse encoded slashes.
    assert_eq!(
        canonicalize(&get("https://api.example.com/v1/items/a%2Fb"), &opted_in, &ctx()).unwrap_err().code(),
        ErrorCode::NoMatchingGroup
    );
    // Paths without encoded separators and queries with them are unaffected.
    assert_eq!(url_of("https://api.example.com/v1/items/a..b"), "https://api.example.com/v1/items/a..b");
    assert_eq!(url_of("https://api.example.com/?tag=..%2f..%2f"), "https://api.example.com/?tag=..%2F..%2F");
}
