//! `hubctl bench suite`: the whole table from one command, on one set of sessions per hub —
//! ping (for --seconds), send_message, create_task, read_messages (nano, polling) and
//! poll_and_claim + release cycles, each with its share of ping and the writer's CPU.

use std::sync::Arc;

use super::bench::{LoadArgs, for_each_hub};
use super::bench_claims::{ClaimCycle, CreateTask, seed_tasks};
use super::bench_messages::{ReadMessagesNano, SendMessage};
use super::bench_ping::measure_against_ping;
use super::bench_report::print_runs;
use super::bench_runner::{Op, close_sessions, connect_sessions};

pub async fn run(load: LoadArgs) -> anyhow::Result<()> {
    let load = &load;
    load.validate()?;
    let runs = for_each_hub(&load.hub, |hub| async move {
        let prefix = format!("bench-{}-suite", std::process::id());
        let mut sessions = connect_sessions(&hub.urls, load.clients, &prefix).await?;
        // The claim phase needs a task per worker even if the create_task phase made none.
        seed_tasks(&mut sessions[0], load.clients).await?;
        let ops: Vec<Arc<dyn Op>> = vec![
            Arc::new(SendMessage),
            Arc::new(CreateTask),
            Arc::new(ReadMessagesNano),
            Arc::new(ClaimCycle),
        ];
        let (sessions, report) =
            measure_against_ping(&hub, sessions, load.seconds, ops, load.seconds).await?;
        close_sessions(sessions).await;
        Ok(report)
    })
    .await?;
    print_runs("suite", &runs, load.json);
    Ok(())
}
