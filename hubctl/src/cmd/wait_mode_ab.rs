//! `hubctl wait-mode-ab` (spec http-config-cli §10.3): payload size and latency of a
//! `wait_for_updates` that wakes on a message, per response mode. Each round takes a fresh
//! cursor (a short wait), sends the agent a message, then times the wait that reports it.
//!
//! Client differences from the other rounds, kept from the legacy script so figures stay
//! comparable: no health wait, protocol 2025-03-26, no Accept header, no HTTP retries or
//! timeouts; a session error re-handshakes once and the new session is kept (D20).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::bench_runner::progress_bar;
use super::round::{
    RoundAgent, RoundSession, TokenPolicy, cell, generated_at, parse_switch, publish, round_to,
    table, unix_seconds,
};
use crate::client::ClientOptions;

#[derive(Debug, Args)]
pub struct WaitAbArgs {
    /// The hub's MCP endpoint.
    #[arg(long, env = "ENDPOINT", default_value = "http://localhost:3300/mcp")]
    endpoint: String,
    /// Rounds per mode.
    #[arg(long, env = "ROUNDS", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// wait_ms of the timed wait.
    #[arg(long, env = "WAIT_MS", default_value_t = 1500)]
    wait_ms: u64,
    /// poll_interval_ms sent with every wait.
    #[arg(long, env = "POLL_INTERVAL_MS", default_value_t = 100)]
    poll_interval_ms: u64,
    /// Modes to compare, comma-separated: default (the hub's), tiny, micro, nano.
    #[arg(
        long,
        env = "WAIT_MODES",
        value_enum,
        value_delimiter = ',',
        ignore_case = true,
        default_value = "tiny,micro,nano"
    )]
    wait_modes: Vec<WaitMode>,
    /// Re-handshake once when the hub reports an unknown session (0/1/true/false).
    #[arg(long, env = "MCP_REINIT_ON_SESSION_ERROR", default_value = "1", value_parser = parse_switch)]
    reinit_on_session_error: bool,
    /// Agent id (default wait-ab-<unix>-<pid>).
    #[arg(long, env = "AGENT_ID")]
    agent_id: Option<String>,
    #[arg(long, env = "AGENT_NAME", default_value = "Wait Mode AB")]
    agent_name: String,
    #[arg(long, env = "AGENT_TYPE", default_value = "benchmark")]
    agent_type: String,
    /// Report path (default /tmp/wait-mode-ab-<unix>.json).
    #[arg(long, env = "OUT_FILE")]
    out_file: Option<PathBuf>,
    /// Print the report JSON instead of the summary table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WaitMode {
    Default,
    Tiny,
    Micro,
    Nano,
}

impl WaitMode {
    fn as_str(self) -> &'static str {
        match self {
            WaitMode::Default => "default",
            WaitMode::Tiny => "tiny",
            WaitMode::Micro => "micro",
            WaitMode::Nano => "nano",
        }
    }
}

/// One mode's totals.
#[derive(Debug, Default, Clone, Copy)]
struct ModeTotals {
    changed_hits: u64,
    total_bytes: u64,
    total_ms: f64,
}

fn wait_args(
    agent: &str,
    mode: WaitMode,
    cursor: Option<&str>,
    wait_ms: u64,
    poll_ms: u64,
) -> Value {
    let mut args = json!({
        "agent_id": agent, "streams": ["messages"], "timeout_response": "default",
        "wait_ms": wait_ms, "poll_interval_ms": poll_ms,
    });
    if mode != WaitMode::Default {
        args["response_mode"] = json!(mode.as_str());
    }
    if let Some(cursor) = cursor {
        args["cursor"] = json!(cursor);
    }
    args
}

/// `changed`, else nano's `c == 1`.
fn changed(reply: &Value) -> bool {
    match reply.get("changed") {
        Some(flag) => flag.as_bool().unwrap_or(false),
        None => reply["c"] == 1,
    }
}

