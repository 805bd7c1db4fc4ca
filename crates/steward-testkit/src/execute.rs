//! What every "served deployment with a workload, an integration and an allowed group, and an
//! execute call" fixture shares, whichever way it runs Steward (in process in the server's tests, as
//! `steward serve` processes in the CLI's): the egress settings that route [`API_HOST`] and its
//! siblings to a [`TestUpstream`] and trust its CA, the `items` template, the admin API bodies
//! (integration, policy rule), the execute request and call bodies, and audit event summaries.
//!
//! How the fixture reaches Steward (a `TestServer`, a cluster node) stays with each crate.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::TestUpstream;
use crate::templates::{TemplateBuilder, items_read, items_write, template};

pub use crate::templates::API_HOST;

/// `egress.static_hosts`: [`API_HOST`] and `other.example.test` on 127.0.0.1 (where the upstream
/// listens), `private.example.test` on a private address and `metadata.example.test` on 127.0.0.1
/// and the metadata address (both denied by the egress guard).
pub const STATIC_HOSTS: &str = r#"{"api.example.test"=["127.0.0.1"], "other.example.test"=["127.0.0.1"], "private.example.test"=["10.1.2.3"], "metadata.example.test"=["127.0.0.1", "169.254.169.254"]}"#;

/// The hosts of the fixture template: [`API_HOST`] and the two that resolve to denied addresses.
pub const HOSTS: [&str; 3] = [API_HOST, "private.example.test", "metadata.example.test"];

/// The environment that sends Steward's egress to `upstream`: [`STATIC_HOSTS`], 127.0.0.1 allowed,
/// and the upstream's CA (written to `dir/upstream-ca.pem`) trusted.
pub fn egress_env(upstream: &TestUpstream, dir: &Path) -> Vec<(String, String)> {
    let ca = dir.join("upstream-ca.pem");
    std::fs::write(&ca, &upstream.ca_pem).expect("write the upstream CA");
    vec![
        ("STEWARD_EGRESS__STATIC_HOSTS".to_owned(), STATIC_HOSTS.to_owned()),
        ("STEWARD_EGRESS__ALLOW_CIDRS".to_owned(), r#"["127.0.0.1/32"]"#.to_owned()),
        ("STEWARD_EGRESS__EXTRA_CA_FILES".to_owned(), format!("[{:?}]", ca.display().to_string())),
    ]
}

/// The fixture's tenant template on the upstream's `port`: `items_read` (`GET /v1/items`, query
/// keys `query`, forwarded `headers`, `response_headers` kept) and `items_write` (`POST /v1/items`,
/// approval required, preview `/name`).
pub fn items_template(
    template_id: &str,
    provider: &str,
    tenant: &str,
    port: u16,
    read: (&[&str], &[&str], &[&str]),
) -> TemplateBuilder {
    let (query, headers, response_headers) = read;
    template(template_id, provider)
        .tenant(tenant)
        .port(port)
        .group(items_read().query(query).headers(headers).response_headers(response_headers))
        .group(items_write().preview(&["/name"]))
}

/// `POST /v1/tenants/{tenant}/integrations`: a uniquely named (`{provider}-…`) integration of
/// `template_id` with the API key `secret`.
pub fn integration(provider: &str, template_id: &str, secret: &str) -> Value {
    json!({
        "name": format!("{provider}-{}", uuid::Uuid::new_v4().simple()),
        "provider": provider,
        "template_id": template_id,
        "secret": {"type": "api_key", "value": secret},
    })
}

/// `POST /v1/policies`: a `rule_type` rule on `integration_id` for `action_group`/`method` on `host`,
/// with `extra`'s top-level fields (`constraints`, `rate_limit`, …); a `scope` object in `extra` is
/// merged into the scope.
pub fn policy_rule(
    tenant: &str,
    integration_id: &str,
    rule_type: &str,
    action_group: &str,
    method: &str,
    host: &str,
    extra: Value,
) -> Value {
    let mut rule = json!({
        "rule_type": rule_type,
        "scope": {
            "tenant_id": tenant, "integration_id": integration_id,
            "action_group": action_group, "method": method, "host": host,
        },
    });
    if let Value::Object(mut extra) = extra {
        if let Some(Value::Object(scope)) = extra.remove("scope")
            && let Some(rule_scope) = rule["scope"].as_object_mut()
        {
            rule_scope.extend(scope);
        }
        if let Some(rule) = rule.as_object_mut() {
            rule.extend(extra);
        }
    }
    rule
}

/// `https://{host}:{port}{path_and_query}`.
pub fn url(host: &str, port: u16, path_and_query: &str) -> String {
    format!("https://{host}:{port}{path_and_query}")
}

/// An execute request: a GET of `url` with `headers`.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Value {
    let headers: Vec<Value> = headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
    json!({"method": "GET", "url": url, "headers": headers})
}

/// An execute request: a POST of `url` with a JSON body.
pub fn post_json(url: &str, body: &Value) -> Value {
    json!({
        "method": "POST",
        "url": url,
        "headers": [{"name": "content-type", "value": "application/json"}],
        "body_base64": STANDARD.encode(body.to_string()),
    })
}

/// The body of `POST /v1/execute`.
pub fn execute_body(integration_id: &str, request: Value, client_context: Option<Value>) -> Value {
    let mut body = json!({"integration_id": integration_id, "request": request});
    if let Some(context) = client_context {
        body["client_context"] = context;
    }
    body
}

/// The headers of `POST /v1/execute`: `authorization`, JSON, `x-correlation-id`.
pub fn execute_headers<'a>(authorization: &'a str, correlation_id: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("authorization", authorization),
        ("content-type", "application/json"),
        ("x-correlation-id", correlation_id),
    ]
}

/// `(event_type, decision, reason_code)` of each audit event (JSON), in the given order.
pub fn event_kinds(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|e| {
            let text = |f: &str| e[f].as_str().unwrap_or("").to_owned();
            (text("event_type"), text("decision"), text("reason_code"))
        })
        .collect()
}

/// `(event_type, decision, reason_code)` triples, to compare with [`event_kinds`].
pub fn kinds(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_in_extra_is_merged_and_other_fields_are_added() {
        let rule = policy_rule(
            "t_1",
            "i_1",
            "allow",
            "items_read",
            "GET",
            API_HOST,
            json!({"scope": {"workload_id": "w_1"}, "rate_limit": {"limit": 1}}),
        );
        assert_eq!(
            rule,
            json!({"rule_type": "allow", "rate_limit": {"limit": 1}, "scope": {"tenant_id": "t_1",
                "integration_id": "i_1", "action_group": "items_read", "method": "GET", "host": API_HOST,
                "workload_id": "w_1"}})
        );
    }

    #[test]
    fn requests_and_summaries() {
        let post = post_json(&url(API_HOST, 8443, "/v1/items"), &json!({"name": "x"}));
        assert_eq!(post["url"], "https://api.example.test:8443/v1/items");
        assert_eq!(STANDARD.decode(post["body_base64"].as_str().unwrap()).unwrap(), br#"{"name":"x"}"#);
        assert_eq!(get("u", &[("accept", "a")])["headers"], json!([{"name": "accept", "value": "a"}]));
        let body = execute_body("i_1", json!({}), Some(json!({"source": "t"})));
        assert_eq!(body["client_context"]["source"], "t");
        assert!(execute_body("i_1", json!({}), None).get("client_context").is_none());
        let events = [json!({"event_type": "execute", "decision": "allow"})];
        assert_eq!(event_kinds(&events), kinds(&[("execute", "allow", "")]));
    }
}
