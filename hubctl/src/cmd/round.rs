//! What the rounds (`kpi-round`, `wait-mode-ab`, `consensus-ab-round`, `smart-swarm-round`)
//! share (spec http-config-cli §10.0): the HTTP settings and token policy with their legacy
//! environment variables (a flag of the same meaning wins), the health wait, a measured MCP
//! session that attaches tokens by policy, percentages, and writing a report (JSON with a
//! trailing newline, then a table — or the JSON alone with `--json`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use crate::client::{ClientOptions, McpClient, ToolReply};

/// HTTP behaviour of a round's MCP client.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Connect timeout in seconds.
    #[arg(long, env = "MCP_HTTP_CONNECT_TIMEOUT_SEC", default_value_t = 3)]
    pub connect_timeout_sec: u64,
    /// Whole-request timeout in seconds.
    #[arg(long, env = "MCP_HTTP_TIMEOUT_SEC", default_value_t = 25)]
    pub timeout_sec: u64,
    /// Extra attempts after a transport failure.
    #[arg(long, env = "MCP_HTTP_RETRIES", default_value_t = 2)]
    pub retries: u32,
    /// Seconds between those attempts.
    #[arg(long, env = "MCP_HTTP_RETRY_DELAY_SEC", default_value_t = 1)]
    pub retry_delay_sec: u64,
    /// Re-handshake once when the hub reports an unknown session (0/1/true/false).
    #[arg(long, env = "MCP_REINIT_ON_SESSION_ERROR", default_value = "1", value_parser = parse_switch)]
    pub reinit_on_session_error: bool,
}

impl HttpArgs {
    pub fn client_options(&self, client_name: &str) -> ClientOptions {
        ClientOptions {
            client_version: "1.0.0".into(),
            protocol_version: "2024-11-05".into(),
            connect_timeout: Duration::from_secs(self.connect_timeout_sec),
            timeout: Some(Duration::from_secs(self.timeout_sec)),
            retries: self.retries,
            retry_delay: Duration::from_secs(self.retry_delay_sec),
            reinit_on_session_error: self.reinit_on_session_error,
            ..ClientOptions::new(client_name)
        }
    }
}

/// `0/1/true/false` (any case), as the legacy scripts accepted.
pub fn parse_switch(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        other => Err(format!("expected 0, 1, true or false, got {other:?}")),
    }
}

/// `USE_AUTH_TOKEN`: when a round sends the token `register_agent` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenPolicy {
    /// Attach the token when one was returned.
    Auto,
    /// A missing token is fatal.
    True,
    /// Never attach one.
    False,
}

impl TokenPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPolicy::Auto => "auto",
            TokenPolicy::True => "true",
            TokenPolicy::False => "false",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
/// `compression_mode` of the blob tools.
pub enum BlobCompression {
    None,
    Json,
    Whitespace,
    Auto,
    LosslessAuto,
}

impl BlobCompression {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobCompression::None => "none",
            BlobCompression::Json => "json",
            BlobCompression::Whitespace => "whitespace",
            BlobCompression::Auto => "auto",
            BlobCompression::LosslessAuto => "lossless_auto",
        }
    }
}

/// The HTTP base of an MCP endpoint (`…/mcp` → `…`).
pub fn base_url(endpoint: &str) -> &str {
    let trimmed = endpoint.trim_end_matches('/');
    trimmed.strip_suffix("/mcp").unwrap_or(trimmed)
}

/// Waits for `GET <base>/health`, once a second, `attempts` times.
pub async fn wait_for_health(endpoint: &str, attempts: u32) -> anyhow::Result<Value> {
    let url = format!("{}/health", base_url(endpoint));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if let Ok(response) = http.get(&url).send().await
            && response.status().is_success()
        {
            return Ok(response.json().await.unwrap_or(Value::Null));
        }
    }
    bail!("hub is not reachable at {url}")
}

/// An agent a round registered: its id and, when the hub issued one, its token.
#[derive(Debug, Clone)]
pub struct RoundAgent {
    pub id: String,
    pub token: Option<String>,
}

/// One tool call as measured by the round.
pub struct Measured {
    pub reply: ToolReply,
    pub latency_ms: f64,
}

/// A round's MCP session: attaches tokens by policy and counts calls and latency.
pub struct RoundSession {
    client: McpClient,
    policy: TokenPolicy,
    pub tool_calls: u64,
    pub latency_total_ms: f64,
}

