//! The done gate (spec §4.11) and the evidence it counts: what a call must bring to mark a
//! task done, the quality-adjusted confidence bar, and how evidence refs are normalised.
//!
//! Pure: the caller looks up the facts (quality counters, stored evidence, whether the
//! verifier is registered) and passes them in. Must not touch I/O, SQL or MCP.

use crate::config::Config;
use crate::domain::task::Consistency;

/// The done-gate settings taken from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct GateConfig {
    pub cheap_min_refs: i64,
    pub strict_min_refs: i64,
    pub strict_floor: f64,
}

impl GateConfig {
    pub fn from_config(config: &Config) -> Self {
        GateConfig {
            cheap_min_refs: config.done_evidence_min_refs.max(0),
            strict_min_refs: config
                .strict_done_evidence_min_refs
                .max(config.done_evidence_min_refs),
            strict_floor: config.strict_done_confidence_min.clamp(0.75, 1.0),
        }
    }
}

/// What a call brings to the gate, shared by update_task and release_task_claim (the
/// service adds the looked-up facts to make a [`GateInput`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DoneClaim {
    pub confidence: Option<f64>,
    /// `verification_passed` was exactly `true` (anything else, also `"true"`, is not).
    pub verification_passed: bool,
    pub verified_by: Option<String>,
    /// As sent; the service normalises them ([`normalize_evidence`]) against its limits.
    pub evidence_refs: Vec<String>,
}

/// Everything the done gate looks at.
#[derive(Debug, Clone, Copy)]
pub struct GateInput {
    pub strict: bool,
    pub confidence: Option<f64>,
    pub verification_passed: bool,
    /// `verified_by` names a registered agent other than the caller and the assignee.
    pub independent_verifier: bool,
    /// The caller's `(completed_count, rollback_count)`.
    pub quality: (i64, i64),
    /// |stored refs ∪ refs of this call|.
    pub evidence_total: i64,
}

/// What a passed gate reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatePass {
    pub required_confidence: f64,
    pub required_evidence_refs: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateCode {
    DoneGateFailed,
    VerifierRequired,
    EvidenceRequired,
}

impl GateCode {
    pub fn as_str(self) -> &'static str {
        match self {
            GateCode::DoneGateFailed => "DONE_GATE_FAILED",
            GateCode::VerifierRequired => "VERIFIER_REQUIRED",
            GateCode::EvidenceRequired => "EVIDENCE_REQUIRED",
        }
    }
}

