//! `hubctl report`: the N-hour pool report as JSON and Markdown, read-only on the database
//! (spec http-config-cli §10.5).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{Local, TimeZone};
use clap::Args;
use hub_server::store::{inspect, reports};
use serde_json::{Value, json};

use crate::instance::Instance;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Window length in hours, ending now.
    #[arg(long, env = "HOURS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..))]
    hours: u32,
    /// Database to read (default: the instance's, i.e. MCP_HUB_DB or <data>/hub.db).
    #[arg(long, env = "DB_PATH")]
    db: Option<PathBuf>,
    /// Directory for <tag>.json and <tag>.md.
    #[arg(long, env = "OUT_DIR", default_value = "/tmp/hub-reports")]
    out_dir: PathBuf,
    /// Report name (default pool-report-YYYYmmdd-HHMMSS).
    #[arg(long, env = "TAG")]
    tag: Option<String>,
    /// /health URL to include (default the instance's).
    #[arg(long, env = "HEALTH_ENDPOINT")]
    health_endpoint: Option<String>,
    /// Also print the JSON report to stdout.
    #[arg(long)]
    json: bool,
}

pub fn local_time(ms: i64) -> String {
    Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn local_hour(ms: i64) -> String {
    Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:00").to_string())
        .unwrap_or_default()
}

/// First matching code in a failure row's details, as the report names it.
fn failure_reason(details: &str) -> &'static str {
    const CODES: [(&str, &str); 7] = [
        ("PROFILE_MISMATCH", "PROFILE_MISMATCH"),
        ("CLAIM_EXPIRED", "CLAIM_EXPIRED"),
        ("TASK_ALREADY_DONE", "TASK_ALREADY_DONE"),
        ("ALREADY_CLAIMED", "ALREADY_CLAIMED"),
        ("EVIDENCE_REQUIRED", "MISSING_EVIDENCE_REFS"),
        ("VERIFIER_REQUIRED", "MISSING_VERIFIER"),
        ("DONE_GATE_FAILED", "LOW_CONFIDENCE"),
    ];
    CODES
        .iter()
        .find(|(code, _)| details.contains(code))
        .map(|(_, reason)| *reason)
        .unwrap_or("OTHER")
}

fn auth_json(counts: &reports::AuthCounts, key_name: &str) -> Value {
    json!({key_name: counts.key, "valid": counts.valid, "missing": counts.missing,
           "invalid": counts.invalid, "skipped": counts.skipped})
}

