//! The task board's rules over plain facts: who may change, delete or claim a task, the claim
//! fence of renew/release, which status moves update_task allows, how the effective
//! consistency is resolved, who is credited with a completion or charged with a rollback,
//! the poll back-off and the namespace-governance matcher.
//!
//! Pure: callers look the facts up (task row, live claim, role) and pass them in. Must not
//! touch I/O, SQL or MCP; the wire texts of refusals belong to the service layer.

use crate::domain::task::{Consistency, CreateConsistency, Priority, TaskStatus};

/// The agent acting on a task, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor<'a> {
    pub agent_id: &'a str,
    /// An operator-granted role (orchestrator) that may change other agents' tasks.
    pub lifts_ownership: bool,
}

/// Who a task belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owners<'a> {
    pub created_by: &'a str,
    pub assigned_to: Option<&'a str>,
    /// The holder of the task's live claim (an expired claim counts as none).
    pub claim_holder: Option<&'a str>,
}

/// update_task (D19): the creator, the assignee, the claim holder, or a privileged caller.
pub fn may_update(actor: Actor<'_>, owners: Owners<'_>) -> bool {
    actor.lifts_ownership
        || owners.created_by == actor.agent_id
        || owners.assigned_to == Some(actor.agent_id)
        || owners.claim_holder == Some(actor.agent_id)
}

/// delete_task (D31): the creator or a privileged caller.
pub fn may_delete(actor: Actor<'_>, created_by: &str) -> bool {
    actor.lifts_ownership || created_by == actor.agent_id
}

/// A claim row as the fence sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimFacts<'a> {
    pub holder: &'a str,
    pub claim_id: &'a str,
    pub lease_expires_at: i64,
}

/// Why renew/release refuse a claim (invariant: a stale, foreign or expired claim changes
/// nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceRefusal {
    /// No claim row, or its lease ran out (D20).
    Expired,
    NotOwner,
    /// The caller named an older claim id (it was rotated by a newer claim).
    IdMismatch,
}

impl FenceRefusal {
    pub fn code(self) -> &'static str {
        match self {
            FenceRefusal::Expired => "CLAIM_EXPIRED",
            FenceRefusal::NotOwner => "NOT_CLAIM_OWNER",
            FenceRefusal::IdMismatch => "CLAIM_ID_MISMATCH",
        }
    }
}

/// The fence of renew_task_claim and release_task_claim, checked in this order: a live
/// claim, held by the caller, with the claim id given (a blank id means "the current one").
pub fn claim_fence(
    claim: Option<ClaimFacts<'_>>,
    caller: &str,
    given_claim_id: Option<&str>,
    now_ms: i64,
) -> Result<(), FenceRefusal> {
    let Some(claim) = claim.filter(|c| c.lease_expires_at > now_ms) else {
        return Err(FenceRefusal::Expired);
    };
    if claim.holder != caller {
        return Err(FenceRefusal::NotOwner);
    }
    match given_claim_id.map(str::trim).filter(|id| !id.is_empty()) {
        Some(given) if given != claim.claim_id => Err(FenceRefusal::IdMismatch),
        _ => Ok(()),
    }
}

/// claim_task on a task pre-assigned to someone else (D23): without a live claim, a task
/// that is not in progress may be claimed only by its assignee or its creator. Returns the
/// assignee that blocks the caller.
pub fn blocking_assignee<'a>(
    status: TaskStatus,
    assigned_to: Option<&'a str>,
    created_by: &str,
    has_live_claim: bool,
    caller: &str,
) -> Option<&'a str> {
    let assignee = assigned_to?;
    (!has_live_claim
        && status != TaskStatus::InProgress
        && assignee != caller
        && created_by != caller)
        .then_some(assignee)
}

/// Why update_task refuses a status change: `in_progress` belongs to the claim tools (D19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionRefusal {
    /// Entering in_progress needs a claim.
    EntersInProgress,
    /// An in-progress task leaves for anything but done through release_task_claim.
    LeavesInProgress,
}

/// Whether update_task may move a task from `from` to `to` (an unchanged status always may).
pub fn update_transition(from: TaskStatus, to: TaskStatus) -> Result<(), TransitionRefusal> {
    if from == to {
        return Ok(());
    }
    if to == TaskStatus::InProgress {
        return Err(TransitionRefusal::EntersInProgress);
    }
    if from == TaskStatus::InProgress && to != TaskStatus::Done {
        return Err(TransitionRefusal::LeavesInProgress);
    }
    Ok(())
}

