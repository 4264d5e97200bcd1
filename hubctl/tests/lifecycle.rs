//! hubctl against real hubs: start → status → smoke → stop, a second start refused, status of
//! a stopped hub. Each test uses its own data dir and a free port.

mod common;

use std::path::Path;
use std::process::Command;

use common::{free_port, hubctl, hubctl_command, start, text, with_stdin};

#[test]
fn start_status_smoke_stop() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (started, _guard) = start(data.path(), port);
    assert!(text(&started).contains(&format!("Server: http://localhost:{port}/mcp")));
    assert!(data.path().join("hub.pid").is_file());

    let status = hubctl(data.path(), port, &["status", "--json"]);
    assert!(status.status.success(), "{}", text(&status));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["running"], true);
    assert_eq!(report["health"]["status"], "ok");
    assert_eq!(report["port"], port);
    // The operator view: profile and auth mode, one table, no raw JSON, no colour when piped.
    let plain = hubctl(data.path(), port, &["status"]);
    let shown = text(&plain);
    assert!(shown.contains("Profile: base:"), "{shown}");
    assert!(shown.contains("auth mode: observe"), "{shown}");
    assert!(shown.contains("running"), "{shown}");
    assert!(!shown.contains('{'), "no JSON dump: {shown}");
    assert!(
        !shown.contains('\x1b'),
        "no colour codes when piped: {shown}"
    );

    let smoke = hubctl(data.path(), port, &["smoke"]);
    assert!(smoke.status.success(), "{}", text(&smoke));
    assert!(text(&smoke).contains("Smoke test passed: session="));

    let logs = hubctl(data.path(), port, &["logs"]);
    assert!(text(&logs).contains("Agent Hub listening on"));

    let stopped = hubctl(data.path(), port, &["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert!(!data.path().join("hub.pid").exists());
    let status = hubctl(data.path(), port, &["status"]);
    assert!(
        !status.status.success(),
        "status of a stopped hub exits non-zero"
    );
    assert!(text(&status).contains("is not running"));
}

#[test]
fn a_second_copy_is_refused_on_the_same_data_dir_or_port() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_started, _guard) = start(data.path(), port);
    let pid_before = std::fs::read_to_string(data.path().join("hub.pid")).unwrap();

    let again = hubctl(data.path(), port, &["start"]);
    assert!(text(&again).contains("already running"), "{}", text(&again));
    let pid_after = std::fs::read_to_string(data.path().join("hub.pid")).unwrap();
    assert_eq!(pid_before, pid_after, "no second process");

    let other = tempfile::tempdir().unwrap();
    let clash = hubctl(other.path(), port, &["start"]);
    assert!(!clash.status.success());
    assert!(text(&clash).contains("already in use"), "{}", text(&clash));
}

#[test]
fn stopped_hub_status_smoke_and_db_fail_clearly() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let status = hubctl(data.path(), port, &["status"]);
    assert!(!status.status.success());
    assert!(text(&status).contains("is not running"));
    assert!(text(&status).contains("Database: not created yet"));

    let smoke = hubctl(data.path(), port, &["smoke"]);
    assert!(!smoke.status.success());
    assert!(
        text(&smoke).starts_with("Smoke test failed:"),
        "{}",
        text(&smoke)
    );
    assert!(text(&smoke).contains("restart"));

    let db = hubctl(data.path(), port, &["db", "--builtin"]);
    assert!(!db.status.success());
    assert!(text(&db).contains("Database not found at"));

    let stop = hubctl(data.path(), port, &["stop"]);
    assert!(stop.status.success());
    assert!(text(&stop).contains("is not running"));
}

#[test]
fn invalid_configuration_names_the_variable() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hubctl"))
        .arg("--data")
        .arg(data.path())
        .arg("status")
        .env("MCP_HUB_AUTH_MODE", "enforse")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = text(&output);
    assert!(message.contains("MCP_HUB_AUTH_MODE"), "{message}");
    assert!(message.contains("observe, warn, enforce"), "{message}");
}

