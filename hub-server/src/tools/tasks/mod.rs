//! Task board tools: create_task, update_task, list_tasks, delete_task, poll_and_claim,
//! claim_task, renew_task_claim, release_task_claim, list_task_claims.
//!
//! Each handler is three steps: parse the arguments into a command (`args`), make one call
//! into `service::tasks` / `service::claims`, render the outcome (`render`). The rules live
//! in `domain/`, the SQL in `store/`; this module must contain neither.

mod args;
mod render;

pub use self::args::{
    ClaimTaskArgs, CreateTaskArgs, DeleteTaskArgs, DoneGateArgs, ExecutionMode, ListTaskClaimsArgs,
    ListTasksArgs, PollAndClaimArgs, ReleaseTaskClaimArgs, RenewTaskClaimArgs, TaskListMode,
    TaskStatus, UpdateTaskArgs,
};
pub use self::render::{nano_items, render_task_page};
use serde_json::Value;

use super::{
    Activity, Category, OpCtx, ToolDef, ToolError, ToolResult, forbid_full_in_polling, int_arg,
    non_blank,
};
use crate::service::claims::{self as claim_service, ClaimOutcome, PollOutcome, RenewOutcome};
use crate::service::tasks::{
    self as task_service, CreateTaskOutcome, DeleteTaskOutcome, DoneOutcome, TaskListQuery,
};
use crate::store::{Db, WriteTx};

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::mutating_rendered(
            "create_task",
            Category::Tasks,
            "Add a pending task; depends_on ids must exist.",
            Activity::Stream,
            create_task,
            render::created,
        ),
        super::mutating_rendered(
            "update_task",
            Category::Tasks,
            "Edit a task you created, hold or are assigned. in_progress only via claims; done runs the done gate.",
            Activity::Stream,
            update_task,
            render::done,
        ),
        super::reading(
            "list_tasks",
            Category::Tasks,
            "Tasks by filter. Loop: pass next_cursor back as cursor (refuses full mode).",
            list_tasks,
        ),
        super::mutating_rendered(
            "delete_task",
            Category::Tasks,
            "Delete (archive) your task; refused while claimed, or depended on unless force:true.",
            Activity::Stream,
            delete_task,
            render::deleted,
        ),
        super::mutating_rendered(
            "poll_and_claim",
            Category::Tasks,
            "Claim the best ready task; keep claim.claim_id. On task:null wait retry_after_ms.",
            Activity::Stream,
            poll_and_claim,
            render_polled,
        ),
        super::mutating_rendered(
            "claim_task",
            Category::Tasks,
            "Claim one task by id; reclaiming rotates claim_id.",
            Activity::Stream,
            claim_task,
            render_claimed,
        ),
        super::mutating_rendered(
            "renew_task_claim",
            Category::Tasks,
            "Extend your lease before it ends; a stale claim_id changes nothing.",
            Activity::Stream,
            renew_task_claim,
            render_renewed,
        ),
        super::mutating_rendered(
            "release_task_claim",
            Category::Tasks,
            "Release your claim: next_status pending (default), blocked or done (done gate: confidence, verification_passed:true, evidence_refs, maybe verified_by).",
            Activity::Stream,
            release_task_claim,
            render::done,
        ),
        super::reading(
            "list_task_claims",
            Category::Tasks,
            "Live claims, soonest expiry first.",
            list_task_claims,
        ),
    ]
}

/// The acting agent as claim views see it: a blank caller field acts as "" (outside enforce).
fn acting(ctx: &OpCtx) -> &str {
    ctx.caller.agent_id().unwrap_or_default()
}

// The mutating handlers run on the writer and return typed outcomes; the pipeline renders
// them after the commit (`mutating_rendered`), so the writer thread runs only SQL.

fn create_task(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: CreateTaskArgs,
) -> Result<CreateTaskOutcome, ToolError> {
    task_service::create(tx, ctx, args.command())
}

fn update_task(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: UpdateTaskArgs,
) -> Result<DoneOutcome, ToolError> {
    task_service::update(tx, ctx, args.command())
}

fn delete_task(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: DeleteTaskArgs,
) -> Result<DeleteTaskOutcome, ToolError> {
    task_service::delete(tx, ctx, args.command())
}

fn list_tasks(db: &Db, ctx: &mut OpCtx, args: ListTasksArgs) -> ToolResult {
    let mode = args.response_mode.unwrap_or_default();
    let mut query = TaskListQuery::new(
        int_arg(args.limit, 100, 1, 500),
        int_arg(args.offset, 0, 0, i64::MAX),
        args.updated_after,
        non_blank(args.cursor.as_deref()),
    )?;
    if mode == TaskListMode::Full && (args.polling == Some(true) || query.is_delta()) {
        forbid_full_in_polling(&ctx.config, "list_tasks", &["nano", "tiny", "compact"])?;
    }
    query.status = args.status;
    query.assigned_to = args.assigned_to;
    query.namespace = args.namespace;
    query.execution_mode = args.execution_mode;
    query.ready_only = args.ready_only == Some(true);
    query.include_dependencies = args.include_dependencies == Some(true);
    let page = task_service::list(db, ctx, &query)?;
    Ok(render_task_page(&page, mode))
}

/// A claim outcome with what its view needs: who is looking (claim ids are shown only to
/// their owner) and whether artifacts were asked for.
type Viewed<O> = (O, String, bool);

fn poll_and_claim(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: PollAndClaimArgs,
) -> Result<Viewed<PollOutcome>, ToolError> {
    let command = args.command();
    let include_artifacts = command.include_artifacts;
    let outcome = claim_service::poll(tx, ctx, command)?;
    Ok((outcome, acting(ctx).to_string(), include_artifacts))
}

fn render_polled((outcome, viewer, include_artifacts): Viewed<PollOutcome>) -> Value {
    render::polled(outcome, Some(&viewer), include_artifacts)
}

fn claim_task(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: ClaimTaskArgs,
) -> Result<Viewed<ClaimOutcome>, ToolError> {
    let command = args.command();
    let include_artifacts = command.include_artifacts;
    let outcome = claim_service::claim(tx, ctx, command)?;
    Ok((outcome, acting(ctx).to_string(), include_artifacts))
}

fn render_claimed((outcome, viewer, include_artifacts): Viewed<ClaimOutcome>) -> Value {
    render::claimed_task(outcome, Some(&viewer), include_artifacts)
}

fn renew_task_claim(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: RenewTaskClaimArgs,
) -> Result<Viewed<RenewOutcome>, ToolError> {
    let outcome = claim_service::renew(tx, ctx, args.command())?;
    Ok((outcome, acting(ctx).to_string(), false))
}

fn render_renewed((outcome, viewer, _): Viewed<RenewOutcome>) -> Value {
    render::renewed(outcome, Some(&viewer))
}

fn release_task_claim(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: ReleaseTaskClaimArgs,
) -> Result<DoneOutcome, ToolError> {
    claim_service::release(tx, ctx, args.command())
}

fn list_task_claims(db: &Db, ctx: &mut OpCtx, args: ListTaskClaimsArgs) -> ToolResult {
    let claims = claim_service::list(db, ctx, non_blank(args.agent_id.as_deref()))?;
    let viewer = ctx.caller.agent_id();
    Ok(render::claim_list(&claims, viewer))
}
