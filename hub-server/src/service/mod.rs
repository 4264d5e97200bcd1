//! The service layer: business operations between the tools (MCP) and the store (SQL).
//!
//! A service function has the shape `op(tx, &mut Ctx, Command) -> Result<Outcome, Refusal>`:
//! `Ctx` carries the authenticated [`Caller`] (every op acts for it and reads private data
//! as it), the time of the call and the activity rows it leaves; a [`Refusal`] is an
//! expected failure with a wire error code. Services know neither MCP nor SQL.

pub mod artifacts;
pub mod blobs;
pub mod claims;
pub mod consensus;
pub mod context;
pub mod messages;
pub mod observability;
pub mod tasks;

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::config::Config;
use crate::store::StoreError;
use crate::store::activity::ActivityRow;

/// A refusal: the JSON failure payload `{success:false, error_code, error, ...}`.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
    pub fields: Map<String, Value>,
    /// The activity row the refusal leaves behind (e.g. `send_message_rejected`).
    pub activity: Option<(String, String)>,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            fields: Map::new(),
            activity: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    pub fn logged(mut self, action: impl Into<String>, details: impl Into<String>) -> Self {
        self.activity = Some((action.into(), details.into()));
        self
    }

    /// A refusal that also leaves an activity row `<action>` naming the code.
    pub fn rejected(code: &'static str, action: &str, message: String) -> Self {
        let details = format!("{message} ({code})");
        Refusal::new(code, message).logged(action, details)
    }

    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("success".into(), Value::Bool(false));
        body.insert("error_code".into(), Value::from(self.code));
        body.insert("error".into(), Value::from(self.message.clone()));
        for (key, value) in &self.fields {
            body.insert(key.clone(), value.clone());
        }
        Value::Object(body)
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { code, message } => Refusal::new(code, message),
            StoreError::NotFound(what) => Refusal::new("NOT_FOUND", format!("{what} not found")),
            other => {
                tracing::error!(error = %other, "store failure inside a tool");
                Refusal::new("INTERNAL_ERROR", "the hub could not complete this call")
            }
        }
    }
}

/// What an op sees besides its arguments.
pub struct Ctx {
    pub config: Arc<Config>,
    /// Who makes the call: every op acts for this agent and reads private data as it.
    pub caller: Caller,
    /// The token presented with the call (argument or bearer header).
    pub token: Option<String>,
    pub now_ms: i64,
    /// The stream heads published when the call was admitted: a read that starts after
    /// admission sees at least every change up to them.
    pub heads: crate::store::StreamHeads,
    /// Task-board state shared by the whole hub.
    pub tasks: Arc<tasks::TaskState>,
    pub(crate) quiet: bool,
    pub(crate) activity: Vec<ActivityRow>,
    pub(crate) warnings: Vec<String>,
    /// Set by ops whose success must not be replayed (e.g. a poll miss, D27).
    pub(crate) skip_idempotency_record: bool,
}

impl Ctx {
    /// Keeps this call's result out of the idempotency store: a retry with the same key runs
    /// again (a poll miss must not be replayed once work has appeared — D27).
    pub fn skip_idempotency_record(&mut self) {
        self.skip_idempotency_record = true;
    }

    /// Records an activity row for this call (actor: the caller, else `system`).
    pub fn log(&mut self, action: &str, details: impl Into<String>) {
        let agent_id = self.caller.actor().to_string();
        self.log_as(&agent_id, action, details);
    }

    /// Records an activity row that does not advance the activity stream, for outcomes that
    /// change nothing (e.g. a poll miss): idle pollers must not wake every waiter.
    pub fn log_quiet(&mut self, action: &str, details: impl Into<String>) {
        self.activity.push(ActivityRow {
            agent_id: self.caller.actor().to_string(),
            action: action.to_string(),
            details: details.into(),
            quiet: true,
        });
    }

    /// The acting agent's id, blank when the call named none: only possible outside
    /// enforce, where such a call still goes through and the op decides what blank means.
    pub fn agent(&self) -> &str {
        self.caller.agent_id().unwrap_or("")
    }

    pub fn log_as(&mut self, agent_id: &str, action: &str, details: impl Into<String>) {
        self.activity.push(ActivityRow {
            agent_id: agent_id.to_string(),
            action: action.to_string(),
            details: details.into(),
            quiet: self.quiet,
        });
    }

    /// A refused op leaves only its refusal's activity row, none of the rows it logged
    /// before failing; returns the failure payload.
    pub(crate) fn refused(&mut self, error: &Refusal) -> Value {
        self.activity.clear();
        if let Some((action, details)) = &error.activity {
            self.log(action, details.clone());
        }
        error.to_json()
    }

    /// A guard-style warning merged into the response's `warnings`.
    pub fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }
}

/// `{success:false, error_code:"FULL_MODE_FORBIDDEN_IN_POLLING", ...}` when a polling read
/// asks for the full response mode and the hub forbids it (spec §1.9).
pub fn forbid_full_in_polling(
    config: &Config,
    tool: &str,
    allowed: &[&str],
) -> Result<(), Refusal> {
    if !config.disallow_full_in_polling {
        return Ok(());
    }
    Err(Refusal::new(
        "FULL_MODE_FORBIDDEN_IN_POLLING",
        format!(
            "{tool}: response_mode \"full\" is not allowed in polling reads (polling:true or a \
             delta cursor); use one of {}",
            allowed.join(", ")
        ),
    )
    .with("allowed_response_modes", json!(allowed)))
}

/// The sequence a paged read resumes after; CURSOR_INVALID for text this hub never issued.
/// `shown` is the cursor as the error quotes it.
pub fn row_cursor_seq(tool: &str, cursor: &str, shown: &str) -> Result<i64, Refusal> {
    crate::domain::cursor::parse_row_cursor(cursor).ok_or_else(|| {
        Refusal::new(
            "CURSOR_INVALID",
            format!(
                "{tool}: cursor {shown:?} is not a cursor this hub issued; pass back \
                 next_cursor unchanged, or omit it to start over"
            ),
        )
    })
}
