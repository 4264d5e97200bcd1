//! CPU time readings for `hubctl bench`, from Linux `/proc`: the hub's store writer thread
//! (per phase) and this whole process (idle cost). Elsewhere, or when the thread cannot be
//! found, the probe says why and the reports print "n/a" instead of a figure.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context;

/// Thread name the hub gives its writer; Linux keeps 15 bytes of a thread name in `comm`,
/// so `hub-store-writer` reads back as `hub-store-write`.
const WRITER_COMM_PREFIX: &str = "hub-store-write";

/// Where the writer threads' CPU time is read from (one per hub replica; their sum is
/// reported), or why it cannot be.
#[derive(Debug, Clone)]
pub(crate) enum WriterProbe {
    Threads { stat_paths: Vec<PathBuf> },
    Unavailable(String),
}

impl WriterProbe {
    /// The writer thread of the hub process `pid`; it must have exactly one.
    pub(crate) fn for_pid(pid: u32) -> WriterProbe {
        Self::pick(
            &pid.to_string(),
            writer_threads(&pid.to_string()),
            &BTreeSet::new(),
            1,
        )
    }

    /// The writer threads of the `replicas` hubs started in this process after `before` was
    /// taken with [`writer_threads_of_this_process`] (so the writer of an earlier hub still
    /// shutting down is not mistaken for one). A new thread names itself once it runs, so
    /// this looks again for up to two seconds before giving up.
    pub(crate) async fn in_process(before: &BTreeSet<u32>, replicas: usize) -> WriterProbe {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let probe = Self::pick("self", writer_threads("self"), before, replicas);
            if matches!(probe, WriterProbe::Threads { .. }) || Instant::now() > deadline {
                return probe;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn pick(
        pid: &str,
        found: anyhow::Result<BTreeSet<u32>>,
        before: &BTreeSet<u32>,
        expected: usize,
    ) -> Self {
        let found = match found {
            Ok(found) => found,
            Err(error) => return WriterProbe::Unavailable(format!("{error:#}")),
        };
        let new: Vec<u32> = found.difference(before).copied().collect();
        if new.len() == expected {
            return WriterProbe::Threads {
                stat_paths: new
                    .iter()
                    .map(|tid| PathBuf::from(format!("/proc/{pid}/task/{tid}/stat")))
                    .collect(),
            };
        }
        WriterProbe::Unavailable(format!(
            "{} new {WRITER_COMM_PREFIX}* threads in /proc/{pid}, expected {expected}",
            new.len()
        ))
    }

    /// CPU seconds (user + system) the writers have used so far; `None` when unavailable.
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        match self {
            WriterProbe::Threads { stat_paths } => stat_paths
                .iter()
                .map(|path| {
                    let stat = std::fs::read_to_string(path).ok()?;
                    stat_cpu_seconds(&stat).ok()
                })
                .sum(),
            WriterProbe::Unavailable(_) => None,
        }
    }

    /// Why there are no writer figures, if there are none.
    pub(crate) fn note(&self) -> Option<&str> {
        match self {
            WriterProbe::Threads { .. } => None,
            WriterProbe::Unavailable(reason) => Some(reason),
        }
    }
}

/// Thread ids of writer threads in this process right now (empty without /proc).
pub(crate) fn writer_threads_of_this_process() -> BTreeSet<u32> {
    writer_threads("self").unwrap_or_default()
}

fn writer_threads(pid: &str) -> anyhow::Result<BTreeSet<u32>> {
    let tasks = format!("/proc/{pid}/task");
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
        let path = entry?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let tid = path.file_name().and_then(|n| n.to_str()?.parse().ok());
        if let (true, Some(tid)) = (comm.trim().starts_with(WRITER_COMM_PREFIX), tid) {
            found.insert(tid);
        }
    }
    Ok(found)
}

/// CPU seconds (user + system) this whole process has used so far.
pub(crate) fn process_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    stat_cpu_seconds(&stat)
}

/// utime + stime of a `/proc/.../stat` line, in seconds.
fn stat_cpu_seconds(stat: &str) -> anyhow::Result<f64> {
    // The command name in parentheses may contain spaces; fields are counted after it.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("parsing a /proc stat line")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |index: usize| -> anyhow::Result<f64> {
        let text = fields.get(index).context("short /proc stat line")?;
        Ok(text.parse::<f64>()?)
    };
    // Fields 14 (utime) and 15 (stime) of proc(5); the slice starts at field 3.
    Ok((field(11)? + field(12)?) / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_in_the_name() {
        let line = "42 (hub store) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        let seconds = stat_cpu_seconds(line).unwrap();
        assert!((seconds - 300.0 / clock_ticks_per_second()).abs() < 1e-9);
    }

    #[test]
    fn an_unknown_process_has_no_writer() {
        let probe = WriterProbe::for_pid(u32::MAX);
        assert!(probe.cpu_seconds().is_none());
        assert!(probe.note().is_some());
    }
}
