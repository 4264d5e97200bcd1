//! The task board's typed states: status, priority, execution and consistency modes, the
//! worker runtime a task is routed by, and where a status change came from.
//!
//! Owns the only spelling of each state on the wire and in the database (`as_str` /
//! `parse`); store rows and tool arguments convert here. Must not touch I/O, SQL or MCP.
//! The enums that are also tool arguments derive `JsonSchema` under the names the schema
//! has always used, so `tools/list` does not change.

use schemars::JsonSchema;
use serde::Deserialize;

// Doc comments on these types would become schema descriptions; plain comments keep the
// published schema unchanged.

// pending (initial) · in_progress (only through the claim tools) · done · blocked.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    InProgress,
    Done,
    Blocked,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Done => "done",
            TaskStatus::Blocked => "blocked",
        }
    }

    pub fn parse(text: &str) -> Option<TaskStatus> {
        match text {
            "pending" => Some(TaskStatus::Pending),
            "in_progress" => Some(TaskStatus::InProgress),
            "done" => Some(TaskStatus::Done),
            "blocked" => Some(TaskStatus::Blocked),
            _ => None,
        }
    }

    pub fn is_done(self) -> bool {
        self == TaskStatus::Done
    }
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Priority> {
        match text {
            "low" => Some(Priority::Low),
            "medium" => Some(Priority::Medium),
            "high" => Some(Priority::High),
            "critical" => Some(Priority::Critical),
            _ => None,
        }
    }

    /// The claim order: critical 0, high 1, medium 2, low 3 (stored as `priority_rank`).
    pub fn rank(self) -> i64 {
        match self {
            Priority::Critical => 0,
            Priority::High => 1,
            Priority::Medium => 2,
            Priority::Low => 3,
        }
    }
}

// Which workers may run a task.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    Any,
    Repo,
    Isolated,
}

impl ExecutionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::Any => "any",
            ExecutionMode::Repo => "repo",
            ExecutionMode::Isolated => "isolated",
        }
    }

    pub fn parse(text: &str) -> Option<ExecutionMode> {
        match text {
            "any" => Some(ExecutionMode::Any),
            "repo" => Some(ExecutionMode::Repo),
            "isolated" => Some(ExecutionMode::Isolated),
            _ => None,
        }
    }
}

// The stored done-gate strictness of a task (also the per-call override of update_task and
// release_task_claim).
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    Cheap,
    Strict,
}

impl Consistency {
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Cheap => "cheap",
            Consistency::Strict => "strict",
        }
    }

    pub fn parse(text: &str) -> Option<Consistency> {
        match text {
            "cheap" => Some(Consistency::Cheap),
            "strict" => Some(Consistency::Strict),
            _ => None,
        }
    }

    pub fn is_strict(self) -> bool {
        self == Consistency::Strict
    }

    pub fn from_strict(strict: bool) -> Consistency {
        if strict {
            Consistency::Strict
        } else {
            Consistency::Cheap
        }
    }
}

// create_task's consistency argument: `auto` resolves by priority and the hub default.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CreateConsistency {
    Auto,
    Cheap,
    Strict,
}

// The status release_task_claim leaves a task in.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NextStatus {
    #[default]
    Pending,
    Done,
    Blocked,
}

impl NextStatus {
    pub fn status(self) -> TaskStatus {
        match self {
            NextStatus::Pending => TaskStatus::Pending,
            NextStatus::Done => TaskStatus::Done,
            NextStatus::Blocked => TaskStatus::Blocked,
        }
    }
}

/// Where a worker runs, as its stored runtime profile says; decides which tasks it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeMode {
    Repo,
    Isolated,
    /// Unregistered agents and profiles that named neither: only `any` tasks.
    Unknown,
}

impl RuntimeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeMode::Repo => "repo",
            RuntimeMode::Isolated => "isolated",
            RuntimeMode::Unknown => "unknown",
        }
    }

    /// Any other stored value reads as unknown, so a damaged profile never widens routing.
    pub fn parse(text: &str) -> RuntimeMode {
        match text {
            "repo" => RuntimeMode::Repo,
            "isolated" => RuntimeMode::Isolated,
            _ => RuntimeMode::Unknown,
        }
    }

    /// The execution modes this worker can run (spec §4.1 compatibility table).
    pub fn runnable(self) -> &'static [ExecutionMode] {
        match self {
            RuntimeMode::Repo => &[ExecutionMode::Any, ExecutionMode::Repo],
            RuntimeMode::Isolated => &[ExecutionMode::Any, ExecutionMode::Isolated],
            RuntimeMode::Unknown => &[ExecutionMode::Any],
        }
    }

    pub fn can_run(self, mode: ExecutionMode) -> bool {
        self.runnable().contains(&mode)
    }
}

