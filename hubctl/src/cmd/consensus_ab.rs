//! `hubctl consensus-ab-round` (spec http-config-cli §10.6): the same vote sets resolved
//! inline and as a stored votes blob referenced by hash; request/response chars, token
//! estimates, latency and outcome agreement of both, in `<OUT_DIR>/<tag>.json`.
//!
//! Unlike the legacy script the round sends its token (D21) and registers its voters (the hub
//! refuses votes of unregistered agents). Votes cast in other agents' names are refused under
//! enforce (they must come from those agents' own messages or context), so under enforce the
//! round reports those refusals as failures; measure under observe or warn.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

use super::bench_runner::progress_bar;
use super::round::{
    BlobCompression, HttpArgs, Measured, RoundAgent, RoundSession, TokenPolicy, cell, generated_at,
    parse_switch, pct_change, publish, repo_profile, round_to, table, unix_seconds,
    wait_for_health,
};

#[derive(Debug, Args)]
pub struct ConsensusAbArgs {
    /// The hub's MCP endpoint.
    #[arg(long, env = "ENDPOINT", default_value = "http://localhost:3300/mcp")]
    endpoint: String,
    /// Runs (each resolves one vote set inline and once by blob hash).
    #[arg(long, env = "RUNS", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Votes per run (plus two from a duplicate voter).
    #[arg(long, env = "VOTES", default_value_t = 96,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    votes: u32,
    /// Directory of <tag>.json.
    #[arg(long, env = "OUT_DIR", default_value = "/tmp/consensus-ab")]
    out_dir: PathBuf,
    #[arg(long, env = "INLINE_RESPONSE_MODE", value_enum, default_value = "full")]
    inline_response_mode: ResponseMode,
    #[arg(long, env = "BLOB_RESPONSE_MODE", value_enum, default_value = "tiny")]
    blob_response_mode: ResponseMode,
    #[arg(
        long,
        env = "BLOB_COMPRESSION_MODE",
        value_enum,
        default_value = "auto"
    )]
    blob_compression_mode: BlobCompression,
    /// Ask for a decision blob ref (used when no policy is given).
    #[arg(long, env = "EMIT_BLOB_REF", default_value = "true", value_parser = parse_switch)]
    emit_blob_ref: bool,
    /// never, always, on_escalate or on_conflict (wins over EMIT_BLOB_REF).
    #[arg(long, env = "EMIT_BLOB_REF_POLICY", value_enum)]
    emit_blob_ref_policy: Option<EmitPolicy>,
    /// per_run: store the votes blob every run; preloaded: once (seed 1) for all runs.
    #[arg(long, env = "BLOB_STORE_STRATEGY", default_value = "per_run")]
    blob_store_strategy: String,
    #[command(flatten)]
    http: HttpArgs,
    /// Print the report JSON instead of the summary table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ResponseMode {
    Full,
    Compact,
    Tiny,
}

impl ResponseMode {
    fn as_str(self) -> &'static str {
        match self {
            ResponseMode::Full => "full",
            ResponseMode::Compact => "compact",
            ResponseMode::Tiny => "tiny",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
enum EmitPolicy {
    Never,
    Always,
    OnEscalate,
    OnConflict,
}

impl EmitPolicy {
    fn as_str(self) -> &'static str {
        match self {
            EmitPolicy::Never => "never",
            EmitPolicy::Always => "always",
            EmitPolicy::OnEscalate => "on_escalate",
            EmitPolicy::OnConflict => "on_conflict",
        }
    }
}

/// The spec's vote generator for seed `seed`; voters are `<prefix>agent-<i>` and
/// `<prefix>agent-dup-0` (the prefix keeps rounds from colliding on agent ids).
fn votes(prefix: &str, count: u32, seed: u32) -> Vec<Value> {
    let mut votes: Vec<Value> = (0..count)
        .map(|i| {
            let k = i + seed;
            let agent = format!("{prefix}agent-{i}");
            let bump = f64::from(k % 30) / 100.0;
            if k.is_multiple_of(11) {
                json!({"agent_id": agent, "decision": "abstain"})
            } else if k.is_multiple_of(5) {
                json!({"agent_id": agent, "decision": "reject", "confidence": round_to(0.55 + bump, 2)})
            } else {
                json!({"agent_id": agent, "decision": "accept", "confidence": round_to(0.65 + bump, 2)})
            }
        })
        .collect();
    let dup = format!("{prefix}agent-dup-0");
    let first = round_to(0.72 + f64::from(seed % 10) / 100.0, 2);
    votes.push(json!({"agent_id": dup, "decision": "accept", "confidence": first}));
    votes.push(json!({"agent_id": dup, "decision": "reject", "confidence": 0.31}));
    votes
}

/// Calls, outcomes and sizes of one kind of call.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    calls: u64,
    success: u64,
    failure: u64,
    request_chars: u64,
    response_chars: u64,
    latency_ms: f64,
}

