//! The PostgreSQL side of `hubctl bench --backend postgres|postgres-2`: one throwaway durable
//! cluster per command (PostgreSQL's defaults, so commits cost an fsync as in production), a
//! fresh database per run with one or two in-process hubs on it, and the database-side cost
//! of a phase — statements (`pg_stat_statements`) and transactions (`pg_stat_database`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hub_server::pg_cluster::{Cluster, ClusterOptions};

use super::bench::{TempHub, start_in_process};

/// Database the statistics are read from: never the hub's, so reading them adds nothing to
/// the figures.
const STATS_DATABASE: &str = "postgres";

/// A backend flushes its transaction counts to `pg_stat_database` when it has been idle for
/// 10 s (PostgreSQL 15's `PGSTAT_IDLE_INTERVAL`; while busy, at most once a second), so the
/// last second of a phase shows up only that long after it. A reading waits this long first.
const STATS_SETTLE: Duration = Duration::from_millis(10_500);

/// The throwaway cluster of one `hubctl bench` command.
pub(crate) struct PgBench {
    cluster: Arc<Cluster>,
    /// Why there are no statement counts, when `pg_stat_statements` could not be loaded.
    statements_note: Option<String>,
    runs: usize,
}

impl PgBench {
    /// Starts a durable cluster with `pg_stat_statements` preloaded; without the extension
    /// (no contrib package) it starts a plain one and the report says statements are n/a.
    pub(crate) async fn start() -> anyhow::Result<PgBench> {
        tokio::task::spawn_blocking(Self::start_blocking).await?
    }

    fn start_blocking() -> anyhow::Result<PgBench> {
        let options = |settings: Vec<String>| ClusterOptions {
            durable: true,
            settings,
            ..ClusterOptions::default()
        };
        let preload = vec!["shared_preload_libraries = 'pg_stat_statements'".to_string()];
        let (cluster, mut statements_note) = match Cluster::start(options(preload)) {
            Ok(cluster) => (cluster, None),
            Err(error) => {
                let cluster = Cluster::start(options(Vec::new()))
                    .map_err(|e| anyhow::anyhow!("starting a PostgreSQL cluster: {e}"))?;
                let first_line = error.lines().next().unwrap_or_default().to_string();
                (
                    cluster,
                    Some(format!("pg_stat_statements not loadable: {first_line}")),
                )
            }
        };
        // A Ctrl-C ends this process without Drop; the watchdog then stops the server.
        cluster
            .spawn_watchdog()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if statements_note.is_none()
            && let Err(error) = cluster.psql(
                STATS_DATABASE,
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
            )
        {
            statements_note = Some(format!("pg_stat_statements unavailable: {error}"));
        }
        Ok(PgBench {
            cluster: Arc::new(cluster),
            statements_note,
            runs: 0,
        })
    }

    /// `replicas` hubs in this process on one fresh database of the cluster.
    pub(crate) async fn start_hubs(&mut self, replicas: usize) -> anyhow::Result<TempHub> {
        self.runs += 1;
        let database = format!("bench_{}_{}", std::process::id(), self.runs);
        let cluster = self.cluster.clone();
        let name = database.clone();
        let url = tokio::task::spawn_blocking(move || cluster.create_database(&name))
            .await?
            .map_err(|e| anyhow::anyhow!("creating database {database}: {e}"))?;
        let mut hubs = start_in_process(&[("MCP_HUB_DB_URL", url)], replicas).await?;
        hubs.db = Some(DbProbe {
            cluster: self.cluster.clone(),
            database,
            statements_note: self.statements_note.clone(),
        });
        Ok(hubs)
    }

    /// A clean shutdown (`pg_ctl stop -m fast`), then the directory goes. Call after every
    /// hub on the cluster has shut down.
    pub(crate) async fn stop(self) {
        let cluster = self.cluster;
        let stopped = tokio::task::spawn_blocking(move || cluster.stop()).await;
        if let Ok(Err(error)) = stopped {
            eprintln!("stopping the benchmark's PostgreSQL cluster: {error}");
        }
    }
}

/// Reads the database-side counters of one run's database.
#[derive(Debug, Clone)]
pub(crate) struct DbProbe {
    cluster: Arc<Cluster>,
    database: String,
    statements_note: Option<String>,
}

/// Cumulative counters of the hub's database.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DbCounters {
    /// `SUM(calls)` of `pg_stat_statements` for the database (None without the extension).
    pub(crate) statements: Option<u64>,
    /// `xact_commit + xact_rollback` of `pg_stat_database`.
    pub(crate) transactions: u64,
}

/// What the database did during a phase.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DbUse {
    pub(crate) statements: Option<u64>,
    pub(crate) transactions: u64,
}

impl DbCounters {
    pub(crate) fn since(self, before: DbCounters) -> DbUse {
        DbUse {
            statements: self
                .statements
                .zip(before.statements)
                .map(|(after, before)| after.saturating_sub(before)),
            transactions: self.transactions.saturating_sub(before.transactions),
        }
    }
}

impl DbProbe {
    pub(crate) fn note(&self) -> Option<&str> {
        self.statements_note.as_deref()
    }

    /// The counters once the hub's connections have flushed their statistics (waits
    /// [`STATS_SETTLE`] first; a failed reading is reported and yields None).
    pub(crate) async fn settled(&self) -> Option<DbCounters> {
        tokio::time::sleep(STATS_SETTLE).await;
        let probe = self.clone();
        match tokio::task::spawn_blocking(move || probe.read()).await {
            Ok(Ok(counters)) => Some(counters),
            Ok(Err(error)) => {
                eprintln!("reading PostgreSQL statistics: {error:#}");
                None
            }
            Err(error) => {
                eprintln!("reading PostgreSQL statistics: {error}");
                None
            }
        }
    }

    fn read(&self) -> anyhow::Result<DbCounters> {
        // The database name is ours (bench_<pid>_<n>), so it needs no quoting.
        let transactions = format!(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{}'",
            self.database
        );
        let statements = format!(
            "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{}')",
            self.database
        );
        let number = |query: &str| -> anyhow::Result<u64> {
            let out = self
                .cluster
                .psql(STATS_DATABASE, query)
                .map_err(|e| anyhow::anyhow!(e))?;
            out.parse::<u64>()
                .with_context(|| format!("unexpected psql output {out:?}"))
        };
        Ok(DbCounters {
            statements: match self.statements_note {
                None => Some(number(&statements)?),
                Some(_) => None,
            },
            transactions: number(&transactions)?,
        })
    }
}
