//! Agent authentication: token issue and verification, and what each auth mode does with
//! the outcome.
//!
//! Tokens are random, shown to the agent once by `register_agent`, and kept only as a
//! SHA-256 digest compared in constant time. The token is checked against the tool's
//! declared caller field — never against a filter argument (see `tools::ToolDef::actor`).

use crate::store::Db;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::AuthMode;
use crate::store::StoreResult;
use crate::store::auth::{TokenDigest, token_digest};

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive).
pub fn bearer_token(authorization: Option<&str>) -> Option<String> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// A new token: two random UUIDv4 joined by `-` (73 characters).
pub fn new_token() -> String {
    format!("{}-{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4())
}

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// What the token check found; recorded as an auth event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Valid,
    Invalid,
    Missing,
    /// No check applies (register_agent, or no caller outside enforce mode).
    Skipped,
}

impl AuthOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthOutcome::Valid => "valid",
            AuthOutcome::Invalid => "invalid",
            AuthOutcome::Missing => "missing",
            AuthOutcome::Skipped => "skipped",
        }
    }
}

/// Checks `token` against the stored digest of `agent_id`.
pub fn verify(db: &Db, agent_id: &str, token: Option<&str>) -> StoreResult<AuthOutcome> {
    let Some(token) = token else {
        return Ok(AuthOutcome::Missing);
    };
    let Some(stored) = token_digest(db, agent_id)? else {
        return Ok(AuthOutcome::Invalid);
    };
    let matches: bool = digest(token).ct_eq(&stored).into();
    Ok(if matches {
        AuthOutcome::Valid
    } else {
        AuthOutcome::Invalid
    })
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_header_values() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc".into()));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc".into()));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }
}

/// The guard's verdict for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    Allow { warning: Option<String> },
    Refuse { code: &'static str, message: String },
}

/// Applies the mode to an outcome. `caller_field` names the argument that identifies the
/// caller of this tool (for the error text).
pub fn decide(
    mode: AuthMode,
    outcome: AuthOutcome,
    tool: &str,
    caller_field: Option<&str>,
) -> AuthDecision {
    let problem = match outcome {
        AuthOutcome::Valid | AuthOutcome::Skipped => return AuthDecision::Allow { warning: None },
        AuthOutcome::Missing => "auth_token is missing",
        AuthOutcome::Invalid => "auth_token is invalid for this agent",
    };
    match mode {
        AuthMode::Observe => AuthDecision::Allow { warning: None },
        AuthMode::Warn => AuthDecision::Allow {
            warning: Some(format!(
                "[auth_warn] {tool}: {problem}; this call will fail once MCP_HUB_AUTH_MODE=enforce"
            )),
        },
        AuthMode::Enforce => {
            let code = if outcome == AuthOutcome::Missing {
                "AUTH_TOKEN_REQUIRED"
            } else {
                "AUTH_TOKEN_INVALID"
            };
            let who = caller_field
                .map(|field| format!(" for the agent named in `{field}`"))
                .unwrap_or_default();
            AuthDecision::Refuse {
                code,
                message: format!(
                    "{tool}: {problem}{who}. Pass the token from register_agent as `auth_token` \
                     or as `Authorization: Bearer <token>`."
                ),
            }
        }
    }
}
