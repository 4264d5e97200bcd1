//! `hub-server`: parse configuration, bind, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use hub_server::config::{Config, EnvLayers};

fn variables_help() -> String {
    let mut text = String::from(
        "Configuration comes from MCP_HUB_* environment variables (flags override them):\n\n",
    );
    text.push_str(&hub_server::config::help_text());
    text.push_str(
        "\nA value that does not parse, or is not one of the allowed values, stops the server \
         with an error naming the variable; an MCP_HUB_* variable not listed here is reported \
         at startup as a warning.",
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

/// The configuration, the env files it came from and the unknown-variable warnings.
fn load_config(args: &Args) -> Result<(Config, Vec<String>, Vec<String>), String> {
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
    let (config, warnings) = Config::load(&layers)?;
    Ok((config, layers.loaded_files, warnings))
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
    let (config, env_files, warnings) = match load_config(&args) {
        Ok(loaded) => loaded,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    match hub_server::run_until_signal(config, &env_files).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hub-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}
