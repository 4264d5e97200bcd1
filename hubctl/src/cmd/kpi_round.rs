//! `hubctl kpi-round` (spec http-config-cli §10.1): the same handoff round twice on fresh
//! sessions — `baseline` (plain share_context and send_message) and `blob`
//! (share_blob_context and send_blob_message) — then the chars, token estimates, hash
//! checks, done rate and latency of each, and their deltas, in `<OUT_DIR>/exp5-kpi.json`.
//!
//! The `transport_*` fields come from `get_transport_snapshot` when the hub has it; otherwise
//! from the round's own calls (`transport_source: "client"`): it makes no long-polls and no
//! `polling:true` reads, so those figures are 0 (and the rates null).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hub_server::protocol::sha256_hex;
use serde_json::{Value, json};

use super::bench_runner::progress_bar;
use super::round::{
    BlobCompression, HttpArgs, RoundAgent, RoundSession, TokenPolicy, cell, generated_at,
    pct_change, publish, repo_profile, round_to, table, unix_seconds, wait_for_health,
};

#[derive(Debug, Args)]
pub struct KpiArgs {
    /// The hub's MCP endpoint.
    #[arg(long, env = "ENDPOINT", default_value = "http://localhost:3000/mcp")]
    endpoint: String,
    /// Workers per variant.
    #[arg(long, env = "WORKERS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    workers: u32,
    /// Directory of exp5-kpi.json.
    #[arg(long, env = "OUT_DIR", default_value = "/tmp/exp5")]
    out_dir: PathBuf,
    /// auto: send tokens when issued; true: a missing token is fatal; false: never send.
    #[arg(long, env = "USE_AUTH_TOKEN", value_enum, default_value = "auto")]
    use_auth_token: TokenPolicy,
    /// Compression of the blob variant's payloads.
    #[arg(
        long,
        env = "BLOB_COMPRESSION_MODE",
        value_enum,
        default_value = "lossless_auto"
    )]
    blob_compression_mode: BlobCompression,
    #[command(flatten)]
    http: HttpArgs,
    /// Print the report JSON instead of the summary table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Baseline,
    Blob,
}

impl Variant {
    fn mode(self) -> &'static str {
        match self {
            Variant::Baseline => "baseline",
            Variant::Blob => "blob",
        }
    }

    fn tag_suffix(self) -> &'static str {
        match self {
            Variant::Baseline => "B",
            Variant::Blob => "O",
        }
    }
}

/// Chars of one stream's worker rows, and the hash checks of their resolved payloads.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct StreamChars {
    count: u64,
    transport: u64,
    effective: u64,
    hash_total: u64,
    hash_ok: u64,
}

/// Sums the rows of `rows` whose `owner_key` starts with `prefix`: raw `raw_key` chars as
/// transport, `resolved_key` (when present) as effective, and whether each resolved text checks
/// out against its `blob_ref`.
fn stream_chars(
    rows: &[Value],
    owner_key: &str,
    prefix: &str,
    raw_key: &str,
    resolved_key: &str,
) -> StreamChars {
    let mut sums = StreamChars::default();
    for row in rows {
        if !row[owner_key]
            .as_str()
            .is_some_and(|o| o.starts_with(prefix))
        {
            continue;
        }
        let raw = row[raw_key].as_str().unwrap_or_default();
        let resolved = row[resolved_key].as_str();
        sums.count += 1;
        sums.transport += raw.chars().count() as u64;
        sums.effective += resolved.unwrap_or(raw).chars().count() as u64;
        if let (Some(text), Some(hash)) = (resolved, row["blob_ref"]["hash"].as_str()) {
            sums.hash_total += 1;
            // A blob's key is the hash of its stored value: the payload itself when stored
            // uncompressed, a lossless envelope otherwise, whose raw_sha256 the hub checks
            // against the decoded text (integrity_ok).
            let stored_as_is = !hash.is_empty() && sha256_hex(text).starts_with(hash);
            if stored_as_is || row["blob_ref"]["integrity_ok"] == true {
                sums.hash_ok += 1;
            }
        }
    }
    sums
}

/// The handoff a worker shares and sends (fixed sizes, so variants compare like for like).
fn handoff_payload(tag: &str, agent: &str, task_id: i64) -> String {
    json!({
        "experiment": tag,
        "agent_id": agent,
        "task_id": task_id,
        "status": "in_progress",
        "summary": "Worker handoff: findings, evidence and next steps for the orchestrator.",
        "evidence": ["e".repeat(180), "v".repeat(180)],
        "notes": "n".repeat(420),
    })
    .to_string()
}

fn pct1(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| round_to(numerator as f64 * 100.0 / denominator as f64, 2))
}

