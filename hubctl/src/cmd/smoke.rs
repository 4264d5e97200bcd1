//! `hubctl smoke`: initialize + tools/list against the instance with a real MCP client.
//! Checks that the running build speaks MCP; the usual fix when it fails is build + restart.

use std::process::ExitCode;

use crate::client::McpClient;
use crate::instance::Instance;

/// Tools every hub build serves; their absence means a wrong or outdated server.
const CORE_TOOLS: [&str; 3] = ["register_agent", "send_message", "read_messages"];
/// Fewer tools than this means an outdated or foreign server (spec http-config-cli §9.2).
const MIN_TOOLS: usize = 10;

fn fail(reason: &str) -> ExitCode {
    eprintln!("Smoke test failed: {reason}");
    eprintln!(
        "Advice: check `hubctl status`; an outdated or crashed hub is the usual cause: rebuild \
         (`cargo build --release -p hubctl`), then `hubctl restart` and run `hubctl smoke` again."
    );
    ExitCode::FAILURE
}

pub async fn run(instance: &Instance) -> anyhow::Result<ExitCode> {
    let url = instance.mcp_url();
    let mut client = match McpClient::connect(&url, "hub-smoke").await {
        Ok(client) => client,
        Err(error) => {
            return Ok(fail(&format!(
                "initialize request could not complete: {error:#}"
            )));
        }
    };
    let session = client.session_id().unwrap_or_default().to_string();
    let tools = client.list_tools().await;
    client.close().await;
    let tools = match tools {
        Ok(tools) => tools,
        Err(error) => return Ok(fail(&format!("tools/list failed: {error:#}"))),
    };
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    let missing: Vec<&str> = CORE_TOOLS
        .iter()
        .copied()
        .filter(|core| !names.contains(core))
        .collect();
    if !missing.is_empty() {
        return Ok(fail(&format!(
            "expected the core tools, missing {}; got {} tools",
            missing.join(", "),
            names.len()
        )));
    }
    if names.len() < MIN_TOOLS {
        return Ok(fail(&format!(
            "expected >={MIN_TOOLS} tools, got {}",
            names.len()
        )));
    }
    println!("Smoke test passed: session={session} tools={}", names.len());
    Ok(ExitCode::SUCCESS)
}
