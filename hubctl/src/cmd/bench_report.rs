//! Reports of `hubctl bench`: one [`RunReport`] per hub run (a ping phase plus the tool
//! phases measured on the same sessions), printed as a comfy-table or as JSON. Each tool's
//! throughput is shown as a share of the ping throughput of the same run.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use super::bench_runner::PhaseStats;

/// The phases measured on one hub.
#[derive(Debug, Clone)]
pub(crate) struct RunReport {
    pub(crate) hub: String,
    /// The transport's ceiling at this run's concurrency (None when not measured).
    pub(crate) ping: Option<PhaseStats>,
    pub(crate) phases: Vec<PhaseStats>,
    /// Why writer CPU figures are missing, if they are.
    pub(crate) writer_note: Option<String>,
    /// Why database statement counts are missing on a PostgreSQL run, if they are.
    pub(crate) db_note: Option<String>,
}

impl RunReport {
    /// Throughput of `phase` as a percentage of this run's ping throughput.
    fn percent_of_ping(&self, phase: &PhaseStats) -> Option<f64> {
        let ping = self.ping.as_ref()?.calls_per_sec();
        (ping > 0.0).then(|| phase.calls_per_sec() / ping * 100.0)
    }

    /// Ping first, then the tool phases.
    fn rows(&self) -> impl Iterator<Item = &PhaseStats> {
        self.ping.iter().chain(&self.phases)
    }

    pub(crate) fn to_json(&self) -> Value {
        let phase = |stats: &PhaseStats| {
            json!({
                "tool": stats.label,
                "clients": stats.clients,
                "ops": stats.ops,
                "calls": stats.calls,
                "errors": stats.errors,
                "seconds": round2(stats.seconds),
                "calls_per_sec": round2(stats.calls_per_sec()),
                "p50_ms": round2(stats.p50_ms),
                "p95_ms": round2(stats.p95_ms),
                "p99_ms": round2(stats.p99_ms),
                "mean_ms": round2(stats.mean_ms),
                "percent_of_ping": self.percent_of_ping(stats).map(round2),
                "writer_cpu_seconds": stats.writer.map(|w| round3(w.cpu_seconds)),
                "writer_cpu_us_per_call": stats.writer_us_per_call().map(round2),
                "writer_percent_of_core": stats.writer_percent_of_core().map(round2),
                "db_statements": stats.db.and_then(|db| db.statements),
                "db_transactions": stats.db.map(|db| db.transactions),
                "db_statements_per_call": stats.statements_per_call().map(round2),
                "db_transactions_per_call": stats.transactions_per_call().map(round2),
            })
        };
        json!({
            "hub": self.hub,
            "ping": self.ping.as_ref().map(phase),
            "results": self.phases.iter().map(phase).collect::<Vec<_>>(),
            "writer_note": self.writer_note,
            "db_note": self.db_note,
        })
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn or_na(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map(format).unwrap_or_else(|| "n/a".into())
}

/// The JSON document of a scenario's runs (`extra` fields are merged in at the top level).
pub(crate) fn report_json(scenario: &str, runs: &[RunReport], extra: Value) -> Value {
    let mut report = json!({
        "scenario": scenario,
        "runs": runs.iter().map(RunReport::to_json).collect::<Vec<_>>(),
    });
    if let (Some(report), Value::Object(extra)) = (report.as_object_mut(), extra) {
        report.extend(extra);
    }
    report
}

/// The runs as one table: calls/s (MCP requests), latency per op, % of ping, writer CPU.
pub(crate) fn runs_table(runs: &[RunReport]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "hub",
        "tool",
        "clients",
        "ops",
        "calls/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "% of ping",
        "writer µs/call",
        "writer % core",
    ]);
    for run in runs {
        for stats in run.rows() {
            table.add_row(vec![
                run.hub.clone(),
                stats.label.to_string(),
                stats.clients.to_string(),
                stats.ops.to_string(),
                format!("{:.0}", stats.calls_per_sec()),
                format!("{:.2}", stats.p50_ms),
                format!("{:.2}", stats.p95_ms),
                format!("{:.2}", stats.p99_ms),
                stats.errors.to_string(),
                or_na(run.percent_of_ping(stats), |p| format!("{p:.1} %")),
                or_na(stats.writer_us_per_call(), |us| format!("{us:.1}")),
                or_na(stats.writer_percent_of_core(), |p| format!("{p:.1} %")),
            ]);
        }
    }
    table
}

/// Prints the runs as a table (with notes) or as JSON.
pub(crate) fn print_runs(scenario: &str, runs: &[RunReport], as_json: bool) {
    if as_json {
        let report = report_json(scenario, runs, Value::Null);
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serializable")
        );
        return;
    }
    println!("{}", runs_table(runs));
    print_notes(runs);
}

pub(crate) fn print_notes(runs: &[RunReport]) {
    println!(
        "calls/s counts MCP requests (a claim cycle is 2); latencies are per op. \
         % of ping = calls/s / ping calls/s of the same run and sessions."
    );
    for run in runs {
        if let Some(note) = &run.writer_note {
            println!("{}: writer CPU n/a ({note})", run.hub);
        }
    }
    if let Some(table) = db_table(runs) {
        println!("{table}");
        println!(
            "Database cost per MCP request, PostgreSQL runs: statements = SUM(calls) of \
             pg_stat_statements (BEGIN/COMMIT included), transactions = xact_commit + \
             xact_rollback of pg_stat_database (writer groups + read snapshots). Each reading \
             waits for the backends' 10 s statistics flush, so a phase's figures include that \
             idle time's background work."
        );
        for run in runs {
            if let Some(note) = &run.db_note {
                println!("{}: statements n/a ({note})", run.hub);
            }
        }
    }
}

/// Statements and transactions per call of the phases that have database figures.
fn db_table(runs: &[RunReport]) -> Option<Table> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "hub",
        "tool",
        "calls",
        "statements",
        "statements/call",
        "transactions",
        "transactions/call",
    ]);
    let mut any = false;
    for run in runs {
        for stats in run.rows() {
            let Some(db) = stats.db else { continue };
            any = true;
            table.add_row(vec![
                run.hub.clone(),
                stats.label.to_string(),
                stats.calls.to_string(),
                or_na(db.statements.map(|n| n as f64), |n| format!("{n:.0}")),
                or_na(stats.statements_per_call(), |n| format!("{n:.2}")),
                db.transactions.to_string(),
                or_na(stats.transactions_per_call(), |n| format!("{n:.2}")),
            ]);
        }
    }
    any.then_some(table)
}
