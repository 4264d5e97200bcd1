//! The vocabulary and pure rules of observability: how a call ended, the tag an activity row
//! is counted under, KPI windows and rates, and the SLO rules (spec tools-more §4). No I/O.

/// How a guarded call ended, as counted in the per-minute call aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    Ok,
    /// The call was admitted but answered `success:false` (including auth refusals).
    Refused,
    RateLimited,
    QuotaExceeded,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 4] = [
        CallOutcome::Ok,
        CallOutcome::Refused,
        CallOutcome::RateLimited,
        CallOutcome::QuotaExceeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Refused => "refused",
            CallOutcome::RateLimited => "rate_limited",
            CallOutcome::QuotaExceeded => "quota_exceeded",
        }
    }

    /// Whether the call passed the rate-limit and quota checks: only those count as auth
    /// events (spec §4.5).
    pub fn passed_admission_limits(self) -> bool {
        matches!(self, CallOutcome::Ok | CallOutcome::Refused)
    }
}

/// Tag of `claim_task_failed` rows: the error code in parentheses at the end of the details.
/// `poll_and_claim`/`claim_task` rows asking for artifact hints carry [`ARTIFACT_HINTS_TAG`];
/// wait timeouts keep their `retry_after_ms` (the p95 needs the values). Every other row has
/// the empty tag, so aggregates stay small.
pub const ARTIFACT_HINTS_TAG: &str = "include_artifacts";

