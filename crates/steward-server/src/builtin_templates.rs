//! The built-in templates (`builtin_templates/*.json`, embedded at build time), installed under
//! `global` as version 1 by `steward init` and by `POST /v1/templates/install-builtin`.
//!
//! They are narrow by design: each group admits a handful of documented endpoints, so an operator
//! can bind an integration and write allow rules without first writing a template. A test checks that
//! every one passes the same validation as a published template.

use steward_canon::Template;
use steward_store::Store;
use steward_store::StoreError;
use steward_store::catalog::{PublishOutcome, TemplateVersionRecord};
use steward_types::{GLOBAL_TENANT, Timestamp};

/// `(template_id, JSON)` of every built-in template.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    ("tpl_openai", include_str!("../builtin_templates/tpl_openai.json")),
    ("tpl_anthropic", include_str!("../builtin_templates/tpl_anthropic.json")),
    ("tpl_gmail", include_str!("../builtin_templates/tpl_gmail.json")),
    ("tpl_google_calendar", include_str!("../builtin_templates/tpl_google_calendar.json")),
    ("tpl_github", include_str!("../builtin_templates/tpl_github.json")),
    ("tpl_slack", include_str!("../builtin_templates/tpl_slack.json")),
    // A documented example (spec/mcp.md §2): its host is a placeholder, so it is copied, not bound.
    ("tpl_mcp_remote", include_str!("../builtin_templates/tpl_mcp_remote.json")),
];

/// Which built-ins an install wrote and which were there already.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuiltinReport {
    pub installed: Vec<String>,
    pub already_present: Vec<String>,
}