/// Builds the report object from the database.
pub fn build(db: &inspect::Location, hours: u32, now_ms: i64) -> anyhow::Result<Value> {
    let conn = db.open_read_only()?;
    let from = now_ms - i64::from(hours) * 3_600_000;
    let to = now_ms + 1;
    let current = reports::current(&conn, now_ms)?;
    let window = reports::window_counters(&conn, from, to)?;
    let auth = reports::auth_total(&conn, from, to)?;
    let denominator = auth.valid + auth.missing + auth.invalid;
    let coverage = if denominator == 0 {
        100.0
    } else {
        (auth.valid as f64 * 10_000.0 / denominator as f64).round() / 100.0
    };
    let claim_actions = [
        "claim_task",
        "claim_task_failed",
        "release_task_claim",
        "release_task_claim_failed",
        "release_task_claim_done_gate_failed",
        "renew_task_claim",
    ];
    let claims = reports::action_counts(&conn, from, to, &claim_actions)?;
    let mut reasons: Vec<(&str, i64)> = Vec::new();
    for details in reports::failure_details(&conn, from, to)? {
        let reason = failure_reason(&details);
        match reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some(entry) => entry.1 += 1,
            None => reasons.push((reason, 1)),
        }
    }
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let pairs = |rows: Vec<(String, i64)>, key: &str, value: &str| -> Vec<Value> {
        rows.into_iter()
            .map(|(k, v)| json!({key: k, value: v}))
            .collect()
    };
    Ok(json!({
        "summary": {
            "window": {
                "hours": hours, "from_ms": from, "to_ms": now_ms,
                "from_local": local_time(from), "to_local": local_time(now_ms),
            },
            "current": {
                "agents_total": current.agents_total,
                "agents_online": current.agents_online,
                "agents_offline": current.agents_offline,
                "tasks_open": current.tasks_pending + current.tasks_in_progress + current.tasks_blocked,
                "tasks_pending": current.tasks_pending,
                "tasks_in_progress": current.tasks_in_progress,
                "tasks_blocked": current.tasks_blocked,
                "claims_active": current.claims_active,
                "messages_total": current.messages_total,
                "context_keys_total": current.context_keys_total,
                "slo_open": current.slo_open,
            },
            "window_counters": {
                "activity_events": window.activity_events,
                "activity_failed": window.activity_failed,
                "tasks_created": window.tasks_created,
                "tasks_updated": window.tasks_updated,
                "status_done": window.status_done,
                "status_pending": window.status_pending,
                "messages_sent": window.messages_sent,
                "context_rows_updated": window.context_rows_updated,
                "slo_triggered": window.slo_triggered,
                "slo_resolved": window.slo_resolved,
            },
            "auth": {
                "valid": auth.valid, "missing": auth.missing, "invalid": auth.invalid,
                "skipped": auth.skipped, "coverage_pct": coverage,
            },
            "claims": {
                "claim_ok": claims[0], "claim_failed": claims[1],
                "release_ok": claims[2], "release_failed": claims[3],
                "done_gate_failed": claims[4], "renew_ok": claims[5],
            },
        },
        "top_actions": pairs(reports::top_actions(&conn, from, to, 20)?, "action", "count"),
        "auth_gaps_by_tool": reports::auth_gaps_by_tool(&conn, from, to)?
            .iter()
            .map(|c| json!({"tool": c.key, "valid": c.valid, "missing": c.missing, "invalid": c.invalid}))
            .collect::<Vec<_>>(),
        "auth_by_agent": reports::auth_by_agent(&conn, from, to)?
            .iter()
            .map(|c| auth_json(c, "agent_id"))
            .collect::<Vec<_>>(),
        "failure_reasons": reasons
            .iter()
            .map(|(reason, count)| json!({"reason": reason, "count": count}))
            .collect::<Vec<_>>(),
        "top_agents_by_activity": pairs(reports::top_agents(&conn, from, to, 20)?, "agent_id", "events"),
        "hourly_activity": reports::hourly_activity(&conn, from, to)?
            .into_iter()
            .map(|(hour, total, failed)| json!({"hour": local_hour(hour), "activity_total": total, "failed_events": failed}))
            .collect::<Vec<_>>(),
        "hourly_auth": reports::hourly_auth(&conn, from, to)?
            .into_iter()
            .map(|(hour, valid, missing, invalid)| json!({"hour": local_hour(hour), "valid": valid, "missing": missing, "invalid": invalid}))
            .collect::<Vec<_>>(),
        "namespace_throughput": reports::namespace_throughput(&conn, from, to)?
            .into_iter()
            .map(|n| json!({"namespace": n.namespace, "created_window": n.created_window,
                            "done_window": n.done_window, "pending_now": n.pending_now}))
            .collect::<Vec<_>>(),
    }))
}

fn list(out: &mut String, items: &[Value], limit: usize, line: impl Fn(&Value) -> String) {
    if items.is_empty() {
        out.push_str("- none\n");
    }
    for item in items.iter().take(limit) {
        let _ = writeln!(out, "- {}", line(item));
    }
}

