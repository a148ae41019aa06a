//! Real MCP clients against the real server: the official MCP Python SDK runs
//! the whole OAuth flow (discovery, registration, sign-in, code exchange, tool
//! calls, refresh), then the MCP Inspector CLI lists the tools with the token.
//!
//! The clients live outside the repository, in caches prepared on demand:
//! `MANA_PY_VENV` (default `$HOME/.cache/mana-py`, `pip install mcp==2.3.0`)
//! and `MANA_NPM_DIR` (default `$HOME/.cache/mana-npm`,
//! `@modelcontextprotocol/inspector@2.12.0`). When they cannot be installed
//! the test fails under `CI` and is skipped loudly otherwise.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;
use crate::oauth::{PASSWORD, login, mcp_status};

const MCP_PY: &str = "mcp==2.3.0";
const INSPECTOR: &str = "@modelcontextprotocol/inspector@2.12.0";

fn cache_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        home.join(".cache").join(default)
    })
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The venv's python with the SDK importable, installing it if needed.
fn python_sdk() -> Result<PathBuf, String> {
    let venv = cache_dir("MANA_PY_VENV", "mana-py");
    let python = venv.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args([
                "-c",
                "import mcp.client.auth, mcp.client.streamable_http, httpx2",
            ])
            .current_dir(std::env::temp_dir())
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready(&python) {
        return Ok(python);
    }
    eprintln!("preparing the MCP Python SDK in {}", venv.display());
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", MCP_PY]))?;
    if ready(&python) {
        Ok(python)
    } else {
        Err(format!("{MCP_PY} installed but not importable"))
    }
}

/// The Inspector's launcher, installing it if needed.
fn inspector() -> Result<PathBuf, String> {
    let dir = cache_dir("MANA_NPM_DIR", "mana-npm");
    let bin = dir.join("node_modules/.bin/mcp-inspector");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!("preparing the MCP Inspector in {}", dir.display());
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    run(Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(&dir)
        .args(["--no-audit", "--no-fund", "--loglevel=error", INSPECTOR]))?;
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{INSPECTOR} installed but {} is missing",
            bin.display()
        ))
    }
}

/// Fail under CI, skip loudly elsewhere.
fn unavailable(what: &str, why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required in CI but could not be prepared: {why}");
    }
    eprintln!("SKIPPED: {what} could not be prepared (set CI to make this fatal): {why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_runs_the_oauth_flow_and_the_inspector_uses_its_token() {
    let app = TestApp::spawn().await;
    let email = "sdk@example.com";
    app.register_user(email).await;
    let python = match tokio::task::spawn_blocking(python_sdk).await.unwrap() {
        Ok(p) => p,
        Err(why) => return unavailable("the MCP Python SDK", &why),
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/mcp_oauth_flow.py");
    let url = app.url("/mcp");
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            run(Command::new(&python)
                .arg(&script)
                .args([url.as_str(), email, PASSWORD])
                .current_dir(std::env::temp_dir()))
        }
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("the Python SDK flow failed: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("no JSON summary ({e}): {stdout}"));
    assert!(summary["tools"].as_u64().unwrap() >= 9, "{summary}");
    assert!(
        summary["tokensIssued"].as_u64().unwrap() >= 2,
        "the SDK refreshed: {summary}"
    );
    let access = summary["accessToken"].as_str().unwrap().to_owned();
    // The server saw one grant for the SDK's registered client.
    let owner = login(&app, email).await;
    let grants: Value = app
        .get_as(&owner, "/api/v1/oauth/grants")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        grants["grants"][0]["clientName"], "Python SDK test client",
        "{grants}"
    );
    assert_eq!(grants["grants"][0]["clientId"], summary["clientId"]);

    // The MCP Inspector CLI with the SDK's (refreshed) access token.
    let bin = match tokio::task::spawn_blocking(inspector).await.unwrap() {
        Ok(b) => b,
        Err(why) => return unavailable("the MCP Inspector CLI", &why),
    };
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        let access = access.clone();
        move || {
            run(Command::new(&bin)
                .arg("--cli")
                .arg(&url)
                .args(["--transport", "http", "--method", "tools/list", "--header"])
                .arg(format!("Authorization: Bearer {access}"))
                .current_dir(std::env::temp_dir()))
        }
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("the Inspector CLI failed: {e}"));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("todo_create") && listed.contains("notes_search"),
        "{listed}"
    );
    assert!(
        !listed.contains("todo_delete"),
        "destructive tools stay hidden: {listed}"
    );

    // Replaying the SDK's rotated refresh token kills the grant: the Inspector's token dies too.
    let resp = app
        .client
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    summary["rotatedRefreshToken"].as_str().unwrap(),
                ),
                ("client_id", summary["clientId"].as_str().unwrap()),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(mcp_status(&app, &access).await, StatusCode::UNAUTHORIZED);
}
