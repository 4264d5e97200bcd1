//! `hub-launch`: detects the working directory's runtime profile and starts claude or codex
//! connected to the hub with a role prompt. This slice defines the command line; launching
//! lands with the launcher issue.

use std::process::ExitCode;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Role {
    Assistant,
    Reviewer,
    Orchestrator,
    #[value(name = "executor")]
    Executor,
    #[value(name = "helper")]
    Helper,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Backend {
    Codex,
    Claude,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Onboarding {
    Full,
    Compact,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Lifecycle {
    Persistent,
    Ephemeral,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RuntimeMode {
    Repo,
    Isolated,
    Unknown,
}

/// Start a Claude or Codex agent wired to the Agent Hub in a role (orchestrator, reviewer,
/// assistant). The runtime profile (repo or isolated) is detected from the current directory
/// and sent with register_agent; the prompt combines the hub onboarding and the role prompt.
#[derive(Debug, Parser)]
#[command(name = "hub-launch", version)]
struct Args {
    /// Role to play (executor and helper are aliases of assistant).
    #[arg(long, value_enum, default_value = "assistant")]
    role: Role,
    /// Agent CLI to start.
    #[arg(long, value_enum, default_value = "codex")]
    backend: Backend,
    /// Hub MCP endpoint.
    #[arg(
        long,
        env = "HUB_ENDPOINT",
        default_value = "http://localhost:3000/mcp"
    )]
    endpoint: String,
    /// Agent id (default <role>-<backend>-<unix seconds>).
    #[arg(long)]
    agent_id: Option<String>,
    /// Agent display name (default "<Role> <Backend>").
    #[arg(long)]
    agent_name: Option<String>,
    /// Namespace to use for every task operation.
    #[arg(long)]
    namespace: Option<String>,
    /// Onboarding detail requested at registration.
    #[arg(long, value_enum, default_value = "compact")]
    onboarding: Onboarding,
    /// Agent lifecycle (ephemeral for short-lived workers).
    #[arg(long, value_enum, default_value = "persistent")]
    lifecycle: Lifecycle,
    /// Force the runtime mode instead of detecting it.
    #[arg(long, value_enum)]
    runtime_mode: Option<RuntimeMode>,
    /// Shortcut for --runtime-mode repo.
    #[arg(long, conflicts_with_all = ["runtime_mode", "isolated_runtime"])]
    repo_runtime: bool,
    /// Shortcut for --runtime-mode isolated.
    #[arg(long, conflicts_with = "runtime_mode")]
    isolated_runtime: bool,
    /// Extra note appended to the prompt.
    #[arg(long)]
    note: Option<String>,
    /// Print the composed prompt and exit.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    eprintln!(
        "hub-launch: launching {:?} as {:?} against {} is not implemented in this build yet; \
         see --help for the planned interface",
        args.backend, args.role, args.endpoint
    );
    ExitCode::from(2)
}
