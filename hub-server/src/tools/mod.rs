//! MCP tools: the registry of tools, the one call pipeline every tool goes through, and the
//! rmcp `ServerHandler` that serves them. Contains no SQL: ops call `store::<domain>`.
//!
//! Pipeline of one call (spec tools-core §1.4, with defects D1/D2/D7 corrected):
//! 1. arguments deserialize into the tool's args struct — a schema failure is a JSON-RPC
//!    `-32602` error with no side effects;
//! 2. auth: the token (`auth_token`, else `Authorization: Bearer`) is checked against the
//!    tool's declared caller field only; one auth event is recorded;
//! 3. rate limit, keyed by the authenticated caller (else by connection);
//! 4. heartbeat of the caller; idempotency replay for mutating tools;
//! 5. the op, inside a nested savepoint: a refusal rolls back the op but keeps the
//!    bookkeeping (auth event, heartbeat, the refusal's activity row);
//! 6. activity rows, idempotency record (successes only), guard warnings merged.
//!
//! Mutating tools run all of that in one writer transaction. Read tools run on the reader
//! pool and hand their bookkeeping to the writer without waiting for it.

pub mod agents;
pub mod blobs;
pub mod consensus;
pub mod context;
pub mod live;
pub mod messages;
mod onboarding;
pub mod tasks;
pub use onboarding::PROTOCOL_VERSION;
pub mod protocol;
mod text;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use crate::store::Db;
use rmcp::ErrorData;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::{self, AuthDecision, AuthOutcome, Caller};
use crate::config::{AuthMode, Config};
use crate::rate_limit::RateLimiter;
use crate::store::activity::ActivityRow;
use crate::store::{self, Store, StoreError, StoreResult, WriteTx};

/// The shared state of a running hub, handed to every tool call.
pub struct Hub {
    pub config: Arc<Config>,
    pub store: Store,
    pub rate_limiter: RateLimiter,
    /// Consecutive wait timeouts per watcher (adaptive retry hints).
    pub wait_streaks: crate::live::Streaks,
    /// Long-polls in flight (shown by /health).
    pub waiters: std::sync::atomic::AtomicUsize,
    /// Cancelled at shutdown: ends long-polls and streams.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Task-board state kept in memory (poll miss streaks, sweep throttle).
    pub tasks: Arc<crate::service::tasks::TaskState>,
}

impl Hub {
    pub fn new(config: Arc<Config>, store: Store) -> Arc<Hub> {
        let rate_limiter = RateLimiter::new(config.rate_limit_rps, config.rate_limit_burst);
        Arc::new(Hub {
            config,
            store,
            rate_limiter,
            wait_streaks: crate::live::Streaks::default(),
            waiters: std::sync::atomic::AtomicUsize::new(0),
            shutdown: tokio_util::sync::CancellationToken::new(),
            tasks: Arc::new(crate::service::tasks::TaskState::default()),
        })
    }
}

pub use crate::service::{Ctx as OpCtx, Refusal as ToolError};

pub type ToolResult = Result<Value, ToolError>;

/// Tool arguments: deserialized from the call, described by their JSON schema, and telling
/// the pipeline who the caller is.
pub trait ToolArgs: DeserializeOwned + JsonSchema + Send + 'static {
    /// The argument that names the calling agent; the token is checked against it.
    const CALLER_FIELD: Option<&'static str>;
    fn caller(&self) -> Option<&str>;
    fn auth_token(&self) -> Option<&str>;
    fn idempotency_key(&self) -> Option<&str> {
        None
    }
    /// The argument naming whose private data (inbox, read state) the call reads, when a
    /// tool lets it differ from the caller; the pipeline refuses another agent's under enforce.
    const SUBJECT_FIELD: Option<&'static str> = None;
    fn subject(&self) -> Option<&str> {
        None
    }
}

