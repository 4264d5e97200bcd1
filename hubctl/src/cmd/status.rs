//! `hubctl status`: profile, process, pid, port, uptime and the main /health fields of the
//! instance as one table (the whole /health object only with `--json`). Exits non-zero when
//! the hub is down or does not answer.

use std::process::ExitCode;
use std::time::Duration;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use crate::instance::Instance;
use crate::term::{Tone, paint};

/// The /health fields an operator reads in the status table (`--json` has them all).
const HEALTH_ROWS: [&str; 8] = [
    "status",
    "version",
    "auth_mode",
    "sessions",
    "unknown_session_policy",
    "session_idle_timeout_ms",
    "namespace_quota_mode",
    "db_sync",
];

fn human_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < units.len() {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", units[unit])
    }
}

fn human_duration(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Fetches /health (2 s timeout).
pub async fn fetch_health(url: &str) -> Option<Value> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let response = http.get(url).send().await.ok()?;
    response.json::<Value>().await.ok()
}

pub async fn run(instance: &Instance, as_json: bool) -> anyhow::Result<ExitCode> {
    let running = instance.running()?;
    let health = match running {
        Some(_) => fetch_health(&instance.health_url()).await,
        None => None,
    };
    let db_size = std::fs::metadata(instance.db_path()).ok().map(|m| m.len());
    let listen: Vec<String> = instance
        .config
        .bind_addresses()
        .iter()
        .map(|a| format!("{a}:{}", instance.port()))
        .collect();
    let uptime_ms = running.map(|r| crate::cmd::start::now_ms() - r.started_ms);
    let up = running.is_some() && health.is_some();

    if as_json {
        let report = json!({
            "name": instance.name,
            "running": running.is_some(),
            "healthy": health.is_some(),
            "pid": running.map(|r| r.pid),
            "port": instance.port(),
            "listen": listen,
            "uptime_ms": uptime_ms,
            "env_config": instance.env_files(),
            "auth_mode": instance.config.auth_mode.as_str(),
            "health": health,
            "database": {"path": instance.db_path(), "size_bytes": db_size},
            "log": instance.logfile(),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(if up {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    if instance.env_files().is_empty() {
        println!("Env config: none");
    } else {
        println!("Env config:");
        for file in instance.env_files() {
            println!("  {file}");
        }
    }
    println!("{}", instance.profile_line());
    match running {
        None => println!("{} is {}.", instance.name, paint("not running", Tone::Bad)),
        Some(record) => {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            let state = match &health {
                Some(_) => paint("running", Tone::Good),
                None => paint("running, health check failed", Tone::Bad),
            };
            table.add_row(vec!["instance".to_string(), instance.name.clone()]);
            table.add_row(vec!["state".to_string(), state]);
            table.add_row(vec!["pid".to_string(), record.pid.to_string()]);
            table.add_row(vec!["listen".to_string(), listen.join(", ")]);
            table.add_row(vec![
                "uptime".to_string(),
                uptime_ms.map(human_duration).unwrap_or_default(),
            ]);
            for key in HEALTH_ROWS {
                if let Some(value) = health.as_ref().and_then(|h| h.get(key)) {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    table.add_row(vec![key.to_string(), text]);
                }
            }
            println!("{table}");
        }
    }
    match db_size {
        Some(size) => println!(
            "Database: {} ({})",
            instance.db_path().display(),
            human_size(size)
        ),
        None => println!("Database: not created yet"),
    }
    Ok(if up {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_duration(3_725_000), "1h02m05s");
        assert_eq!(human_duration(65_000), "1m05s");
    }
}
