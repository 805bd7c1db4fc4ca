//! Property tests (the CI stand-in for fuzzing, ARCHITECTURE.md convention 9): canonicalization is
//! idempotent, agrees with the `url` crate on host, port and path for every input it accepts, and
//! neither template compilation nor canonicalization panics on arbitrary input.

use std::net::Ipv6Addr;

use proptest::prelude::*;
use serde_json::{Value, json};
use steward_canon::{CanonContext, ExecuteRequest, HeaderField, Method, PathPattern, Template, canonicalize};
use steward_types::{IntegrationId, TenantId, WorkloadId};

fn template_json() -> Value {
    json!({
        "template_id": "tpl_prop",
        "version": 1,
        "provider": "prop",
        "allowed_schemes": ["https"],
        "allowed_ports": [443, 8443],
        "allowed_hosts": ["api.example.com", "xn--bcher-kva.example", "10.0.0.1", "[2001:db8::1]", "[::ffff:127.0.0.1]", "a_b.example"],
        "redirect_policy": {"mode": "deny"},
        "path_groups": [{
            "group_id": "broad",
            "risk_tier": "low",
            "approval_mode": "none",
            "methods": ["GET", "POST"],
            "path_patterns": ["^/(?:[^a].*)?$"],
            "query_allowlist": ["q", "k", "z%2F"],
            "header_forward_allowlist": ["accept", "content-type", "x-h"],
            "body_policy": {"max_bytes": 4096, "content_types": ["application/json"]},
            "constraints": {"allow_duplicate_query_keys": ["q"], "allow_encoded_slashes": true}
        }]
    })
}

fn template() -> Template {
    Template::from_json(&template_json()).expect("property template is valid")
}

fn ctx() -> CanonContext {
    CanonContext::new(
        TenantId::parse("t_p").expect("id"),
        WorkloadId::parse("w_p").expect("id"),
        IntegrationId::parse("i_p").expect("id"),
        4096,
    )
}

fn get(url: String) -> ExecuteRequest {
    ExecuteRequest { method: Method::Get, url, headers: Vec::new(), body_base64: None }
}

fn host_spelling() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "api.example.com",
        "API.EXAMPLE.COM",
        "api.example.com.",
        "Api.Example.Com.",
        "bücher.example",
        "BÜCHER.example.",
        "xn--bcher-kva.example",
        "10.0.0.1",
        "10.0.0.1.",
        "[2001:DB8::1]",
        "[2001:db8:0:0:0:0:0:1]",
        "[::ffff:127.0.0.1]",
        "[::FFFF:7F00:1]",
        "a_b.example",
        "evil.example",
        "010.0.0.1",
        "10.1",
    ])
    .prop_map(str::to_owned)
}

fn port_spelling() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", ":", ":443", ":8443", ":08443", ":1"]).prop_map(str::to_owned)
}

fn segment() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "",
        ".",
        "..",
        "%2e",
        "%2E%2e",
        ".%2e",
        "x",
        "y",
        "~",
        "%7E",
        "%41",
        "%2F",
        "%2f",
        "%c3%a9",
        "%20",
        "-_",
        "!$&'()*+,;=",
        ":@",
        "%25",
        "b",
        "%3A",
        "%",
        "%0a",
        "%zz",
    ]);
    prop::collection::vec(piece, 1..3).prop_map(|parts| parts.concat())
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..6)
        .prop_map(|segments| segments.iter().map(|s| format!("/{s}")).collect::<String>())
}

fn query() -> impl Strategy<Value = String> {
    let pair = (
        prop::sample::select(vec!["q", "k", "z%2f", "%71", "", "bad"]),
        prop::option::of(prop::sample::select(vec!["", "1", "a+b", "%7e", "%2F", "x=y", "?/"])),
    )
        .prop_map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.to_owned(),
        });
    prop::option::of(prop::collection::vec(pair, 0..4).prop_map(|pairs| pairs.join("&")))
        .prop_map(|q| q.map(|q| format!("?{q}")).unwrap_or_default())
}

fn url() -> impl Strategy<Value = String> {
    (prop::sample::select(vec!["https", "HTTPS", "Https"]), host_spelling(), port_spelling(), path(), query())
        .prop_map(|(scheme, host, port, path, query)| format!("{scheme}://{host}{port}{path}{query}"))
}

/// What `url` needs to look like ours: unreserved percent-encodings decoded, other hex uppercased.
fn normalize_like_us(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| u8::from_str_radix(&path[i + 1..i + 3], 16).ok())
            .flatten();
        if let Some(v) = decoded {
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                out.push(char::from(v));
            } else {
                out.push_str(&format!("%{v:02X}"));
            }
            i += 3;
            continue;
        }
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