/// Implements [`ToolArgs`] for an args struct with an `auth_token` field.
/// `caller = field` names the caller field; add `idempotent` when the struct has
/// `idempotency_key`.
#[macro_export]
macro_rules! tool_args {
    ($args:ty, caller = $field:ident $(, $idempotent:ident)?) => {
        impl $crate::tools::ToolArgs for $args {
            const CALLER_FIELD: Option<&'static str> = Some(stringify!($field));
            fn caller(&self) -> Option<&str> {
                $crate::tools::non_blank(Some(self.$field.as_str()))
            }
            fn auth_token(&self) -> Option<&str> {
                $crate::tools::non_blank(self.auth_token.as_deref())
            }
            $( tool_args!(@$idempotent); )?
        }
    };
    ($args:ty, optional_caller = $field:ident $(, $idempotent:ident)?) => {
        impl $crate::tools::ToolArgs for $args {
            const CALLER_FIELD: Option<&'static str> = Some(stringify!($field));
            fn caller(&self) -> Option<&str> {
                $crate::tools::non_blank(self.$field.as_deref())
            }
            fn auth_token(&self) -> Option<&str> {
                $crate::tools::non_blank(self.auth_token.as_deref())
            }
            $( tool_args!(@$idempotent); )?
        }
    };
    // The caller is `field`, else `fallback`; `fallback` also names whose private data is
    // read (a watcher's inbox), so it must be the caller's own.
    ($args:ty, caller = $field:ident or $fallback:ident) => {
        impl $crate::tools::ToolArgs for $args {
            const CALLER_FIELD: Option<&'static str> = Some(stringify!($field));
            fn caller(&self) -> Option<&str> {
                $crate::tools::non_blank(self.$field.as_deref())
                    .or_else(|| $crate::tools::non_blank(self.$fallback.as_deref()))
            }
            const SUBJECT_FIELD: Option<&'static str> = Some(stringify!($fallback));
            fn subject(&self) -> Option<&str> {
                $crate::tools::non_blank(self.$fallback.as_deref())
            }
            fn auth_token(&self) -> Option<&str> {
                $crate::tools::non_blank(self.auth_token.as_deref())
            }
        }
    };
    (@idempotent) => {
        fn idempotency_key(&self) -> Option<&str> {
            $crate::tools::non_blank(self.idempotency_key.as_deref())
        }
    };
}

/// Trims and drops empty strings.
pub fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// An integer argument floored and clamped; absent or non-finite → `default`.
pub fn int_arg(value: Option<f64>, default: i64, min: i64, max: i64) -> i64 {
    value
        .filter(|v| v.is_finite())
        .map(|v| (v.floor() as i64).clamp(min, max))
        .unwrap_or(default)
}

/// Onboarding catalog categories, in catalog order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Agents,
    Messaging,
    Tasks,
    Context,
    Consensus,
    CompactProtocol,
    Artifacts,
    Observability,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::Agents,
        Category::Messaging,
        Category::Tasks,
        Category::Context,
        Category::Consensus,
        Category::CompactProtocol,
        Category::Artifacts,
        Category::Observability,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Agents => "agents",
            Category::Messaging => "messaging",
            Category::Tasks => "tasks",
            Category::Context => "context",
            Category::Consensus => "consensus",
            Category::CompactProtocol => "compact_protocol",
            Category::Artifacts => "artifacts",
            Category::Observability => "observability",
        }
    }
}

/// Connection facts of one call, taken from the HTTP request.
#[derive(Debug, Clone, Default)]
pub struct CallEnv {
    /// `Authorization: Bearer <token>`, if sent.
    pub bearer: Option<String>,
    /// Identifies the connection for anonymous rate limiting (session id, else peer address).
    pub connection_key: String,
    /// Fires when the client cancels the request (or goes away): ends waits early.
    pub cancel: tokio_util::sync::CancellationToken,
}

type CallFuture = Pin<Box<dyn Future<Output = Result<Value, ErrorData>> + Send>>;
type CallFn = Box<dyn Fn(Arc<Hub>, CallEnv, JsonObject) -> CallFuture + Send + Sync>;

