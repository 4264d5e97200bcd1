//! Artifact tools (tools-more §3): parse → one `service::artifacts` call → render. Files
//! travel over the HTTP side channel (`http::artifacts`); these tools hand out its tickets
//! and manage who may use them. Full rows never show `storage_path` (D14).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::text::{char_count, prefix};
use super::{Activity, Category, OpCtx, ToolDef, ToolError, ToolResult, int_arg, non_blank_string};
use crate::service::artifacts::{
    self as service, AttachCommand, CreateUpload, DownloadEntry, Handoff, HandoffCommand, Issued,
    IssuedTicket, ListCommand, ShareCommand, ShareOutcome, TaskBinding, TaskDownloads,
    TaskDownloadsCommand,
};
use crate::service::tasks::{TaskRef, task_view};
use crate::store::artifacts::{ArtifactRow, Attached};
use crate::store::{Db, WriteTx};
use crate::tool_args;

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::mutating_rendered(
            "create_artifact_upload",
            Category::Artifacts,
            "Create an artifact and a one-use upload URL (POST the bytes); share or attach it so others can read it.",
            Activity::Stream,
            create_artifact_upload,
            render_upload,
        ),
        super::mutating_rendered(
            "create_artifact_download",
            Category::Artifacts,
            "One-use download URL (GET, Range) for an artifact you can access.",
            Activity::Stream,
            create_artifact_download,
            render_download,
        ),
        super::mutating_rendered(
            "create_task_artifact_downloads",
            Category::Artifacts,
            "Download URLs for a task's ready artifacts.",
            Activity::Stream,
            create_task_artifact_downloads,
            render_task_downloads,
        ),
        super::mutating_rendered(
            "share_artifact",
            Category::Artifacts,
            "Let to_agent (omitted: all) download an artifact; irrevocable.",
            Activity::Stream,
            share_artifact,
            render_share,
        ),
        super::reading(
            "list_artifacts",
            Category::Artifacts,
            "Artifacts you can access, newest first.",
            list_artifacts,
        ),
        super::mutating_rendered(
            "attach_task_artifact",
            Category::Artifacts,
            "Attach an artifact to a task; its holder gains access.",
            Activity::Stream,
            attach_task_artifact,
            render_attach,
        ),
        super::reading(
            "list_task_artifacts",
            Category::Artifacts,
            "A task's artifacts; details only for those you can access.",
            list_task_artifacts,
        ),
        super::mutating_rendered(
            "get_task_handoff",
            Category::Artifacts,
            "One packet to pick up a task: task, dependencies, evidence, artifacts.",
            Activity::Quiet,
            get_task_handoff,
            render_handoff,
        ),
    ]
}

/// Response modes of the artifact listings.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactMode {
    #[default]
    Full,
    Compact,
    Tiny,
}

/// A full artifact row, as agents see it (no server path).
pub fn artifact_full(row: &ArtifactRow) -> Value {
    json!({
        "id": row.id,
        "created_by": row.created_by,
        "name": row.name,
        "mime_type": row.mime_type,
        "size_bytes": row.size_bytes,
        "sha256": row.sha256,
        "namespace": row.namespace,
        "summary": row.summary,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "access_count": row.access_count,
        "ttl_expires_at": row.ttl_expires_at,
        "ready": row.is_ready(),
    })
}

fn artifact_view(row: &ArtifactRow, mode: ArtifactMode) -> Value {
    match mode {
        ArtifactMode::Full => artifact_full(row),
        ArtifactMode::Compact => json!({
            "id": row.id,
            "name": row.name,
            "mime_type": row.mime_type,
            "size_bytes": row.size_bytes,
            "sha256": row.sha256,
            "namespace": row.namespace,
            "created_by": row.created_by,
            "created_at": row.created_at,
            "ready": row.is_ready(),
        }),
        ArtifactMode::Tiny => json!({
            "id": row.id,
            "name": row.name,
            "size_bytes": row.size_bytes,
            "namespace": row.namespace,
            "ready": row.is_ready(),
        }),
    }
}

