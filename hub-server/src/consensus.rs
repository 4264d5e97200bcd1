//! Consensus tallying (tools-more §2), as pure functions: vote parsing and normalisation,
//! dedupe, quality weights, the weighted tally and the escalation rules in the spec's
//! order, and vote-source extraction from a context value or a message. No SQL, no MCP:
//! `service::consensus` loads blobs and quality stats and persists the decision.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::protocol::canonical::normalize;
use crate::protocol::codec::parse_blob_ref;
use crate::protocol::{is_sha256_hex, round3};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Reject,
    Abstain,
}

impl Decision {
    pub fn parse(text: &str) -> Option<Decision> {
        match text {
            "accept" => Some(Decision::Accept),
            "reject" => Some(Decision::Reject),
            "abstain" => Some(Decision::Abstain),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accept => "accept",
            Decision::Reject => "reject",
            Decision::Abstain => "abstain",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vote {
    pub agent_id: String,
    pub decision: Decision,
    /// Kept only when it is a finite number.
    pub confidence: Option<f64>,
}

impl Vote {
    /// Effective confidence: clamped to [0, 1], 0.5 when absent.
    pub fn effective_confidence(&self) -> f64 {
        self.confidence.map(|c| c.clamp(0.0, 1.0)).unwrap_or(0.5)
    }
}

/// A vote from JSON: `agent_id` trimmed and non-empty, `decision` one of the three.
pub fn parse_vote(value: &Value) -> Option<Vote> {
    let agent_id = value.get("agent_id")?.as_str()?.trim();
    if agent_id.is_empty() {
        return None;
    }
    let decision = Decision::parse(value.get("decision")?.as_str()?)?;
    let confidence = value
        .get("confidence")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite());
    Some(Vote {
        agent_id: agent_id.to_string(),
        decision,
        confidence,
    })
}

/// A lone decision object (`{"decision":"accept","confidence":0.8}`) written by `author`:
/// without an `agent_id` the vote is the author's. With one, that id is kept as written, so
/// the caller can see (and refuse) a vote naming someone other than its author.
pub fn parse_decision_object(value: &Value, author: &str) -> Option<Vote> {
    let map = value.as_object()?;
    if !map.contains_key("decision") {
        return None;
    }
    if map.contains_key("agent_id") {
        return parse_vote(value);
    }
    let mut named = map.clone();
    named.insert("agent_id".into(), Value::from(author));
    parse_vote(&Value::Object(named))
}

/// Valid votes of a JSON array, and how many items were not valid votes.
pub fn parse_vote_list(items: &[Value]) -> (Vec<Vote>, usize) {
    let votes: Vec<Vote> = items.iter().filter_map(parse_vote).collect();
    let invalid = items.len() - votes.len();
    (votes, invalid)
}

/// Why a votes blob could not be read as votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VotesDocError {
    InvalidJson,
    InvalidFormat,
}

/// A votes document: a vote array, or an object with a `votes` array. With
/// `lone_vote_author` (a blob a voter named from its own entry), also one decision object
/// (see [`parse_decision_object`]).
pub fn parse_votes_document(
    text: &str,
    lone_vote_author: Option<&str>,
) -> Result<(Vec<Vote>, usize), VotesDocError> {
    let value: Value = serde_json::from_str(text).map_err(|_| VotesDocError::InvalidJson)?;
    match &value {
        Value::Array(items) => Ok(parse_vote_list(items)),
        Value::Object(map) => match (map.get("votes"), lone_vote_author) {
            (Some(Value::Array(items)), _) => Ok(parse_vote_list(items)),
            (None, Some(author)) if map.contains_key("decision") => {
                let vote = parse_decision_object(&value, author);
                let invalid = usize::from(vote.is_none());
                Ok((vote.into_iter().collect(), invalid))
            }
            _ => Err(VotesDocError::InvalidFormat),
        },
        _ => Err(VotesDocError::InvalidFormat),
    }
}

/// `votes_blob_hash` / `votes_blob_ref` were given but name no blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidBlobRef;

/// The votes blob named by `votes_blob_hash` and/or `votes_blob_ref` (lowercased hash).
/// `Ok(None)`: neither was given. `Err`: one was given but no valid hash results, or both
/// yield different hashes.
pub fn resolve_blob_hash(
    hash_arg: Option<&str>,
    ref_arg: Option<&str>,
) -> Result<Option<String>, InvalidBlobRef> {
    let hash_arg = hash_arg.map(str::trim).filter(|h| !h.is_empty());
    let ref_arg = ref_arg.map(str::trim).filter(|r| !r.is_empty());
    if hash_arg.is_none() && ref_arg.is_none() {
        return Ok(None);
    }
    let from_ref = ref_arg.and_then(parse_blob_ref).map(|r| r.hash);
    if let (Some(a), Some(b)) = (hash_arg, from_ref.as_deref())
        && a != b
    {
        return Err(InvalidBlobRef);
    }
    let chosen = hash_arg.map(str::to_string).or(from_ref);
    match chosen {
        Some(hash) if is_sha256_hex(&hash) => Ok(Some(hash.to_ascii_lowercase())),
        _ => Err(InvalidBlobRef),
    }
}

/// Quality weight from an agent's done/rollback counts (core §4.12).
pub fn quality_weight(completed: i64, rollback: i64) -> f64 {
    if completed <= 0 {
        return 1.0;
    }
    let rate = rollback.max(0) as f64 / completed as f64;
    let stability = 1.0 - (0.7 * rate).min(0.35);
    let experience = (0.06 * ((completed + 1) as f64).log10()).min(0.12);
    round3((stability + experience).clamp(0.7, 1.2))
}

/// Tuning of one evaluation, already clamped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub disagreement_threshold: f64,
    pub min_non_abstain_votes: i64,
    pub token_budget_cap: Option<i64>,
    pub dedupe_by_agent: bool,
    pub quality_weighting: bool,
}