/// One tool: its wire description and how to run it.
pub struct ToolDef {
    pub name: &'static str,
    pub category: Category,
    pub description: &'static str,
    pub caller_field: Option<&'static str>,
    /// The argument naming whose private data is read, where it may differ from the caller.
    pub subject_field: Option<&'static str>,
    schema: Arc<JsonObject>,
    call: CallFn,
}

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
    fingerprint: String,
    quiet: bool,
    cancel: tokio_util::sync::CancellationToken,
}

fn parse_args<A: ToolArgs>(
    tool: &'static str,
    env: CallEnv,
    raw: JsonObject,
    activity: Activity,
) -> Result<(A, Call), ErrorData> {
    let fingerprint = fingerprint(&raw);
    let cancel = env.cancel.clone();
    let args: A = serde_json::from_value(Value::Object(raw))
        .map_err(|e| ErrorData::invalid_params(format!("-32602 {tool}: {e}"), None))?;
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

/// A tool that changes state: everything runs in one writer transaction.
pub fn mutating<A: ToolArgs>(
    name: &'static str,
    category: Category,
    description: &'static str,
    activity: Activity,
    op: fn(&mut WriteTx<'_>, &mut OpCtx, A) -> ToolResult,
) -> ToolDef {
    ToolDef {
        name,
        category,
        description,
        caller_field: A::CALLER_FIELD,
        subject_field: A::SUBJECT_FIELD,
        schema: schema_for_type::<A>(),
        call: Box::new(move |hub, env, raw| {
            Box::pin(async move {
                let (args, call) = parse_args::<A>(name, env, raw, activity)?;
                Ok(run_write(hub, call, move |tx, ctx| op(tx, ctx, args)).await)
            })
        }),
    }
}

/// A tool that only reads: the query runs on the reader pool; bookkeeping is queued.
pub fn reading<A: ToolArgs>(
    name: &'static str,
    category: Category,
    description: &'static str,
    op: fn(&Db, &mut OpCtx, A) -> ToolResult,
) -> ToolDef {
    ToolDef {
        name,
        category,
        description,
        caller_field: A::CALLER_FIELD,
        subject_field: A::SUBJECT_FIELD,
        schema: schema_for_type::<A>(),
        call: Box::new(move |hub, env, raw| {
            Box::pin(async move {
                let (args, call) = parse_args::<A>(name, env, raw, Activity::Quiet)?;
                Ok(run_read(hub, call, move |db, ctx| op(db, ctx, args)).await)
            })
        }),
    }
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
    ToolDef {
        name,
        category,
        description,
        caller_field: A::CALLER_FIELD,
        subject_field: A::SUBJECT_FIELD,
        schema: schema_for_type::<A>(),
        call: Box::new(move |hub, env, raw| {
            Box::pin(async move {
                let (args, call) = parse_args::<A>(name, env, raw, Activity::Quiet)?;
                Ok(run_wait(hub, call, args, op).await)
            })
        }),
    }
}

async fn run_wait<A: ToolArgs>(hub: Arc<Hub>, call: Call, args: A, op: WaitOp<A>) -> Value {
    let tool = call.tool;
    let now_ms = hub.store.now_ms();
    let hub_for_admission = hub.clone();
    let cancel = call.cancel.clone();
    let admission = hub
        .store
        .read(move |db| {
            let mut book = Bookkeeping::default();
            let admission = admit(&hub_for_admission, db, &call, now_ms, &mut book)?;
            Ok((admission, book))
        })
        .await;
    let (admission, mut book) = match admission {
        Ok(pair) => pair,
        Err(error) => return internal_failure(tool, &error),
    };
    let ctx = match admission {
        Admission::Admitted(ctx) => ctx,
        Admission::Refused(refusal) => {
            hub.store.write_detached(move |tx| book.apply(tx));
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
    book.activity = std::mem::take(&mut ctx.activity);
    hub.store.write_detached(move |tx| book.apply(tx));
    merge_warnings(value, ctx.warnings, hub.config.auth_mode)
}

/// The guard's bookkeeping for one call, written with (mutating) or after (reading) it.
#[derive(Default)]
struct Bookkeeping {
    auth_event: Option<(Option<String>, &'static str, &'static str)>,
    touch_token: Option<String>,
    heartbeat: Option<String>,
    activity: Vec<ActivityRow>,
}

impl Bookkeeping {
    fn apply(self, tx: &mut WriteTx<'_>) -> StoreResult<()> {
        if let Some((agent, tool, status)) = &self.auth_event {
            store::auth::record_event(tx, agent.as_deref(), tool, status)?;
        }
        if let Some(agent) = &self.touch_token {
            store::auth::touch_token(tx, agent)?;
        }
        if let Some(agent) = &self.heartbeat {
            store::agents::heartbeat(tx, agent)?;
        }
        for row in &self.activity {
            store::activity::insert(tx, row)?;
        }
        Ok(())
    }
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
    book: &mut Bookkeeping,
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
    book.auth_event = Some((call.caller.clone(), call.tool, outcome.as_str()));
    if outcome == AuthOutcome::Valid {
        book.touch_token = call.caller.clone();
    }
    let mut ctx = OpCtx {
        config: hub.config.clone(),
        caller,
        token: call.token.clone(),
        now_ms,
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
        book.activity = std::mem::take(&mut ctx.activity);
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
        return Ok(Admission::Refused(refusal.to_json()));
    }
    book.heartbeat = call.caller.clone();
    Ok(Admission::Admitted(ctx))
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

async fn run_write<F>(hub: Arc<Hub>, call: Call, op: F) -> Value
where
    F: FnOnce(&mut WriteTx<'_>, &mut OpCtx) -> ToolResult + Send + 'static,
{
    let tool = call.tool;
    let hub_for_job = hub.clone();
    let result = hub
        .store
        .write(move |tx| write_pipeline(&hub_for_job, tx, call, op))
        .await;
    match result {
        Ok(value) => value,
        Err(error) => internal_failure(tool, &error),
    }
}

fn write_pipeline<F>(hub: &Hub, tx: &mut WriteTx<'_>, call: Call, op: F) -> StoreResult<Value>
where
    F: FnOnce(&mut WriteTx<'_>, &mut OpCtx) -> ToolResult,
{
    let mut book = Bookkeeping::default();
    let now_ms = tx.now_ms();
    let mut ctx = match admit(hub, tx.db(), &call, now_ms, &mut book)? {
        Admission::Admitted(ctx) => ctx,
        Admission::Refused(refusal) => {
            book.apply(tx)?;
            return Ok(refusal);
        }
    };
    // The heartbeat comes first so that even a refused op marks the caller alive.
    if let Some(agent) = book.heartbeat.take() {
        store::agents::heartbeat(tx, &agent)?;
    }
    let mode = hub.config.auth_mode;
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
                book.activity = std::mem::take(&mut ctx.activity);
                book.apply(tx)?;
                return Ok(merge_warnings(value, ctx.warnings, mode));
            }
        }
    }
    let result = tx.nested(|tx| op(tx, &mut ctx).map_err(OpFailure::Refused));
    let value = match result {
        Ok(value) => {
            if let Some((scope, key)) = call
                .idempotency
                .as_ref()
                .filter(|_| !ctx.skip_idempotency_record)
            {
                let stored = store::idempotency::StoredResponse {
                    fingerprint: call.fingerprint.clone(),
                    response_json: value.to_string(),
                };
                store::idempotency::save(tx, scope, call.tool, key, &stored)?;
            }
            value
        }
        Err(OpFailure::Store(error)) => return Err(error),
        Err(OpFailure::Refused(error)) => ctx.refused(&error),
    };
    book.activity = std::mem::take(&mut ctx.activity);
    book.apply(tx)?;
    Ok(merge_warnings(value, ctx.warnings, mode))
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
    let tool = call.tool;
    let hub_for_read = hub.clone();
    let now_ms = hub.store.now_ms();
    let result = hub
        .store
        .read(move |db| {
            let mut book = Bookkeeping::default();
            let mut ctx = match admit(&hub_for_read, db, &call, now_ms, &mut book)? {
                Admission::Admitted(ctx) => ctx,
                Admission::Refused(refusal) => return Ok((refusal, book)),
            };
            let value = match op(db, &mut ctx) {
                Ok(value) => value,
                Err(error) => ctx.refused(&error),
            };
            book.activity = std::mem::take(&mut ctx.activity);
            let mode = hub_for_read.config.auth_mode;
            Ok((merge_warnings(value, ctx.warnings, mode), book))
        })
        .await;
    match result {
        Ok((value, book)) => {
            hub.store.write_detached(move |tx| book.apply(tx));
            value
        }
        Err(error) => internal_failure(tool, &error),
    }
}

/// All tools this build serves, in catalog order.
pub struct Registry {
    pub tools: Vec<ToolDef>,
    by_name: HashMap<&'static str, usize>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<&ToolDef> {
        self.by_name.get(name).map(|&index| &self.tools[index])
    }
}

pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut tools = Vec::new();
        tools.extend(agents::tools());
        tools.extend(messages::tools());
        tools.extend(tasks::tools());
        tools.extend(context::tools());
        tools.extend(consensus::tools());
        tools.extend(protocol::tools());
        tools.extend(blobs::tools());
        tools.extend(live::tools());
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(index, tool)| (tool.name, index))
            .collect();
        Registry { tools, by_name }
    })
}

