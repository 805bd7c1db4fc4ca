use serde_json::{Value, json};
use steward_types::ErrorCode;

use super::*;
use crate::fixtures::template_json;

fn with(edit: impl FnOnce(&mut Value)) -> Result<Template, TemplateError> {
    let mut value = template_json();
    edit(&mut value);
    Template::from_json(&value)
}

fn code(edit: impl FnOnce(&mut Value)) -> ErrorCode {
    match with(edit) {
        Ok(_) => panic!("template was accepted"),
        Err(e) => {
            assert!(!e.message().is_empty());
            e.code()
        }
    }
}

type Edit = Box<dyn FnOnce(&mut Value)>;

fn group(value: &mut Value) -> &mut Value {
    &mut value["path_groups"][0]
}

#[test]
fn fixture_is_valid_and_normalized() {
    let t = with(|_| {}).unwrap();
    assert_eq!(t.id(), "tpl_test");
    assert_eq!(t.version(), 3);
    assert_eq!(t.provider(), "test");
    assert_eq!(t.ports(), &[443, 8443]);
    assert_eq!(t.hosts(), &["api.example.com", "xn--bcher-kva.example", "127.0.0.1", "[::ffff:127.0.0.1]"]);
    let read = &t.groups()[0];
    assert_eq!(read.header_forward_allowlist()[0], "accept");
    assert_eq!(read.response_header_allowlist()[..2], ["content-type".to_owned(), "accept".to_owned()]);
    assert_eq!(read.body_policy().max_bytes(), 0);
    assert!(read.duplicate_query_keys().allows("tag"));
    assert!(!read.duplicate_query_keys().allows("limit"));
    let write = t.group("items_write").unwrap();
    assert_eq!(write.risk_tier(), RiskTier::High);
    assert_eq!(write.approval_mode(), ApprovalMode::Required);
    assert_eq!(write.approval_preview(), &["/name", "/a~1b"]);
    assert!(write.duplicate_query_keys().allows("anything"));
    assert_eq!(t.select_group(Method::Post, "/v1/items").unwrap().id(), "items_write");
    assert_eq!(t.select_group(Method::Get, "/v1/items").unwrap().id(), "items_read");
    assert!(t.select_group(Method::Delete, "/v1/items").is_none());
    assert!(t.default_injection().is_none());
}

#[test]
fn json_round_trips() {
    let t = with(|_| {}).unwrap();
    let again = Template::from_json(t.to_json()).unwrap();
    assert_eq!(t.canonical_json(), again.canonical_json());
    assert!(t.canonical_json().starts_with("{\"allowed_hosts\":"));
}