fn normalize_url_host(host: &url::Host<&str>) -> String {
    match host {
        url::Host::Domain(d) => d.strip_suffix('.').unwrap_or(d).to_owned(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => format!("[{a}]"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn canonicalization_is_idempotent(url in url(), accept in prop::option::of("[ -~]{0,12}")) {
        let mut request = get(url);
        if let Some(accept) = accept {
            request.headers.push(HeaderField::new("Accept", accept));
        }
        let template = template();
        if let Ok(first) = canonicalize(&request, &template, &ctx()) {
            let second = canonicalize(&first.to_execute_request(), &template, &ctx());
            let second = second.map_err(|e| TestCaseError::fail(format!("re-canonicalization failed: {e}")))?;
            prop_assert_eq!(first.descriptor(), second.descriptor());
            prop_assert_eq!(first.digest(), second.digest());
        }
    }

    #[test]
    fn agrees_with_the_url_crate(url in url()) {
        if let Ok(ours) = canonicalize(&get(url.clone()), &template(), &ctx()) {
            let theirs = url::Url::parse(&url)
                .map_err(|e| TestCaseError::fail(format!("url rejected what we accepted: {e}")))?;
            let their_host = theirs.host().map(|h| normalize_url_host(&h)).unwrap_or_default();
            if let (Some(a), Some(b)) = (strip_brackets(ours.host()), strip_brackets(&their_host)) {
                prop_assert_eq!(a.parse::<Ipv6Addr>().ok(), b.parse::<Ipv6Addr>().ok());
            } else {
                prop_assert_eq!(ours.host(), their_host.as_str());
            }
            prop_assert_eq!(Some(ours.port()), theirs.port_or_known_default());
            prop_assert_eq!(ours.path(), normalize_like_us(theirs.path()));
        }
    }

    #[test]
    fn canonicalization_never_panics(
        url in any::<String>(),
        spliced in (url(), any::<String>(), 0usize..64),
        headers in prop::collection::vec((any::<String>(), any::<String>()), 0..4),
        body in prop::option::of(any::<String>()),
    ) {
        let (base, insert, at) = spliced;
        let at = (0..=at.min(base.len())).rev().find(|&i| base.is_char_boundary(i)).unwrap_or(0);
        let mut mutated = base.clone();
        mutated.insert_str(at, &insert);
        let template = template();
        for url in [url, mutated] {
            let request = ExecuteRequest {
                method: Method::Post,
                url,
                headers: headers.iter().map(|(n, v)| HeaderField::new(n, v)).collect(),
                body_base64: body.clone(),
            };
            let _ = canonicalize(&request, &template, &ctx());
        }
    }

    #[test]
    fn path_pattern_compilation_never_panics(pattern in any::<String>(), inner in "[\\^$.*+?()\\[\\]{}|\\\\/a-z0-9-]{0,24}") {
        let _ = PathPattern::compile(&pattern);
        if let Ok(p) = PathPattern::compile(&format!("^{inner}$")) {
            let _ = p.is_match("/x");
        }
    }

    #[test]
    fn template_compilation_never_panics(value in arbitrary_json(), field in 0usize..32, replace in arbitrary_json()) {
        let _ = Template::from_json(&value);
        let mut mutated = template_json();
        replace_nth_field(&mut mutated, field, replace);
        let _ = Template::from_json(&mutated);
    }
}

fn strip_brackets(host: &str) -> Option<&str> {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']'))
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(vec!["https", "deny", "^/x$", "GET", "low", "none", "tpl_x", "*", "[::1]"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the `n`-th value met in a depth-first walk, so mutations reach nested fields too.
fn replace_nth_field(value: &mut Value, n: usize, replacement: Value) {
    fn walk(value: &mut Value, n: &mut usize, replacement: &mut Option<Value>) {
        if *n == 0 {
            if let Some(r) = replacement.take() {
                *value = r;
            }
            return;
        }
        *n -= 1;
        match value {
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, n, replacement)),
            Value::Object(map) => map.values_mut().for_each(|v| walk(v, n, replacement)),
            _ => {}
        }
    }
    let mut n = n;
    walk(value, &mut n, &mut Some(replacement));
}

#[test]
fn generators_are_not_vacuous() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = url();
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..400 {
        let url = strategy.new_tree(&mut runner).expect("tree").current();
        match canonicalize(&get(url), &template(), &ctx()) {
            Ok(_) => accepted += 1,
            Err(_) => rejected += 1,
        }
    }
    println!("accepted {accepted}, rejected {rejected}");
    assert!(accepted >= 40, "only {accepted} of 400 generated URLs were accepted");
    assert!(rejected >= 40, "only {rejected} of 400 generated URLs were rejected");
}

/// A header list entry: an exact name or a prefix entry, from a small alphabet so they collide.
fn allowlist_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-cA-C-]{1,8}",
        "[a-c-]{0,6}-\\*",
        prop::sample::select(vec![
            "proxy-*",
            "Accept-*",
            "keep-*",
            "transfer-*",
            "x-stainless-*",
            "te",
            "Cookie"
        ])
        .prop_map(str::to_owned),
    ]
}

proptest! {
    /// Whatever a published list holds, it never admits a never-allowlistable name, and it admits a
    /// header exactly when an exact entry equals it (ignoring case) or a prefix entry `stem-*` is
    /// followed by at least one more character.
    #[test]
    fn header_allowlists_admit_exactly_their_entries(
        entries in proptest::collection::vec(allowlist_entry(), 0..5),
        names in proptest::collection::vec(prop_oneof![
            "[a-cA-C-]{0,10}",
            "(x-stainless|proxy|accept|keep)-[a-z]{0,3}",
        ], 0..8),
    ) {
        let Ok(list) = steward_canon::HeaderAllowlist::parse("list", &entries) else { return Ok(()) };
        for never in ["authorization", "cookie", "host", "dpop", "accept-encoding", "proxy-authorization",
                      "transfer-encoding", "keep-alive", "upgrade", "te"] {
            prop_assert!(!list.allows(never), "{never} admitted by {entries:?}");
        }
        for name in &names {
            let lower = name.to_ascii_lowercase();
            let expected = list.entries().iter().any(|e| match e.strip_suffix("-*") {
                Some(stem) => lower.len() > stem.len() + 1 && lower.starts_with(&format!("{stem}-")),
                None => *e == lower,
            });
            prop_assert_eq!(list.allows(name), expected, "{} against {:?}", name, entries);
            prop_assert_eq!(steward_canon::entries_allow(list.entries(), name), expected);
        }
    }
}
