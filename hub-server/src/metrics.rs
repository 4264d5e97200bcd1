//! Prometheus metrics (`GET /metrics`, text exposition via `prometheus-client`): tool calls by
//! tool and outcome, call latency by tool, auth outcomes, the writer's queue depth, group
//! size and commit latency, and gauges sampled at scrape time (live sessions, waiters, SSE
//! streams, active claims, pending tasks by namespace).
//!
//! Labels are bounded: tool names come from the registry (an unknown tool is refused before
//! it is counted), outcomes and auth statuses are enums, namespaces are the 20 largest.
//! Agent and task ids are never label values.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::bookkeeping::CallStat;
use crate::store::WriterMetrics;
use crate::store::kpi::Backlog;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tool: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabel {
    tool: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabel {
    namespace: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~1.6 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 15))
}

/// Gauges read when scraped.
#[derive(Debug, Clone, Default)]
pub struct Sampled {
    pub sessions: i64,
    pub waiters: i64,
    pub sse_streams: i64,
    pub claims_active: i64,
    pub pending_by_namespace: Vec<Backlog>,
    /// The writer's database connection is up (PostgreSQL can go away; SQLite cannot).
    pub database_connected: bool,
    pub database_errors: u64,
}

pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Family<ToolLabel, Histogram, fn() -> Histogram>,
    auth: Family<AuthLabel, Counter>,
    sessions: Gauge,
    waiters: Gauge,
    sse_streams: Gauge,
    claims_active: Gauge,
    pending: Family<NamespaceLabel, Gauge>,
    database_up: Gauge,
    database_errors: Gauge,
}

impl Metrics {
    pub fn new(writer: &WriterMetrics) -> Metrics {
        let mut registry = Registry::with_prefix("hub");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "Guarded tool calls by tool and outcome",
            calls.clone(),
        );
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "tool_call_seconds",
            "Tool call latency inside the hub",
            latency.clone(),
        );
        let auth = Family::<AuthLabel, Counter>::default();
        registry.register(
            "auth_checks",
            "Auth outcomes of guarded calls",
            auth.clone(),
        );
        registry.register(
            "writer_queue_depth",
            "Write requests queued for the writer thread",
            writer.queue_depth.clone(),
        );
        registry.register(
            "writer_group_size",
            "Requests per group commit",
            writer.group_size.clone(),
        );
        registry.register(
            "writer_commit_seconds",
            "Writer time per group (requests plus COMMIT)",
            writer.commit_seconds.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let sessions = gauge(&mut registry, "sessions", "Live stateful MCP sessions");
        let waiters = gauge(&mut registry, "waiters", "Long-polls in flight");
        let sse_streams = gauge(&mut registry, "sse_streams", "Open /events streams");
        let claims_active = gauge(&mut registry, "claims_active", "Claims with a live lease");
        let database_up = gauge(
            &mut registry,
            "database_up",
            "1 while the writer's database connection works, 0 while it reconnects",
        );
        let database_errors = gauge(
            &mut registry,
            "database_errors",
            "Failed group commits and reconnect attempts since start",
        );
        let pending = Family::<NamespaceLabel, Gauge>::default();
        registry.register(
            "tasks_pending",
            "Pending tasks of the 20 largest namespaces",
            pending.clone(),
        );
        Metrics {
            registry,
            calls,
            latency,
            auth,
            sessions,
            waiters,
            sse_streams,
            claims_active,
            pending,
            database_up,
            database_errors,
        }
    }

    /// Counts one guarded call (from its bookkeeping record).
    pub fn count_call(&self, call: &CallStat) {
        self.calls
            .get_or_create(&CallLabels {
                tool: call.tool,
                outcome: call.outcome.as_str(),
            })
            .inc();
        if call.outcome.passed_admission_limits() {
            self.auth
                .get_or_create(&AuthLabel {
                    status: call.auth.as_str(),
                })
                .inc();
        }
    }

    pub fn observe_latency(&self, tool: &'static str, seconds: f64) {
        self.latency
            .get_or_create(&ToolLabel { tool })
            .observe(seconds);
    }

    /// The text exposition, after setting the sampled gauges.
    pub fn render(&self, sampled: &Sampled) -> String {
        self.sessions.set(sampled.sessions);
        self.waiters.set(sampled.waiters);
        self.sse_streams.set(sampled.sse_streams);
        self.claims_active.set(sampled.claims_active);
        self.database_up.set(i64::from(sampled.database_connected));
        self.database_errors
            .set(i64::try_from(sampled.database_errors).unwrap_or(i64::MAX));
        // Namespaces that left the top 20 (or emptied) must not keep a stale value.
        self.pending.clear();
        for row in &sampled.pending_by_namespace {
            self.pending
                .get_or_create(&NamespaceLabel {
                    namespace: row.key.clone(),
                })
                .set(row.pending);
        }
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
        }
        text
    }
}