fn wire_tool(def: &ToolDef) -> Tool {
    Tool::new(def.name, def.description, def.schema.clone())
}

/// Renders a tool's JSON object as the MCP result: one compact text block; refusals also
/// set `isError` so clients and models see them as errors.
fn render(value: &Value) -> CallToolResult {
    let text = value.to_string();
    let refused = value.get("success") == Some(&Value::Bool(false));
    if refused {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    }
}

/// The MCP server behind every session.
#[derive(Clone)]
pub struct HubServer {
    hub: Arc<Hub>,
}

impl HubServer {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

fn call_env(context: &RequestContext<RoleServer>) -> CallEnv {
    let Some(parts) = context.extensions.get::<http::request::Parts>() else {
        return CallEnv {
            bearer: None,
            connection_key: "local".into(),
            cancel: context.ct.clone(),
        };
    };
    let bearer = auth::bearer_token(
        parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok()),
    );
    let connection_key = parts
        .headers
        .get("mcp-session-id")
        .and_then(|value| value.to_str().ok())
        .map(|session| format!("session:{session}"))
        .or_else(|| {
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| format!("peer:{}", info.0.ip()))
        })
        .unwrap_or_else(|| "anonymous".into());
    CallEnv {
        bearer,
        connection_key,
        cancel: context.ct.clone(),
    }
}

