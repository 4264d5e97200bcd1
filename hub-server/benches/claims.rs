//! Store-level cost of poll_and_claim (+ release) as the board grows: the candidate query
//! reads the head of a partial index, so the cost must stay flat from 1,000 to 100,000
//! pending tasks.
//!
//! Run: `cargo bench -p hub-server --bench claims`. Besides criterion's figures it prints
//! p50/p99 of single poll+claim transactions, and the throughput of 16 concurrent workers
//! doing poll+claim then release through the writer (group commit, synchronous=NORMAL).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group};
use hub_server::clock::ManualClock;
use hub_server::domain::task::{Consistency, ExecutionMode, Priority, TaskStatus};
use hub_server::store::claims;
use hub_server::store::tasks::{self, NewTask, PollQuery, StatusSource};
use hub_server::store::{Store, StoreResult, SyncMode, WriteTx};

const SIZES: [usize; 2] = [1_000, 100_000];
const LEASE_MS: i64 = 300_000;

struct Board {
    _dir: tempfile::TempDir,
    store: Store,
}

/// A board with `pending` tasks: mixed priorities and execution modes, and every tenth task
/// waiting on its predecessor, so the index holds realistic, partly blocked work.
fn board(pending: usize) -> Board {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("bench.db"),
        SyncMode::Normal,
        ManualClock::new(1_800_000_000_000),
    )
    .unwrap();
    let runtime = runtime();
    runtime.block_on(async {
        let mut created = 0;
        while created < pending {
            let batch = (pending - created).min(10_000);
            let start = created;
            store
                .write(move |tx| {
                    let mut previous = None;
                    for i in start..start + batch {
                        let task = NewTask {
                            title: format!("bench task {i}"),
                            description: String::new(),
                            namespace: if i % 2 == 0 { "alpha" } else { "beta" }.into(),
                            execution_mode: [
                                ExecutionMode::Any,
                                ExecutionMode::Repo,
                                ExecutionMode::Isolated,
                            ][i % 3],
                            consistency_mode: Consistency::Cheap,
                            assigned_to: None,
                            created_by: "bench".into(),
                            priority: [
                                Priority::Low,
                                Priority::Medium,
                                Priority::High,
                                Priority::Critical,
                            ][i % 4],
                            trace_id: None,
                            span_id: None,
                            depends_on: match previous {
                                Some(id) if i % 10 == 0 => vec![id],
                                _ => vec![],
                            },
                        };
                        previous = Some(tasks::insert(tx, &task)?.id);
                    }
                    Ok(())
                })
                .await
                .unwrap();
            created += batch;
        }
    });
    Board { _dir: dir, store }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// What poll_and_claim does in the store: pick the best candidate and claim it.
fn poll_claim(tx: &mut WriteTx<'_>, agent: &str) -> StoreResult<Option<(i64, String)>> {
    let now = tx.now_ms();
    let query = PollQuery {
        agent_id: agent,
        execution_modes: &[ExecutionMode::Any, ExecutionMode::Repo],
        namespace: None,
        now_ms: now,
    };
    let Some(id) = tasks::next_candidate(tx.db(), &query)? else {
        return Ok(None);
    };
    let task = tasks::get(tx.db(), id)?.expect("candidate exists");
    let (_, claim) = claims::claim(tx, &task, agent, LEASE_MS, StatusSource::PollAndClaim)?;
    Ok(Some((id, claim.claim_id)))
}

/// What release_task_claim next_status=pending does in the store.
fn release(tx: &mut WriteTx<'_>, task_id: i64, agent: &str, claim_id: &str) -> StoreResult<()> {
    assert!(claims::delete_matching(tx, task_id, agent, claim_id)?);
    let task = tasks::get(tx.db(), task_id)?.expect("task exists");
    tasks::change_status(
        tx,
        &task,
        TaskStatus::Pending,
        Some(None),
        agent,
        StatusSource::ReleaseTaskClaim,
    )?;
    Ok(())
}

