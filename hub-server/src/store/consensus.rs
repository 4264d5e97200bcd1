//! Consensus decisions (one row per evaluation, never upserted), each with the votes it
//! counted and the source each was proven by (`votes_json`). The agent quality counters
//! that weight votes belong to `store::quality`; their old names here are re-exports.

use crate::store::sql::params;

use super::{Db, StoreResult, WriteTx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRow {
    pub id: i64,
    pub proposal_id: String,
    pub requesting_agent: String,
    pub outcome: String,
    pub stats_json: String,
    pub reasons_json: String,
    /// The counted votes with their sources (a JSON array; `[]` for rows older than it).
    pub votes_json: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewDecision {
    pub proposal_id: String,
    pub requesting_agent: String,
    pub outcome: String,
    pub stats_json: String,
    pub reasons_json: String,
    pub votes_json: String,
}

pub fn insert_decision(tx: &mut WriteTx<'_>, decision: &NewDecision) -> StoreResult<DecisionRow> {
    let now = tx.now_ms();
    let id = tx
        .conn()
        .prepare_cached(
            "INSERT INTO consensus_decisions (proposal_id, requesting_agent, outcome, stats_json,
                                              reasons_json, votes_json, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        )?
        .query_row(
            params![
                decision.proposal_id,
                decision.requesting_agent,
                decision.outcome,
                decision.stats_json,
                decision.reasons_json,
                decision.votes_json,
                now
            ],
            |r| r.get(0),
        )?;
    Ok(DecisionRow {
        id,
        proposal_id: decision.proposal_id.clone(),
        requesting_agent: decision.requesting_agent.clone(),
        outcome: decision.outcome.clone(),
        stats_json: decision.stats_json.clone(),
        reasons_json: decision.reasons_json.clone(),
        votes_json: decision.votes_json.clone(),
        created_at: now,
    })
}

/// Newest first (ties: newest id first), optionally for one proposal.
pub fn list_decisions(
    db: &Db,
    proposal_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> StoreResult<Vec<DecisionRow>> {
    let rows = db
        .conn
        .prepare_cached(
            "SELECT id, proposal_id, requesting_agent, outcome, stats_json, reasons_json,
                    votes_json, created_at
             FROM consensus_decisions WHERE (?1 IS NULL OR proposal_id = ?1)
             ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3",
        )?
        .query_map(params![proposal_id, limit, offset], |row| {
            Ok(DecisionRow {
                id: row.get(0)?,
                proposal_id: row.get(1)?,
                requesting_agent: row.get(2)?,
                outcome: row.get(3)?,
                stats_json: row.get(4)?,
                reasons_json: row.get(5)?,
                votes_json: row.get(6)?,
                created_at: row.get(7)?,
            })
        })?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}

// Agent quality counters live in `store::quality`; these names stay for existing callers.
pub use super::quality::{counts as quality_counts, set as set_quality_counts};
