//! MCP prompts (`prompts/list`, `prompts/get`): the onboarding, the three role prompts and the
//! isolated-swarm template, so any MCP client can fetch what `hub-launch` composes from.
//! The texts are the repository files compiled in ([`crate::agent_files`]).

use rmcp::ErrorData;
use rmcp::model::{GetPromptResult, Prompt, PromptMessage, Role};

use crate::agent_files::{self, LaunchRole};

/// One served prompt: its name, a one-line description and the text.
struct HubPrompt {
    name: &'static str,
    description: &'static str,
    text: &'static str,
}

fn prompts() -> Vec<HubPrompt> {
    let mut prompts = vec![HubPrompt {
        name: "onboarding",
        description: "Agent Hub onboarding: identity and token, runtime modes, the work cycle, \
                      cursor waits and nano keys. Read before a role prompt.",
        text: agent_files::AGENT_PROMPT,
    }];
    prompts.extend(LaunchRole::ALL.map(|role| HubPrompt {
        name: role.as_str(),
        description: role.summary(),
        text: role.prompt(),
    }));
    prompts.push(HubPrompt {
        name: "isolated-swarm",
        description: "CLAUDE.md for an isolated swarm worker in an empty directory.",
        text: agent_files::ISOLATED_SWARM_TEMPLATE,
    });
    prompts
}

pub fn list() -> Vec<Prompt> {
    prompts()
        .into_iter()
        .map(|prompt| Prompt::new(prompt.name, Some(prompt.description), None))
        .collect()
}

/// The prompt as one user message; an unknown name is an invalid-params error naming it.
pub fn get(name: &str) -> Result<GetPromptResult, ErrorData> {
    let Some(prompt) = prompts().into_iter().find(|prompt| prompt.name == name) else {
        let known: Vec<&str> = prompts().iter().map(|prompt| prompt.name).collect();
        return Err(ErrorData::invalid_params(
            format!(
                "prompts/get: unknown prompt name {name:?}; known: {}",
                known.join(", ")
            ),
            None,
        ));
    };
    let mut result = GetPromptResult::new(vec![PromptMessage::new_text(Role::User, prompt.text)]);
    result.description = Some(prompt.description.to_string());
    Ok(result)
}
