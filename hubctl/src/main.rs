//! `hubctl`: the operator CLI of the Agent Hub (replaces the older hub.sh and scripts/*.sh).

mod cmd;
mod instance;
mod process;
mod term;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
// The client lives in the library so hub-launch can share it.
use hubctl::client;

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
    /// Drive the hub as a Docker container (image MCP_HUB_IMAGE, default mcp-agent-hub)
    /// instead of a native background process.
    #[arg(long, global = true)]
    docker: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the release binaries (native) or the image (--docker).
    Build,
    /// Start the hub in the background; returns once /health answers.
    Start,
    /// Stop the hub (SIGTERM, then SIGKILL after 10 s).
    Stop,
    /// Stop, then start: applies configuration changes.
    Restart,
    /// Show profile, auth mode, process, port, uptime and health; non-zero when the hub is down.
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
    /// Stop the hub and delete its data dir, after confirmation ("no" changes nothing).
    Clean {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Run the project's test suite: cargo test --workspace, the integration tests again on
    /// PostgreSQL (HUB_TEST_BACKEND=postgres), then interop/run.sh, in the
    /// checkout (with --docker: cargo test in the <image>-dev build image). Arguments after
    /// `--` go to cargo test.
    Test {
        /// Skip interop/run.sh (the official Python MCP SDK scenario).
        #[arg(long)]
        skip_interop: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Write the N-hour pool report (JSON + Markdown), read-only on the database.
    #[command(alias = "pool-report")]
    Report(cmd::report::ReportArgs),
    /// Sample a hub's database at intervals into JSONL plus a summary, with a live table.
    #[command(alias = "observe-hub")]
    Observe(cmd::observe::ObserveArgs),
    /// Load a hub with concurrent MCP clients and report calls/s, p50/p99 latency, the share
    /// of JSON-RPC ping throughput on the same sessions and the writer thread's CPU per call.
    ///
    /// Without --endpoint, each run starts a temporary hub in this process (fresh data dir,
    /// rate limit off) once per --sync mode. Example: hubctl bench suite --sync full
    Bench(cmd::bench::BenchArgs),
    /// KPI round: the same worker handoff as plain context/messages (baseline) and as
    /// hash-addressed blobs, then chars, token estimates, hash checks, done rate and latency
    /// of each in <OUT_DIR>/exp5-kpi.json.
    KpiRound(cmd::kpi_round::KpiArgs),
    /// Wait-mode A/B: bytes and latency of a wait_for_updates that wakes on a message, per
    /// response mode (default/tiny/micro/nano).
    WaitModeAb(cmd::wait_mode_ab::WaitAbArgs),
    /// Consensus A/B: the same votes resolved inline and by votes-blob hash; chars, tokens,
    /// latency and outcome agreement. Run under observe/warn: enforce refuses votes cast in
    /// other agents' names.
    ConsensusAbRound(cmd::consensus_ab::ConsensusAbArgs),
    /// Smart-swarm round: real claude/codex workers started through hub-launch, each
    /// completing its own task; backend preflight and fallback, per-worker timeout, snapshot
    /// sizes and token estimates.
    SmartSwarmRound(cmd::smart_swarm::SwarmArgs),
    /// Run the hub in the foreground (what `start` launches).
    #[command(hide = true)]
    Serve,
}

/// Native builds run cargo in the checkout that holds this hubctl.
fn cargo_build(root: &std::path::Path) -> anyhow::Result<ExitCode> {
    println!("Building release binaries in {}...", root.display());
    let status = std::process::Command::new("cargo")
        .args([
            "build",
            "--release",
            "-p",
            "hub-server",
            "-p",
            "hubctl",
            "-p",
            "hub-launch",
        ])
        .current_dir(root)
        .status()?;
    Ok(if status.success() {
        println!("Binaries: {}", root.join("target/release").display());
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// README's test commands in the checkout: `cargo test --workspace`, the integration tests
/// on PostgreSQL, then (unless skipped) `interop/run.sh`; the first failing status is ours.
fn project_tests(
    root: &std::path::Path,
    args: &[String],
    skip_interop: bool,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        root.join("Cargo.toml").is_file(),
        "no source checkout at {} (hubctl test runs the suite there)",
        root.display()
    );
    println!("Running cargo test --workspace in {}...", root.display());
    let status = std::process::Command::new("cargo")
        .args(["test", "--workspace"])
        .args(args)
        .current_dir(root)
        .status()?;
    if !status.success() {
        return Ok(exit_code(status));
    }
    println!("Running the integration tests on PostgreSQL (HUB_TEST_BACKEND=postgres)...");
    let status = std::process::Command::new("cargo")
        .args(["test", "-p", "hub-server", "--test", "it"])
        .args(args)
        .env("HUB_TEST_BACKEND", "postgres")
        .current_dir(root)
        .status()?;
    if !status.success() || skip_interop {
        return Ok(exit_code(status));
    }
    println!("Running interop/run.sh...");
    let status = std::process::Command::new(root.join("interop/run.sh"))
        .current_dir(root)
        .status()?;
    Ok(exit_code(status))
}

/// A child's exit status as ours (1 when it was killed by a signal).
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let instance = || Instance::resolve(&cli.instance);
    let docker = cli.docker;
    match cli.command {
        Command::Bench(args) => cmd::bench::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Serve => cmd::serve::run().await.map(|()| ExitCode::SUCCESS),
        Command::KpiRound(args) => cmd::kpi_round::run(args).await,
        Command::WaitModeAb(args) => cmd::wait_mode_ab::run(args).await,
        Command::ConsensusAbRound(args) => cmd::consensus_ab::run(args).await,
        Command::SmartSwarmRound(args) => cmd::smart_swarm::run(args).await,
        Command::Build if docker => cmd::docker::build(&instance()?, &instance::install_root()),
        Command::Build => cargo_build(&instance::install_root()),
        Command::Start if docker => cmd::docker::start(&instance()?).await,
        Command::Start => cmd::start::run(&instance()?).await,
        Command::Stop if docker => cmd::docker::stop(&instance()?),
        Command::Stop => cmd::stop::run(&instance()?),
        Command::Restart => {
            let instance = instance()?;
            if docker {
                cmd::docker::stop(&instance)?;
                cmd::docker::start(&instance).await
            } else {
                cmd::stop::run(&instance)?;
                cmd::start::run(&instance).await
            }
        }
        Command::Status { .. } if docker => cmd::docker::status(&instance()?).await,
        Command::Status { json } => cmd::status::run(&instance()?, json).await,
        Command::Smoke => cmd::smoke::run(&instance()?).await,
        Command::Logs { follow } if docker => cmd::docker::logs(&instance()?, follow),
        Command::Logs { follow } => cmd::logs::run(&instance()?, follow).await,
        // A prompt of blocking store reads: off the async workers.
        Command::Db { builtin } => {
            tokio::task::block_in_place(|| cmd::db::run(&instance()?, builtin))
        }
        Command::Clean { yes } => cmd::clean::run(&instance()?, yes, docker),
        Command::Test { args, .. } if docker => cmd::docker::test(&instance()?, &args),
        Command::Test { args, skip_interop } => {
            project_tests(&instance::install_root(), &args, skip_interop)
        }
        Command::Report(args) => cmd::report::run(&instance()?, args).await,
        Command::Observe(args) => cmd::observe::run(&instance()?, args).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors (an unknown command, a value outside a variable's set such as
    // USE_AUTH_TOKEN=maybe) exit 1 as the older scripts did, not clap's 2.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The hub (serve, or the in-process hubs of bench) logs like hub-server; other
    // commands only surface warnings. RUST_LOG overrides both.
    let default_filter = if matches!(cli.command, Command::Serve) {
        "info,rmcp=warn"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match dispatch(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hubctl: {error:#}");
            ExitCode::FAILURE
        }
    }
}
