//! How each agent CLI is started wired to the hub (spec http-config-cli §11.4, with the token
//! added): pure command building, so `--dry-run` prints exactly what a launch runs.
//!
//! The token travels only in the child's environment ([`TOKEN_ENV`]); argv and config files
//! name the variable, never the value. Codex reads it through `bearer_token_env_var`; Claude
//! Code expands `${AGENT_HUB_TOKEN}` in its MCP config headers. The prompt goes to stdin
//! (both CLIs read it there), which keeps a long prompt out of argv and `ps`.

use serde_json::json;

/// The child's environment variable carrying the agent's token.
pub const TOKEN_ENV: &str = "AGENT_HUB_TOKEN";
/// Non-secret facts for scripts and tools inside the agent's session.
pub const AGENT_ID_ENV: &str = "AGENT_HUB_AGENT_ID";
pub const ENDPOINT_ENV: &str = "AGENT_HUB_ENDPOINT";
/// The operator's secret: read by the launcher for the orchestrator grant, removed from the
/// child's environment (the agent needs its own token, not the power to grant roles).
pub const ADMIN_TOKEN_ENV: &str = "MCP_HUB_ADMIN_TOKEN";
/// The MCP server name both CLIs see.
pub const SERVER_NAME: &str = "agent-hub";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Codex,
    Claude,
}

impl Backend {
    pub fn program(self) -> &'static str {
        match self {
            Backend::Codex => "codex",
            Backend::Claude => "claude",
        }
    }

    /// `--model` comes from this variable when set.
    pub fn model_env(self) -> &'static str {
        match self {
            Backend::Codex => "CODEX_MODEL",
            Backend::Claude => "CLAUDE_MODEL",
        }
    }
}

/// The command line of one launch (the program is looked up on PATH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: &'static str,
    pub args: Vec<String>,
}

/// The URL the CLI connects to: the hub's endpoint with a tool profile (`?tools=<profile>`),
/// so the agent pays only for the tools its prompt uses.
pub fn profiled_endpoint(endpoint: &str, profile: hub_server::tools::surface::Profile) -> String {
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    format!(
        "{endpoint}{separator}{}={}",
        hub_server::tools::surface::PROFILE_QUERY,
        profile.as_str()
    )
}

/// Claude Code's MCP config: the repository's `.mcp.example.json` (typed `http` — an untyped
/// entry is taken for stdio, D23 — with the Authorization header expanded from
/// [`TOKEN_ENV`]) pointed at `endpoint`. It holds no secret.
pub fn claude_mcp_config(endpoint: &str) -> String {
    let mut config: serde_json::Value =
        serde_json::from_str(hub_server::agent_files::MCP_EXAMPLE_JSON)
            .expect(".mcp.example.json is JSON (tested)");
    config["mcpServers"][SERVER_NAME]["url"] = json!(endpoint);
    serde_json::to_string_pretty(&config).expect("a JSON value serializes")
}

/// `claude_config_path` is where the Claude config was written (only used for Claude).
pub fn invocation(
    backend: Backend,
    endpoint: &str,
    model: Option<&str>,
    claude_config_path: &str,
) -> Invocation {
    let mut args: Vec<String> = Vec::new();
    match backend {
        Backend::Codex => {
            // `-c key=value` parses value as TOML; a JSON string literal is a valid TOML
            // basic string, so any endpoint text stays one quoted value.
            let quoted = |text: &str| serde_json::to_string(text).expect("a string serializes");
            for (key, value) in [
                ("url", quoted(endpoint)),
                ("bearer_token_env_var", quoted(TOKEN_ENV)),
                // codex exec cannot ask anyone; without this it cancels every hub tool call.
                ("default_tools_approval_mode", quoted("approve")),
            ] {
                args.push("-c".into());
                args.push(format!("mcp_servers.{SERVER_NAME}.{key}={value}"));
            }
            args.extend(
                [
                    "-c",
                    "approval_policy=\"never\"",
                    "exec",
                    "--skip-git-repo-check",
                    "--sandbox",
                    "workspace-write",
                ]
                .map(String::from),
            );
            if let Some(model) = model {
                args.extend(["--model".to_string(), model.to_string()]);
            }
            // `-`: read the prompt from stdin.
            args.push("-".into());
        }
        Backend::Claude => {
            args.extend(
                [
                    "-p",
                    "--permission-mode",
                    "bypassPermissions",
                    "--mcp-config",
                ]
                .map(String::from),
            );
            args.push(claude_config_path.to_string());
            args.push("--strict-mcp-config".into());
            if let Some(model) = model {
                args.extend(["--model".to_string(), model.to_string()]);
            }
        }
    }
    Invocation {
        program: backend.program(),
        args,
    }
}

/// A shell-style rendering for `--dry-run` (single quotes where needed).
pub fn shell_line(invocation: &Invocation) -> String {
    std::iter::once(invocation.program.to_string())
        .chain(invocation.args.iter().map(|arg| shell_quote(arg)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_url_carries_the_role_profile() {
        use hub_server::agent_files::LaunchRole;
        assert_eq!(
            profiled_endpoint("http://h:1/mcp", LaunchRole::Assistant.tool_profile()),
            "http://h:1/mcp?tools=worker"
        );
        assert_eq!(
            profiled_endpoint("http://h:1/mcp?x=1", LaunchRole::Reviewer.tool_profile()),
            "http://h:1/mcp?x=1&tools=orchestrator"
        );
    }

    #[test]
    fn codex_gets_the_url_and_the_token_variable_name() {
        let call = invocation(Backend::Codex, "http://h:1/mcp", Some("o9"), "unused");
        assert_eq!(call.program, "codex");
        assert_eq!(
            shell_line(&call),
            "codex -c 'mcp_servers.agent-hub.url=\"http://h:1/mcp\"' \
             -c 'mcp_servers.agent-hub.bearer_token_env_var=\"AGENT_HUB_TOKEN\"' \
             -c 'mcp_servers.agent-hub.default_tools_approval_mode=\"approve\"' \
             -c 'approval_policy=\"never\"' exec --skip-git-repo-check --sandbox \
             workspace-write --model o9 -"
        );
    }

    #[test]
    fn claude_gets_a_typed_http_config_with_the_header_from_the_environment() {
        let call = invocation(Backend::Claude, "http://h:1/mcp", None, "/tmp/x/mcp.json");
        assert_eq!(
            call.args,
            [
                "-p",
                "--permission-mode",
                "bypassPermissions",
                "--mcp-config",
                "/tmp/x/mcp.json",
                "--strict-mcp-config"
            ]
        );
        let config: serde_json::Value =
            serde_json::from_str(&claude_mcp_config("http://h:1/mcp")).unwrap();
        let server = &config["mcpServers"]["agent-hub"];
        assert_eq!(server["type"], "http");
        assert_eq!(server["url"], "http://h:1/mcp");
        assert_eq!(
            server["headers"]["Authorization"],
            "Bearer ${AGENT_HUB_TOKEN}"
        );
    }

    #[test]
    fn shell_quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("plain-1.0"), "plain-1.0");
    }
}