impl Params {
    /// Applies the spec's defaults and clamps to raw arguments.
    pub fn from_args(
        threshold: Option<f64>,
        min_non_abstain: Option<f64>,
        token_budget_cap: Option<f64>,
        dedupe_by_agent: Option<bool>,
        quality_weighting: bool,
    ) -> Params {
        let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
        Params {
            disagreement_threshold: finite(threshold).unwrap_or(0.35).clamp(0.1, 0.9),
            min_non_abstain_votes: finite(min_non_abstain)
                .map(|v| (v.floor() as i64).max(1))
                .unwrap_or(2),
            token_budget_cap: finite(token_budget_cap).map(|v| (v.floor() as i64).max(20)),
            dedupe_by_agent: dedupe_by_agent.unwrap_or(true),
            quality_weighting,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accept,
    Reject,
    EscalateVerifier,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accept => "accept",
            Outcome::Reject => "reject",
            Outcome::EscalateVerifier => "escalate_verifier",
        }
    }
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub outcome: Outcome,
    /// At most one reason: the first escalation rule that fired.
    pub reasons: Vec<String>,
    pub weighted_accept: f64,
    pub weighted_reject: f64,
    pub abstain_count: i64,
    pub non_abstain_count: i64,
    pub disagreement_ratio: f64,
    pub uncertainty: f64,
    pub estimated_token_cost: i64,
    pub input_vote_count: usize,
    pub evaluated_vote_count: usize,
    pub deduped_vote_count: usize,
    pub invalid_vote_count: usize,
    pub quality_weighting: bool,
    pub quality_weight_mean: f64,
    pub quality_weight_min: f64,
    pub quality_weight_max: f64,
    /// Indices (into the evaluated input) of the votes that counted, in input order.
    pub counted: Vec<usize>,
    /// The quality weight of each counted vote (1 when weighting is off).
    pub quality_weights: Vec<f64>,
}

impl Evaluation {
    /// Both sides carry weight.
    pub fn conflict_detected(&self) -> bool {
        self.weighted_accept > 0.0 && self.weighted_reject > 0.0
    }

