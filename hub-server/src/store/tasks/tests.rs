//! Store-level tests of the task board: counters, orphan requeue, the poll queue plan and
//! the tasks stream head.

use super::*;
use crate::clock::ManualClock;
use crate::domain::task::{Consistency, ExecutionMode, Priority, StatusSource, TaskStatus};
use crate::store::claims;
use crate::store::{Store, SyncMode};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("hub.db"),
        SyncMode::Normal,
        ManualClock::new(1_000_000),
    )
    .unwrap();
    (dir, store)
}

fn new_task(title: &str, priority: Priority, deps: Vec<i64>) -> NewTask {
    NewTask {
        title: title.into(),
        description: String::new(),
        namespace: "default".into(),
        execution_mode: ExecutionMode::Any,
        consistency_mode: Consistency::Cheap,
        assigned_to: None,
        created_by: "maker".into(),
        priority,
        trace_id: None,
        span_id: None,
        depends_on: deps,
    }
}

fn poll(tx: &mut WriteTx<'_>, agent: &str) -> Option<i64> {
    let now = tx.now_ms();
    next_candidate(
        tx.db(),
        &PollQuery {
            agent_id: agent,
            execution_modes: &[ExecutionMode::Any],
            namespace: None,
            now_ms: now,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn counters_stay_exact_through_status_changes_dependency_edits_and_deletes() {
    let (_dir, store) = open();
    store
        .write(|tx| {
            let a = insert(tx, &new_task("a", Priority::Medium, vec![]))?;
            let b = insert(tx, &new_task("b", Priority::Medium, vec![a.id]))?;
            let c = insert(tx, &new_task("c", Priority::Medium, vec![a.id, b.id]))?;
            let d = insert(tx, &new_task("d", Priority::Low, vec![]))?;
            assert!(counter_mismatches(tx.db())?.is_empty());
            let a_row = get(tx.db(), a.id)?.unwrap();
            assert_eq!((a_row.unblocks, a_row.unmet_deps), (2, 0));
            assert_eq!(get(tx.db(), c.id)?.unwrap().unmet_deps, 2);
            // a unblocks two tasks, d none: a first although both are ready.
            assert_eq!(poll(tx, "w"), Some(a.id));

            let (a_row, _) = claims::claim(tx, &a_row, "w", 60_000, StatusSource::PollAndClaim)?;
            assert_eq!(poll(tx, "w"), Some(d.id), "b and c wait for a");
            claims::delete_for_task(tx, a.id)?;
            let a_row = change_status(
                tx,
                &a_row,
                TaskStatus::Done,
                None,
                "w",
                StatusSource::ReleaseTaskClaim,
            )?;
            assert!(counter_mismatches(tx.db())?.is_empty());
            assert_eq!(poll(tx, "w"), Some(b.id), "b unblocks c");
            // Reopen a (still assigned to w): b and c wait again; only w gets a.
            let a_row = change_status(
                tx,
                &a_row,
                TaskStatus::Pending,
                None,
                "x",
                StatusSource::UpdateTask,
            )?;
            assert!(counter_mismatches(tx.db())?.is_empty());
            assert_eq!(poll(tx, "w"), Some(a.id));
            assert_eq!(poll(tx, "other"), Some(d.id));
            let sources: Vec<&str> = history(tx.db(), a.id)?
                .into_iter()
                .map(|h| h.source.as_str())
                .collect();
            assert_eq!(
                sources,
                ["poll_and_claim", "release_task_claim", "update_task"]
            );
            // Edit c's dependencies, then delete b (force) and a.
            let c_row = get(tx.db(), c.id)?.unwrap();
            set_dependencies(tx, &c_row, &[d.id])?;
            assert!(counter_mismatches(tx.db())?.is_empty());
            let b_row = get(tx.db(), b.id)?.unwrap();
            delete(tx, &b_row, Some("test"))?;
            assert!(counter_mismatches(tx.db())?.is_empty());
            delete(tx, &a_row, None)?;
            assert!(counter_mismatches(tx.db())?.is_empty());
            assert_eq!(poll(tx, "w"), Some(d.id));
            let history = history(tx.db(), a.id)?;
            assert!(history.is_empty(), "history cascades with the task");
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn orphan_requeue_takes_unprotected_work_only_and_keeps_pre_assignments() {
    let (_dir, store) = open();
    store
        .write(|tx| {
            let unclaimed = insert(tx, &new_task("no claim", Priority::Medium, vec![]))?;
            let unclaimed = change_status(
                tx,
                &unclaimed,
                TaskStatus::InProgress,
                Some(Some("ghost")),
                "ghost",
                StatusSource::UpdateTask,
            )?;
            let leased = insert(tx, &new_task("leased", Priority::Medium, vec![]))?;
            claims::claim(tx, &leased, "ghost", 60_000, StatusSource::ClaimTask)?;
            let mut pre = new_task("pre-assigned", Priority::Medium, vec![]);
            pre.assigned_to = Some("ghost".into());
            let pre = insert(tx, &pre)?;
            assert_eq!(claims::requeue_orphans(tx)?, 1);
            let unclaimed = get(tx.db(), unclaimed.id)?.unwrap();
            assert_eq!(
                (unclaimed.status, unclaimed.assigned_to),
                (TaskStatus::Pending, None)
            );
            assert_eq!(
                get(tx.db(), leased.id)?.unwrap().status,
                TaskStatus::InProgress
            );
            assert_eq!(
                get(tx.db(), pre.id)?.unwrap().assigned_to.as_deref(),
                Some("ghost")
            );
            let last = history(tx.db(), unclaimed.id)?.pop().unwrap();
            assert_eq!(
                (last.source, last.changed_by.as_str()),
                (StatusSource::Maintenance, "system")
            );
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_live_claim_on_a_pending_row_is_skipped_not_blocking_the_queue() {
    let (_dir, store) = open();
    store
        .write(|tx| {
            let best = insert(tx, &new_task("best", Priority::Critical, vec![]))?;
            let next = insert(tx, &new_task("next", Priority::Low, vec![]))?;
            // A leftover claim on a pending task (not produced by the tools, but D22 says it
            // must not stall every poller).
            let (claimed, _) = claims::claim(tx, &best, "w", 60_000, StatusSource::ClaimTask)?;
            change_status(
                tx,
                &claimed,
                TaskStatus::Pending,
                Some(None),
                "x",
                StatusSource::UpdateTask,
            )?;
            assert_eq!(poll(tx, "anyone"), Some(next.id));
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn poll_query_walks_the_partial_index_without_a_scan_or_sort() {
    let (_dir, store) = open();
    let plans = store
        .read(|db| Ok((poll_query_plan(db, None)?, poll_query_plan(db, Some("ns"))?)))
        .await
        .unwrap();
    for (plan, index) in [
        (plans.0, "tasks_poll_queue"),
        (plans.1, "tasks_poll_queue_ns"),
    ] {
        let text = plan.join("\n");
        assert!(
            text.contains(&format!("SEARCH tasks USING INDEX {index}")),
            "{text}"
        );
        assert!(!text.contains("SCAN"), "{text}");
        assert!(!text.contains("TEMP B-TREE"), "{text}");
    }
}

#[tokio::test]
async fn deletes_advance_the_task_stream_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    let clock = ManualClock::new(1_000);
    let store = Store::open(&path, SyncMode::Normal, clock.clone()).unwrap();
    let head = store
        .write(|tx| {
            let task = insert(tx, &new_task("x", Priority::High, vec![]))?;
            delete(tx, &task, Some("manual_delete"))?;
            Ok(tx.next_seq_quiet() - 1)
        })
        .await
        .unwrap();
    assert_eq!(store.subscribe().borrow().get(Stream::Tasks), head);
    store.close();
    let store = Store::open(&path, SyncMode::Normal, clock).unwrap();
    assert_eq!(store.subscribe().borrow().get(Stream::Tasks), head);
    store.close();
}