/// Why the gate refused, with the numbers the refusal payload reports.
#[derive(Debug, Clone, PartialEq)]
pub struct GateFailure {
    pub code: GateCode,
    pub message: String,
    pub required_confidence: f64,
    pub consistency: Consistency,
    /// `(required_evidence_refs, evidence_refs_total)`, only for `EVIDENCE_REQUIRED`.
    pub evidence: Option<(i64, i64)>,
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The quality-adjusted confidence threshold: 0.9, raised by up to 0.07 for a rollback
/// history.
pub fn quality_threshold((completed, rollbacks): (i64, i64)) -> f64 {
    if completed <= 0 {
        return 0.9;
    }
    round3(0.9 + (rollbacks as f64 / completed as f64 * 0.25).min(0.07))
}

/// The done gate: the first failing check wins.
pub fn done_gate(input: &GateInput, config: &GateConfig) -> Result<GatePass, GateFailure> {
    let consistency = Consistency::from_strict(input.strict);
    let mode = consistency.as_str();
    let q = quality_threshold(input.quality);
    let (floor, required, required_refs) = if input.strict {
        (
            config.strict_floor,
            round3(q.max(config.strict_floor)),
            config.strict_min_refs,
        )
    } else {
        (0.75, q, config.cheap_min_refs)
    };
    let refusal = |code: GateCode, message: String| GateFailure {
        code,
        message,
        required_confidence: required,
        consistency,
        evidence: None,
    };
    let Some(confidence) = input.confidence.filter(|c| c.is_finite()) else {
        return Err(refusal(
            GateCode::DoneGateFailed,
            format!(
                "done gate ({mode}): confidence is missing; pass confidence (0-1) of at least \
                 {required:.2}"
            ),
        ));
    };
    if confidence < floor {
        return Err(refusal(
            GateCode::DoneGateFailed,
            format!(
                "done gate ({mode}): confidence {confidence:.2} is below the floor {floor:.2}; \
                 finish and verify the work before marking it done"
            ),
        ));
    }
    if !input.verification_passed {
        return Err(refusal(
            GateCode::DoneGateFailed,
            format!(
                "done gate ({mode}): verification_passed must be true; run the task's checks \
                 and pass verification_passed:true"
            ),
        ));
    }
    if input.strict && !input.independent_verifier {
        return Err(refusal(
            GateCode::VerifierRequired,
            "done gate (strict): an independent verifier is required; pass verified_by naming \
             a registered agent other than you and the assignee"
                .to_string(),
        ));
    }
    if confidence < required && !input.independent_verifier {
        return Err(refusal(
            GateCode::VerifierRequired,
            format!(
                "done gate ({mode}): confidence {confidence:.2} is below {required:.2}; pass \
                 verified_by naming a registered agent other than you and the assignee"
            ),
        ));
    }
    if required_refs > 0 && input.evidence_total < required_refs {
        let mut failure = refusal(
            GateCode::EvidenceRequired,
            format!(
                "done gate ({mode}): {required_refs} evidence ref(s) required, the task has {}; \
                 pass evidence_refs (test ids, commit hashes, file paths)",
                input.evidence_total
            ),
        );
        failure.evidence = Some((required_refs, input.evidence_total));
        return Err(failure);
    }
    Ok(GatePass {
        required_confidence: required,
        required_evidence_refs: required_refs,
    })
}

/// The verifier worth looking up (D25): `verified_by` trimmed, non-empty, and neither the
/// caller nor the assignee. The caller still checks that it is a registered agent.
pub fn verifier_candidate<'a>(
    verified_by: Option<&'a str>,
    caller: &str,
    assignee: Option<&str>,
) -> Option<&'a str> {
    let verifier = verified_by.map(str::trim).filter(|v| !v.is_empty())?;
    (verifier != caller && Some(verifier) != assignee).then_some(verifier)
}

