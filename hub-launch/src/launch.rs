//! One launch: preflight, registration on the hub, then the agent CLI as a child process
//! whose exit status becomes ours. The Claude MCP config lives in a private temp directory
//! (0700, file 0600, outside the working tree) that is removed when the child has exited.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use hub_server::agent_files::LaunchRole;
use hubctl::client::McpClient;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};

use crate::Args;
use crate::backend::{self, Backend, Invocation};
use crate::profile::{self, RuntimeProfile};
use crate::prompt::{self, PromptInput};

/// What a launch resolved from the flags and the directory.
struct Plan {
    role: LaunchRole,
    backend: Backend,
    /// The hub's endpoint, where the launcher registers.
    endpoint: String,
    /// What the CLI connects to: the endpoint with the role's tool profile.
    cli_endpoint: String,
    agent_id: String,
    agent_name: String,
    lifecycle: crate::Lifecycle,
    profile: RuntimeProfile,
    model: Option<String>,
    prompt: String,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = plan(&args)?;
    if args.dry_run {
        print_dry_run(&plan);
        return Ok(ExitCode::SUCCESS);
    }
    let program = find_on_path(plan.backend.program()).with_context(|| {
        format!(
            "Missing command: {} (not on PATH; install it, e.g. npm install -g {})",
            plan.backend.program(),
            match plan.backend {
                Backend::Codex => "@openai/codex",
                Backend::Claude => "@anthropic-ai/claude-code",
            }
        )
    })?;
    let token = register(&plan).await?;

    let config_dir = tempfile::Builder::new()
        .prefix("hub-launch-")
        .tempdir()
        .context("creating a private temp dir for the MCP config")?;
    let config_path = config_dir.path().join("mcp.json");
    if plan.backend == Backend::Claude {
        write_private(
            &config_path,
            &backend::claude_mcp_config(&plan.cli_endpoint),
        )?;
    }
    let invocation = backend::invocation(
        plan.backend,
        &plan.cli_endpoint,
        plan.model.as_deref(),
        &config_path.display().to_string(),
    );
    let code = run_child(&program, &invocation, &plan, &token).await;
    // Removed only now: the CLI reads the config for its whole life.
    drop(config_dir);
    code
}

