//! Observability storage and query costs, store level (no HTTP):
//!
//! 1. database bytes per call: a sustained 1,000 read calls/s (simulated clock) from 32
//!    agents through the real bookkeeper (per-minute aggregates + sampled quiet rows);
//! 2. get_kpi_snapshot latency (default windows, full mode) with 1M activity_log rows and a
//!    day of aggregates, plus the query plans of its aggregate queries;
//! 3. the longest writer stall while retention purges that day (batched), against one
//!    unbatched DELETE of the same rows.
//!
//! `cargo bench -p hub-server --bench observability` — prints a Markdown table.

use std::time::{Duration, Instant};

use hub_server::auth::AuthOutcome;
use hub_server::bookkeeping::{Bookkeeper, CallRecord, CallStat};
use hub_server::clock::ManualClock;
use hub_server::domain::observability::{CallOutcome, normalize_windows};
use hub_server::service::observability::{KpiQuery, kpi_snapshot_at};
use hub_server::store::activity::ActivityRow;
use hub_server::store::retention::Purge;
use hub_server::store::{Store, SyncMode, inspect};

const DAY_MS: i64 = 86_400_000;
const START_MS: i64 = 1_800_000_000_000;
const TOOLS: [&str; 3] = ["read_messages", "list_tasks", "poll_and_claim"];

fn db_bytes(store: &Store, rt: &tokio::runtime::Runtime) -> i64 {
    rt.block_on(store.read(|db| {
        let pages = |pragma: &str| -> hub_server::store::StoreResult<i64> {
            Ok(inspect::query(db, pragma, 1)?.rows[0][0]
                .parse()
                .unwrap_or(0))
        };
        Ok(
            (pages("PRAGMA page_count")? - pages("PRAGMA freelist_count")?)
                * pages("PRAGMA page_size")?,
        )
    }))
    .expect("size")
}

fn read_call(i: i64, at_ms: i64) -> CallRecord {
    let agent = format!("agent-{:02}", i % 32);
    let tool = TOOLS[(i % 3) as usize];
    CallRecord {
        call: Some(CallStat {
            tool,
            agent_id: Some(agent.clone()),
            namespace: format!("ns-{}", i % 4),
            auth: AuthOutcome::Valid,
            outcome: CallOutcome::Ok,
            at_ms,
        }),
        token_used_by: Some(agent.clone()),
        heartbeat: Some(agent.clone()),
        quiet_activity: vec![ActivityRow {
            agent_id: agent,
            action: tool.to_string(),
            details: "mode=nano count=0 limit=20 cursor=1234:5678".into(),
            quiet: true,
        }],
        stream_activity: Vec::new(),
    }
}

/// Bytes the database grows by per call over `minutes` of 1,000 calls/s.
fn bytes_per_call(rt: &tokio::runtime::Runtime, minutes: i64) -> (i64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let store = Store::open(&dir.path().join("hub.db"), SyncMode::Normal, clock.clone()).unwrap();
    let bookkeeper = Bookkeeper::new(store.clone(), None);
    let before = db_bytes(&store, rt);
    let calls = minutes * 60_000;
    for i in 0..calls {
        clock.advance_ms(1);
        bookkeeper.record(read_call(i, START_MS + i));
        if i % 250 == 249 {
            rt.block_on(bookkeeper.flush()).unwrap();
        }
    }
    rt.block_on(bookkeeper.flush()).unwrap();
    let grown = db_bytes(&store, rt) - before;
    (calls, grown as f64 / calls as f64)
}