impl RoundSession {
    pub async fn connect(
        endpoint: &str,
        options: ClientOptions,
        policy: TokenPolicy,
    ) -> anyhow::Result<RoundSession> {
        let client = McpClient::connect_with(endpoint, options)
            .await
            .with_context(|| format!("MCP handshake with {endpoint}"))?;
        Ok(RoundSession {
            client,
            policy,
            tool_calls: 0,
            latency_total_ms: 0.0,
        })
    }

    pub async fn list_tools(&mut self) -> anyhow::Result<Vec<Value>> {
        self.client.list_tools().await
    }

    /// Calls `tool` as `agent` (its token added per policy); timed, retries included.
    pub async fn call(
        &mut self,
        tool: &str,
        mut args: Value,
        agent: Option<&RoundAgent>,
    ) -> anyhow::Result<Measured> {
        if self.policy != TokenPolicy::False
            && let Some(token) = agent.and_then(|a| a.token.as_deref())
        {
            args["auth_token"] = json!(token);
        }
        let started = Instant::now();
        let reply = self.client.call_tool(tool, args).await?;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.tool_calls += 1;
        self.latency_total_ms += latency_ms;
        Ok(Measured { reply, latency_ms })
    }

    /// [`call`](Self::call) that must succeed (`success` absent or true): the reply's JSON.
    pub async fn call_ok(
        &mut self,
        tool: &str,
        args: Value,
        agent: Option<&RoundAgent>,
    ) -> anyhow::Result<Value> {
        let measured = self.call(tool, args, agent).await?;
        if !measured.reply.succeeded() {
            bail!("{tool} failed: {}", measured.reply.json);
        }
        Ok(measured.reply.json)
    }

    /// `register_agent` with `args`; under `USE_AUTH_TOKEN=true` a missing token is fatal.
    pub async fn register(&mut self, args: Value) -> anyhow::Result<(RoundAgent, Value)> {
        let id = args["id"].as_str().unwrap_or_default().to_string();
        let reply = self.call_ok("register_agent", args, None).await?;
        let token = reply["auth"]["token"].as_str().map(str::to_string);
        if self.policy == TokenPolicy::True && token.is_none() {
            bail!("register_agent returned no auth.token for {id} (USE_AUTH_TOKEN=true)");
        }
        Ok((RoundAgent { id, token }, reply))
    }

    pub async fn close(self) {
        self.client.close().await;
    }
}

/// The runtime profile the legacy rounds declared for their agents.
pub fn repo_profile() -> Value {
    json!({"mode": "repo", "has_git": true, "file_count": 1, "empty_dir": false,
           "source": "client_declared"})
}

/// `(new − old) / old · 100`, None when old is 0.
pub fn pct_change(new: f64, old: f64) -> Option<f64> {
    (old != 0.0).then(|| (new - old) / old * 100.0)
}

pub fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// UTC now as ISO-8601 seconds (`generated_at`).
pub fn generated_at() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn unix_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A two-or-more column table with a header.
pub fn table(header: Vec<&str>) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    table
}

/// A JSON value as a table cell (`n/a` for null, strings unquoted, floats to 2 decimals).
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "n/a".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or_default()),
        other => other.to_string(),
    }
}

/// Writes the report (pretty JSON, trailing newline) and prints it: the JSON alone with
/// `as_json`, else `Wrote <what>: <path>` and the summary table.
pub fn publish(
    path: &Path,
    what: &str,
    report: &Value,
    summary: Table,
    as_json: bool,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, format!("{text}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    if as_json {
        println!("{text}");
    } else {
        println!("Wrote {what}: {}", path.display());
        println!("{summary}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_endpoints_and_percentages() {
        assert_eq!(parse_switch("TRUE"), Ok(true));
        assert_eq!(parse_switch("0"), Ok(false));
        assert!(parse_switch("yes").is_err());
        assert_eq!(base_url("http://h:1/mcp"), "http://h:1");
        assert_eq!(base_url("http://h:1/mcp/"), "http://h:1");
        assert_eq!(pct_change(50.0, 100.0), Some(-50.0));
        assert_eq!(pct_change(5.0, 0.0), None);
        assert_eq!(round_to(1.23456, 3), 1.235);
        assert_eq!(cell(&Value::Null), "n/a");
        assert_eq!(cell(&json!(1.5)), "1.50");
        assert_eq!(cell(&json!("x")), "x");
    }
}