/// Where a status change came from; recorded in `task_status_history.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSource {
    UpdateTask,
    ReleaseTaskClaim,
    ClaimTask,
    PollAndClaim,
    LeaseExpiry,
    Maintenance,
}

impl StatusSource {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusSource::UpdateTask => "update_task",
            StatusSource::ReleaseTaskClaim => "release_task_claim",
            StatusSource::ClaimTask => "claim_task",
            StatusSource::PollAndClaim => "poll_and_claim",
            StatusSource::LeaseExpiry => "lease_expiry",
            StatusSource::Maintenance => "maintenance",
        }
    }

    pub fn parse(text: &str) -> Option<StatusSource> {
        [
            StatusSource::UpdateTask,
            StatusSource::ReleaseTaskClaim,
            StatusSource::ClaimTask,
            StatusSource::PollAndClaim,
            StatusSource::LeaseExpiry,
            StatusSource::Maintenance,
        ]
        .into_iter()
        .find(|source| source.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_spelling() {
        for status in [
            TaskStatus::Pending,
            TaskStatus::InProgress,
            TaskStatus::Done,
            TaskStatus::Blocked,
        ] {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
        }
        for priority in [
            Priority::Low,
            Priority::Medium,
            Priority::High,
            Priority::Critical,
        ] {
            assert_eq!(Priority::parse(priority.as_str()), Some(priority));
        }
        for mode in [
            ExecutionMode::Any,
            ExecutionMode::Repo,
            ExecutionMode::Isolated,
        ] {
            assert_eq!(ExecutionMode::parse(mode.as_str()), Some(mode));
        }
        for mode in [Consistency::Cheap, Consistency::Strict] {
            assert_eq!(Consistency::parse(mode.as_str()), Some(mode));
        }
        for source in [
            StatusSource::UpdateTask,
            StatusSource::ReleaseTaskClaim,
            StatusSource::ClaimTask,
            StatusSource::PollAndClaim,
            StatusSource::LeaseExpiry,
            StatusSource::Maintenance,
        ] {
            assert_eq!(StatusSource::parse(source.as_str()), Some(source));
        }
        for runtime in [
            RuntimeMode::Repo,
            RuntimeMode::Isolated,
            RuntimeMode::Unknown,
        ] {
            assert_eq!(RuntimeMode::parse(runtime.as_str()), runtime);
        }
        assert_eq!(TaskStatus::parse("IN_PROGRESS"), None);
        assert_eq!(Priority::parse("urgent"), None);
        assert_eq!(RuntimeMode::parse("bogus"), RuntimeMode::Unknown);
    }

    #[test]
    fn priority_ranks_follow_claim_order() {
        let ranks: Vec<i64> = [
            Priority::Critical,
            Priority::High,
            Priority::Medium,
            Priority::Low,
        ]
        .into_iter()
        .map(Priority::rank)
        .collect();
        assert_eq!(ranks, [0, 1, 2, 3]);
    }

    /// Spec §4.1: task mode × agent runtime mode.
    #[test]
    fn execution_compatibility_table() {
        use ExecutionMode::*;
        let table = [
            (RuntimeMode::Repo, [true, true, false]),
            (RuntimeMode::Isolated, [true, false, true]),
            (RuntimeMode::Unknown, [true, false, false]),
        ];
        for (runtime, expected) in table {
            for (mode, ok) in [Any, Repo, Isolated].into_iter().zip(expected) {
                assert_eq!(runtime.can_run(mode), ok, "{runtime:?} × {mode:?}");
            }
        }
    }

    #[test]
    fn next_status_maps_to_a_task_status() {
        assert_eq!(NextStatus::default().status(), TaskStatus::Pending);
        assert_eq!(NextStatus::Done.status(), TaskStatus::Done);
        assert_eq!(NextStatus::Blocked.status(), TaskStatus::Blocked);
    }
}