#[test]
fn template_invalid() {
    let cases: Vec<Edit> = vec![
        Box::new(|v| v["extra"] = json!(1)),
        Box::new(|v| group(v)["extra"] = json!(1)),
        Box::new(|v| v["redirect_policy"]["follow"] = json!(true)),
        Box::new(|v| v["version"] = json!("1")),
        Box::new(|v| v["version"] = json!(0)),
        Box::new(|v| v["version"] = json!(-1)),
        Box::new(|v| v["template_id"] = json!("openai")),
        Box::new(|v| v["template_id"] = json!("tpl_")),
        Box::new(|v| v["template_id"] = json!("tpl_Open")),
        Box::new(|v| v["provider"] = json!("")),
        Box::new(|v| v["allowed_schemes"] = json!(["https", "http"])),
        Box::new(|v| v["allowed_schemes"] = json!(["http"])),
        Box::new(|v| v["allowed_ports"] = json!([0])),
        Box::new(|v| v["allowed_ports"] = json!([65536])),
        Box::new(|v| v["allowed_ports"] = json!([])),
        Box::new(|v| v["redirect_policy"]["mode"] = json!("follow")),
        Box::new(|v| v["default_injection"] = json!({"type": "magic"})),
        Box::new(|v| v["allowed_hosts"] = json!([])),
        Box::new(|v| v["path_groups"] = json!([])),
        Box::new(|v| group(v)["group_id"] = json!("Bad Id")),
        Box::new(|v| group(v)["risk_tier"] = json!("extreme")),
        Box::new(|v| group(v)["approval_mode"] = json!("sometimes")),
        Box::new(|v| group(v)["methods"] = json!([])),
        Box::new(|v| group(v)["methods"] = json!(["get"])),
        Box::new(|v| group(v)["methods"] = json!(["TRACE"])),
        Box::new(|v| group(v)["path_patterns"] = json!([])),
        Box::new(|v| group(v)["query_allowlist"] = json!([""])),
        Box::new(|v| group(v)["query_allowlist"] = json!(["a=b"])),
        Box::new(|v| group(v)["query_allowlist"] = json!(["%7e"])),
        Box::new(|v| group(v)["approval_preview"] = json!(["model"])),
        Box::new(|v| group(v)["approval_preview"] = json!(["/a~2"])),
        Box::new(|v| group(v)["body_policy"] = json!({"max_bytes": 1, "content_types": ["json"]})),
        Box::new(|v| group(v)["body_policy"] = json!({"max_bytes": 1})),
        Box::new(|v| group(v)["constraints"] = json!({"allow_duplicate_query_keys": "yes"})),
        Box::new(|v| group(v)["constraints"] = json!({"allow_encoded_slashes": "yes"})),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        assert_eq!(code(case), ErrorCode::TemplateInvalid, "case {i}");
    }
    assert_eq!(Template::from_json(&json!([])).unwrap_err().code(), ErrorCode::TemplateInvalid);
}

#[test]
fn hosts() {
    assert_eq!(
        code(|v| v["allowed_hosts"] = json!(["*.example.com"])),
        ErrorCode::TemplateHostWildcardForbidden
    );
    assert_eq!(code(|v| v["allowed_hosts"] = json!(["*"])), ErrorCode::TemplateHostWildcardForbidden);
    for bad in [
        "",
        "a b.com",
        "::1",
        "[::1",
        "host:443",
        "0x7f.1",
        "127.1",
        "a..b",
        "ex%41mple.com",
        "https://x.com",
    ] {
        assert_eq!(code(|v| v["allowed_hosts"] = json!([bad])), ErrorCode::TemplateHostInvalid, "{bad}");
    }
    assert_eq!(
        code(|v| v["allowed_hosts"] = json!(["Example.com", " example.com. "])),
        ErrorCode::TemplateAllowlistDuplicate
    );
    assert_eq!(
        code(|v| v["allowed_hosts"] = json!(["[::1]", "[0:0:0:0:0:0:0:1]"])),
        ErrorCode::TemplateAllowlistDuplicate
    );
    let t = with(|v| v["allowed_hosts"] = json!(["  [2001:DB8::0:1]  "])).unwrap();
    assert_eq!(t.hosts(), &["[2001:db8::1]"]);
}

#[test]
fn duplicates() {
    assert_eq!(code(|v| v["allowed_ports"] = json!([443, 443])), ErrorCode::TemplateAllowlistDuplicate);
    assert_eq!(
        code(|v| group(v)["header_forward_allowlist"] = json!(["Accept", "accept"])),
        ErrorCode::TemplateAllowlistDuplicate
    );
    assert_eq!(
        code(|v| group(v)["response_header_allowlist"] = json!(["x-a", "X-A"])),
        ErrorCode::TemplateAllowlistDuplicate
    );
    assert_eq!(
        code(|v| group(v)["query_allowlist"] = json!(["a", "a"])),
        ErrorCode::TemplateAllowlistDuplicate
    );
    assert_eq!(
        code(|v| group(v)["body_policy"] = json!({"max_bytes": 1, "content_types": ["a/b", "A/B"]})),
        ErrorCode::TemplateAllowlistDuplicate
    );
    assert_eq!(
        code(|v| v["path_groups"][1]["group_id"] = json!("items_read")),
        ErrorCode::TemplateGroupDuplicate
    );
}

