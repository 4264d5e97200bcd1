//! The status history a task leaves behind (`task_status_history`); rows are written by
//! `change_status` in the parent module, read here. Must not write.

use crate::domain::task::{StatusSource, TaskStatus};
use crate::store::{Db, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub task_id: i64,
    pub from_status: TaskStatus,
    pub to_status: TaskStatus,
    pub changed_by: String,
    pub source: StatusSource,
    pub created_at: i64,
}

pub fn history(db: &Db, task_id: i64) -> StoreResult<Vec<HistoryRow>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT task_id, from_status, to_status, changed_by, source, created_at
         FROM task_status_history WHERE task_id = ?1 ORDER BY id",
    )?;
    Ok(stmt
        .query_map([task_id], |r| {
            Ok(HistoryRow {
                task_id: r.get(0)?,
                from_status: r.get(1)?,
                to_status: r.get(2)?,
                changed_by: r.get(3)?,
                source: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?
        .collect::<crate::store::sql::Result<Vec<_>>>()?)
}