impl rmcp::ServerHandler for HubServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcp-agent-hub", "1.0.0"))
            .with_instructions(
                "Agent Hub: call register_agent first, keep auth.token and pass it as auth_token \
                 (or Authorization: Bearer) on every later call; then get_onboarding \
                 {mode:\"compact\"} once.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            registry().tools.iter().map(wire_tool).collect(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        registry().get(name).map(wire_tool)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(def) = registry().get(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool: {}", request.name),
                None,
            ));
        };
        let env = call_env(&context);
        let arguments = request.arguments.unwrap_or_default();
        let value = (def.call)(self.hub.clone(), env, arguments).await?;
        Ok(render(&value).into())
    }
}

/// `{success:false, error_code:"FULL_MODE_FORBIDDEN_IN_POLLING", ...}` when a polling read
/// asks for the full response mode and the hub forbids it (spec §1.9).
pub fn forbid_full_in_polling(
    config: &Config,
    tool: &str,
    allowed: &[&str],
) -> Result<(), ToolError> {
    if !config.disallow_full_in_polling {
        return Ok(());
    }
    Err(ToolError::new(
        "FULL_MODE_FORBIDDEN_IN_POLLING",
        format!(
            "{tool}: response_mode \"full\" is not allowed in polling reads (polling:true or a \
             delta cursor); use one of {}",
            allowed.join(", ")
        ),
    )
    .with("allowed_response_modes", json!(allowed)))
}
