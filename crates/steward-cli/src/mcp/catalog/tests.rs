use serde_json::json;

use super::*;

pub(crate) fn manifest() -> Manifest {
    serde_json::from_value(json!({
        "manifest_version": 1, "workload_id": "w_1",
        "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T00:05:00Z",
        "broker_execute_url": "https://localhost:8081/v1/execute",
        "dpop_required": false, "dpop_ath_required": false,
        "match_rules": [{
            "integration_id": "i_1", "name": "shop.eu", "provider": "cli",
            "groups": [
                {"group_id": "items_read", "methods": ["GET", "HEAD"], "path_patterns": ["^/v1/items$"],
                 "query_allowlist": ["q"], "header_forward_allowlist": ["accept"],
                 "risk_tier": "low", "approval_mode": "none"},
                {"group_id": "items_write", "description": "Create an item.", "methods": ["POST"],
                 "path_patterns": ["^/v1/items$"], "query_allowlist": [],
                 "header_forward_allowlist": ["content-type"], "risk_tier": "high", "approval_mode": "required"}
            ],
            "match": {"hosts": ["api.example.test"], "schemes": ["https"], "ports": [8443],
                      "path_groups": ["^/v1/items$"]},
            "rewrite": {"mode": "execute", "send_intended_url": true}
        }]
    }))
    .unwrap()
}

#[test]
fn names_are_sanitized_and_cut_to_64() {
    assert_eq!(tool_name("shop.eu", "items read"), "shop_eu__items_read");
    assert_eq!(tool_name("a-b_c", "ok"), "a-b_c__ok");
    let long = tool_name(&"x".repeat(60), "group");
    assert_eq!(long.len(), 64);
    assert!(long.ends_with("x__gr"));
    assert_eq!(tool_name("ünï", "g"), "_n___g");
}

#[test]
fn one_tool_per_group_with_description_annotations_and_schema() {
    let (catalog, warnings) = Catalog::from_manifest(&manifest());
    assert!(warnings.is_empty(), "{warnings:?}");
    let names: Vec<&str> = catalog.tools.keys().map(String::as_str).collect();
    assert_eq!(names, ["shop_eu__items_read", "shop_eu__items_write"]);

    let read = &catalog.tools["shop_eu__items_read"];
    assert_eq!(read.target.origin(), "https://api.example.test:8443");
    let description = read.tool.description.as_deref().unwrap();
    for part in ["cli", "GET, HEAD", "^/v1/items$", "Risk tier low"] {
        assert!(description.contains(part), "{description}");
    }
    assert!(!description.contains("approval"), "{description}");
    let annotations = read.tool.annotations.clone().unwrap();
    assert_eq!(annotations.read_only_hint, Some(true));
    assert_eq!(annotations.destructive_hint, Some(false));
    assert_eq!(annotations.open_world_hint, Some(true));
    let schema = serde_json::Value::Object((*read.tool.input_schema).clone());
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["method"]["enum"], json!(["GET", "HEAD"]));
    assert_eq!(schema["properties"]["method"]["default"], "GET");
    assert_eq!(schema["properties"]["query"]["properties"], json!({"q": {"type": "string"}}));
    assert_eq!(schema["properties"]["query"]["additionalProperties"], false);
    assert_eq!(schema["properties"]["headers"]["properties"], json!({"accept": {"type": "string"}}));
    assert!(schema["properties"]["path"]["description"].as_str().unwrap().contains("^/v1/items$"));
    assert_eq!(schema["required"], json!(["path"]));

    let write = &catalog.tools["shop_eu__items_write"];
    let description = write.tool.description.as_deref().unwrap();
    assert!(description.starts_with("Create an item.") && description.contains("needs human approval"));
    let annotations = write.tool.annotations.clone().unwrap();
    assert_eq!(annotations.read_only_hint, Some(false));
    assert_eq!(annotations.destructive_hint, Some(true));
}

#[test]
fn a_rule_without_hosts_and_a_clashing_name_are_left_out_with_a_warning() {
    let mut manifest = manifest();
    let mut clash = manifest.match_rules[0].clone();
    clash.integration_id = "i_2".into();
    clash.name = "shop.eu".into();
    manifest.match_rules.push(clash);
    let mut hostless = manifest.match_rules[0].clone();
    hostless.name = "nohost".into();
    hostless.matcher = json!({"hosts": []});
    manifest.match_rules.push(hostless);
    let (catalog, warnings) = Catalog::from_manifest(&manifest);
    assert_eq!(catalog.tools.len(), 2);
    assert_eq!(catalog.tools["shop_eu__items_read"].target.integration_id, "i_1");
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings[2].contains("nohost"));
}

#[test]
fn default_ports_are_left_out_of_the_origin() {
    let target = |port| Target {
        integration_id: "i".into(),
        integration_name: "n".into(),
        scheme: "https".into(),
        host: "api.openai.com".into(),
        port,
    };
    assert_eq!(target(Some(443)).origin(), "https://api.openai.com");
    assert_eq!(target(None).origin(), "https://api.openai.com");
    assert_eq!(target(Some(8443)).origin(), "https://api.openai.com:8443");
}
