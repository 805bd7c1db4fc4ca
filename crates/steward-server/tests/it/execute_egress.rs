//! Execute refusals on the way out: the SSRF guard, upstream answers that are refused (redirects,
//! compressed, streaming, oversized, hanging), host and injection binding of the secret, a secret
//! that fails to decrypt, and a failing audit store — each with the upstream seeing nothing when
//! nothing may be sent.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::execute::{Exec, HOSTS, SECRET, expect, fixture, kinds, template};
use common::workload::owner;
use http::Method;
use serde_json::json;
use steward_testkit::http_client::TestResponse;

#[tokio::test]
async fn ssrf_guard_refuses_private_and_metadata_addresses() {
    let (f, _dir) = fixture(&[]).await;
    for host in ["private.example.test", "metadata.example.test"] {
        f.policy_on(host, "allow", "items_read", "GET", json!({})).await;
    }
    let response = f.execute(f.get_on("private.example.test"), None, "c-private").await;
    expect(&response, 403, "resolved_ip_denied_private_range");
    assert_eq!(
        f.event_kinds("c-private").await,
        kinds(&[("execute", "denied", "resolved_ip_denied_private_range")])
    );
    // One of the answers is allowed by egress.allow_cidrs (127.0.0.1); the metadata address is
    // never exemptible, and any denied address denies the request.
    let response = f.execute(f.get_on("metadata.example.test"), None, "c-metadata").await;
    expect(&response, 403, "resolved_ip_denied_metadata_range");
    // No setting reaches a metadata address, so none is suggested.
    let message = response.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("169.254.169.254") && message.contains("no setting"), "{message}");
    assert!(!message.contains("add "), "{message}");
    assert_eq!(f.upstream.count(), 0);
    f.server.stop().await;
}

#[track_caller]
fn message_names(response: &TestResponse, status: u16, code: &str, fixes: &[&str]) {
    expect(response, status, code);
    let message = response.json()["message"].as_str().unwrap().to_owned();
    for fix in fixes {
        assert!(message.contains(fix), "{code}: the message does not name {fix:?}: {message}");
    }
}

#[tokio::test]
async fn ssrf_refusals_name_egress_allow_cidrs() {
    // Without the loopback exemption the fixture's upstream (127.0.0.1) is refused, and so is the
    // private address; each message names the setting and the exact entry that would exempt it.
    let (f, _dir) = fixture(&[("STEWARD_EGRESS__ALLOW_CIDRS", "[]")]).await;
    f.allow_reads().await;
    f.policy_on("private.example.test", "allow", "items_read", "GET", json!({})).await;
    let response = f.execute(f.get("", &[]), None, "c-loopback").await;
    message_names(
        &response,
        403,
        "resolved_ip_denied_loopback",
        &["api.example.test", "a loopback address", "\"127.0.0.1/32\"", "egress.allow_cidrs"],
    );
    let response = f.execute(f.get_on("private.example.test"), None, "c-private").await;
    message_names(
        &response,
        403,
        "resolved_ip_denied_private_range",
        &["a private address", "\"10.1.2.3/32\"", "egress.allow_cidrs"],
    );
    assert_eq!(f.upstream.count(), 0);
    f.server.stop().await;
}

