//! The shared load runner of `hubctl bench`: MCP sessions (one agent each), the [`Op`] a
//! scenario plugs in, and [`run_phase`] — N sessions calling one op concurrently for a fixed
//! time, with latencies, throughput and the hub writer's CPU over the phase. Scenarios own
//! their ops and their setup; nothing here knows a tool.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::bench_cpu::WriterProbe;
use super::bench_pg::{DbCounters, DbProbe, DbUse};
use crate::client::McpClient;

/// A hub under load: its MCP URL (one per replica), a label for the report, its writer
/// thread(s) and, on PostgreSQL, its database's counters.
pub(crate) struct HubTarget {
    pub(crate) urls: Vec<String>,
    pub(crate) label: String,
    pub(crate) writer: WriterProbe,
    pub(crate) db: Option<DbProbe>,
}

impl HubTarget {
    /// The first replica (the only one of a single hub).
    pub(crate) fn url(&self) -> &str {
        &self.urls[0]
    }

    /// The database's counters once settled, when this hub has a database probe.
    pub(crate) async fn db_counters(&self) -> Option<DbCounters> {
        match &self.db {
            Some(db) => db.settled().await,
            None => None,
        }
    }
}

/// One benchmark client: an MCP session acting as one agent.
pub(crate) struct Session {
    pub(crate) client: McpClient,
    pub(crate) agent: String,
    pub(crate) token: String,
    /// The agent this one sends direct messages to (the next session's).
    pub(crate) peer: String,
    /// Scenario-owned read position (read_messages or wait_for_updates cursor).
    pub(crate) cursor: String,
}

pub(crate) type CallFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<bool>> + Send + 'a>>;

/// One unit of work a session repeats during a phase.
pub(crate) trait Op: Send + Sync {
    /// Row label in the report.
    fn label(&self) -> &'static str;
    /// MCP requests one op makes (a claim cycle makes two).
    fn calls_per_op(&self) -> usize {
        1
    }
    /// Runs the op once; `Ok(false)` is a tool-level failure (counted as an error).
    fn call<'a>(&'a self, session: &'a mut Session) -> CallFuture<'a>;
}

/// Registers a benchmark agent (ephemeral, no onboarding); returns its token.
pub(crate) async fn register_agent(client: &mut McpClient, agent: &str) -> anyhow::Result<String> {
    let reply = client
        .call_tool(
            "register_agent",
            json!({"id": agent, "name": agent, "type": "benchmark",
                   "onboarding_mode": "none", "lifecycle": "ephemeral"}),
        )
        .await?;
    if !reply.succeeded() {
        bail!("register_agent failed: {}", reply.json);
    }
    Ok(reply.json["auth"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Opens `count` sessions, agents `<prefix>-0 …`, each peered with the next; session i
/// talks to `urls[i % urls.len()]`, so replicas get an even share of the clients.
pub(crate) async fn connect_sessions(
    urls: &[String],
    count: usize,
    prefix: &str,
) -> anyhow::Result<Vec<Session>> {
    anyhow::ensure!(!urls.is_empty(), "no hub URL to connect to");
    let mut sessions = Vec::with_capacity(count);
    for index in 0..count {
        let url = replica_url(urls, index);
        let mut client = McpClient::connect(url, "hubctl-bench").await?;
        let agent = format!("{prefix}-{index}");
        let token = register_agent(&mut client, &agent).await?;
        sessions.push(Session {
            client,
            agent,
            token,
            peer: format!("{prefix}-{}", (index + 1) % count.max(1)),
            cursor: "0".into(),
        });
    }
    Ok(sessions)
}

/// The replica session `index` talks to: round robin over `urls` (not empty).
fn replica_url(urls: &[String], index: usize) -> &str {
    &urls[index % urls.len()]
}

pub(crate) async fn close_sessions(sessions: Vec<Session>) {
    for session in sessions {
        session.client.close().await;
    }
}

/// CPU the writer thread used during a phase.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterUse {
    pub(crate) cpu_seconds: f64,
}

/// Figures for one op in one phase. Latencies are per op.
#[derive(Debug, Clone)]
pub(crate) struct PhaseStats {
    pub(crate) label: &'static str,
    pub(crate) clients: usize,
    pub(crate) ops: usize,
    pub(crate) calls: usize,
    pub(crate) errors: usize,
    pub(crate) seconds: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) mean_ms: f64,
    pub(crate) writer: Option<WriterUse>,
    /// Statements and transactions the database ran during the phase (PostgreSQL).
    pub(crate) db: Option<DbUse>,
}

impl PhaseStats {
    /// Builds the stats from per-op latencies in microseconds (sorted here).
    pub(crate) fn from_latencies(
        label: &'static str,
        clients: usize,
        mut micros: Vec<u64>,
        calls: usize,
        errors: usize,
        seconds: f64,
        writer: Option<WriterUse>,
    ) -> PhaseStats {
        micros.sort_unstable();
        let mean_ms = micros.iter().sum::<u64>() as f64 / micros.len().max(1) as f64 / 1000.0;
        PhaseStats {
            label,
            clients,
            ops: micros.len(),
            calls,
            errors,
            seconds,
            p50_ms: percentile(&micros, 0.50),
            p95_ms: percentile(&micros, 0.95),
            p99_ms: percentile(&micros, 0.99),
            mean_ms,
            writer,
            db: None,
        }
    }

    /// Database statements per MCP request.
    pub(crate) fn statements_per_call(&self) -> Option<f64> {
        let statements = self.db?.statements?;
        (self.calls > 0).then(|| statements as f64 / self.calls as f64)
    }

    /// Database transactions (writer groups + read snapshots) per MCP request.
    pub(crate) fn transactions_per_call(&self) -> Option<f64> {
        let db = self.db?;
        (self.calls > 0).then(|| db.transactions as f64 / self.calls as f64)
    }

    pub(crate) fn calls_per_sec(&self) -> f64 {
        self.calls as f64 / self.seconds.max(1e-9)
    }

    /// Writer CPU per MCP request, in microseconds.
    pub(crate) fn writer_us_per_call(&self) -> Option<f64> {
        let writer = self.writer?;
        (self.calls > 0).then(|| writer.cpu_seconds * 1e6 / self.calls as f64)
    }

    /// Writer busy time as a percentage of one core over the phase.
    pub(crate) fn writer_percent_of_core(&self) -> Option<f64> {
        Some(self.writer?.cpu_seconds / self.seconds.max(1e-9) * 100.0)
    }
}

pub(crate) fn percentile(sorted_micros: &[u64], fraction: f64) -> f64 {
    if sorted_micros.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_micros.len() as f64 - 1.0) * fraction).round() as usize;
    sorted_micros[rank] as f64 / 1000.0
}