    /// The `stats` object of responses, persisted decisions and decision blobs, normalised
    /// like canonical JSON (1.0 → 1) so all three carry identical numbers.
    pub fn stats(&self) -> Value {
        normalize(&self.stats_json())
    }

    fn stats_json(&self) -> Value {
        json!({
            "weighted_accept": round3(self.weighted_accept),
            "weighted_reject": round3(self.weighted_reject),
            "abstain_count": self.abstain_count,
            "non_abstain_count": self.non_abstain_count,
            "disagreement_ratio": round3(self.disagreement_ratio),
            "uncertainty": round3(self.uncertainty),
            "estimated_token_cost": self.estimated_token_cost,
            "input_vote_count": self.input_vote_count,
            "evaluated_vote_count": self.evaluated_vote_count,
            "deduped_vote_count": self.deduped_vote_count,
            "invalid_vote_count": self.invalid_vote_count,
            "quality_weighting": if self.quality_weighting { "on" } else { "off" },
            "quality_weight_mean": round3(self.quality_weight_mean),
            "quality_weight_min": round3(self.quality_weight_min),
            "quality_weight_max": round3(self.quality_weight_max),
        })
    }
}

/// Indices of the last vote of each agent, in input order (so an inline vote overrides a
/// blob vote).
pub fn dedupe_last(votes: &[Vote]) -> Vec<usize> {
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (index, vote) in votes.iter().enumerate() {
        last.insert(vote.agent_id.as_str(), index);
    }
    (0..votes.len())
        .filter(|index| last.get(votes[*index].agent_id.as_str()) == Some(index))
        .collect()
}

/// Tallies `combined` (blob votes, then inline votes) and applies the escalation rules.
/// `weight_of` gives an agent's quality weight; it is consulted only when weighting is on.
pub fn evaluate(
    combined: &[Vote],
    invalid_vote_count: usize,
    params: &Params,
    mut weight_of: impl FnMut(&str) -> f64,
) -> Evaluation {
    let counted = if params.dedupe_by_agent {
        dedupe_last(combined)
    } else {
        (0..combined.len()).collect()
    };
    let evaluated: Vec<&Vote> = counted.iter().map(|index| &combined[*index]).collect();
    let estimated_token_cost = 40 + 5 * evaluated.len() as i64;
    let mut cache: HashMap<String, f64> = HashMap::new();
    let (mut wa, mut wr) = (0.0_f64, 0.0_f64);
    let (mut abstain, mut non_abstain) = (0_i64, 0_i64);
    let mut weights = Vec::with_capacity(evaluated.len());
    for vote in evaluated.iter().copied() {
        let quality = if params.quality_weighting {
            *cache
                .entry(vote.agent_id.clone())
                .or_insert_with(|| weight_of(&vote.agent_id))
        } else {
            1.0
        };
        weights.push(quality);
        let w = vote.effective_confidence() * quality;
        match vote.decision {
            Decision::Accept => {
                wa += w;
                non_abstain += 1;
            }
            Decision::Reject => {
                wr += w;
                non_abstain += 1;
            }
            Decision::Abstain => abstain += 1,
        }
    }
    let total = wa + wr;
    let (disagreement, uncertainty) = if total > 0.0 {
        (wa.min(wr) / total, 1.0 - (wa - wr).abs() / total)
    } else {
        (1.0, 1.0)
    };
    let (outcome, reasons) = match params.token_budget_cap {
        Some(cap) if estimated_token_cost > cap => (
            Outcome::EscalateVerifier,
            vec![format!(
                "estimated_token_cost_exceeds_cap:{estimated_token_cost}>{cap}"
            )],
        ),
        _ if non_abstain < params.min_non_abstain_votes => (
            Outcome::EscalateVerifier,
            vec![format!(
                "insufficient_non_abstain_votes:{non_abstain}<{}",
                params.min_non_abstain_votes
            )],
        ),
        _ if disagreement > params.disagreement_threshold => (
            Outcome::EscalateVerifier,
            vec![format!(
                "high_disagreement:{:.3}>{:.3}",
                round3(disagreement),
                params.disagreement_threshold
            )],
        ),
        _ if wa >= wr => (Outcome::Accept, Vec::new()),
        _ => (Outcome::Reject, Vec::new()),
    };
    let (mean, min, max) = if weights.is_empty() {
        (1.0, 1.0, 1.0)
    } else {
        (
            weights.iter().sum::<f64>() / weights.len() as f64,
            weights.iter().copied().fold(f64::INFINITY, f64::min),
            weights.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    Evaluation {
        outcome,
        reasons,
        weighted_accept: wa,
        weighted_reject: wr,
        abstain_count: abstain,
        non_abstain_count: non_abstain,
        disagreement_ratio: disagreement,
        uncertainty,
        estimated_token_cost,
        input_vote_count: combined.len(),
        evaluated_vote_count: evaluated.len(),
        deduped_vote_count: combined.len() - evaluated.len(),
        invalid_vote_count,
        quality_weighting: params.quality_weighting,
        quality_weight_mean: mean,
        quality_weight_min: min,
        quality_weight_max: max,
        counted,
        quality_weights: weights,
    }
}

/// When a decision blob is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitPolicy {
    Never,
    Always,
    OnEscalate,
    OnConflict,
}

impl EmitPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            EmitPolicy::Never => "never",
            EmitPolicy::Always => "always",
            EmitPolicy::OnEscalate => "on_escalate",
            EmitPolicy::OnConflict => "on_conflict",
        }
    }

    pub fn should_emit(self, evaluation: &Evaluation) -> bool {
        match self {
            EmitPolicy::Never => false,
            EmitPolicy::Always => true,
            EmitPolicy::OnEscalate => evaluation.outcome == Outcome::EscalateVerifier,
            EmitPolicy::OnConflict => evaluation.conflict_detected(),
        }
    }
}

