//! MCP tools: the registry of tools, the one call pipeline every tool goes through, and the
//! rmcp `ServerHandler` that serves them. Contains no SQL: ops call `store::<domain>`.
//!
//! Pipeline of one call (spec tools-core §1.4, with defects D1/D2/D7 corrected):
//! 1. arguments are checked against the tool's schema (unknown fields, types, required,
//!    blank ids), then deserialize into its args struct — a failure is an `INVALID_ARGUMENT`
//!    tool error (`isError: true`) naming the field, with no side effects (SEP-1303);
//! 2. auth: the token (`auth_token`, else `Authorization: Bearer`) is checked against the
//!    tool's declared caller field only, giving one [`Caller`] every op acts for; a call
//!    naming another agent's private data (its subject field) is refused under enforce;
//! 3. rate limit, keyed by the authenticated caller (else by connection);
//! 4. idempotency replay for mutating tools;
//! 5. the op, inside a nested savepoint: a refusal rolls back the op but keeps its refusal
//!    activity row;
//! 6. stream activity rows and the idempotency record (successes only) commit with the op;
//!    guard warnings are merged off the writer.
//!
//! The guard's bookkeeping (auth event, token last-use, heartbeat, quiet activity rows) is
//! not written by the call: it goes to [`crate::bookkeeping`], which flushes it in batches.
//! The pipeline itself lives in [`pipeline`].

pub mod agents;
pub mod artifacts;
pub mod blobs;
pub mod consensus;
pub mod context;
pub mod live;
pub mod messages;
pub mod observability;
mod onboarding;
mod pipeline;
mod prompts;
mod validate;
pub use pipeline::{
    Activity, FollowUp, FollowUpOrder, MarkingOp, PrepareOn, Rejected, WaitFuture, WaitOp,
    count_blob_reads, mutating, mutating_prepared, mutating_rendered, reading, reading_marked,
    waiting,
};
pub mod tasks;
pub use onboarding::PROTOCOL_VERSION;
pub mod protocol;
pub mod resources;
pub mod schema;
pub mod surface;
// Tools render with the same text helpers the services decide with.
use crate::domain::text;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, Implementation, JsonObject, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig, SubscribeRequestParams, Tool,
    UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, RoleServer};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth;
use crate::bookkeeping::{Bookkeeper, CallRecord};
use crate::config::Config;
use crate::rate_limit::RateLimiter;
use crate::store::Store;
use crate::store::activity::ActivityRow;

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
    /// Coalesces heartbeats, token use, auth events and quiet activity rows.
    pub bookkeeper: Arc<Bookkeeper>,
    /// Orders the marking reads of each inbox (see [`reading_marked`]).
    pub inbox_gates: crate::live::InboxGates,
    /// Namespace request buckets and token budgets.
    pub quotas: crate::quota::NamespaceQuotas,
    /// Prometheus metrics; `None` under `MCP_HUB_METRICS=off`.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Hub {
    pub fn new(config: Arc<Config>, store: Store) -> Arc<Hub> {
        let rate_limiter = RateLimiter::new(config.rate_limit_rps, config.rate_limit_burst);
        let quotas = crate::quota::NamespaceQuotas::new(&config);
        let metrics = config
            .metrics_enabled
            .then(|| Arc::new(crate::metrics::Metrics::new(store.writer_metrics())));
        Arc::new(Hub {
            config,
            rate_limiter,
            wait_streaks: crate::live::Streaks::default(),
            waiters: std::sync::atomic::AtomicUsize::new(0),
            shutdown: tokio_util::sync::CancellationToken::new(),
            tasks: Arc::new(crate::service::tasks::TaskState::default()),
            bookkeeper: Arc::new(Bookkeeper::new(store.clone(), metrics.clone())),
            metrics,
            inbox_gates: crate::live::InboxGates::default(),
            quotas,
            store,
        })
    }

    /// Hands a call's bookkeeping to the coalescer. Quiet rows wait for the next flush; a
    /// row that advances the activity stream (none today outside writes) is written now.
    fn record(&self, mut book: CallRecord, activity: Vec<ActivityRow>, answer: &Value) {
        book.settle(answer);
        for row in activity {
            if row.quiet {
                book.quiet_activity.push(row);
            } else {
                book.stream_activity.push(row.clone());
                self.store
                    .write_detached(move |tx| crate::store::activity::insert(tx, &row));
            }
        }
        self.bookkeeper.record(book);
    }
}

