//! A minimal MCP client over Streamable HTTP for hubctl's probes, benchmarks and rounds.
//!
//! It holds its session id for its whole life, re-runs the handshake once when the hub
//! answers with the `-32000` recovery envelope (then retries the call once), accepts JSON or
//! SSE bodies, and DELETEs its session on `close` (spec http-config-cli §10.0, D20).

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

pub struct McpClient {
    http: reqwest::Client,
    url: String,
    client_name: String,
    session: Option<String>,
    next_id: u64,
}

/// A tool result: the JSON object in its text block, and the MCP `isError` flag.
#[derive(Debug, Clone)]
pub struct ToolReply {
    pub json: Value,
    pub is_error: bool,
}

impl ToolReply {
    /// Success unless `success` is false or the result is flagged as an error.
    pub fn succeeded(&self) -> bool {
        !self.is_error && self.json.get("success") != Some(&Value::Bool(false))
    }
}

enum Reply {
    Result(Value),
    /// The hub asks for a new handshake (unknown session, restarted hub).
    Reinitialize,
}

impl McpClient {
    /// Connects and performs initialize + notifications/initialized.
    pub async fn connect(url: &str, client_name: &str) -> anyhow::Result<McpClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .build()
            .context("building the HTTP client")?;
        let mut client = McpClient {
            http,
            url: url.to_string(),
            client_name: client_name.to_string(),
            session: None,
            next_id: 1,
        };
        client.handshake().await?;
        Ok(client)
    }

    pub fn session_id(&self) -> Option<&str> {
        self.session.as_deref()
    }

    async fn handshake(&mut self) -> anyhow::Result<()> {
        self.session = None;
        let params = json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": self.client_name, "version": env!("CARGO_PKG_VERSION")}
        });
        let initialize = self.request("initialize", params);
        let (body, session) = self.post(initialize).await?;
        let session = session.ok_or_else(|| {
            anyhow!(
                "initialize returned no mcp-session-id header; response: {}",
                first_lines(&body, 30)
            )
        })?;
        parse_reply(&body)?;
        self.session = Some(session);
        let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.post(notification)
            .await
            .context("sending notifications/initialized")?;
        Ok(())
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    }

    /// POSTs one JSON-RPC message; returns the body text and any session id header.
    async fn post(&self, message: Value) -> anyhow::Result<(String, Option<String>)> {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&message);
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("request could not reach server at {}", self.url))?;
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let event_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let text = response.text().await.context("reading the response body")?;
        let body = if event_stream {
            text.lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim)
                .rfind(|data| !data.is_empty())
                .unwrap_or_default()
                .to_string()
        } else {
            text
        };
        Ok((body, session))
    }

    async fn rpc(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        for attempt in 0..2 {
            let message = self.request(method, params.clone());
            let (body, _) = self.post(message).await?;
            match parse_reply(&body)? {
                Reply::Result(result) => return Ok(result),
                Reply::Reinitialize if attempt == 0 => self.handshake().await?,
                Reply::Reinitialize => break,
            }
        }
        bail!("{method}: the hub kept asking for re-initialization")
    }

    /// JSON-RPC `ping`: answered by the MCP transport itself, no tool and no store involved.
    pub async fn ping(&mut self) -> anyhow::Result<()> {
        self.rpc("ping", json!({})).await.map(|_| ())
    }

    pub async fn list_tools(&mut self) -> anyhow::Result<Vec<Value>> {
        let result = self.rpc("tools/list", json!({})).await?;
        Ok(result["tools"].as_array().cloned().unwrap_or_default())
    }

    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> anyhow::Result<ToolReply> {
        let result = self
            .rpc("tools/call", json!({"name": name, "arguments": arguments}))
            .await?;
        let text = result["content"][0]["text"]
            .as_str()
            .ok_or_else(|| anyhow!("{name}: result has no text content: {result}"))?;
        let json: Value = serde_json::from_str(text)
            .with_context(|| format!("{name}: result text is not JSON: {text}"))?;
        Ok(ToolReply {
            json,
            is_error: result["isError"] == Value::Bool(true),
        })
    }

    /// Ends the session on the hub (errors ignored).
    pub async fn close(self) {
        if let Some(session) = &self.session {
            let _ = self
                .http
                .delete(&self.url)
                .header("mcp-session-id", session)
                .send()
                .await;
        }
    }
}

fn first_lines(text: &str, lines: usize) -> String {
    text.lines().take(lines).collect::<Vec<_>>().join("\n")
}

fn parse_reply(body: &str) -> anyhow::Result<Reply> {
    let message: Value = serde_json::from_str(body)
        .with_context(|| format!("response is not JSON-RPC: {}", first_lines(body, 30)))?;
    if let Some(error) = message.get("error") {
        let code = error["code"].as_i64().unwrap_or_default();
        let data = &error["data"];
        let reason = data["reason"].as_str().unwrap_or_default();
        let text = error["message"].as_str().unwrap_or_default();
        let recoverable = code == -32000
            && (data["reinitialize_required"] == Value::Bool(true)
                || matches!(
                    reason,
                    "unknown_or_expired_session" | "server_not_initialized" | "no_active_session"
                )
                || text.contains("Unknown or expired MCP session")
                || text.contains("Server not initialized"));
        if recoverable {
            return Ok(Reply::Reinitialize);
        }
        bail!("JSON-RPC error {code}: {text}");
    }
    message
        .get("result")
        .cloned()
        .map(Reply::Result)
        .ok_or_else(|| anyhow!("response has neither result nor error: {body}"))
}
