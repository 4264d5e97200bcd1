//! Agent roles and how a role is granted.
//!
//! A role that lifts ownership rules (today: orchestrator) is a privilege. Under enforce it is
//! granted by the operator — an admin token presented at registration, or the operator's
//! allowlist — never by the agent's own say-so; observe and warn keep the self-declared role
//! and say how it would be granted.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::AuthMode;

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Orchestrator,
    Reviewer,
    Assistant,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Orchestrator => "orchestrator",
            Role::Reviewer => "reviewer",
            Role::Assistant => "assistant",
            Role::Worker => "worker",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "orchestrator" => Some(Role::Orchestrator),
            "reviewer" => Some(Role::Reviewer),
            "assistant" => Some(Role::Assistant),
            "worker" => Some(Role::Worker),
            _ => None,
        }
    }

    /// Whether the role lets an agent change other agents' tasks.
    pub fn lifts_ownership(self) -> bool {
        self == Role::Orchestrator
    }
}

/// Who vouched for an agent's stored role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleGrant {
    /// The agent asked for it; nobody checked.
    Declared,
    /// The agent presented the operator's admin token at registration.
    AdminToken,
    /// The operator's allowlist (`MCP_HUB_PRIVILEGED_AGENTS`) names the agent with this role.
    Allowlist,
}

impl RoleGrant {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleGrant::Declared => "declared",
            RoleGrant::AdminToken => "admin_token",
            RoleGrant::Allowlist => "allowlist",
        }
    }

    pub fn parse(text: &str) -> RoleGrant {
        match text {
            "admin_token" => RoleGrant::AdminToken,
            "allowlist" => RoleGrant::Allowlist,
            _ => RoleGrant::Declared,
        }
    }
}

/// What the operator has said about one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorWord {
    /// The role the allowlist gives this agent id, if any.
    pub allowlisted: Option<Role>,
    /// The caller presented the operator's admin token.
    pub admin_token_valid: bool,
}

/// The outcome of a registration's role request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDecision {
    pub role: Role,
    pub grant: RoleGrant,
    pub warning: Option<String>,
}

/// Decides the role a registration gets. `requested` is the role argument (absent: keep the
/// allowlisted role, else worker).
pub fn decide_role(
    mode: AuthMode,
    agent_id: &str,
    requested: Option<Role>,
    operator: OperatorWord,
) -> RoleDecision {
    let requested = requested.or(operator.allowlisted).unwrap_or(Role::Worker);
    let grant = if operator.allowlisted == Some(requested) {
        RoleGrant::Allowlist
    } else if operator.admin_token_valid {
        RoleGrant::AdminToken
    } else {
        RoleGrant::Declared
    };
    if !requested.lifts_ownership() || grant != RoleGrant::Declared {
        return RoleDecision {
            role: requested,
            grant,
            warning: None,
        };
    }
    let how = format!(
        "the {role} role is granted by the operator: present MCP_HUB_ADMIN_TOKEN as admin_token, \
         or ask for {agent_id}:{role} in MCP_HUB_PRIVILEGED_AGENTS",
        role = requested.as_str()
    );
    match mode {
        AuthMode::Enforce => RoleDecision {
            role: Role::Worker,
            grant,
            warning: Some(format!("[role_not_granted] registered as worker: {how}")),
        },
        AuthMode::Observe | AuthMode::Warn => RoleDecision {
            role: requested,
            grant,
            warning: Some(format!(
                "[role_self_declared] {how}; under MCP_HUB_AUTH_MODE=enforce this agent would \
                 register as worker"
            )),
        },
    }
}