/// The tag an activity row is counted under in the per-minute aggregates (spec §4.7 allows
/// structured columns instead of parsing details at query time).
pub fn activity_tag(action: &str, details: &str) -> String {
    match action {
        "claim_task_failed" => details
            .trim_end()
            .strip_suffix(')')
            .and_then(|head| head.rsplit_once('('))
            .map(|(_, code)| code)
            .filter(|code| {
                !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
            })
            .unwrap_or("")
            .to_string(),
        "poll_and_claim" | "claim_task" if details.contains("include_artifacts=1") => {
            ARTIFACT_HINTS_TAG.to_string()
        }
        "wait_for_updates_timeout" => retry_after_ms(details)
            .map(|ms| ms.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// `retry_after_ms=<n>` in a details string.
pub fn retry_after_ms(details: &str) -> Option<i64> {
    let (_, rest) = details.split_once("retry_after_ms=")?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Start of the minute holding `ms`: the aggregates' bucket key.
pub fn minute_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(60_000)
}

/// `floor(x·100 + 0.5) / 100` (spec §0: half rounds toward +∞).
pub fn round2(x: f64) -> f64 {
    (x * 100.0 + 0.5).floor() / 100.0
}

/// `round2(part / whole · 100)`, `empty` when `whole` is 0.
pub fn pct(part: i64, whole: i64, empty: f64) -> f64 {
    if whole == 0 {
        empty
    } else {
        round2(part as f64 / whole as f64 * 100.0)
    }
}

pub const DEFAULT_WINDOWS_SEC: [i64; 3] = [60, 300, 1800];

/// `windows_sec` as the spec normalises it: finite values > 0, floored, deduplicated keeping
/// the first, at most 6; nothing usable → the defaults (defect 27).
pub fn normalize_windows(requested: Option<&[f64]>) -> Vec<i64> {
    let mut windows: Vec<i64> = Vec::new();
    for value in requested.unwrap_or(&[]) {
        if !value.is_finite() || *value <= 0.0 {
            continue;
        }
        let floored = value.floor() as i64;
        if floored > 0 && !windows.contains(&floored) {
            windows.push(floored);
        }
        if windows.len() == 6 {
            break;
        }
    }
    if windows.is_empty() {
        DEFAULT_WINDOWS_SEC.to_vec()
    } else {
        windows
    }
}

/// Mean (rounded) and p95 (index `clamp(ceil(0.95·n) − 1, 0, n − 1)` of the ascending
/// values) of weighted values; `None` when there are none.
pub fn mean_and_p95(weighted: &[(i64, i64)]) -> (Option<i64>, Option<i64>) {
    let mut values: Vec<(i64, i64)> = weighted.iter().copied().filter(|(_, n)| *n > 0).collect();
    let total: i64 = values.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return (None, None);
    }
    values.sort_unstable();
    let sum: f64 = values.iter().map(|(v, n)| *v as f64 * *n as f64).sum();
    let mean = (sum / total as f64).round() as i64;
    let index = ((0.95 * total as f64).ceil() as i64 - 1).clamp(0, total - 1);
    let mut seen = 0;
    let mut p95 = values[values.len() - 1].0;
    for (value, n) in values {
        seen += n;
        if seen > index {
            p95 = value;
            break;
        }
    }
    (Some(mean), Some(p95))
}

/// SLO alert codes (spec §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SloCode {
    HighPendingAge,
    StaleInProgress,
    ClaimChurn,
}

impl SloCode {
    pub const ALL: [SloCode; 3] = [
        SloCode::HighPendingAge,
        SloCode::StaleInProgress,
        SloCode::ClaimChurn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SloCode::HighPendingAge => "high_pending_age",
            SloCode::StaleInProgress => "stale_in_progress",
            SloCode::ClaimChurn => "claim_churn",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            SloCode::HighPendingAge => Severity::High,
            SloCode::StaleInProgress => Severity::Critical,
            SloCode::ClaimChurn => Severity::Medium,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What the SLO rules measure at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SloInputs {
    pub pending_count: i64,
    pub oldest_pending_created_at: Option<i64>,
    pub stale_count: i64,
    pub oldest_stale_updated_at: Option<i64>,
    pub claim_events: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SloThresholds {
    pub pending_age_ms: i64,
    pub stale_in_progress_ms: i64,
    pub claim_churn_window_ms: i64,
    pub claim_churn_threshold: i64,
}

/// One rule that fires: its code, message and details.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub code: SloCode,
    pub message: String,
    pub details: serde_json::Value,
}

/// The rules that fire at `now` (spec §4.4), in code order.
pub fn firing(now: i64, inputs: &SloInputs, t: &SloThresholds) -> Vec<Firing> {
    let mut fired = Vec::new();
    if let Some(oldest) = inputs
        .oldest_pending_created_at
        .filter(|_| inputs.pending_count > 0)
    {
        let age = now - oldest;
        if age >= t.pending_age_ms {
            fired.push(Firing {
                code: SloCode::HighPendingAge,
                message: format!(
                    "oldest pending task is {}s old (threshold {}s); {} pending",
                    age / 1000,
                    t.pending_age_ms / 1000,
                    inputs.pending_count
                ),
                details: serde_json::json!({
                    "pending_count": inputs.pending_count,
                    "oldest_pending_age_ms": age,
                    "threshold_ms": t.pending_age_ms,
                }),
            });
        }
    }
    if let Some(oldest) = inputs
        .oldest_stale_updated_at
        .filter(|_| inputs.stale_count > 0)
    {
        let age = now - oldest;
        fired.push(Firing {
            code: SloCode::StaleInProgress,
            message: format!(
                "{} in-progress task(s) without a live claim, not updated for up to {}s \
                 (threshold {}s)",
                inputs.stale_count,
                age / 1000,
                t.stale_in_progress_ms / 1000
            ),
            details: serde_json::json!({
                "stale_count": inputs.stale_count,
                "oldest_stale_age_ms": age,
                "threshold_ms": t.stale_in_progress_ms,
            }),
        });
    }
    if inputs.claim_events >= t.claim_churn_threshold {
        fired.push(Firing {
            code: SloCode::ClaimChurn,
            message: format!(
                "{} claim events in the last {}s (threshold {})",
                inputs.claim_events,
                t.claim_churn_window_ms / 1000,
                t.claim_churn_threshold
            ),
            details: serde_json::json!({
                "claim_events": inputs.claim_events,
                "threshold": t.claim_churn_threshold,
                "window_ms": t.claim_churn_window_ms,
            }),
        });
    }
    fired
}

/// Activity actions that count as claim churn (empty polls included).
pub const CLAIM_CHURN_ACTIONS: [&str; 4] = [
    "claim_task",
    "renew_task_claim",
    "release_task_claim",
    "poll_and_claim",
];

/// Activity actions that count as polling.
pub const POLLING_ACTIONS: [&str; 3] = ["list_tasks", "read_messages", "poll_and_claim"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        let cases = [
            (
                "claim_task_failed",
                "task=3 profile (PROFILE_MISMATCH)",
                "PROFILE_MISMATCH",
            ),
            ("claim_task_failed", "task=3 (lower)", ""),
            ("claim_task_failed", "no code", ""),
            (
                "poll_and_claim",
                "ns=a include_artifacts=1",
                ARTIFACT_HINTS_TAG,
            ),
            ("poll_and_claim", "ns=a include_artifacts=0", ""),
            (
                "wait_for_updates_timeout",
                "retry_after_ms=1500 streams=x",
                "1500",
            ),
            ("read_messages", "include_artifacts=1", ""),
        ];
        for (action, details, tag) in cases {
            assert_eq!(activity_tag(action, details), tag, "{action} {details}");
        }
    }

    #[test]
    fn rounding_and_rates() {
        // Half rounds toward +inf, also for negative values.
        assert_eq!(round2(0.125), 0.13);
        assert_eq!(round2(-0.125), -0.12);
        assert_eq!(pct(1, 3, 0.0), 33.33);
        assert_eq!(pct(0, 0, 100.0), 100.0);
        assert_eq!(minute_of(125_000), 120_000);
    }

    #[test]
    fn windows() {
        let cases: [(Option<&[f64]>, Vec<i64>); 5] = [
            (None, vec![60, 300, 1800]),
            (Some(&[]), vec![60, 300, 1800]),
            (Some(&[-1.0, 0.0, f64::NAN]), vec![60, 300, 1800]),
            (Some(&[90.7, 90.2, 30.0]), vec![90, 30]),
            (
                Some(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]),
                vec![1, 2, 3, 4, 5, 6],
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_windows(input), expected, "{input:?}");
        }
    }

    #[test]
    fn p95() {
        assert_eq!(mean_and_p95(&[]), (None, None));
        assert_eq!(mean_and_p95(&[(100, 1)]), (Some(100), Some(100)));
        // 20 values: index ceil(19) - 1 = 18 → the 19th smallest.
        let values: Vec<(i64, i64)> = (1..=20).map(|v| (v * 10, 1)).collect();
        assert_eq!(mean_and_p95(&values), (Some(105), Some(190)));
        assert_eq!(mean_and_p95(&[(5, 19), (50, 1)]), (Some(7), Some(5)));
    }

    #[test]
    fn slo_rules() {
        let t = SloThresholds {
            pending_age_ms: 1_000,
            stale_in_progress_ms: 1_000,
            claim_churn_window_ms: 60_000,
            claim_churn_threshold: 3,
        };
        let codes = |inputs: SloInputs| -> Vec<SloCode> {
            firing(10_000, &inputs, &t).iter().map(|f| f.code).collect()
        };
        assert_eq!(codes(SloInputs::default()), vec![]);
        let old_pending = SloInputs {
            pending_count: 2,
            oldest_pending_created_at: Some(9_000),
            ..Default::default()
        };
        assert_eq!(codes(old_pending), vec![SloCode::HighPendingAge]);
        let young_pending = SloInputs {
            oldest_pending_created_at: Some(9_500),
            ..old_pending
        };
        assert_eq!(codes(young_pending), vec![]);
        let churn_and_stale = SloInputs {
            stale_count: 1,
            oldest_stale_updated_at: Some(1_000),
            claim_events: 3,
            ..Default::default()
        };
        assert_eq!(
            codes(churn_and_stale),
            vec![SloCode::StaleInProgress, SloCode::ClaimChurn]
        );
    }
}