pub use crate::service::{Ctx as OpCtx, Refusal as ToolError, forbid_full_in_polling};

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

/// [`non_blank`], owned: how optional filters and ids pass from the wire into commands.
pub fn non_blank_string(value: Option<&str>) -> Option<String> {
    non_blank(value).map(str::to_string)
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

type CallFuture = Pin<Box<dyn Future<Output = Result<Value, Rejected>> + Send>>;
type CallFn = Box<dyn Fn(Arc<Hub>, CallEnv, JsonObject) -> CallFuture + Send + Sync>;

/// How a tool's op runs, as far as its effect on the hub goes; the annotations of
/// [`surface::CATALOG`] are checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// On the writer.
    Writes,
    /// On the reader pool, then marks the caller's messages read.
    MarksRead,
    /// On the reader pool or waiting; at most access counters follow.
    Reads,
}

/// One tool: its wire description and how to run it.
pub struct ToolDef {
    pub name: &'static str,
    pub category: Category,
    pub description: &'static str,
    pub kind: ToolKind,
    pub caller_field: Option<&'static str>,
    /// The argument naming whose private data is read, where it may differ from the caller.
    pub subject_field: Option<&'static str>,
    schema: Arc<JsonObject>,
    call: CallFn,
}

impl ToolDef {
    /// For a tool whose effect differs from what its tool kind implies.
    pub fn with_kind(self, kind: ToolKind) -> Self {
        ToolDef { kind, ..self }
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
        tools.extend(artifacts::tools());
        tools.extend(live::tools());
        tools.extend(observability::tools());
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(index, tool)| (tool.name, index))
            .collect();
        Registry { tools, by_name }
    })
}

/// The tool as `tools/list` shows it: description, schema, annotations from the catalog.
pub fn wire_tool(def: &ToolDef) -> Tool {
    let tool = Tool::new(def.name, def.description, def.schema.clone());
    match surface::annotations(def.name) {
        Some(annotations) => tool.annotate(annotations),
        None => tool,
    }
}

/// The tool profile the request's connection asked for; an unknown name is a protocol
/// error naming the choices.
fn profile_of(context: &RequestContext<RoleServer>) -> Result<surface::Profile, ErrorData> {
    surface::requested_profile(context.extensions.get::<http::request::Parts>()).map_err(|name| {
        ErrorData::invalid_params(
            format!(
                "unknown tool profile '{name}' ({} / {} header): use worker, \
                     orchestrator, observer or full",
                surface::PROFILE_QUERY,
                surface::PROFILE_HEADER
            ),
            None,
        )
    })
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

/// The MCP server behind every session (one per session: its resource subscriptions end
/// with it).
#[derive(Clone)]
pub struct HubServer {
    hub: Arc<Hub>,
    subscriptions: resources::Subscriptions,
}

impl HubServer {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self {
            hub,
            subscriptions: resources::Subscriptions::default(),
        }
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
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
        .with_server_info(Implementation::new("mcp-agent-hub", crate::VERSION))
        .with_instructions(surface::INSTRUCTIONS)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(prompts::list()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        prompts::get(&request.name).map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(resources::list()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        resources::read(self.hub.clone(), call_env(&context), &request.uri)
            .await
            .map(Into::into)
    }

    // The 2026-07-28 revision replaces these with subscriptions/listen; the session protocol
    // versions the hub serves still use them.
    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let env = call_env(&context);
        self.subscriptions
            .subscribe(self.hub.clone(), env, context.peer, &request.uri)
            .await
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions.unsubscribe(&request.uri);
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let profile = profile_of(&context)?;
        Ok(ListToolsResult::with_all_items(
            registry()
                .tools
                .iter()
                .filter(|def| profile.allows(def.name))
                .map(wire_tool)
                .collect(),
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
        let profile = profile_of(&context)?;
        if !profile.allows(def.name) {
            return Ok(render(&surface::outside_profile(def.name, profile)).into());
        }
        let env = call_env(&context);
        let arguments = request.arguments.unwrap_or_default();
        let started = std::time::Instant::now();
        let value = match (def.call)(self.hub.clone(), env, arguments).await {
            Ok(value) | Err(Rejected(value)) => value,
        };
        if let Some(metrics) = &self.hub.metrics {
            metrics.observe_latency(def.name, started.elapsed().as_secs_f64());
        }
        Ok(render(&value).into())
    }
}