/// The role a caller acts with now: a privileged role counts under enforce only while the
/// operator's grant stands (an admin-token grant, or the allowlist still naming it).
pub fn effective_role(
    mode: AuthMode,
    stored: Role,
    grant: RoleGrant,
    allowlisted: Option<Role>,
) -> Role {
    if !stored.lifts_ownership() || mode != AuthMode::Enforce {
        return stored;
    }
    let granted = match grant {
        RoleGrant::AdminToken => true,
        RoleGrant::Allowlist => allowlisted == Some(stored),
        RoleGrant::Declared => false,
    };
    if granted { stored } else { Role::Worker }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: OperatorWord = OperatorWord {
        allowlisted: None,
        admin_token_valid: false,
    };

    #[test]
    fn registration_role_table() {
        let admin = OperatorWord {
            admin_token_valid: true,
            ..NONE
        };
        let listed = OperatorWord {
            allowlisted: Some(Role::Orchestrator),
            ..NONE
        };
        let cases = [
            // (mode, requested, operator, role, grant, warns)
            (
                AuthMode::Enforce,
                None,
                NONE,
                Role::Worker,
                RoleGrant::Declared,
                false,
            ),
            (
                AuthMode::Enforce,
                Some(Role::Reviewer),
                NONE,
                Role::Reviewer,
                RoleGrant::Declared,
                false,
            ),
            (
                AuthMode::Enforce,
                Some(Role::Orchestrator),
                NONE,
                Role::Worker,
                RoleGrant::Declared,
                true,
            ),
            (
                AuthMode::Enforce,
                Some(Role::Orchestrator),
                admin,
                Role::Orchestrator,
                RoleGrant::AdminToken,
                false,
            ),
            (
                AuthMode::Enforce,
                Some(Role::Orchestrator),
                listed,
                Role::Orchestrator,
                RoleGrant::Allowlist,
                false,
            ),
            (
                AuthMode::Enforce,
                None,
                listed,
                Role::Orchestrator,
                RoleGrant::Allowlist,
                false,
            ),
            (
                AuthMode::Enforce,
                Some(Role::Worker),
                listed,
                Role::Worker,
                RoleGrant::Declared,
                false,
            ),
            (
                AuthMode::Observe,
                Some(Role::Orchestrator),
                NONE,
                Role::Orchestrator,
                RoleGrant::Declared,
                true,
            ),
            (
                AuthMode::Warn,
                Some(Role::Orchestrator),
                NONE,
                Role::Orchestrator,
                RoleGrant::Declared,
                true,
            ),
            (
                AuthMode::Warn,
                Some(Role::Orchestrator),
                admin,
                Role::Orchestrator,
                RoleGrant::AdminToken,
                false,
            ),
        ];
        for (mode, requested, operator, role, grant, warns) in cases {
            let decision = decide_role(mode, "lead", requested, operator);
            let case = format!("{mode:?} {requested:?} {operator:?}");
            assert_eq!(decision.role, role, "{case}");
            assert_eq!(decision.grant, grant, "{case}");
            assert_eq!(decision.warning.is_some(), warns, "{case}");
            if let Some(warning) = decision.warning {
                assert!(warning.contains("lead:orchestrator"), "{warning}");
            }
        }
    }

    #[test]
    fn privileged_role_counts_under_enforce_only_while_granted() {
        use Role::*;
        let cases = [
            (
                AuthMode::Enforce,
                Orchestrator,
                RoleGrant::Declared,
                None,
                Worker,
            ),
            (
                AuthMode::Enforce,
                Orchestrator,
                RoleGrant::AdminToken,
                None,
                Orchestrator,
            ),
            (
                AuthMode::Enforce,
                Orchestrator,
                RoleGrant::Allowlist,
                Some(Orchestrator),
                Orchestrator,
            ),
            // Taken off the allowlist: the grant lapses.
            (
                AuthMode::Enforce,
                Orchestrator,
                RoleGrant::Allowlist,
                None,
                Worker,
            ),
            (
                AuthMode::Enforce,
                Reviewer,
                RoleGrant::Declared,
                None,
                Reviewer,
            ),
            (
                AuthMode::Observe,
                Orchestrator,
                RoleGrant::Declared,
                None,
                Orchestrator,
            ),
            (
                AuthMode::Warn,
                Orchestrator,
                RoleGrant::Declared,
                None,
                Orchestrator,
            ),
        ];
        for (mode, stored, grant, listed, expected) in cases {
            assert_eq!(
                effective_role(mode, stored, grant, listed),
                expected,
                "{mode:?} {stored:?} {grant:?} {listed:?}"
            );
        }
    }
}
