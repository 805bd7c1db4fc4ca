//! The route table, rebuilt from each verified manifest: `/{integration_name}/{path…}` and
//! `/_host/{host[:port]}/{path…}` resolved to a forward-mode target (`spec/gateway.md` §2).
//!
//! Resolution works on the raw request target: the path after the route prefix and the query are
//! passed on byte for byte, except that `/_host/` routes consume their own `integration` query key.

use steward_client::{ForwardTarget, Manifest};
use steward_types::ErrorCode;

/// One integration the workload may call, as its manifest rule describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub id: String,
    pub name: String,
    pub provider: String,
    /// Lowercase host names of the template.
    pub hosts: Vec<String>,
    pub ports: Vec<u16>,
}

impl Integration {
    /// The authority a `/{name}/` route forwards to: the one host, with the port unless it is 443
    /// (or the template lists 443 among its ports).
    fn authority(&self, host: &str) -> String {
        if self.ports.is_empty() || self.ports.contains(&443) {
            host.to_owned()
        } else {
            format!("{host}:{}", self.ports[0])
        }
    }

    fn covers(&self, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
            && (self.ports.is_empty() || self.ports.contains(&port))
    }
}

/// A refusal of the gateway itself: code and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// A resolved route: where to forward, and which integration it is (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub target: ForwardTarget,
    pub integration_name: String,
}

/// The integrations of the current manifest, sorted by name.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    pub integrations: Vec<Integration>,
}

impl RouteTable {
    pub fn from_manifest(manifest: &Manifest) -> Self {
        let mut integrations: Vec<Integration> = manifest
            .match_rules
            .iter()
            .map(|rule| {
                let strings = |key: &str| -> Vec<String> {
                    rule.matcher
                        .get(key)
                        .and_then(|v| v.as_array())
                        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_ascii_lowercase)).collect())
                        .unwrap_or_default()
                };
                let ports = rule
                    .matcher
                    .get("ports")
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter().filter_map(|v| v.as_u64().and_then(|p| u16::try_from(p).ok())).collect()
                    })
                    .unwrap_or_default();
                Integration {
                    id: rule.integration_id.clone(),
                    name: rule.name.clone(),
                    provider: rule.provider.clone(),
                    hosts: strings("hosts"),
                    ports,
                }
            })
            .collect();
        integrations.sort_by(|a, b| a.name.cmp(&b.name));
        Self { integrations }
    }

    /// The first integration (by name) of a provider, for the SDK environment variables.
    pub fn first_of_provider(&self, provider: &str) -> Option<&Integration> {
        self.integrations.iter().find(|i| i.provider == provider)
    }

    /// Resolves a raw path (starting with `/`) and query. `selector` is the `steward-integration`
    /// header, which like the `integration` query key picks one of several integrations covering a
    /// host on `/_host/` routes.
    pub fn resolve(&self, path: &str, query: Option<&str>, selector: Option<&str>) -> Result<Route, Refusal> {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let (first, rest) = match trimmed.find('/') {
            Some(at) => (&trimmed[..at], &trimmed[at..]),
            None => (trimmed, ""),
        };
        if first == "_host" {
            return self.resolve_host(rest, query, selector);
        }
        let Some(integration) = self.integrations.iter().find(|i| i.name == first) else {
            return Err(self.unknown_route(path));
        };
        let [host] = integration.hosts.as_slice() else {
            let routes: Vec<String> = integration.hosts.iter().map(|h| format!("/_host/{h}/…")).collect();
            return Err(Refusal::new(
                ErrorCode::GatewayRouteNotFound,
                format!(
                    "integration {:?} covers several hosts; call it through one of: {}",
                    integration.name,
                    routes.join(", ")
                ),
            ));
        };
        Ok(Route {
            target: ForwardTarget {
                integration_id: integration.id.clone(),
                authority: integration.authority(host),
                path: rest.to_owned(),
                query: query.map(str::to_owned),
            },
            integration_name: integration.name.clone(),
        })
    }

    fn resolve_host(
        &self,
        rest: &str,
        query: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Route, Refusal> {
        let trimmed = rest.strip_prefix('/').unwrap_or(rest);
        let (authority, path) = match trimmed.find('/') {
            Some(at) => (&trimmed[..at], &trimmed[at..]),
            None => (trimmed, ""),
        };
        let Some((host, port)) = split_authority(authority) else {
            return Err(Refusal::new(
                ErrorCode::GatewayRouteNotFound,
                format!("/_host/{authority}: expected /_host/HOST[:PORT]/PATH"),
            ));
        };
        let (query, from_query) = take_integration_param(query);
        let selector = from_query.or_else(|| selector.map(str::to_owned));
        let candidates: Vec<&Integration> =
            self.integrations.iter().filter(|i| i.covers(&host, port)).collect();
        let chosen = match (candidates.as_slice(), selector) {
            ([], _) => {
                return Err(Refusal::new(
                    ErrorCode::GatewayRouteNotFound,
                    format!(
                        "no integration of this workload covers {host}:{port}; routes: {}",
                        self.route_list()
                    ),
                ));
            }
            (_, Some(choice)) => {
                *candidates.iter().find(|i| i.name == choice || i.id == choice).ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::GatewayRouteNotFound,
                        format!(
                            "integration {choice:?} does not cover {host}:{port}; those that do: {}",
                            names(&candidates)
                        ),
                    )
                })?
            }
            ([only], None) => *only,
            (_, None) => {
                return Err(Refusal::new(
                    ErrorCode::GatewayHostAmbiguous,
                    format!(
                        "{host}:{port} is covered by several integrations ({}); choose one with ?integration=NAME \
                         or the header steward-integration: NAME",
                        names(&candidates)
                    ),
                ));
            }
        };
        Ok(Route {
            target: ForwardTarget {
                integration_id: chosen.id.clone(),
                authority: authority.to_owned(),
                path: path.to_owned(),
                query,
            },
            integration_name: chosen.name.clone(),
        })
    }

    fn unknown_route(&self, path: &str) -> Refusal {
        let shown: String = path.chars().take(100).collect();
        Refusal::new(
            ErrorCode::GatewayRouteNotFound,
            format!("no gateway route for {shown}; routes: {}", self.route_list()),
        )
    }

    /// The routes, for messages: `/{name}/…` for single-host integrations, `/_host/{host}/…` otherwise.
    fn route_list(&self) -> String {
        let routes: Vec<String> = self
            .integrations
            .iter()
            .flat_map(|i| match i.hosts.as_slice() {
                [_] => vec![format!("/{}/…", i.name)],
                hosts => hosts.iter().map(|h| format!("/_host/{h}/…")).collect(),
            })
            .collect();
        if routes.is_empty() {
            "none (the manifest has no integration)".to_owned()
        } else {
            routes.join(", ")
        }
    }
}

fn names(candidates: &[&Integration]) -> String {
    candidates.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// `host`, `host:port` or `[v6]:port` → (lowercase host, port; 443 by default).
fn split_authority(authority: &str) -> Option<(String, u16)> {
    if authority.is_empty() {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => 443,
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// Removes every `integration=…` pair from a raw query (the other pairs keep their bytes and order);
/// returns the rest (None when nothing is left) and the last value given.
fn take_integration_param(query: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(query) = query else { return (None, None) };
    let mut chosen = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key == "integration" {
                chosen = Some(value.to_owned());
                false
            } else {
                true
            }
        })
        .collect();
    let rest = kept.join("&");
    (if rest.is_empty() && chosen.is_some() { None } else { Some(rest) }, chosen)
}

#[cfg(test)]
mod tests;
