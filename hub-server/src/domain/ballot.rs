//! Ballots: a reviewer gathers one vote per voter, and each vote is proven by a row its
//! voter wrote itself — the voter's context entry under the ballot key, or a context entry
//! or message the reviewer references (`context_id:N`, `message_id:N`). A vote naming
//! anyone but the author of its row is a forgery, whatever the auth mode: the row's author
//! comes from the hub, the name inside it from the payload. Pure: the references, what an
//! entry holds, forgeries, missing voters and the quorum. `service::consensus::ballot`
//! loads the rows; `crate::consensus` tallies.

use std::collections::BTreeSet;
use std::fmt;

use crate::consensus::{self, ExtractedVotes, Vote};

/// A row holding a vote, as a caller names it: `context_id:N` or `message_id:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VoteRef {
    Context(i64),
    Message(i64),
}

impl VoteRef {
    /// `context_id:N` / `message_id:N` with a positive integer N (spaces around the parts
    /// allowed); anything else is not a reference.
    pub fn parse(text: &str) -> Option<VoteRef> {
        let (kind, id) = text.trim().split_once(':')?;
        let id = id.trim().parse::<i64>().ok().filter(|id| *id > 0)?;
        match kind.trim() {
            "context_id" => Some(VoteRef::Context(id)),
            "message_id" => Some(VoteRef::Message(id)),
            _ => None,
        }
    }
}

impl fmt::Display for VoteRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VoteRef::Context(id) => write!(f, "context_id:{id}"),
            VoteRef::Message(id) => write!(f, "message_id:{id}"),
        }
    }
}

/// Where a counted vote was read from; persisted with the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The call's own inline votes.
    Call,
    /// A votes blob named in the call.
    Blob(String),
    /// A context entry or a message.
    Row(VoteRef),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Call => f.write_str("call"),
            Source::Blob(hash) => write!(f, "blob:{hash}"),
            Source::Row(row) => row.fmt(f),
        }
    }
}

/// A vote's source and who wrote that source (the caller, for the call's own votes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub source: Source,
    pub author: String,
}

impl Provenance {
    /// The vote is its source author's own.
    pub fn proves(&self, vote: &Vote) -> bool {
        vote.agent_id == self.author
    }
}

/// What a voter's row holds.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryVotes {
    /// Votes written in the row itself, and how many items were not valid votes.
    Votes { votes: Vec<Vote>, invalid: usize },
    /// The hash of a votes blob the row names (a blob-ref envelope or `{votes_blob_hash}`).
    Blob(String),
}

/// The votes of a row `author` wrote: any vote source of tools-more §2.3 (array,
/// `{votes:[...]}`, `{votes_blob_hash}`, blob-ref envelope) or one decision object whose
/// `agent_id` defaults to the author. `None`: the row holds no vote.
pub fn entry_votes(text: &str, author: &str) -> Option<EntryVotes> {
    if let Some(found) = consensus::extract_votes(text, true) {
        return Some(match found {
            ExtractedVotes::BlobRef(hash) | ExtractedVotes::BlobHash(hash) => {
                EntryVotes::Blob(hash)
            }
            ExtractedVotes::InlineVotes { votes, invalid }
            | ExtractedVotes::InlineVotesObject { votes, invalid } => {
                EntryVotes::Votes { votes, invalid }
            }
        });
    }
    let value = serde_json::from_str(text).ok()?;
    let vote = consensus::parse_decision_object(&value, author)?;
    Some(EntryVotes::Votes {
        votes: vec![vote],
        invalid: 0,
    })
}

/// The voters a caller listed: trimmed, first occurrence kept. `Err(i)`: item `i` is blank.
pub fn listed_voters(agent_ids: &[String]) -> Result<Vec<String>, usize> {
    let mut seen = BTreeSet::new();
    let mut voters = Vec::with_capacity(agent_ids.len());
    for (index, id) in agent_ids.iter().enumerate() {
        let id = id.trim();
        if id.is_empty() {
            return Err(index);
        }
        if seen.insert(id) {
            voters.push(id.to_string());
        }
    }
    Ok(voters)
}

/// `min_votes` was not a finite number ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidMinVotes;

/// A quorum argument: a finite number ≥ 1, floored.
pub fn min_votes(raw: Option<f64>) -> Result<Option<i64>, InvalidMinVotes> {
    match raw {
        None => Ok(None),
        Some(n) if n.is_finite() && n >= 1.0 => Ok(Some(n.floor() as i64)),
        Some(_) => Err(InvalidMinVotes),
    }
}

/// The votes one row proved.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvenEntry {
    pub source: VoteRef,
    pub author: String,
    pub votes: Vec<Vote>,
    pub invalid: usize,
}

