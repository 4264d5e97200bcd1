//! Prompt composition (spec http-config-cli §11.3), pure: the onboarding, the launcher
//! contract with the authoritative runtime profile, the session facts, then the role prompt.
//! The launcher registers the agent itself and hands the token over by environment, so the
//! contract tells the agent it is registered rather than asking it to register.

use hub_server::agent_files::{self, LaunchRole};

use crate::profile::{RuntimeMode, RuntimeProfile};

/// Everything the prompt depends on.
pub struct PromptInput<'a> {
    pub role: LaunchRole,
    pub agent_id: &'a str,
    pub endpoint: &'a str,
    pub namespace: Option<&'a str>,
    pub onboarding: Onboarding,
    pub note: Option<&'a str>,
    pub profile: &'a RuntimeProfile,
    /// The environment variable holding the token (named, never its value).
    pub token_env: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Onboarding {
    Full,
    Compact,
    None,
}

impl Onboarding {
    pub fn as_str(self) -> &'static str {
        match self {
            Onboarding::Full => "full",
            Onboarding::Compact => "compact",
            Onboarding::None => "none",
        }
    }
}

pub fn compose(input: &PromptInput<'_>) -> String {
    let profile = input.profile;
    let id = input.agent_id;
    let mut out = String::new();
    out.push_str(agent_files::AGENT_PROMPT.trim_end());
    out.push_str("\n\n## Hub Launcher Contract\n\n");
    out.push_str(&format!(
        "Authoritative runtime profile (already sent with your registration): {}\n\n",
        profile.to_json()
    ));
    out.push_str(&format!(
        "Startup contract:\n\
         1. The launcher registered you: id \"{id}\", role \"{role}\", capabilities \"{caps}\", \
         with the profile above. Do not call register_agent again.\n\
         2. Your MCP client sends your token as `Authorization: Bearer` (from the environment \
         variable {token_env}); do not pass auth_token and never print, store or send the \
         token. Put \"{id}\" in each call's caller argument (requesting_agent where a tool \
         has one, else agent_id or from_agent).\n",
        role = input.role.as_str(),
        caps = input.role.capabilities(),
        token_env = input.token_env,
    ));
    match input.onboarding {
        Onboarding::None => {
            out.push_str("3. Skip get_onboarding: this prompt is your onboarding.\n")
        }
        mode => out.push_str(&format!(
            "3. Call get_onboarding once with {{\"agent_id\": \"{id}\", \"mode\": \"{}\", \
             \"role\": \"{}\", \"runtime_mode\": \"{}\", \"empty_dir\": {}}} and keep the \
             answer.\n",
            mode.as_str(),
            input.role.as_str(),
            profile.mode.as_str(),
            profile.empty_dir(),
        )),
    }
    out.push_str(&format!(
        "4. Respect execution_mode routing: {}\n",
        match profile.mode {
            RuntimeMode::Repo => "claim `repo` or `any` tasks.",
            RuntimeMode::Isolated => "claim `isolated` or `any` tasks.",
            RuntimeMode::Unknown => "the hub offers you only `any` tasks until your mode is known.",
        }
    ));

    out.push_str("\n## Session facts\n\n");
    out.push_str(&format!(
        "- Hub endpoint: {} (MCP server \"agent-hub\"); your role: {}; your id: \"{id}\".\n",
        input.endpoint,
        input.role.as_str()
    ));
    out.push_str(&format!("- {}", runtime_notice(profile.mode)));
    if profile.forced {
        out.push_str(&format!(
            " (Mode forced by a launcher flag; detection said {}.)",
            profile.detected.as_str()
        ));
    }
    out.push('\n');
    match input.namespace {
        Some(namespace) => out.push_str(&format!(
            "- Namespace: use \"{namespace}\" for all task operations.\n"
        )),
        None => out.push_str(
            "- Namespace: use an explicit namespace for every swarm/experiment task operation.\n",
        ),
    }
    if let Some(note) = input.note {
        out.push_str(&format!("- Note: {note}\n"));
    }
    out.push('\n');
    out.push_str(input.role.prompt().trim_end());
    out.push('\n');
    out
}

fn runtime_notice(mode: RuntimeMode) -> &'static str {
    match mode {
        RuntimeMode::Repo => {
            "Repo runtime: you work inside the project checkout; edit files only within your \
             task's scope and cite commits or test names as evidence."
        }
        RuntimeMode::Isolated => {
            "Isolated runtime: no project files here — assume no repository. Use /tmp for \
             scratch, hand results off through context, blobs and artifacts (structured \
             handoff), and let the orchestrator or reviewer apply changes."
        }
        RuntimeMode::Unknown => {
            "Unknown runtime: find out whether the project checkout is here, then call \
             update_runtime_profile with mode repo or isolated so tasks can be routed to you."
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::profile::{DirFacts, classify};

    fn input<'a>(profile: &'a RuntimeProfile, namespace: Option<&'a str>) -> PromptInput<'a> {
        PromptInput {
            role: LaunchRole::Reviewer,
            agent_id: "reviewer-codex-1",
            endpoint: "http://127.0.0.1:3000/mcp",
            namespace,
            onboarding: Onboarding::Compact,
            note: Some("ship it"),
            profile,
            token_env: "AGENT_HUB_TOKEN",
        }
    }

    fn profile(forced: Option<RuntimeMode>) -> RuntimeProfile {
        let facts = DirFacts {
            cwd: PathBuf::from("/w"),
            has_git: false,
            file_count: 0,
        };
        classify(facts, forced, 5)
    }

    #[test]
    fn sections_come_in_order_with_plain_quotes() {
        let profile = profile(None);
        let text = compose(&input(&profile, Some("exp-1")));
        let positions: Vec<usize> = [
            "# Agent Hub — onboarding for agents",
            "## Hub Launcher Contract",
            "## Session facts",
            "# Role: reviewer",
        ]
        .iter()
        .map(|heading| {
            text.find(heading)
                .unwrap_or_else(|| panic!("{heading} missing"))
        })
        .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert!(text.contains(r#""mode":"isolated""#), "profile JSON inline");
        assert!(text.contains(r#"id "reviewer-codex-1""#));
        assert!(text.contains(r#"use "exp-1" for all task operations"#));
        assert!(text.contains("Isolated runtime"));
        assert!(text.contains("- Note: ship it"));
        assert!(text.contains(
            r#"get_onboarding once with {"agent_id": "reviewer-codex-1", "mode": "compact", "role": "reviewer", "runtime_mode": "isolated", "empty_dir": true}"#
        ));
        assert!(!text.contains("\\\""), "no backslash-escaped quotes (D22)");
    }

    #[test]
    fn runtime_notices_and_namespace_fallback() {
        for (forced, notice) in [
            (None, "Isolated runtime"),
            (Some(RuntimeMode::Repo), "Repo runtime"),
            (Some(RuntimeMode::Unknown), "Unknown runtime"),
        ] {
            let profile = profile(forced);
            let text = compose(&input(&profile, None));
            assert!(text.contains(notice), "{forced:?}");
            assert_eq!(
                text.contains("Mode forced by a launcher flag"),
                forced.is_some()
            );
            assert!(text.contains("use an explicit namespace for every swarm"));
        }
    }
}
