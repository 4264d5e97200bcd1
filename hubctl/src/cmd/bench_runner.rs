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
use crate::client::McpClient;

/// A hub under load: its MCP URL, a label for the report, and its writer thread.
pub(crate) struct HubTarget {
    pub(crate) url: String,
    pub(crate) label: String,
    pub(crate) writer: WriterProbe,
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

/// Opens `count` sessions, agents `<prefix>-0 …`, each peered with the next.
pub(crate) async fn connect_sessions(
    url: &str,
    count: usize,
    prefix: &str,
) -> anyhow::Result<Vec<Session>> {
    let mut sessions = Vec::with_capacity(count);
    for index in 0..count {
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
    pub(crate) p99_ms: f64,
    pub(crate) mean_ms: f64,
    pub(crate) writer: Option<WriterUse>,
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
            p99_ms: percentile(&micros, 0.99),
            mean_ms,
            writer,
        }
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
    let stats =
        PhaseStats::from_latencies(op.label(), clients, micros, calls, errors, elapsed, writer);
    Ok((sessions, stats))
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
    fn writer_figures_per_call_and_per_core() {
        let writer = Some(WriterUse { cpu_seconds: 0.5 });
        let stats = PhaseStats::from_latencies("x", 4, vec![1000; 5000], 10_000, 0, 2.0, writer);
        assert_eq!(stats.writer_us_per_call(), Some(50.0));
        assert_eq!(stats.writer_percent_of_core(), Some(25.0));
        assert_eq!(stats.calls_per_sec(), 5000.0);
    }
}