/// A vote naming another agent than the author of its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgery {
    pub source: VoteRef,
    pub author: String,
    pub claimed_voter: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BallotError {
    /// Refused whole: a ballot counts only votes their voters wrote.
    Forged(Vec<Forgery>),
    /// No listed voter (nor referenced row) holds a vote.
    NoVotes { missing_voters: Vec<String> },
    QuorumNotMet {
        voter_count: usize,
        min_votes: i64,
        missing_voters: Vec<String>,
    },
}

/// The gathered votes of a ballot, in order: listed voters' entries, then the references.
#[derive(Debug, Clone, PartialEq)]
pub struct BallotVotes {
    pub votes: Vec<Vote>,
    pub provenance: Vec<Provenance>,
    pub invalid: usize,
    /// Listed voters without a vote, in the order listed.
    pub missing_voters: Vec<String>,
    /// Distinct agents with a vote.
    pub voter_count: usize,
}

/// Checks authorship, finds the missing voters and applies the quorum.
pub fn collect(
    listed: &[String],
    entries: Vec<ProvenEntry>,
    min_votes: Option<i64>,
) -> Result<BallotVotes, BallotError> {
    let forgeries: Vec<Forgery> = entries
        .iter()
        .flat_map(|entry| {
            entry
                .votes
                .iter()
                .filter(|vote| vote.agent_id != entry.author)
                .map(|vote| Forgery {
                    source: entry.source,
                    author: entry.author.clone(),
                    claimed_voter: vote.agent_id.clone(),
                })
        })
        .collect();
    if !forgeries.is_empty() {
        return Err(BallotError::Forged(forgeries));
    }
    let voted: BTreeSet<&str> = entries
        .iter()
        .filter(|entry| !entry.votes.is_empty())
        .map(|entry| entry.author.as_str())
        .collect();
    let voter_count = voted.len();
    let missing_voters: Vec<String> = listed
        .iter()
        .filter(|id| !voted.contains(id.as_str()))
        .cloned()
        .collect();
    if voter_count == 0 {
        return Err(BallotError::NoVotes { missing_voters });
    }
    if let Some(min_votes) = min_votes
        && (voter_count as i64) < min_votes
    {
        return Err(BallotError::QuorumNotMet {
            voter_count,
            min_votes,
            missing_voters,
        });
    }
    let mut ballot = BallotVotes {
        votes: Vec::new(),
        provenance: Vec::new(),
        invalid: 0,
        missing_voters,
        voter_count,
    };
    for entry in entries {
        ballot.invalid += entry.invalid;
        for vote in entry.votes {
            ballot.provenance.push(Provenance {
                source: Source::Row(entry.source),
                author: entry.author.clone(),
            });
            ballot.votes.push(vote);
        }
    }
    Ok(ballot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::Decision;

    fn vote(agent: &str, decision: Decision) -> Vote {
        Vote {
            agent_id: agent.into(),
            decision,
            confidence: Some(0.8),
        }
    }

    fn entry(source: VoteRef, author: &str, voters: &[&str]) -> ProvenEntry {
        ProvenEntry {
            source,
            author: author.into(),
            votes: voters.iter().map(|v| vote(v, Decision::Accept)).collect(),
            invalid: 0,
        }
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn vote_refs() {
        let cases = [
            ("context_id:12", Some(VoteRef::Context(12))),
            (" message_id : 7 ", Some(VoteRef::Message(7))),
            ("context_id:0", None),
            ("context_id:-3", None),
            ("context_id:1.5", None),
            ("message:7", None),
            ("message_id", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(VoteRef::parse(text), expected, "{text}");
        }
        assert_eq!(VoteRef::Message(7).to_string(), "message_id:7");
        assert_eq!(Source::Row(VoteRef::Context(3)).to_string(), "context_id:3");
        assert_eq!(Source::Blob("ab".into()).to_string(), "blob:ab");
        assert_eq!(Source::Call.to_string(), "call");
    }

    #[test]
    fn what_an_entry_holds() {
        let hash = "a".repeat(64);
        let cases: Vec<(String, Option<EntryVotes>)> = vec![
            (
                r#"{"decision":"reject","confidence":0.8}"#.into(),
                Some(EntryVotes::Votes {
                    votes: vec![vote("w1", Decision::Reject)],
                    invalid: 0,
                }),
            ),
            (
                r#"{"agent_id":"w2","decision":"accept","confidence":0.8}"#.into(),
                Some(EntryVotes::Votes {
                    votes: vec![vote("w2", Decision::Accept)],
                    invalid: 0,
                }),
            ),
            (
                r#"[{"agent_id":"w1","decision":"accept","confidence":0.8},{"decision":"x"}]"#
                    .into(),
                Some(EntryVotes::Votes {
                    votes: vec![vote("w1", Decision::Accept)],
                    invalid: 1,
                }),
            ),
            (
                format!(r#"{{"votes_blob_hash":"{hash}"}}"#),
                Some(EntryVotes::Blob(hash.clone())),
            ),
            (
                crate::protocol::codec::blob_ref_envelope(&hash, 10),
                Some(EntryVotes::Blob(hash.clone())),
            ),
            ("I accept".into(), None),
            (r#"{"decision":"maybe"}"#.into(), None),
            ("[]".into(), None),
        ];
        for (text, expected) in cases {
            assert_eq!(entry_votes(&text, "w1"), expected, "{text}");
        }
    }

    #[test]
    fn listed_voters_and_quorum_arguments() {
        assert_eq!(
            listed_voters(&ids(&[" w1", "w2", "w1 "])),
            Ok(ids(&["w1", "w2"]))
        );
        assert_eq!(listed_voters(&ids(&["w1", "  "])), Err(1));
        assert_eq!(min_votes(None), Ok(None));
        assert_eq!(min_votes(Some(3.7)), Ok(Some(3)));
        for bad in [0.0, -1.0, 0.5, f64::NAN, f64::INFINITY] {
            assert_eq!(min_votes(Some(bad)), Err(InvalidMinVotes), "{bad}");
        }
    }

    /// Listed voters, the rows found and the quorum in; the ballot or its refusal out.
    #[test]
    fn collect_table() {
        let c = VoteRef::Context;
        let m = VoteRef::Message;
        struct Case {
            name: &'static str,
            listed: &'static [&'static str],
            entries: Vec<ProvenEntry>,
            min_votes: Option<i64>,
            expect: Result<(usize, &'static [&'static str]), BallotError>,
        }
        let cases = vec![
            Case {
                name: "everyone voted",
                listed: &["w1", "w2"],
                entries: vec![entry(c(1), "w1", &["w1"]), entry(c(2), "w2", &["w2"])],
                min_votes: Some(2),
                expect: Ok((2, &[])),
            },
            Case {
                name: "a listed voter without an entry is missing",
                listed: &["w1", "w2", "w3"],
                entries: vec![entry(c(1), "w1", &["w1"]), entry(c(3), "w3", &["w3"])],
                min_votes: None,
                expect: Ok((2, &["w2"])),
            },
            Case {
                name: "a referenced message counts for its sender",
                listed: &["w1", "w2"],
                entries: vec![entry(c(1), "w1", &["w1"]), entry(m(9), "w2", &["w2"])],
                min_votes: None,
                expect: Ok((2, &[])),
            },
            Case {
                name: "an unlisted author of a reference votes too",
                listed: &["w1"],
                entries: vec![entry(c(1), "w1", &["w1"]), entry(m(9), "x", &["x"])],
                min_votes: Some(2),
                expect: Ok((2, &[])),
            },
            Case {
                name: "a vote in another's name is a forgery",
                listed: &["w1", "w2"],
                entries: vec![entry(c(1), "w1", &["w1"]), entry(c(2), "w2", &["w2", "w1"])],
                min_votes: None,
                expect: Err(BallotError::Forged(vec![Forgery {
                    source: c(2),
                    author: "w2".into(),
                    claimed_voter: "w1".into(),
                }])),
            },
            Case {
                name: "quorum unmet",
                listed: &["w1", "w2", "w3"],
                entries: vec![entry(c(1), "w1", &["w1"])],
                min_votes: Some(2),
                expect: Err(BallotError::QuorumNotMet {
                    voter_count: 1,
                    min_votes: 2,
                    missing_voters: ids(&["w2", "w3"]),
                }),
            },
            Case {
                name: "nobody voted",
                listed: &["w1"],
                entries: vec![],
                min_votes: None,
                expect: Err(BallotError::NoVotes {
                    missing_voters: ids(&["w1"]),
                }),
            },
        ];
        for case in cases {
            let got = collect(&ids(case.listed), case.entries, case.min_votes);
            match (got, case.expect) {
                (Ok(ballot), Ok((voters, missing))) => {
                    assert_eq!(ballot.voter_count, voters, "{}", case.name);
                    assert_eq!(ballot.missing_voters, ids(missing), "{}", case.name);
                    assert_eq!(ballot.votes.len(), ballot.provenance.len());
                    assert!(
                        ballot
                            .votes
                            .iter()
                            .zip(&ballot.provenance)
                            .all(|(v, p)| p.proves(v)),
                        "{}",
                        case.name
                    );
                }
                (got, expect) => assert_eq!(got.map(|_| ()), expect.map(|_| ()), "{}", case.name),
            }
        }
    }
}
