//! Live-update tools: wait_for_updates (long-poll on the change streams) and read_snapshot
//! (inbox, task board and context in one read with one resumable cursor).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::context::{ContextReadMode, key_filter, render_context};
use super::messages::{self, ReadMode, render_inbox, row_cursor};
use super::tasks::{ExecutionMode, TaskListMode, TaskStatus, render_task_page};
use super::{
    Category, FollowUp, Hub, OpCtx, ToolDef, ToolError, ToolResult, WaitFuture, count_blob_reads,
    int_arg, non_blank, non_blank_string,
};
use crate::config::WaitResponseMode;
use crate::live::{self, Cursor, StreamSet, WaitEnd};
use crate::service::context::{self as context_service, GetContext};
use crate::service::messages::{self as message_service, ReadInbox};
use crate::service::tasks::{self as task_service, TaskListQuery};
use crate::store::{self, Db, Stream, WriteTx};

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::waiting(
            "wait_for_updates",
            Category::Observability,
            "Block until a watched stream changes after cursor (or wait_ms); pass the returned cursor back instead of polling.",
            wait_for_updates,
        ),
        super::reading_marked(
            "read_snapshot",
            Category::Observability,
            "Inbox, tasks and context with one resumable cursor; marks nothing read.",
            super::FollowUpOrder::Unordered,
            read_snapshot,
        ),
    ]
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WaitMode {
    Nano,
    Micro,
    Tiny,
    Compact,
    Full,
}