#[test]
fn path_patterns() {
    assert_eq!(
        code(|v| group(v)["path_patterns"] = json!(["/v1/x"])),
        ErrorCode::TemplatePathPatternUnanchored
    );
    assert_eq!(
        code(|v| group(v)["path_patterns"] = json!(["^/v1/x"])),
        ErrorCode::TemplatePathPatternUnanchored
    );
    assert_eq!(
        code(|v| group(v)["path_patterns"] = json!(["^/.*$"])),
        ErrorCode::TemplatePathPatternOverbroad
    );
    assert_eq!(
        code(|v| group(v)["path_patterns"] = json!(["^/v1/[$"])),
        ErrorCode::TemplatePathPatternInvalid
    );
    // ASCII mode: \w never matches non-ASCII, and a Unicode class is refused outright.
    assert_eq!(
        code(|v| group(v)["path_patterns"] = json!([r"^/\p{Greek}$"])),
        ErrorCode::TemplatePathPatternInvalid
    );
}

#[test]
fn header_lists() {
    for name in [
        "authorization",
        "Cookie",
        "host",
        "dpop",
        "accept-encoding",
        "connection",
        "te",
        "upgrade",
        "bad name",
        "",
    ] {
        assert_eq!(
            code(|v| group(v)["header_forward_allowlist"] = json!([name])),
            ErrorCode::TemplateHeaderAllowlistInvalid,
            "{name}"
        );
        assert_eq!(
            code(|v| group(v)["response_header_allowlist"] = json!([name])),
            ErrorCode::TemplateHeaderAllowlistInvalid,
            "{name}"
        );
    }
}

#[test]
fn default_injection() {
    let t = with(|v| {
        v["default_injection"] = json!({"type": "header", "name": "x-api-key", "format": "{secret}"})
    });
    assert_eq!(t.unwrap().default_injection().unwrap().header_name(), Some("x-api-key"));
    for name in
        ["dpop", "host", "keep-alive", "x-steward-id", "content-length", "transfer-encoding", "cookie"]
    {
        assert_eq!(
            code(|v| v["default_injection"] = json!({"type": "header", "name": name, "format": "{secret}"})),
            ErrorCode::ValidationFailed,
            "{name}"
        );
    }
}

#[test]
fn first_failure_wins_in_spec_order() {
    // A bad template_id is reported before bad hosts and bad groups.
    let code = code(|v| {
        v["template_id"] = json!("nope");
        v["allowed_hosts"] = json!(["*"]);
        group(v)["path_patterns"] = json!(["x"]);
    });
    assert_eq!(code, ErrorCode::TemplateInvalid);
    let code = super::tests::code(|v| {
        v["allowed_hosts"] = json!(["*"]);
        group(v)["path_patterns"] = json!(["x"]);
    });
    assert_eq!(code, ErrorCode::TemplateHostWildcardForbidden);
}

#[test]
fn spec_example_is_valid() {
    let t = Template::from_json(&json!({
      "template_id": "tpl_openai",
      "version": 1,
      "provider": "openai",
      "description": "OpenAI responses and chat completions",
      "allowed_schemes": ["https"],
      "allowed_ports": [443],
      "allowed_hosts": ["api.openai.com"],
      "redirect_policy": {"mode": "deny"},
      "default_injection": {"type": "header", "name": "authorization", "format": "Bearer {secret}"},
      "path_groups": [{
        "group_id": "openai_responses",
        "risk_tier": "low",
        "approval_mode": "none",
        "methods": ["POST"],
        "path_patterns": ["^/v1/responses$"],
        "query_allowlist": [],
        "header_forward_allowlist": ["content-type", "accept"],
        "response_header_allowlist": ["content-type", "x-request-id"],
        "body_policy": {"max_bytes": 1048576, "content_types": ["application/json"]},
        "approval_preview": ["/model"],
        "constraints": {"allow_duplicate_query_keys": false}
      }]
    }))
    .unwrap();
    assert_eq!(t.default_injection(), Some(&Injection::default()));
    assert_eq!(t.groups()[0].body_policy().max_bytes(), 1_048_576);
}

