//! The official SDK clients under `tests/clients/` (installed by `scripts/install-test-clients`) and a
//! runner for their scripts. A missing install is an error telling what to run: tests fail, never skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};

const INSTALL_HINT: &str = "run scripts/install-test-clients";

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tests/clients/` of the workspace.
pub fn clients_dir() -> PathBuf {
    workspace_root().join("tests/clients")
}

/// A script of `tests/clients/` by file name, e.g. `openai_agent.py`.
pub fn script(name: &str) -> PathBuf {
    clients_dir().join(name)
}

/// The Python interpreter of `tests/clients/.venv` (with openai, anthropic and mcp installed).
pub fn python() -> Result<PathBuf> {
    let dir = clients_dir();
    let python = dir.join(".venv/bin/python");
    if !python.exists() || !dir.join(".venv/.installed").exists() {
        bail!("the Python test clients are not installed ({} is missing): {INSTALL_HINT}", python.display());
    }
    Ok(python)
}

/// The `node` binary on `PATH`, once `tests/clients/node_modules` holds the SDKs.
pub fn node() -> Result<PathBuf> {
    let modules = clients_dir().join("node_modules");
    if !modules.join("openai/package.json").exists() || !modules.join(".installed").exists() {
        bail!("the Node test clients are not installed ({} is missing): {INSTALL_HINT}", modules.display());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("node"))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("no `node` on PATH: install Node.js 20+, then {INSTALL_HINT}"))
}

/// What a client script printed and how it ended.
#[derive(Debug)]
pub struct ScriptRun {
    pub success: bool,
    /// Its stdout as JSON (`Null` when it was not JSON).
    pub json: serde_json::Value,
    pub stdout: String,
    pub stderr: String,
}

/// Provider variables a script must never inherit from the machine running the tests.
const PROVIDER_VARS: [&str; 7] = [
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
];

/// Runs `interpreter script` with `env` added (inherited provider variables removed), in
/// `tests/clients/`, and fails after `timeout`.
pub async fn run_script(
    interpreter: &Path,
    script_name: &str,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<ScriptRun> {
    let mut command = tokio::process::Command::new(interpreter);
    command.arg(script(script_name)).current_dir(clients_dir()).stdin(Stdio::null()).kill_on_drop(true);
    for name in PROVIDER_VARS {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .with_context(|| format!("{script_name} did not finish within {timeout:?}"))?
        .with_context(|| format!("start {} {script_name}", interpreter.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    Ok(ScriptRun {
        success: output.status.success(),
        json: serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
