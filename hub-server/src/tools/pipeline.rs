//! The call pipeline every tool goes through (see `tools/mod.rs` for the steps): parse,
//! admit (the [`Caller`], private-data rule, rate limit), then the op on the writer
//! (`mutating`), on the reader pool (`reading`) or awaiting changes (`waiting`). The guard's
//! bookkeeping leaves the call as a [`CallRecord`] for the coalescing bookkeeper.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rmcp::handler::server::common::schema_for_type;
use rmcp::model::JsonObject;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    CallEnv, CallFn, Category, Hub, OpCtx, ToolArgs, ToolDef, ToolError, ToolKind, ToolResult,
    validate,
};
use crate::auth::{self, AuthDecision, AuthOutcome, Caller};
use crate::bookkeeping::{CallRecord, CallStat};
use crate::config::{AuthMode, Config, QuotaMode};
use crate::domain::observability::CallOutcome;
use crate::store::{self, Db, StoreError, StoreResult, WriteTx};

/// Whether a tool's activity rows advance the activity stream. Reads and waits are quiet so
/// the hub's own bookkeeping never wakes a waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Stream,
    Quiet,
}

/// Everything the guard needs to know about one call.
struct Call {
    tool: &'static str,
    caller_field: Option<&'static str>,
    caller: Option<String>,
    /// (field, agent id) of the private data the call names, if a tool lets it differ.
    subject: Option<(&'static str, String)>,
    token: Option<String>,
    connection_key: String,
    idempotency: Option<(String, String)>,
    /// Of the arguments; computed only for calls with an idempotency key.
    fingerprint: String,
    quiet: bool,
    cancel: tokio_util::sync::CancellationToken,
    /// The `namespace` (else `task_namespace`) argument, when the tool declares one.
    namespace: Option<String>,
    /// The task a task-scoped tool names (`task_id`, else `id`): its namespace is the call's.
    task_ref: Option<i64>,
    /// Estimated tokens of the arguments; computed only while a token budget is active.
    quota_cost: i64,
}

/// A string argument the tool's schema declares (undeclared ones are ignored by serde too).
fn declared_str<'a>(schema: &JsonObject, raw: &'a JsonObject, field: &str) -> Option<&'a str> {
    let declared = schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|props| props.contains_key(field));
    raw.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|v| declared && !v.is_empty())
}

/// A call refused before it ran (its arguments failed validation): the tool error JSON.
/// Nothing was read or written for it.
pub struct Rejected(pub Value);

/// Step 1: the arguments against the tool's schema, then into its args struct. A failure
/// is an `INVALID_ARGUMENT` tool error naming the field (see [`super::validate`]).
fn parse_args<A: ToolArgs>(
    hub: &Hub,
    tool: &'static str,
    env: CallEnv,
    raw: JsonObject,
    activity: Activity,
) -> Result<(A, Call), Rejected> {
    let schema = schema_for_type::<A>();
    let callers: Vec<&str> = A::CALLER_FIELD
        .into_iter()
        .chain(A::SUBJECT_FIELD)
        .collect();
    validate::check(&schema, &raw)
        .and_then(|()| validate::check_ids(&schema, &raw, &callers))
        .map_err(|invalid| Rejected(invalid.to_error(tool).to_json()))?;
    let namespace = declared_str(&schema, &raw, "namespace")
        .or_else(|| declared_str(&schema, &raw, "task_namespace"))
        .map(str::to_string);
    let task_ref = (namespace.is_none() && crate::quota::TASK_SCOPED_TOOLS.contains(&tool))
        .then(|| raw.get("task_id").or_else(|| raw.get("id")))
        .flatten()
        .and_then(Value::as_f64)
        .filter(|id| id.is_finite())
        .map(|id| id as i64);
    let quota_cost = if hub.quotas.budget_enabled() {
        let chars = Value::Object(raw.clone())
            .to_string()
            .encode_utf16()
            .count();
        crate::quota::estimated_tokens(chars)
    } else {
        1
    };
    let keyed = raw
        .get("idempotency_key")
        .and_then(Value::as_str)
        .is_some_and(|key| !key.trim().is_empty());
    let fingerprint = if keyed {
        fingerprint(&raw)
    } else {
        String::new()
    };
    let cancel = env.cancel.clone();
    // The schema passed, so this fails only where serde is stricter than the schema says.
    let args: A = serde_json::from_value(Value::Object(raw)).map_err(|error| {
        let refusal = ToolError::new(
            "INVALID_ARGUMENT",
            format!("{tool}: the arguments do not fit the schema: {error}"),
        );
        Rejected(refusal.to_json())
    })?;
    let caller = args.caller().map(str::to_string);
    let subject = A::SUBJECT_FIELD.zip(args.subject().map(str::to_string));
    let token = args
        .auth_token()
        .map(str::to_string)
        .or_else(|| env.bearer.clone());
    let idempotency = match (&caller, args.idempotency_key()) {
        (Some(scope), Some(key)) => Some((scope.clone(), key.to_string())),
        _ => None,
    };
    let call = Call {
        tool,
        caller_field: A::CALLER_FIELD,
        caller,
        subject,
        token,
        connection_key: env.connection_key,
        idempotency,
        fingerprint,
        quiet: activity == Activity::Quiet,
        cancel,
        namespace,
        task_ref,
        quota_cost,
    };
    Ok((args, call))
}