impl From<WaitMode> for WaitResponseMode {
    fn from(mode: WaitMode) -> Self {
        match mode {
            WaitMode::Nano => WaitResponseMode::Nano,
            WaitMode::Micro => WaitResponseMode::Micro,
            WaitMode::Tiny => WaitResponseMode::Tiny,
            WaitMode::Compact => WaitResponseMode::Compact,
            WaitMode::Full => WaitResponseMode::Full,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TimeoutResponse {
    Default,
    Minimal,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitForUpdatesArgs {
    // The calling agent (heartbeat, auth); defaults to agent_id.
    pub requesting_agent: Option<String>,
    // Whose view to watch (its inbox for the messages stream); defaults to requesting_agent.
    pub agent_id: Option<String>,
    // messages, tasks, context, activity, artifacts (default all).
    pub streams: Option<Vec<String>>,
    // The cursor of the previous call (opaque); omit to start from the beginning.
    pub cursor: Option<String>,
    // Per-stream override of the cursor's messages position.
    pub message_since_ts: Option<f64>,
    // Per-stream override of the cursor's tasks position.
    pub task_since_ts: Option<f64>,
    // Per-stream override of the cursor's context position.
    pub context_since_ts: Option<f64>,
    // Per-stream override of the cursor's activity position.
    pub activity_since_ts: Option<f64>,
    // How long to wait, ms (default MCP_HUB_WAIT_DEFAULT_MS, at most MCP_HUB_WAIT_MAX_MS).
    #[schemars(with = "Option<i64>")]
    pub wait_ms: Option<f64>,
    // Base of the retry hint on timeouts, 100-2000 ms (default 500). The hub itself never
    // polls: it wakes on commit.
    #[schemars(with = "Option<i64>")]
    pub poll_interval_ms: Option<f64>,
    // Grow retry_after_ms over consecutive timeouts (default true).
    pub adaptive_retry: Option<bool>,
    // nano | micro | tiny | compact | full (default MCP_HUB_WAIT_DEFAULT_RESPONSE_MODE).
    pub response_mode: Option<WaitMode>,
    // default | minimal: minimal timeouts return only {"changed":false} / {"c":0}.
    pub timeout_response: Option<TimeoutResponse>,
    pub auth_token: Option<String>,
}

// The caller is requesting_agent; without it the watcher watches its own scope (D1: the token
// is never checked against a scope someone else chose).
crate::tool_args!(WaitForUpdatesArgs, caller = requesting_agent or agent_id);

fn wait_for_updates(
    hub: Arc<Hub>,
    mut ctx: OpCtx,
    args: WaitForUpdatesArgs,
    cancel: CancellationToken,
) -> WaitFuture {
    Box::pin(async move {
        let result = wait(&hub, &mut ctx, args, cancel).await;
        (result, ctx)
    })
}

/// Counts waiters in flight (shown by /health) for as long as it lives.
struct WaiterGuard<'a>(&'a Hub);

impl<'a> WaiterGuard<'a> {
    fn new(hub: &'a Hub) -> Self {
        hub.waiters.fetch_add(1, Ordering::Relaxed);
        WaiterGuard(hub)
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn wait(
    hub: &Hub,
    ctx: &mut OpCtx,
    args: WaitForUpdatesArgs,
    cancel: CancellationToken,
) -> ToolResult {
    let config = &hub.config.wait;
    let Some(watcher) = non_blank(args.agent_id.as_deref())
        .or(non_blank(args.requesting_agent.as_deref()))
        .map(str::to_string)
    else {
        return Err(ToolError::new(
            "AGENT_ID_REQUIRED",
            "wait_for_updates: pass agent_id (whose updates to watch) or requesting_agent",
        ));
    };
    let names = args.streams.clone().unwrap_or_default();
    let streams = StreamSet::parse(names.iter().map(String::as_str)).map_err(|unknown| {
        ToolError::new(
            "STREAMS_INVALID",
            format!(
                "wait_for_updates: unknown stream {unknown:?}; streams are messages, tasks, \
                 context, activity, artifacts"
            ),
        )
    })?;
    let mut baseline = match Cursor::parse(args.cursor.as_deref().unwrap_or("")) {
        Ok(cursor) => cursor.unwrap_or_default(),
        Err(_) => {
            return Err(ToolError::new(
                "CURSOR_INVALID",
                "wait_for_updates: cursor must be four base36 numbers joined by '.' (m.t.c.a) \
                 as returned by the previous call; omit it to start from the beginning",
            ));
        }
    };
    for (index, value) in [
        args.message_since_ts,
        args.task_since_ts,
        args.context_since_ts,
        args.activity_since_ts,
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            baseline.0[index] = (value.floor() as i64).max(0);
        }
    }
    let wait_ms = int_arg(args.wait_ms, config.default_ms, 100, config.max_ms);
    let poll_interval_ms = int_arg(args.poll_interval_ms, 500, 100, 2_000);
    let mode: WaitResponseMode = args
        .response_mode
        .map(Into::into)
        .unwrap_or(config.default_response_mode);
    let minimal = match args.timeout_response {
        Some(TimeoutResponse::Minimal) => true,
        Some(TimeoutResponse::Default) => false,
        None => config.minimal_timeout_response,
    };

    let started = tokio::time::Instant::now();
    let deadline = started + std::time::Duration::from_millis(wait_ms as u64);
    let outcome = {
        let _waiting = WaiterGuard::new(hub);
        live::wait_for_change(&hub.store, &watcher, streams, baseline, deadline, &cancel).await?
    };
    let elapsed_ms = started.elapsed().as_millis() as i64;
    let cursor = outcome.cursor.encode();
    let now_ms = hub.store.now_ms();
    let watermark = json!({
        "now": now_ms,
        "latest_message_ts": outcome.cursor.0[0],
        "latest_task_ts": outcome.cursor.0[1],
        "latest_context_ts": outcome.cursor.0[2],
        "latest_activity_ts": outcome.cursor.0[3],
        "latest_artifact_seq": outcome.cursor.0[4],
    });
    let changed_streams: Vec<&str> = live::STREAM_NAMES
        .iter()
        .zip(outcome.changed)
        .filter(|(_, changed)| *changed)
        .map(|(name, _)| *name)
        .collect();

    if outcome.end == WaitEnd::Changed {
        hub.wait_streaks.reset(&watcher);
        if config.log_hits {
            let flags: Map<String, Value> = live::STREAM_NAMES
                .iter()
                .zip(outcome.changed)
                .map(|(name, changed)| (name.to_string(), Value::Bool(changed)))
                .collect();
            ctx.log(
                "wait_for_updates_hit",
                format!("watcher={watcher} changed={}", Value::Object(flags)),
            );
        }
        return Ok(match mode {
            WaitResponseMode::Nano => json!({"c": 1, "s": changed_streams, "u": cursor}),
            WaitResponseMode::Micro => {
                json!({"changed": true, "streams": changed_streams, "cursor": cursor})
            }
            WaitResponseMode::Tiny => json!({
                "success": true, "changed": true, "streams": changed_streams, "cursor": cursor,
                "watermark": {
                    "message": outcome.cursor.0[0], "task": outcome.cursor.0[1],
                    "context": outcome.cursor.0[2], "activity": outcome.cursor.0[3],
                },
            }),
            WaitResponseMode::Compact => json!({
                "success": true, "changed": true, "elapsed_ms": elapsed_ms,
                "streams": changed_streams, "cursor": cursor, "watermark": watermark,
            }),
            WaitResponseMode::Full => json!({
                "success": true, "changed": true, "elapsed_ms": elapsed_ms, "cursor": cursor,
                "changed_streams": changed_flags(outcome.changed), "watermark": watermark,
            }),
        });
    }

    let misses = hub.wait_streaks.bump(&watcher);
    let retry_after_ms = if args.adaptive_retry == Some(false) {
        poll_interval_ms
    } else {
        live::retry_after_ms(
            misses,
            poll_interval_ms,
            config.retry_factor,
            config.retry_cap_ms,
            config.retry_jitter,
        )
    };
    if config.log_timeouts {
        ctx.log(
            "wait_for_updates_timeout",
            format!(
                "watcher={watcher} wait_ms={wait_ms} retry_after_ms={retry_after_ms} mode={} \
                 adaptive={} streams={}",
                mode_name(mode),
                u8::from(args.adaptive_retry != Some(false)),
                streams.names().join(",")
            ),
        );
    }
    if minimal {
        return Ok(if mode == WaitResponseMode::Nano {
            json!({"c": 0})
        } else {
            json!({"changed": false})
        });
    }
    Ok(match mode {
        WaitResponseMode::Nano => json!({"c": 0, "u": cursor, "r": retry_after_ms}),
        WaitResponseMode::Micro => {
            json!({"changed": false, "cursor": cursor, "retry_after_ms": retry_after_ms})
        }
        WaitResponseMode::Tiny => json!({
            "success": true, "changed": false, "cursor": cursor, "retry_after_ms": retry_after_ms,
        }),
        WaitResponseMode::Compact => json!({
            "success": true, "changed": false, "elapsed_ms": elapsed_ms, "cursor": cursor,
            "retry_after_ms": retry_after_ms,
        }),
        // Unlike the older hub, the full timeout also carries the retry hint (D10).
        WaitResponseMode::Full => json!({
            "success": true, "changed": false, "elapsed_ms": elapsed_ms, "cursor": cursor,
            "changed_streams": changed_flags([false; live::STREAM_NAMES.len()]), "watermark": watermark,
            "retry_after_ms": retry_after_ms,
        }),
    })
}

fn changed_flags(changed: [bool; live::STREAM_NAMES.len()]) -> Value {
    json!({
        "messages": changed[0], "tasks": changed[1], "context": changed[2], "activity": changed[3],
        "artifacts": changed[4],
    })
}

fn mode_name(mode: WaitResponseMode) -> &'static str {
    match mode {
        WaitResponseMode::Nano => "nano",
        WaitResponseMode::Micro => "micro",
        WaitResponseMode::Tiny => "tiny",
        WaitResponseMode::Compact => "compact",
        WaitResponseMode::Full => "full",
    }
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    Compact,
    Tiny,
    Nano,
    /// Accepted by the schema but always refused: snapshots are polling reads.
    Full,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadSnapshotArgs {
    // The calling agent (heartbeat, auth); defaults to agent_id.
    pub requesting_agent: Option<String>,
    // Whose inbox to read; defaults to requesting_agent.
    pub agent_id: Option<String>,
    // The cursor of the previous snapshot or wait (m.t.c.a, base36); omit for the newest rows.
    pub cursor: Option<String>,
    // compact (default), tiny or nano.
    pub response_mode: Option<SnapshotMode>,
    // Messages per snapshot, 1-200 (default 100).
    #[schemars(with = "Option<i64>")]
    pub message_limit: Option<f64>,
    // Tasks per snapshot, 1-500 (default 100).
    #[schemars(with = "Option<i64>")]
    pub task_limit: Option<f64>,
    // Context entries per snapshot, 1-500 (default 100).
    #[schemars(with = "Option<i64>")]
    pub context_limit: Option<f64>,
    // Inbox filter: sender.
    pub message_from: Option<String>,
    // Inbox filter: only messages not read yet (the snapshot itself marks nothing read).
    pub message_unread_only: Option<bool>,
    pub task_status: Option<TaskStatus>,
    pub task_assigned_to: Option<String>,
    pub task_namespace: Option<String>,
    pub task_execution_mode: Option<ExecutionMode>,
    pub task_ready_only: Option<bool>,
    pub include_dependencies: Option<bool>,
    pub context_agent_id: Option<String>,
    pub context_key: Option<String>,
    pub context_namespace: Option<String>,
    // Resolve blob-ref envelopes in messages and context.
    pub resolve_blob_refs: Option<bool>,
    /// Whole message content; pages stop near 64 KB.
    pub include_content: Option<bool>,
    pub auth_token: Option<String>,
}

crate::tool_args!(ReadSnapshotArgs, caller = requesting_agent or agent_id);

/// Where a stream's page ended: more rows waiting, and the sequence of its last row.
#[derive(Clone, Copy)]
struct PageEnd {
    has_more: bool,
    last_seq: Option<i64>,
    count: usize,
}

fn stage_failure(stage: &str, cause: ToolError) -> ToolError {
    let fallback = match stage {
        "messages" => "READ_MESSAGES_FAILED",
        "tasks" => "LIST_TASKS_FAILED",
        _ => "GET_CONTEXT_FAILED",
    };
    let code = if cause.code.is_empty() {
        fallback
    } else {
        cause.code
    };
    ToolError::new(
        code,
        format!("read_snapshot: the {stage} read failed: {}", cause.message),
    )
    .with("stage", stage)
    .with("cause", cause.to_json())
}

/// Runs on the reader pool in one read transaction; blob access counts (resolve_blob_refs)
/// follow through the writer.
fn read_snapshot(
    db: &Db,
    ctx: &mut OpCtx,
    args: ReadSnapshotArgs,
) -> Result<(Value, Option<FollowUp>), ToolError> {
    db.in_snapshot(|db| snapshot(db, ctx, args))
}

fn snapshot(
    db: &Db,
    ctx: &mut OpCtx,
    args: ReadSnapshotArgs,
) -> Result<(Value, Option<FollowUp>), ToolError> {
    // The watched inbox is the subject the pipeline admitted: the caller's own under enforce;
    // observe and warn still read a named one (with a warning) until they are enforced.
    let Some(watcher) = non_blank(args.agent_id.as_deref())
        .or(non_blank(args.requesting_agent.as_deref()))
        .map(str::to_string)
    else {
        return Err(ToolError::new(
            "AGENT_ID_REQUIRED",
            "read_snapshot: pass agent_id (whose inbox to read) or requesting_agent",
        ));
    };
    let baseline = Cursor::parse(args.cursor.as_deref().unwrap_or("")).map_err(|_| {
        ToolError::new(
            "CURSOR_INVALID",
            "read_snapshot: cursor must be four base36 numbers joined by '.' (m.t.c.a) as \
             returned by the previous snapshot or wait; omit it to start with the newest rows",
        )
    })?;
    let mode = args.response_mode.unwrap_or(SnapshotMode::Compact);
    let (message_mode, task_mode, context_mode, mode_name) = match mode {
        SnapshotMode::Full => {
            return Err(ToolError::new(
                "FULL_MODE_FORBIDDEN_IN_POLLING",
                "read_snapshot is a polling read: use response_mode nano, tiny or compact",
            )
            .with("allowed_response_modes", json!(["nano", "tiny", "compact"])));
        }
        SnapshotMode::Compact => (
            ReadMode::Compact,
            TaskListMode::Compact,
            ContextReadMode::Compact,
            "compact",
        ),
        SnapshotMode::Tiny => (
            ReadMode::Tiny,
            TaskListMode::Tiny,
            ContextReadMode::Tiny,
            "tiny",
        ),
        SnapshotMode::Nano => (
            ReadMode::Nano,
            TaskListMode::Nano,
            ContextReadMode::Nano,
            "nano",
        ),
    };
    // One cap per stream, applied and reported as documented (D14).
    let limits = [
        int_arg(args.message_limit, 100, 1, 200),
        int_arg(args.task_limit, 100, 1, 500),
        int_arg(args.context_limit, 100, 1, 500),
    ];
    let segment = |stream: usize| baseline.map(|c| row_cursor(c.0[stream], 0));
    let resolve = args.resolve_blob_refs == Some(true);

    let (inbox, inbox_effects) = message_service::read_inbox_from(
        db,
        ctx,
        ReadInbox {
            subject: Some(watcher.clone()),
            from_agent: non_blank_string(args.message_from.as_deref()),
            unread_only: args.message_unread_only == Some(true),
            limit: limits[0],
            offset: 0,
            since_ms: None,
            cursor: segment(0),
            full_mode: false,
            polling: true,
            resolve_blob_refs: resolve,
            // A snapshot marks nothing read (D12).
            peek: true,
            whole_content: args.include_content == Some(true),
        },
    )
    .map_err(|e| stage_failure("messages", e))?;
    // The board filters pass as list_tasks passes them (assigned_to and namespace verbatim).
    let board = TaskListQuery::new(limits[1], 0, None, segment(1).as_deref())
        .and_then(|mut query| {
            query.status = args.task_status;
            query.assigned_to = args.task_assigned_to.clone();
            query.namespace = args.task_namespace.clone();
            query.execution_mode = args.task_execution_mode;
            query.ready_only = args.task_ready_only == Some(true);
            query.include_dependencies = args.include_dependencies == Some(true);
            task_service::list(db, ctx, &query)
        })
        .map_err(|e| stage_failure("tasks", e))?;
    let (context, context_blobs) = context_service::get_from(
        db,
        ctx,
        GetContext {
            agent_id: non_blank_string(args.context_agent_id.as_deref()),
            key: key_filter(args.context_key.as_deref()),
            namespace: non_blank_string(args.context_namespace.as_deref()),
            limit: limits[2],
            offset: 0,
            updated_after: None,
            cursor: segment(2),
            full_mode: false,
            polling: true,
            resolve_blob_refs: resolve,
        },
    )
    .map_err(|e| stage_failure("context", e))?;

    // The new cursor. The reads share one snapshot, which holds at least every change up to
    // the heads published before it began (`ctx.heads`); rows past them that the snapshot
    // already holds move the cursor too, so nothing is delivered twice or skipped. A
    // truncated stream resumes after its last row (D13).
    let heads = ctx.heads;
    let watermark = [
        store::messages::latest_visible_seq(db, &watcher)?,
        heads.get(Stream::Tasks),
        heads.get(Stream::Context),
        heads.get(Stream::Activity),
        heads.get(Stream::Artifacts),
    ];
    let base = baseline.unwrap_or_default();
    let pages = [
        PageEnd {
            has_more: inbox.has_more,
            last_seq: inbox.last_seq,
            count: inbox.items.len(),
        },
        PageEnd {
            has_more: board.has_more,
            last_seq: board.items.last().map(|item| item.task.seq),
            count: board.items.len(),
        },
        PageEnd {
            has_more: context.has_more,
            last_seq: context.last_seq,
            count: context.items.len(),
        },
    ];
    let mut next = Cursor::default();
    for (stream, slot) in next.0.iter_mut().enumerate() {
        *slot = match (baseline, pages.get(stream)) {
            (
                Some(_),
                Some(PageEnd {
                    has_more: true,
                    last_seq: Some(last),
                    ..
                }),
            ) => *last,
            (_, page) => {
                let last_row = page.and_then(|p| p.last_seq).unwrap_or(0);
                watermark[stream].max(base.0[stream]).max(last_row)
            }
        };
    }
    let blobs_read = count_blob_reads(context_blobs);
    let follow_up: Option<FollowUp> = match (inbox_effects.is_empty(), blobs_read) {
        (true, blobs_read) => blobs_read,
        (false, None) => Some(Box::new(move |tx: &mut WriteTx<'_>| {
            inbox_effects.apply(tx)
        })),
        (false, Some(blobs_read)) => Some(Box::new(move |tx: &mut WriteTx<'_>| {
            inbox_effects.apply(tx)?;
            blobs_read(tx)
        })),
    };
    let changed: Vec<bool> = (0..next.0.len()).map(|i| next.0[i] > base.0[i]).collect();
    let cursor = next.encode();
    ctx.log(
        "read_snapshot",
        format!(
            "watcher={watcher} messages={} tasks={} context={} mode={mode_name} cursor_in={} cursor_out={cursor}",
            pages[0].count,
            pages[1].count,
            pages[2].count,
            args.cursor.as_deref().filter(|c| !c.trim().is_empty()).unwrap_or("-"),
        ),
    );
    if mode == SnapshotMode::Nano {
        let body = json!({
            "s": {"m": messages::nano_items(&inbox), "t": super::tasks::nano_items(&board),
                  "c": super::context::nano_items(&context)},
            "h": {"m": u8::from(pages[0].has_more), "t": u8::from(pages[1].has_more)},
            "ch": {"m": u8::from(changed[0]), "t": u8::from(changed[1]),
                   "c": u8::from(changed[2]), "a": u8::from(changed[3])},
            "n": {"m": inbox.next_cursor, "t": board.next_cursor},
            "u": cursor,
        });
        return Ok((body, follow_up));
    }
    let messages = render_inbox(&inbox, message_mode);
    let tasks = render_task_page(&board, task_mode);
    let context = render_context(&context, context_mode);
    let body = json!({
        "success": true,
        "response_mode": mode_name,
        "changed": {"messages": changed[0], "tasks": changed[1], "context": changed[2],
                    "activity": changed[3]},
        "cursor": cursor,
        "snapshot": {"messages": messages, "tasks": tasks, "context": context},
        "counts": {"messages": pages[0].count, "tasks": pages[1].count,
                   "context": pages[2].count},
        "limits": {"messages": limits[0], "tasks": limits[1], "context": limits[2]},
    });
    Ok((body, follow_up))
}
