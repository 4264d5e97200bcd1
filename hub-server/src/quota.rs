//! Namespace quotas (spec tools-more §5.2): a request bucket and a fixed-minute token budget
//! per namespace, in memory and per process. Keys are lower-cased; a refused call is not
//! charged to the budget (defect 19); idle windows are pruned (defect 20).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::{Config, QuotaMode};
use crate::rate_limit::RateLimiter;

/// Tools whose namespace is the stored namespace of the task they name (`task_id` or `id`)
/// when no `namespace`/`task_namespace` argument is given.
pub const TASK_SCOPED_TOOLS: [&str; 9] = [
    "update_task",
    "claim_task",
    "renew_task_claim",
    "release_task_claim",
    "delete_task",
    "attach_task_artifact",
    "list_task_artifacts",
    "get_task_handoff",
    "create_task_artifact_downloads",
];

const WINDOW_MS: i64 = 60_000;

/// Why a namespace is over its quota, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub reason: String,
    pub retry_after_ms: i64,
}

pub struct NamespaceQuotas {
    mode: QuotaMode,
    requests: RateLimiter,
    budget_per_min: f64,
    /// Lower-cased namespace → (window start, tokens used).
    windows: Mutex<HashMap<String, (i64, f64)>>,
}

impl NamespaceQuotas {
    pub fn new(config: &Config) -> NamespaceQuotas {
        NamespaceQuotas {
            mode: config.namespace_quota_mode,
            requests: RateLimiter::new(config.namespace_quota_rps, config.namespace_quota_burst),
            budget_per_min: config.namespace_token_budget_per_min,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn mode(&self) -> QuotaMode {
        self.mode
    }

    /// Whether the budget check needs the call's argument size.
    pub fn budget_enabled(&self) -> bool {
        self.mode != QuotaMode::Off && self.budget_per_min > 0.0
    }

    /// Charges one call of estimated `cost` tokens to `namespace` at `now_ms`. Both checks
    /// run; the bucket consumes a token when it has one, the budget only when it passes.
    pub fn check(&self, namespace: &str, cost: i64, now_ms: i64) -> Result<(), Exceeded> {
        if self.mode == QuotaMode::Off {
            return Ok(());
        }
        let key = namespace.to_lowercase();
        let bucket_ok = self.requests.allow(&key);
        let budget = self.charge_budget(&key, cost, now_ms);
        match (bucket_ok, budget) {
            (true, Ok(())) => Ok(()),
            (false, budget) => Err(Exceeded {
                reason: "request rate over MCP_HUB_NAMESPACE_QUOTA_RPS/BURST".into(),
                retry_after_ms: budget.err().unwrap_or(1000).max(1000),
            }),
            (true, Err(retry_after_ms)) => Err(Exceeded {
                reason: "estimated tokens over MCP_HUB_NAMESPACE_TOKEN_BUDGET_PER_MIN".into(),
                retry_after_ms,
            }),
        }
    }

    /// `Err(ms until the window resets)` when `cost` does not fit.
    fn charge_budget(&self, key: &str, cost: i64, now_ms: i64) -> Result<(), i64> {
        if self.budget_per_min <= 0.0 {
            return Ok(());
        }
        let cost = cost.max(1) as f64;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let window = windows.entry(key.to_string()).or_insert((now_ms, 0.0));
        if now_ms - window.0 >= WINDOW_MS || now_ms < window.0 {
            *window = (now_ms, 0.0);
        }
        if window.1 + cost > self.budget_per_min {
            return Err((window.0 + WINDOW_MS - now_ms).max(1));
        }
        window.1 += cost;
        Ok(())
    }

    /// Forgets finished windows and idle buckets.
    pub fn prune(&self, now_ms: i64) {
        self.requests.prune();
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (start, _)| now_ms - *start < WINDOW_MS);
    }
}

/// `max(1, ceil(chars / 4))`: the estimated token cost of a call's argument JSON.
pub fn estimated_tokens(compact_json_chars: usize) -> i64 {
    (compact_json_chars as i64 + 3).div_euclid(4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(mode: QuotaMode, rps: f64, burst: f64, budget: f64) -> NamespaceQuotas {
        let mut config = Config::from_env(&Default::default()).expect("defaults");
        config.namespace_quota_mode = mode;
        config.namespace_quota_rps = rps;
        config.namespace_quota_burst = burst;
        config.namespace_token_budget_per_min = budget;
        NamespaceQuotas::new(&config)
    }

    #[test]
    fn modes_and_limits() {
        // (mode, rps, burst, budget, calls of cost 10 at t=0, expected passes)
        let cases = [
            (QuotaMode::Off, 0.001, 1.0, 5.0, 5, 5),
            (QuotaMode::Enforce, 0.001, 3.0, 0.0, 5, 3),
            (QuotaMode::Warn, 0.001, 3.0, 0.0, 5, 3),
            (QuotaMode::Enforce, 0.0, 0.0, 25.0, 5, 2),
            (QuotaMode::Enforce, 0.0, 3.0, 0.0, 5, 5),
        ];
        for (mode, rps, burst, budget, calls, passes) in cases {
            let q = quotas(mode, rps, burst, budget);
            let passed = (0..calls).filter(|_| q.check("NS", 10, 0).is_ok()).count();
            assert_eq!(
                passed, passes,
                "{mode:?} rps={rps} burst={burst} budget={budget}"
            );
        }
    }

    #[test]
    fn budget_window_resets_and_refusals_are_not_charged() {
        let q = quotas(QuotaMode::Enforce, 0.0, 0.0, 20.0);
        assert!(q.check("a", 30, 0).is_err(), "alone over the budget");
        assert!(
            q.check("A", 20, 1).is_ok(),
            "the refusal was not charged; keys fold case"
        );
        let refused = q.check("a", 1, 10_000).unwrap_err();
        assert_eq!(refused.retry_after_ms, 50_000);
        assert!(q.check("a", 20, 60_000).is_ok(), "a new minute");
        assert!(q.check("b", 20, 60_000).is_ok(), "per namespace");
    }

    #[test]
    fn token_estimate() {
        assert_eq!(estimated_tokens(0), 1);
        assert_eq!(estimated_tokens(4), 1);
        assert_eq!(estimated_tokens(5), 2);
    }
}
