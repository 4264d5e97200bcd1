//! `hubctl bench claims`: the task board under load. Seeds --pending tasks through
//! create_task, then, after a ping phase, workers loop poll_and_claim → release_task_claim
//! (next_status pending), which puts the task back so the queue keeps its size. Also the
//! create_task op the suite measures.

use std::sync::Arc;

use anyhow::bail;
use serde_json::json;

use super::bench::{ClaimsArgs, for_each_hub};
use super::bench_ping::measure_against_ping;
use super::bench_report::print_runs;
use super::bench_runner::{
    CallFuture, Op, Session, close_sessions, connect_sessions, progress_bar,
};

/// A pending task created by the session's agent.
pub(crate) struct CreateTask;

impl Op for CreateTask {
    fn label(&self) -> &'static str {
        "create_task"
    }

    fn call<'a>(&'a self, session: &'a mut Session) -> CallFuture<'a> {
        Box::pin(async move {
            let reply = session
                .client
                .call_tool(
                    "create_task",
                    json!({"title": format!("bench task by {}", session.agent),
                           "created_by": session.agent, "auth_token": session.token}),
                )
                .await?;
            Ok(reply.succeeded())
        })
    }
}

/// poll_and_claim, then release_task_claim back to pending: two MCP requests per op.
pub(crate) struct ClaimCycle;

impl Op for ClaimCycle {
    fn label(&self) -> &'static str {
        "poll_and_claim + release"
    }

    fn calls_per_op(&self) -> usize {
        2
    }

    fn call<'a>(&'a self, session: &'a mut Session) -> CallFuture<'a> {
        Box::pin(async move {
            let claimed = session
                .client
                .call_tool(
                    "poll_and_claim",
                    json!({"agent_id": session.agent, "lease_seconds": 60,
                           "auth_token": session.token}),
                )
                .await?;
            let (Some(task_id), Some(claim_id)) = (
                claimed.json["task"]["id"].as_i64(),
                claimed.json["claim"]["claim_id"].as_str(),
            ) else {
                return Ok(false);
            };
            let released = session
                .client
                .call_tool(
                    "release_task_claim",
                    json!({"task_id": task_id, "agent_id": session.agent,
                           "claim_id": claim_id, "next_status": "pending",
                           "auth_token": session.token}),
                )
                .await?;
            Ok(released.succeeded())
        })
    }
}

/// Creates `count` pending tasks through create_task, one request at a time on `session`.
pub(crate) async fn seed_tasks(session: &mut Session, count: usize) -> anyhow::Result<()> {
    let progress = progress_bar(count as u64, " tasks");
    progress.set_message("seeding");
    for index in 0..count {
        if !CreateTask.call(session).await? {
            bail!("create_task failed while seeding");
        }
        if index % 500 == 0 {
            progress.set_position(index as u64);
        }
    }
    progress.finish_and_clear();
    Ok(())
}

pub async fn run(args: ClaimsArgs) -> anyhow::Result<()> {
    let (load, ping_seconds) = (&args.tool.load, args.tool.ping_seconds);
    load.validate()?;
    let mut runs = Vec::new();
    for &pending in &args.pending {
        runs.extend(
            for_each_hub(&load.hub, |mut hub| async move {
                hub.label = format!("{}, {pending} pending", hub.label);
                let prefix = format!("bench-{}-claims-{pending}", std::process::id());
                let mut sessions = connect_sessions(&hub.urls, load.clients, &prefix).await?;
                seed_tasks(&mut sessions[0], pending).await?;
                let ops: Vec<Arc<dyn Op>> = vec![Arc::new(ClaimCycle)];
                let (sessions, report) =
                    measure_against_ping(&hub, sessions, ping_seconds, ops, load.seconds).await?;
                close_sessions(sessions).await;
                Ok(report)
            })
            .await?,
        );
    }
    print_runs("claims", &runs, load.json);
    Ok(())
}
