//! The agent-facing files of the repository (onboarding, role prompts, cheat sheets, the
//! isolated-swarm template, the Claude config example), compiled into the binaries so an
//! installed `hub-server` serves them as MCP prompts and an installed `hub-launch` composes
//! its prompt from them — no checkout needed at run time. The files at the repository root
//! stay the one source; edit them, not copies.

/// `AGENT_PROMPT.md`: the system onboarding every launched agent gets first.
pub const AGENT_PROMPT: &str = include_str!("../../AGENT_PROMPT.md");
/// `templates/CLAUDE.isolated-swarm.md`: CLAUDE.md for a worker in an empty directory.
pub const ISOLATED_SWARM_TEMPLATE: &str = include_str!("../../templates/CLAUDE.isolated-swarm.md");
/// `skills/claude-hub.md` and `skills/codex-hub.md`: launcher cheat sheets.
pub const SKILL_CLAUDE: &str = include_str!("../../skills/claude-hub.md");
pub const SKILL_CODEX: &str = include_str!("../../skills/codex-hub.md");
/// `.mcp.example.json`: the Claude Code project config (`"type": "http"`, bearer from env);
/// hub-launch writes it, pointed at its endpoint (its tests pin the shape).
pub const MCP_EXAMPLE_JSON: &str = include_str!("../../.mcp.example.json");

/// A role the launcher can start, with its prompt (`prompts/hub/<role>.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchRole {
    Orchestrator,
    Reviewer,
    Assistant,
}