/// Why the built-ins could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// A built-in failed validation: a bug in this build, caught by the crate's tests.
    #[error("built-in template {id} is invalid: {detail}")]
    Invalid { id: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every built-in, parsed and validated.
pub fn builtin_templates() -> Result<Vec<Template>, BuiltinError> {
    BUILTIN_TEMPLATES
        .iter()
        .map(|(id, text)| {
            let invalid = |detail: String| BuiltinError::Invalid { id: (*id).to_owned(), detail };
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
            Template::from_json(&value).map_err(|e| invalid(e.to_string()))
        })
        .collect()
}

/// The store record of a template published by `owner` at `now`.
pub fn template_record(owner: &str, template: &Template, now: Timestamp) -> TemplateVersionRecord {
    TemplateVersionRecord {
        owner: owner.to_owned(),
        template_id: template.id().to_owned(),
        version: template.version(),
        provider: template.provider().to_owned(),
        body: template.canonical_json(),
        created_at: now,
    }
}

/// Installs every built-in under `global`. Idempotent: a built-in whose id already has a global
/// version (ours, or one an owner published) is reported as already present and left alone.
pub async fn install_builtin_templates(
    store: &dyn Store,
    now: Timestamp,
) -> Result<BuiltinReport, BuiltinError> {
    let mut report = BuiltinReport::default();
    for template in builtin_templates()? {
        let record = template_record(GLOBAL_TENANT, &template, now);
        let outcome = match store.publish_template(&record).await {
            // A concurrent install won the race: that version is there now.
            Err(StoreError::Conflict(_)) => PublishOutcome::VersionExists,
            other => other?,
        };
        let id = template.id().to_owned();
        match outcome {
            PublishOutcome::Published => report.installed.push(id),
            _ => report.already_present.push(id),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_canon::{CanonContext, ExecuteRequest, Method, canonicalize};

    #[test]
    fn every_builtin_passes_validation_under_its_file_name() {
        let templates = builtin_templates().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(templates.len(), BUILTIN_TEMPLATES.len());
        for (template, (id, _)) in templates.iter().zip(BUILTIN_TEMPLATES) {
            assert_eq!(template.id(), *id);
            assert_eq!(template.version(), 1);
        }
    }

    /// Paths each built-in group is meant for: every pattern of every group is matched by at least
    /// one of them (checked below), so a new pattern cannot go untested.
    const SAMPLES: &[(&str, &[&str])] = &[
        (
            "tpl_openai",
            &[
                "/v1/responses",
                "/v1/chat/completions",
                "/v1/embeddings",
                "/v1/models",
                "/v1/models/ft:gpt-4o-mini-2024-07-18:acme::A1b2C3",
                "/v1/responses/resp_67ccd2bed1ec8190b14f964abc054267",
                "/v1/responses/resp_67ccd2bed1ec8190b14f964abc054267/input_items",
                "/v1/responses/resp_67ccd2bed1ec8190b14f964abc054267/cancel",
            ],
        ),
        (
            "tpl_anthropic",
            &[
                "/v1/messages",
                "/v1/messages/count_tokens",
                "/v1/models",
                "/v1/models/claude-3-5-sonnet-20241022",
            ],
        ),
        ("tpl_mcp_remote", &["/mcp"]),
        (
            "tpl_gmail",
            &[
                "/gmail/v1/users/me/messages",
                "/gmail/v1/users/me/messages/18c2f0a1b2c3d4e5",
                "/gmail/v1/users/me/threads",
                "/gmail/v1/users/me/threads/18c2f0a1b2c3d4e5",
                "/gmail/v1/users/me/labels",
                "/gmail/v1/users/me/messages/send",
            ],
        ),
        (
            "tpl_google_calendar",
            &[
                "/calendar/v3/users/me/calendarList",
                "/calendar/v3/calendars/primary/events",
                "/calendar/v3/calendars/team%23ops@group.calendar.google.com/events",
                "/calendar/v3/calendars/primary/events/evt123abc",
            ],
        ),
        (
            "tpl_github",
            &[
                "/user",
                "/repos/octo-org/hello.world",
                "/repos/octo-org/hello.world/issues",
                "/repos/octo-org/hello.world/pulls/42",
                "/repos/octo-org/hello.world/issues/42/comments",
                "/repos/octo-org/hello.world/pulls/42/files",
                "/repos/octo-org/hello.world/pulls/42/commits",
            ],
        ),
        ("tpl_slack", &["/api/chat.postMessage"]),
    ];

    /// What an attacker puts in place of one segment to leave it through an encoded separator.
    const INJECTIONS: &[&str] = &[
        "..%2F..%2Fadmin",
        "..%2f..%2f..%2fadmin",
        "%2e%2e%2fadmin",
        "%2E%2e%2F%2e%2E%2Fadmin",
        ".%2e%2F",
        "x%2F..%2F..%2Fadmin",
        "x%2F..",
        "..%5Cadmin",
        "%2e%2e%5c%2e%2e%5cadmin",
        "x%2Fy",
        "x%5Cy",
        "me%2F..%2F..%2Fusers%2Fother",
    ];

    const METHODS: [Method; 6] =
        [Method::Get, Method::Head, Method::Post, Method::Put, Method::Patch, Method::Delete];

    fn request(method: Method, host: &str, path: &str) -> ExecuteRequest {
        ExecuteRequest {
            method,
            url: format!("https://{host}{path}"),
            headers: Vec::new(),
            body_base64: None,
        }
    }

    fn ctx() -> CanonContext {
        CanonContext::new(
            steward_types::TenantId::parse("t_builtin").unwrap(),
            steward_types::WorkloadId::parse("w_builtin").unwrap(),
            steward_types::IntegrationId::parse("i_builtin").unwrap(),
            1 << 20,
        )
    }

    fn builtin(id: &str) -> Template {
        builtin_templates()
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .find(|t| t.id() == id)
            .unwrap_or_else(|| panic!("no built-in {id}"))
    }

    /// What the official SDKs send and read (spec/gateway.md §1): every group of the LLM templates
    /// forwards their headers, the LLM groups take 32 MiB bodies, and the response headers they read
    /// come back.
    #[test]
    fn the_llm_templates_admit_what_the_official_sdks_send_and_read() {
        let common = ["content-type", "accept", "user-agent", "idempotency-key", "x-stainless-retry-count"];
        /// (template, request headers, response headers, groups taking 32 MiB bodies)
        type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
        let cases: [Case; 2] = [
            (
                "tpl_openai",
                &["openai-organization", "openai-project", "openai-beta", "x-stainless-os"],
                &[
                    "x-request-id",
                    "openai-processing-ms",
                    "retry-after",
                    "x-should-retry",
                    "x-ratelimit-remaining-tokens",
                ],
                &["openai_responses", "openai_chat_completions", "openai_embeddings"],
            ),
            (
                "tpl_anthropic",
                &["anthropic-version", "anthropic-beta", "x-stainless-arch"],
                &["request-id", "retry-after", "x-should-retry", "anthropic-ratelimit-requests-remaining"],
                &["anthropic_messages", "anthropic_count_tokens"],
            ),
        ];
        for (id, request, response, llm_groups) in cases {
            let template = builtin(id);
            for group in template.groups() {
                for name in common.iter().chain(request) {
                    assert!(group.header_forward_allowlist().allows(name), "{id} {}: {name}", group.id());
                }
                for name in ["content-type"].iter().chain(response) {
                    assert!(group.response_header_allowlist().allows(name), "{id} {}: {name}", group.id());
                }
                for never in ["authorization", "x-api-key", "cookie", "set-cookie"] {
                    assert!(!group.header_forward_allowlist().allows(never), "{id} {}: {never}", group.id());
                }
            }
            for group_id in llm_groups {
                let group = template.group(group_id).unwrap_or_else(|| panic!("{id}: no {group_id}"));
                assert_eq!(group.body_policy().max_bytes(), 32 * 1024 * 1024, "{id} {group_id}");
            }
        }
        // The beta client's `?beta=true` on messages and token counting.
        let anthropic = builtin("tpl_anthropic");
        for group_id in ["anthropic_messages", "anthropic_count_tokens", "anthropic_models"] {
            let group = anthropic.group(group_id).unwrap_or_else(|| panic!("no {group_id}"));
            assert!(group.query_allowlist().iter().any(|k| k == "beta"), "{group_id}");
        }
    }

    /// `tpl_mcp_remote` (spec/mcp.md §2): provider `mcp`, one group for the endpoint, the MCP headers
    /// both ways, bearer injection.
    #[test]
    fn the_mcp_example_is_the_documented_shape() {
        let template = builtin("tpl_mcp_remote");
        assert_eq!(template.provider(), "mcp");
        assert_eq!(template.hosts(), ["mcp.example.com"]);
        let injection = template.default_injection().unwrap_or_else(|| panic!("no injection"));
        assert_eq!(injection.header_name(), Some("authorization"));
        let [group] = template.groups() else { panic!("one group expected") };
        for method in [Method::Post, Method::Get, Method::Delete] {
            assert!(group.matches(method, "/mcp"), "{method}");
        }
        assert!(!group.matches(Method::Put, "/mcp"));
        assert!(!group.matches(Method::Post, "/mcp/x"));
        let request = [
            "accept",
            "content-type",
            "mcp-session-id",
            "mcp-protocol-version",
            "mcp-method",
            "mcp-name",
            "last-event-id",
        ];
        assert_eq!(group.header_forward_allowlist().entries(), request);
        assert_eq!(
            group.response_header_allowlist().entries(),
            ["content-type", "mcp-session-id", "mcp-protocol-version"]
        );
    }

    #[test]
    fn no_builtin_group_admits_an_encoded_slash_in_a_segment() {
        let templates = builtin_templates().unwrap_or_else(|e| panic!("{e}"));
        let samples: std::collections::HashMap<&str, &[&str]> = SAMPLES.iter().copied().collect();
        for template in &templates {
            let host = &template.hosts()[0];
            let paths =
                samples.get(template.id()).unwrap_or_else(|| panic!("no samples for {}", template.id()));
            // Every pattern is covered by a sample, and every sample is admitted by some group.
            for group in template.groups() {
                for pattern in group.patterns() {
                    assert!(
                        paths.iter().any(|p| pattern.is_match(p)),
                        "{}: no sample path for {} {}",
                        template.id(),
                        group.id(),
                        pattern.as_str()
                    );
                }
            }
            for path in *paths {
                assert!(
                    METHODS.iter().any(|m| canonicalize(&request(*m, host, path), template, &ctx()).is_ok()),
                    "{}: sample {path} is not admitted",
                    template.id()
                );
            }
            // Each segment of each sample, replaced by (or suffixed with) an encoded traversal:
            // never admitted by any group, under any method.
            for path in *paths {
                let segments: Vec<&str> = path.split('/').skip(1).collect();
                for i in 0..segments.len() {
                    for injection in INJECTIONS {
                        for replacement in [injection.to_string(), format!("{}{injection}", segments[i])] {
                            let mut probe = segments.clone();
                            probe[i] = &replacement;
                            let probe = format!("/{}", probe.join("/"));
                            for method in METHODS {
                                let result = canonicalize(&request(method, host, &probe), template, &ctx());
                                if let Ok(c) = result {
                                    panic!(
                                        "{}: {method} {probe} was admitted by group {} as {}",
                                        template.id(),
                                        c.group().id(),
                                        c.path()
                                    );
                                }
                            }
                        }
                    }
                }
            }
            // And no built-in group opts in to encoded slashes.
            for group in template.groups() {
                assert!(!group.allows_encoded_slashes(), "{} {}", template.id(), group.id());
            }
        }
    }
}
