//! `hubctl bench messages`: send_message, then read_messages in nano mode (cursor pages of 20,
//! `polling: true`) on the same sessions, each client its own agent, after a ping phase.

use std::sync::Arc;

use serde_json::json;

use super::bench::{ToolArgs, for_each_hub};
use super::bench_ping::measure_against_ping;
use super::bench_report::print_runs;
use super::bench_runner::{CallFuture, Op, Session, close_sessions, connect_sessions};

const PAYLOAD: &str = "status update: parsed 42 files, 3 warnings, next step is the \
                       integration suite; evidence in context key build-report. ";

/// A direct message (~190 chars, with token) to the next session's agent.
pub(crate) struct SendMessage;

impl Op for SendMessage {
    fn label(&self) -> &'static str {
        "send_message"
    }

    fn call<'a>(&'a self, session: &'a mut Session) -> CallFuture<'a> {
        Box::pin(async move {
            let reply = session
                .client
                .call_tool(
                    "send_message",
                    json!({"from_agent": session.agent, "to_agent": session.peer,
                           "content": PAYLOAD, "auth_token": session.token}),
                )
                .await?;
            Ok(reply.succeeded())
        })
    }
}

/// One page of up to 20 inbox messages in nano mode.
pub(crate) struct ReadMessagesNano;

impl Op for ReadMessagesNano {
    fn label(&self) -> &'static str {
        "read_messages (nano)"
    }

    fn call<'a>(&'a self, session: &'a mut Session) -> CallFuture<'a> {
        Box::pin(async move {
            let reply = session
                .client
                .call_tool(
                    "read_messages",
                    json!({"agent_id": session.agent, "cursor": session.cursor, "limit": 20,
                           "response_mode": "nano", "polling": true,
                           "auth_token": session.token}),
                )
                .await?;
            // Page through the inbox; at its end start again from the beginning, so every
            // call returns a page of up to 20 messages.
            session.cursor = match (reply.json["h"].as_u64(), reply.json["n"].as_str()) {
                (Some(1), Some(next)) => next.to_string(),
                _ => "0".to_string(),
            };
            Ok(reply.succeeded())
        })
    }
}

pub async fn run(args: ToolArgs) -> anyhow::Result<()> {
    let (load, ping_seconds) = (&args.load, args.ping_seconds);
    load.validate()?;
    let runs = for_each_hub(&load.hub, |hub| async move {
        let prefix = format!("bench-{}-msg", std::process::id());
        let sessions = connect_sessions(&hub.urls, load.clients, &prefix).await?;
        let ops: Vec<Arc<dyn Op>> = vec![Arc::new(SendMessage), Arc::new(ReadMessagesNano)];
        let (sessions, report) =
            measure_against_ping(&hub, sessions, ping_seconds, ops, load.seconds).await?;
        close_sessions(sessions).await;
        Ok(report)
    })
    .await?;
    print_runs("messages", &runs, load.json);
    Ok(())
}
