//! How one variable's value is read: the [`Field`] handed to each table entry, with the
//! shared readers (numbers floored and clamped, TTLs, case-insensitive enums, flags, paths
//! with `~/`, interface addresses, the privileged-agent list). Every problem it reports names
//! the variable.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use super::{Config, ConfigError, EnvLayers};

/// Roles `MCP_HUB_PRIVILEGED_AGENTS` may grant.
pub const PRIVILEGED_ROLES: &[&str] = &["orchestrator", "reviewer", "assistant", "worker"];

/// The variable being applied: its value (`None` when unset or empty) and the place its
/// problems are reported, each naming it.
pub struct Field<'a> {
    pub(super) name: &'static str,
    pub(super) env: &'a EnvLayers,
    pub(super) errors: &'a mut Vec<ConfigError>,
}

impl<'a> Field<'a> {
    pub(super) fn raw(&self) -> Option<&'a str> {
        self.env.get(self.name)
    }

    pub(super) fn fail(&mut self, problem: String) {
        self.errors.push(ConfigError {
            variable: self.name.to_string(),
            problem,
        });
    }

    pub(super) fn number(&mut self) -> Option<f64> {
        let raw = self.raw()?;
        match raw.parse::<f64>() {
            Ok(value) if value.is_finite() => Some(value),
            _ => {
                self.fail(format!("{raw:?} is not a number"));
                None
            }
        }
    }

    /// An integer setting, floored and clamped to `[min, max]`.
    pub(super) fn int(&mut self, default: i64, min: i64, max: i64) -> i64 {
        self.number()
            .map(|value| (value.floor() as i64).clamp(min, max))
            .unwrap_or(default)
    }

    pub(super) fn float(&mut self, default: f64, min: f64, max: f64) -> f64 {
        self.number()
            .map(|value| value.clamp(min, max))
            .unwrap_or(default)
    }

    /// A retention/TTL: `<= 0` disables it (`None`).
    pub(super) fn ttl(&mut self, default: i64) -> Option<i64> {
        let value = self.number().map(|v| v.floor() as i64).unwrap_or(default);
        (value > 0).then_some(value)
    }

    /// One of `allowed` (case-insensitive); anything else is an error listing them.
    pub(super) fn choice<T: Copy>(&mut self, default: T, allowed: &[(&str, T)]) -> T {
        let Some(raw) = self.raw() else {
            return default;
        };
        let lowered = raw.to_ascii_lowercase();
        if let Some((_, value)) = allowed.iter().find(|(label, _)| *label == lowered) {
            return *value;
        }
        let names: Vec<&str> = allowed.iter().map(|(label, _)| *label).collect();
        self.fail(format!("{raw:?} is not one of {}", names.join(", ")));
        default
    }

    /// `true` only when set to `word` (case-insensitive).
    pub(super) fn is(&self, word: &str) -> bool {
        self.raw().is_some_and(|v| v.eq_ignore_ascii_case(word))
    }

    pub(super) fn path(&self) -> Option<PathBuf> {
        self.raw().map(expand_home)
    }

    /// An interface address; wildcards only where `allow_wildcard` (an explicit
    /// `MCP_HUB_HOST=0.0.0.0`, e.g. inside a container, never the extra listeners).
    pub(super) fn address(&mut self, raw: &str, allow_wildcard: bool) -> Option<IpAddr> {
        let trimmed = raw.trim().trim_start_matches('[').trim_end_matches(']');
        match trimmed.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() && !allow_wildcard => {
                self.fail(format!(
                    "{raw:?} is a wildcard; explicit interface addresses are required"
                ));
                None
            }
            Ok(ip) => Some(ip),
            Err(_) => {
                self.fail(format!("{raw:?} is not an IP address"));
                None
            }
        }
    }

    /// Adds each comma-separated address to the extra listeners, skipping blanks, the
    /// primary address and duplicates.
    pub(super) fn extra_hosts(&mut self, list: &str, config: &mut Config) {
        for raw in list.split(',').map(str::trim).filter(|raw| !raw.is_empty()) {
            if let Some(ip) = self.address(raw, false)
                && ip != config.host
                && !config.extra_bind_hosts.contains(&ip)
            {
                config.extra_bind_hosts.push(ip);
            }
        }
    }

    /// `agent_id:role` pairs, comma-separated; blank entries are skipped.
    pub(super) fn privileged_agents(&mut self) -> BTreeMap<String, String> {
        let mut agents = BTreeMap::new();
        let Some(raw) = self.raw() else {
            return agents;
        };
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let pair = entry
                .split_once(':')
                .map(|(id, role)| (id.trim(), role.trim().to_ascii_lowercase()))
                .filter(|(id, role)| !id.is_empty() && !role.is_empty());
            let Some((id, role)) = pair else {
                self.fail(format!("entry {entry:?} is not agent_id:role"));
                continue;
            };
            if !PRIVILEGED_ROLES.contains(&role.as_str()) {
                self.fail(format!(
                    "entry {entry:?}: role {role:?} is not one of {}",
                    PRIVILEGED_ROLES.join(", ")
                ));
                continue;
            }
            if agents.insert(id.to_string(), role).is_some() {
                self.fail(format!("entry {entry:?}: agent {id:?} is listed twice"));
            }
        }
        agents
    }
}

pub(super) fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Expands a leading `~/`.
fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest),
        None if path == "~" => home_dir(),
        None => PathBuf::from(path),
    }
}
