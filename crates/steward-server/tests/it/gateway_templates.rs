//! The template and policy pieces forward mode and remote MCP servers rely on, end to end through
//! `POST /v1/execute` against a real HTTPS upstream: prefix entries in both header allowlists
//! (`spec/gateway.md` §1), a deny rule constrained to one MCP tool (`spec/mcp.md` §2) and the
//! reserved `_` integration names (`spec/gateway.md` §2).

#![allow(clippy::unwrap_used)]

use crate::common;

use common::execute::{Exec, HOSTS, Options, expect, kinds, template};
use common::workload::owner;
use http::Method;
use serde_json::json;

/// Publishes version 2 of the fixture template with `items_read`'s header lists replaced.
async fn publish_read_allowlists(f: &Exec, request: &[&str], response: &[&str]) {
    let mut body = template(&f.tenant, f.upstream.port(), 2, &HOSTS, None);
    body["path_groups"][0]["header_forward_allowlist"] = json!(request);
    body["path_groups"][0]["response_header_allowlist"] = json!(response);
    let (status, published) = owner(&f.server, Method::POST, "/v1/templates", Some(body)).await;
    assert_eq!(status, 201, "{published}");
}

#[tokio::test]
async fn prefix_entries_forward_request_headers_and_keep_response_headers() {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), Options::default()).await;
    publish_read_allowlists(&f, &["accept", "x-stainless-*"], &["content-type", "x-ratelimit-*"]).await;
    f.allow_reads().await;
    f.upstream.respond(
        200,
        &[
            ("content-type", "application/json"),
            ("x-ratelimit-remaining-requests", "99"),
            ("x-ratelimit-reset-tokens", "6ms"),
            ("x-ratelimitless", "no"),
            ("x-request-id", "not-listed-in-v2"),
        ],
        br#"{"ok":true}"#,
    );
    let headers = [
        ("X-Stainless-OS", "Linux"),
        ("x-stainless-retry-count", "0"),
        ("x-stainless", "not-admitted"),
        ("x-stainlessly", "not-admitted"),
        ("x-other", "not-admitted"),
        ("accept", "application/json"),
    ];
    let response = f.execute(f.get("", &headers), None, "corr-prefix").await;
    assert_eq!(response.status, 200, "{}", response.json());

    let received = f.upstream.last();
    assert_eq!(received.header("x-stainless-os"), Some("Linux"));
    assert_eq!(received.header("x-stainless-retry-count"), Some("0"));
    for name in ["x-stainless", "x-stainlessly", "x-other"] {
        assert!(received.header(name).is_none(), "{name} reached the upstream: {:?}", received.names());
    }

    let body = response.json();
    let returned: Vec<(&str, &str)> = body["upstream"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].as_str().unwrap(), h["value"].as_str().unwrap()))
        .collect();
    assert!(returned.contains(&("x-ratelimit-remaining-requests", "99")), "{returned:?}");
    assert!(returned.contains(&("x-ratelimit-reset-tokens", "6ms")), "{returned:?}");
    let names: Vec<&str> = returned.iter().map(|(n, _)| *n).collect();
    assert!(!names.contains(&"x-ratelimitless") && !names.contains(&"x-request-id"), "{names:?}");
    f.server.stop().await;
}

#[tokio::test]
async fn a_prefix_entry_admitting_a_never_allowlistable_name_is_refused_on_publish() {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), Options::default()).await;
    for (request, response, code) in [
        (&["proxy-*"][..], &["content-type"][..], "template_header_allowlist_invalid"),
        (&["accept"][..], &["xy-*"][..], "template_header_allowlist_invalid"),
        (&["x-stainless-*", "x-stainless-os"][..], &["content-type"][..], "template_allowlist_duplicate"),
    ] {
        let mut body = template(&f.tenant, f.upstream.port(), 2, &HOSTS, None);
        body["path_groups"][0]["header_forward_allowlist"] = json!(request);
        body["path_groups"][0]["response_header_allowlist"] = json!(response);
        let (status, refused) = owner(&f.server, Method::POST, "/v1/templates", Some(body)).await;
        assert_eq!((status, refused["error"].as_str().unwrap()), (400, code), "{refused}");
        assert!(refused["message"].as_str().unwrap().contains("path_groups[0]"), "{refused}");
    }
    f.server.stop().await;
}

fn tool_call(name: &str) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": {}}})
}

#[tokio::test]
async fn a_deny_rule_constrained_to_one_tool_blocks_only_that_tool() {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), Options::default()).await;
    f.policy("allow", "items_write", "POST", json!({"bypass_template_approval": true})).await;
    let deny = f
        .policy(
            "deny",
            "items_write",
            "POST",
            json!({"constraints": {"body_json": [{"pointer": "/params/name", "allowed_values": ["delete_repo"]}]}}),
        )
        .await;

    let count = f.upstream.count();
    let response = f.execute(f.post(&tool_call("delete_repo")), None, "corr-tool-deny").await;
    expect(&response, 403, "policy_deny");
    assert_eq!(f.upstream.count(), count, "a denied call reached the upstream");
    assert_eq!(
        f.event_kinds("corr-tool-deny").await,
        kinds(&[("execute", "denied", "policy_deny"), ("violation", "denied", "policy_deny")])
    );
    assert_eq!(f.events("corr-tool-deny").await[0]["policy"]["rule_id"], deny.as_str());

    let response = f.execute(f.post(&tool_call("list_repos")), None, "corr-tool-allow").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(response.json()["status"], "executed");
    assert_eq!(f.upstream.count(), count + 1);
    let received: serde_json::Value = serde_json::from_slice(&f.upstream.last().body).unwrap();
    assert_eq!(received["params"]["name"], "list_repos");
    f.server.stop().await;
}

#[tokio::test]
async fn integration_names_beginning_with_an_underscore_are_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), Options::default()).await;
    let path = format!("/v1/tenants/{}/integrations", f.tenant);
    for name in ["_host", "_steward", "_", " _x"] {
        let body = json!({"name": name, "provider": "exec", "template_id": "tpl_exec",
                          "secret": {"type": "api_key", "value": "sk-reserved-name-0001"}});
        let (status, refused) = owner(&f.server, Method::POST, &path, Some(body)).await;
        assert_eq!((status, refused["error"].as_str().unwrap()), (400, "validation_failed"), "{refused}");
        assert!(refused["message"].as_str().unwrap().contains("reserved for gateway routes"), "{refused}");
    }
    // An underscore elsewhere is fine.
    let body = json!({"name": "my_api", "provider": "exec", "template_id": "tpl_exec",
                      "secret": {"type": "api_key", "value": "sk-reserved-name-0001"}});
    let (status, created) = owner(&f.server, Method::POST, &path, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    f.server.stop().await;
}