/// Votes found in a context value or a message.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtractedVotes {
    /// The text is a blob-ref envelope; its `h` names the votes blob.
    BlobRef(String),
    /// A JSON array of votes.
    InlineVotes { votes: Vec<Vote>, invalid: usize },
    /// A JSON object naming a votes blob (`votes_blob_hash` / `votes_blob_ref`).
    BlobHash(String),
    /// A JSON object with a `votes` array.
    InlineVotesObject { votes: Vec<Vote>, invalid: usize },
}

impl ExtractedVotes {
    pub fn kind(&self) -> &'static str {
        match self {
            ExtractedVotes::BlobRef(_) => "blob_ref",
            ExtractedVotes::InlineVotes { .. } => "inline_votes",
            ExtractedVotes::BlobHash(_) => "blob_hash",
            ExtractedVotes::InlineVotesObject { .. } => "inline_votes_object",
        }
    }
}

/// Reads a vote source out of `text` (§2.3 step 4). `allow_blob_ref`: whether a blob-ref
/// envelope counts (it does for a context value and a message's content, not metadata).
pub fn extract_votes(text: &str, allow_blob_ref: bool) -> Option<ExtractedVotes> {
    if allow_blob_ref && let Some(blob_ref) = parse_blob_ref(text) {
        return Some(ExtractedVotes::BlobRef(blob_ref.hash));
    }
    let value: Value = serde_json::from_str(text).ok()?;
    match &value {
        Value::Array(items) => {
            let (votes, invalid) = parse_vote_list(items);
            (!votes.is_empty()).then_some(ExtractedVotes::InlineVotes { votes, invalid })
        }
        Value::Object(map) => {
            let hash = map.get("votes_blob_hash").and_then(Value::as_str);
            let reference = map.get("votes_blob_ref").and_then(Value::as_str);
            if (hash.is_some() || reference.is_some())
                && let Ok(Some(hash)) = resolve_blob_hash(hash, reference)
            {
                return Some(ExtractedVotes::BlobHash(hash));
            }
            if let Some(Value::Array(items)) = map.get("votes") {
                let (votes, invalid) = parse_vote_list(items);
                if !votes.is_empty() {
                    return Some(ExtractedVotes::InlineVotesObject { votes, invalid });
                }
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(agent: &str, decision: Decision, confidence: Option<f64>) -> Vote {
        Vote {
            agent_id: agent.into(),
            decision,
            confidence,
        }
    }

    fn params() -> Params {
        Params::from_args(None, None, None, None, false)
    }

    use Decision::{Abstain, Accept, Reject};

    #[test]
    fn quality_weights_match_the_spec_examples() {
        assert_eq!(quality_weight(0, 0), 1.0);
        assert_eq!(quality_weight(1, 0), 1.018);
        assert_eq!(quality_weight(100, 0), 1.12);
        assert_eq!(quality_weight(10, 5), 0.712);
        assert_eq!(quality_weight(1, 1), 0.7);
        assert_eq!(quality_weight(1_000_000, 0), 1.12);
    }

    #[test]
    fn params_clamp() {
        let p = Params::from_args(Some(5.0), Some(0.2), Some(3.0), Some(false), true);
        assert_eq!(p.disagreement_threshold, 0.9);
        assert_eq!(p.min_non_abstain_votes, 1);
        assert_eq!(p.token_budget_cap, Some(20));
        assert!(!p.dedupe_by_agent);
        let p = Params::from_args(Some(0.0), Some(f64::NAN), None, None, true);
        assert_eq!(
            (p.disagreement_threshold, p.min_non_abstain_votes),
            (0.1, 2)
        );
    }

    /// The consensus table: votes and tuning in, outcome and reason out.
    #[test]
    fn outcome_table() {
        struct Case {
            name: &'static str,
            votes: Vec<Vote>,
            threshold: Option<f64>,
            min: Option<f64>,
            cap: Option<f64>,
            outcome: Outcome,
            reason: Option<&'static str>,
            disagreement: f64,
        }
        let cases = vec![
            Case {
                name: "clear accept",
                votes: vec![
                    vote("a1", Accept, Some(0.9)),
                    vote("a2", Accept, Some(0.8)),
                    vote("a3", Reject, Some(0.2)),
                ],
                threshold: None,
                min: None,
                cap: None,
                outcome: Outcome::Accept,
                reason: None,
                disagreement: 0.105,
            },
            Case {
                name: "even split escalates",
                votes: vec![vote("a1", Accept, Some(0.9)), vote("a2", Reject, Some(0.9))],
                threshold: Some(0.2),
                min: None,
                cap: None,
                outcome: Outcome::EscalateVerifier,
                reason: Some("high_disagreement:0.500>0.200"),
                disagreement: 0.5,
            },
            Case {
                name: "clear reject",
                votes: vec![vote("a1", Reject, Some(0.9)), vote("a2", Reject, None)],
                threshold: None,
                min: None,
                cap: None,
                outcome: Outcome::Reject,
                reason: None,
                disagreement: 0.0,
            },
            Case {
                name: "token cap wins over everything",
                votes: vec![vote("a1", Accept, Some(0.9))],
                threshold: None,
                min: None,
                cap: Some(20.0),
                outcome: Outcome::EscalateVerifier,
                reason: Some("estimated_token_cost_exceeds_cap:45>20"),
                disagreement: 0.0,
            },
            Case {
                name: "too few non-abstain votes",
                votes: vec![
                    vote("a1", Accept, Some(0.9)),
                    vote("a2", Abstain, Some(1.0)),
                ],
                threshold: None,
                min: None,
                cap: None,
                outcome: Outcome::EscalateVerifier,
                reason: Some("insufficient_non_abstain_votes:1<2"),
                disagreement: 0.0,
            },
            Case {
                name: "exact tie accepts when the threshold allows it",
                votes: vec![vote("a1", Accept, Some(0.5)), vote("a2", Reject, Some(0.5))],
                threshold: Some(0.9),
                min: None,
                cap: None,
                outcome: Outcome::Accept,
                reason: None,
                disagreement: 0.5,
            },
            Case {
                name: "all-zero confidence escalates on disagreement 1",
                votes: vec![
                    vote("a1", Accept, Some(0.0)),
                    vote("a2", Reject, Some(-3.0)),
                ],
                threshold: None,
                min: None,
                cap: None,
                outcome: Outcome::EscalateVerifier,
                reason: Some("high_disagreement:1.000>0.350"),
                disagreement: 1.0,
            },
            Case {
                name: "confidence above 1 is clamped",
                votes: vec![
                    vote("a1", Accept, Some(7.0)),
                    vote("a2", Reject, Some(0.25)),
                ],
                threshold: Some(0.25),
                min: Some(1.0),
                cap: None,
                outcome: Outcome::Accept,
                reason: None,
                disagreement: 0.2,
            },
        ];
        for case in cases {
            let p = Params::from_args(case.threshold, case.min, case.cap, None, false);
            let e = evaluate(&case.votes, 0, &p, |_| 1.0);
            assert_eq!(e.outcome, case.outcome, "{}", case.name);
            assert_eq!(
                e.reasons.first().map(String::as_str),
                case.reason,
                "{}",
                case.name
            );
            assert_eq!(
                round3(e.disagreement_ratio),
                case.disagreement,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn dedupe_keeps_the_last_vote_per_agent() {
        let votes = vec![
            vote("a1", Reject, Some(0.9)),
            vote("a2", Accept, Some(0.9)),
            vote("a1", Accept, Some(0.9)),
        ];
        let e = evaluate(&votes, 1, &params(), |_| 1.0);
        assert_eq!(
            (
                e.input_vote_count,
                e.evaluated_vote_count,
                e.deduped_vote_count
            ),
            (3, 2, 1)
        );
        assert_eq!(e.counted, vec![1, 2]);
        assert_eq!(e.quality_weights, vec![1.0, 1.0]);
        assert_eq!(e.outcome, Outcome::Accept);
        assert_eq!(e.invalid_vote_count, 1);
        let all = Params {
            dedupe_by_agent: false,
            ..params()
        };
        let e = evaluate(&votes, 0, &all, |_| 1.0);
        assert_eq!((e.evaluated_vote_count, e.deduped_vote_count), (3, 0));
        assert_eq!(e.estimated_token_cost, 55);
    }

    #[test]
    fn quality_weighting_scales_votes() {
        let votes = vec![
            vote("good", Accept, Some(0.6)),
            vote("flaky", Reject, Some(0.8)),
        ];
        let weight = |agent: &str| if agent == "good" { 1.12 } else { 0.7 };
        let on = Params {
            quality_weighting: true,
            disagreement_threshold: 0.9,
            ..params()
        };
        let e = evaluate(&votes, 0, &on, weight);
        assert_eq!(round3(e.weighted_accept), 0.672);
        assert_eq!(round3(e.weighted_reject), 0.56);
        assert_eq!(e.outcome, Outcome::Accept);
        assert_eq!((e.quality_weight_min, e.quality_weight_max), (0.7, 1.12));
        let off = Params {
            quality_weighting: false,
            disagreement_threshold: 0.9,
            ..params()
        };
        let e = evaluate(&votes, 0, &off, |_| panic!("not consulted when off"));
        assert_eq!(e.outcome, Outcome::Reject);
        assert_eq!(e.stats_json()["quality_weight_mean"], 1.0);
    }

    #[test]
    fn emit_policies() {
        let split = evaluate(
            &[vote("a", Accept, Some(0.9)), vote("b", Reject, Some(0.1))],
            0,
            &params(),
            |_| 1.0,
        );
        assert!(EmitPolicy::OnConflict.should_emit(&split));
        assert!(!EmitPolicy::OnEscalate.should_emit(&split));
        assert!(EmitPolicy::Always.should_emit(&split));
        assert!(!EmitPolicy::Never.should_emit(&split));
    }

    #[test]
    fn blob_hash_resolution() {
        let h = "AB".repeat(32);
        let envelope = crate::protocol::codec::blob_ref_envelope(&h, 10);
        assert_eq!(resolve_blob_hash(None, None), Ok(None));
        assert_eq!(
            resolve_blob_hash(Some(&h), None),
            Ok(Some(h.to_lowercase()))
        );
        assert_eq!(
            resolve_blob_hash(None, Some(&envelope)),
            Ok(Some(h.to_lowercase()))
        );
        assert_eq!(
            resolve_blob_hash(Some(&h), Some(&envelope)),
            Ok(Some(h.to_lowercase()))
        );
        assert_eq!(
            resolve_blob_hash(Some(&h.to_lowercase()), Some(&envelope)),
            Err(InvalidBlobRef)
        );
        assert_eq!(resolve_blob_hash(Some("xyz"), None), Err(InvalidBlobRef));
        assert_eq!(
            resolve_blob_hash(None, Some("not an envelope")),
            Err(InvalidBlobRef)
        );
        assert_eq!(resolve_blob_hash(Some("  "), Some("")), Ok(None));
    }

    #[test]
    fn vote_sources() {
        let h = "0".repeat(64);
        let envelope = crate::protocol::codec::blob_ref_envelope(&h, 10);
        assert_eq!(
            extract_votes(&envelope, true),
            Some(ExtractedVotes::BlobRef(h.clone()))
        );
        assert_eq!(extract_votes(&envelope, false), None);
        let array =
            r#"[{"agent_id":"a","decision":"accept"},{"agent_id":" ","decision":"accept"}]"#;
        assert!(matches!(
            extract_votes(array, true),
            Some(ExtractedVotes::InlineVotes { ref votes, invalid: 1 }) if votes.len() == 1
        ));
        let object = format!(r#"{{"votes_blob_hash":"{h}","votes":[]}}"#);
        assert_eq!(
            extract_votes(&object, true),
            Some(ExtractedVotes::BlobHash(h.clone()))
        );
        let object = r#"{"votes":[{"agent_id":"a","decision":"reject","confidence":"high"}]}"#;
        let Some(ExtractedVotes::InlineVotesObject { votes, .. }) = extract_votes(object, true)
        else {
            panic!("object votes");
        };
        assert_eq!(votes[0].confidence, None);
        assert_eq!(votes[0].effective_confidence(), 0.5);
        for unsupported in [
            "plain text",
            "[]",
            "{\"votes\":[1]}",
            "42",
            "{\"votes_blob_hash\":\"zz\"}",
        ] {
            assert_eq!(extract_votes(unsupported, true), None, "{unsupported}");
        }
        assert_eq!(
            parse_votes_document("{}", None),
            Err(VotesDocError::InvalidFormat)
        );
        assert_eq!(
            parse_votes_document("nope", None),
            Err(VotesDocError::InvalidJson)
        );
    }

    /// A lone decision object counts only where its author is known (a voter's own entry or
    /// the blob it names); its agent_id defaults to the author and is kept when written.
    #[test]
    fn decision_objects() {
        let lone = r#"{"decision":"accept","confidence":0.8}"#;
        assert_eq!(
            parse_votes_document(lone, None),
            Err(VotesDocError::InvalidFormat)
        );
        assert_eq!(
            parse_votes_document(lone, Some("w1")),
            Ok((vec![vote("w1", Accept, Some(0.8))], 0))
        );
        let cases: [(&str, Option<Vote>); 6] = [
            (lone, Some(vote("w1", Accept, Some(0.8)))),
            (
                r#"{"agent_id":"w2","decision":"reject"}"#,
                Some(vote("w2", Reject, None)),
            ),
            (
                r#"{"agent_id":" w1 ","decision":"abstain"}"#,
                Some(vote("w1", Abstain, None)),
            ),
            (r#"{"agent_id":"","decision":"accept"}"#, None),
            (r#"{"decision":"maybe"}"#, None),
            (r#"{"verdict":"accept"}"#, None),
        ];
        for (text, expected) in cases {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(parse_decision_object(&value, "w1"), expected, "{text}");
        }
        assert_eq!(
            parse_votes_document(r#"{"decision":"maybe"}"#, Some("w1")),
            Ok((vec![], 1))
        );
    }
}
