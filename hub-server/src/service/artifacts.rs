//! Artifact operations (tools-more §3) for `ctx.caller`: creating artifacts with upload
//! tickets, download tickets (single and per task), sharing, task links, listings and the
//! task handoff packet; plus the ticket checks of the HTTP side channel (validate an upload
//! before consuming its ticket, commit it, consume a download ticket).
//!
//! Access is decided here, always for the caller: its creator, agents it was shared with
//! (or `*`), and the holder of a task it is attached to. Tickets are checked only at issue
//! time; afterwards a ticket is a single-use bearer capability, bound to its kind, its
//! artifact and (under enforce, when a bearer token comes along) its agent.

use serde_json::json;

use super::tasks::{TaskRef, acting, task_not_found};
use super::{Ctx, Refusal};
use crate::auth::{self, AuthOutcome};
use crate::config::{AuthMode, Config};
use crate::domain::artifact::{self as rules, TicketKind};
use crate::store::activity::ActivityRow;
use crate::store::artifacts::{self as store, ArtifactRow, Attached, NewArtifact, Ticket};
use crate::store::messages::{self as message_store, NewMessage};
use crate::store::tasks::{self as task_store, EvidenceRow, TaskRow};
use crate::store::{self as stores, Db, WriteTx};

/// A ticket just issued: the only moment its token exists outside the caller.
#[derive(Debug, Clone)]
pub struct IssuedTicket {
    pub kind: TicketKind,
    pub url: String,
    pub expires_at: i64,
    pub max_bytes: i64,
}

/// Stores a new ticket (its hash) and returns its URL.
fn issue(
    tx: &mut WriteTx<'_>,
    config: &Config,
    agent_id: &str,
    kind: TicketKind,
    artifact_id: &str,
    ttl_sec: i64,
    max_bytes: i64,
) -> Result<IssuedTicket, Refusal> {
    let token = auth::new_token();
    let ticket = Ticket {
        kind,
        artifact_id: artifact_id.to_string(),
        agent_id: agent_id.to_string(),
        expires_at: tx.now_ms() + ttl_sec * 1000,
        max_bytes,
    };
    store::insert_ticket(tx, &rules::token_hash(&token), &ticket)?;
    Ok(IssuedTicket {
        kind,
        url: rules::ticket_url(&config.public_base_url, kind, artifact_id, &token),
        expires_at: ticket.expires_at,
        max_bytes,
    })
}

fn artifact_id_required(tool: &str) -> Refusal {
    Refusal::new(
        "ARTIFACT_ID_REQUIRED",
        format!("{tool}: `artifact_id` is required (the id create_artifact_upload returned)"),
    )
}

/// The artifact a call names, if it exists and the caller may access it.
fn accessible(db: &Db, tool: &str, artifact_id: &str, agent: &str) -> Result<ArtifactRow, Refusal> {
    let Some(artifact) = store::get(db, artifact_id)? else {
        return Err(Refusal::new(
            "ARTIFACT_NOT_FOUND",
            format!("{tool}: artifact {artifact_id:?} does not exist (or has expired)"),
        ));
    };
    if !store::has_access(db, artifact_id, agent)? {
        return Err(denied(tool, artifact_id, agent));
    }
    Ok(artifact)
}

fn denied(tool: &str, artifact_id: &str, agent: &str) -> Refusal {
    Refusal::new(
        "ARTIFACT_ACCESS_DENIED",
        format!(
            "{tool}: {agent:?} has no access to artifact {artifact_id:?}; its creator (or \
             anyone it was shared with) must share_artifact it to you"
        ),
    )
}

fn load_task(db: &Db, tool: &str, task: TaskRef) -> Result<TaskRow, Refusal> {
    match task.id().map(|id| task_store::get(db, id)).transpose()? {
        Some(Some(row)) => Ok(row),
        _ => Err(task_not_found(tool, task, &format!("{tool}_failed"))),
    }
}

// ---------------------------------------------------------------------------------------
// create_artifact_upload