/// A day of data older than `now − 1 day`: 1M activity rows and per-minute aggregates of
/// 32 agents × 3 tools.
fn seed_day(rt: &tokio::runtime::Runtime, store: &Store, bookkeeper: &Bookkeeper) {
    let rows_per_batch = 10_000;
    for batch in 0..100 {
        let base = START_MS + batch * (DAY_MS / 100);
        rt.block_on(store.write(move |tx| {
            for i in 0..rows_per_batch {
                let row = ActivityRow {
                    agent_id: format!("agent-{:02}", i % 32),
                    action: TOOLS[(i % 3) as usize].to_string(),
                    details: "mode=nano count=0 limit=20".into(),
                    quiet: true,
                };
                hub_server::store::activity::insert_at(tx, &row, base + i * 8)?;
            }
            Ok(())
        }))
        .unwrap();
    }
    // One call per (agent, tool) and minute carries every key the aggregates hold.
    for minute in 0..1_440 {
        for i in 0..96 {
            bookkeeper.record(read_call(i, START_MS + minute * 60_000));
        }
        if minute % 60 == 59 {
            rt.block_on(bookkeeper.flush()).unwrap();
        }
    }
    rt.block_on(bookkeeper.flush()).unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1)]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let (calls, per_call) = bytes_per_call(&rt, 10);
    println!("| database bytes per read call, {calls} calls at 1,000/s | {per_call:.2} B |");

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let store = Store::open(&dir.path().join("hub.db"), SyncMode::Normal, clock.clone()).unwrap();
    let bookkeeper = Bookkeeper::new(store.clone(), None);
    seed_day(&rt, &store, &bookkeeper);
    clock.advance_ms(DAY_MS - 1);
    let now = START_MS + DAY_MS - 1;
    let query = || KpiQuery {
        windows_sec: normalize_windows(Some(&[60.0, 300.0, 1800.0, 86_400.0])),
        include_top_actions: true,
        include_backlogs: (true, true),
        include_auth: true,
        include_slo: true,
        first_window_only: false,
    };
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let q = query();
        rt.block_on(store.read(move |db| kpi_snapshot_at(db, now, q)))
            .unwrap();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "| get_kpi_snapshot (windows 60/300/1800/86400 s, full, auth+slo), 1M activity rows, \
         p50 / p99 | {:.2} ms / {:.2} ms |",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    for sql in [
        "EXPLAIN QUERY PLAN SELECT COALESCE(SUM(events), 0) FROM activity_minutes \
         WHERE action = 'read_messages' AND minute_ms >= 0 AND (NULL IS NULL OR tag = NULL)",
        "EXPLAIN QUERY PLAN SELECT COALESCE(SUM(events), 0) FROM activity_minutes \
         WHERE minute_ms >= 0",
        "EXPLAIN QUERY PLAN SELECT COUNT(*), COALESCE(SUM(status = 'done'), 0) FROM tasks \
         WHERE updated_at >= 0",
    ] {
        let plan = rt
            .block_on(store.read(move |db| inspect::query(db, sql, 10)))
            .unwrap();
        let steps: Vec<String> = plan.rows.iter().map(|r| r.join(" ")).collect();
        println!("plan: {} -> {}", &sql[19..], steps.join("; "));
    }

    // Retention of that day, batched as the maintenance pass does it.
    let cutoff = now + 1;
    let mut longest = Duration::ZERO;
    let mut batches = 0;
    for table in [
        Purge::ActivityLog,
        Purge::ActivityMinutes,
        Purge::CallMinutes,
    ] {
        loop {
            let started = Instant::now();
            let purged = rt
                .block_on(store.write(move |tx| {
                    hub_server::store::retention::purge_batch(
                        tx,
                        table,
                        cutoff,
                        hub_server::maintenance::PURGE_BATCH,
                    )
                }))
                .unwrap();
            longest = longest.max(started.elapsed());
            batches += 1;
            if purged < hub_server::maintenance::PURGE_BATCH as usize {
                break;
            }
        }
    }
    println!(
        "| longest writer stall purging a day (1M activity rows + aggregates), {batches} \
         batches of {} | {:.2} ms |",
        hub_server::maintenance::PURGE_BATCH,
        longest.as_secs_f64() * 1e3
    );

    // The same day deleted by one statement, as before (for comparison).
    seed_day(&rt, &store, &bookkeeper);
    let started = Instant::now();
    rt.block_on(store.write(move |tx| {
        hub_server::store::retention::purge_batch(tx, Purge::ActivityLog, cutoff + DAY_MS, i64::MAX)
    }))
    .unwrap();
    println!(
        "| one unbatched DELETE of the same 1M activity rows (old behaviour) | {:.2} ms |",
        started.elapsed().as_secs_f64() * 1e3
    );
}