impl Tally {
    fn record(&mut self, measured: &Measured) -> bool {
        let ok = measured.reply.succeeded();
        self.calls += 1;
        if ok {
            self.success += 1;
        } else {
            self.failure += 1;
        }
        self.request_chars += measured.reply.request_chars as u64;
        self.response_chars += measured.reply.response_chars as u64;
        self.latency_ms += measured.latency_ms;
        ok
    }

    fn plus(self, other: Tally) -> Tally {
        Tally {
            calls: self.calls + other.calls,
            success: self.success + other.success,
            failure: self.failure + other.failure,
            request_chars: self.request_chars + other.request_chars,
            response_chars: self.response_chars + other.response_chars,
            latency_ms: self.latency_ms + other.latency_ms,
        }
    }

    fn chars(&self) -> u64 {
        self.request_chars + self.response_chars
    }

    /// Totals, and averages over `per` (calls or runs), 3 decimals.
    fn figures(&self, per: u64) -> Map<String, Value> {
        let per = per.max(1) as f64;
        let mut map = Map::new();
        for (key, value) in [
            ("request_chars_total", json!(self.request_chars)),
            ("response_chars_total", json!(self.response_chars)),
            ("latency_total_ms", json!(round_to(self.latency_ms, 3))),
            (
                "request_chars_avg",
                json!(round_to(self.request_chars as f64 / per, 3)),
            ),
            (
                "response_chars_avg",
                json!(round_to(self.response_chars as f64 / per, 3)),
            ),
            ("latency_avg_ms", json!(round_to(self.latency_ms / per, 3))),
        ] {
            map.insert(key.into(), value);
        }
        map
    }

    /// [`figures`](Self::figures) plus the chars and token-estimate totals (ceil(chars/4)).
    fn figures_with_tokens(&self, per: u64) -> Map<String, Value> {
        let mut map = self.figures(per);
        map.insert("chars_total".into(), json!(self.chars()));
        map.insert("tokens_est_total".into(), json!(self.chars().div_ceil(4)));
        map
    }
}

fn with(mut map: Map<String, Value>, extra: Value) -> Value {
    if let Value::Object(extra) = extra {
        map.extend(extra);
    }
    Value::Object(map)
}

struct Outcome {
    inline: Tally,
    store: Tally,
    resolve: Tally,
    created: u64,
    emitted: u64,
    matched: u64,
    mismatched: u64,
}

/// `store_protocol_blob` of the seed's votes as `{"votes": [...]}`.
async fn store_votes(
    session: &mut RoundSession,
    orch: &RoundAgent,
    args: &ConsensusAbArgs,
    prefix: &str,
    seed: u32,
) -> anyhow::Result<Measured> {
    let payload = json!({"votes": votes(prefix, args.votes, seed)}).to_string();
    let call = json!({"agent_id": orch.id, "payload": payload,
                      "compression_mode": args.blob_compression_mode.as_str()});
    session.call("store_protocol_blob", call, Some(orch)).await
}

