//! What a connection sees of the tools: the one catalog table (tool → title, category,
//! effect, profiles) that drives tool profiles (`/mcp?tools=worker`, `x-mcp-hub-tools`) and
//! the MCP annotations, plus the server `instructions`. Pure data and lookups: no SQL, no
//! HTTP beyond reading the request's query and header.
//!
//! Every served tool must have a row (a test fails otherwise). Rows for tools a build does not
//! serve yet are harmless: profiles and annotations only ever apply to registered tools.

use rmcp::model::ToolAnnotations;

use super::Category;

/// A named tool set a client chooses per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// register, messages, the claim loop, context, wait.
    Worker,
    /// plans and reviews: tasks and the claim loop, messages, context, blobs, consensus,
    /// artifacts, reports.
    Orchestrator,
    /// read-only tools (plus register_agent, to get a token).
    Observer,
    /// every tool (the default).
    Full,
}

impl Profile {
    pub const ALL: [Profile; 4] = [
        Profile::Worker,
        Profile::Orchestrator,
        Profile::Observer,
        Profile::Full,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Worker => "worker",
            Profile::Orchestrator => "orchestrator",
            Profile::Observer => "observer",
            Profile::Full => "full",
        }
    }

    pub fn parse(text: &str) -> Option<Profile> {
        let text = text.trim();
        Profile::ALL
            .into_iter()
            .find(|profile| profile.as_str().eq_ignore_ascii_case(text))
    }

    fn bit(self) -> u8 {
        match self {
            Profile::Worker => W,
            Profile::Orchestrator => O,
            Profile::Observer => B,
            Profile::Full => W | O | B | FULL_ONLY,
        }
    }

    /// Whether `tool` is served to this profile. Unknown tools are in `full` only, so a tool
    /// registered without a row is still callable there (and fails the catalog test).
    pub fn allows(self, tool: &str) -> bool {
        self == Profile::Full || entry(tool).is_some_and(|row| row.profiles & self.bit() != 0)
    }
}

/// The query parameter and header that choose a connection's profile.
pub const PROFILE_QUERY: &str = "tools";
pub const PROFILE_HEADER: &str = "x-mcp-hub-tools";

/// The profile a request asks for: `?tools=` wins over the header; neither means `full`.
/// `Err` carries the unknown name.
pub fn requested_profile(parts: Option<&http::request::Parts>) -> Result<Profile, String> {
    let Some(parts) = parts else {
        return Ok(Profile::Full);
    };
    let from_query = parts.uri.query().and_then(|query| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == PROFILE_QUERY).then(|| value.to_string())
        })
    });
    let from_header = parts
        .headers
        .get(PROFILE_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    match from_query.or(from_header) {
        None => Ok(Profile::Full),
        Some(name) if name.trim().is_empty() => Ok(Profile::Full),
        Some(name) => Profile::parse(&name).ok_or(name),
    }
}

/// What a call does to the hub, as MCP annotations state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Changes nothing a client can see.
    Read,
    /// Adds rows; a repeat adds more (messages, tasks, decisions, tickets).
    Add,
    /// Sets state to what the arguments say; a repeat changes nothing more (read marks,
    /// content-addressed blobs, releasing a claim).
    Put,
    /// Replaces or removes what was there; a repeat changes nothing more.
    Overwrite,
    /// Replaces what was there, differently each time (a re-registration issues a new token;
    /// maintenance requeues and prunes).
    Replace,
}

impl Effect {
    pub fn read_only(self) -> bool {
        self == Effect::Read
    }
    pub fn destructive(self) -> bool {
        matches!(self, Effect::Overwrite | Effect::Replace)
    }
    pub fn idempotent(self) -> bool {
        matches!(self, Effect::Read | Effect::Put | Effect::Overwrite)
    }
}

/// One row of the catalog.
#[derive(Debug)]
pub struct Entry {
    pub name: &'static str,
    pub title: &'static str,
    pub category: Category,
    pub effect: Effect,
    profiles: u8,
}

const W: u8 = 1;
const O: u8 = 2;
const B: u8 = 4;
/// In `full` only.
const FULL_ONLY: u8 = 8;
const NONE: u8 = 0;

const fn row(
    name: &'static str,
    title: &'static str,
    category: Category,
    effect: Effect,
    profiles: u8,
) -> Entry {
    Entry {
        name,
        title,
        category,
        effect,
        profiles,
    }
}

use Category::{
    Agents, Artifacts, CompactProtocol, Consensus, Context, Messaging, Observability, Tasks,
};
use Effect::{Add, Overwrite, Put, Read, Replace};

