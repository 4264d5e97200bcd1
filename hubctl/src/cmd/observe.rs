//! `hubctl observe`: read-only live sampling of a hub's database into JSONL plus a summary
//! JSON (spec http-config-cli §10.4): one aligned row per sample, then the trend as a table;
//! `--json` prints only the summary JSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::Local;
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use hub_server::store::{inspect, reports};
use serde_json::{Value, json};

use super::bench_runner::progress_bar;
use crate::instance::Instance;

#[derive(Debug, Args)]
pub struct ObserveArgs {
    /// Seconds between samples.
    #[arg(long, env = "INTERVAL_SEC", default_value_t = 30)]
    interval_sec: u64,
    /// Number of samples.
    #[arg(long, env = "SAMPLES", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    samples: u32,
    /// Directory for <tag>.jsonl and <tag>.summary.json.
    #[arg(long, env = "OUT_DIR", default_value = "/tmp/hub-observer")]
    out_dir: PathBuf,
    /// Observation name (default obs-<unix seconds>).
    #[arg(long, env = "TAG")]
    tag: Option<String>,
    /// Database to read (default: the instance's).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Print only the summary JSON (no live rows, no tables).
    #[arg(long)]
    json: bool,
}

/// Columns of the live view: one aligned row per sample under one header.
const LIVE_COLUMNS: [(&str, &str); 8] = [
    ("agents 5m", "agents_online_5m"),
    ("pending", "tasks_pending"),
    ("in progress", "tasks_in_progress"),
    ("done", "tasks_done"),
    ("claims", "claims_active"),
    ("msgs/1m", "messages_1m"),
    ("activity/1m", "activity_1m"),
    ("blobs", "protocol_blobs_total"),
];

fn live_header() -> String {
    let mut line = format!("{:<8}", "sample");
    for (title, _) in LIVE_COLUMNS {
        line.push_str(&format!(" {title:>12}"));
    }
    line
}

fn live_row(label: &str, sample: &Value) -> String {
    let mut line = format!("{label:<8}");
    for (_, key) in LIVE_COLUMNS {
        line.push_str(&format!(" {:>12}", sample[key].as_i64().unwrap_or(0)));
    }
    line
}

/// The summary's trend as a two-column table.
fn trend_table(summary: &Value) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["trend", "value"]);
    if let Some(trend) = summary["trend"].as_object() {
        for (key, value) in trend {
            table.add_row(vec![key.clone(), value.to_string()]);
        }
    }
    table
}

fn sample(conn: &inspect::ReadOnlyConnection) -> anyhow::Result<Value> {
    let now = Local::now();
    let now_ms = now.timestamp_millis();
    let current = reports::current(conn, now_ms)?;
    let rates = reports::observer_rates(conn, now_ms)?;
    Ok(json!({
        "ts": now_ms,
        "iso": now.to_rfc3339(),
        "agents_total": current.agents_total,
        "agents_online_5m": current.agents_online_5m,
        "tasks_total": current.tasks_total,
        "tasks_pending": current.tasks_pending,
        "tasks_in_progress": current.tasks_in_progress,
        "tasks_done": current.tasks_done,
        "claims_active": current.claims_active,
        "messages_total": current.messages_total,
        "messages_1m": rates.messages_1m,
        "activity_total": current.activity_total,
        "activity_1m": rates.activity_1m,
        "protocol_blobs_total": current.protocol_blobs_total,
        "top_actions_5m": rates.top_actions_5m.iter()
            .map(|(action, c)| json!({"action": action, "c": c})).collect::<Vec<_>>(),
        "by_namespace": rates.by_namespace.iter()
            .map(|(ns, c, pending, in_progress)| json!({"ns": ns, "c": c, "pending": pending, "in_progress": in_progress}))
            .collect::<Vec<_>>(),
    }))
}

fn summary(tag: &str, name: &str, interval: u64, samples: &[Value]) -> Value {
    let field = |s: &Value, key: &str| s[key].as_i64().unwrap_or(0);
    let values = |key: &str| samples.iter().map(|s| field(s, key)).collect::<Vec<i64>>();
    let mean = |key: &str| values(key).iter().sum::<i64>() / samples.len().max(1) as i64;
    let min = |key: &str| values(key).into_iter().min().unwrap_or(0);
    let max = |key: &str| values(key).into_iter().max().unwrap_or(0);
    let first = samples.first().cloned().unwrap_or(Value::Null);
    let last = samples.last().cloned().unwrap_or(Value::Null);
    let delta = |key: &str| field(&last, key) - field(&first, key);
    json!({
        "tag": tag,
        "container": name,
        "samples": samples.len(),
        "interval_sec": interval,
        "window_sec": (samples.len().saturating_sub(1) as u64) * interval,
        "first_ts": first["iso"],
        "last_ts": last["iso"],
        "snapshot": last,
        "trend": {
            "activity_1m_avg": mean("activity_1m"),
            "messages_1m_avg": mean("messages_1m"),
            "tasks_pending_min": min("tasks_pending"),
            "tasks_pending_max": max("tasks_pending"),
            "tasks_in_progress_min": min("tasks_in_progress"),
            "tasks_in_progress_max": max("tasks_in_progress"),
            "claims_active_min": min("claims_active"),
            "claims_active_max": max("claims_active"),
            "done_delta": delta("tasks_done"),
            "messages_delta": delta("messages_total"),
            "activity_delta": delta("activity_total"),
        }
    })
}

pub async fn run(instance: &Instance, args: ObserveArgs) -> anyhow::Result<ExitCode> {
    let Some(db) = instance.existing_db(args.db.as_deref()) else {
        return Ok(ExitCode::FAILURE);
    };
    // The store's reads block (a PostgreSQL client runs its own runtime): off the workers.
    let conn = tokio::task::block_in_place(|| db.open_read_only())?;
    let tag = args
        .tag
        .clone()
        .unwrap_or_else(|| format!("obs-{}", Local::now().timestamp()));
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let raw_path = args.out_dir.join(format!("{tag}.jsonl"));
    let summary_path = args.out_dir.join(format!("{tag}.summary.json"));
    let mut raw = std::fs::File::create(&raw_path)
        .with_context(|| format!("creating {}", raw_path.display()))?;
    let mut samples = Vec::new();
    if !args.json {
        println!("{}", live_header());
    }
    for index in 0..args.samples {
        if index > 0 {
            // A countdown on a terminal (hidden when piped) rather than a silent pause.
            let wait = progress_bar(args.interval_sec, "s");
            wait.set_message("until the next sample");
            for second in 0..args.interval_sec {
                wait.set_position(second);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            wait.finish_and_clear();
        }
        let row = tokio::task::block_in_place(|| sample(&conn))?;
        writeln!(raw, "{row}")?;
        let label = format!("{}/{}", index + 1, args.samples);
        if args.json {
            eprintln!("sample {label} collected");
        } else {
            println!("{}", live_row(&label, &row));
        }
        samples.push(row);
    }
    let summary = summary(&tag, &instance.name, args.interval_sec, &samples);
    std::fs::write(
        &summary_path,
        format!("{}\n", serde_json::to_string_pretty(&summary)?),
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("Observation complete.");
    println!("Raw: {}", raw_path.display());
    println!("Summary: {}", summary_path.display());
    println!("{}", trend_table(&summary));
    Ok(ExitCode::SUCCESS)
}
