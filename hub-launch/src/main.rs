//! `hub-launch`: starts Claude Code or Codex as a hub agent in a role. It detects the working
//! directory's runtime profile, registers the agent on the hub (the operator's grant for the
//! orchestrator role comes from `MCP_HUB_ADMIN_TOKEN` in the launcher's environment), then
//! runs the CLI non-interactively with the composed prompt on stdin and the agent's token in
//! its environment only. The CLI's exit status is the launcher's; signals reach the CLI.

mod backend;
mod launch;
mod profile;
mod prompt;

use std::process::ExitCode;

use clap::Parser;
use hub_server::agent_files::LaunchRole;
use hub_server::tools::surface::Profile;

use crate::backend::Backend;
use crate::profile::RuntimeMode;
use crate::prompt::Onboarding;

/// Start a Claude or Codex agent wired to the Agent Hub in a role (orchestrator, reviewer,
/// assistant). The runtime profile (repo or isolated) is detected from the current directory
/// and sent with the registration; the prompt (onboarding + launcher contract + role prompt)
/// goes to the CLI's stdin; the token only to its environment (AGENT_HUB_TOKEN).
///
/// Environment: MCP_HUB_ADMIN_TOKEN (the operator's secret, grants the orchestrator role; not
/// passed on), AGENT_HUB_TOKEN (an existing agent id's token, to relaunch it), CODEX_MODEL /
/// CLAUDE_MODEL (add --model).
#[derive(Debug, Parser)]
#[command(name = "hub-launch", version)]
pub struct Args {
    /// Role to play: orchestrator, reviewer, assistant (executor and helper are aliases).
    #[arg(long, env = "HUB_ROLE", default_value = "assistant", value_parser = parse_role)]
    pub role: LaunchRole,
    /// Agent CLI to start.
    #[arg(long, env = "HUB_BACKEND", value_enum, default_value = "codex")]
    pub backend: Backend,
    /// Hub MCP endpoint.
    #[arg(
        long,
        env = "HUB_ENDPOINT",
        default_value = "http://localhost:3000/mcp"
    )]
    pub endpoint: String,
    /// Agent id [default: <role>-<backend>-<unix seconds>].
    #[arg(long, env = "HUB_AGENT_ID")]
    pub agent_id: Option<String>,
    /// Agent display name [default: "<Role> <Backend>"].
    #[arg(long, env = "HUB_AGENT_NAME")]
    pub agent_name: Option<String>,
    /// Namespace for every task operation.
    #[arg(long, env = "HUB_NAMESPACE")]
    pub namespace: Option<String>,
    /// Onboarding the agent fetches with get_onboarding (none: skip).
    #[arg(long, env = "HUB_ONBOARDING", value_enum, default_value = "compact")]
    pub onboarding: Onboarding,
    /// Registration lifecycle (ephemeral for short-lived workers).
    #[arg(long, env = "HUB_LIFECYCLE", value_enum, default_value = "persistent")]
    pub lifecycle: Lifecycle,
    /// Force the runtime mode instead of detecting it (detection yields repo or isolated).
    #[arg(long, env = "HUB_RUNTIME_MODE", value_parser = profile::parse_mode)]
    pub runtime_mode: Option<RuntimeMode>,
    /// Shortcut for --runtime-mode repo.
    #[arg(long, conflicts_with_all = ["runtime_mode", "isolated_runtime"])]
    pub repo_runtime: bool,
    /// Shortcut for --runtime-mode isolated.
    #[arg(long, conflicts_with = "runtime_mode")]
    pub isolated_runtime: bool,
    /// Extra note line in the prompt.
    #[arg(long, env = "HUB_NOTE")]
    pub note: Option<String>,
    /// Tool profile the CLI connects with (worker, orchestrator, observer, full); default:
    /// the role's (assistant: worker; orchestrator, reviewer: orchestrator). Set it when the
    /// note tells the agent to use tools beyond the role's profile.
    #[arg(long, env = "HUB_TOOLS", value_parser = parse_tools)]
    pub tools: Option<Profile>,
    /// Print the command, the environment names it would pass and the prompt; start nothing.
    #[arg(long, env = "HUB_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lifecycle {
    Persistent,
    Ephemeral,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Persistent => "persistent",
            Lifecycle::Ephemeral => "ephemeral",
        }
    }
}

fn parse_tools(text: &str) -> Result<Profile, String> {
    Profile::parse(text).ok_or_else(|| {
        format!("Unsupported tool profile {text:?}: worker, orchestrator, observer or full")
    })
}

fn parse_role(text: &str) -> Result<LaunchRole, String> {
    LaunchRole::parse(text).ok_or_else(|| {
        format!("Unsupported role {text:?}: orchestrator, reviewer or assistant (executor, helper)")
    })
}

impl Args {
    pub fn forced_mode(&self) -> Option<RuntimeMode> {
        if self.repo_runtime {
            Some(RuntimeMode::Repo)
        } else if self.isolated_runtime {
            Some(RuntimeMode::Isolated)
        } else {
            self.runtime_mode
        }
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            // Help and version are not failures; every bad flag or value exits 1 (spec §11.1).
            return if error.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hub-launch: starting the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(launch::run(args)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hub-launch: {error:#}");
            ExitCode::from(1)
        }
    }
}
