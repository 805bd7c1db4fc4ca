//! `steward admin …` against a real `steward serve` process: tenants, workloads, integrations,
//! templates, policies, approvals, audit, tokens and keys, with human and JSON output, exit codes,
//! and a secret that appears in no output.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Ports, run, spawn_serving, stderr, steward, terminate};
use serde_json::{Value, json};

const SECRET: &str = "sk-test-CLI-SECRET-7f3a9c";

struct Cli {
    admin_url: String,
    token_file: std::path::PathBuf,
}

impl Cli {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = steward();
        command
            .arg("admin")
            .arg("--admin-url")
            .arg(&self.admin_url)
            .arg("--token-file")
            .arg(&self.token_file);
        command.args(args);
        command
    }

    /// Runs, expects exit 0, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = run(&mut self.command(args));
        assert!(output.status.success(), "steward admin {args:?} failed: {}", stderr(&output));
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs with `--output json`, expects exit 0, returns the JSON.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    }

    fn fails(&self, args: &[&str]) -> Output {
        let output = run(&mut self.command(args));
        assert!(!output.status.success(), "steward admin {args:?} should fail");
        output
    }
}

/// A pending approval written straight into the embedded database (the execute pipeline, which
/// creates approvals, is not part of this issue).
async fn insert_approval(data_dir: &Path, tenant: &str, workload: &str, integration: &str) -> String {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data_dir.join("steward.db"))
        .busy_timeout(std::time::Duration::from_secs(10));
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let id = steward_types::ApprovalId::generate().to_string();
    let now = steward_types::Timestamp::from_unix_seconds(
        i64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_secs()).unwrap(),
    )
    .unwrap();
    let scope = json!({"tenant_id": tenant, "integration_id": integration, "workload_id": workload,
        "action_group": "openai_responses", "method": "POST", "host": "api.openai.com"});
    sqlx::query(
        "INSERT INTO approvals (approval_id, tenant_id, workload_id, integration_id, digest, descriptor, status, \
         proposed_rule, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)",
    )
    .bind(&id)
    .bind(tenant)
    .bind(workload)
    .bind(integration)
    .bind(format!("digest-{id}"))
    .bind(json!({"method": "POST", "canonical_url": "https://api.openai.com/v1/responses", "action_group": "openai_responses"}).to_string())
    .bind(json!({"rule_type": "allow", "scope": scope}).to_string())
    .bind(now.unix_micros())
    .bind(now.plus_seconds(300).unix_micros())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_drives_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let init = run(steward().arg("init").arg("--data-dir").arg(&data));
    assert!(init.status.success(), "{}", stderr(&init));
    let ports = Ports::new();
    let mut serve = steward();
    serve.arg("serve").arg("--config").arg(data.join("steward.toml"));
    ports.apply(&mut serve);
    let mut child = spawn_serving(serve, &ports).await;
    let cli =
        Cli { admin_url: format!("http://{}", ports.admin_addr()), token_file: data.join("admin-token") };
    let mut outputs: Vec<String> = Vec::new();

    // whoami and tenants.
    assert_eq!(cli.json(&["whoami"])["role"], "owner");
    let tenant = cli.json(&["tenants", "create", "--name", "acme"]);
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let listed = cli.ok(&["tenants", "list"]);
    assert!(
        listed.contains("TENANT_ID") && listed.contains("acme") && listed.contains(&tenant_id),
        "{listed}"
    );
    assert_eq!(cli.json(&["tenants", "get", &tenant_id])["name"], "acme");
    let conflict = cli.fails(&["tenants", "create", "--name", "acme"]);
    assert_eq!(conflict.status.code(), Some(1));
    assert!(stderr(&conflict).contains("tenant_name_conflict"), "{}", stderr(&conflict));

    // workloads.
    let workload = cli.json(&["workloads", "create", "--tenant", &tenant_id, "--name", "agent-1"]);
    let workload_id = workload["workload_id"].as_str().unwrap().to_owned();
    assert!(workload["enrollment_token"].as_str().unwrap().starts_with("stw_enr_"));
    assert!(cli.ok(&["workloads", "list", "--tenant", &tenant_id]).contains("agent-1"));

    // templates.
    let installed = cli.json(&["templates", "install-builtin"]);
    assert!(
        installed["already_present"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().contains("tpl_openai"))
            || installed["installed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t.as_str().unwrap().contains("tpl_openai")),
        "{installed}"
    );
    let templates = cli.ok(&["templates", "list"]);
    assert!(templates.contains("tpl_openai"), "{templates}");
    let template = cli.json(&["templates", "get", "tpl_openai", "--version", "1"]);
    assert_eq!(template["template_id"], "tpl_openai");
    let custom = dir.path().join("custom.json");
    let mut body: Value = template["template"].clone();
    body["template_id"] = "tpl_custom_openai".into();
    std::fs::write(&custom, body.to_string()).unwrap();
    let published =
        cli.json(&["templates", "publish", "--file", custom.to_str().unwrap(), "--tenant", &tenant_id]);
    assert_eq!(
        (published["template_id"].clone(), published["version"].clone()),
        (json!("tpl_custom_openai"), json!(1))
    );

    // integrations: the secret comes from a file (trailing newline dropped) and is never shown.
    let secret_file = dir.path().join("key.txt");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let integration = cli.json(&[
        "integrations",
        "create",
        "--tenant",
        &tenant_id,
        "--name",
        "openai",
        "--provider",
        "openai",
        "--template",
        "tpl_openai",
        "--secret-file",
        secret_file.to_str().unwrap(),
    ]);
    let integration_id = integration["integration_id"].as_str().unwrap().to_owned();
    outputs.push(integration.to_string());
    outputs.push(cli.ok(&["integrations", "get", &integration_id]));
    outputs.push(cli.ok(&["integrations", "list", "--tenant", &tenant_id]));
    let mut from_env =
        cli.command(&["integrations", "set-secret", &integration_id, "--secret-env", "TEST_PROVIDER_KEY"]);
    from_env.env("TEST_PROVIDER_KEY", format!("{SECRET}-v2"));
    let rotated_secret = run(&mut from_env);
    assert!(rotated_secret.status.success(), "{}", stderr(&rotated_secret));
    outputs.push(String::from_utf8(rotated_secret.stdout).unwrap());
    assert_eq!(cli.json(&["integrations", "get", &integration_id])["secret_version"], 2);
    let on_command_line = cli.fails(&[
        "integrations",
        "create",
        "--tenant",
        &tenant_id,
        "--name",
        "x",
        "--provider",
        "openai",
        "--template",
        "tpl_openai",
        "--secret",
        SECRET,
    ]);
    assert_eq!(on_command_line.status.code(), Some(2), "there is no --secret flag");
    let neither = cli.fails(&[
        "integrations",
        "create",
        "--tenant",
        &tenant_id,
        "--name",
        "x",
        "--provider",
        "openai",
        "--template",
        "tpl_openai",
    ]);
    assert_eq!(neither.status.code(), Some(2));
    assert!(stderr(&neither).contains("--secret-file"), "{}", stderr(&neither));

    // policies: one allow rule per method and host of the group.
    let allowed =
        cli.json(&["policies", "allow", "--integration", &integration_id, "--group", "openai_responses"]);
    let rules = allowed["policies"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{allowed}");
    assert_eq!(rules[0]["scope"]["method"], "POST");
    assert_eq!(rules[0]["scope"]["host"], "api.openai.com");
    let policy_id = rules[0]["policy_id"].as_str().unwrap().to_owned();
    assert!(cli.ok(&["policies", "list", "--tenant", &tenant_id]).contains(&policy_id));
    let unknown_group =
        cli.fails(&["policies", "allow", "--integration", &integration_id, "--group", "nope"]);
    assert_eq!(unknown_group.status.code(), Some(2));
    assert!(
        stderr(&unknown_group).contains("openai_chat_completions"),
        "lists the groups: {}",
        stderr(&unknown_group)
    );
    cli.ok(&["policies", "delete", &policy_id]);

    // approvals.
    let approval_id = insert_approval(&data, &tenant_id, &workload_id, &integration_id).await;
    let pending = cli.ok(&["approvals", "list", "--status", "pending"]);
    assert!(pending.contains(&approval_id) && pending.contains("pending"), "{pending}");
    assert_eq!(cli.json(&["approvals", "get", &approval_id])["status"], "pending");
    let approved = cli.ok(&["approvals", "approve", &approval_id, "--once"]);
    assert!(approved.contains("approved (once)"), "{approved}");
    let again = cli.fails(&["approvals", "approve", &approval_id, "--once"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("approval_not_pending"), "{}", stderr(&again));
    let second = insert_approval(&data, &tenant_id, &workload_id, &integration_id).await;
    let denied = cli.json(&["approvals", "deny", &second, "--reason", "not now"]);
    assert_eq!(denied["status"], "denied");
    assert!(denied["policy_id"].as_str().unwrap().starts_with("pol_"));
    let no_mode = cli.fails(&["approvals", "approve", &second]);
    assert_eq!(no_mode.status.code(), Some(2));

    // audit.
    let tail = cli.ok(&["audit", "tail", "-n", "50"]);
    assert!(tail.contains("admin_action") && tail.contains("approval_decided"), "{tail}");
    outputs.push(tail);
    let decided = cli.json(&["audit", "events", "--event-type", "approval_decided"]);
    assert_eq!(decided["events"].as_array().unwrap().len(), 2);
    let export = cli.ok(&["audit", "export", "--tenant", &tenant_id]);
    assert!(export.lines().count() >= 5, "{export}");
    assert!(export.lines().all(|line| serde_json::from_str::<Value>(line).is_ok()));
    outputs.push(export);
    let verified = cli.json(&["audit", "verify", "--tenant", &tenant_id]);
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(cli.ok(&["audit", "verify", "--tenant", &tenant_id]).contains("ok"));
    let bad_limit = cli.fails(&["audit", "events", "--limit", "5000"]);
    assert_eq!(bad_limit.status.code(), Some(1));
    assert!(stderr(&bad_limit).contains("query_invalid"));

    // tokens.
    let created =
        cli.json(&["tokens", "create", "--name", "ops", "--role", "operator", "--tenant", &tenant_id]);
    let operator_token = created["token"].as_str().unwrap().to_owned();
    let token_id = created["token_id"].as_str().unwrap().to_owned();
    assert!(cli.ok(&["tokens", "list"]).contains(&token_id));
    let operator_file = dir.path().join("operator-token");
    std::fs::write(&operator_file, &operator_token).unwrap();
    let as_operator = Cli { admin_url: cli.admin_url.clone(), token_file: operator_file };
    let refused = as_operator.fails(&["keys", "rotate"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("admin_forbidden"));
    assert_eq!(as_operator.json(&["keys", "manifest"])["keys"].as_array().unwrap().len(), 1);
    cli.ok(&["tokens", "revoke", &token_id]);
    let revoked = as_operator.fails(&["whoami"]);
    assert!(stderr(&revoked).contains("admin_auth_invalid"));

    // keys.
    let rotated = cli.json(&["keys", "rotate"]);
    assert!(rotated["kid"].as_str().unwrap().starts_with("mk_"));
    assert_eq!(cli.json(&["keys", "manifest"])["keys"].as_array().unwrap().len(), 2);
    let kek = cli.ok(&["keys", "kek"]);
    assert!(kek.contains("active KEK: k1"), "{kek}");
    assert_eq!(cli.json(&["keys", "rewrap"])["rewrapped"], 0);

    // Usage errors: no token at all, unknown verbs.
    let mut no_token = steward();
    no_token.current_dir(dir.path()).args(["admin", "--admin-url", &cli.admin_url, "whoami"]);
    let output = run(&mut no_token);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("no admin token"));
    assert_eq!(cli.fails(&["tenants", "explode"]).status.code(), Some(2));
    // Run next to the data directory, the token is found without flags.
    let beside_dir = dir.path().join("beside");
    std::fs::create_dir_all(beside_dir.join("steward-data")).unwrap();
    std::fs::copy(data.join("admin-token"), beside_dir.join("steward-data/admin-token")).unwrap();
    let mut beside = steward();
    beside.current_dir(&beside_dir).args(["admin", "--admin-url", &cli.admin_url, "whoami"]);
    let found = run(&mut beside);
    assert!(found.status.success(), "{}", stderr(&found));

    for output in &outputs {
        assert!(!output.contains(SECRET), "the secret leaked into CLI output: {output}");
    }
    let status = terminate(&mut child);
    assert!(status.success(), "{status}");
}

/// `gateway.md` §3 and the newcomer's first minutes: run next to the data directory of a server on a
/// non-default admin port, `steward admin` needs no flags (URL from `steward.toml`, token from
/// `admin-token`); flags and `STEWARD_ADMIN_URL` still win. Scripts get bare ids with `--output id`,
/// `templates get` without `--version` shows the latest version, and `audit tail` fits 120 columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_needs_no_flags_next_to_the_data_dir_and_prints_ids_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("steward-data");
    let init = run(steward().arg("init").arg("--data-dir").arg(&data));
    assert!(init.status.success(), "{}", stderr(&init));
    let ports = Ports::new();
    let config_path = data.join("steward.toml");
    common::write_ports(&data, &ports, None);
    let mut serve = steward();
    serve.arg("serve").arg("--config").arg(&config_path);
    let mut child = spawn_serving(serve, &ports).await;

    // No flags at all, in the directory that holds steward-data.
    let bare = |args: &[&str]| {
        let mut command = steward();
        command.current_dir(dir.path()).arg("admin").args(args);
        command
    };
    let ok = |command: &mut Command| {
        let output = run(command);
        assert!(output.status.success(), "{}", stderr(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(ok(&mut bare(&["whoami"])).contains("owner"));
    let tenant_id = ok(&mut bare(&["tenants", "create", "--name", "acme", "--output", "id"]));
    let tenant_id = tenant_id.trim_end_matches('\n').to_owned();
    assert!(tenant_id.starts_with("t_") && !tenant_id.contains(char::is_whitespace), "{tenant_id:?}");
    let listed = ok(&mut bare(&["tenants", "list"]));
    assert!(listed.contains("TENANT_ID") && listed.contains(&tenant_id), "{listed}");
    // --data-dir and STEWARD_DATA_DIR from anywhere else.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut by_flag = steward();
    by_flag.current_dir(elsewhere.path()).arg("admin").arg("--data-dir").arg(&data).arg("whoami");
    assert!(ok(&mut by_flag).contains("owner"));
    let mut by_env = steward();
    by_env.current_dir(elsewhere.path()).env("STEWARD_DATA_DIR", &data).args(["admin", "whoami"]);
    assert!(ok(&mut by_env).contains("owner"));
    // STEWARD_ADMIN_URL and --admin-url win over the data directory.
    let nowhere = format!("http://127.0.0.1:{}", steward_testkit::free_port().unwrap());
    let mut wrong = bare(&["whoami"]);
    wrong.env("STEWARD_ADMIN_URL", &nowhere);
    let output = run(&mut wrong);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains(&nowhere), "{}", stderr(&output));
    let mut right = bare(&["--admin-url", &format!("http://{}", ports.admin_addr()), "whoami"]);
    right.env("STEWARD_ADMIN_URL", &nowhere);
    assert!(ok(&mut right).contains("owner"));

    // --output id on create and list: one id a line.
    let workload_id =
        ok(&mut bare(&["workloads", "create", "--tenant", &tenant_id, "--name", "a1", "--output", "id"]));
    let workload_id = workload_id.trim_end().to_owned();
    assert!(workload_id.starts_with("w_"), "{workload_id}");
    ok(&mut bare(&["workloads", "create", "--tenant", &tenant_id, "--name", "a2"]));
    let ids = ok(&mut bare(&["workloads", "list", "--tenant", &tenant_id, "--output", "id"]));
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&workload_id.as_str()) && ids.iter().all(|id| id.starts_with("w_")), "{ids:?}");
    let enrollment = ok(&mut bare(&["workloads", "enrollment-token", &workload_id, "--output", "id"]));
    assert!(enrollment.trim_end().starts_with("stw_enr_") && enrollment.lines().count() == 1, "{enrollment}");
    let secret_file = dir.path().join("key.txt");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let integration_id = ok(&mut bare(&[
        "integrations",
        "create",
        "--tenant",
        &tenant_id,
        "--name",
        "openai",
        "--provider",
        "openai",
        "--template",
        "tpl_openai",
        "--secret-file",
        secret_file.to_str().unwrap(),
        "--output",
        "id",
    ]));
    let integration_id = integration_id.trim_end().to_owned();
    assert!(integration_id.starts_with("i_") && !integration_id.contains(SECRET), "{integration_id}");
    assert_eq!(
        ok(&mut bare(&["integrations", "list", "--tenant", &tenant_id, "--output", "id"])).trim_end(),
        integration_id
    );
    let policy_ids = ok(&mut bare(&[
        "policies",
        "allow",
        "--integration",
        &integration_id,
        "--group",
        "openai_responses",
        "--output",
        "id",
    ]));
    assert!(policy_ids.lines().count() == 1 && policy_ids.starts_with("pol_"), "{policy_ids}");
    assert_eq!(ok(&mut bare(&["policies", "list", "--output", "id"])), policy_ids);
    let token_id = ok(&mut bare(&[
        "tokens", "create", "--name", "ci", "--role", "auditor", "--tenant", &tenant_id, "--output", "id",
    ]));
    assert!(token_id.starts_with("tok_") && token_id.lines().count() == 1, "{token_id}");
    assert!(ok(&mut bare(&["tokens", "list", "--output", "id"])).lines().any(|l| l == token_id.trim_end()));
    let templates = ok(&mut bare(&["templates", "list", "--output", "id"]));
    assert!(templates.lines().any(|l| l == "tpl_openai"), "{templates}");
    let events = ok(&mut bare(&["audit", "events", "--output", "id"]));
    assert!(
        !events.is_empty() && events.lines().all(|l| l.starts_with("evt_") || l.starts_with("ev_")),
        "{events}"
    );
    // `human`, the old name of the default, still works.
    assert!(ok(&mut bare(&["tenants", "list", "--output", "human"])).contains("TENANT_ID"));

    // templates get: the latest version without --version.
    let mut v2: Value = serde_json::from_str(&ok(&mut bare(&[
        "templates",
        "get",
        "tpl_openai",
        "--version",
        "1",
        "--output",
        "json",
    ])))
    .unwrap();
    let mut body = v2["template"].take();
    body["template_id"] = "tpl_mine".into();
    let file = dir.path().join("tpl.json");
    for version in [1, 2] {
        body["version"] = version.into();
        std::fs::write(&file, body.to_string()).unwrap();
        ok(&mut bare(&["templates", "publish", "--file", file.to_str().unwrap(), "--tenant", &tenant_id]));
    }
    let latest: Value = serde_json::from_str(&ok(&mut bare(&[
        "templates",
        "get",
        "tpl_mine",
        "--tenant",
        &tenant_id,
        "--output",
        "json",
    ])))
    .unwrap();
    assert_eq!(latest["version"], 2, "{latest}");
    let shown = ok(&mut bare(&["templates", "get", "tpl_openai"]));
    assert!(shown.contains("tpl_openai version 1") && shown.contains("path_groups"), "{shown}");
    let missing = run(&mut bare(&["templates", "get", "tpl_nope"]));
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("template_not_found"), "{}", stderr(&missing));

    // audit tail: every line fits 120 columns.
    let tail = ok(&mut bare(&["audit", "tail", "-n", "50"]));
    assert!(tail.lines().count() > 5 && tail.contains("admin_action"), "{tail}");
    for line in tail.lines() {
        assert!(line.chars().count() <= 120, "{} columns: {line}", line.chars().count());
    }

    assert_eq!(terminate(&mut child).code(), Some(0));

    // The server is gone: the refusal says which URL was tried, where it came from, and the flags
    // that point elsewhere.
    let admin_url = format!("http://127.0.0.1:{}", ports.admin);
    let down = run(&mut bare(&["whoami"]));
    assert_eq!(down.status.code(), Some(1));
    let text = stderr(&down);
    for part in [
        format!("cannot reach the admin API at {admin_url}"),
        format!("admin.listen in {}", Path::new("steward-data").join("steward.toml").display()),
        "Is `steward serve` running there?".to_owned(),
        "--admin-url URL (or STEWARD_ADMIN_URL)".to_owned(),
        "--data-dir DIR".to_owned(),
        "Connection refused".to_owned(),
    ] {
        assert!(text.contains(&part), "{part:?} missing: {text}");
    }
    let down = run(bare(&["whoami"]).env("STEWARD_ADMIN_URL", &admin_url));
    assert!(stderr(&down).contains(&format!("{admin_url} (from STEWARD_ADMIN_URL)")), "{}", stderr(&down));
}