fn plan(args: &Args) -> anyhow::Result<Plan> {
    let endpoint = args.endpoint.trim().to_string();
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        bail!("--endpoint (HUB_ENDPOINT) must be an http:// or https:// URL, got {endpoint:?}");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let role = args.role;
    let backend = args.backend;
    let agent_id = non_empty(args.agent_id.as_deref()).map_or_else(
        || format!("{}-{}-{}", role.as_str(), backend.program(), now.as_secs()),
        str::to_string,
    );
    let agent_name = non_empty(args.agent_name.as_deref()).map_or_else(
        || {
            format!(
                "{} {}",
                capitalised(role.as_str()),
                capitalised(backend.program())
            )
        },
        str::to_string,
    );
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let profile = profile::classify(
        profile::scan(&cwd),
        args.forced_mode(),
        now.as_millis() as i64,
    );
    let model = std::env::var(backend.model_env())
        .ok()
        .filter(|model| !model.trim().is_empty());
    let prompt = prompt::compose(&PromptInput {
        role,
        agent_id: &agent_id,
        endpoint: &endpoint,
        namespace: non_empty(args.namespace.as_deref()),
        onboarding: args.onboarding,
        note: non_empty(args.note.as_deref()),
        profile: &profile,
        token_env: backend::TOKEN_ENV,
    });
    Ok(Plan {
        role,
        backend,
        cli_endpoint: backend::profiled_endpoint(
            &endpoint,
            args.tools.unwrap_or_else(|| role.tool_profile()),
        ),
        endpoint,
        agent_id,
        agent_name,
        lifecycle: args.lifecycle,
        profile,
        model,
        prompt,
    })
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn print_dry_run(plan: &Plan) {
    let invocation = backend::invocation(
        plan.backend,
        &plan.cli_endpoint,
        plan.model.as_deref(),
        "<private-temp-dir>/mcp.json",
    );
    println!("# command (the prompt below goes to its stdin)");
    println!("{}", backend::shell_line(&invocation));
    println!(
        "# environment added (names only): {} {} {}; removed: {}",
        backend::TOKEN_ENV,
        backend::AGENT_ID_ENV,
        backend::ENDPOINT_ENV,
        backend::ADMIN_TOKEN_ENV
    );
    println!("# registration (register_agent on {})", plan.endpoint);
    println!("{}", registration_args(plan));
    if plan.backend == Backend::Claude {
        println!("# <private-temp-dir>/mcp.json (mode 0600, removed on exit)");
        println!("{}", backend::claude_mcp_config(&plan.cli_endpoint));
    }
    println!("# prompt");
    print!("{}", plan.prompt);
}

/// register_agent's arguments without secrets (the grant and relaunch token are added later).
fn registration_args(plan: &Plan) -> Value {
    json!({
        "id": plan.agent_id,
        "name": plan.agent_name,
        "type": plan.backend.program(),
        "role": plan.role.as_str(),
        "capabilities": plan.role.capabilities(),
        "lifecycle": plan.lifecycle.as_str(),
        // The agent fetches its onboarding itself (the prompt says which mode).
        "onboarding_mode": "none",
        "runtime_profile": plan.profile.to_json(),
    })
}

/// Registers the agent; returns its token. Fails with a clear sentence when the hub is
/// unreachable, refuses, or does not grant the orchestrator role.
async fn register(plan: &Plan) -> anyhow::Result<String> {
    let mut client = McpClient::connect(&plan.endpoint, "hub-launch")
        .await
        .with_context(|| {
            format!(
                "hub unreachable at {} (start it with `hubctl start`, or set --endpoint / \
                 HUB_ENDPOINT)",
                plan.endpoint
            )
        })?;
    let mut arguments = registration_args(plan);
    let secret = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if plan.role == LaunchRole::Orchestrator
        && let Some(admin_token) = secret(backend::ADMIN_TOKEN_ENV)
    {
        arguments["admin_token"] = json!(admin_token);
    }
    if let Some(token) = secret(backend::TOKEN_ENV) {
        // Relaunching an existing id: the hub needs that id's token.
        arguments["auth_token"] = json!(token);
    }
    let reply = client.call_tool("register_agent", arguments).await;
    client.close().await;
    let reply = reply.context("register_agent")?;
    let answer = &reply.json;
    if !reply.succeeded() {
        let code = answer["error_code"].as_str().unwrap_or("UNKNOWN");
        let hint = if code.starts_with("AUTH_TOKEN") {
            format!(
                "; {} is registered already: relaunch it with its token in {}, or pick \
                 another --agent-id",
                plan.agent_id,
                backend::TOKEN_ENV
            )
        } else {
            String::new()
        };
        bail!(
            "the hub refused register_agent ({code}): {}{hint}",
            answer["error"].as_str().unwrap_or_default()
        );
    }
    for warning in answer["warnings"].as_array().into_iter().flatten() {
        eprintln!(
            "hub-launch: hub warning: {}",
            warning.as_str().unwrap_or_default()
        );
    }
    let granted = answer["agent"]["role"].as_str().unwrap_or_default();
    if granted != plan.role.as_str() {
        bail!(
            "privileged role without grant: the hub registered {} as {granted:?}, not {}. The \
             orchestrator role is granted by the operator: export {} (the hub's admin token) \
             before hub-launch, or start the hub with MCP_HUB_PRIVILEGED_AGENTS={}:{}",
            plan.agent_id,
            plan.role.as_str(),
            backend::ADMIN_TOKEN_ENV,
            plan.agent_id,
            plan.role.as_str()
        );
    }
    answer["auth"]["token"]
        .as_str()
        .map(str::to_string)
        .context("register_agent answered without auth.token")
}

/// Runs the CLI to completion: prompt on stdin, token in its environment, SIGINT, SIGTERM and
/// SIGHUP passed on. A terminal's Ctrl-C reaches the child directly too (same process group);
/// the launcher survives it so it can clean up and report the child's status.
async fn run_child(
    program: &Path,
    invocation: &Invocation,
    plan: &Plan,
    token: &str,
) -> anyhow::Result<ExitCode> {
    // Listening before the spawn: a signal in between must not kill us with the child alive.
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    let mut child = tokio::process::Command::new(program)
        .args(&invocation.args)
        .env_remove(backend::ADMIN_TOKEN_ENV)
        .env(backend::TOKEN_ENV, token)
        .env(backend::AGENT_ID_ENV, &plan.agent_id)
        .env(backend::ENDPOINT_ENV, &plan.cli_endpoint)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let pid = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32));
    if let Some(mut stdin) = child.stdin.take() {
        let prompt = plan.prompt.clone();
        // A CLI that exits without reading its stdin must not block us: write on the side.
        tokio::spawn(async move {
            let _ = stdin.write_all(prompt.as_bytes()).await;
        });
    }
    let status = loop {
        let forward = tokio::select! {
            status = child.wait() => break status.context("waiting for the agent CLI")?,
            _ = interrupt.recv() => rustix::process::Signal::INT,
            _ = terminate.recv() => rustix::process::Signal::TERM,
            _ = hangup.recv() => rustix::process::Signal::HUP,
        };
        if let Some(pid) = pid {
            // The child may have exited already; wait() reports it on the next turn.
            let _ = rustix::process::kill_process(pid, forward);
        }
    };
    Ok(exit_code(status))
}

/// The child's code, or 128 + the signal that ended it (as a shell reports it).
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code.clamp(0, 255) as u8),
        (None, Some(signal)) => ExitCode::from((128 + signal).clamp(0, 255) as u8),
        (None, None) => ExitCode::from(1),
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// Creates `path` readable by the owner only.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