impl LaunchRole {
    pub const ALL: [LaunchRole; 3] = [
        LaunchRole::Orchestrator,
        LaunchRole::Reviewer,
        LaunchRole::Assistant,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LaunchRole::Orchestrator => "orchestrator",
            LaunchRole::Reviewer => "reviewer",
            LaunchRole::Assistant => "assistant",
        }
    }

    /// The role name or one of its aliases (`executor` and `helper` mean assistant).
    pub fn parse(text: &str) -> Option<LaunchRole> {
        match text.trim().to_ascii_lowercase().as_str() {
            "orchestrator" => Some(LaunchRole::Orchestrator),
            "reviewer" => Some(LaunchRole::Reviewer),
            "assistant" | "executor" | "helper" => Some(LaunchRole::Assistant),
            _ => None,
        }
    }

    /// The role prompt, `prompts/hub/<role>.md`.
    pub fn prompt(self) -> &'static str {
        match self {
            LaunchRole::Orchestrator => include_str!("../../prompts/hub/orchestrator.md"),
            LaunchRole::Reviewer => include_str!("../../prompts/hub/reviewer.md"),
            LaunchRole::Assistant => include_str!("../../prompts/hub/assistant.md"),
        }
    }

    /// One line saying what the role is for (MCP prompt descriptions).
    pub fn summary(self) -> &'static str {
        match self {
            LaunchRole::Orchestrator => {
                "Orchestrator: decompose goals into routed tasks and keep the queue healthy."
            }
            LaunchRole::Reviewer => {
                "Reviewer: verify workers' results, resolve consensus, enforce the done gate."
            }
            LaunchRole::Assistant => {
                "Assistant: claim and execute tasks, report with done-gate evidence."
            }
        }
    }

    /// The tool profile the launched CLI connects with (`/mcp?tools=<profile>`). It must
    /// cover every tool the composed prompt names (AGENT_PROMPT.md, the role prompt, the
    /// skills; tested): an assistant runs the claim loop (worker); orchestrators and
    /// reviewers plan, upload, vote and resolve (orchestrator).
    pub fn tool_profile(self) -> crate::tools::surface::Profile {
        use crate::tools::surface::Profile;
        match self {
            LaunchRole::Orchestrator | LaunchRole::Reviewer => Profile::Orchestrator,
            LaunchRole::Assistant => Profile::Worker,
        }
    }

    /// The registration capabilities string (spec http-config-cli §11.1).
    pub fn capabilities(self) -> &'static str {
        match self {
            LaunchRole::Orchestrator => "orchestration,task-dispatch,planning",
            LaunchRole::Reviewer => "review,verification,consensus",
            LaunchRole::Assistant => "execution,implementation,handoff",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tool of the spec (http-config-cli §11.5: the template lists them all, grouped).
    const SPEC_TOOLS: [&str; 46] = [
        "register_agent",
        "update_runtime_profile",
        "list_agents",
        "get_onboarding",
        "send_message",
        "send_blob_message",
        "read_messages",
        "create_task",
        "update_task",
        "list_tasks",
        "delete_task",
        "poll_and_claim",
        "claim_task",
        "renew_task_claim",
        "release_task_claim",
        "list_task_claims",
        "share_context",
        "share_blob_context",
        "get_context",
        "wait_for_updates",
        "read_snapshot",
        "hash_payload",
        "store_protocol_blob",
        "get_protocol_blob",
        "list_protocol_blobs",
        "pack_protocol_message",
        "unpack_protocol_message",
        "resolve_consensus",
        "resolve_consensus_from_context",
        "resolve_consensus_from_message",
        "list_consensus_decisions",
        "create_artifact_upload",
        "create_artifact_download",
        "create_task_artifact_downloads",
        "share_artifact",
        "list_artifacts",
        "attach_task_artifact",
        "list_task_artifacts",
        "get_task_handoff",
        "get_activity_log",
        "get_kpi_snapshot",
        "get_transport_snapshot",
        "evaluate_slo_alerts",
        "list_slo_alerts",
        "get_auth_coverage",
        "run_maintenance",
    ];

    /// Backticked words that look like tool names (`a_b` with a tool verb in front; `claim_`
    /// is left out because `claim_id` is an argument).
    fn named_tools(text: &str) -> Vec<&str> {
        const VERBS: [&str; 13] = [
            "register_",
            "update_",
            "list_",
            "get_",
            "send_",
            "read_",
            "create_",
            "delete_",
            "poll_",
            "renew_",
            "release_",
            "share_",
            "resolve_",
        ];
        text.split('`')
            .skip(1)
            .step_by(2)
            .filter(|word| {
                word.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    && VERBS.iter().any(|verb| word.starts_with(verb))
            })
            .collect()
    }

    #[test]
    fn the_files_name_only_tools_of_the_spec() {
        let mut files = vec![
            ("AGENT_PROMPT.md", AGENT_PROMPT),
            (
                "templates/CLAUDE.isolated-swarm.md",
                ISOLATED_SWARM_TEMPLATE,
            ),
            ("skills/claude-hub.md", SKILL_CLAUDE),
            ("skills/codex-hub.md", SKILL_CODEX),
        ];
        for role in LaunchRole::ALL {
            files.push((role.as_str(), role.prompt()));
        }
        for (file, text) in files {
            for tool in named_tools(text) {
                assert!(
                    SPEC_TOOLS.contains(&tool),
                    "{file} names `{tool}`, not a spec tool"
                );
            }
        }
    }

    #[test]
    fn the_template_lists_every_tool_and_the_served_ones_are_spec_tools() {
        for tool in SPEC_TOOLS {
            assert!(
                ISOLATED_SWARM_TEMPLATE.contains(&format!("`{tool}`")),
                "the isolated-swarm template's tool list misses {tool}"
            );
        }
        for def in &crate::tools::registry().tools {
            assert!(
                SPEC_TOOLS.contains(&def.name),
                "{} is not in the spec",
                def.name
            );
        }
    }

    /// Tool names the text mentions anywhere (backticked or not, with arguments or not): a
    /// served tool's name as a whole word.
    fn mentioned_tools(text: &str) -> Vec<&'static str> {
        let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        crate::tools::registry()
            .tools
            .iter()
            .map(|def| def.name)
            .filter(|name| {
                text.match_indices(name).any(|(at, _)| {
                    let before = text[..at].chars().next_back();
                    let after = text[at + name.len()..].chars().next();
                    !before.is_some_and(is_word) && !after.is_some_and(is_word)
                })
            })
            .collect()
    }

    /// A prompt that tells an agent to call a tool its connection cannot see is a bug.
    #[test]
    fn every_tool_a_role_is_told_to_use_is_in_its_profile() {
        for role in LaunchRole::ALL {
            let profile = role.tool_profile();
            let files = [
                ("AGENT_PROMPT.md", AGENT_PROMPT),
                (role.as_str(), role.prompt()),
                ("skills/claude-hub.md", SKILL_CLAUDE),
                ("skills/codex-hub.md", SKILL_CODEX),
            ];
            for (file, text) in files {
                let named = mentioned_tools(text);
                assert!(
                    !named.is_empty(),
                    "{file} names no tool: the scan is broken"
                );
                for tool in named {
                    assert!(
                        profile.allows(tool),
                        "{file} tells a {} to call `{tool}`, which the {} profile hides",
                        role.as_str(),
                        profile.as_str()
                    );
                }
            }
        }
    }

    #[test]
    fn roles_parse_with_their_aliases() {
        for (text, role) in [
            ("orchestrator", Some(LaunchRole::Orchestrator)),
            ("Reviewer", Some(LaunchRole::Reviewer)),
            ("assistant", Some(LaunchRole::Assistant)),
            ("executor", Some(LaunchRole::Assistant)),
            ("helper", Some(LaunchRole::Assistant)),
            ("worker", None),
            ("", None),
        ] {
            assert_eq!(LaunchRole::parse(text), role, "{text:?}");
        }
    }
}