/// The consistency a new task is stored with: as asked; `auto`/absent → strict for critical
/// work, else the hub default.
pub fn create_consistency(
    requested: Option<CreateConsistency>,
    priority: Priority,
    hub_default_strict: bool,
) -> Consistency {
    match requested {
        Some(CreateConsistency::Strict) => Consistency::Strict,
        Some(CreateConsistency::Cheap) => Consistency::Cheap,
        _ => Consistency::from_strict(priority == Priority::Critical || hub_default_strict),
    }
}

/// The gate mode a call runs under and the mode its activity row reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateMode {
    pub strict: bool,
    /// The call's argument, else the stored mode.
    pub reported: Consistency,
}

/// A per-call consistency lowering a strict task outside the rules (D24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DowngradeForbidden;

/// update_task: a call may raise strictness; lowering a strict task needs its creator and a
/// call that does not mark it done (D24).
pub fn update_consistency(
    stored: Consistency,
    requested: Option<Consistency>,
    marking_done: bool,
    is_creator: bool,
) -> Result<GateMode, DowngradeForbidden> {
    if requested == Some(Consistency::Cheap) && stored.is_strict() && (marking_done || !is_creator)
    {
        return Err(DowngradeForbidden);
    }
    Ok(GateMode {
        strict: stored.is_strict() || requested == Some(Consistency::Strict),
        reported: requested.unwrap_or(stored),
    })
}

/// release_task_claim: the per-call mode only raises strictness and never persists.
pub fn release_consistency(stored: Consistency, requested: Option<Consistency>) -> Consistency {
    Consistency::from_strict(stored.is_strict() || requested == Some(Consistency::Strict))
}

/// One quality-counter change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QualityCharge<'a> {
    pub agent_id: &'a str,
    pub completed: i64,
    pub rollbacks: i64,
}

/// Quality bookkeeping for a status change made through update_task / release_task_claim
/// (§4.12, D25): entering done credits the assignee after the change, leaving done charges
/// the assignee before it; the caller stands in when there is none.
pub fn quality_charge<'a>(
    before: (TaskStatus, Option<&'a str>),
    after: (TaskStatus, Option<&'a str>),
    caller: &'a str,
) -> Option<QualityCharge<'a>> {
    match (before.0.is_done(), after.0.is_done()) {
        (false, true) => Some(QualityCharge {
            agent_id: after.1.unwrap_or(caller),
            completed: 1,
            rollbacks: 0,
        }),
        (true, false) => Some(QualityCharge {
            agent_id: before.1.unwrap_or(caller),
            completed: 0,
            rollbacks: 1,
        }),
        _ => None,
    }
}

/// Poll back-off (spec §4.5): the profile by active agents, exponential in the miss streak,
/// capped lower while any claim exists, with jitter. `random` is in [0, 1).
pub fn retry_after_ms(active_agents: i64, misses: u32, any_claims: bool, random: f64) -> i64 {
    let (min, base, factor, cap, jitter): (f64, f64, f64, f64, f64) = match active_agents {
        ..=5 => (200.0, 800.0, 1.30, 3000.0, 0.30),
        6..=10 => (250.0, 1200.0, 1.45, 5000.0, 0.40),
        11..=20 => (300.0, 2000.0, 1.60, 8000.0, 0.55),
        _ => (400.0, 2600.0, 1.70, 12000.0, 0.60),
    };
    let exp = (i64::from(misses) - 1).clamp(0, 6) as i32;
    let backed = (base * factor.powi(exp)).min(cap);
    let claim_cap = if any_claims { cap.min(5000.0) } else { cap };
    let mid = min.max(backed.min(claim_cap));
    let low = min.max((mid * (1.0 - jitter)).round());
    let high = claim_cap.min(low.max((mid * (1.0 + jitter)).round()));
    let random = if random.is_finite() {
        random.clamp(0.0, 1.0)
    } else {
        0.0
    };
    (low + (random * (high - low)).round()) as i64
}

