//! `hubctl bench ping`: JSON-RPC `ping` over the benchmark sessions — what the MCP transport
//! (HTTP, session lookup, JSON-RPC framing, the client) costs without any tool or store work.
//! Also home of [`measure_against_ping`], which every tool scenario uses to put its
//! throughput next to the ping ceiling of the same run.

use std::sync::Arc;

use super::bench::{LoadArgs, for_each_hub};
use super::bench_report::{RunReport, print_runs};
use super::bench_runner::{
    CallFuture, HubTarget, Op, Session, close_sessions, connect_sessions, run_phase,
};

pub(crate) struct Ping;

impl Op for Ping {
    fn label(&self) -> &'static str {
        "ping"
    }

    fn call<'a>(&'a self, session: &'a mut Session) -> CallFuture<'a> {
        Box::pin(async move { session.client.ping().await.map(|()| true) })
    }
}

/// Runs a ping phase of `ping_seconds` (skipped when 0), then each op for `seconds`, all on
/// the same sessions; returns the sessions and the run's report.
pub(crate) async fn measure_against_ping(
    hub: &HubTarget,
    mut sessions: Vec<Session>,
    ping_seconds: u64,
    ops: Vec<Arc<dyn Op>>,
    seconds: u64,
) -> anyhow::Result<(Vec<Session>, RunReport)> {
    let mut report = RunReport {
        hub: hub.label.clone(),
        ping: None,
        phases: Vec::with_capacity(ops.len()),
        writer_note: hub.writer.note().map(str::to_string),
        db_note: hub.db.as_ref().and_then(|db| db.note()).map(str::to_string),
    };
    if ping_seconds > 0 {
        let (back, stats) = run_phase(hub, sessions, Arc::new(Ping), ping_seconds).await?;
        sessions = back;
        report.ping = Some(stats);
    }
    for op in ops {
        let (back, stats) = run_phase(hub, sessions, op, seconds).await?;
        sessions = back;
        report.phases.push(stats);
    }
    Ok((sessions, report))
}

pub async fn run(load: LoadArgs) -> anyhow::Result<()> {
    load.validate()?;
    let load = &load;
    let runs = for_each_hub(&load.hub, |hub| async move {
        let prefix = format!("bench-{}-ping", std::process::id());
        let sessions = connect_sessions(&hub.urls, load.clients, &prefix).await?;
        let (sessions, report) =
            measure_against_ping(&hub, sessions, load.seconds, Vec::new(), 0).await?;
        close_sessions(sessions).await;
        Ok(report)
    })
    .await?;
    print_runs("ping", &runs, load.json);
    Ok(())
}