/// SHA-256 over the arguments in key-sorted form, without the token and key themselves:
/// what makes two calls "the same request" for idempotency.
fn fingerprint(raw: &JsonObject) -> String {
    let mut trimmed = raw.clone();
    trimmed.remove("auth_token");
    trimmed.remove("idempotency_key");
    // serde_json's Map is ordered by key, so this serialization is canonical.
    let canonical = serde_json::to_string(&trimmed).unwrap_or_default();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// A tool definition for args `A` served by `call`.
fn define<A: ToolArgs>(
    name: &'static str,
    category: Category,
    description: &'static str,
    kind: ToolKind,
    call: CallFn,
) -> ToolDef {
    ToolDef {
        name,
        category,
        description,
        kind,
        caller_field: A::CALLER_FIELD,
        subject_field: A::SUBJECT_FIELD,
        schema: Arc::new(super::schema::compact(&schema_for_type::<A>())),
        call,
    }
}

/// A tool that changes state: everything runs in one writer transaction.
pub fn mutating<A: ToolArgs>(
    name: &'static str,
    category: Category,
    description: &'static str,
    activity: Activity,
    op: fn(&mut WriteTx<'_>, &mut OpCtx, A) -> ToolResult,
) -> ToolDef {
    mutating_rendered(
        name,
        category,
        description,
        activity,
        op,
        std::convert::identity,
    )
}

/// A mutating tool whose op returns a typed outcome: the writer runs only the op (parse →
/// one service call), and `render` turns the outcome into JSON after the commit.
pub fn mutating_rendered<A: ToolArgs, O: Send + 'static>(
    name: &'static str,
    category: Category,
    description: &'static str,
    activity: Activity,
    op: fn(&mut WriteTx<'_>, &mut OpCtx, A) -> Result<O, ToolError>,
    render: fn(O) -> Value,
) -> ToolDef {
    let nothing_to_prepare: fn(A, &Config) -> A = |args, _| args;
    mutating_prepared(
        name,
        category,
        description,
        activity,
        (nothing_to_prepare, PrepareOn::Request),
        op,
        render,
    )
}

/// Where a tool's `prepare` step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrepareOn {
    /// On the request's own task: bounded, cheap work (a message's whitespace collapse).
    Request,
    /// On the blocking pool: work that may take milliseconds (zstd over a large payload).
    BlockingPool,
}

/// A mutating tool with CPU work (compression, hashing) that needs no database: `prepare`
/// does it before the write, so the writer thread runs only SQL. It must not refuse
/// anything (refusals belong to the op, after the caller is admitted).
pub fn mutating_prepared<A: ToolArgs, P: Send + 'static, O: Send + 'static>(
    name: &'static str,
    category: Category,
    description: &'static str,
    activity: Activity,
    (prepare, on): (fn(A, &Config) -> P, PrepareOn),
    op: fn(&mut WriteTx<'_>, &mut OpCtx, P) -> Result<O, ToolError>,
    render: fn(O) -> Value,
) -> ToolDef {
    define::<A>(
        name,
        category,
        description,
        ToolKind::Writes,
        Box::new(move |hub, env, raw| {
            Box::pin(async move {
                let (args, call) = parse_args::<A>(&hub, name, env, raw, activity)?;
                let config = hub.config.clone();
                let prepared = match on {
                    PrepareOn::Request => prepare(args, &config),
                    PrepareOn::BlockingPool => {
                        match tokio::task::spawn_blocking(move || prepare(args, &config)).await {
                            Ok(prepared) => prepared,
                            Err(error) => {
                                let error =
                                    StoreError::Internal(format!("prepare failed: {error}"));
                                return Ok(internal_failure(name, &error));
                            }
                        }
                    }
                };
                let op = move |tx: &mut WriteTx<'_>, ctx: &mut OpCtx| op(tx, ctx, prepared);
                Ok(run_write(hub, call, op, render).await)
            })
        }),
    )
}

/// A tool that only reads: the query runs on the reader pool; bookkeeping is queued.
pub fn reading<A: ToolArgs>(
    name: &'static str,
    category: Category,
    description: &'static str,
    op: fn(&Db, &mut OpCtx, A) -> ToolResult,
) -> ToolDef {
    define::<A>(
        name,
        category,
        description,
        ToolKind::Reads,
        Box::new(move |hub, env, raw| {
            Box::pin(async move {
                let (args, call) = parse_args::<A>(&hub, name, env, raw, Activity::Quiet)?;
                Ok(run_read(hub, call, move |db, ctx| op(db, ctx, args)).await)
            })
        }),
    )
}

/// An op that may wait: it gets the hub, its context and a cancellation token (the client
/// cancelled or the hub is shutting down) and hands the context back with its result.
pub type WaitOp<A> = fn(Arc<Hub>, OpCtx, A, tokio_util::sync::CancellationToken) -> WaitFuture;
pub type WaitFuture = Pin<Box<dyn Future<Output = (ToolResult, OpCtx)> + Send>>;

/// A read tool that may block (long-poll): admission runs on the reader pool, the op then
/// awaits without holding any connection, and the bookkeeping is queued afterwards.
pub fn waiting<A: ToolArgs>(
    name: &'static str,
    category: Category,
    description: &'static str,
    op: WaitOp<A>,
) -> ToolDef {
    define::<A>(
        name,
        category,
        description,
        ToolKind::Reads,
        Box::new(move |hub, env, raw| {
            Box::pin(async move {
                let (args, call) = parse_args::<A>(&hub, name, env, raw, Activity::Quiet)?;
                Ok(run_wait(hub, call, args, op).await)
            })
        }),
    )
}

async fn run_wait<A: ToolArgs>(hub: Arc<Hub>, call: Call, args: A, op: WaitOp<A>) -> Value {
    let tool = call.tool;
    let now_ms = hub.store.now_ms();
    let hub_for_admission = hub.clone();
    let cancel = call.cancel.clone();
    let admission = hub
        .store
        .read(move |db| {
            let mut book = CallRecord::default();
            let admission = admit(&hub_for_admission, db, &call, now_ms, &mut book)?;
            Ok((admission, book))
        })
        .await;
    let (admission, book) = match admission {
        Ok(pair) => pair,
        Err(error) => return internal_failure(tool, &error),
    };
    let ctx = match admission {
        Admission::Admitted(ctx) => ctx,
        Admission::Refused(refusal) => {
            hub.record(book, Vec::new(), &refusal);
            return refusal;
        }
    };
    // Shutdown ends a wait like a client cancellation does.
    let stop = cancel.child_token();
    let shutdown = hub.shutdown.clone();
    let linked = stop.clone();
    let link = tokio::spawn(async move {
        shutdown.cancelled().await;
        linked.cancel();
    });
    let (result, mut ctx) = op(hub.clone(), ctx, args, stop).await;
    link.abort();
    let value = match result {
        Ok(value) => value,
        Err(error) => ctx.refused(&error),
    };
    hub.record(book, std::mem::take(&mut ctx.activity), &value);
    merge_warnings(value, ctx.warnings, hub.config.auth_mode)
}

/// Outcome of the guard before the op runs.
enum Admission {
    Admitted(OpCtx),
    Refused(Value),
}

/// Steps 2-3 of the pipeline: auth and rate limit. Fills in the auth event.
fn admit(
    hub: &Hub,
    db: &Db,
    call: &Call,
    now_ms: i64,
    book: &mut CallRecord,
) -> StoreResult<Admission> {
    let mode = hub.config.auth_mode;
    // register_agent authenticates inside its op (re-registration needs the id's token).
    let caller = match (&call.caller, call.caller_field) {
        (_, None) => Caller::anonymous(AuthOutcome::Skipped),
        (Some(agent_id), Some(_)) => {
            auth::authenticate(db, &hub.config, agent_id, call.token.as_deref())?
        }
        // No caller: anonymous. Only enforce mode refuses it (D2).
        (None, Some(_)) if mode == AuthMode::Enforce => Caller::anonymous(AuthOutcome::Missing),
        (None, Some(_)) => Caller::anonymous(AuthOutcome::Skipped),
    };
    let outcome = caller.authentication();
    let namespace = call_namespace(hub, db, call)?;
    book.call = Some(CallStat {
        tool: call.tool,
        agent_id: call.caller.clone(),
        namespace: namespace.clone(),
        auth: outcome,
        outcome: CallOutcome::Ok,
        at_ms: now_ms,
    });
    if outcome == AuthOutcome::Valid {
        book.token_used_by = call.caller.clone();
    }
    let mut ctx = OpCtx {
        config: hub.config.clone(),
        caller,
        token: call.token.clone(),
        now_ms,
        heads: hub.store.heads(),
        tasks: hub.tasks.clone(),
        quiet: call.quiet,
        activity: Vec::new(),
        warnings: Vec::new(),
        skip_idempotency_record: false,
    };
    match auth::decide(mode, outcome, call.tool, call.caller_field) {
        AuthDecision::Refuse { code, message } => {
            let refusal = ToolError::new(code, message).with("auth_mode", mode.as_str());
            return Ok(Admission::Refused(refusal.to_json()));
        }
        AuthDecision::Allow { warning } => ctx.warnings.extend(warning),
    }
    if let Some(refusal) = check_subject(mode, call, &mut ctx) {
        book.quiet_activity = std::mem::take(&mut ctx.activity);
        return Ok(Admission::Refused(refusal.to_json()));
    }
    let bucket_key = match (&call.caller, outcome) {
        (Some(caller), AuthOutcome::Valid) => format!("agent:{caller}"),
        // In observe mode an unverified caller id is still the best key there is; in warn
        // and enforce an unverified id must not drain the real agent's bucket (D7).
        (Some(caller), _) if mode == AuthMode::Observe => format!("agent:{caller}"),
        _ => format!("conn:{}", call.connection_key),
    };
    if !hub.rate_limiter.allow(&bucket_key) {
        let refusal = ToolError::new(
            "RATE_LIMIT_EXCEEDED",
            format!(
                "{}: rate limit exceeded ({} calls/s, burst {}); retry after retry_after_ms",
                call.tool, hub.config.rate_limit_rps, hub.config.rate_limit_burst
            ),
        )
        .with("retry_after_ms", 1000);
        set_outcome(book, CallOutcome::RateLimited);
        return Ok(Admission::Refused(refusal.to_json()));
    }
    if let Err(exceeded) = hub.quotas.check(&namespace, call.quota_cost, now_ms) {
        let mode = hub.quotas.mode();
        let problem = format!(
            "{}: namespace {namespace:?} is over its quota ({}); retry after retry_after_ms",
            call.tool, exceeded.reason
        );
        if mode == QuotaMode::Enforce {
            let refusal = ToolError::new("NAMESPACE_QUOTA_EXCEEDED", problem)
                .with("namespace", namespace)
                .with("quota_mode", mode.as_str())
                .with("retry_after_ms", exceeded.retry_after_ms);
            set_outcome(book, CallOutcome::QuotaExceeded);
            return Ok(Admission::Refused(refusal.to_json()));
        }
        ctx.warn(format!("[namespace_quota_warn] {problem}"));
    }
    book.heartbeat = call.caller.clone();
    Ok(Admission::Admitted(ctx))
}

fn set_outcome(book: &mut CallRecord, outcome: CallOutcome) {
    if let Some(call) = &mut book.call {
        call.outcome = outcome;
    }
}

/// The namespace a call is charged to and counted under (spec §5.2): its `namespace` or
/// `task_namespace` argument, else the stored namespace of the task a task-scoped tool
/// names, else `MCP_HUB_NAMESPACE_QUOTA_FALLBACK`.
fn call_namespace(hub: &Hub, db: &Db, call: &Call) -> StoreResult<String> {
    if let Some(namespace) = &call.namespace {
        return Ok(namespace.clone());
    }
    if let Some(task_id) = call.task_ref
        && let Some(namespace) = store::tasks::namespace_of(db, task_id)?
    {
        return Ok(namespace);
    }
    Ok(hub.config.namespace_quota_fallback.clone())
}

/// Private data is the caller's own: a call naming another agent's inbox or read state is
/// refused under enforce, warned about under warn and recorded under observe.
fn check_subject(mode: AuthMode, call: &Call, ctx: &mut OpCtx) -> Option<ToolError> {
    let (field, subject) = call.subject.as_ref()?;
    let caller = ctx.caller.agent_id()?;
    if subject == caller {
        return None;
    }
    let problem = format!(
        "{tool}: `{field}` {subject:?} names another agent's private data (inbox, read \
         state); a call reads only its caller's own ({caller:?})",
        tool = call.tool
    );
    ctx.log_quiet(
        "cross_agent_read",
        format!(
            "tool={} {field}={subject} mode={}",
            call.tool,
            mode.as_str()
        ),
    );
    match mode {
        AuthMode::Enforce => Some(
            ToolError::new(
                "FOREIGN_PRIVATE_DATA",
                format!("{problem}. Omit `{field}`."),
            )
            .with("auth_mode", mode.as_str())
            .with("field", *field),
        ),
        AuthMode::Warn => {
            ctx.warn(format!(
                "[auth_warn] {problem}; this call will fail once MCP_HUB_AUTH_MODE=enforce"
            ));
            None
        }
        AuthMode::Observe => None,
    }
}

/// Step 7: guard warnings go into `warnings`, and `auth_mode` is added.
fn merge_warnings(mut value: Value, warnings: Vec<String>, mode: AuthMode) -> Value {
    if warnings.is_empty() {
        return value;
    }
    if let Value::Object(body) = &mut value {
        let mut merged: Vec<Value> = match body.get("warnings") {
            Some(Value::Array(existing)) => existing.clone(),
            _ => match body.get("warning") {
                Some(Value::String(single)) => vec![Value::from(single.clone())],
                _ => Vec::new(),
            },
        };
        merged.extend(warnings.into_iter().map(Value::from));
        body.insert("warnings".into(), Value::Array(merged));
        body.insert("auth_mode".into(), Value::from(mode.as_str()));
    }
    value
}

fn internal_failure(tool: &str, error: &StoreError) -> Value {
    tracing::error!(tool, %error, "tool call failed");
    ToolError::new(
        "INTERNAL_ERROR",
        format!("{tool}: the hub could not complete this call; it changed nothing"),
    )
    .to_json()
}

/// Runs `op` on the writer and renders its outcome with `render` after the commit, off the
/// writer thread — except when the call carries an idempotency key: the stored answer
/// must commit with the op, so that one is rendered on the writer.
async fn run_write<F, O>(hub: Arc<Hub>, call: Call, op: F, render: fn(O) -> Value) -> Value
where
    F: FnOnce(&mut WriteTx<'_>, &mut OpCtx) -> Result<O, ToolError> + Send + 'static,
    O: Send + 'static,
{
    let tool = call.tool;
    let hub_for_job = hub.clone();
    let result = hub
        .store
        .write(move |tx| write_pipeline(&hub_for_job, tx, call, op, render))
        .await;
    match result {
        Ok(written) => {
            // Off the writer: the bookkeeping goes to the coalescer, warnings into the body.
            let value = match written.answer {
                Answer::Json(value) => value,
                Answer::Outcome(outcome) => render(outcome),
            };
            let mut book = written.book;
            book.settle(&value);
            hub.bookkeeper.record(book);
            merge_warnings(value, written.warnings, hub.config.auth_mode)
        }
        Err(error) => internal_failure(tool, &error),
    }
}

/// An op's answer as it leaves the writer: already JSON, or an outcome still to render.
enum Answer<O> {
    Json(Value),
    Outcome(O),
}

/// What the writer hands back: the op's answer and what the guard leaves for later.
struct Written<O> {
    answer: Answer<O>,
    warnings: Vec<String>,
    book: CallRecord,
}

/// Runs on the writer thread: only what must commit with the op happens here — the auth
/// check, idempotency, the op and its stream activity rows.
fn write_pipeline<F, O>(
    hub: &Hub,
    tx: &mut WriteTx<'_>,
    call: Call,
    op: F,
    render: fn(O) -> Value,
) -> StoreResult<Written<O>>
where
    F: FnOnce(&mut WriteTx<'_>, &mut OpCtx) -> Result<O, ToolError>,
{
    let mut book = CallRecord::default();
    let now_ms = tx.now_ms();
    let mut ctx = match admit(hub, tx.db(), &call, now_ms, &mut book)? {
        Admission::Admitted(ctx) => ctx,
        Admission::Refused(value) => {
            return Ok(Written {
                answer: Answer::Json(value),
                warnings: Vec::new(),
                book,
            });
        }
    };
    if let Some((scope, key)) = &call.idempotency {
        let not_before = hub.config.idempotency_ttl_ms.map(|ttl| now_ms - ttl);
        if let Some(stored) =
            store::idempotency::lookup(tx.db(), scope, call.tool, key, not_before)?
        {
            let replay = if stored.fingerprint != call.fingerprint {
                Some(
                    ToolError::new(
                        "IDEMPOTENCY_KEY_REUSED",
                        format!(
                            "{}: idempotency_key {key:?} was already used with different \
                             arguments; use a new key for a new request",
                            call.tool
                        ),
                    )
                    .to_json(),
                )
            } else {
                match serde_json::from_str::<Value>(&stored.response_json) {
                    Ok(value) => {
                        ctx.log("idempotency_hit", format!("tool={} key={key}", call.tool));
                        Some(value)
                    }
                    Err(_) => {
                        ctx.log(
                            "idempotency_corrupt",
                            format!("tool={} key={key}", call.tool),
                        );
                        store::idempotency::delete(tx, scope, call.tool, key)?;
                        None
                    }
                }
            };
            if let Some(value) = replay {
                settle_activity(tx, &mut ctx, &mut book)?;
                return Ok(Written {
                    answer: Answer::Json(value),
                    warnings: ctx.warnings,
                    book,
                });
            }
        }
    }
    let result = tx.nested(|tx| op(tx, &mut ctx).map_err(OpFailure::Refused));
    let answer = match result {
        Ok(outcome) => match call
            .idempotency
            .as_ref()
            .filter(|_| !ctx.skip_idempotency_record)
        {
            // The stored answer must commit with the op, so this one rendering stays here.
            Some((scope, key)) => {
                let value = render(outcome);
                let stored = store::idempotency::StoredResponse {
                    fingerprint: call.fingerprint.clone(),
                    response_json: value.to_string(),
                };
                store::idempotency::save(tx, scope, call.tool, key, &stored)?;
                Answer::Json(value)
            }
            None => Answer::Outcome(outcome),
        },
        Err(OpFailure::Store(error)) => return Err(error),
        Err(OpFailure::Refused(error)) => Answer::Json(ctx.refused(&error)),
    };
    settle_activity(tx, &mut ctx, &mut book)?;
    Ok(Written {
        answer,
        warnings: ctx.warnings,
        book,
    })
}

/// Rows that advance the activity stream commit with the op (they wake waiters); quiet
/// rows join the coalesced bookkeeping.
fn settle_activity(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    book: &mut CallRecord,
) -> StoreResult<()> {
    for row in std::mem::take(&mut ctx.activity) {
        if row.quiet {
            book.quiet_activity.push(row);
        } else {
            store::activity::insert(tx, &row)?;
            book.stream_activity.push(row);
        }
    }
    Ok(())
}

/// Separates "the op refused" (bookkeeping stays) from "SQLite failed" (all rolls back).
enum OpFailure {
    Refused(ToolError),
    Store(StoreError),
}

impl From<StoreError> for OpFailure {
    fn from(error: StoreError) -> Self {
        OpFailure::Store(error)
    }
}

async fn run_read<F>(hub: Arc<Hub>, call: Call, op: F) -> Value
where
    F: FnOnce(&Db, &mut OpCtx) -> ToolResult + Send + 'static,
{
    run_read_with(hub, call, move |db, ctx| {
        op(db, ctx).map(|value| (value, ()))
    })
    .await
    .0
}

/// Runs `op` on the reader pool; besides the answer it may hand back something the call
/// still has to do (e.g. the read marks to write).
async fn run_read_with<F, X>(hub: Arc<Hub>, call: Call, op: F) -> (Value, Option<X>)
where
    F: FnOnce(&Db, &mut OpCtx) -> Result<(Value, X), ToolError> + Send + 'static,
    X: Send + 'static,
{
    let tool = call.tool;
    let hub_for_read = hub.clone();
    let now_ms = hub.store.now_ms();
    // The reader thread only queries; warnings and bookkeeping are settled back here.
    let result = hub
        .store
        .read(move |db| {
            let mut book = CallRecord::default();
            let mut ctx = match admit(&hub_for_read, db, &call, now_ms, &mut book)? {
                Admission::Admitted(ctx) => ctx,
                Admission::Refused(refusal) => {
                    return Ok((refusal, None, Vec::new(), book, Vec::new()));
                }
            };
            let (value, extra) = match op(db, &mut ctx) {
                Ok((value, extra)) => (value, Some(extra)),
                Err(error) => (ctx.refused(&error), None),
            };
            let activity = std::mem::take(&mut ctx.activity);
            Ok((value, extra, ctx.warnings, book, activity))
        })
        .await;
    match result {
        Ok((value, extra, warnings, book, activity)) => {
            hub.record(book, activity, &value);
            (merge_warnings(value, warnings, hub.config.auth_mode), extra)
        }
        Err(error) => (internal_failure(tool, &error), None),
    }
}

/// What a marking read leaves to write: e.g. the read marks of the rows it returned.
pub type FollowUp = Box<dyn FnOnce(&mut WriteTx<'_>) -> StoreResult<()> + Send>;

/// The follow-up that counts one access of each blob a read resolved, if any.
pub fn count_blob_reads(hashes: Vec<String>) -> Option<FollowUp> {
    (!hashes.is_empty())
        .then(|| Box::new(move |tx: &mut WriteTx<'_>| store::blobs::touch(tx, &hashes)) as FollowUp)
}
pub type MarkingOp<A> = fn(&Db, &mut OpCtx, A) -> Result<(Value, Option<FollowUp>), ToolError>;

/// Whether a marking read's follow-up changes what the caller's next read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpOrder {
    /// Read marks: the caller's reads take turns, each after the previous one's marks
    /// committed, so an unread-only read never returns a row twice.
    PerCaller,
    /// Access counters: nothing a later read returns depends on them.
    Unordered,
}

/// A read that leaves state behind (read marks, blob access counts): the query runs on the
/// reader pool and the answer goes out at once; the follow-up write is queued for the next
/// group commit, ordered as `order` says.
pub fn reading_marked<A: ToolArgs>(
    name: &'static str,
    category: Category,
    description: &'static str,
    order: FollowUpOrder,
    op: MarkingOp<A>,
) -> ToolDef {
    // Read marks change what the caller's next unread-only read returns; access counters
    // change nothing a client sees.
    let kind = match order {
        FollowUpOrder::PerCaller => ToolKind::MarksRead,
        FollowUpOrder::Unordered => ToolKind::Reads,
    };
    define::<A>(
        name,
        category,
        description,
        kind,
        Box::new(move |hub, env, raw| {
            Box::pin(async move {
                let (args, call) = parse_args::<A>(&hub, name, env, raw, Activity::Quiet)?;
                let turn = match order {
                    FollowUpOrder::PerCaller => Some(
                        hub.inbox_gates
                            .gate(call.caller.as_deref())
                            .lock_owned()
                            .await,
                    ),
                    FollowUpOrder::Unordered => None,
                };
                let store = hub.store.clone();
                let (value, follow_up) =
                    run_read_with(hub, call, move |db, ctx| op(db, ctx, args)).await;
                if let Some(follow_up) = follow_up.flatten() {
                    // Queued now, so it is in the writer's queue before any later request.
                    let committed = store.write(follow_up);
                    tokio::spawn(async move {
                        if let Err(error) = committed.await {
                            tracing::warn!(%error, "a read's follow-up write failed");
                        }
                        drop(turn);
                    });
                }
                Ok(value)
            })
        }),
    )
}