#[tokio::test]
async fn untrusted_certificates_and_failed_resolutions_name_their_settings() {
    use steward_testkit::dns::{DnsServer, Failure, SERVFAIL};
    // A DNS server that fails one name and knows no other; only api.example.test is a static host,
    // and the upstream's CA is not trusted.
    let dns = DnsServer::start_with_failures(
        Default::default(),
        vec![Failure::new("private.example.test", None, SERVFAIL)],
    )
    .await;
    let servers = format!("[\"{}\"]", dns.addr);
    let (f, _dir) = fixture(&[
        ("STEWARD_EGRESS__EXTRA_CA_FILES", "[]"),
        ("STEWARD_EGRESS__STATIC_HOSTS", r#"{"api.example.test"=["127.0.0.1"]}"#),
        ("STEWARD_EGRESS__DNS_SERVERS", &servers),
    ])
    .await;
    f.allow_reads().await;
    for host in ["private.example.test", "metadata.example.test"] {
        f.policy_on(host, "allow", "items_read", "GET", json!({})).await;
    }

    let response = f.execute(f.get("", &[]), None, "c-untrusted").await;
    message_names(
        &response,
        502,
        "upstream_network_error",
        &["certificate", "was not trusted", "egress.extra_ca_files"],
    );
    assert_eq!(f.upstream.count(), 0, "nothing is sent over an unverified connection");

    // NXDOMAIN: no address.
    let response = f.execute(f.get_on("metadata.example.test"), None, "c-empty").await;
    message_names(
        &response,
        502,
        "dns_resolution_empty",
        &["metadata.example.test", "egress.static_hosts", "egress.dns_servers"],
    );
    // SERVFAIL: the resolution failed.
    let response = f.execute(f.get_on("private.example.test"), None, "c-failed").await;
    message_names(
        &response,
        502,
        "dns_resolution_failed",
        &["private.example.test", "SERVFAIL", "egress.dns_servers", "egress.static_hosts"],
    );
    assert!(dns.query_count() >= 2);
    f.server.stop().await;
}

/// Upstream status, headers and body; expected status and code.
type Case = (u16, &'static [(&'static str, &'static str)], Vec<u8>, u16, &'static str);

#[tokio::test]
async fn refused_upstream_answers() {
    let (f, _dir) = fixture(&[("STEWARD_EGRESS__MAX_RESPONSE_BYTES", "1024")]).await;
    f.allow_reads().await;
    let cases: [Case; 4] = [
        (302, &[("location", "https://evil.example/")], Vec::new(), 502, "redirect_denied"),
        (200, &[("content-encoding", "gzip")], vec![0x1f, 0x8b], 502, "upstream_encoding_not_supported"),
        (
            200,
            &[("content-type", "text/event-stream")],
            b"data: x\n\n".to_vec(),
            502,
            "upstream_streaming_not_supported",
        ),
        (200, &[("content-type", "application/json")], vec![b'a'; 4096], 502, "upstream_response_too_large"),
    ];
    for (n, (status, headers, body, expected_status, code)) in cases.into_iter().enumerate() {
        f.upstream.respond(status, headers, &body);
        let correlation = format!("c-refused-{n}");
        let response = f.execute(f.get("", &[]), None, &correlation).await;
        expect(&response, expected_status, code);
        assert_eq!(
            f.event_kinds(&correlation).await,
            kinds(&[("execute", "allowed", "policy_allow"), ("execute_result", "", code)])
        );
    }
    // 304 passes through.
    f.upstream.respond(304, &[], b"");
    let response = f.execute(f.get("", &[]), None, "c-304").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(response.json()["upstream"]["status_code"], 304);
    f.server.stop().await;
}

#[tokio::test]
async fn a_hanging_upstream_times_out() {
    let (f, _dir) = fixture(&[("STEWARD_EGRESS__TOTAL_TIMEOUT_MS", "1500")]).await;
    f.allow_reads().await;
    f.upstream.set(steward_testkit::Reply::Hang);
    let started = std::time::Instant::now();
    let response = f.execute(f.get("", &[]), None, "c-hang").await;
    expect(&response, 504, "upstream_timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(
        f.event_kinds("c-hang").await,
        kinds(&[("execute", "allowed", "policy_allow"), ("execute_result", "", "upstream_timeout")])
    );
    f.server.stop().await;
}

#[tokio::test]
async fn a_new_template_host_cannot_receive_an_existing_secret() {
    let (f, _dir) = fixture(&[]).await;
    f.publish_with_host("other.example.test").await;
    f.policy_on("other.example.test", "allow", "items_read", "GET", json!({})).await;
    let response = f.execute(f.get_on("other.example.test"), None, "c-hosts").await;
    expect(&response, 403, "integration_hosts_changed");
    assert_eq!(f.event_kinds("c-hosts").await, kinds(&[("execute", "denied", "integration_hosts_changed")]));
    assert_eq!(f.upstream.count(), 0);
    // An admin writes the secret again: now it is bound to the new host too.
    write_secret_again(&f).await;
    let response = f.execute(f.get_on("other.example.test"), None, "c-hosts-2").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(f.upstream.count(), 1);
    f.server.stop().await;
}

/// `PUT /v1/integrations/{id}/secret` with the fixture's secret.
async fn write_secret_again(f: &Exec) {
    let (status, written) = owner(
        &f.server,
        Method::PUT,
        &format!("/v1/integrations/{}/secret", f.integration_id),
        Some(json!({"type": "api_key", "value": SECRET})),
    )
    .await;
    assert_eq!(status, 200, "{written}");
}

#[tokio::test]
async fn a_patched_injection_cannot_send_an_existing_secret() {
    let (f, _dir) = fixture(&[]).await;
    f.allow_reads().await;
    let response = f.execute(f.get("", &[]), None, "c-inj-before").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(f.upstream.last().header("authorization"), Some(format!("Bearer {SECRET}").as_str()));

    // Spelling out the injection the secret already goes out with changes nothing.
    let path = format!("/v1/integrations/{}", f.integration_id);
    let bearer = json!({"type": "header", "name": "authorization", "format": "Bearer {secret}"});
    let (status, patched) = owner(&f.server, Method::PATCH, &path, Some(json!({"injection": bearer}))).await;
    assert_eq!(status, 200, "{patched}");
    let response = f.execute(f.get("", &[]), None, "c-inj-same").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(f.upstream.count(), 2);

    // Another injection: the secret written for the old one is never sent the new way.
    let api_key = json!({"type": "header", "name": "x-api-key", "format": "{secret}"});
    let (status, patched) =
        owner(&f.server, Method::PATCH, &path, Some(json!({"injection": api_key.clone()}))).await;
    assert_eq!(status, 200, "{patched}");
    // The admin sees what the secret is bound to and what the integration now asks for.
    assert_eq!((&patched["injection"], &patched["bound_injection"]), (&api_key, &bearer), "{patched}");
    let response = f.execute(f.get("", &[]), None, "c-inj-changed").await;
    expect(&response, 403, "integration_hosts_changed");
    assert_eq!(
        f.event_kinds("c-inj-changed").await,
        kinds(&[("execute", "denied", "integration_hosts_changed")])
    );
    assert_eq!(f.upstream.count(), 2, "the upstream received nothing new");

    // Writing the secret again binds it to the new injection.
    write_secret_again(&f).await;
    let (_, view) = owner(&f.server, Method::GET, &path, None).await;
    assert_eq!(view["bound_injection"], api_key, "{view}");
    let response = f.execute(f.get("", &[]), None, "c-inj-rewritten").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(f.upstream.count(), 3);
    let last = f.upstream.last();
    assert_eq!(last.header("x-api-key"), Some(SECRET));
    assert_eq!(last.header("authorization"), None);
    f.server.stop().await;
}

#[tokio::test]
async fn a_new_template_default_injection_cannot_send_an_existing_secret() {
    let (f, _dir) = fixture(&[]).await;
    f.allow_reads().await;
    let response = f.execute(f.get("", &[]), None, "c-def-before").await;
    assert_eq!(response.status, 200, "{}", response.json());
    // Version 2 keeps the hosts but sends the secret as a query parameter: the integration follows
    // the latest version, its secret was written for the bearer header.
    let query = json!({"type": "query", "name": "key"});
    let (status, published) = owner(
        &f.server,
        Method::POST,
        "/v1/templates",
        Some(template(&f.tenant, f.upstream.port(), 2, &HOSTS, Some(&query))),
    )
    .await;
    assert_eq!(status, 201, "{published}");
    let response = f.execute(f.get("", &[]), None, "c-def-changed").await;
    expect(&response, 403, "integration_hosts_changed");
    assert_eq!(f.upstream.count(), 1);
    // Pinning version 1 again restores what the secret was written for.
    let path = format!("/v1/integrations/{}", f.integration_id);
    let (status, patched) =
        owner(&f.server, Method::PATCH, &path, Some(json!({"template_version": 1}))).await;
    assert_eq!(status, 200, "{patched}");
    let response = f.execute(f.get("", &[]), None, "c-def-pinned").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(f.upstream.count(), 2);
    // Following the latest again and writing the secret: it goes out as the query parameter.
    let (status, patched) =
        owner(&f.server, Method::PATCH, &path, Some(json!({"template_version": null}))).await;
    assert_eq!(status, 200, "{patched}");
    write_secret_again(&f).await;
    let response = f.execute(f.get("", &[]), None, "c-def-rewritten").await;
    assert_eq!(response.status, 200, "{}", response.json());
    let last = f.upstream.last();
    assert_eq!(last.target, format!("/v1/items?key={SECRET}"));
    assert_eq!(last.header("authorization"), None);
    f.server.stop().await;
}

#[tokio::test]
async fn a_secret_that_fails_to_decrypt_is_unavailable() {
    let (f, _dir) = fixture(&[]).await;
    f.allow_reads().await;
    let db = f.db().await;
    // Copy another envelope (the audit key's) onto the secret's row: it no longer opens under the
    // secret's AAD context.
    sqlx::query(
        "UPDATE envelopes SET body = (SELECT e.body FROM envelopes e JOIN deployment d \
         ON e.envelope_id = d.audit_key_envelope_id) \
         WHERE envelope_id IN (SELECT envelope_id FROM secret_versions WHERE integration_id = ?)",
    )
    .bind(&f.integration_id)
    .execute(&db)
    .await
    .unwrap();
    let response = f.execute(f.get("", &[]), None, "c-tampered").await;
    expect(&response, 503, "integration_secret_unavailable");
    assert_eq!(
        f.event_kinds("c-tampered").await,
        kinds(&[("execute", "denied", "integration_secret_unavailable")])
    );
    assert_eq!(f.upstream.count(), 0);
    f.server.stop().await;
}

#[tokio::test]
async fn a_failing_audit_store_stops_the_call_before_the_upstream() {
    let (f, _dir) = fixture(&[]).await;
    f.allow_reads().await;
    let response = f.execute(f.get("", &[]), None, "c-before").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(f.upstream.count(), 1);
    let db = f.db().await;
    sqlx::query("ALTER TABLE audit_events RENAME TO audit_events_gone").execute(&db).await.unwrap();
    let response = f.execute(f.get("", &[]), None, "c-audit-down").await;
    expect(&response, 503, "audit_write_failed");
    assert_eq!(f.upstream.count(), 1, "nothing may reach the upstream when the intent is not on record");
    sqlx::query("ALTER TABLE audit_events_gone RENAME TO audit_events").execute(&db).await.unwrap();
}

#[tokio::test]
async fn execute_result_lists_every_validated_address() {
    // api.example.test resolves (static_hosts) to two loopback addresses, both allowed; the upstream
    // listens on 127.0.0.1 only, so the forwarder is refused by 127.0.0.2 and connects to the second.
    let (f, _dir) = fixture(&[
        ("STEWARD_EGRESS__STATIC_HOSTS", r#"{"api.example.test"=["127.0.0.2", "127.0.0.1"]}"#),
        ("STEWARD_EGRESS__ALLOW_CIDRS", r#"["127.0.0.0/8"]"#),
    ])
    .await;
    f.allow_reads().await;
    let response = f.execute(f.get("", &[]), None, "c-two-addresses").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(f.upstream.count(), 1);
    let events = f.events("c-two-addresses").await;
    assert_eq!(
        f.event_kinds("c-two-addresses").await,
        kinds(&[("execute", "allowed", "policy_allow"), ("execute_result", "", "")])
    );
    assert_eq!(events[0]["metadata"]["validated_ips"], json!(["127.0.0.2", "127.0.0.1"]));
    assert_eq!(events[1]["metadata"]["resolved_ips"], json!(["127.0.0.2", "127.0.0.1"]));
    assert_eq!(events[1]["metadata"]["connected_ip"], "127.0.0.1");
    f.server.stop().await;
}

#[tokio::test]
async fn ipv6_literals_meet_across_spellings_and_the_guard_judges_the_address() {
    // The template lists [::127.0.0.1], the rule names [0:0:0:0:0:0:7f00:1], the request asks for
    // [::7F00:1]: all three are ::7f00:1 in RFC 5952 form, so the request passes the host allowlist
    // and the policy, and the SSRF guard then refuses the address (IPv4-compatible: reserved).
    let (f, _dir) = fixture(&[]).await;
    f.publish_with_host("[::127.0.0.1]").await;
    let (status, written) = owner(
        &f.server,
        Method::PUT,
        &format!("/v1/integrations/{}/secret", f.integration_id),
        Some(json!({"type": "api_key", "value": SECRET})),
    )
    .await;
    assert_eq!(status, 200, "{written}");
    f.policy_on("[0:0:0:0:0:0:7f00:1]", "allow", "items_read", "GET", json!({})).await;
    let request = json!({"method": "GET", "url": f.url("[::7F00:1]", "/v1/items")});
    let response = f.execute(request, None, "c-v6").await;
    expect(&response, 403, "resolved_ip_denied_reserved");
    let events = f.events("c-v6").await;
    assert_eq!(f.event_kinds("c-v6").await, kinds(&[("execute", "denied", "resolved_ip_denied_reserved")]));
    assert_eq!(events[0]["destination"]["host"], "[::7f00:1]", "{}", events[0]);
    assert_eq!(f.upstream.count(), 0);
    f.server.stop().await;
}