fn ticket_view(ticket: &IssuedTicket) -> Value {
    let mut view = json!({
        "method": ticket.kind.method(),
        "url": ticket.url,
        "expires_at": ticket.expires_at,
    });
    if ticket.kind == crate::domain::artifact::TicketKind::Upload {
        view["max_bytes"] = json!(ticket.max_bytes);
    }
    view
}

/// `{artifact_id, ready, has_access}` plus, for artifacts the viewer can access, `fields`.
fn hint(link: &Attached, fields: &[&str]) -> Value {
    let artifact = &link.artifact;
    let mut view = Map::new();
    view.insert("artifact_id".into(), json!(artifact.id));
    view.insert("ready".into(), json!(artifact.is_ready()));
    view.insert("has_access".into(), json!(link.has_access));
    for field in fields {
        let value = match *field {
            "name" if link.has_access => json!(artifact.name),
            "mime_type" if link.has_access => json!(artifact.mime_type),
            "size_bytes" if link.has_access => json!(artifact.size_bytes),
            "sha256" if link.has_access => json!(artifact.sha256),
            "updated_at" => json!(artifact.updated_at),
            "namespace" => json!(artifact.namespace),
            "task_added_by" => json!(link.added_by),
            "task_linked_at" => json!(link.attached_at),
            _ => continue,
        };
        let key = match *field {
            "task_added_by" => "added_by",
            "task_linked_at" => "created_at",
            other => other,
        };
        view.insert(key.into(), value);
    }
    Value::Object(view)
}

/// `task_artifacts` of a claim with include_artifacts.
pub fn claim_hints(links: &[Attached]) -> Value {
    Value::Array(links.iter().map(|link| hint(link, &[])).collect())
}

const FULL_HINT: &[&str] = &[
    "name",
    "size_bytes",
    "mime_type",
    "sha256",
    "updated_at",
    "namespace",
];
const COMPACT_HINT: &[&str] = &["name", "size_bytes", "updated_at"];

fn task_ref(task_id: Option<f64>) -> TaskRef {
    TaskRef(task_id.unwrap_or(0.0))
}

// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateArtifactUploadArgs {
    // The caller; becomes the artifact's creator.
    pub agent_id: String,
    // File name ("" → artifact.bin).
    pub name: String,
    // Default application/octet-stream; the upload's Content-Type replaces it.
    pub mime_type: Option<String>,
    pub namespace: Option<String>,
    // Short description (cut to 400 chars).
    pub summary: Option<String>,
    // Upload ticket lifetime, 30-86400 s (default 300).
    pub ttl_sec: Option<f64>,
    // How long the artifact is kept, seconds (default 86400).
    pub retention_sec: Option<f64>,
    // Upload size cap, 1024 to the hub's max (default the max).
    pub max_bytes: Option<f64>,
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(CreateArtifactUploadArgs, caller = agent_id, idempotent);

fn create_artifact_upload(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: CreateArtifactUploadArgs,
) -> Result<Issued, ToolError> {
    let command = CreateUpload {
        name: args.name,
        mime_type: args.mime_type,
        namespace: args.namespace,
        summary: args.summary,
        ttl_sec: args.ttl_sec,
        retention_sec: args.retention_sec,
        max_bytes: args.max_bytes,
    };
    service::create_upload(tx, ctx, command)
}