/// Whether a hint looks like swarm/experiment work (spec §4.15, matched on whole tokens —
/// D37): tokens are runs of letters and digits; a token matches when, without trailing
/// digits, it is swarm, experiment, round, orchestrator or worker (or a plural), or when it
/// is `exp` followed by digits or by `-`. "background" and "networker" do not match.
pub fn governance_hint_matches(hint: &str) -> bool {
    const WORDS: &[&str] = &[
        "swarm",
        "swarms",
        "experiment",
        "experiments",
        "round",
        "rounds",
        "orchestrator",
        "orchestrators",
        "worker",
        "workers",
    ];
    let lowered = hint.to_lowercase();
    let chars: Vec<char> = lowered.chars().collect();
    let mut start = 0;
    while start < chars.len() {
        if !chars[start].is_alphanumeric() {
            start += 1;
            continue;
        }
        let mut end = start;
        while end < chars.len() && chars[end].is_alphanumeric() {
            end += 1;
        }
        let token: String = chars[start..end].iter().collect();
        let stem = token.trim_end_matches(|c: char| c.is_ascii_digit());
        let has_digits = stem.len() < token.len();
        if WORDS.contains(&stem) {
            return true;
        }
        if stem == "exp" && (has_digits || chars.get(end) == Some(&'-')) {
            return true;
        }
        start = end;
    }
    false
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a ms timestamp (proleptic Gregorian, UTC); lease expiries
/// in activity rows and refusal texts.
pub fn iso8601(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    fn actor(agent_id: &str, lifts_ownership: bool) -> Actor<'_> {
        Actor {
            agent_id,
            lifts_ownership,
        }
    }

    #[test]
    fn ownership_table() {
        let owners = Owners {
            created_by: "maker",
            assigned_to: Some("assignee"),
            claim_holder: Some("holder"),
        };
        // (caller, orchestrator, may update, may delete)
        let cases = [
            ("maker", false, true, true),
            ("assignee", false, true, false),
            ("holder", false, true, false),
            ("stranger", false, false, false),
            ("stranger", true, true, true),
            ("", false, false, false),
        ];
        for (caller, lifts, update, delete) in cases {
            let who = actor(caller, lifts);
            assert_eq!(may_update(who, owners), update, "update by {caller}");
            assert_eq!(
                may_delete(who, owners.created_by),
                delete,
                "delete by {caller}"
            );
        }
        let unowned = Owners {
            created_by: "maker",
            assigned_to: None,
            claim_holder: None,
        };
        assert!(!may_update(actor("assignee", false), unowned));
    }

    #[test]
    fn claim_fence_table() {
        let claim = ClaimFacts {
            holder: "w",
            claim_id: "c1",
            lease_expires_at: 1_000,
        };
        use FenceRefusal::*;
        type Case<'a> = (
            Option<ClaimFacts<'a>>,
            &'a str,
            Option<&'a str>,
            i64,
            Result<(), FenceRefusal>,
        );
        let cases: [Case<'_>; 8] = [
            (None, "w", None, 0, Err(Expired)),
            (Some(claim), "w", None, 1_000, Err(Expired)),
            (Some(claim), "other", Some("c1"), 999, Err(NotOwner)),
            (Some(claim), "w", Some("c0"), 999, Err(IdMismatch)),
            (Some(claim), "w", Some(" c1 "), 999, Ok(())),
            (Some(claim), "w", Some("  "), 999, Ok(())),
            (Some(claim), "w", None, 999, Ok(())),
            (Some(claim), "other", None, 2_000, Err(Expired)),
        ];
        for (claim, caller, given, now, expected) in cases {
            assert_eq!(
                claim_fence(claim, caller, given, now),
                expected,
                "{claim:?} {caller} {given:?} {now}"
            );
        }
        assert_eq!(IdMismatch.code(), "CLAIM_ID_MISMATCH");
    }

    #[test]
    fn pre_assignment_table() {
        // (status, assignee, live claim, caller, blocked by)
        let cases = [
            (Pending, None, false, "w", None),
            (Pending, Some("w"), false, "w", None),
            (Pending, Some("other"), false, "maker", None),
            (Pending, Some("other"), false, "w", Some("other")),
            (Blocked, Some("other"), false, "w", Some("other")),
            (InProgress, Some("other"), false, "w", None),
            (Pending, Some("other"), true, "w", None),
        ];
        for (status, assignee, live, caller, expected) in cases {
            assert_eq!(
                blocking_assignee(status, assignee, "maker", live, caller),
                expected,
                "{status:?} {assignee:?} {live} {caller}"
            );
        }
    }

    #[test]
    fn update_transition_table() {
        use TransitionRefusal::*;
        let cases = [
            (Pending, Pending, Ok(())),
            (InProgress, InProgress, Ok(())),
            (Pending, Blocked, Ok(())),
            (Pending, Done, Ok(())),
            (Done, Pending, Ok(())),
            (Pending, InProgress, Err(EntersInProgress)),
            (Done, InProgress, Err(EntersInProgress)),
            (InProgress, Done, Ok(())),
            (InProgress, Pending, Err(LeavesInProgress)),
            (InProgress, Blocked, Err(LeavesInProgress)),
        ];
        for (from, to, expected) in cases {
            assert_eq!(update_transition(from, to), expected, "{from:?} → {to:?}");
        }
    }

    #[test]
    fn create_consistency_table() {
        use Consistency::*;
        let cases = [
            (None, Priority::Medium, false, Cheap),
            (None, Priority::Medium, true, Strict),
            (None, Priority::Critical, false, Strict),
            (
                Some(CreateConsistency::Auto),
                Priority::Critical,
                false,
                Strict,
            ),
            (Some(CreateConsistency::Auto), Priority::Low, false, Cheap),
            (
                Some(CreateConsistency::Cheap),
                Priority::Critical,
                true,
                Cheap,
            ),
            (
                Some(CreateConsistency::Strict),
                Priority::Low,
                false,
                Strict,
            ),
        ];
        for (requested, priority, default_strict, expected) in cases {
            assert_eq!(
                create_consistency(requested, priority, default_strict),
                expected,
                "{requested:?} {priority:?} {default_strict}"
            );
        }
    }

    #[test]
    fn update_consistency_table() {
        use Consistency::*;
        // (stored, requested, marking done, creator, expected (strict, reported))
        let cases = [
            (Cheap, None, false, false, Ok((false, Cheap))),
            (Cheap, Some(Strict), true, false, Ok((true, Strict))),
            (Strict, None, true, false, Ok((true, Strict))),
            (Strict, Some(Strict), false, false, Ok((true, Strict))),
            (Strict, Some(Cheap), false, true, Ok((true, Cheap))),
            (Strict, Some(Cheap), true, true, Err(DowngradeForbidden)),
            (Strict, Some(Cheap), false, false, Err(DowngradeForbidden)),
            (Cheap, Some(Cheap), true, false, Ok((false, Cheap))),
        ];
        for (stored, requested, done, creator, expected) in cases {
            let outcome = update_consistency(stored, requested, done, creator)
                .map(|mode| (mode.strict, mode.reported));
            assert_eq!(
                outcome, expected,
                "{stored:?} {requested:?} {done} {creator}"
            );
        }
        assert_eq!(release_consistency(Cheap, None), Cheap);
        assert_eq!(release_consistency(Cheap, Some(Strict)), Strict);
        assert_eq!(release_consistency(Strict, Some(Cheap)), Strict);
    }

    #[test]
    fn quality_charge_table() {
        let charge = |agent_id, completed, rollbacks| {
            Some(QualityCharge {
                agent_id,
                completed,
                rollbacks,
            })
        };
        let cases = [
            ((Pending, None), (Done, Some("a")), charge("a", 1, 0)),
            ((InProgress, Some("w")), (Done, None), charge("me", 1, 0)),
            ((Done, Some("w")), (Pending, None), charge("w", 0, 1)),
            ((Done, None), (Blocked, None), charge("me", 0, 1)),
            ((Done, Some("w")), (Done, Some("w")), None),
            ((Pending, None), (Blocked, None), None),
        ];
        for (before, after, expected) in cases {
            assert_eq!(
                quality_charge(before, after, "me"),
                expected,
                "{before:?} → {after:?}"
            );
        }
    }

    #[test]
    fn retry_after_profiles_stay_in_bounds_and_grow() {
        for active in [0, 5, 6, 10, 11, 20, 21, 500] {
            for misses in 0..12 {
                for any in [false, true] {
                    for random in [0.0, 0.5, 0.999_999] {
                        let ms = retry_after_ms(active, misses, any, random);
                        assert!((200..=12_000).contains(&ms), "{active} {misses} {ms}");
                    }
                }
            }
        }
        // ≤ 5 agents, first miss, no jitter spread at random 0: low = round(800 × 0.7).
        assert_eq!(retry_after_ms(1, 1, false, 0.0), 560);
        // Exponent caps at 6 and the profile cap applies: 800 × 1.3^6 > 3000.
        assert_eq!(retry_after_ms(1, 50, false, 0.999_999), 3000);
        // A claim somewhere caps the big profile at 5000.
        assert!(retry_after_ms(100, 50, true, 0.999_999) <= 5000);
        assert!(retry_after_ms(100, 50, false, 0.999_999) > 5000);
        assert!(retry_after_ms(3, 4, false, 0.5) > retry_after_ms(3, 1, false, 0.5));
    }

    #[test]
    fn governance_matches_whole_tokens_only() {
        for hint in [
            "swarm-7",
            "Experiment run",
            "w-EXP5-1",
            "exp-alpha",
            "round 2",
            "round2",
            "orchestrator",
            "sw_worker_3",
            "Workers",
            "[EXP12] task",
        ] {
            assert!(governance_hint_matches(hint), "{hint}");
        }
        for hint in [
            "background job",
            "networker",
            "expert",
            "express",
            "export-data",
            "aroundthehouse",
            "swarming",
            "",
            "claude-frontend",
        ] {
            assert!(!governance_hint_matches(hint), "{hint}");
        }
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