async fn drive(
    session: &mut RoundSession,
    args: &ConsensusAbArgs,
    tag: &str,
) -> anyhow::Result<Outcome> {
    let (orch, _) = session
        .register(json!({
            "id": "consensus-ab-orchestrator", "name": "Consensus AB Runner", "type": "codex",
            "capabilities": "benchmark,consensus", "onboarding_mode": "none",
            "lifecycle": "ephemeral", "runtime_profile": repo_profile(),
        }))
        .await?;
    let prefix = format!("{tag}-");
    let voters = votes(&prefix, args.votes, 0);
    let progress = progress_bar(u64::from(args.votes) + 1 + u64::from(args.runs), " steps");
    progress.set_message("registering voters");
    let mut registered = std::collections::BTreeSet::new();
    for vote in &voters {
        let id = vote["agent_id"].as_str().unwrap_or_default().to_string();
        if registered.insert(id.clone()) {
            session
                .register(json!({"id": id, "name": id, "type": "benchmark",
                                 "onboarding_mode": "none", "lifecycle": "ephemeral"}))
                .await?;
        }
        progress.inc(1);
    }
    let mut outcome = Outcome {
        inline: Tally::default(),
        store: Tally::default(),
        resolve: Tally::default(),
        created: 0,
        emitted: 0,
        matched: 0,
        mismatched: 0,
    };
    let preloaded = args.blob_store_strategy == "preloaded";
    let mut hash = None;
    if preloaded {
        let stored = store_votes(session, &orch, args, &prefix, 1).await?;
        if outcome.store.record(&stored) && stored.reply.json["created"] == true {
            outcome.created += 1;
        }
        hash = stored.reply.json["hash"].as_str().map(str::to_string);
    }
    progress.set_message("runs");
    for run in 1..=args.runs {
        let inline = session
            .call(
                "resolve_consensus",
                json!({"requesting_agent": orch.id, "proposal_id": format!("{tag}-inline-{run}"),
                       "votes": votes(&prefix, args.votes, run),
                       "response_mode": args.inline_response_mode.as_str()}),
                Some(&orch),
            )
            .await?;
        outcome.inline.record(&inline);
        if !preloaded {
            let stored = store_votes(session, &orch, args, &prefix, run).await?;
            if outcome.store.record(&stored) && stored.reply.json["created"] == true {
                outcome.created += 1;
            }
            hash = stored.reply.json["hash"].as_str().map(str::to_string);
        }
        let mut resolve_args = json!({
            "requesting_agent": orch.id, "proposal_id": format!("{tag}-blob-{run}"),
            "votes_blob_hash": hash.clone().unwrap_or_default(),
            "response_mode": args.blob_response_mode.as_str(),
        });
        match args.emit_blob_ref_policy {
            Some(policy) => resolve_args["emit_blob_ref_policy"] = json!(policy.as_str()),
            None => resolve_args["emit_blob_ref"] = json!(args.emit_blob_ref),
        }
        let blob = session
            .call("resolve_consensus", resolve_args, Some(&orch))
            .await?;
        outcome.resolve.record(&blob);
        if blob.reply.json["decision_blob_ref"]["hash"].is_string() {
            outcome.emitted += 1;
        }
        let (a, b) = (
            inline.reply.json["outcome"].as_str().unwrap_or_default(),
            blob.reply.json["outcome"].as_str().unwrap_or_default(),
        );
        if !a.is_empty() && a == b {
            outcome.matched += 1;
        } else {
            outcome.mismatched += 1;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(outcome)
}

pub async fn run(args: ConsensusAbArgs) -> anyhow::Result<ExitCode> {
    wait_for_health(&args.endpoint, 20).await?;
    let tag = format!(
        "CONSAB-{}-{}-{}",
        unix_seconds(),
        std::process::id(),
        rand_suffix()
    );
    let options = args.http.client_options("consensus-ab-runner");
    let mut session = RoundSession::connect(&args.endpoint, options, TokenPolicy::Auto).await?;
    let outcome = drive(&mut session, &args, &tag).await;
    session.close().await;
    let o = outcome?;

    let runs = u64::from(args.runs);
    let e2e = o.store.plus(o.resolve);
    let inline = with(
        o.inline.figures_with_tokens(runs),
        json!({"success": o.inline.success, "failure": o.inline.failure}),
    );
    let store = with(
        o.store.figures(o.store.calls),
        json!({"calls": o.store.calls, "success": o.store.success,
               "failure": o.store.failure, "created": o.created}),
    );
    let resolve = with(
        o.resolve.figures(runs),
        json!({"success": o.resolve.success, "failure": o.resolve.failure,
               "emitted_blob_ref": o.emitted}),
    );
    let e2e_json = Value::Object(e2e.figures_with_tokens(runs));
    let delta = |new: f64, old: f64| pct_change(new, old).map(|p| round_to(p, 6));
    let deltas = json!({
        "blob_e2e_vs_inline_chars": delta(e2e.chars() as f64, o.inline.chars() as f64),
        "blob_e2e_vs_inline_tokens_est": delta(
            e2e.chars().div_ceil(4) as f64, o.inline.chars().div_ceil(4) as f64),
        "blob_e2e_vs_inline_latency": delta(e2e.latency_ms, o.inline.latency_ms),
    });
    let correctness = json!({
        "outcome_match": o.matched,
        "outcome_mismatch": o.mismatched,
        "match_pct": round_to(o.matched as f64 * 100.0 / runs.max(1) as f64, 2),
    });
    let mut summary = table(vec!["", "inline", "blob e2e", "Δ %"]);
    for (label, key, delta_key) in [
        ("chars", "chars_total", "blob_e2e_vs_inline_chars"),
        (
            "tokens est",
            "tokens_est_total",
            "blob_e2e_vs_inline_tokens_est",
        ),
        (
            "latency ms",
            "latency_total_ms",
            "blob_e2e_vs_inline_latency",
        ),
        ("latency avg ms", "latency_avg_ms", ""),
    ] {
        summary.add_row(vec![
            label.to_string(),
            cell(&inline[key]),
            cell(&e2e_json[key]),
            cell(
                deltas
                    .get(delta_key)
                    .unwrap_or(&Value::String(String::new())),
            ),
        ]);
    }
    summary.add_row(vec![
        "ok / failed".to_string(),
        format!("{} / {}", o.inline.success, o.inline.failure),
        format!(
            "{} / {}",
            o.resolve.success,
            o.resolve.failure + o.store.failure
        ),
        String::new(),
    ]);
    summary.add_row(vec![
        "outcomes match".to_string(),
        format!("{} of {runs}", o.matched),
        String::new(),
        String::new(),
    ]);
    let report = json!({
        "generated_at": generated_at(),
        "endpoint": args.endpoint,
        "run_tag": tag,
        "config": {
            "runs": args.runs,
            "votes_per_round": args.votes,
            "inline_response_mode": args.inline_response_mode.as_str(),
            "blob_response_mode": args.blob_response_mode.as_str(),
            "blob_compression_mode": args.blob_compression_mode.as_str(),
            "emit_blob_ref_policy": args.emit_blob_ref_policy.map(EmitPolicy::as_str),
            "blob_store_strategy": if args.blob_store_strategy == "preloaded" { "preloaded" } else { "per_run" },
            "emit_blob_ref": args.emit_blob_ref,
        },
        "inline": inline,
        "blob": {"store": store, "resolve": resolve, "e2e": e2e_json},
        "correctness": correctness,
        "deltas_pct": deltas,
    });
    let path = args.out_dir.join(format!("{tag}.json"));
    publish(&path, "consensus A/B report", &report, summary, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// A short random suffix for the run tag (two rounds in the same second do not collide).
fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{:04x}", nanos & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vote_generator_follows_the_spec() {
        let votes = votes("T-", 12, 0);
        assert_eq!(votes.len(), 14);
        assert_eq!(
            votes[0],
            json!({"agent_id": "T-agent-0", "decision": "abstain"})
        );
        assert_eq!(votes[5]["decision"], "reject");
        assert_eq!(votes[5]["confidence"], 0.60);
        assert_eq!(votes[1]["decision"], "accept");
        assert_eq!(votes[1]["confidence"], 0.66);
        assert_eq!(votes[11]["decision"], "abstain");
        assert_eq!(votes[12]["agent_id"], "T-agent-dup-0");
        assert_eq!(votes[12]["confidence"], 0.72);
        assert_eq!(votes[13]["decision"], "reject");
    }

    #[test]
    fn tallies_average_per_call_or_run() {
        let tally = Tally {
            request_chars: 10,
            response_chars: 7,
            latency_ms: 3.0,
            ..Tally::default()
        };
        let figures = tally.figures_with_tokens(2);
        assert_eq!(figures["chars_total"], 17);
        assert_eq!(figures["tokens_est_total"], 5);
        assert_eq!(figures["request_chars_avg"], 5.0);
        assert_eq!(figures["latency_avg_ms"], 1.5);
    }
}
