use super::*;

fn integration(id: &str, name: &str, provider: &str, hosts: &[&str], ports: &[u16]) -> Integration {
    Integration {
        id: id.into(),
        name: name.into(),
        provider: provider.into(),
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        ports: ports.to_vec(),
    }
}

fn table() -> RouteTable {
    RouteTable {
        integrations: vec![
            integration("i_a", "anthropic", "anthropic", &["api.anthropic.com"], &[443]),
            integration("i_m", "multi", "cli", &["a.example.test", "b.example.test"], &[443]),
            integration("i_o", "openai", "openai", &["api.openai.com"], &[443]),
            integration("i_p", "local", "cli", &["api.example.test"], &[8443]),
            integration("i_s", "shared-1", "cli", &["shared.example.test"], &[443]),
            integration("i_t", "shared-2", "cli", &["shared.example.test"], &[443]),
        ],
    }
}

#[test]
fn a_name_route_keeps_path_and_query_bytes() {
    let route = table().resolve("/openai/v1/chat%2Fcompletions", Some("a=%20b&c"), None).unwrap();
    assert_eq!(route.integration_name, "openai");
    assert_eq!(route.target.integration_id, "i_o");
    assert_eq!(route.target.authority, "api.openai.com");
    assert_eq!(route.target.path, "/v1/chat%2Fcompletions");
    assert_eq!(route.target.query.as_deref(), Some("a=%20b&c"));
    // A template on another port than 443 forwards to host:port.
    let route = table().resolve("/local/v1/items", None, None).unwrap();
    assert_eq!(route.target.authority, "api.example.test:8443");
    // The bare name forwards to the root path.
    assert_eq!(table().resolve("/openai", None, None).unwrap().target.path, "");
}

#[test]
fn unknown_names_and_multi_host_integrations_are_404() {
    let refusal = table().resolve("/nope/v1", None, None).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::GatewayRouteNotFound);
    assert!(refusal.message.contains("/openai/…"), "{}", refusal.message);
    let refusal = table().resolve("/multi/v1", None, None).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::GatewayRouteNotFound);
    assert!(refusal.message.contains("/_host/a.example.test/…"), "{}", refusal.message);
    assert!(refusal.message.contains("/_host/b.example.test/…"), "{}", refusal.message);
    assert_eq!(table().resolve("/", None, None).unwrap_err().code, ErrorCode::GatewayRouteNotFound);
}

#[test]
fn host_routes_match_host_and_port() {
    let route = table().resolve("/_host/B.Example.test/x", Some("q=1"), None).unwrap();
    assert_eq!(route.target.integration_id, "i_m");
    assert_eq!(route.target.authority, "B.Example.test", "the authority is passed as given");
    assert_eq!(route.target.path, "/x");
    let route = table().resolve("/_host/api.example.test:8443/v1/items", None, None).unwrap();
    assert_eq!(route.target.integration_id, "i_p");
    assert_eq!(route.target.authority, "api.example.test:8443");
    // Wrong port, unknown host, malformed authority.
    for path in ["/_host/api.example.test/v1", "/_host/other.test/", "/_host/", "/_host/h:notaport/x"] {
        assert_eq!(
            table().resolve(path, None, None).unwrap_err().code,
            ErrorCode::GatewayRouteNotFound,
            "{path}"
        );
    }
}

#[test]
fn an_ambiguous_host_needs_a_choice() {
    let refusal = table().resolve("/_host/shared.example.test/v1", None, None).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::GatewayHostAmbiguous);
    assert!(
        refusal.message.contains("shared-1") && refusal.message.contains("shared-2"),
        "{}",
        refusal.message
    );

    // The query key is consumed; the other pairs keep their bytes and order.
    let route = table()
        .resolve("/_host/shared.example.test/v1", Some("a=1&integration=shared-2&b=%41"), None)
        .unwrap();
    assert_eq!(route.target.integration_id, "i_t");
    assert_eq!(route.target.query.as_deref(), Some("a=1&b=%41"));
    let route = table().resolve("/_host/shared.example.test/v1", Some("integration=shared-1"), None).unwrap();
    assert_eq!((route.target.integration_id.as_str(), route.target.query), ("i_s", None));

    // The header, by name or id; the query key wins over the header.
    let route = table().resolve("/_host/shared.example.test/v1", None, Some("i_t")).unwrap();
    assert_eq!(route.target.integration_id, "i_t");
    let route = table()
        .resolve("/_host/shared.example.test/v1", Some("integration=shared-1"), Some("shared-2"))
        .unwrap();
    assert_eq!(route.target.integration_id, "i_s");

    // A choice that does not cover the host.
    let refusal = table().resolve("/_host/shared.example.test/v1", None, Some("openai")).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::GatewayRouteNotFound);
}

#[test]
fn the_first_integration_of_a_provider_by_name() {
    let mut table = table();
    table.integrations.push(integration("i_o2", "aaa-openai", "openai", &["api.openai.com"], &[443]));
    table.integrations.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(table.first_of_provider("openai").unwrap().name, "aaa-openai");
    assert!(table.first_of_provider("gemini").is_none());
}