async fn measure_mode(
    session: &mut RoundSession,
    agent: &RoundAgent,
    mode: WaitMode,
    args: &WaitAbArgs,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<ModeTotals> {
    let mut totals = ModeTotals::default();
    for i in 1..=args.rounds {
        let base = session
            .call_ok(
                "wait_for_updates",
                wait_args(&agent.id, mode, None, 120, args.poll_interval_ms),
                Some(agent),
            )
            .await?;
        let Some(cursor) = base
            .get("cursor")
            .or_else(|| base.get("u"))
            .and_then(Value::as_str)
        else {
            anyhow::bail!(
                "wait_for_updates ({}) returned no cursor: {base}",
                mode.as_str()
            );
        };
        let cursor = cursor.to_string();
        session
            .call_ok(
                "send_message",
                json!({"from_agent": agent.id, "to_agent": agent.id,
                       "content": format!("ab-{}-{i}", mode.as_str())}),
                Some(agent),
            )
            .await?;
        let timed = session
            .call(
                "wait_for_updates",
                wait_args(
                    &agent.id,
                    mode,
                    Some(&cursor),
                    args.wait_ms,
                    args.poll_interval_ms,
                ),
                Some(agent),
            )
            .await?;
        if !timed.reply.succeeded() {
            anyhow::bail!("wait_for_updates failed: {}", timed.reply.json);
        }
        totals.total_bytes += timed.reply.response_bytes as u64;
        totals.total_ms += timed.latency_ms;
        if changed(&timed.reply.json) {
            totals.changed_hits += 1;
        }
        progress.inc(1);
    }
    Ok(totals)
}

/// `(first − second) / second · 100` of two modes' avg_bytes; 0 when either is missing or
/// not positive.
fn avg_bytes_delta(results: &[Value], first: &str, second: &str) -> f64 {
    let avg = |mode: &str| {
        results
            .iter()
            .find(|r| r["mode"] == mode)
            .and_then(|r| r["avg_bytes"].as_f64())
            .filter(|v| *v > 0.0)
    };
    match (avg(first), avg(second)) {
        (Some(a), Some(b)) => round_to((a - b) / b * 100.0, 2),
        _ => 0.0,
    }
}

pub async fn run(args: WaitAbArgs) -> anyhow::Result<ExitCode> {
    let stamp = unix_seconds();
    let agent_id = args
        .agent_id
        .clone()
        .unwrap_or_else(|| format!("wait-ab-{stamp}-{}", std::process::id()));
    let options = ClientOptions {
        client_version: "1.0".into(),
        protocol_version: "2025-03-26".into(),
        accept_header: false,
        reinit_on_session_error: args.reinit_on_session_error,
        ..ClientOptions::new("wait-mode-ab")
    };
    let mut session = RoundSession::connect(&args.endpoint, options, TokenPolicy::True).await?;
    let outcome = drive(&mut session, &args, &agent_id).await;
    session.close().await;
    let results = outcome?;

    let deltas = json!({
        "default_vs_tiny_avg_bytes_pct": avg_bytes_delta(&results, "default", "tiny"),
        "default_vs_nano_avg_bytes_pct": avg_bytes_delta(&results, "default", "nano"),
        "micro_vs_tiny_avg_bytes_pct": avg_bytes_delta(&results, "micro", "tiny"),
        "nano_vs_tiny_avg_bytes_pct": avg_bytes_delta(&results, "nano", "tiny"),
        "nano_vs_micro_avg_bytes_pct": avg_bytes_delta(&results, "nano", "micro"),
    });
    let mut summary = table(vec!["mode", "rounds", "changed", "avg bytes", "avg ms"]);
    for result in &results {
        summary.add_row(
            ["mode", "rounds", "changed_hits", "avg_bytes", "avg_ms"]
                .iter()
                .map(|key| cell(&result[*key]))
                .collect::<Vec<_>>(),
        );
    }
    let report = json!({
        "generated_at": generated_at(),
        "endpoint": args.endpoint,
        "agent_id": agent_id,
        "rounds": args.rounds,
        "results": results,
        "deltas": deltas,
    });
    let path = args
        .out_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/wait-mode-ab-{stamp}.json")));
    publish(&path, "wait mode A/B report", &report, summary, args.json)?;
    Ok(ExitCode::SUCCESS)
}

async fn drive(
    session: &mut RoundSession,
    args: &WaitAbArgs,
    agent_id: &str,
) -> anyhow::Result<Vec<Value>> {
    let (agent, _) = session
        .register(
            json!({"id": agent_id, "name": args.agent_name, "type": args.agent_type,
                         "onboarding_mode": "none"}),
        )
        .await?;
    let progress = progress_bar(
        u64::from(args.rounds) * args.wait_modes.len() as u64,
        " rounds",
    );
    let mut results = Vec::with_capacity(args.wait_modes.len());
    for mode in &args.wait_modes {
        progress.set_message(mode.as_str());
        let totals = measure_mode(session, &agent, *mode, args, &progress).await?;
        let rounds = f64::from(args.rounds);
        results.push(json!({
            "mode": mode.as_str(),
            "rounds": args.rounds,
            "changed_hits": totals.changed_hits,
            "total_bytes": totals.total_bytes,
            "total_ms": round_to(totals.total_ms, 2),
            "avg_bytes": round_to(totals.total_bytes as f64 / rounds, 2),
            "avg_ms": round_to(totals.total_ms / rounds, 2),
        }));
    }
    progress.finish_and_clear();
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_reads_both_shapes_and_deltas_skip_missing_modes() {
        assert!(changed(&json!({"changed": true})));
        assert!(changed(&json!({"c": 1})));
        assert!(!changed(&json!({"c": 0})));
        let results = vec![
            json!({"mode": "tiny", "avg_bytes": 200.0}),
            json!({"mode": "nano", "avg_bytes": 50.0}),
        ];
        assert_eq!(avg_bytes_delta(&results, "nano", "tiny"), -75.0);
        assert_eq!(avg_bytes_delta(&results, "micro", "tiny"), 0.0);
    }
}
