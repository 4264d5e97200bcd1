//! `hubctl bench ping` against a real hub started by `hubctl start`: a short run with the
//! hub's pid produces a positive ping count and a JSON report with every field (figures
//! are not asserted — speed is for BENCHMARKS.md, not for tests).

mod common;

use common::{free_port, hubctl, start, text};

#[test]
fn bench_ping_reports_calls_and_writer_fields() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_started, _guard) = start(data.path(), port);
    let pidfile = std::fs::read_to_string(data.path().join("hub.pid")).unwrap();
    let pid = pidfile.lines().next().unwrap().trim().to_string();

    let endpoint = format!("http://127.0.0.1:{port}/mcp");
    let args = [
        "bench",
        "ping",
        "--endpoint",
        &endpoint,
        "--hub-pid",
        &pid,
        "--clients",
        "2",
        "--seconds",
        "1",
        "--json",
    ];
    let bench = hubctl(data.path(), port, &args);
    assert!(bench.status.success(), "{}", text(&bench));
    let report: serde_json::Value = serde_json::from_slice(&bench.stdout).unwrap();
    assert_eq!(report["scenario"], "ping");
    let run = &report["runs"][0];
    assert_eq!(run["hub"], "external");
    assert!(run["writer_note"].is_null(), "writer found: {run}");
    assert_eq!(run["results"].as_array().unwrap().len(), 0);
    let ping = &run["ping"];
    assert_eq!(ping["tool"], "ping");
    assert_eq!(ping["clients"], 2);
    assert!(ping["ops"].as_u64().unwrap() > 0, "{ping}");
    assert_eq!(ping["errors"], 0);
    for field in [
        "calls_per_sec",
        "p50_ms",
        "p99_ms",
        "percent_of_ping",
        "writer_cpu_us_per_call",
        "writer_percent_of_core",
    ] {
        assert!(ping[field].is_number(), "{field} missing in {ping}");
    }
}