#[test]
fn clean_asks_first_and_no_leaves_the_hub_running() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_started, _guard) = start(data.path(), port);

    let declined = with_stdin(hubctl_command(data.path(), port, &["clean"]), "n\n");
    assert!(declined.status.success(), "{}", text(&declined));
    assert!(text(&declined).contains("Nothing changed."));
    let status = hubctl(data.path(), port, &["status", "--json"]);
    assert!(status.status.success(), "still running: {}", text(&status));
    assert!(data.path().join("hub.db").is_file());

    let accepted = with_stdin(hubctl_command(data.path(), port, &["clean"]), "y\n");
    assert!(accepted.status.success(), "{}", text(&accepted));
    assert!(text(&accepted).contains("Stopping"), "{}", text(&accepted));
    assert!(text(&accepted).contains("Database removed."));
    assert!(!data.path().exists());
    let status = hubctl(data.path(), port, &["status"]);
    assert!(text(&status).contains("is not running"));
}

/// `hubctl status` of a hubctl binary at `exe`, run in `cwd` with no profile variables.
fn status_from(exe: &Path, cwd: &Path, data: &Path, extra: &[&str]) -> String {
    let output = Command::new(exe)
        .arg("--data")
        .arg(data)
        .arg("--port")
        .arg(free_port().to_string())
        .arg("status")
        .args(extra)
        .current_dir(cwd)
        .env_remove("MCP_HUB_ENV_FILE")
        .env_remove("MCP_HUB_LOCAL_ENV_FILE")
        .env_remove("MCP_HUB_AUTH_MODE")
        .output()
        .unwrap();
    text(&output)
}

#[test]
fn the_profile_does_not_depend_on_the_working_directory() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();

    // A checkout's hubctl uses the checkout's deploy/ profile from any directory.
    let checkout = Path::new(env!("CARGO_BIN_EXE_hubctl"));
    let production = repo.join("deploy/hub.production.env");
    let expected = format!("Profile: base:{}", production.display());
    for cwd in [repo, elsewhere.path()] {
        let shown = status_from(checkout, cwd, data.path(), &[]);
        assert!(shown.contains(&expected), "from {cwd:?}: {shown}");
        assert!(shown.contains("auth mode: enforce"), "{shown}");
    }

    // An installed hubctl with no deploy/ beside it reads the data dir's profile, again
    // from any directory (the repo root included).
    let install = tempfile::tempdir().unwrap();
    let installed = install.path().join("hubctl");
    if std::fs::hard_link(checkout, &installed).is_err() {
        std::fs::copy(checkout, &installed).unwrap();
    }
    std::fs::write(
        data.path().join("hub.production.env"),
        "MCP_HUB_AUTH_MODE=warn\n",
    )
    .unwrap();
    let expected = format!(
        "Profile: base:{}; auth mode: warn",
        data.path().join("hub.production.env").display()
    );
    for cwd in [repo, elsewhere.path()] {
        let shown = status_from(&installed, cwd, data.path(), &[]);
        assert!(shown.contains(&expected), "from {cwd:?}: {shown}");
    }

    // --profile replaces the default profile.
    let chosen = elsewhere.path().join("observe.env");
    std::fs::write(&chosen, "MCP_HUB_AUTH_MODE=observe\n").unwrap();
    let shown = status_from(
        &installed,
        repo,
        data.path(),
        &["--profile", chosen.to_str().unwrap()],
    );
    assert!(
        shown.contains(&format!(
            "Profile: base:{}; auth mode: observe",
            chosen.display()
        )),
        "{shown}"
    );
}

#[test]
fn test_needs_a_source_checkout() {
    // An installed hubctl (no checkout around it) run outside a checkout says so.
    let install = tempfile::tempdir().unwrap();
    let installed = install.path().join("hubctl");
    let checkout = Path::new(env!("CARGO_BIN_EXE_hubctl"));
    if std::fs::hard_link(checkout, &installed).is_err() {
        std::fs::copy(checkout, &installed).unwrap();
    }
    let output = Command::new(&installed)
        .args(["test", "--skip-interop"])
        .current_dir(install.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        text(&output).contains("no source checkout"),
        "{}",
        text(&output)
    );
}
