//! `hub-server`: parse configuration, bind, serve until SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use hub_server::clock::SystemClock;
use hub_server::config::{Config, EnvLayers, VARIABLES};

fn variables_help() -> String {
    let mut text = String::from(
        "Configuration comes from MCP_HUB_* environment variables (flags override them):\n\n",
    );
    for (name, meaning) in VARIABLES {
        text.push_str(&format!("  {name:<44} {meaning}\n"));
    }
    text.push_str(
        "\nA value that does not parse, or is not one of the allowed values, stops the server \
         with an error naming the variable.",
    );
    text
}

/// Agent Hub: the MCP server AI coding agents coordinate through (Streamable HTTP on /mcp).
#[derive(Debug, Parser)]
#[command(name = "hub-server", version, after_long_help = variables_help(), after_help = "Run with --help for every MCP_HUB_* variable.")]
struct Args {
    /// Listen address (MCP_HUB_HOST, default 127.0.0.1).
    #[arg(long)]
    host: Option<String>,
    /// Listen port (MCP_HUB_PORT, default 3000).
    #[arg(long)]
    port: Option<u16>,
    /// Data directory holding hub.db (MCP_HUB_DATA, default ~/.mcp-hub).
    #[arg(long)]
    data: Option<String>,
    /// SQLite database file (MCP_HUB_DB, default <data>/hub.db).
    #[arg(long)]
    db: Option<String>,
}

fn load_config(args: &Args) -> Result<(Config, Vec<String>), String> {
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    let flags = [
        ("MCP_HUB_HOST", args.host.clone()),
        ("MCP_HUB_PORT", args.port.map(|p| p.to_string())),
        ("MCP_HUB_DATA", args.data.clone()),
        ("MCP_HUB_DB", args.db.clone()),
    ];
    for (name, value) in flags {
        if let Some(value) = value {
            env.push((name.to_string(), value));
        }
    }
    let layers = EnvLayers::resolve(env, None, None)?;
    let config = Config::from_env(&layers).map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("invalid configuration: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok((config, layers.loaded_files))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rmcp=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (config, env_files) = match load_config(&args) {
        Ok(loaded) => loaded,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let listeners = match hub_server::bind(&config).await {
        Ok(listeners) => listeners,
        Err(error) => {
            eprintln!("hub-server: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let summary = format!(
        "auth_mode={} unknown_session_policy={} session_idle_timeout_ms={} db={} db_sync={}",
        config.auth_mode.as_str(),
        config.unknown_session_policy.as_str(),
        config
            .session_idle_timeout
            .map(|t| t.as_millis().to_string())
            .unwrap_or_else(|| "disabled".into()),
        config.db_path.display(),
        config.db_sync.as_str(),
    );
    let handle = match hub_server::start(config, listeners, Arc::new(SystemClock)).await {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("hub-server: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    for file in &env_files {
        println!("env config {file}");
    }
    for address in &handle.addresses {
        println!("Agent Hub listening on http://{address}/mcp {summary}");
    }
    shutdown_signal().await;
    println!("Agent Hub shutting down");
    handle.shutdown().await;
    ExitCode::SUCCESS
}