fn render_upload(issued: Issued) -> Value {
    json!({
        "success": true,
        "artifact": artifact_full(&issued.artifact),
        "upload": ticket_view(&issued.ticket),
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateArtifactDownloadArgs {
    // The caller; needs access to the artifact.
    pub agent_id: String,
    pub artifact_id: Option<String>,
    // Ticket lifetime, 30-86400 s (default 180).
    pub ttl_sec: Option<f64>,
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(CreateArtifactDownloadArgs, caller = agent_id, idempotent);

fn create_artifact_download(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: CreateArtifactDownloadArgs,
) -> Result<Issued, ToolError> {
    let artifact_id = non_blank_string(args.artifact_id.as_deref());
    service::create_download(tx, ctx, artifact_id, args.ttl_sec)
}

fn render_download(issued: Issued) -> Value {
    json!({
        "success": true,
        "artifact": artifact_full(&issued.artifact),
        "download": ticket_view(&issued.ticket),
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateTaskArtifactDownloadsArgs {
    // The caller.
    pub agent_id: String,
    pub task_id: Option<f64>,
    // Ticket lifetime, 30-86400 s (default 180).
    pub ttl_sec: Option<f64>,
    // Skip artifacts without bytes yet (default true).
    pub only_ready: Option<bool>,
    // Consider at most this many attachments, 1-500 (default all).
    pub limit: Option<f64>,
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(
    CreateTaskArtifactDownloadsArgs,
    caller = agent_id,
    idempotent
);

fn create_task_artifact_downloads(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: CreateTaskArtifactDownloadsArgs,
) -> Result<TaskDownloads, ToolError> {
    let command = TaskDownloadsCommand {
        task: task_ref(args.task_id),
        ttl_sec: args.ttl_sec,
        only_ready: args.only_ready != Some(false),
        limit: args.limit.map(|limit| int_arg(Some(limit), 500, 1, 500)),
    };
    service::task_downloads(tx, ctx, command)
}

fn download_entry(entry: &DownloadEntry) -> Value {
    json!({
        "artifact_id": entry.artifact.id,
        "name": entry.artifact.name,
        "size_bytes": entry.artifact.size_bytes,
        "sha256": entry.artifact.sha256,
        "ready": entry.ready,
        "download": ticket_view(&entry.ticket),
    })
}

fn summary_view(downloads: &TaskDownloads) -> Value {
    let s = downloads.summary;
    json!({
        "total_attached": s.total_attached,
        "considered": s.considered,
        "issued": s.issued,
        "skipped_limit": s.skipped_limit,
        "skipped_not_ready": s.skipped_not_ready,
        "skipped_no_access": s.skipped_no_access,
    })
}

fn render_task_downloads(downloads: TaskDownloads) -> Value {
    json!({
        "success": true,
        "task_id": downloads.task_id,
        "downloads": downloads.entries.iter().map(download_entry).collect::<Vec<_>>(),
        "summary": summary_view(&downloads),
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareArtifactArgs {
    // The caller; needs access to the artifact.
    pub from_agent: String,
    pub artifact_id: Option<String>,
    // Who may download it; omitted or blank = everyone.
    pub to_agent: Option<String>,
    // Also attach it to this task.
    pub task_id: Option<f64>,
    // Share with the task's assignee too (default true).
    pub auto_share_assignee: Option<bool>,
    // Appended to the notification (cut to 400 chars).
    pub note: Option<String>,
    // Send an artifact_ref message (default true).
    pub notify: Option<bool>,
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(ShareArtifactArgs, caller = from_agent, idempotent);

fn share_artifact(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: ShareArtifactArgs,
) -> Result<ShareOutcome, ToolError> {
    let command = ShareCommand {
        artifact_id: non_blank_string(args.artifact_id.as_deref()),
        to_agent: non_blank_string(args.to_agent.as_deref()),
        task: args.task_id.map(TaskRef),
        auto_share_assignee: args.auto_share_assignee != Some(false),
        note: non_blank_string(args.note.as_deref()).map(|note| prefix(&note, 400).to_string()),
        notify: args.notify != Some(false),
    };
    service::share(tx, ctx, command)
}

fn binding_view(binding: &TaskBinding) -> Value {
    json!({
        "task_id": binding.task_id,
        "attached": binding.attached,
        "already_attached": binding.already_attached,
        "shared_to_assignee": binding.shared_to_assignee,
        "assignee": binding.assignee,
    })
}

fn render_share(outcome: ShareOutcome) -> Value {
    let mut body = json!({
        "success": true,
        "artifact_id": outcome.artifact_id,
        "shared_to": outcome.shared_to,
        "notified": outcome.notified,
    });
    if let Some(binding) = &outcome.task_binding {
        body["task_binding"] = binding_view(binding);
    }
    body
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListArtifactsArgs {
    // The caller; only artifacts it can access are listed.
    pub agent_id: String,
    // Filter: artifacts created by this agent.
    pub created_by: Option<String>,
    pub namespace: Option<String>,
    // Page size, 1-500 (default 100).
    pub limit: Option<f64>,
    pub offset: Option<f64>,
    // full (default), compact or tiny.
    pub response_mode: Option<ArtifactMode>,
    pub auth_token: Option<String>,
}
tool_args!(ListArtifactsArgs, caller = agent_id);

fn list_artifacts(db: &Db, ctx: &mut OpCtx, args: ListArtifactsArgs) -> ToolResult {
    let command = ListCommand {
        created_by: non_blank_string(args.created_by.as_deref()),
        namespace: non_blank_string(args.namespace.as_deref()),
        limit: int_arg(args.limit, 100, 1, 500),
        offset: int_arg(args.offset, 0, 0, i64::MAX),
    };
    let rows = service::list(db, ctx, &command)?;
    let mode = args.response_mode.unwrap_or_default();
    Ok(json!({
        "success": true,
        "artifacts": rows.iter().map(|row| artifact_view(row, mode)).collect::<Vec<_>>(),
    }))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AttachTaskArtifactArgs {
    pub task_id: Option<f64>,
    pub artifact_id: Option<String>,
    // The caller; needs access to the artifact.
    pub agent_id: String,
    // Share with the task's assignee too (default true).
    pub auto_share_assignee: Option<bool>,
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(AttachTaskArtifactArgs, caller = agent_id, idempotent);

fn attach_task_artifact(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: AttachTaskArtifactArgs,
) -> Result<(String, TaskBinding), ToolError> {
    let command = AttachCommand {
        task: task_ref(args.task_id),
        artifact_id: non_blank_string(args.artifact_id.as_deref()),
        auto_share_assignee: args.auto_share_assignee != Some(false),
    };
    service::attach(tx, ctx, command)
}

fn render_attach((artifact_id, binding): (String, TaskBinding)) -> Value {
    json!({
        "success": true,
        "task_id": binding.task_id,
        "artifact_id": artifact_id,
        "attached": binding.attached,
        "already_attached": binding.already_attached,
        "assignee": binding.assignee,
        "shared_to_assignee": binding.shared_to_assignee,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListTaskArtifactsArgs {
    pub task_id: Option<f64>,
    // The caller.
    pub agent_id: String,
    // Page size, 1-500 (default 100).
    pub limit: Option<f64>,
    pub offset: Option<f64>,
    // full (default), compact or tiny.
    pub response_mode: Option<ArtifactMode>,
    pub auth_token: Option<String>,
}
tool_args!(ListTaskArtifactsArgs, caller = agent_id);

fn list_task_artifacts(db: &Db, ctx: &mut OpCtx, args: ListTaskArtifactsArgs) -> ToolResult {
    let limit = int_arg(args.limit, 100, 1, 500);
    let offset = int_arg(args.offset, 0, 0, i64::MAX);
    let page = service::list_task(db, ctx, task_ref(args.task_id), limit, offset)?;
    let task_id = args.task_id.map(f64::floor);
    let rows: Vec<Value> = page
        .rows
        .iter()
        .map(|link| match args.response_mode.unwrap_or_default() {
            ArtifactMode::Full => {
                let mut view = hint(
                    link,
                    &[
                        "task_added_by",
                        "task_linked_at",
                        "namespace",
                        "updated_at",
                        "name",
                        "mime_type",
                        "size_bytes",
                        "sha256",
                    ],
                );
                view["task_id"] = json!(task_id.map(|id| id as i64));
                view
            }
            ArtifactMode::Compact => hint(link, COMPACT_HINT),
            ArtifactMode::Tiny => hint(link, &[]),
        })
        .collect();
    Ok(json!({
        "success": true,
        "artifacts": rows,
        "has_more": page.has_more,
        "next_offset": page.next_offset,
    }))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetTaskHandoffArgs {
    pub task_id: Option<f64>,
    // The caller.
    pub agent_id: String,
    // full (default), compact or tiny.
    pub response_mode: Option<ArtifactMode>,
    // Newest evidence refs shown, 1-100 (default 16).
    pub evidence_limit: Option<f64>,
    // Artifact hints shown, 1-200 (default 32).
    pub artifact_limit: Option<f64>,
    // Also issue download tickets (default false).
    pub include_downloads: Option<bool>,
    // Their lifetime, 30-86400 s (default 180).
    pub download_ttl_sec: Option<f64>,
    // Only for artifacts with bytes (default true).
    pub only_ready_downloads: Option<bool>,
    pub auth_token: Option<String>,
}
tool_args!(GetTaskHandoffArgs, caller = agent_id);

fn get_task_handoff(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: GetTaskHandoffArgs,
) -> Result<(Handoff, ArtifactMode), ToolError> {
    let command = HandoffCommand {
        task: task_ref(args.task_id),
        evidence_limit: int_arg(args.evidence_limit, 16, 1, 100),
        artifact_limit: int_arg(args.artifact_limit, 32, 1, 200),
        include_downloads: args.include_downloads == Some(true),
        download_ttl_sec: args.download_ttl_sec,
        only_ready_downloads: args.only_ready_downloads != Some(false),
    };
    let handoff = service::handoff(tx, ctx, command)?;
    Ok((handoff, args.response_mode.unwrap_or_default()))
}

fn render_handoff((handoff, mode): (Handoff, ArtifactMode)) -> Value {
    let task = &handoff.task;
    let task_json = match mode {
        ArtifactMode::Full => {
            let mut view = task_view(task);
            view["depends_on"] = json!(handoff.depends_on);
            view
        }
        ArtifactMode::Compact => json!({
            "id": task.id,
            "title": task.title,
            "status": task.status.as_str(),
            "assigned_to": task.assigned_to,
            "priority": task.priority.as_str(),
            "namespace": task.namespace,
            "execution_mode": task.execution_mode.as_str(),
            "consistency_mode": task.consistency_mode.as_str(),
            "trace_id": task.trace_id,
            "span_id": task.span_id,
            "updated_at": task.updated_at,
        }),
        ArtifactMode::Tiny => json!({
            "id": task.id,
            "status": task.status.as_str(),
            "assigned_to": task.assigned_to,
            "priority": task.priority.as_str(),
            "namespace": task.namespace,
            "execution_mode": task.execution_mode.as_str(),
            "consistency_mode": task.consistency_mode.as_str(),
            "trace_id": task.trace_id.as_deref().map(|t| prefix(t, 12)),
            "span_id": task.span_id.as_deref().map(|s| prefix(s, 12)),
            "updated_at": task.updated_at,
            "title_preview": prefix(&task.title, 72),
            "title_chars": char_count(&task.title),
        }),
    };
    let hint_fields: &[&str] = match mode {
        ArtifactMode::Full => FULL_HINT,
        ArtifactMode::Compact => COMPACT_HINT,
        ArtifactMode::Tiny => &[],
    };
    let mut body = json!({
        "success": true,
        "task": task_json,
        "depends_on": handoff.depends_on,
        "evidence_refs": handoff.evidence.iter().map(|e| &e.evidence_ref).collect::<Vec<_>>(),
        "artifacts": handoff.artifacts.iter().map(|l| hint(l, hint_fields)).collect::<Vec<_>>(),
    });
    if mode == ArtifactMode::Full {
        body["evidence"] = handoff
            .evidence
            .iter()
            .map(|e| {
                json!({"evidence_ref": e.evidence_ref, "added_by": e.added_by,
                       "created_at": e.created_at})
            })
            .collect();
    }
    match &handoff.downloads {
        None => {}
        Some(Ok(downloads)) => {
            body["artifact_downloads"] = downloads
                .entries
                .iter()
                .map(|entry| match mode {
                    ArtifactMode::Full => download_entry(entry),
                    ArtifactMode::Compact => json!({
                        "artifact_id": entry.artifact.id,
                        "name": entry.artifact.name,
                        "size_bytes": entry.artifact.size_bytes,
                        "sha256": entry.artifact.sha256,
                        "download": ticket_view(&entry.ticket),
                    }),
                    ArtifactMode::Tiny => json!({
                        "artifact_id": entry.artifact.id,
                        "url": entry.ticket.url,
                        "expires_at": entry.ticket.expires_at,
                    }),
                })
                .collect();
            body["artifact_downloads_summary"] = summary_view(downloads);
        }
        Some(Err(refusal)) => {
            body["artifact_downloads_error"] =
                json!({"error_code": refusal.code, "error": refusal.message});
        }
    }
    body
}
