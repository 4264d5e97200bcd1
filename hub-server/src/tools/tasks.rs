//! Task board tools: create_task, update_task, list_tasks, delete_task, poll_and_claim,
//! claim_task, renew_task_claim, release_task_claim, list_task_claims.
//!
//! Contract: spec tools-core §4 with defects D19–D33, D36–D40 corrected. Each op runs inside
//! one writer transaction (the pipeline's), so candidate selection, claiming, sweeping and
//! the done gate are atomic by construction. SQL lives in `store::tasks` / `store::claims`;
//! the pure rules (done gate, back-off profile, governance matcher, evidence normalization)
//! are plain functions here with unit tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::store::Db;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::messages::{parse_row_cursor, row_cursor};
use super::text::optional_text;
use super::text::{char_count, prefix};
use super::{
    Activity, Category, OpCtx, ToolDef, ToolError, ToolResult, forbid_full_in_polling, int_arg,
    non_blank,
};
use crate::config::{Config, NamespaceGovernance};
use crate::store::agents as agent_store;
use crate::store::claims::{self as claim_store, ClaimRow};
use crate::store::tasks::{
    self as task_store, ListPage, ListQuery, NewTask, PollQuery, StatusSource, TaskRow, TaskUpdate,
};
use crate::store::{StoreResult, WriteTx};
use crate::tool_args;

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::mutating(
            "create_task",
            Category::Tasks,
            "Create a task (status pending). Optional depends_on (task ids; unknown ids are \
             refused), priority low|medium|high|critical, namespace, execution_mode \
             any|repo|isolated, consistency_mode auto|cheap|strict, assigned_to (pre-assigns; \
             the task stays pending). Supports idempotency_key.",
            Activity::Stream,
            create_task,
        ),
        super::mutating(
            "update_task",
            Category::Tasks,
            "Update a task you created, are assigned or hold the claim of (orchestrators: any). \
             in_progress is entered and left only through the claim tools. status done runs the \
             done gate: pass confidence, verification_passed:true, evidence_refs and, when \
             required, verified_by (another registered agent).",
            Activity::Stream,
            update_task,
        ),
        super::reading(
            "list_tasks",
            Category::Tasks,
            "List tasks with filters (status, assigned_to, namespace, execution_mode, \
             ready_only). For loops pass next_cursor back as cursor: every change arrives once, \
             in order. response_mode full/compact/tiny/nano; full is refused in polling reads.",
            list_tasks,
        ),
        super::mutating(
            "delete_task",
            Category::Tasks,
            "Delete a task you created (archived by default). Refused while a live claim exists, \
             and while unfinished tasks depend on it unless force:true.",
            Activity::Stream,
            delete_task,
        ),
        super::mutating(
            "poll_and_claim",
            Category::Tasks,
            "Claim the best ready task for you (priority, then tasks it unblocks, then oldest), \
             routed by your runtime profile. Returns task + claim (keep claim.claim_id), or \
             task:null with retry_after_ms: wait that long before polling again.",
            Activity::Stream,
            poll_and_claim,
        ),
        super::mutating(
            "claim_task",
            Category::Tasks,
            "Claim one task by id (lease_seconds 30-86400, default 300). Claiming a task you \
             already hold rotates its claim_id and extends the lease.",
            Activity::Stream,
            claim_task,
        ),
        super::mutating(
            "renew_task_claim",
            Category::Tasks,
            "Extend the lease of your live claim (pass claim_id). An expired, foreign or stale \
             claim is refused and nothing changes.",
            Activity::Stream,
            renew_task_claim,
        ),
        super::mutating(
            "release_task_claim",
            Category::Tasks,
            "Release your claim with next_status pending|blocked|done (default pending). done \
             runs the done gate: confidence, verification_passed:true, evidence_refs, and \
             verified_by when required.",
            Activity::Stream,
            release_task_claim,
        ),
        super::reading(
            "list_task_claims",
            Category::Tasks,
            "List live claims, soonest expiry first (agent_id filters by owner). claim_id is \
             shown only to its owner (requesting_agent).",
            list_task_claims,
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// In-memory state: poll miss streaks and the sweep throttle.

/// Miss streaks idle longer than this are forgotten (D39).
const MISS_STREAK_IDLE_MS: i64 = 10 * 60_000;
/// Above this many entries a miss also prunes idle streaks.
const MISS_STREAK_SOFT_CAP: usize = 4_096;

/// Task-board state that lives in memory: per-agent poll miss streaks (for
/// `retry_after_ms`) and when the last opportunistic sweep found nothing to do.
#[derive(Debug)]
pub struct TaskState {
    misses: Mutex<HashMap<String, (u32, i64)>>,
    last_quiet_sweep_ms: AtomicI64,
}

impl Default for TaskState {
    fn default() -> Self {
        Self {
            misses: Mutex::new(HashMap::new()),
            last_quiet_sweep_ms: AtomicI64::new(i64::MIN),
        }
    }
}

impl TaskState {
    /// Counts one more miss for `agent_id`; returns the streak length.
    fn record_miss(&self, agent_id: &str, now_ms: i64) -> u32 {
        let mut misses = self.misses.lock().unwrap_or_else(|p| p.into_inner());
        if misses.len() >= MISS_STREAK_SOFT_CAP {
            misses.retain(|_, (_, last)| now_ms - *last < MISS_STREAK_IDLE_MS);
        }
        let entry = misses.entry(agent_id.to_string()).or_insert((0, now_ms));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now_ms;
        entry.0
    }

    fn reset_misses(&self, agent_id: &str) {
        self.misses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(agent_id);
    }

    /// Drops idle miss streaks; called by maintenance.
    pub fn prune(&self, now_ms: i64) {
        self.misses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, last)| now_ms - *last < MISS_STREAK_IDLE_MS);
    }

    pub fn tracked_streaks(&self) -> usize {
        self.misses.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The opportunistic lease sweep at the start of claim tools. A sweep that finds nothing is
/// one index seek, so by default it runs on every call (expired leases are requeued at once,
/// also for polls); `MCP_HUB_CLAIM_CLEANUP_THROTTLE_MS` can space sweeps out. The throttle
/// only starts after a sweep that found nothing, so a sweep rolled back with a refused call
/// is redone by the next call. Expired claims count as absent in every check regardless.
fn sweep_if_due(tx: &mut WriteTx<'_>, ctx: &OpCtx) -> StoreResult<()> {
    let now = ctx.now_ms;
    let throttle = ctx.config.claim_cleanup_throttle_ms;
    let last = ctx.tasks.last_quiet_sweep_ms.load(Ordering::Relaxed);
    if throttle > 0 && last != i64::MIN && now >= last && now - last < throttle {
        return Ok(());
    }
    if claim_store::sweep_expired(tx)? == 0 {
        ctx.tasks.last_quiet_sweep_ms.store(now, Ordering::Relaxed);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Pure rules.

/// Poll back-off (spec §4.5): the profile by active agents, exponential in the miss streak,
/// capped lower while any claim exists, with jitter. `random` is in [0, 1).
pub fn retry_after_ms(active_agents: i64, misses: u32, any_claims: bool, random: f64) -> i64 {
    let (min, base, factor, cap, jitter): (f64, f64, f64, f64, f64) = match active_agents {
        ..=5 => (200.0, 800.0, 1.30, 3000.0, 0.30),
        6..=10 => (250.0, 1200.0, 1.45, 5000.0, 0.40),
        11..=20 => (300.0, 2000.0, 1.60, 8000.0, 0.55),
        _ => (400.0, 2600.0, 1.70, 12000.0, 0.60),
    };
    let exp = (i64::from(misses) - 1).clamp(0, 6) as i32;
    let backed = (base * factor.powi(exp)).min(cap);
    let claim_cap = if any_claims { cap.min(5000.0) } else { cap };
    let mid = min.max(backed.min(claim_cap));
    let low = min.max((mid * (1.0 - jitter)).round());
    let high = claim_cap.min(low.max((mid * (1.0 + jitter)).round()));
    let random = if random.is_finite() {
        random.clamp(0.0, 1.0)
    } else {
        0.0
    };
    (low + (random * (high - low)).round()) as i64
}

/// Whether a hint looks like swarm/experiment work (spec §4.15, matched on whole tokens —
/// D37): tokens are runs of letters and digits; a token matches when, without trailing
/// digits, it is swarm, experiment, round, orchestrator or worker (or a plural), or when it
/// is `exp` followed by digits or by `-`. "background" and "networker" do not match.
pub fn governance_hint_matches(hint: &str) -> bool {
    const WORDS: &[&str] = &[
        "swarm",
        "swarms",
        "experiment",
        "experiments",
        "round",
        "rounds",
        "orchestrator",
        "orchestrators",
        "worker",
        "workers",
    ];
    let lowered = hint.to_lowercase();
    let chars: Vec<char> = lowered.chars().collect();
    let mut start = 0;
    while start < chars.len() {
        if !chars[start].is_alphanumeric() {
            start += 1;
            continue;
        }
        let mut end = start;
        while end < chars.len() && chars[end].is_alphanumeric() {
            end += 1;
        }
        let token: String = chars[start..end].iter().collect();
        let stem = token.trim_end_matches(|c: char| c.is_ascii_digit());
        let has_digits = stem.len() < token.len();
        if WORDS.contains(&stem) {
            return true;
        }
        if stem == "exp" && (has_digits || chars.get(end) == Some(&'-')) {
            return true;
        }
        start = end;
    }
    false
}

/// Evidence refs as stored: trimmed, empty ones dropped, cut to `max_chars`, de-duplicated
/// (first occurrence kept).
pub fn normalize_evidence(refs: &[String], max_chars: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in refs {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        let cut = prefix(trimmed, max_chars).to_string();
        if !out.contains(&cut) {
            out.push(cut);
        }
    }
    out
}

/// Dependency ids as accepted: integers > 0, without the task's own id, de-duplicated,
/// ascending. Anything else is dropped silently.
pub fn normalize_dependencies(values: &[Value], own_id: Option<i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = values
        .iter()
        .filter_map(|v| match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            _ => None,
        })
        .filter(|&id| id > 0 && Some(id) != own_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The done-gate settings taken from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct GateConfig {
    pub cheap_min_refs: i64,
    pub strict_min_refs: i64,
    pub strict_floor: f64,
}

impl GateConfig {
    pub fn from_config(config: &Config) -> Self {
        GateConfig {
            cheap_min_refs: config.done_evidence_min_refs.max(0),
            strict_min_refs: config
                .strict_done_evidence_min_refs
                .max(config.done_evidence_min_refs),
            strict_floor: config.strict_done_confidence_min.clamp(0.75, 1.0),
        }
    }
}

/// Everything the done gate looks at.
#[derive(Debug, Clone, Copy)]
pub struct GateInput {
    pub strict: bool,
    pub confidence: Option<f64>,
    /// `verification_passed` was exactly `true`.
    pub verification_passed: bool,
    /// `verified_by` names a registered agent other than the caller and the assignee.
    pub independent_verifier: bool,
    /// The caller's `(completed_count, rollback_count)`.
    pub quality: (i64, i64),
    /// |stored refs ∪ refs of this call|.
    pub evidence_total: i64,
}

/// What a passed gate reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatePass {
    pub required_confidence: f64,
    pub required_evidence_refs: i64,
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The quality-adjusted confidence threshold: 0.9, raised by up to 0.07 for a rollback
/// history.
pub fn quality_threshold((completed, rollbacks): (i64, i64)) -> f64 {
    if completed <= 0 {
        return 0.9;
    }
    round3(0.9 + (rollbacks as f64 / completed as f64 * 0.25).min(0.07))
}

/// The done gate (spec §4.11): the first failing check wins.
pub fn done_gate(input: &GateInput, config: &GateConfig) -> Result<GatePass, ToolError> {
    let mode = if input.strict { "strict" } else { "cheap" };
    let q = quality_threshold(input.quality);
    let (floor, required, required_refs) = if input.strict {
        (
            config.strict_floor,
            round3(q.max(config.strict_floor)),
            config.strict_min_refs,
        )
    } else {
        (0.75, q, config.cheap_min_refs)
    };
    let refusal = |code: &'static str, message: String| {
        ToolError::new(code, message)
            .with("required_confidence", required)
            .with("consistency_mode", mode)
    };
    let Some(confidence) = input.confidence.filter(|c| c.is_finite()) else {
        return Err(refusal(
            "DONE_GATE_FAILED",
            format!(
                "done gate ({mode}): confidence is missing; pass confidence (0-1) of at least \
                 {required:.2}"
            ),
        ));
    };
    if confidence < floor {
        return Err(refusal(
            "DONE_GATE_FAILED",
            format!(
                "done gate ({mode}): confidence {confidence:.2} is below the floor {floor:.2}; \
                 finish and verify the work before marking it done"
            ),
        ));
    }
    if !input.verification_passed {
        return Err(refusal(
            "DONE_GATE_FAILED",
            format!(
                "done gate ({mode}): verification_passed must be true; run the task's checks \
                 and pass verification_passed:true"
            ),
        ));
    }
    if input.strict && !input.independent_verifier {
        return Err(refusal(
            "VERIFIER_REQUIRED",
            "done gate (strict): an independent verifier is required; pass verified_by naming \
             a registered agent other than you and the assignee"
                .to_string(),
        ));
    }
    if confidence < required && !input.independent_verifier {
        return Err(refusal(
            "VERIFIER_REQUIRED",
            format!(
                "done gate ({mode}): confidence {confidence:.2} is below {required:.2}; pass \
                 verified_by naming a registered agent other than you and the assignee"
            ),
        ));
    }
    if required_refs > 0 && input.evidence_total < required_refs {
        return Err(refusal(
            "EVIDENCE_REQUIRED",
            format!(
                "done gate ({mode}): {required_refs} evidence ref(s) required, the task has {}; \
                 pass evidence_refs (test ids, commit hashes, file paths)",
                input.evidence_total
            ),
        )
        .with("required_evidence_refs", required_refs)
        .with("evidence_refs_total", input.evidence_total));
    }
    Ok(GatePass {
        required_confidence: required,
        required_evidence_refs: required_refs,
    })
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a ms timestamp (proleptic Gregorian, UTC).
pub fn iso8601(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

// ---------------------------------------------------------------------------------------
// Argument enums and shared helpers.

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    Any,
    Repo,
    Isolated,
}

impl ExecutionMode {
    fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::Any => "any",
            ExecutionMode::Repo => "repo",
            ExecutionMode::Isolated => "isolated",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CreateConsistency {
    Auto,
    Cheap,
    Strict,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    Cheap,
    Strict,
}

impl Consistency {
    fn as_str(self) -> &'static str {
        match self {
            Consistency::Cheap => "cheap",
            Consistency::Strict => "strict",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    InProgress,
    Done,
    Blocked,
}

impl TaskStatus {
    fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Done => "done",
            TaskStatus::Blocked => "blocked",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NextStatus {
    #[default]
    Pending,
    Done,
    Blocked,
}

impl NextStatus {
    fn as_str(self) -> &'static str {
        match self {
            NextStatus::Pending => "pending",
            NextStatus::Done => "done",
            NextStatus::Blocked => "blocked",
        }
    }
}

fn task_json(task: &TaskRow) -> Value {
    json!({
        "id": task.id,
        "title": task.title,
        "description": task.description,
        "namespace": task.namespace,
        "execution_mode": task.execution_mode,
        "consistency_mode": task.consistency_mode,
        "status": task.status,
        "assigned_to": task.assigned_to,
        "created_by": task.created_by,
        "priority": task.priority,
        "trace_id": task.trace_id,
        "span_id": task.span_id,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    })
}

/// A claim as shown to `viewer`: `claim_id` only for its owner (D36).
fn claim_json(claim: &ClaimRow, viewer: Option<&str>) -> Value {
    let mut value = json!({
        "task_id": claim.task_id,
        "agent_id": claim.agent_id,
        "claimed_at": claim.claimed_at,
        "lease_expires_at": claim.lease_expires_at,
        "updated_at": claim.updated_at,
    });
    if viewer == Some(claim.agent_id.as_str()) {
        value["claim_id"] = json!(claim.claim_id);
    }
    value
}

fn namespace_or_default(value: Option<&str>) -> String {
    non_blank(value).unwrap_or("default").to_string()
}

/// A task id argument: floored; non-finite or < 1 names no task.
fn task_id_arg(value: f64) -> Option<i64> {
    (1.0..9.0e15).contains(&value).then(|| value.floor() as i64)
}

/// Lease in ms: seconds absent/non-finite → 300, floored, clamped to [30, 86400].
fn lease_ms(seconds: Option<f64>) -> i64 {
    int_arg(seconds, 300, 30, 86_400) * 1000
}

fn runtime_mode_of(db: &Db, agent_id: &str) -> StoreResult<String> {
    Ok(agent_store::get(db, agent_id)?
        .map(|agent| agent.runtime_mode)
        .filter(|mode| mode == "repo" || mode == "isolated")
        .unwrap_or_else(|| "unknown".into()))
}

fn compatible_modes(runtime_mode: &str) -> &'static [&'static str] {
    match runtime_mode {
        "repo" => &["any", "repo"],
        "isolated" => &["any", "isolated"],
        _ => &["any"],
    }
}

/// Namespace governance (§4.15, D37). `Ok(Some(warning))` in warn mode when it triggers.
fn governance(
    ctx: &mut OpCtx,
    action: &str,
    namespace: Option<&str>,
    hints: &[&str],
) -> Result<Option<String>, ToolError> {
    let mode = ctx.config.namespace_governance;
    if mode == NamespaceGovernance::Off
        || non_blank(namespace).is_some()
        || !hints.iter().any(|hint| governance_hint_matches(hint))
    {
        return Ok(None);
    }
    let text = format!(
        "Namespace is required for {action}: this looks like swarm/experiment work; pass \
         namespace (e.g. the experiment or swarm id) so it stays isolated"
    );
    if mode == NamespaceGovernance::Require {
        return Err(ToolError::new("NAMESPACE_REQUIRED", text.clone()).logged(
            format!("{action}_namespace_rejected"),
            format!("{text} (NAMESPACE_REQUIRED)"),
        ));
    }
    Ok(Some(text))
}

fn task_not_found(tool: &str, id: impl std::fmt::Display, action: &str) -> ToolError {
    ToolError::new(
        "TASK_NOT_FOUND",
        format!("{tool}: task {id} does not exist; check the id with list_tasks"),
    )
    .logged(
        action,
        format!("task_id={id} task not found (TASK_NOT_FOUND)"),
    )
}

/// The independent-verifier rule (D25): a registered agent other than the caller and the
/// assignee.
fn independent_verifier(
    db: &Db,
    verified_by: Option<&str>,
    caller: &str,
    assignee: Option<&str>,
) -> StoreResult<bool> {
    let Some(verifier) = non_blank(verified_by) else {
        return Ok(false);
    };
    if verifier == caller || Some(verifier) == assignee {
        return Ok(false);
    }
    Ok(agent_store::get(db, verifier)?.is_some())
}

fn evidence_or_refuse(
    ctx: &OpCtx,
    tool: &str,
    task_id: i64,
    refs: Option<&[String]>,
) -> Result<Vec<String>, ToolError> {
    let refs = normalize_evidence(refs.unwrap_or(&[]), ctx.config.max_evidence_ref_chars);
    let max = ctx.config.max_evidence_refs_per_call;
    if refs.len() > max {
        let message = format!(
            "{tool}: {} evidence refs in one call, the maximum is {max}; send fewer or \
             summarize them",
            refs.len()
        );
        return Err(ToolError::new("EVIDENCE_TOO_MANY", message.clone())
            .with("max_evidence_refs_per_call", max)
            .logged(
                format!("{tool}_evidence_failed"),
                format!("task_id={task_id} {message} (EVIDENCE_TOO_MANY)"),
            ));
    }
    Ok(refs)
}

/// Runs the done gate for `caller` finishing `task`.
#[allow(clippy::too_many_arguments)]
fn run_gate(
    db: &Db,
    ctx: &OpCtx,
    task: &TaskRow,
    strict: bool,
    confidence: Option<f64>,
    verification_passed: Option<&Value>,
    verified_by: Option<&str>,
    refs: &[String],
) -> Result<GatePass, ToolError> {
    let caller = ctx.caller.agent_id().unwrap_or_default();
    let input = GateInput {
        strict,
        confidence,
        verification_passed: verification_passed == Some(&Value::Bool(true)),
        independent_verifier: independent_verifier(
            db,
            verified_by,
            caller,
            task.assigned_to.as_deref(),
        )?,
        quality: task_store::quality(db, caller)?,
        evidence_total: task_store::evidence_total_with(db, task.id, refs)?,
    };
    done_gate(&input, &GateConfig::from_config(&ctx.config))
}

/// Quality bookkeeping for a status change made through update_task / release_task_claim:
/// completions and rollbacks go to the assignee (D25), else the caller.
fn record_quality(
    tx: &mut WriteTx<'_>,
    before: &TaskRow,
    after: &TaskRow,
    caller: &str,
) -> StoreResult<()> {
    if !before.is_done() && after.is_done() {
        let credited = after.assigned_to.as_deref().unwrap_or(caller);
        task_store::record_quality(tx, credited, 1, 0)?;
    } else if before.is_done() && !after.is_done() {
        let charged = before.assigned_to.as_deref().unwrap_or(caller);
        task_store::record_quality(tx, charged, 0, 1)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// create_task

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateTaskArgs {
    /// Short title (required, not blank).
    pub title: String,
    /// Details (default "").
    pub description: Option<String>,
    /// The creator (the caller).
    pub created_by: String,
    /// Pre-assign to an agent: the task stays pending and only that agent (or you) can claim it.
    pub assigned_to: Option<String>,
    /// low | medium (default) | high | critical.
    pub priority: Option<Priority>,
    /// Namespace (default "default"); required for swarm/experiment work when governance says so.
    pub namespace: Option<String>,
    /// any (default) | repo | isolated: which workers may run it.
    pub execution_mode: Option<ExecutionMode>,
    /// auto (default: strict for critical, else the hub default) | cheap | strict done gate.
    pub consistency_mode: Option<CreateConsistency>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// Ids of tasks that must be done before this one can be claimed.
    pub depends_on: Option<Vec<Value>>,
    /// Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(CreateTaskArgs, caller = created_by, idempotent);

fn invalid_dependency(tool: &str, ids: &[i64]) -> ToolError {
    let list = ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    ToolError::new(
        "INVALID_DEPENDENCY",
        format!("{tool}: depends_on names tasks that do not exist ({list}); create them first or drop them"),
    )
    .with("invalid_ids", json!(ids))
    .logged(
        format!("{tool}_failed"),
        format!("invalid_ids={list} (INVALID_DEPENDENCY)"),
    )
}

fn create_task(tx: &mut WriteTx<'_>, ctx: &mut OpCtx, args: CreateTaskArgs) -> ToolResult {
    let title = args.title.trim().to_string();
    let created_by = args.created_by.trim().to_string();
    if title.is_empty() {
        return Err(ToolError::new(
            "INVALID_ARGUMENT",
            "create_task: title must not be blank",
        ));
    }
    let description = args.description.clone().unwrap_or_default();
    let warning = governance(
        ctx,
        "create_task",
        args.namespace.as_deref(),
        &[&created_by, &title, &description],
    )?;
    let priority = args.priority.unwrap_or(Priority::Medium);
    let consistency = match args.consistency_mode {
        Some(CreateConsistency::Strict) => "strict",
        Some(CreateConsistency::Cheap) => "cheap",
        _ if priority == Priority::Critical => "strict",
        _ if ctx.config.consistency_default_strict => "strict",
        _ => "cheap",
    };
    let depends_on = normalize_dependencies(args.depends_on.as_deref().unwrap_or(&[]), None);
    let missing = task_store::missing_ids(tx.db(), &depends_on)?;
    if !missing.is_empty() {
        return Err(invalid_dependency("create_task", &missing));
    }
    let new = NewTask {
        title,
        description,
        namespace: namespace_or_default(args.namespace.as_deref()),
        execution_mode: args
            .execution_mode
            .unwrap_or(ExecutionMode::Any)
            .as_str()
            .into(),
        consistency_mode: consistency.into(),
        assigned_to: non_blank(args.assigned_to.as_deref()).map(str::to_string),
        created_by,
        priority: priority.as_str().into(),
        trace_id: optional_text(args.trace_id.as_deref()),
        span_id: optional_text(args.span_id.as_deref()),
        depends_on,
    };
    let task = task_store::insert(tx, &new)?;
    if let Some(warning) = &warning {
        ctx.log(
            "create_task_namespace_warning",
            format!("task_id={} ns={} {warning}", task.id, task.namespace),
        );
    }
    ctx.log(
        "create_task",
        format!(
            "task_id={} title={:?} priority={} ns={} mode={}/{} deps={}",
            task.id,
            prefix(&task.title, 72),
            task.priority,
            task.namespace,
            task.execution_mode,
            task.consistency_mode,
            new.depends_on.len()
        ),
    );
    let mut policy = json!({"mode": ctx.config.namespace_governance.as_str()});
    if let Some(warning) = warning {
        policy["warning"] = json!(warning);
    }
    Ok(json!({"success": true, "task": task_json(&task), "namespace_policy": policy}))
}

// ---------------------------------------------------------------------------------------
// update_task

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateTaskArgs {
    /// The task id.
    pub id: f64,
    /// The caller: the task's creator, assignee or claim holder, or an orchestrator.
    pub agent_id: String,
    /// pending | blocked | done (in_progress is entered and left through the claim tools).
    pub status: Option<TaskStatus>,
    /// New assignee; "" clears the assignment.
    pub assigned_to: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<Priority>,
    pub namespace: Option<String>,
    pub execution_mode: Option<ExecutionMode>,
    /// cheap | strict. Raising is allowed; lowering only by the creator and not when marking done.
    pub consistency_mode: Option<Consistency>,
    /// "" clears it.
    pub trace_id: Option<String>,
    /// "" clears it.
    pub span_id: Option<String>,
    /// Replaces the whole dependency list (unknown ids and cycles are refused).
    pub depends_on: Option<Vec<Value>>,
    /// Done gate: your confidence that the task is complete (0-1).
    pub confidence: Option<f64>,
    /// Done gate: must be true.
    pub verification_passed: Option<Value>,
    /// Done gate: a registered agent other than you and the assignee who verified the work.
    pub verified_by: Option<String>,
    /// Evidence (test names, commits, paths); stored on every successful update.
    pub evidence_refs: Option<Vec<String>>,
    /// Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(UpdateTaskArgs, caller = agent_id, idempotent);

fn update_task(tx: &mut WriteTx<'_>, ctx: &mut OpCtx, args: UpdateTaskArgs) -> ToolResult {
    const TOOL: &str = "update_task";
    let caller = args.agent_id.trim().to_string();
    let Some(task) = task_id_arg(args.id)
        .map(|id| task_store::get(tx.db(), id))
        .transpose()?
        .flatten()
    else {
        return Err(task_not_found(TOOL, args.id, "update_task_failed"));
    };
    let failed = |code: &'static str, message: String| {
        ToolError::new(code, message.clone()).logged(
            "update_task_failed",
            format!("task_id={} {message} ({code})", task.id),
        )
    };
    let now = ctx.now_ms;
    let claim = claim_store::live(tx.db(), task.id, now)?;
    let holds_claim = claim.as_ref().is_some_and(|c| c.agent_id == caller);
    let is_creator = task.created_by == caller;
    let orchestrator = ctx.caller.lifts_ownership();
    if !(is_creator
        || holds_claim
        || task.assigned_to.as_deref() == Some(caller.as_str())
        || orchestrator)
    {
        return Err(failed(
            "NOT_TASK_OWNER",
            format!(
                "update_task: only the creator ({}), the assignee or claim holder, or an \
                 orchestrator may update task {}",
                task.created_by, task.id
            ),
        )
        .with("created_by", task.created_by.clone())
        .with("assigned_to", json!(task.assigned_to)));
    }

    // Status rules (D19): in_progress belongs to the claim tools.
    let to_status = args.status.map(TaskStatus::as_str);
    let status_changes = to_status.is_some_and(|s| s != task.status);
    if let Some(to) = to_status.filter(|_| status_changes) {
        if to == "in_progress" {
            return Err(failed(
                "CLAIM_REQUIRED",
                format!(
                    "update_task: task {} enters in_progress only by being claimed; use \
                     claim_task or poll_and_claim",
                    task.id
                ),
            ));
        }
        if task.status == "in_progress" && to != "done" {
            return Err(failed(
                "CLAIM_REQUIRED",
                format!(
                    "update_task: task {} is in progress; its claim holder moves it to {to} with \
                     release_task_claim next_status={to} (or the lease expires)",
                    task.id
                ),
            ));
        }
    }
    if to_status == Some("done")
        && let Some(claim) = claim.as_ref().filter(|c| c.agent_id != caller)
    {
        return Err(failed(
            "NOT_CLAIM_OWNER",
            format!(
                "update_task: task {} is claimed by {}; only the claim holder may mark it done",
                task.id, claim.agent_id
            ),
        )
        .with("current_claim", claim_json(claim, Some(&caller))));
    }

    // Consistency: a call may raise strictness; lowering needs the creator and a non-done call (D24).
    let stored_strict = task.consistency_mode == "strict";
    if args.consistency_mode == Some(Consistency::Cheap)
        && stored_strict
        && (to_status == Some("done") || !is_creator)
    {
        return Err(failed(
            "CONSISTENCY_DOWNGRADE_FORBIDDEN",
            format!(
                "update_task: task {} is strict; only its creator may lower it to cheap, and not \
                 in the call that marks it done",
                task.id
            ),
        ));
    }
    let strict = stored_strict || args.consistency_mode == Some(Consistency::Strict);
    let effective_mode = args
        .consistency_mode
        .map(Consistency::as_str)
        .unwrap_or(task.consistency_mode.as_str())
        .to_string();

    let refs = evidence_or_refuse(ctx, TOOL, task.id, args.evidence_refs.as_deref())?;

    // Dependencies: validated before anything is written.
    let new_deps = match &args.depends_on {
        Some(values) => {
            let ids = normalize_dependencies(values, Some(task.id));
            let missing = task_store::missing_ids(tx.db(), &ids)?;
            if !missing.is_empty() {
                return Err(invalid_dependency(TOOL, &missing));
            }
            if let Some(via) = task_store::cycle_through(tx.db(), task.id, &ids)? {
                let message = format!(
                    "update_task: task {} cannot depend on task {via}, which (transitively) \
                     depends on it; that would deadlock both",
                    task.id
                );
                return Err(ToolError::new("DEPENDENCY_CYCLE", message.clone())
                    .with("cycle_via", via)
                    .logged(
                        "update_task_failed",
                        format!("task_id={} {message} (DEPENDENCY_CYCLE)", task.id),
                    ));
            }
            Some(ids)
        }
        None => None,
    };

    // Assignment of a claimed task follows the claim.
    let new_assignee = args
        .assigned_to
        .as_deref()
        .map(|a| non_blank(Some(a)).map(str::to_string));
    if let (Some(assignee), Some(claim)) = (&new_assignee, &claim)
        && assignee.as_deref() != Some(claim.agent_id.as_str())
    {
        return Err(failed(
            "TASK_CLAIMED",
            format!(
                "update_task: task {} is claimed by {}; the assignee changes when the claim is \
                 released",
                task.id, claim.agent_id
            ),
        )
        .with("current_claim", claim_json(claim, Some(&caller))));
    }

    let gate = if to_status == Some("done") {
        let gate = run_gate(
            tx.db(),
            ctx,
            &task,
            strict,
            args.confidence,
            args.verification_passed.as_ref(),
            args.verified_by.as_deref(),
            &refs,
        )
        .map_err(|error| {
            let details = format!("task_id={} {} ({})", task.id, error.message, error.code);
            error.logged("update_task_done_gate_failed", details)
        })?;
        Some(gate)
    } else {
        None
    };

    // Apply.
    let update = TaskUpdate {
        title: args.title.clone(),
        description: args.description.clone(),
        namespace: args
            .namespace
            .as_deref()
            .map(|ns| namespace_or_default(Some(ns))),
        execution_mode: args.execution_mode.map(|m| m.as_str().to_string()),
        consistency_mode: args.consistency_mode.map(|m| m.as_str().to_string()),
        priority: args.priority.map(|p| p.as_str().to_string()),
        assigned_to: new_assignee.clone(),
        trace_id: args.trace_id.as_deref().map(|t| optional_text(Some(t))),
        span_id: args.span_id.as_deref().map(|s| optional_text(Some(s))),
    };
    let mut applied = Map::new();
    for (key, value) in [
        ("title", json!(update.title)),
        ("description", json!(update.description)),
        ("namespace", json!(update.namespace)),
        ("execution_mode", json!(update.execution_mode)),
        ("consistency_mode", json!(update.consistency_mode)),
        ("priority", json!(update.priority)),
        ("status", json!(to_status)),
    ] {
        if !value.is_null() {
            applied.insert(key.into(), value);
        }
    }
    if let Some(assignee) = &update.assigned_to {
        applied.insert("assigned_to".into(), json!(assignee));
    }
    if let Some(trace) = &update.trace_id {
        applied.insert("trace_id".into(), json!(trace));
    }
    if let Some(span) = &update.span_id {
        applied.insert("span_id".into(), json!(span));
    }
    if let Some(deps) = &new_deps {
        applied.insert("depends_on".into(), json!(deps));
    }
    let mut current = task.clone();
    if let Some(deps) = &new_deps {
        task_store::set_dependencies(tx, &current, deps)?;
    }
    let touched = new_deps.is_some() || to_status.is_some();
    task_store::update_fields(tx, task.id, &update, touched && !status_changes)?;
    current = task_store::get(tx.db(), task.id)?.unwrap_or(current);
    if let Some(to) = to_status.filter(|_| status_changes) {
        if task.status == "in_progress" {
            // Done through update_task ends the (caller's or expired) claim atomically.
            claim_store::delete_for_task(tx, task.id)?;
        }
        current =
            task_store::change_status(tx, &current, to, None, &caller, StatusSource::UpdateTask)?;
        record_quality(tx, &task, &current, &caller)?;
    }
    let added = task_store::add_evidence(tx, task.id, &refs, &caller)?;
    let total = task_store::evidence_count(tx.db(), task.id)?;
    ctx.log(
        "update_task",
        format!(
            "task_id={} updates={}{} evidence_added={added} evidence_total={total} consistency={effective_mode}",
            task.id,
            Value::Object(applied),
            gate.map(|g| format!(" required_confidence={}", g.required_confidence))
                .unwrap_or_default(),
        ),
    );
    let mut body = json!({
        "success": true,
        "task": task_json(&current),
        "evidence_refs_added": added,
        "evidence_refs_total": total,
    });
    if let Some(gate) = gate {
        body["required_confidence"] = json!(gate.required_confidence);
        body["required_evidence_refs"] = json!(gate.required_evidence_refs);
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------
// list_tasks

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TaskListMode {
    #[default]
    Full,
    Compact,
    Tiny,
    Nano,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListTasksArgs {
    /// The caller (heartbeat only; not a filter).
    pub agent_id: Option<String>,
    /// Filter: pending | in_progress | done | blocked.
    pub status: Option<TaskStatus>,
    /// Filter: exact assignee.
    pub assigned_to: Option<String>,
    /// Filter: exact namespace.
    pub namespace: Option<String>,
    /// Filter: any | repo | isolated.
    pub execution_mode: Option<ExecutionMode>,
    /// Only tasks whose dependencies are all done (any status).
    pub ready_only: Option<bool>,
    /// Add dependency ids per task.
    pub include_dependencies: Option<bool>,
    /// Page size, 1-500 (default 100).
    pub limit: Option<f64>,
    /// Rows to skip, newest-first listing only.
    pub offset: Option<f64>,
    /// Delta: tasks changed after this time (ms).
    pub updated_after: Option<f64>,
    /// Delta: the next_cursor of the previous call (opaque; wins over updated_after).
    pub cursor: Option<String>,
    /// full (default), compact, tiny or nano.
    pub response_mode: Option<TaskListMode>,
    /// Set in polling loops; full mode is then refused.
    pub polling: Option<bool>,
    pub auth_token: Option<String>,
}
tool_args!(ListTasksArgs, optional_caller = agent_id);

pub(super) fn list_tasks(db: &Db, ctx: &mut OpCtx, args: ListTasksArgs) -> ToolResult {
    let mode = args.response_mode.unwrap_or_default();
    let limit = int_arg(args.limit, 100, 1, 500);
    let offset = int_arg(args.offset, 0, 0, i64::MAX);
    let cursor = non_blank(args.cursor.as_deref());
    let page = match (cursor, args.updated_after) {
        (Some(cursor), _) => match parse_row_cursor(cursor) {
            Some(seq) => ListPage::AfterSeq(seq),
            None => {
                return Err(ToolError::new(
                    "CURSOR_INVALID",
                    format!(
                        "list_tasks: cursor {cursor:?} is not a cursor this hub issued; pass back \
                         next_cursor unchanged, or omit it to start over"
                    ),
                ));
            }
        },
        (None, Some(after)) if after.is_finite() => ListPage::UpdatedAfter(after.floor() as i64),
        _ => ListPage::Newest { offset },
    };
    let delta = !matches!(page, ListPage::Newest { .. });
    if mode == TaskListMode::Full && (args.polling == Some(true) || delta) {
        forbid_full_in_polling(&ctx.config, "list_tasks", &["nano", "tiny", "compact"])?;
    }
    let query = ListQuery {
        status: args.status.map(|s| s.as_str().to_string()),
        assigned_to: args.assigned_to.clone(),
        namespace: args.namespace.clone(),
        execution_mode: args.execution_mode.map(|m| m.as_str().to_string()),
        ready_only: args.ready_only == Some(true),
        limit,
        page,
    };
    let (rows, has_more) = task_store::list(db, &query)?;
    let include_deps = args.include_dependencies == Some(true);
    let mut deps: Vec<Vec<i64>> = Vec::with_capacity(rows.len());
    if include_deps {
        for row in &rows {
            deps.push(task_store::dependencies(db, row.id)?);
        }
    }
    let next_cursor = if delta {
        match rows.last() {
            Some(last) => Some(row_cursor(last.seq, last.id)),
            None => cursor.map(str::to_string),
        }
    } else {
        None
    };
    ctx.log(
        "list_tasks",
        format!(
            "count={} ns={} offset={} limit={limit} updated_after={} cursor={}",
            rows.len(),
            args.namespace.as_deref().unwrap_or("*"),
            if delta { 0 } else { offset },
            args.updated_after
                .filter(|v| v.is_finite())
                .map(|v| (v.floor() as i64).to_string())
                .unwrap_or_else(|| "-".into()),
            cursor.unwrap_or("-"),
        ),
    );
    let items: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let row_deps = include_deps.then(|| &deps[i]);
            list_item(row, mode, row_deps)
        })
        .collect();
    let mut body = Map::new();
    if mode == TaskListMode::Nano {
        body.insert("t".into(), Value::Array(items));
        body.insert("h".into(), json!(u8::from(has_more)));
        body.insert("n".into(), json!(next_cursor));
    } else {
        body.insert("tasks".into(), Value::Array(items));
        body.insert("has_more".into(), json!(has_more));
        body.insert("next_cursor".into(), json!(next_cursor));
    }
    if !delta && has_more {
        body.insert("next_offset".into(), json!(offset + limit));
    }
    Ok(Value::Object(body))
}

fn short(value: Option<&str>) -> Value {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => json!(prefix(v, 12)),
        None => Value::Null,
    }
}

fn list_item(task: &TaskRow, mode: TaskListMode, deps: Option<&Vec<i64>>) -> Value {
    match mode {
        TaskListMode::Full => {
            let mut item = task_json(task);
            if let Some(deps) = deps {
                item["depends_on"] = json!(deps);
            }
            item
        }
        TaskListMode::Compact => {
            let mut item = json!({
                "id": task.id,
                "title": task.title,
                "status": task.status,
                "assigned_to": task.assigned_to,
                "priority": task.priority,
                "namespace": task.namespace,
                "execution_mode": task.execution_mode,
                "consistency_mode": task.consistency_mode,
                "trace_id": task.trace_id,
                "span_id": task.span_id,
                "updated_at": task.updated_at,
            });
            if let Some(deps) = deps {
                item["depends_on"] = json!(deps);
            }
            item
        }
        TaskListMode::Tiny => {
            let mut item = json!({
                "id": task.id,
                "status": task.status,
                "assigned_to": task.assigned_to,
                "priority": task.priority,
                "namespace": task.namespace,
                "execution_mode": task.execution_mode,
                "consistency_mode": task.consistency_mode,
                "trace_id": short(task.trace_id.as_deref()),
                "span_id": short(task.span_id.as_deref()),
                "updated_at": task.updated_at,
                "title_preview": prefix(&task.title, 72),
                "title_chars": char_count(&task.title),
            });
            if let Some(deps) = deps {
                item["depends_on_count"] = json!(deps.len());
            }
            item
        }
        TaskListMode::Nano => {
            let mut item = json!({
                "i": task.id,
                "s": task.status,
                "a": task.assigned_to,
                "p": task.priority,
                "n": task.namespace,
                "e": task.execution_mode,
                "cm": if task.consistency_mode == "strict" { "s" } else { "c" },
                "u": task.updated_at,
                "tc": char_count(&task.title),
                "t": prefix(&task.title, 40),
            });
            if let Some(trace) = task.trace_id.as_deref().filter(|t| !t.is_empty()) {
                item["x"] = json!(prefix(trace, 12));
            }
            if let Some(span) = task.span_id.as_deref().filter(|s| !s.is_empty()) {
                item["y"] = json!(prefix(span, 12));
            }
            if let Some(deps) = deps {
                item["dc"] = json!(deps.len());
            }
            item
        }
    }
}

// ---------------------------------------------------------------------------------------
// delete_task

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeleteTaskArgs {
    /// The task id.
    pub id: f64,
    /// The caller: the task's creator or an orchestrator.
    pub agent_id: String,
    /// Keep a copy in the archive (default true).
    pub archive: Option<bool>,
    /// Archive reason (default manual_delete).
    pub reason: Option<String>,
    /// Delete even though unfinished tasks depend on it (they lose that dependency).
    pub force: Option<bool>,
    /// Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(DeleteTaskArgs, caller = agent_id, idempotent);

fn delete_task(tx: &mut WriteTx<'_>, ctx: &mut OpCtx, args: DeleteTaskArgs) -> ToolResult {
    let caller = args.agent_id.trim().to_string();
    let Some(task) = task_id_arg(args.id)
        .map(|id| task_store::get(tx.db(), id))
        .transpose()?
        .flatten()
    else {
        return Err(task_not_found("delete_task", args.id, "delete_task_failed"));
    };
    let failed = |code: &'static str, message: String| {
        ToolError::new(code, message.clone()).logged(
            "delete_task_failed",
            format!("task_id={} {message} ({code})", task.id),
        )
    };
    if task.created_by != caller && !ctx.caller.lifts_ownership() {
        return Err(failed(
            "NOT_TASK_OWNER",
            format!(
                "delete_task: only the creator ({}) or an orchestrator may delete task {}",
                task.created_by, task.id
            ),
        )
        .with("created_by", task.created_by.clone()));
    }
    if let Some(claim) = claim_store::live(tx.db(), task.id, ctx.now_ms)? {
        return Err(failed(
            "TASK_CLAIMED",
            format!(
                "delete_task: task {} is claimed by {} until {}; wait for its release or lease \
                 expiry",
                task.id,
                claim.agent_id,
                iso8601(claim.lease_expires_at)
            ),
        )
        .with("current_claim", claim_json(&claim, Some(&caller))));
    }
    let dependents = if task.is_done() {
        Vec::new()
    } else {
        task_store::open_dependents(tx.db(), task.id)?
    };
    if !dependents.is_empty() && args.force != Some(true) {
        return Err(failed(
            "TASK_HAS_DEPENDENTS",
            format!(
                "delete_task: unfinished tasks depend on task {}; deleting it would unblock them \
                 silently. Update their depends_on first, or pass force:true",
                task.id
            ),
        )
        .with("dependents", json!(dependents)));
    }
    let archive = args.archive != Some(false);
    let reason = non_blank(args.reason.as_deref()).unwrap_or("manual_delete");
    task_store::delete(tx, &task, archive.then_some(reason))?;
    ctx.log(
        "delete_task",
        format!(
            "task_id={} archived={archive} forced_dependents={}",
            task.id,
            dependents.len()
        ),
    );
    Ok(json!({"success": true, "archived": archive}))
}

// ---------------------------------------------------------------------------------------
// poll_and_claim

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PollAndClaimArgs {
    /// The worker (the caller). Routing uses its registered runtime profile.
    pub agent_id: String,
    /// Lease in seconds, 30-86400 (default 300); renew before it runs out.
    pub lease_seconds: Option<f64>,
    /// Only tasks of this namespace.
    pub namespace: Option<String>,
    /// Also return the task's artifact hints.
    pub include_artifacts: Option<bool>,
    /// Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(PollAndClaimArgs, caller = agent_id, idempotent);

fn poll_and_claim(tx: &mut WriteTx<'_>, ctx: &mut OpCtx, args: PollAndClaimArgs) -> ToolResult {
    let agent_id = args.agent_id.trim().to_string();
    let namespace = non_blank(args.namespace.as_deref()).map(str::to_string);
    let warning = governance(ctx, "poll_and_claim", namespace.as_deref(), &[&agent_id])?;
    if let Some(warning) = &warning {
        ctx.log("poll_and_claim_namespace_warning", warning.clone());
    }
    sweep_if_due(tx, ctx)?;
    let runtime_mode = runtime_mode_of(tx.db(), &agent_id)?;
    let include_artifacts = args.include_artifacts == Some(true);
    let lease = lease_ms(args.lease_seconds);
    let query = PollQuery {
        agent_id: &agent_id,
        execution_modes: compatible_modes(&runtime_mode),
        namespace: namespace.as_deref(),
        now_ms: ctx.now_ms,
    };
    let candidate = task_store::next_candidate(tx.db(), &query)?
        .map(|id| task_store::get(tx.db(), id))
        .transpose()?
        .flatten();
    let Some(task) = candidate else {
        ctx.skip_idempotency_record();
        let misses = ctx.tasks.record_miss(&agent_id, ctx.now_ms);
        let active = agent_store::count_seen_since(tx.db(), ctx.now_ms - 5 * 60_000)?;
        let retry = retry_after_ms(
            active,
            misses,
            claim_store::any_claims(tx.db())?,
            rand::random::<f64>(),
        );
        ctx.log_quiet(
            "poll_and_claim",
            format!(
                "miss ns={} include_artifacts={} retry_after_ms={retry}",
                namespace.as_deref().unwrap_or("*"),
                u8::from(include_artifacts)
            ),
        );
        let mut body = json!({
            "success": true,
            "task": null,
            "message": format!(
                "no claimable task for {agent_id} (runtime_mode {runtime_mode}{}); poll again after retry_after_ms",
                namespace.as_deref().map(|ns| format!(", namespace {ns}")).unwrap_or_default()
            ),
            "retry_after_ms": retry,
            "runtime_mode": runtime_mode,
        });
        if let Some(warning) = warning {
            body["warning"] = json!(warning);
        }
        return Ok(body);
    };
    let (task, claim) =
        claim_store::claim(tx, &task, &agent_id, lease, StatusSource::PollAndClaim)?;
    ctx.tasks.reset_misses(&agent_id);
    let depends_on = task_store::dependencies(tx.db(), task.id)?;
    ctx.log(
        "poll_and_claim",
        format!(
            "task_id={} title={:?} priority={} ns={} mode={} deps={} include_artifacts={} claim_id={} lease_expires_at={}",
            task.id,
            prefix(&task.title, 72),
            task.priority,
            task.namespace,
            task.execution_mode,
            depends_on.len(),
            u8::from(include_artifacts),
            claim.claim_id,
            iso8601(claim.lease_expires_at)
        ),
    );
    let mut body = json!({
        "success": true,
        "task": task_json(&task),
        "claim": claim_json(&claim, Some(&agent_id)),
        "depends_on": depends_on,
        "runtime_mode": runtime_mode,
    });
    if include_artifacts {
        // Artifact links arrive with the artifact tools; until then a task has none.
        body["task_artifacts"] = json!([]);
    }
    if let Some(warning) = warning {
        body["warning"] = json!(warning);
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------
// claim_task

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ClaimTaskArgs {
    /// The task id.
    pub task_id: f64,
    /// The worker (the caller).
    pub agent_id: String,
    /// Lease in seconds, 30-86400 (default 300).
    pub lease_seconds: Option<f64>,
    /// Expected namespace of the task; a different one is refused.
    pub namespace: Option<String>,
    /// Also return the task's artifact hints.
    pub include_artifacts: Option<bool>,
    /// Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(ClaimTaskArgs, caller = agent_id, idempotent);

fn claim_task(tx: &mut WriteTx<'_>, ctx: &mut OpCtx, args: ClaimTaskArgs) -> ToolResult {
    let agent_id = args.agent_id.trim().to_string();
    let namespace = non_blank(args.namespace.as_deref()).map(str::to_string);
    let warning = governance(ctx, "claim_task", namespace.as_deref(), &[&agent_id])?;
    if let Some(warning) = &warning {
        ctx.log("claim_task_namespace_warning", warning.clone());
    }
    sweep_if_due(tx, ctx)?;
    let Some(task) = task_id_arg(args.task_id)
        .map(|id| task_store::get(tx.db(), id))
        .transpose()?
        .flatten()
    else {
        return Err(task_not_found(
            "claim_task",
            args.task_id,
            "claim_task_failed",
        ));
    };
    let failed = |code: &'static str, message: String| {
        ToolError::new(code, message.clone())
            .with("task", task_json(&task))
            .logged(
                "claim_task_failed",
                format!("task_id={} {message} ({code})", task.id),
            )
    };
    if task.is_done() {
        return Err(failed(
            "TASK_ALREADY_DONE",
            format!(
                "claim_task: task {} is already done; poll for another task",
                task.id
            ),
        ));
    }
    if let Some(ns) = namespace.as_deref().filter(|ns| *ns != task.namespace) {
        return Err(failed(
            "NAMESPACE_MISMATCH",
            format!(
                "claim_task: task {} is in namespace {:?}, not {ns:?}; claim tasks of your own \
                 namespace",
                task.id, task.namespace
            ),
        ));
    }
    let runtime_mode = runtime_mode_of(tx.db(), &agent_id)?;
    if !compatible_modes(&runtime_mode).contains(&task.execution_mode.as_str()) {
        return Err(failed(
            "PROFILE_MISMATCH",
            format!(
                "claim_task: task {} needs a {} worker and your runtime mode is {runtime_mode}; \
                 leave it to a matching worker (or fix your runtime_profile)",
                task.id, task.execution_mode
            ),
        )
        .with("agent_runtime_mode", runtime_mode.clone())
        .with("task_execution_mode", task.execution_mode.clone()));
    }
    let unmet = task_store::unmet_dependencies(tx.db(), task.id)?;
    if !unmet.is_empty() {
        return Err(failed(
            "DEPENDENCIES_NOT_MET",
            format!(
                "claim_task: task {} waits for tasks {unmet:?} to be done; claim it after them",
                task.id
            ),
        )
        .with("unmet_dependencies", json!(unmet)));
    }
    let current = claim_store::live(tx.db(), task.id, ctx.now_ms)?;
    if let Some(claim) = current.as_ref().filter(|c| c.agent_id != agent_id) {
        return Err(failed(
            "ALREADY_CLAIMED",
            format!(
                "claim_task: task {} is already claimed by {} until {}; poll for another task",
                task.id,
                claim.agent_id,
                iso8601(claim.lease_expires_at)
            ),
        )
        .with("current_claim", claim_json(claim, Some(&agent_id))));
    }
    if current.is_none()
        && let Some(assignee) = task.assigned_to.as_deref()
        && task.status != "in_progress"
        && assignee != agent_id
        && task.created_by != agent_id
    {
        return Err(failed(
            "TASK_ASSIGNED_TO_OTHER",
            format!(
                "claim_task: task {} is assigned to {assignee}; only that agent or the creator \
                 may claim it",
                task.id
            ),
        )
        .with("assigned_to", assignee.to_string()));
    }
    let rotated = current.is_some();
    let include_artifacts = args.include_artifacts == Some(true);
    let (task, claim) = claim_store::claim(
        tx,
        &task,
        &agent_id,
        lease_ms(args.lease_seconds),
        StatusSource::ClaimTask,
    )?;
    let depends_on = task_store::dependencies(tx.db(), task.id)?;
    ctx.log(
        "claim_task",
        format!(
            "task_id={} claim_id={} rotated={} deps={} include_artifacts={} lease_expires_at={}",
            task.id,
            claim.claim_id,
            u8::from(rotated),
            depends_on.len(),
            u8::from(include_artifacts),
            iso8601(claim.lease_expires_at)
        ),
    );
    let mut body = json!({
        "success": true,
        "task": task_json(&task),
        "claim": claim_json(&claim, Some(&agent_id)),
        "depends_on": depends_on,
    });
    if include_artifacts {
        body["task_artifacts"] = json!([]);
    }
    if let Some(warning) = warning {
        body["warning"] = json!(warning);
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------
// renew_task_claim / release_task_claim

/// The fencing checks shared by renew and release: a live claim, owned by the caller, with
/// the given claim id. Returns the claim.
fn owned_live_claim(
    tx: &mut WriteTx<'_>,
    ctx: &OpCtx,
    tool: &'static str,
    task_id: i64,
    caller: &str,
    claim_id: Option<&str>,
) -> Result<ClaimRow, ToolError> {
    let action = format!("{tool}_failed");
    let fail = |code: &'static str, message: String| {
        ToolError::new(code, message.clone()).logged(
            action.clone(),
            format!("task_id={task_id} {message} ({code})"),
        )
    };
    let claim = claim_store::get(tx.db(), task_id)?;
    let Some(claim) = claim.filter(|c| c.is_live(ctx.now_ms)) else {
        return Err(fail(
            "CLAIM_EXPIRED",
            format!(
                "{tool}: you hold no live claim on task {task_id} (the lease expired or it was \
                 released); claim it again with claim_task or poll_and_claim"
            ),
        ));
    };
    if claim.agent_id != caller {
        return Err(fail(
            "NOT_CLAIM_OWNER",
            format!(
                "{tool}: task {task_id} is claimed by {}, not by you; poll for another task",
                claim.agent_id
            ),
        )
        .with("current_claim", claim_json(&claim, Some(caller))));
    }
    if let Some(given) = non_blank(claim_id)
        && given != claim.claim_id
    {
        return Err(fail(
            "CLAIM_ID_MISMATCH",
            format!(
                "{tool}: claim_id {given:?} is not the current claim on task {task_id} (it was \
                 rotated by a newer claim); use the claim_id of your latest claim"
            ),
        )
        .with("current_claim", claim_json(&claim, Some(caller))));
    }
    Ok(claim)
}

fn claim_stolen(tool: &str, task_id: i64, current: Option<&ClaimRow>, caller: &str) -> ToolError {
    let message = format!(
        "{tool}: the claim on task {task_id} changed during this call; re-read it with \
         list_task_claims"
    );
    ToolError::new("CLAIM_STOLEN", message.clone())
        .with(
            "current_claim",
            current
                .map(|c| claim_json(c, Some(caller)))
                .unwrap_or(Value::Null),
        )
        .logged(
            format!("{tool}_failed"),
            format!("task_id={task_id} {message} (CLAIM_STOLEN)"),
        )
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RenewTaskClaimArgs {
    /// The task id.
    pub task_id: f64,
    /// The claim holder (the caller).
    pub agent_id: String,
    /// New lease from now, seconds 30-86400 (default 300).
    pub lease_seconds: Option<f64>,
    /// The claim_id from your claim; a stale one is refused (CLAIM_ID_MISMATCH).
    pub claim_id: Option<String>,
    /// Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(RenewTaskClaimArgs, caller = agent_id, idempotent);

fn renew_task_claim(tx: &mut WriteTx<'_>, ctx: &mut OpCtx, args: RenewTaskClaimArgs) -> ToolResult {
    const TOOL: &str = "renew_task_claim";
    let caller = args.agent_id.trim().to_string();
    sweep_if_due(tx, ctx)?;
    let Some(task_id) = task_id_arg(args.task_id) else {
        return Err(task_not_found(
            TOOL,
            args.task_id,
            "renew_task_claim_failed",
        ));
    };
    let claim = owned_live_claim(tx, ctx, TOOL, task_id, &caller, args.claim_id.as_deref())?;
    let Some(claim) = claim_store::renew(
        tx,
        task_id,
        &caller,
        &claim.claim_id,
        lease_ms(args.lease_seconds),
    )?
    else {
        let current = claim_store::get(tx.db(), task_id)?;
        return Err(claim_stolen(TOOL, task_id, current.as_ref(), &caller));
    };
    let mut task = task_store::get(tx.db(), task_id)?
        .ok_or_else(|| task_not_found(TOOL, task_id, "renew_task_claim_failed"))?;
    // Only a task still in progress for the caller is touched (D20).
    if task.status == "in_progress" && task.assigned_to.as_deref() == Some(caller.as_str()) {
        task_store::update_fields(tx, task_id, &TaskUpdate::default(), true)?;
        task = task_store::get(tx.db(), task_id)?.unwrap_or(task);
    }
    ctx.log(
        "renew_task_claim",
        format!(
            "task_id={task_id} claim_id={} lease_expires_at={}",
            claim.claim_id,
            iso8601(claim.lease_expires_at)
        ),
    );
    Ok(json!({
        "success": true,
        "task": task_json(&task),
        "claim": claim_json(&claim, Some(&caller)),
    }))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReleaseTaskClaimArgs {
    /// The task id.
    pub task_id: f64,
    /// The claim holder (the caller).
    pub agent_id: String,
    /// pending (default: back to the queue) | blocked | done (runs the done gate).
    pub next_status: Option<NextStatus>,
    /// The claim_id from your claim; a stale one is refused (CLAIM_ID_MISMATCH).
    pub claim_id: Option<String>,
    /// cheap | strict for this call's gate; it can only raise the task's own mode.
    pub consistency_mode: Option<Consistency>,
    /// Done gate: your confidence that the task is complete (0-1).
    pub confidence: Option<f64>,
    /// Done gate: must be true.
    pub verification_passed: Option<Value>,
    /// Done gate: a registered agent other than you who verified the work.
    pub verified_by: Option<String>,
    /// Evidence (test names, commits, paths), stored with the task.
    pub evidence_refs: Option<Vec<String>>,
    /// Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(ReleaseTaskClaimArgs, caller = agent_id, idempotent);

fn release_task_claim(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: ReleaseTaskClaimArgs,
) -> ToolResult {
    const TOOL: &str = "release_task_claim";
    let caller = args.agent_id.trim().to_string();
    let Some(task) = task_id_arg(args.task_id)
        .map(|id| task_store::get(tx.db(), id))
        .transpose()?
        .flatten()
    else {
        return Err(task_not_found(
            TOOL,
            args.task_id,
            "release_task_claim_failed",
        ));
    };
    sweep_if_due(tx, ctx)?;
    // Ownership before the gate (D26).
    let claim = owned_live_claim(tx, ctx, TOOL, task.id, &caller, args.claim_id.as_deref())?;
    let task = task_store::get(tx.db(), task.id)?.unwrap_or(task);
    let refs = evidence_or_refuse(ctx, TOOL, task.id, args.evidence_refs.as_deref())?;
    let next = args.next_status.unwrap_or_default();
    let strict =
        task.consistency_mode == "strict" || args.consistency_mode == Some(Consistency::Strict);
    let mode = if strict { "strict" } else { "cheap" };
    let gate = if next == NextStatus::Done {
        let gate = run_gate(
            tx.db(),
            ctx,
            &task,
            strict,
            args.confidence,
            args.verification_passed.as_ref(),
            args.verified_by.as_deref(),
            &refs,
        )
        .map_err(|error| {
            let details = format!("task_id={} {} ({})", task.id, error.message, error.code);
            error.logged("release_task_claim_done_gate_failed", details)
        })?;
        Some(gate)
    } else {
        None
    };
    if !claim_store::delete_matching(tx, task.id, &caller, &claim.claim_id)? {
        let current = claim_store::get(tx.db(), task.id)?;
        return Err(claim_stolen(TOOL, task.id, current.as_ref(), &caller));
    }
    let assignee = (next == NextStatus::Done).then_some(caller.as_str());
    let after = task_store::change_status(
        tx,
        &task,
        next.as_str(),
        Some(assignee),
        &caller,
        StatusSource::ReleaseTaskClaim,
    )?;
    record_quality(tx, &task, &after, &caller)?;
    let added = task_store::add_evidence(tx, task.id, &refs, &caller)?;
    let total = task_store::evidence_count(tx.db(), task.id)?;
    ctx.log(
        "release_task_claim",
        format!(
            "task_id={} claim_id={} status={}{} evidence_added={added} evidence_total={total} consistency={mode}",
            task.id,
            non_blank(args.claim_id.as_deref()).unwrap_or("server-current"),
            after.status,
            gate.map(|g| format!(" required_confidence={}", g.required_confidence))
                .unwrap_or_default(),
        ),
    );
    let mut body = json!({
        "success": true,
        "task": task_json(&after),
        "evidence_refs_added": added,
        "evidence_refs_total": total,
    });
    if let Some(gate) = gate {
        body["required_confidence"] = json!(gate.required_confidence);
        body["required_evidence_refs"] = json!(gate.required_evidence_refs);
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------
// list_task_claims

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListTaskClaimsArgs {
    /// The caller; sees the claim_id of its own claims only.
    pub requesting_agent: Option<String>,
    /// Filter: claims held by this agent.
    pub agent_id: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(ListTaskClaimsArgs, optional_caller = requesting_agent);

fn list_task_claims(db: &Db, ctx: &mut OpCtx, args: ListTaskClaimsArgs) -> ToolResult {
    let viewer = ctx.caller.clone();
    let filter = non_blank(args.agent_id.as_deref());
    let claims = claim_store::list_live(db, filter, ctx.now_ms)?;
    ctx.log(
        "list_task_claims",
        format!("count={} agent={}", claims.len(), filter.unwrap_or("*")),
    );
    let items: Vec<Value> = claims
        .iter()
        .map(|listing| {
            let mut item = claim_json(&listing.claim, viewer.agent_id());
            item["task_title"] = json!(listing.task_title);
            item["task_status"] = json!(listing.task_status);
            item["task_priority"] = json!(listing.task_priority);
            item
        })
        .collect();
    Ok(json!({"claims": items}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate_config() -> GateConfig {
        GateConfig {
            cheap_min_refs: 1,
            strict_min_refs: 2,
            strict_floor: 0.95,
        }
    }

    fn input() -> GateInput {
        GateInput {
            strict: false,
            confidence: Some(0.95),
            verification_passed: true,
            independent_verifier: false,
            quality: (0, 0),
            evidence_total: 1,
        }
    }

    /// The done gate as a table: each row an input and the expected outcome.
    #[test]
    fn done_gate_table() {
        type Case = (&'static str, fn(&mut GateInput), Result<f64, &'static str>);
        let cases: Vec<Case> = vec![
            ("cheap pass", |_| {}, Ok(0.9)),
            (
                "no confidence",
                |i| i.confidence = None,
                Err("DONE_GATE_FAILED"),
            ),
            (
                "nan confidence",
                |i| i.confidence = Some(f64::NAN),
                Err("DONE_GATE_FAILED"),
            ),
            (
                "below cheap floor",
                |i| i.confidence = Some(0.7),
                Err("DONE_GATE_FAILED"),
            ),
            (
                "verification not passed",
                |i| i.verification_passed = false,
                Err("DONE_GATE_FAILED"),
            ),
            (
                "cheap below 0.9 without verifier",
                |i| i.confidence = Some(0.8),
                Err("VERIFIER_REQUIRED"),
            ),
            (
                "cheap below 0.9 with verifier",
                |i| {
                    i.confidence = Some(0.8);
                    i.independent_verifier = true;
                },
                Ok(0.9),
            ),
            (
                "cheap no evidence",
                |i| i.evidence_total = 0,
                Err("EVIDENCE_REQUIRED"),
            ),
            (
                "strict without verifier",
                |i| i.strict = true,
                Err("VERIFIER_REQUIRED"),
            ),
            (
                "strict below strict floor",
                |i| {
                    i.strict = true;
                    i.confidence = Some(0.9);
                    i.independent_verifier = true;
                },
                Err("DONE_GATE_FAILED"),
            ),
            (
                "strict one ref",
                |i| {
                    i.strict = true;
                    i.independent_verifier = true;
                },
                Err("EVIDENCE_REQUIRED"),
            ),
            (
                "strict pass",
                |i| {
                    i.strict = true;
                    i.independent_verifier = true;
                    i.evidence_total = 2;
                },
                Ok(0.95),
            ),
            (
                "rollback history raises the bar",
                |i| {
                    i.quality = (4, 2);
                    i.confidence = Some(0.95);
                },
                Err("VERIFIER_REQUIRED"),
            ),
            (
                "rollback history met",
                |i| {
                    i.quality = (4, 2);
                    i.confidence = Some(0.98);
                },
                Ok(0.97),
            ),
            ("small rollback rate", |i| i.quality = (10, 1), Ok(0.925)),
            (
                "strict with high penalty",
                |i| {
                    i.strict = true;
                    i.quality = (1, 1);
                    i.confidence = Some(0.96);
                    i.independent_verifier = true;
                    i.evidence_total = 5;
                },
                Ok(0.97),
            ),
            (
                "confidence over 1 is not range checked",
                |i| i.confidence = Some(1.5),
                Ok(0.9),
            ),
        ];
        for (name, mutate, expected) in cases {
            let mut case = input();
            mutate(&mut case);
            let outcome = done_gate(&case, &gate_config());
            match (expected, outcome) {
                (Ok(required), Ok(pass)) => {
                    assert_eq!(pass.required_confidence, required, "{name}");
                }
                (Err(code), Err(error)) => {
                    assert_eq!(error.code, code, "{name}: {}", error.message);
                    assert!(error.fields.contains_key("required_confidence"), "{name}");
                    assert!(error.fields.contains_key("consistency_mode"), "{name}");
                    assert_eq!(
                        error.fields.contains_key("required_evidence_refs"),
                        code == "EVIDENCE_REQUIRED",
                        "{name}"
                    );
                }
                (expected, outcome) => panic!("{name}: expected {expected:?}, got {outcome:?}"),
            }
        }
    }

    #[test]
    fn gate_messages_show_values_and_mode() {
        let mut case = input();
        case.confidence = Some(0.7);
        let error = done_gate(&case, &gate_config()).unwrap_err();
        assert!(error.message.contains("0.70") && error.message.contains("0.75"));
        assert!(error.message.contains("cheap"));
    }

    #[test]
    fn retry_after_profiles_stay_in_bounds_and_grow() {
        for active in [0, 5, 6, 10, 11, 20, 21, 500] {
            for misses in 0..12 {
                for any in [false, true] {
                    for random in [0.0, 0.5, 0.999_999] {
                        let ms = retry_after_ms(active, misses, any, random);
                        assert!((200..=12_000).contains(&ms), "{active} {misses} {ms}");
                    }
                }
            }
        }
        // ≤ 5 agents, first miss, no jitter spread at random 0: low = round(800 × 0.7).
        assert_eq!(retry_after_ms(1, 1, false, 0.0), 560);
        // Exponent caps at 6 and the profile cap applies: 800 × 1.3^6 > 3000.
        assert_eq!(retry_after_ms(1, 50, false, 0.999_999), 3000);
        // A claim somewhere caps the big profile at 5000.
        assert!(retry_after_ms(100, 50, true, 0.999_999) <= 5000);
        assert!(retry_after_ms(100, 50, false, 0.999_999) > 5000);
        assert!(retry_after_ms(3, 4, false, 0.5) > retry_after_ms(3, 1, false, 0.5));
    }

    #[test]
    fn governance_matches_whole_tokens_only() {
        for hint in [
            "swarm-7",
            "Experiment run",
            "w-EXP5-1",
            "exp-alpha",
            "round 2",
            "round2",
            "orchestrator",
            "sw_worker_3",
            "Workers",
            "[EXP12] task",
        ] {
            assert!(governance_hint_matches(hint), "{hint}");
        }
        for hint in [
            "background job",
            "networker",
            "expert",
            "express",
            "export-data",
            "aroundthehouse",
            "swarming",
            "",
            "claude-frontend",
        ] {
            assert!(!governance_hint_matches(hint), "{hint}");
        }
    }

    #[test]
    fn evidence_is_trimmed_cut_and_deduplicated() {
        let refs: Vec<String> = vec![
            "  a  ".into(),
            "".into(),
            "   ".into(),
            "a".into(),
            "0123456789abc".into(),
            "0123456789xyz".into(),
        ];
        assert_eq!(
            normalize_evidence(&refs, 10),
            vec!["a".to_string(), "0123456789".to_string()]
        );
    }

    #[test]
    fn dependency_ids_are_normalized() {
        let values = vec![
            json!(3),
            json!(1),
            json!(3),
            json!(2.5),
            json!("4"),
            json!(-1),
            json!(7.0),
            json!(9),
        ];
        assert_eq!(normalize_dependencies(&values, Some(9)), vec![1, 3, 7]);
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn lease_and_ids_are_clamped() {
        assert_eq!(lease_ms(None), 300_000);
        assert_eq!(lease_ms(Some(1.0)), 30_000);
        assert_eq!(lease_ms(Some(1e12)), 86_400_000);
        assert_eq!(lease_ms(Some(f64::NAN)), 300_000);
        assert_eq!(task_id_arg(0.0), None);
        assert_eq!(task_id_arg(f64::INFINITY), None);
        assert_eq!(task_id_arg(3.7), Some(3));
    }

    #[test]
    fn miss_streaks_count_reset_and_expire() {
        let state = TaskState::default();
        assert_eq!(state.record_miss("a", 0), 1);
        assert_eq!(state.record_miss("a", 10), 2);
        state.reset_misses("a");
        assert_eq!(state.record_miss("a", 20), 1);
        state.record_miss("b", 20);
        state.prune(20 + MISS_STREAK_IDLE_MS);
        assert_eq!(state.tracked_streaks(), 0);
    }
}
