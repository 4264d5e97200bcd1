//! hubctl against real hubs: start → status → smoke → stop, a second start refused, status of
//! a stopped hub. Each test uses its own data dir and a free port.

mod common;

use std::process::Command;

use common::{free_port, hubctl, start, text};

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
