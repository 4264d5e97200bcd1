//! The typed board read behind list_tasks and read_snapshot: filters, offset or delta paging
//! with a resumable row cursor, optional dependency ids. Returns a [`TaskPage`]; rendering a
//! response mode is the tool's job, so callers can compose pages without re-parsing JSON.
//! Must not write (it runs on the reader pool) or render.

use crate::domain::cursor::{parse_row_cursor, row_cursor};
use crate::domain::task::{ExecutionMode, TaskStatus};
use crate::service::{Ctx, Refusal};
use crate::store::Db;
use crate::store::tasks::{self as task_store, ListPage, ListQuery, TaskRow};

/// What a board read asks for. Build it with [`TaskListQuery::new`], which validates the
/// cursor.
#[derive(Debug, Clone)]
pub struct TaskListQuery {
    pub status: Option<TaskStatus>,
    pub assigned_to: Option<String>,
    pub namespace: Option<String>,
    pub execution_mode: Option<ExecutionMode>,
    pub ready_only: bool,
    pub include_dependencies: bool,
    /// Page size, already clamped to [1, 500].
    pub limit: i64,
    page: ListPage,
    offset: i64,
    updated_after: Option<i64>,
    cursor: Option<String>,
}

impl TaskListQuery {
    /// Paging from the wire arguments: a cursor (non-blank) wins over `updated_after`, which
    /// wins over `offset`. An unparsable cursor is `CURSOR_INVALID` (D15).
    pub fn new(
        limit: i64,
        offset: i64,
        updated_after: Option<f64>,
        cursor: Option<&str>,
    ) -> Result<TaskListQuery, Refusal> {
        let updated_after = updated_after
            .filter(|v| v.is_finite())
            .map(|v| v.floor() as i64);
        let page = match (cursor, updated_after) {
            (Some(cursor), _) => match parse_row_cursor(cursor) {
                Some(seq) => ListPage::AfterSeq(seq),
                None => {
                    return Err(Refusal::new(
                        "CURSOR_INVALID",
                        format!(
                            "list_tasks: cursor {cursor:?} is not a cursor this hub issued; pass \
                             back next_cursor unchanged, or omit it to start over"
                        ),
                    ));
                }
            },
            (None, Some(after)) => ListPage::UpdatedAfter(after),
            _ => ListPage::Newest { offset },
        };
        Ok(TaskListQuery {
            status: None,
            assigned_to: None,
            namespace: None,
            execution_mode: None,
            ready_only: false,
            include_dependencies: false,
            limit,
            page,
            offset,
            updated_after,
            cursor: cursor.map(str::to_string),
        })
    }

    /// A delta read (cursor or `updated_after`) walks changes in order; otherwise newest first.
    pub fn is_delta(&self) -> bool {
        !matches!(self.page, ListPage::Newest { .. })
    }
}

/// One listed task, with its dependency ids when they were asked for.
#[derive(Debug, Clone)]
pub struct TaskItem {
    pub task: TaskRow,
    pub depends_on: Option<Vec<i64>>,
}

/// One page of the board.
#[derive(Debug, Clone)]
pub struct TaskPage {
    pub items: Vec<TaskItem>,
    pub has_more: bool,
    /// Delta reads: the cursor to resume after this page (the given one when it was empty).
    pub next_cursor: Option<String>,
    /// Offset reads with more rows: where the next page starts.
    pub next_offset: Option<i64>,
}

/// Reads one page of the board for `ctx.caller` (the board is public; the caller only
/// shapes the activity row).
pub fn list(db: &Db, ctx: &mut Ctx, query: &TaskListQuery) -> Result<TaskPage, Refusal> {
    let store_query = ListQuery {
        status: query.status,
        assigned_to: query.assigned_to.clone(),
        namespace: query.namespace.clone(),
        execution_mode: query.execution_mode,
        ready_only: query.ready_only,
        limit: query.limit,
        page: query.page,
    };
    let (rows, has_more) = task_store::list(db, &store_query)?;
    let mut items = Vec::with_capacity(rows.len());
    for task in rows {
        let depends_on = if query.include_dependencies {
            Some(task_store::dependencies(db, task.id)?)
        } else {
            None
        };
        items.push(TaskItem { task, depends_on });
    }
    let delta = query.is_delta();
    let next_cursor = if delta {
        match items.last() {
            Some(last) => Some(row_cursor(last.task.seq, last.task.id)),
            None => query.cursor.clone(),
        }
    } else {
        None
    };
    ctx.log(
        "list_tasks",
        format!(
            "count={} ns={} offset={} limit={} updated_after={} cursor={}",
            items.len(),
            query.namespace.as_deref().unwrap_or("*"),
            if delta { 0 } else { query.offset },
            query.limit,
            query
                .updated_after
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            query.cursor.as_deref().unwrap_or("-"),
        ),
    );
    Ok(TaskPage {
        items,
        has_more,
        next_cursor,
        next_offset: (!delta && has_more).then_some(query.offset + query.limit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_precedence_table() {
        // (offset, updated_after, cursor, delta, page)
        let cases = [
            (5, None, None, false, ListPage::Newest { offset: 5 }),
            (5, Some(10.7), None, true, ListPage::UpdatedAfter(10)),
            (
                5,
                Some(f64::NAN),
                None,
                false,
                ListPage::Newest { offset: 5 },
            ),
            (5, Some(10.0), Some("7:3"), true, ListPage::AfterSeq(7)),
        ];
        for (offset, after, cursor, delta, page) in cases {
            let query = TaskListQuery::new(100, offset, after, cursor).unwrap();
            assert_eq!((query.is_delta(), query.page), (delta, page), "{cursor:?}");
        }
        let refused = TaskListQuery::new(100, 0, None, Some("nope")).unwrap_err();
        assert_eq!(refused.code, "CURSOR_INVALID");
    }
}