/// One variant end to end on a fresh session; its report object.
async fn run_variant(args: &KpiArgs, variant: Variant, stamp: i64) -> anyhow::Result<Value> {
    let tag = format!("EXP5-{stamp}-{}", variant.tag_suffix());
    let worker_prefix = format!("w-{tag}-");
    let options = args.http.client_options("exp-runner");
    let mut session = RoundSession::connect(&args.endpoint, options, args.use_auth_token).await?;
    let outcome = drive_variant(&mut session, args, variant, &tag, &worker_prefix).await;
    let (tool_calls, latency_total_ms) = (session.tool_calls, session.latency_total_ms);
    session.close().await;
    let mut report = outcome?;
    report["tool_calls"] = json!(tool_calls);
    report["latency_total_ms"] = json!(round_to(latency_total_ms, 3));
    report["latency_avg_ms"] = json!(round_to(latency_total_ms / (tool_calls.max(1) as f64), 3));
    Ok(report)
}

async fn drive_variant(
    session: &mut RoundSession,
    args: &KpiArgs,
    variant: Variant,
    tag: &str,
    worker_prefix: &str,
) -> anyhow::Result<Value> {
    let workers = args.workers as usize;
    let progress = progress_bar(workers as u64 * 2, " steps");
    progress.set_message(format!("{}: register + create", variant.mode()));
    let (orch, _) = session
        .register(json!({
            "id": format!("orch-{tag}"), "name": format!("Orchestrator {tag}"), "type": "codex",
            "capabilities": "orchestration,kpi", "onboarding_mode": "none",
            "lifecycle": "persistent", "runtime_profile": repo_profile(),
        }))
        .await?;

    let mut onboarding_ok = 0u64;
    let mut crew: Vec<(RoundAgent, i64)> = Vec::with_capacity(workers);
    for i in 1..=workers {
        let (worker, reply) = session
            .register(json!({
                "id": format!("{worker_prefix}{i}"), "name": format!("Worker-{i}"),
                "type": "claude", "capabilities": format!("round,{}", variant.mode()),
                "onboarding_mode": "none", "lifecycle": "ephemeral",
                "runtime_profile": repo_profile(),
            }))
            .await?;
        if reply["onboarding"]["tool_count"].as_u64().unwrap_or(0) >= 25 {
            onboarding_ok += 1;
        }
        let created = session
            .call_ok(
                "create_task",
                json!({
                    "title": format!("{tag}-task-{i}"), "created_by": orch.id,
                    "description": format!("experiment={tag} mode={}", variant.mode()),
                    "assigned_to": worker.id, "priority": "high", "namespace": tag,
                }),
                Some(&orch),
            )
            .await?;
        let task_id = created["task"]["id"].as_i64().unwrap_or_default();
        crew.push((worker, task_id));
        progress.inc(1);
    }

    progress.set_message(format!("{}: claim, hand off, release", variant.mode()));
    let compression = match variant {
        Variant::Baseline => "none",
        Variant::Blob => args.blob_compression_mode.as_str(),
    };
    let mut release_ok = 0u64;
    for (worker, task_id) in &crew {
        let claimed = session
            .call_ok(
                "claim_task",
                json!({"task_id": task_id, "agent_id": worker.id, "lease_seconds": 300,
                       "namespace": tag}),
                Some(worker),
            )
            .await?;
        let Some(claim_id) = claimed["claim"]["claim_id"].as_str().map(str::to_string) else {
            anyhow::bail!("claim_task returned no claim.claim_id: {claimed}");
        };
        let payload = handoff_payload(tag, &worker.id, *task_id);
        let key = format!("handoff-{task_id}");
        let (context, message) = match variant {
            Variant::Baseline => (
                session
                    .call_ok(
                        "share_context",
                        json!({"agent_id": worker.id, "key": key, "value": payload,
                               "namespace": tag, "compression_mode": compression}),
                        Some(worker),
                    )
                    .await?,
                session
                    .call_ok(
                        "send_message",
                        json!({"from_agent": worker.id, "to_agent": orch.id,
                               "content": payload, "compression_mode": compression}),
                        Some(worker),
                    )
                    .await?,
            ),
            Variant::Blob => (
                session
                    .call_ok(
                        "share_blob_context",
                        json!({"agent_id": worker.id, "key": key, "payload": payload,
                               "namespace": tag, "compression_mode": compression}),
                        Some(worker),
                    )
                    .await?,
                session
                    .call_ok(
                        "send_blob_message",
                        json!({"from_agent": worker.id, "to_agent": orch.id,
                               "payload": payload, "compression_mode": compression}),
                        Some(worker),
                    )
                    .await?,
            ),
        };
        let context_id = &context["context"]["id"];
        let message_id = &message["message"]["id"];
        let released = session
            .call(
                "release_task_claim",
                json!({"task_id": task_id, "agent_id": worker.id, "claim_id": claim_id,
                       "next_status": "done", "confidence": 0.95, "verification_passed": true,
                       "verified_by": "qa-auto",
                       "evidence_refs": [format!("task:{task_id}:handoff"),
                                         format!("context_id:{context_id}"),
                                         format!("message_id:{message_id}")]}),
                Some(worker),
            )
            .await?;
        if released.reply.succeeded() {
            release_ok += 1;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();

    let resolve = variant == Variant::Blob;
    let inbox = session
        .call_ok(
            "read_messages",
            json!({"agent_id": orch.id, "unread_only": true, "limit": 1000,
                   "response_mode": "full", "resolve_blob_refs": resolve}),
            Some(&orch),
        )
        .await?;
    let contexts = session
        .call_ok(
            "get_context",
            json!({"requesting_agent": orch.id, "namespace": tag, "limit": 1000,
                   "response_mode": "full", "resolve_blob_refs": resolve}),
            Some(&orch),
        )
        .await?;
    let done = session
        .call_ok(
            "list_tasks",
            json!({"agent_id": orch.id, "status": "done", "namespace": tag, "limit": 1000,
                   "response_mode": "compact"}),
            Some(&orch),
        )
        .await?;
    let transport = transport_figures(session, &orch).await?;

    let empty = Vec::new();
    let messages = stream_chars(
        inbox["messages"].as_array().unwrap_or(&empty),
        "from_agent",
        worker_prefix,
        "content",
        "resolved_content",
    );
    let context = stream_chars(
        contexts["contexts"].as_array().unwrap_or(&empty),
        "agent_id",
        worker_prefix,
        "value",
        "resolved_value",
    );
    let done_count = done["tasks"]
        .as_array()
        .map(|tasks| {
            tasks
                .iter()
                .filter(|t| t["title"].as_str().is_some_and(|t| t.starts_with(tag)))
                .count() as u64
        })
        .unwrap_or(0);
    let hash_total = messages.hash_total + context.hash_total;
    let hash_ok = messages.hash_ok + context.hash_ok;
    let transport_chars = messages.transport + context.transport;
    let effective_chars = messages.effective + context.effective;
    let worker_tokens = crew.iter().filter(|(w, _)| w.token.is_some()).count();
    let mut report = json!({
        "mode": variant.mode(),
        "tag": tag,
        "namespace": tag,
        "workers": workers,
        "auth_token_mode": args.use_auth_token.as_str(),
        "blob_compression_mode": compression,
        "auth_token_coverage": {
            "orchestrator_token_present": orch.token.is_some(),
            "worker_tokens_present": worker_tokens,
            "workers": workers,
        },
        "onboarding_ok": onboarding_ok,
        "created_tasks": crew.len(),
        "release_ok": release_ok,
        "done_count": done_count,
        "accuracy_done_pct": round_to(done_count as f64 * 100.0 / workers as f64, 2),
        "message_count": messages.count,
        "message_chars_transport": messages.transport,
        "message_chars_effective": messages.effective,
        "context_count": context.count,
        "context_chars_transport": context.transport,
        "context_chars_effective": context.effective,
        "token_est_transport": transport_chars / 4,
        "token_est_effective": effective_chars / 4,
        "hash_checks_total": hash_total,
        "hash_checks_ok": hash_ok,
        "hash_valid_rate_pct": pct1(hash_ok, hash_total),
    });
    if let (Some(report), Value::Object(transport)) = (report.as_object_mut(), transport) {
        report.extend(transport);
    }
    Ok(report)
}

/// The `transport_*` fields: the hub's window figures via `get_transport_snapshot` when it
/// exists, else the round's own (none).
async fn transport_figures(session: &mut RoundSession, orch: &RoundAgent) -> anyhow::Result<Value> {
    let has_snapshot = session
        .list_tools()
        .await?
        .iter()
        .any(|tool| tool["name"] == "get_transport_snapshot");
    if has_snapshot {
        let snapshot = session
            .call_ok(
                "get_transport_snapshot",
                json!({"requesting_agent": orch.id, "window_sec": 300, "response_mode": "tiny"}),
                Some(orch),
            )
            .await?;
        let t = &snapshot["transport"];
        return Ok(json!({
            "transport_source": "get_transport_snapshot",
            "transport_wait_calls": t["wait_calls"],
            "transport_wait_hits": t["wait_hits"],
            "transport_wait_timeouts": t["wait_timeouts"],
            "transport_wait_hit_rate_pct": t["wait_hit_rate_pct"],
            "transport_wait_retry_after_avg_ms": t["wait_retry_after_avg_ms"],
            "transport_wait_retry_after_p95_ms": t["wait_retry_after_p95_ms"],
            "transport_polling_calls": t["polling_calls"],
        }));
    }
    Ok(json!({
        "transport_source": "client",
        "transport_wait_calls": 0,
        "transport_wait_hits": 0,
        "transport_wait_timeouts": 0,
        "transport_wait_hit_rate_pct": null,
        "transport_wait_retry_after_avg_ms": null,
        "transport_wait_retry_after_p95_ms": null,
        "transport_polling_calls": 0,
    }))
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}

/// The `deltas` object: blob (`new`) against baseline (`old`).
fn deltas(old: &Value, new: &Value) -> Value {
    let pct = |key: &str| pct_change(number(&new[key]), number(&old[key])).map(|p| round_to(p, 2));
    json!({
        "message_chars_transport_pct": pct("message_chars_transport"),
        "context_chars_transport_pct": pct("context_chars_transport"),
        "token_est_transport_pct": pct("token_est_transport"),
        "transport_wait_calls_pct": pct("transport_wait_calls"),
        "transport_wait_timeouts_pct": pct("transport_wait_timeouts"),
        "transport_polling_calls_pct": pct("transport_polling_calls"),
        // Nulls count as 0 here (spec).
        "transport_wait_retry_after_avg_ms_pct": pct("transport_wait_retry_after_avg_ms"),
        "latency_avg_ms_pct": pct("latency_avg_ms"),
        "transport_wait_hit_rate_pct_delta": round_to(
            number(&new["transport_wait_hit_rate_pct"]) - number(&old["transport_wait_hit_rate_pct"]), 2),
        "accuracy_done_pct_delta": round_to(
            number(&new["accuracy_done_pct"]) - number(&old["accuracy_done_pct"]), 2),
    })
}

const SUMMARY_ROWS: [&str; 12] = [
    "done_count",
    "accuracy_done_pct",
    "release_ok",
    "message_chars_transport",
    "message_chars_effective",
    "context_chars_transport",
    "context_chars_effective",
    "token_est_transport",
    "hash_valid_rate_pct",
    "tool_calls",
    "latency_avg_ms",
    "transport_polling_calls",
];

pub async fn run(args: KpiArgs) -> anyhow::Result<ExitCode> {
    wait_for_health(&args.endpoint, 20).await?;
    let stamp = unix_seconds();
    let baseline = run_variant(&args, Variant::Baseline, stamp).await?;
    let optimized = run_variant(&args, Variant::Blob, stamp).await?;
    let deltas = deltas(&baseline, &optimized);
    let mut summary = table(vec!["metric", "baseline", "blob", "Δ"]);
    for key in SUMMARY_ROWS {
        let delta = match deltas.get(format!("{key}_pct").as_str()) {
            Some(Value::Number(p)) => format!("{:+.1} %", p.as_f64().unwrap_or_default()),
            _ => String::new(),
        };
        summary.add_row(vec![
            key.to_string(),
            cell(&baseline[key]),
            cell(&optimized[key]),
            delta,
        ]);
    }
    let report = json!({
        "generated_at": generated_at(),
        "baseline": baseline,
        "optimized": optimized,
        "deltas": deltas,
    });
    let path = args.out_dir.join("exp5-kpi.json");
    publish(&path, "KPI report", &report, summary, args.json)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_rows_only_and_hashes_of_resolved_payloads() {
        let text = "hello";
        let rows = vec![
            json!({"from_agent": "w-T-1", "content": "{ref}", "resolved_content": text,
                   "blob_ref": {"hash": sha256_hex(text)}}),
            json!({"from_agent": "w-T-2", "content": "abc"}),
            json!({"from_agent": "w-T-3", "content": "{ref}", "resolved_content": text,
                   "blob_ref": {"hash": "0000"}}),
            json!({"from_agent": "w-T-4", "content": "{ref}", "resolved_content": text,
                   "blob_ref": {"hash": "0000", "integrity_ok": true}}),
            json!({"from_agent": "someone", "content": "ignored"}),
        ];
        let sums = stream_chars(&rows, "from_agent", "w-T-", "content", "resolved_content");
        assert_eq!(
            sums,
            StreamChars {
                count: 4,
                transport: 5 + 3 + 5 + 5,
                effective: 5 + 3 + 5 + 5,
                hash_total: 3,
                hash_ok: 2
            }
        );
    }

    #[test]
    fn deltas_are_relative_to_the_baseline() {
        let old = json!({"message_chars_transport": 200, "latency_avg_ms": 0,
                         "accuracy_done_pct": 90.0});
        let new = json!({"message_chars_transport": 50, "latency_avg_ms": 3,
                         "accuracy_done_pct": 100.0});
        let d = deltas(&old, &new);
        assert_eq!(d["message_chars_transport_pct"], -75.0);
        assert_eq!(d["latency_avg_ms_pct"], Value::Null);
        assert_eq!(d["accuracy_done_pct_delta"], 10.0);
        assert_eq!(d["transport_wait_retry_after_avg_ms_pct"], Value::Null);
    }
}