/// The Markdown rendering of a report object.
pub fn markdown(report: &Value) -> String {
    let s = &report["summary"];
    let mut out = String::from("Pool Report\n\n");
    let _ = writeln!(
        out,
        "- Generated: {}",
        report["generated_at"].as_str().unwrap_or("")
    );
    let _ = writeln!(out, "- DB: {}", report["db_path"].as_str().unwrap_or(""));
    let _ = writeln!(
        out,
        "- Window: {} .. {} ({} h)",
        s["window"]["from_local"].as_str().unwrap_or(""),
        s["window"]["to_local"].as_str().unwrap_or(""),
        s["window"]["hours"]
    );
    match &report["health"] {
        Value::Object(health) => {
            let _ = writeln!(
                out,
                "- Health: auth_mode={} sessions={} namespace_quota_mode={} session_idle_timeout_ms={}",
                health.get("auth_mode").unwrap_or(&Value::Null),
                health.get("sessions").unwrap_or(&Value::Null),
                health.get("namespace_quota_mode").unwrap_or(&Value::Null),
                health
                    .get("session_idle_timeout_ms")
                    .unwrap_or(&Value::Null),
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "- Health: unavailable ({})",
                report["health_endpoint"].as_str().unwrap_or("")
            );
        }
    }
    let section = |out: &mut String, title: &str, object: &Value| {
        let _ = writeln!(out, "\n**{title}**\n");
        if let Value::Object(map) = object {
            for (key, value) in map {
                let _ = writeln!(out, "- {key}: {value}");
            }
        }
    };
    section(&mut out, "Current Snapshot", &s["current"]);
    section(&mut out, "Window Counters", &s["window_counters"]);
    let auth = &s["auth"];
    let _ = writeln!(out, "\n**Auth Coverage**\n");
    let coverage = if auth["valid"].as_i64().unwrap_or(0)
        + auth["missing"].as_i64().unwrap_or(0)
        + auth["invalid"].as_i64().unwrap_or(0)
        == 0
    {
        "n/a".to_string()
    } else {
        let pct = auth["coverage_pct"].as_f64().unwrap_or(0.0);
        if pct.fract() == 0.0 {
            format!("{pct:.0}%")
        } else {
            format!("{pct:.2}%")
        }
    };
    let _ = writeln!(
        out,
        "- coverage: {coverage}\n- valid: {}\n- missing: {}\n- invalid: {}\n- skipped: {}",
        auth["valid"], auth["missing"], auth["invalid"], auth["skipped"]
    );
    let c = &s["claims"];
    let _ = writeln!(out, "\n**Claims**\n");
    let _ = writeln!(
        out,
        "- claim: {} ok / {} failed\n- release: {} ok / {} failed\n- done gate failed: {}\n- renew: {} ok",
        c["claim_ok"],
        c["claim_failed"],
        c["release_ok"],
        c["release_failed"],
        c["done_gate_failed"],
        c["renew_ok"]
    );
    let array = |key: &str| report[key].as_array().cloned().unwrap_or_default();
    out.push_str("\n**Top Actions**\n\n");
    list(&mut out, &array("top_actions"), 12, |v| {
        format!("{}: {}", v["action"].as_str().unwrap_or(""), v["count"])
    });
    out.push_str("\n**Auth Gaps By Tool**\n\n");
    list(&mut out, &array("auth_gaps_by_tool"), 20, |v| {
        format!(
            "{}: missing {}, invalid {}, valid {}",
            v["tool"].as_str().unwrap_or(""),
            v["missing"],
            v["invalid"],
            v["valid"]
        )
    });
    out.push_str("\n**Failure Reasons**\n\n");
    list(&mut out, &array("failure_reasons"), 20, |v| {
        format!("{}: {}", v["reason"].as_str().unwrap_or(""), v["count"])
    });
    out.push_str("\n**Top Agents By Activity**\n\n");
    list(&mut out, &array("top_agents_by_activity"), 12, |v| {
        format!("{}: {}", v["agent_id"].as_str().unwrap_or(""), v["events"])
    });
    out.push_str("\n**Namespace Throughput**\n\n");
    list(&mut out, &array("namespace_throughput"), 20, |v| {
        format!(
            "{}: created {}, done {}, pending now {}",
            v["namespace"].as_str().unwrap_or(""),
            v["created_window"],
            v["done_window"],
            v["pending_now"]
        )
    });
    out
}

pub async fn run(instance: &Instance, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let Some(db) = instance.existing_db(args.db.as_deref()) else {
        return Ok(ExitCode::FAILURE);
    };
    let now = Local::now();
    let tag = args
        .tag
        .clone()
        .unwrap_or_else(|| format!("pool-report-{}", now.format("%Y%m%d-%H%M%S")));
    let health_endpoint = args
        .health_endpoint
        .clone()
        .unwrap_or_else(|| instance.health_url());
    let health = super::status::fetch_health(&health_endpoint).await;
    // The store's reads block (a PostgreSQL client runs its own runtime): off the workers.
    let mut report = tokio::task::block_in_place(|| build(&db, args.hours, now.timestamp_millis()))
        .with_context(|| format!("reading {}", db.describe()))?;
    let object = report.as_object_mut().expect("report is an object");
    object.insert("generated_at".into(), json!(now.to_rfc3339()));
    object.insert("db_path".into(), json!(db.describe()));
    object.insert("health_endpoint".into(), json!(health_endpoint));
    object.insert("health".into(), health.unwrap_or(Value::Null));

    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let json_path = args.out_dir.join(format!("{tag}.json"));
    let md_path = args.out_dir.join(format!("{tag}.md"));
    std::fs::write(
        &json_path,
        format!("{}\n", serde_json::to_string_pretty(&report)?),
    )?;
    std::fs::write(&md_path, markdown(&report))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    println!("Report generated:");
    println!("  JSON: {}", json_path.display());
    println!("  MD: {}", md_path.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_take_the_first_matching_code() {
        assert_eq!(
            failure_reason("task 3: refused (PROFILE_MISMATCH)"),
            "PROFILE_MISMATCH"
        );
        assert_eq!(
            failure_reason("(EVIDENCE_REQUIRED)"),
            "MISSING_EVIDENCE_REFS"
        );
        assert_eq!(failure_reason("(VERIFIER_REQUIRED)"), "MISSING_VERIFIER");
        assert_eq!(failure_reason("(DONE_GATE_FAILED)"), "LOW_CONFIDENCE");
        assert_eq!(failure_reason("something else"), "OTHER");
    }
}
