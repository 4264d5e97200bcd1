//! resolve_consensus_from_context as a ballot (`agent_ids` and/or `vote_refs`): loads each
//! listed voter's own entry under the ballot key and each referenced row, reads the votes
//! they hold (loading the blobs they name), and hands the rows, with their authors as the
//! store knows them, to `domain::ballot::collect` — authorship, missing voters, quorum.
//! What a row claims about its voter is never trusted.
//!
//! The rows are read inside the writer transaction that records the decision, so the
//! persisted sources are exactly the rows that were counted.

use serde_json::{Value, json};

use super::{Origin, ResolveFromContext, Resolved, SourceBinding, VoteInput, evaluate_and_record};
use super::{load_blob_votes, with_binding};
use crate::domain::ballot::{self, BallotError, EntryVotes, ProvenEntry, VoteRef};
use crate::domain::text::prefix;
use crate::service::{Ctx, Refusal};
use crate::store::WriteTx;
use crate::store::context as context_store;
use crate::store::messages as message_store;

const TOOL: &str = "resolve_consensus_from_context";

fn refusal(code: &'static str, message: String) -> Refusal {
    Refusal::rejected(code, &format!("{TOOL}_rejected"), message)
}

/// A ballot's arguments, checked.
struct Ballot {
    /// `None` when only references were given.
    key: Option<String>,
    listed: Vec<String>,
    refs: Vec<VoteRef>,
    min_votes: Option<i64>,
}

fn check_arguments(ctx: &Ctx, command: &ResolveFromContext) -> Result<Ballot, Refusal> {
    if command.context_id.is_some() || command.context_agent_id.is_some() {
        return Err(refusal(
            "INVALID_ARGUMENT",
            format!(
                "{TOOL}: context_id / context_agent_id name one entry, agent_ids / vote_refs a \
                 ballot; pass one or the other"
            ),
        ));
    }
    let listed = ballot::listed_voters(command.agent_ids.as_deref().unwrap_or_default()).map_err(
        |index| {
            refusal(
                "INVALID_ARGUMENT",
                format!("{TOOL}: agent_ids[{index}] is blank; list registered agent ids"),
            )
        },
    )?;
    let mut refs = Vec::new();
    for (index, text) in command.vote_refs.iter().flatten().enumerate() {
        let Some(row) = VoteRef::parse(text) else {
            return Err(refusal(
                "INVALID_VOTE_REF",
                format!(
                    "{TOOL}: vote_refs[{index}] {:?} is not a reference; write context_id:N or \
                     message_id:N",
                    prefix(text, 80)
                ),
            ));
        };
        if !refs.contains(&row) {
            refs.push(row);
        }
    }
    if listed.is_empty() && refs.is_empty() {
        return Err(refusal(
            "CONTEXT_SOURCE_REQUIRED",
            format!("{TOOL}: agent_ids and vote_refs are empty; list the voters"),
        ));
    }
    let max = ctx.config.max_consensus_votes;
    if listed.len() + refs.len() > max {
        return Err(refusal(
            "VOTES_TOO_LARGE",
            format!(
                "{TOOL}: {} voters and references is more than the limit of {max}; split the \
                 ballot or raise MCP_HUB_MAX_CONSENSUS_VOTES",
                listed.len() + refs.len()
            ),
        )
        .with("max_votes", max));
    }
    let min_votes = ballot::min_votes(command.min_votes).map_err(|_| {
        refusal(
            "INVALID_ARGUMENT",
            format!("{TOOL}: min_votes must be a number >= 1 (voters whose vote was found)"),
        )
    })?;
    // The conventional key, so voters and reviewer agree on it without saying so.
    let key = match command.context_key.as_deref() {
        Some(key) => Some(key.to_string()),
        None if listed.is_empty() => None,
        None => Some(format!("vote:{}", command.proposal_id)),
    };
    Ok(Ballot {
        key,
        listed,
        refs,
        min_votes,
    })
}

/// A row holding a vote: where it is, who wrote it (per the store) and its text.
struct VoteRow {
    source: VoteRef,
    author: String,
    text: String,
}

/// The listed voters' entries under the key (absent ones are missing voters), then the
/// referenced rows; each row once. Referenced messages must be readable by the caller
/// (addressed to it, or broadcast) and are marked read, as resolve_consensus_from_message
/// does.
fn load_rows(tx: &mut WriteTx<'_>, ctx: &Ctx, ballot: &Ballot) -> Result<Vec<VoteRow>, Refusal> {
    let mut rows: Vec<VoteRow> = Vec::new();
    if let Some(key) = &ballot.key {
        for voter in &ballot.listed {
            if let Some(row) = context_store::get_by_key(tx.db(), voter, key)? {
                rows.push(VoteRow {
                    source: VoteRef::Context(row.id),
                    author: row.agent_id,
                    text: row.value,
                });
            }
        }
    }
    let reader = ctx.agent().to_string();
    let mut unreadable = Vec::new();
    let mut read_messages = Vec::new();
    for reference in &ballot.refs {
        if rows.iter().any(|row| row.source == *reference) {
            continue;
        }
        let row = match *reference {
            VoteRef::Context(id) => context_store::get(tx.db(), id)?.map(|row| VoteRow {
                source: *reference,
                author: row.agent_id,
                text: row.value,
            }),
            VoteRef::Message(id) => message_store::get(tx.db(), id)?
                .filter(|m| m.to_agent.is_none() || m.to_agent.as_deref() == Some(&reader))
                .map(|message| {
                    read_messages.push(message.id);
                    // The content holds the vote; a message whose content is prose may carry
                    // it in its metadata.
                    let text = if ballot::entry_votes(&message.content, &message.from_agent)
                        .is_some()
                        || message.metadata.trim().is_empty()
                    {
                        message.content
                    } else {
                        message.metadata
                    };
                    VoteRow {
                        source: *reference,
                        author: message.from_agent,
                        text,
                    }
                }),
        };
        match row {
            Some(row) => rows.push(row),
            None => unreadable.push(reference.to_string()),
        }
    }
    if !unreadable.is_empty() {
        return Err(refusal(
            "VOTE_REF_NOT_FOUND",
            format!(
                "{TOOL}: {} of vote_refs do not exist or are not readable by {:?} (a message \
                 must be addressed to you or broadcast)",
                unreadable.len(),
                prefix(&reader, 80)
            ),
        )
        .with("vote_refs", json!(unreadable)));
    }
    message_store::mark_read(tx, &reader, &read_messages)?;
    Ok(rows)
}