fn poll_and_release(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("poll_and_claim+release");
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(30);
    for size in SIZES {
        let board = board(size);
        let store = board.store.clone();
        group.bench_with_input(BenchmarkId::new("one_transaction", size), &size, |b, _| {
            b.iter(|| {
                runtime
                    .block_on(store.write(|tx| {
                        let (id, claim_id) = poll_claim(tx, "bench-worker")?.expect("a task");
                        release(tx, id, "bench-worker", &claim_id)
                    }))
                    .unwrap()
            });
        });
        group.bench_with_input(BenchmarkId::new("candidate_query", size), &size, |b, _| {
            b.iter(|| {
                runtime
                    .block_on(store.read(|conn| {
                        tasks::next_candidate(
                            conn,
                            &PollQuery {
                                agent_id: "bench-worker",
                                execution_modes: &[ExecutionMode::Any, ExecutionMode::Repo],
                                namespace: Some("beta"),
                                now_ms: 1_800_000_000_000,
                            },
                        )
                    }))
                    .unwrap()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, poll_and_release);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// p50/p99 of single poll+claim write transactions (each followed by an untimed release).
fn latency_percentiles() {
    let runtime = runtime();
    for size in SIZES {
        let board = board(size);
        let store = board.store.clone();
        let plan = runtime
            .block_on(store.read(|conn| tasks::poll_query_plan(conn, None)))
            .unwrap();
        let mut samples = Vec::with_capacity(5_000);
        runtime.block_on(async {
            for _ in 0..5_000 {
                let started = Instant::now();
                let (id, claim_id) = store
                    .write(|tx| poll_claim(tx, "latency-worker"))
                    .await
                    .unwrap()
                    .expect("a task");
                samples.push(started.elapsed());
                store
                    .write(move |tx| release(tx, id, "latency-worker", &claim_id))
                    .await
                    .unwrap();
            }
        });
        samples.sort();
        println!(
            "poll_and_claim latency, {size} pending: p50 {:?}  p99 {:?}  (5000 calls)",
            percentile(&samples, 0.50),
            percentile(&samples, 0.99)
        );
        println!("  query plan: {}", plan.join(" | "));
    }
}

/// 16 workers, each looping poll+claim then release through the shared writer.
fn worker_throughput() {
    const WORKERS: usize = 16;
    const ROUNDS: usize = 500;
    let runtime = runtime();
    for size in SIZES {
        let board = board(size);
        let store = Arc::new(board.store.clone());
        let started = Instant::now();
        runtime.block_on(async {
            let mut joins = Vec::new();
            for w in 0..WORKERS {
                let store = store.clone();
                joins.push(tokio::spawn(async move {
                    let agent = format!("worker-{w}");
                    for _ in 0..ROUNDS {
                        let agent_for_poll = agent.clone();
                        let (id, claim_id) = store
                            .write(move |tx| poll_claim(tx, &agent_for_poll))
                            .await
                            .unwrap()
                            .expect("a task");
                        let agent_for_release = agent.clone();
                        store
                            .write(move |tx| release(tx, id, &agent_for_release, &claim_id))
                            .await
                            .unwrap();
                    }
                }));
            }
            for join in joins {
                join.await.unwrap();
            }
        });
        let elapsed = started.elapsed();
        let cycles = (WORKERS * ROUNDS) as f64;
        println!(
            "16 workers, {size} pending: {} poll+release cycles in {:.2?} = {:.0} cycles/s ({:.0} tool-level writes/s)",
            WORKERS * ROUNDS,
            elapsed,
            cycles / elapsed.as_secs_f64(),
            2.0 * cycles / elapsed.as_secs_f64()
        );
        let mismatches = runtime
            .block_on(store.read(tasks::counter_mismatches))
            .unwrap();
        assert!(mismatches.is_empty());
    }
}

fn main() {
    benches();
    latency_percentiles();
    worker_throughput();
    Criterion::default().configure_from_args().final_summary();
}
