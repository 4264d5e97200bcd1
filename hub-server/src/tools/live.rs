//! Live-update tools: wait_for_updates (long-poll on the change streams).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::{
    Category, Hub, OpCtx, ToolArgs, ToolDef, ToolError, ToolResult, WaitFuture, int_arg, non_blank,
};
use crate::config::WaitResponseMode;
use crate::live::{self, Cursor, StreamSet, WaitEnd};

pub fn tools() -> Vec<ToolDef> {
    vec![super::waiting(
        "wait_for_updates",
        Category::Observability,
        "Long-poll: returns as soon as a watched stream (messages visible to you, tasks, \
         context, activity) changes after your cursor, or at wait_ms. Pass the returned cursor \
         to the next call: no change is ever skipped. Idle waiting costs nothing; honour \
         retry_after_ms on timeouts. response_mode nano {c,s,u,r} is the smallest.",
        wait_for_updates,
    )]
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
    /// The calling agent (heartbeat, auth); defaults to agent_id.
    pub requesting_agent: Option<String>,
    /// Whose view to watch (its inbox for the messages stream); defaults to requesting_agent.
    pub agent_id: Option<String>,
    /// Streams to watch: messages, tasks, context, activity (default all four).
    pub streams: Option<Vec<String>>,
    /// The cursor of the previous call (`m.t.c.a`, base36); omit to start from the beginning.
    pub cursor: Option<String>,
    /// Per-stream override of the cursor's messages position.
    pub message_since_ts: Option<f64>,
    /// Per-stream override of the cursor's tasks position.
    pub task_since_ts: Option<f64>,
    /// Per-stream override of the cursor's context position.
    pub context_since_ts: Option<f64>,
    /// Per-stream override of the cursor's activity position.
    pub activity_since_ts: Option<f64>,
    /// How long to wait, ms (default MCP_HUB_WAIT_DEFAULT_MS, at most MCP_HUB_WAIT_MAX_MS).
    pub wait_ms: Option<f64>,
    /// Base of the retry hint on timeouts, 100-2000 ms (default 500). The hub itself never
    /// polls: it wakes on commit.
    pub poll_interval_ms: Option<f64>,
    /// Grow retry_after_ms over consecutive timeouts (default true).
    pub adaptive_retry: Option<bool>,
    /// nano | micro | tiny | compact | full (default MCP_HUB_WAIT_DEFAULT_RESPONSE_MODE).
    pub response_mode: Option<WaitMode>,
    /// default | minimal: minimal timeouts return only {"changed":false} / {"c":0}.
    pub timeout_response: Option<TimeoutResponse>,
    pub auth_token: Option<String>,
}

impl ToolArgs for WaitForUpdatesArgs {
    const CALLER_FIELD: Option<&'static str> = Some("requesting_agent");
    /// The caller is requesting_agent; without it the watcher watches its own scope (D1:
    /// the token is never checked against a scope someone else chose).
    fn caller(&self) -> Option<&str> {
        non_blank(self.requesting_agent.as_deref()).or_else(|| non_blank(self.agent_id.as_deref()))
    }
    fn auth_token(&self) -> Option<&str> {
        non_blank(self.auth_token.as_deref())
    }
}

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
                 context, activity"
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
            "changed_streams": changed_flags([false; 4]), "watermark": watermark,
            "retry_after_ms": retry_after_ms,
        }),
    })
}

fn changed_flags(changed: [bool; 4]) -> Value {
    json!({
        "messages": changed[0], "tasks": changed[1], "context": changed[2], "activity": changed[3],
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