/// Every tool, served today or arriving with another branch (artifacts, observability).
/// Adding a tool = one row here.
pub const CATALOG: &[Entry] = &[
    row(
        "register_agent",
        "Register agent",
        Agents,
        Replace,
        W | O | B,
    ),
    row(
        "update_runtime_profile",
        "Update runtime profile",
        Agents,
        Overwrite,
        O,
    ),
    row("list_agents", "List agents", Agents, Read, O | B),
    row("get_onboarding", "Get onboarding", Agents, Read, W | O | B),
    row("send_message", "Send message", Messaging, Add, W | O),
    row("send_blob_message", "Send blob message", Messaging, Add, O),
    row("read_messages", "Read messages", Messaging, Put, W | O),
    row("create_task", "Create task", Tasks, Add, O),
    row("update_task", "Update task", Tasks, Overwrite, W | O),
    row("list_tasks", "List tasks", Tasks, Read, O | B),
    row("delete_task", "Delete task", Tasks, Overwrite, O),
    row("poll_and_claim", "Poll and claim", Tasks, Add, W | O),
    row("claim_task", "Claim task", Tasks, Add, O),
    row("renew_task_claim", "Renew task claim", Tasks, Add, W | O),
    row(
        "release_task_claim",
        "Release task claim",
        Tasks,
        Put,
        W | O,
    ),
    row("list_task_claims", "List task claims", Tasks, Read, O | B),
    row("share_context", "Share context", Context, Overwrite, W | O),
    row(
        "share_blob_context",
        "Share blob context",
        Context,
        Overwrite,
        O,
    ),
    row("get_context", "Get context", Context, Read, W | O | B),
    row("resolve_consensus", "Resolve consensus", Consensus, Add, O),
    row(
        "resolve_consensus_from_context",
        "Resolve consensus from context",
        Consensus,
        Add,
        O,
    ),
    row(
        "resolve_consensus_from_message",
        "Resolve consensus from message",
        Consensus,
        Add,
        O,
    ),
    row(
        "list_consensus_decisions",
        "List consensus decisions",
        Consensus,
        Read,
        O | B,
    ),
    row(
        "pack_protocol_message",
        "Pack protocol message",
        CompactProtocol,
        Read,
        NONE,
    ),
    row(
        "unpack_protocol_message",
        "Unpack protocol message",
        CompactProtocol,
        Read,
        NONE,
    ),
    row("hash_payload", "Hash payload", CompactProtocol, Read, NONE),
    row(
        "store_protocol_blob",
        "Store protocol blob",
        CompactProtocol,
        Put,
        NONE,
    ),
    // Runs on the writer: it bumps the access counters list_protocol_blobs shows.
    row(
        "get_protocol_blob",
        "Get protocol blob",
        CompactProtocol,
        Put,
        NONE,
    ),
    row(
        "list_protocol_blobs",
        "List protocol blobs",
        CompactProtocol,
        Read,
        B,
    ),
    row(
        "wait_for_updates",
        "Wait for updates",
        Observability,
        Read,
        W | O | B,
    ),
    row("read_snapshot", "Read snapshot", Observability, Read, O | B),
    // Artifacts (tools-more §3).
    row(
        "create_artifact_upload",
        "Create artifact upload",
        Artifacts,
        Add,
        O,
    ),
    row(
        "create_artifact_download",
        "Create artifact download",
        Artifacts,
        Add,
        O,
    ),
    row(
        "create_task_artifact_downloads",
        "Create task artifact downloads",
        Artifacts,
        Add,
        O,
    ),
    row("share_artifact", "Share artifact", Artifacts, Add, O),
    row("list_artifacts", "List artifacts", Artifacts, Read, O | B),
    row(
        "attach_task_artifact",
        "Attach task artifact",
        Artifacts,
        Put,
        O,
    ),
    row(
        "list_task_artifacts",
        "List task artifacts",
        Artifacts,
        Read,
        O | B,
    ),
    row(
        "get_task_handoff",
        "Get task handoff",
        Artifacts,
        // include_downloads issues download tickets.
        Add,
        W | O,
    ),
    // Observability (tools-more §4).
    row(
        "get_activity_log",
        "Get activity log",
        Observability,
        Read,
        O | B,
    ),
    row(
        "get_kpi_snapshot",
        "Get KPI snapshot",
        Observability,
        Read,
        O | B,
    ),
    row(
        "get_transport_snapshot",
        "Get transport snapshot",
        Observability,
        Read,
        B,
    ),
    row(
        "evaluate_slo_alerts",
        "Evaluate SLO alerts",
        Observability,
        Add,
        NONE,
    ),
    row(
        "list_slo_alerts",
        "List SLO alerts",
        Observability,
        Read,
        O | B,
    ),
    row(
        "get_auth_coverage",
        "Get auth coverage",
        Observability,
        Read,
        B,
    ),
    row(
        "run_maintenance",
        "Run maintenance",
        Observability,
        Replace,
        NONE,
    ),
];