#[derive(Debug, Clone)]
pub struct CreateUpload {
    pub name: String,
    pub mime_type: Option<String>,
    pub namespace: Option<String>,
    pub summary: Option<String>,
    pub ttl_sec: Option<f64>,
    pub retention_sec: Option<f64>,
    pub max_bytes: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Issued {
    pub artifact: ArtifactRow,
    pub ticket: IssuedTicket,
}

pub fn create_upload(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: CreateUpload,
) -> Result<Issued, Refusal> {
    const TOOL: &str = "create_artifact_upload";
    let limits = &ctx.config.artifact;
    let Some(name) = rules::artifact_name(&command.name, limits.max_name_chars) else {
        return Err(Refusal::new(
            "ARTIFACT_NAME_REQUIRED",
            format!("{TOOL}: `name` is blank; give the file name"),
        ));
    };
    let summary = command.summary.as_deref().unwrap_or("").trim();
    let retention = rules::retention_sec(
        command.retention_sec,
        limits.retention_sec,
        ctx.config.artifact_ttl_ms,
    );
    let new = NewArtifact {
        id: uuid::Uuid::new_v4().to_string(),
        created_by: acting(ctx),
        name,
        mime_type: rules::trimmed_or(command.mime_type.as_deref(), "application/octet-stream"),
        namespace: rules::trimmed_or(command.namespace.as_deref(), "default"),
        summary: crate::domain::text::prefix(summary, limits.max_summary_chars).to_string(),
        ttl_expires_at: ctx.now_ms.saturating_add(retention.saturating_mul(1000)),
    };
    let artifact = store::insert(tx, &new)?;
    let max_bytes = rules::ticket_max_bytes(command.max_bytes, limits.max_bytes);
    let ttl = rules::ticket_ttl_sec(command.ttl_sec, limits.upload_ttl_sec);
    let config = ctx.config.clone();
    let ticket = issue(
        tx,
        &config,
        &new.created_by,
        TicketKind::Upload,
        &artifact.id,
        ttl,
        max_bytes,
    )?;
    ctx.log(
        TOOL,
        format!(
            "artifact_id={} name={} max_bytes={max_bytes}",
            artifact.id, artifact.name
        ),
    );
    Ok(Issued { artifact, ticket })
}

// ---------------------------------------------------------------------------------------
// create_artifact_download

pub fn create_download(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    artifact_id: Option<String>,
    ttl_sec: Option<f64>,
) -> Result<Issued, Refusal> {
    const TOOL: &str = "create_artifact_download";
    let agent = acting(ctx);
    let artifact_id = artifact_id.ok_or_else(|| artifact_id_required(TOOL))?;
    let Some(artifact) = store::get(tx.db(), &artifact_id)? else {
        return Err(Refusal::new(
            "ARTIFACT_NOT_FOUND",
            format!("{TOOL}: artifact {artifact_id:?} does not exist (or has expired)"),
        ));
    };
    if !artifact.is_ready() {
        return Err(Refusal::new(
            "ARTIFACT_NOT_UPLOADED",
            format!(
                "{TOOL}: artifact {artifact_id:?} has no bytes yet; its creator must POST \
                 them to the upload URL first"
            ),
        ));
    }
    if !store::has_access(tx.db(), &artifact_id, &agent)? {
        return Err(denied(TOOL, &artifact_id, &agent));
    }
    let config = ctx.config.clone();
    let ttl = rules::ticket_ttl_sec(ttl_sec, config.artifact.download_ttl_sec);
    let ticket = issue(
        tx,
        &config,
        &agent,
        TicketKind::Download,
        &artifact.id,
        ttl,
        artifact.size_bytes.max(rules::MIN_TICKET_BYTES),
    )?;
    ctx.log(TOOL, format!("artifact_id={artifact_id} ttl_sec={ttl}"));
    Ok(Issued { artifact, ticket })
}

// ---------------------------------------------------------------------------------------
// create_task_artifact_downloads (also the downloads of get_task_handoff)

#[derive(Debug, Clone)]
pub struct TaskDownloadsCommand {
    pub task: TaskRef,
    pub ttl_sec: Option<f64>,
    pub only_ready: bool,
    /// Floored and clamped to 1-500 by the caller; `None` = all.
    pub limit: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct DownloadEntry {
    pub artifact: ArtifactRow,
    pub ready: bool,
    pub ticket: IssuedTicket,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadSummary {
    pub total_attached: i64,
    pub considered: i64,
    pub issued: i64,
    pub skipped_limit: i64,
    pub skipped_not_ready: i64,
    pub skipped_no_access: i64,
}

#[derive(Debug, Clone)]
pub struct TaskDownloads {
    pub task_id: i64,
    pub entries: Vec<DownloadEntry>,
    pub summary: DownloadSummary,
}

/// At most this many attachments are looked at per call.
const MAX_TASK_ATTACHMENTS: i64 = 1000;

pub fn task_downloads(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: TaskDownloadsCommand,
) -> Result<TaskDownloads, Refusal> {
    const TOOL: &str = "create_task_artifact_downloads";
    let Some(task_id) = command.task.id() else {
        return Err(Refusal::new(
            "TASK_ID_REQUIRED",
            format!("{TOOL}: `task_id` must be a positive task id"),
        ));
    };
    // D11: a task that does not exist is an error, not an empty success.
    let task = load_task(tx.db(), TOOL, command.task)?;
    let downloads = issue_task_downloads(tx, ctx, &task, &command)?;
    let summary = downloads.summary;
    ctx.log(
        TOOL,
        format!(
            "task_id={task_id} total={} considered={} issued={} skipped_not_ready={} \
             skipped_no_access={}",
            summary.total_attached,
            summary.considered,
            summary.issued,
            summary.skipped_not_ready,
            summary.skipped_no_access
        ),
    );
    Ok(downloads)
}

fn issue_task_downloads(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    task: &TaskRow,
    command: &TaskDownloadsCommand,
) -> Result<TaskDownloads, Refusal> {
    let agent = acting(ctx);
    let config = ctx.config.clone();
    let ttl = rules::ticket_ttl_sec(command.ttl_sec, config.artifact.download_ttl_sec);
    let attached = store::task_attachments(tx.db(), task.id, &agent, MAX_TASK_ATTACHMENTS, 0)?;
    let total = attached.len() as i64;
    let considered = command.limit.map_or(total, |limit| limit.min(total));
    let mut summary = DownloadSummary {
        total_attached: total,
        considered,
        skipped_limit: total - considered,
        ..Default::default()
    };
    let mut entries = Vec::new();
    for link in attached.into_iter().take(considered as usize) {
        let ready = link.artifact.is_ready();
        if !ready && command.only_ready {
            summary.skipped_not_ready += 1;
        } else if !link.has_access {
            summary.skipped_no_access += 1;
        } else if !ready {
            // Asked for not-ready ones too: there is nothing to download yet.
            summary.skipped_not_ready += 1;
        } else {
            let ticket = issue(
                tx,
                &config,
                &agent,
                TicketKind::Download,
                &link.artifact.id,
                ttl,
                link.artifact.size_bytes.max(rules::MIN_TICKET_BYTES),
            )?;
            summary.issued += 1;
            entries.push(DownloadEntry {
                artifact: link.artifact,
                ready,
                ticket,
            });
        }
    }
    Ok(TaskDownloads {
        task_id: task.id,
        entries,
        summary,
    })
}

// ---------------------------------------------------------------------------------------
// share_artifact and attach_task_artifact

#[derive(Debug, Clone)]
pub struct ShareCommand {
    pub artifact_id: Option<String>,
    /// `None` = everyone (`*`).
    pub to_agent: Option<String>,
    pub task: Option<TaskRef>,
    pub auto_share_assignee: bool,
    pub note: Option<String>,
    pub notify: bool,
}

/// What linking an artifact to a task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskBinding {
    pub task_id: i64,
    pub attached: bool,
    pub already_attached: bool,
    pub shared_to_assignee: bool,
    pub assignee: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ShareOutcome {
    pub artifact_id: String,
    pub shared_to: String,
    pub notified: bool,
    pub task_binding: Option<TaskBinding>,
}

/// Every refusal comes before the first write (D10), and the op runs in one savepoint.
pub fn share(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: ShareCommand,
) -> Result<ShareOutcome, Refusal> {
    const TOOL: &str = "share_artifact";
    let agent = acting(ctx);
    let artifact_id = command
        .artifact_id
        .ok_or_else(|| artifact_id_required(TOOL))?;
    let artifact = accessible(tx.db(), TOOL, &artifact_id, &agent)?;
    let task = command
        .task
        .map(|task| load_task(tx.db(), TOOL, task))
        .transpose()?;
    let target = command.to_agent.clone().unwrap_or_else(|| "*".into());
    store::share(tx, &artifact_id, &target, &agent)?;
    let task_binding = task
        .map(|task| bind_task(tx, &agent, &task, &artifact_id, command.auto_share_assignee))
        .transpose()?;
    if command.notify {
        let mut content = format!("[artifact:{artifact_id}] {}", artifact.name);
        if let Some(note) = &command.note {
            content.push_str(&format!(" | {note}"));
        }
        let mut metadata = json!({
            "type": "artifact_ref",
            "artifact_id": artifact_id,
            "artifact_name": artifact.name,
            "artifact_sha256": artifact.sha256,
            "namespace": artifact.namespace,
        });
        if let Some(binding) = &task_binding {
            metadata["task_id"] = json!(binding.task_id);
        }
        message_store::insert(
            tx,
            &NewMessage {
                from_agent: agent.clone(),
                to_agent: command.to_agent.clone(),
                content,
                metadata: metadata.to_string(),
                trace_id: None,
                span_id: None,
            },
        )?;
    }
    let mut details = format!("artifact_id={artifact_id} to={target}");
    if let Some(binding) = &task_binding {
        details.push_str(&format!(
            " task_id={} attached={} shared_to_assignee={}",
            binding.task_id,
            u8::from(binding.attached),
            u8::from(binding.shared_to_assignee)
        ));
    }
    ctx.log(TOOL, details);
    Ok(ShareOutcome {
        artifact_id,
        shared_to: target,
        notified: command.notify,
        task_binding,
    })
}

/// Links the artifact to the task and, if asked, shares it with the task's assignee when
/// the assignee cannot access it yet.
fn bind_task(
    tx: &mut WriteTx<'_>,
    agent: &str,
    task: &TaskRow,
    artifact_id: &str,
    auto_share_assignee: bool,
) -> Result<TaskBinding, Refusal> {
    let attached = store::attach(tx, task.id, artifact_id, agent)?;
    let mut shared_to_assignee = false;
    if let Some(assignee) = task.assigned_to.as_deref().filter(|_| auto_share_assignee) {
        // Holding the task already grants access; an explicit share keeps it after a
        // hand-over of the task.
        let explicit = store::explicitly_shared(tx.db(), artifact_id, assignee)?;
        if !explicit {
            store::share(tx, artifact_id, assignee, agent)?;
            shared_to_assignee = true;
        }
    }
    Ok(TaskBinding {
        task_id: task.id,
        attached,
        already_attached: !attached,
        shared_to_assignee,
        assignee: task.assigned_to.clone(),
    })
}

#[derive(Debug, Clone)]
pub struct AttachCommand {
    pub task: TaskRef,
    pub artifact_id: Option<String>,
    pub auto_share_assignee: bool,
}

pub fn attach(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: AttachCommand,
) -> Result<(String, TaskBinding), Refusal> {
    const TOOL: &str = "attach_task_artifact";
    let agent = acting(ctx);
    let task = load_task(tx.db(), TOOL, command.task)?;
    let artifact_id = command
        .artifact_id
        .ok_or_else(|| artifact_id_required(TOOL))?;
    accessible(tx.db(), TOOL, &artifact_id, &agent)?;
    let binding = bind_task(tx, &agent, &task, &artifact_id, command.auto_share_assignee)?;
    ctx.log(
        TOOL,
        format!(
            "task_id={} artifact_id={artifact_id} created={} shared_to_assignee={}",
            task.id,
            u8::from(binding.attached),
            u8::from(binding.shared_to_assignee)
        ),
    );
    Ok((artifact_id, binding))
}

// ---------------------------------------------------------------------------------------
// Reads: list_artifacts, list_task_artifacts, claim hints

#[derive(Debug, Clone)]
pub struct ListCommand {
    pub created_by: Option<String>,
    pub namespace: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Only what the caller may access.
pub fn list(db: &Db, ctx: &Ctx, command: &ListCommand) -> Result<Vec<ArtifactRow>, Refusal> {
    Ok(store::list_visible(
        db,
        &acting(ctx),
        command.created_by.as_deref(),
        command.namespace.as_deref(),
        command.limit,
        command.offset,
    )?)
}

#[derive(Debug, Clone)]
pub struct TaskArtifactPage {
    pub rows: Vec<Attached>,
    pub has_more: bool,
    pub next_offset: Option<i64>,
}

pub fn list_task(
    db: &Db,
    ctx: &mut Ctx,
    task: TaskRef,
    limit: i64,
    offset: i64,
) -> Result<TaskArtifactPage, Refusal> {
    const TOOL: &str = "list_task_artifacts";
    let task = load_task(db, TOOL, task)?;
    let mut rows = store::task_attachments(db, task.id, &acting(ctx), limit + 1, offset)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    ctx.log(
        TOOL,
        format!(
            "task_id={} returned={} has_more={has_more}",
            task.id,
            rows.len()
        ),
    );
    Ok(TaskArtifactPage {
        next_offset: has_more.then(|| offset + rows.len() as i64),
        rows,
        has_more,
    })
}

/// `task_artifacts` of a claim with `include_artifacts`: every attachment, as `viewer`
/// sees it.
pub fn claim_hints(db: &Db, task_id: i64, viewer: &str) -> Result<Vec<Attached>, Refusal> {
    Ok(store::task_attachments(
        db,
        task_id,
        viewer,
        MAX_TASK_ATTACHMENTS,
        0,
    )?)
}

// ---------------------------------------------------------------------------------------
// get_task_handoff

#[derive(Debug, Clone)]
pub struct HandoffCommand {
    pub task: TaskRef,
    pub evidence_limit: i64,
    pub artifact_limit: i64,
    pub include_downloads: bool,
    pub download_ttl_sec: Option<f64>,
    pub only_ready_downloads: bool,
}

#[derive(Debug, Clone)]
pub struct Handoff {
    pub task: TaskRow,
    pub depends_on: Vec<i64>,
    pub evidence: Vec<EvidenceRow>,
    pub artifacts: Vec<Attached>,
    /// `None` without `include_downloads`; a failure there does not fail the handoff.
    pub downloads: Option<Result<TaskDownloads, Refusal>>,
}

pub fn handoff(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: HandoffCommand,
) -> Result<Handoff, Refusal> {
    const TOOL: &str = "get_task_handoff";
    let task = load_task(tx.db(), TOOL, command.task)?;
    let depends_on = task_store::dependencies(tx.db(), task.id)?;
    let evidence = task_store::recent_evidence(tx.db(), task.id, command.evidence_limit)?;
    let artifacts =
        store::task_attachments(tx.db(), task.id, &acting(ctx), command.artifact_limit, 0)?;
    let downloads = command.include_downloads.then(|| {
        let downloads = TaskDownloadsCommand {
            task: command.task,
            ttl_sec: command.download_ttl_sec,
            only_ready: command.only_ready_downloads,
            limit: Some(command.artifact_limit),
        };
        // Tickets issued before a failure roll back with it, in their own savepoint.
        tx.nested(|tx| issue_task_downloads(tx, ctx, &task, &downloads))
    });
    let downloads_detail = match &downloads {
        None => "downloads=off".to_string(),
        Some(Ok(issued)) => format!("downloads={}", issued.summary.issued),
        Some(Err(refusal)) => format!("downloads_error={}", refusal.code),
    };
    ctx.log(
        TOOL,
        format!(
            "task_id={} deps={} evidence={} artifacts={} {downloads_detail}",
            task.id,
            depends_on.len(),
            evidence.len(),
            artifacts.len()
        ),
    );
    Ok(Handoff {
        task,
        depends_on,
        evidence,
        artifacts,
        downloads,
    })
}

// ---------------------------------------------------------------------------------------
// The HTTP side channel

/// Why a side-channel request is refused; `http::artifacts` maps each to its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideRefusalKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    TooLarge,
    /// The store failed: 500 with the route's failure token.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideRefusal {
    pub kind: SideRefusalKind,
    pub message: String,
}

fn side(kind: SideRefusalKind, message: impl Into<String>) -> SideRefusal {
    SideRefusal {
        kind,
        message: message.into(),
    }
}

impl From<stores::StoreError> for SideRefusal {
    fn from(error: stores::StoreError) -> Self {
        tracing::error!(%error, "artifact side channel store failure");
        side(SideRefusalKind::Internal, error.to_string())
    }
}

/// Under enforce, a bearer token sent with a ticket must be the ticket agent's own: a
/// ticket never acts for another agent's credentials.
fn check_bearer(
    db: &Db,
    config: &Config,
    ticket: &Ticket,
    bearer: Option<&str>,
) -> Result<(), SideRefusal> {
    let Some(bearer) = bearer else {
        return Ok(());
    };
    if config.auth_mode != AuthMode::Enforce {
        return Ok(());
    }
    if auth::verify(db, &ticket.agent_id, Some(bearer))? != AuthOutcome::Valid {
        return Err(side(
            SideRefusalKind::Forbidden,
            "the Authorization token is not the token of the agent this ticket was issued to",
        ));
    }
    Ok(())
}

fn ticket_refusal(kind: TicketKind) -> SideRefusal {
    side(
        SideRefusalKind::Unauthorized,
        format!(
            "invalid, used or expired {} ticket; ask for a new one (tickets are single-use)",
            kind.as_str()
        ),
    )
}

/// What an upload may write, known before the first byte is read.
#[derive(Debug, Clone)]
pub struct UploadGrant {
    pub max_bytes: i64,
    pub agent_id: String,
}

/// Validates an upload ticket without consuming it (D6): a refused upload keeps it.
pub fn check_upload(
    db: &Db,
    config: &Config,
    now_ms: i64,
    token: &str,
    artifact_id: &str,
    bearer: Option<&str>,
) -> Result<UploadGrant, SideRefusal> {
    let ticket = store::find_ticket(db, &rules::token_hash(token))?
        .filter(|t| {
            t.kind == TicketKind::Upload && t.artifact_id == artifact_id && t.expires_at >= now_ms
        })
        .ok_or_else(|| ticket_refusal(TicketKind::Upload))?;
    check_bearer(db, config, &ticket, bearer)?;
    let artifact = store::get(db, artifact_id)?
        .ok_or_else(|| side(SideRefusalKind::NotFound, "artifact not found"))?;
    if artifact.created_by != ticket.agent_id {
        return Err(side(
            SideRefusalKind::Forbidden,
            "only the artifact's creator may upload its bytes",
        ));
    }
    if artifact.storage_path.is_some() {
        return Err(side(
            SideRefusalKind::Forbidden,
            "this artifact already has its bytes; create a new artifact for new content",
        ));
    }
    Ok(UploadGrant {
        max_bytes: ticket.max_bytes.min(config.artifact.max_bytes),
        agent_id: ticket.agent_id,
    })
}

/// Bytes already durable in the artifacts directory, under `storage_path`.
#[derive(Debug, Clone)]
pub struct StoredBytes {
    pub storage_path: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub mime_type: Option<String>,
}

/// Consumes the upload ticket and records the bytes, atomically: a ticket used by a racing
/// request, or an artifact deleted meanwhile, refuses (and the caller removes its file).
pub fn commit_upload(
    tx: &mut WriteTx<'_>,
    token: &str,
    artifact_id: &str,
    bytes: &StoredBytes,
) -> Result<ArtifactRow, SideRefusal> {
    let token_hash = rules::token_hash(token);
    let ticket = store::consume_ticket(tx, &token_hash, TicketKind::Upload, artifact_id)?
        .ok_or_else(|| ticket_refusal(TicketKind::Upload))?;
    let artifact = store::record_upload(
        tx,
        artifact_id,
        bytes.size_bytes,
        &bytes.sha256,
        &bytes.storage_path,
        bytes.mime_type.as_deref(),
    )?
    .filter(|row| row.created_by == ticket.agent_id)
    .ok_or_else(|| {
        side(
            SideRefusalKind::NotFound,
            "artifact not found or already uploaded",
        )
    })?;
    log_side(
        tx,
        &ticket.agent_id,
        "artifact_upload_http",
        format!("artifact_id={artifact_id} bytes={}", bytes.size_bytes),
    )?;
    Ok(artifact)
}

/// Consumes a download ticket and counts the access; the caller streams the file.
pub fn begin_download(
    tx: &mut WriteTx<'_>,
    config: &Config,
    token: &str,
    artifact_id: &str,
    bearer: Option<&str>,
) -> Result<ArtifactRow, SideRefusal> {
    let token_hash = rules::token_hash(token);
    let Some(ticket) = store::find_ticket(tx.db(), &token_hash)? else {
        return Err(ticket_refusal(TicketKind::Download));
    };
    // A foreign bearer leaves the ticket for its rightful holder.
    check_bearer(tx.db(), config, &ticket, bearer)?;
    let Some(ticket) = store::consume_ticket(tx, &token_hash, TicketKind::Download, artifact_id)?
    else {
        store::delete_if_expired(tx, &token_hash)?;
        return Err(ticket_refusal(TicketKind::Download));
    };
    let artifact = store::get(tx.db(), artifact_id)?
        .filter(ArtifactRow::is_ready)
        .ok_or_else(|| {
            side(
                SideRefusalKind::NotFound,
                "artifact not found or unavailable",
            )
        })?;
    store::record_download(tx, artifact_id)?;
    log_side(
        tx,
        &ticket.agent_id,
        "artifact_download_http",
        format!("artifact_id={artifact_id} bytes={}", artifact.size_bytes),
    )?;
    Ok(artifact)
}

/// Side-channel activity is stream activity: watchers of the activity stream wake on it.
fn log_side(
    tx: &mut WriteTx<'_>,
    agent_id: &str,
    action: &str,
    details: String,
) -> Result<(), SideRefusal> {
    stores::activity::insert(
        tx,
        &ActivityRow {
            agent_id: agent_id.to_string(),
            action: action.to_string(),
            details,
            quiet: false,
        },
    )?;
    Ok(())
}
