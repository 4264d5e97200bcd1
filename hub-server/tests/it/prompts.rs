//! MCP prompts: the role prompts and the onboarding are served through `prompts/list` and
//! `prompts/get`, so any client (not only hub-launch) can fetch them.

use rmcp::model::GetPromptRequestParams;

use crate::harness::TestHub;

#[tokio::test]
async fn prompts_list_and_get_serve_the_role_prompts_and_the_onboarding() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "enforce")]).await;
    let client = hub.client().await;
    let info = client.service.peer_info().expect("server info");
    assert!(info.capabilities.prompts.is_some(), "prompts capability");

    let listed = client
        .service
        .list_all_prompts()
        .await
        .expect("prompts/list");
    let names: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "onboarding",
            "orchestrator",
            "reviewer",
            "assistant",
            "isolated-swarm"
        ]
    );
    assert!(listed.iter().all(|p| p.description.is_some()));

    for (name, expected) in [
        ("onboarding", hub_server::agent_files::AGENT_PROMPT),
        ("reviewer", include_str!("../../../prompts/hub/reviewer.md")),
    ] {
        let prompt = client
            .service
            .get_prompt(GetPromptRequestParams::new(name))
            .await
            .expect("prompts/get");
        assert_eq!(prompt.messages.len(), 1);
        let text = prompt.messages[0]
            .content
            .as_text()
            .expect("text")
            .text
            .clone();
        assert_eq!(text, expected, "{name}");
    }
    // The reviewer prompt carries the consensus flow of the consensus issue.
    let reviewer = hub_server::agent_files::LaunchRole::Reviewer.prompt();
    for needle in [
        "context_key",
        "agent_ids",
        "vote:<proposal_id>",
        "missing_voters",
    ] {
        assert!(reviewer.contains(needle), "reviewer prompt lacks {needle}");
    }

    let unknown = client
        .service
        .get_prompt(GetPromptRequestParams::new("janitor"))
        .await
        .expect_err("unknown prompt");
    let text = unknown.to_string();
    assert!(
        text.contains("janitor") && text.contains("onboarding"),
        "{text}"
    );
    client.close().await;
    hub.stop().await;
}