/// Evidence refs as stored: trimmed, empty ones dropped, cut to `max_chars` characters,
/// de-duplicated (first occurrence kept).
pub fn normalize_evidence(refs: &[String], max_chars: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in refs {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        let cut: String = trimmed.chars().take(max_chars).collect();
        if !out.contains(&cut) {
            out.push(cut);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate_config() -> GateConfig {
        GateConfig {
            cheap_min_refs: 1,
            strict_min_refs: 2,
            strict_floor: 0.95,
        }
    }

    fn input() -> GateInput {
        GateInput {
            strict: false,
            confidence: Some(0.95),
            verification_passed: true,
            independent_verifier: false,
            quality: (0, 0),
            evidence_total: 1,
        }
    }

    /// The done gate as a table: each row an input and the expected outcome.
    #[test]
    fn done_gate_table() {
        use GateCode::*;
        type Case = (&'static str, fn(&mut GateInput), Result<f64, GateCode>);
        let cases: Vec<Case> = vec![
            ("cheap pass", |_| {}, Ok(0.9)),
            (
                "no confidence",
                |i| i.confidence = None,
                Err(DoneGateFailed),
            ),
            (
                "nan confidence",
                |i| i.confidence = Some(f64::NAN),
                Err(DoneGateFailed),
            ),
            (
                "below cheap floor",
                |i| i.confidence = Some(0.7),
                Err(DoneGateFailed),
            ),
            (
                "verification not passed",
                |i| i.verification_passed = false,
                Err(DoneGateFailed),
            ),
            (
                "cheap below 0.9 without verifier",
                |i| i.confidence = Some(0.8),
                Err(VerifierRequired),
            ),
            (
                "cheap below 0.9 with verifier",
                |i| {
                    i.confidence = Some(0.8);
                    i.independent_verifier = true;
                },
                Ok(0.9),
            ),
            (
                "cheap no evidence",
                |i| i.evidence_total = 0,
                Err(EvidenceRequired),
            ),
            (
                "strict without verifier",
                |i| i.strict = true,
                Err(VerifierRequired),
            ),
            (
                "strict below strict floor",
                |i| {
                    i.strict = true;
                    i.confidence = Some(0.9);
                    i.independent_verifier = true;
                },
                Err(DoneGateFailed),
            ),
            (
                "strict one ref",
                |i| {
                    i.strict = true;
                    i.independent_verifier = true;
                },
                Err(EvidenceRequired),
            ),
            (
                "strict pass",
                |i| {
                    i.strict = true;
                    i.independent_verifier = true;
                    i.evidence_total = 2;
                },
                Ok(0.95),
            ),
            (
                "rollback history raises the bar",
                |i| {
                    i.quality = (4, 2);
                    i.confidence = Some(0.95);
                },
                Err(VerifierRequired),
            ),
            (
                "rollback history met",
                |i| {
                    i.quality = (4, 2);
                    i.confidence = Some(0.98);
                },
                Ok(0.97),
            ),
            ("small rollback rate", |i| i.quality = (10, 1), Ok(0.925)),
            (
                "strict with high penalty",
                |i| {
                    i.strict = true;
                    i.quality = (1, 1);
                    i.confidence = Some(0.96);
                    i.independent_verifier = true;
                    i.evidence_total = 5;
                },
                Ok(0.97),
            ),
            (
                "confidence over 1 is not range checked",
                |i| i.confidence = Some(1.5),
                Ok(0.9),
            ),
        ];
        for (name, mutate, expected) in cases {
            let mut case = input();
            mutate(&mut case);
            let outcome = done_gate(&case, &gate_config());
            match (expected, outcome) {
                (Ok(required), Ok(pass)) => {
                    assert_eq!(pass.required_confidence, required, "{name}");
                }
                (Err(code), Err(failure)) => {
                    assert_eq!(failure.code, code, "{name}: {}", failure.message);
                    assert_eq!(failure.consistency.is_strict(), case.strict, "{name}");
                    assert_eq!(
                        failure.evidence.is_some(),
                        code == EvidenceRequired,
                        "{name}"
                    );
                }
                (expected, outcome) => panic!("{name}: expected {expected:?}, got {outcome:?}"),
            }
        }
    }

    #[test]
    fn gate_messages_show_values_and_mode() {
        let mut case = input();
        case.confidence = Some(0.7);
        let failure = done_gate(&case, &gate_config()).unwrap_err();
        assert!(failure.message.contains("0.70") && failure.message.contains("0.75"));
        assert!(failure.message.contains("cheap"));
    }

    #[test]
    fn verifier_candidates() {
        let cases: [(Option<&str>, Option<&str>, Option<&str>); 6] = [
            (None, None, None),
            (Some("  "), None, None),
            (Some("me"), None, None),
            (Some("owner"), Some("owner"), None),
            (Some(" rev "), Some("owner"), Some("rev")),
            (Some("rev"), None, Some("rev")),
        ];
        for (verified_by, assignee, expected) in cases {
            assert_eq!(
                verifier_candidate(verified_by, "me", assignee),
                expected,
                "{verified_by:?} {assignee:?}"
            );
        }
    }

    #[test]
    fn evidence_is_trimmed_cut_and_deduplicated() {
        let cases: [(&[&str], &[&str]); 4] = [
            (&[], &[]),
            (&["  a  ", "", "   ", "a"], &["a"]),
            (&["0123456789abc", "0123456789xyz"], &["0123456789"]),
            (&["äöüäöüäöüäöü", "b"], &["äöüäöüäöüä", "b"]),
        ];
        for (refs, expected) in cases {
            let refs: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
            assert_eq!(normalize_evidence(&refs, 10), expected, "{refs:?}");
        }
    }
}
