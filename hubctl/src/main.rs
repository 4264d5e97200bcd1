//! `hubctl`: the operator CLI of the Agent Hub (replaces the older hub.sh and scripts/*.sh).

mod client;
mod cmd;
mod instance;
mod process;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::instance::{Instance, InstanceArgs};

/// Run, inspect and benchmark an Agent Hub.
///
/// An instance is a data dir (hub.db, hub.pid, hub.log) plus a port. Settings come from, highest
/// first: MCP_HUB_* in the environment (and --port/--data/--name), the local overlay
/// (MCP_HUB_LOCAL_ENV_FILE or deploy/hub.local.env), the base profile (MCP_HUB_ENV_FILE or
/// deploy/hub.production.env), built-in defaults. The hub listens on 127.0.0.1; add
/// interfaces with MCP_HUB_EXTRA_BIND_HOSTS in the local overlay. A second hub (canary) runs
/// beside the first with its own --port, --data and --name.
#[derive(Debug, Parser)]
#[command(name = "hubctl", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the hub in the background; returns once /health answers.
    Start,
    /// Stop the hub (SIGTERM, then SIGKILL after 10 s).
    Stop,
    /// Stop, then start: applies configuration changes.
    Restart,
    /// Show process, port, uptime and health; exits non-zero when the hub is down.
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check that the running hub speaks MCP: initialize + tools/list.
    Smoke,
    /// Print the hub log.
    Logs {
        /// Keep printing new lines as they are written.
        #[arg(short, long)]
        follow: bool,
    },
    /// Open an SQL shell on the database (sqlite3 if installed, else a read-only prompt).
    Db {
        /// Use the built-in read-only prompt even when sqlite3 is installed.
        #[arg(long)]
        builtin: bool,
    },
    /// Stop the hub and delete its data dir after confirmation.
    Clean {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Load a hub with concurrent MCP clients and report calls/s and p50/p99 latency per tool.
    ///
    /// Without --endpoint, each run starts a temporary hub in this process (fresh data dir,
    /// rate limit off) once per --sync mode. Example: hubctl bench messages --clients 16
    Bench(cmd::bench::BenchArgs),
    /// Run the hub in the foreground (what `start` launches).
    #[command(hide = true)]
    Serve,
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let instance = || Instance::resolve(&cli.instance);
    match cli.command {
        Command::Bench(args) => cmd::bench::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Serve => cmd::serve::run().await.map(|()| ExitCode::SUCCESS),
        Command::Start => cmd::start::run(&instance()?).await,
        Command::Stop => cmd::stop::run(&instance()?),
        Command::Restart => {
            let instance = instance()?;
            cmd::stop::run(&instance)?;
            cmd::start::run(&instance).await
        }
        Command::Status { json } => cmd::status::run(&instance()?, json).await,
        Command::Smoke => cmd::smoke::run(&instance()?).await,
        Command::Logs { follow } => cmd::logs::run(&instance()?, follow).await,
        Command::Db { builtin } => cmd::db::run(&instance()?, builtin),
        Command::Clean { yes } => cmd::clean::run(&instance()?, yes),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hubctl: {error:#}");
            ExitCode::FAILURE
        }
    }
}
