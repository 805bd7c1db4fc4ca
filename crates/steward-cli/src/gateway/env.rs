//! The environment of `--print-env`, `/_steward/env` and `steward run`: the gateway URL and token,
//! and the variables the OpenAI and Anthropic SDKs read for their base URL and key.

use super::routes::RouteTable;

/// `(name, value)` pairs in a stable order.
pub fn variables(url: &str, token: &str, routes: &RouteTable) -> Vec<(String, String)> {
    let mut vars = vec![
        ("STEWARD_GATEWAY_URL".to_owned(), url.to_owned()),
        ("STEWARD_GATEWAY_TOKEN".to_owned(), token.to_owned()),
    ];
    if let Some(openai) = routes.first_of_provider("openai") {
        vars.push(("OPENAI_BASE_URL".into(), format!("{url}/{}/v1", openai.name)));
        vars.push(("OPENAI_API_KEY".into(), token.to_owned()));
    }
    if let Some(anthropic) = routes.first_of_provider("anthropic") {
        vars.push(("ANTHROPIC_BASE_URL".into(), format!("{url}/{}", anthropic.name)));
        vars.push(("ANTHROPIC_API_KEY".into(), token.to_owned()));
    }
    vars
}

/// `export NAME=value` lines, single-quoted when a value holds anything beyond the safe characters.
pub fn export_lines(vars: &[(String, String)]) -> String {
    vars.iter().map(|(name, value)| format!("export {name}={}\n", quote(value))).collect()
}

fn quote(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::routes::Integration;
    use super::*;

    fn integration(name: &str, provider: &str) -> Integration {
        Integration {
            id: format!("i_{name}"),
            name: name.into(),
            provider: provider.into(),
            hosts: vec!["h".into()],
            ports: vec![443],
        }
    }

    #[test]
    fn lines_per_provider_first_by_name() {
        let routes = RouteTable {
            integrations: vec![
                integration("claude", "anthropic"),
                integration("gpt", "openai"),
                integration("gpt2", "openai"),
                integration("tool", "cli"),
            ],
        };
        let text = export_lines(&variables("http://127.0.0.1:7777", "stw_gw_x", &routes));
        assert_eq!(
            text,
            "export STEWARD_GATEWAY_URL=http://127.0.0.1:7777\nexport STEWARD_GATEWAY_TOKEN=stw_gw_x\n\
             export OPENAI_BASE_URL=http://127.0.0.1:7777/gpt/v1\nexport OPENAI_API_KEY=stw_gw_x\n\
             export ANTHROPIC_BASE_URL=http://127.0.0.1:7777/claude\nexport ANTHROPIC_API_KEY=stw_gw_x\n"
        );
        let none = export_lines(&variables("http://u", "t", &RouteTable::default()));
        assert_eq!(none.lines().count(), 2);
        assert_eq!(quote("a b'c"), r"'a b'\''c'");
    }
}