/// A progress bar counting `length` units (e.g. "s" for seconds, " rounds").
pub(crate) fn progress_bar(length: u64, unit: &str) -> ProgressBar {
    let progress = ProgressBar::new(length);
    progress.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{bar:30}}] {{pos}}/{{len}}{unit} {{msg}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    progress.enable_steady_tick(Duration::from_millis(120));
    progress
}

/// Writer CPU between two readings, when both exist.
pub(crate) fn writer_use(before: Option<f64>, after: Option<f64>) -> Option<WriterUse> {
    Some(WriterUse {
        cpu_seconds: after? - before?,
    })
}

/// Runs `op` on every session concurrently for `seconds`; returns the sessions and the stats.
pub(crate) async fn run_phase(
    hub: &HubTarget,
    sessions: Vec<Session>,
    op: Arc<dyn Op>,
    seconds: u64,
) -> anyhow::Result<(Vec<Session>, PhaseStats)> {
    let clients = sessions.len();
    let db_before = hub.db_counters().await;
    let progress = progress_bar(seconds, "s");
    let completed = Arc::new(AtomicU64::new(0));
    let writer_before = hub.writer.cpu_seconds();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::with_capacity(clients);
    for mut session in sessions {
        let (completed, op) = (completed.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut micros = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let call_started = Instant::now();
                match op.call(&mut session).await {
                    Ok(true) => micros.push(call_started.elapsed().as_micros() as u64),
                    Ok(false) | Err(_) => errors += 1,
                }
                completed.fetch_add(1, Ordering::Relaxed);
            }
            (session, micros, errors)
        }));
    }
    let ticker = {
        let (progress, completed) = (progress.clone(), completed.clone());
        let label = format!("{}: {}", hub.label, op.label());
        tokio::spawn(async move {
            loop {
                progress.set_position(started.elapsed().as_secs().min(seconds));
                let done = completed.load(Ordering::Relaxed);
                progress.set_message(format!("{label} — {done} ops"));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut sessions = Vec::with_capacity(clients);
    let mut micros = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (session, session_micros, session_errors) = task.await?;
        sessions.push(session);
        micros.extend(session_micros);
        errors += session_errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let writer = writer_use(writer_before, hub.writer.cpu_seconds());
    ticker.abort();
    progress.finish_and_clear();
    let calls = micros.len() * op.calls_per_op();
    let mut stats =
        PhaseStats::from_latencies(op.label(), clients, micros, calls, errors, elapsed, writer);
    stats.db = db_use(db_before, hub.db_counters().await);
    Ok((sessions, stats))
}

/// Database use between two readings, when both exist.
pub(crate) fn db_use(before: Option<DbCounters>, after: Option<DbCounters>) -> Option<DbUse> {
    Some(after?.since(before?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let samples: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile(&samples, 0.5), 51.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn clients_split_evenly_over_replicas() {
        let urls = vec!["http://a/mcp".to_string(), "http://b/mcp".to_string()];
        let picked: Vec<&str> = (0..5).map(|i| replica_url(&urls, i)).collect();
        assert_eq!(
            picked,
            [
                "http://a/mcp",
                "http://b/mcp",
                "http://a/mcp",
                "http://b/mcp",
                "http://a/mcp"
            ]
        );
        let one = vec!["http://a/mcp".to_string()];
        assert!((0..3).all(|i| replica_url(&one, i) == "http://a/mcp"));
    }

    #[test]
    fn database_cost_per_call() {
        let mut stats = PhaseStats::from_latencies("x", 2, vec![1000; 100], 200, 0, 1.0, None);
        assert_eq!(stats.statements_per_call(), None);
        let before = DbCounters {
            statements: Some(1000),
            transactions: 50,
        };
        let after = DbCounters {
            statements: Some(1600),
            transactions: 250,
        };
        stats.db = db_use(Some(before), Some(after));
        assert_eq!(stats.statements_per_call(), Some(3.0));
        assert_eq!(stats.transactions_per_call(), Some(1.0));
        stats.db = db_use(None, Some(after));
        assert_eq!(stats.transactions_per_call(), None);
    }

    #[test]
    fn writer_figures_per_call_and_per_core() {
        let writer = Some(WriterUse { cpu_seconds: 0.5 });
        let stats = PhaseStats::from_latencies("x", 4, vec![1000; 5000], 10_000, 0, 2.0, writer);
        assert_eq!(stats.writer_us_per_call(), Some(50.0));
        assert_eq!(stats.writer_percent_of_core(), Some(25.0));
        assert_eq!(stats.calls_per_sec(), 5000.0);
    }
}