fn entry_json(row: &VoteRow) -> Value {
    json!({"source": row.source.to_string(), "author": row.author})
}

/// The votes of each row, blobs loaded; a row holding no vote refuses the ballot.
fn read_votes(tx: &mut WriteTx<'_>, rows: Vec<VoteRow>) -> Result<Vec<ProvenEntry>, Refusal> {
    let read: Vec<(VoteRow, Option<EntryVotes>)> = rows
        .into_iter()
        .map(|row| {
            let votes = ballot::entry_votes(&row.text, &row.author);
            (row, votes)
        })
        .collect();
    let empty: Vec<Value> = read
        .iter()
        .filter(|(_, votes)| votes.is_none())
        .map(|(row, _)| entry_json(row))
        .collect();
    if !empty.is_empty() {
        return Err(refusal(
            "UNSUPPORTED_CONTEXT_VOTES_SOURCE",
            format!(
                "{TOOL}: {} entries hold no vote; each voter shares {{\"decision\":\"accept\"|\
                 \"reject\"|\"abstain\",\"confidence\":0..1}} (or a blob ref to one)",
                empty.len()
            ),
        )
        .with("entries", json!(empty)));
    }
    let mut entries = Vec::with_capacity(read.len());
    for (row, votes) in read {
        let (votes, invalid) = match votes {
            Some(EntryVotes::Votes { votes, invalid }) => (votes, invalid),
            Some(EntryVotes::Blob(hash)) => {
                let blob = load_blob_votes(tx, TOOL, &hash, Some(&row.author))
                    .map_err(|e| e.with("entries", json!([entry_json(&row)])))?;
                (blob.votes, blob.invalid)
            }
            None => continue,
        };
        entries.push(ProvenEntry {
            source: row.source,
            author: row.author,
            votes,
            invalid,
        });
    }
    Ok(entries)
}

fn ballot_refusal(error: BallotError) -> Refusal {
    match error {
        BallotError::Forged(forgeries) => {
            let entries: Vec<Value> = forgeries
                .iter()
                .take(20)
                .map(|f| {
                    json!({"source": f.source.to_string(), "author": f.author,
                           "claimed_voter": f.claimed_voter})
                })
                .collect();
            refusal(
                "VOTE_AUTHOR_MISMATCH",
                format!(
                    "{TOOL}: {} vote(s) name another agent than the author of the entry or \
                     message holding them; a voter votes only in its own name",
                    forgeries.len()
                ),
            )
            .with("entries", json!(entries))
        }
        BallotError::NoVotes { missing_voters } => refusal(
            "VOTES_EMPTY",
            format!(
                "{TOOL}: none of the {} listed voters has a vote under the key, and no \
                 reference holds one",
                missing_voters.len()
            ),
        )
        .with("missing_voters", json!(missing_voters)),
        BallotError::QuorumNotMet {
            voter_count,
            min_votes,
            missing_voters,
        } => refusal(
            "QUORUM_NOT_MET",
            format!(
                "{TOOL}: {voter_count} voter(s) voted, fewer than min_votes {min_votes}; wait \
                 for missing_voters or lower min_votes"
            ),
        )
        .with("vote_count", voter_count)
        .with("min_votes", min_votes)
        .with("missing_voters", json!(missing_voters)),
    }
}

pub(super) fn resolve(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: ResolveFromContext,
) -> Result<Resolved, Refusal> {
    let ballot = check_arguments(ctx, &command)?;
    let binding = SourceBinding::Ballot {
        context_key: ballot.key.clone(),
        listed_voters: ballot.listed.len(),
        vote_refs: ballot.refs.len(),
    };
    let gathered = load_rows(tx, ctx, &ballot)
        .and_then(|rows| read_votes(tx, rows))
        .and_then(|entries| {
            ballot::collect(&ballot.listed, entries, ballot.min_votes).map_err(ballot_refusal)
        })
        .map_err(|e| with_binding(e, Some(&binding)))?;
    let missing_voters = gathered.missing_voters;
    let input = VoteInput {
        inline: gathered.votes,
        inline_invalid: gathered.invalid,
        blob_hash: None,
        origin: Origin::Ballot(gathered.provenance),
    };
    let mut resolved = evaluate_and_record(
        tx,
        ctx,
        TOOL,
        &command.proposal_id,
        input,
        &command.tally,
        Some(binding),
    )
    .map_err(|e| e.with("missing_voters", json!(&missing_voters)))?;
    resolved.missing_voters = Some(missing_voters);
    Ok(resolved)
}