#[test]
fn header_lists_accept_prefix_entries() {
    let t = with(|v| {
        group(v)["header_forward_allowlist"] = json!(["content-type", "X-Stainless-*", "anthropic-*"]);
        group(v)["response_header_allowlist"] = json!(["content-type", "x-ratelimit-*", "retry-after"]);
    })
    .unwrap();
    let g = &t.groups()[0];
    // Stored lowercase, as published, and shown that way (manifests serialize the list).
    assert_eq!(g.header_forward_allowlist().entries(), ["content-type", "x-stainless-*", "anthropic-*"]);
    assert_eq!(
        serde_json::to_value(g.header_forward_allowlist()).unwrap(),
        json!(["content-type", "x-stainless-*", "anthropic-*"])
    );
    for admitted in ["x-stainless-os", "X-Stainless-Retry-Count", "anthropic-version", "content-type"] {
        assert!(g.header_forward_allowlist().allows(admitted), "{admitted}");
    }
    // The stem itself, the stem without its dash, a longer word and other names are not admitted.
    for refused in ["x-stainless-", "x-stainless", "x-stainlessfoo", "anthropic", "content-length", "x-other"]
    {
        assert!(!g.header_forward_allowlist().allows(refused), "{refused}");
    }
    assert!(g.response_header_allowlist().allows("x-ratelimit-remaining-requests"));
    assert!(!g.response_header_allowlist().allows("x-stainless-os"));
    // The default response list carries the request list's prefix entries.
    let t = with(|v| group(v)["header_forward_allowlist"] = json!(["openai-*"])).unwrap();
    assert_eq!(t.groups()[0].response_header_allowlist().entries(), ["content-type", "openai-*"]);
    assert!(t.groups()[0].response_header_allowlist().allows("openai-processing-ms"));
}

#[test]
fn prefix_entries_are_validated() {
    let invalid = [
        // Fewer than 3 characters before `-*`.
        "ab-*",
        "x-*",
        "-*",
        "*",
        // Would admit a never-allowlistable name.
        "proxy-*",
        "Proxy-*",
        "accept-*",
        "keep-*",
        "transfer-*",
        // Not a token before `-*`, or a `*` anywhere else.
        "bad name-*",
        "x-*-*",
        "x-stainless*",
        "x*y",
        "x-stainless-**",
    ];
    for list in ["header_forward_allowlist", "response_header_allowlist"] {
        for entry in invalid {
            assert_eq!(
                code(|v| group(v)[list] = json!([entry])),
                ErrorCode::TemplateHeaderAllowlistInvalid,
                "{list}: {entry}"
            );
        }
        let duplicates: [&[&str]; 5] = [
            &["x-stainless-*", "X-Stainless-*"],
            &["x-stainless-*", "x-stainless-os"],
            &["x-stainless-os", "x-stainless-*"],
            &["x-ratelimit-*", "x-ratelimit-limit-*"],
            &["x-ratelimit-limit-*", "x-ratelimit-*"],
        ];
        for entries in duplicates {
            assert_eq!(
                code(|v| group(v)[list] = json!(entries)),
                ErrorCode::TemplateAllowlistDuplicate,
                "{list}: {entries:?}"
            );
        }
        // Three characters is enough; neighbours that do not admit each other are fine.
        assert!(
            with(|v| group(v)[list] = json!(["abc-*", "abcd-*", "x-ratelimit-*", "x-ratelimits"])).is_ok()
        );
    }
}