pub fn entry(tool: &str) -> Option<&'static Entry> {
    CATALOG.iter().find(|row| row.name == tool)
}

/// The MCP annotations of `tool`: its catalog row stated as hints (none without a row).
/// A read-only tool omits destructiveHint and idempotentHint: MCP defines them only for
/// tools that write, and every listing pays for them.
pub fn annotations(tool: &str) -> Option<ToolAnnotations> {
    let row = entry(tool)?;
    let hints = ToolAnnotations::with_title(row.title)
        .read_only(row.effect.read_only())
        .open_world(false);
    Some(if row.effect.read_only() {
        hints
    } else {
        hints
            .destructive(row.effect.destructive())
            .idempotent(row.effect.idempotent())
    })
}

/// The refusal of a call outside the connection's profile.
pub fn outside_profile(tool: &str, profile: Profile) -> serde_json::Value {
    serde_json::json!({
        "success": false,
        "error_code": "TOOL_NOT_IN_PROFILE",
        "error": format!(
            "{tool} is not in this connection's tool profile '{}': connect to /mcp?tools=full \
             (or send x-mcp-hub-tools: full) to use it",
            profile.as_str()
        ),
        "profile": profile.as_str(),
    })
}

/// Sent on initialize: what the hub is for, where to start, and the shared arguments that
/// tools/list leaves out of every schema (kept under 1 KB).
pub const INSTRUCTIONS: &str = "Agent Hub coordinates AI coding agents: messages, a task board \
with leased claims, shared context, consensus, artifacts and live updates, all durable. Start \
with register_agent (onboarding_mode none or compact) and keep auth.token. Every tool also takes \
auth_token (or send Authorization: Bearer); writes take idempotency_key (a retry with the same \
key and arguments returns the first reply); trace_id/span_id tag rows. Your id goes in each \
tool's caller field (agent_id, from_agent, requesting_agent, created_by). Workers: \
poll_and_claim, work (renew_task_claim before the lease ends), release_task_claim next_status \
done with evidence. Cursor loops (read_messages, list_tasks, get_context): pass next_cursor back \
as cursor; they refuse full mode, so use compact with include_content:true for whole messages. \
Block on wait_for_updates instead of polling. Times are ms since the epoch. Manual: \
get_onboarding; role prompts: prompts/get. Tool profiles: \
/mcp?tools=worker|orchestrator|observer|full.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_rows_are_unique_and_profiles_hold() {
        let mut names: Vec<&str> = CATALOG.iter().map(|row| row.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len(), "one row per tool");
        let worker: Vec<_> = CATALOG
            .iter()
            .filter(|row| Profile::Worker.allows(row.name))
            .collect();
        assert!(worker.len() <= 12, "worker has {} tools", worker.len());
        for row in CATALOG {
            // observer is read-only, apart from the registration that yields its token.
            if Profile::Observer.allows(row.name) && row.name != "register_agent" {
                assert!(row.effect.read_only(), "{} in observer", row.name);
            }
            assert!(Profile::Full.allows(row.name));
        }
        assert!(INSTRUCTIONS.len() <= 1024);
    }

    #[test]
    fn effects_as_hints() {
        // (effect, readOnly, destructive, idempotent)
        let table = [
            (Read, true, false, true),
            (Add, false, false, false),
            (Put, false, false, true),
            (Overwrite, false, true, true),
            (Replace, false, true, false),
        ];
        for (effect, read_only, destructive, idempotent) in table {
            assert_eq!(effect.read_only(), read_only, "{effect:?}");
            assert_eq!(effect.destructive(), destructive, "{effect:?}");
            assert_eq!(effect.idempotent(), idempotent, "{effect:?}");
        }
    }

    #[test]
    fn profile_names_parse() {
        for profile in Profile::ALL {
            assert_eq!(Profile::parse(profile.as_str()), Some(profile));
        }
        assert_eq!(Profile::parse(" Worker "), Some(Profile::Worker));
        assert_eq!(Profile::parse("admin"), None);
    }
}
