//! `hubctl bench tokens`: what the MCP surface costs an agent in bytes (≈ tokens / 4) —
//! `tools/list` in full and per tool profile, the largest tool, `register_agent` replies per
//! onboarding mode and a few nano replies. Byte counts are deterministic, so they are
//! measured once on a temporary hub (or `--endpoint`), not timed.

use anyhow::Context;
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use super::bench::{Sync, start_temp_hub};
use crate::client::McpClient;

#[derive(Debug, Clone, Args)]
pub(crate) struct TokensArgs {
    /// Measure this running hub (e.g. http://localhost:3000/mcp) instead of a temporary one.
    #[arg(long)]
    endpoint: Option<String>,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

const PROFILES: [&str; 4] = ["full", "worker", "orchestrator", "observer"];

/// One measured figure: what, bytes, and a note (tool counts, the largest tool).
struct Figure {
    what: String,
    bytes: usize,
    note: String,
}

fn bytes_of(value: &Value) -> usize {
    value.to_string().len()
}

pub(crate) async fn run(args: TokensArgs) -> anyhow::Result<()> {
    let temp = match &args.endpoint {
        Some(_) => None,
        None => Some(start_temp_hub(Sync::Normal).await?),
    };
    let url = match (&args.endpoint, &temp) {
        (Some(endpoint), _) => endpoint.clone(),
        (None, Some(temp)) => temp.mcp_url(),
        (None, None) => unreachable!("a temporary hub was started"),
    };
    let figures = measure(&url).await;
    if let Some(temp) = temp {
        temp.shutdown().await;
    }
    let figures = figures?;
    if args.json {
        let rows: Vec<Value> = figures
            .iter()
            .map(|f| json!({"what": f.what, "bytes": f.bytes, "note": f.note}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["what", "bytes", "≈ tokens", "note"]);
        for f in &figures {
            table.add_row([
                f.what.clone(),
                f.bytes.to_string(),
                (f.bytes / 4).to_string(),
                f.note.clone(),
            ]);
        }
        println!("{table}");
    }
    Ok(())
}

async fn measure(url: &str) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let separator = if url.contains('?') { '&' } else { '?' };
    for profile in PROFILES {
        let mut client = McpClient::connect(
            &format!("{url}{separator}tools={profile}"),
            "hubctl-bench-tokens",
        )
        .await?;
        let tools = client.list_tools().await?;
        client.close().await;
        let total = bytes_of(&Value::Array(tools.clone()));
        let largest = tools
            .iter()
            .max_by_key(|tool| bytes_of(tool))
            .context("tools/list is empty")?;
        figures.push(Figure {
            what: format!("tools/list {profile}"),
            bytes: total,
            note: format!(
                "{} tools, {} B/tool, largest {} {} B",
                tools.len(),
                total / tools.len(),
                largest["name"].as_str().unwrap_or("?"),
                bytes_of(largest)
            ),
        });
    }

    let mut client = McpClient::connect(url, "hubctl-bench-tokens").await?;
    for mode in ["none", "compact"] {
        let agent = format!("bench-tokens-{mode}");
        let reply = client
            .call_tool(
                "register_agent",
                json!({"id": agent, "name": agent, "type": "bench", "onboarding_mode": mode}),
            )
            .await?;
        anyhow::ensure!(reply.succeeded(), "register_agent failed: {}", reply.json);
        figures.push(Figure {
            what: format!("register_agent onboarding {mode}"),
            bytes: bytes_of(&reply.json),
            note: String::new(),
        });
    }
    // Nano replies over the same data: five 40-character messages, five tasks.
    let token = client
        .call_tool(
            "register_agent",
            json!({"id": "bench-nano", "name": "n", "type": "bench", "onboarding_mode": "none"}),
        )
        .await?
        .json["auth"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for i in 0..5 {
        let content = format!("status update {i}: tests pass, see ctx:k{i}");
        client
            .call_tool(
                "send_message",
                json!({"from_agent": "bench-nano", "to_agent": "bench-nano", "content": content,
                       "auth_token": token}),
            )
            .await?;
        client
            .call_tool(
                "create_task",
                json!({"title": format!("task {i}"), "created_by": "bench-nano",
                       "auth_token": token}),
            )
            .await?;
    }
    for (tool, arguments) in [
        (
            "read_messages",
            json!({"agent_id": "bench-nano", "response_mode": "nano", "auth_token": token}),
        ),
        (
            "list_tasks",
            json!({"agent_id": "bench-nano", "response_mode": "nano", "auth_token": token}),
        ),
        (
            "read_snapshot",
            json!({"agent_id": "bench-nano", "response_mode": "nano", "auth_token": token}),
        ),
    ] {
        let reply = client.call_tool(tool, arguments).await?;
        anyhow::ensure!(reply.succeeded(), "{tool} failed: {}", reply.json);
        figures.push(Figure {
            what: format!("{tool} nano"),
            bytes: bytes_of(&reply.json),
            note: "5 messages, 5 tasks".into(),
        });
    }
    client.close().await;
    Ok(figures)
}
