//! A minimal MCP client over Streamable HTTP for hubctl's probes, benchmarks and rounds.
//!
//! It holds its session id for its whole life, re-runs the handshake once when the hub
//! answers with the `-32000` recovery envelope (then retries the call once), accepts JSON or
//! SSE bodies, and DELETEs its session on `close` (spec http-config-cli §10.0, D20).

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// How a client talks to the hub. [`ClientOptions::new`] is hubctl's own probe/bench client;
/// the rounds set the legacy handshake values and the §10.0 timeouts and retries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub client_name: String,
    pub client_version: String,
    pub protocol_version: String,
    pub connect_timeout: Duration,
    /// Whole-request timeout (none: wait as long as the hub takes).
    pub timeout: Option<Duration>,
    /// Extra attempts after a transport failure (not after an HTTP answer).
    pub retries: u32,
    pub retry_delay: Duration,
    /// Re-handshake once when the hub asks for it (§3.4), instead of failing the call.
    pub reinit_on_session_error: bool,
    /// Send `Accept: application/json, text/event-stream` (wait-mode-ab sends none).
    pub accept_header: bool,
}

impl ClientOptions {
    pub fn new(client_name: &str) -> ClientOptions {
        ClientOptions {
            client_name: client_name.to_string(),
            client_version: hub_server::VERSION.to_string(),
            protocol_version: "2025-06-18".to_string(),
            connect_timeout: Duration::from_secs(3),
            timeout: None,
            retries: 0,
            retry_delay: Duration::from_secs(1),
            reinit_on_session_error: true,
            accept_header: true,
        }
    }
}

pub struct McpClient {
    http: reqwest::Client,
    url: String,
    options: ClientOptions,
    session: Option<String>,
    next_id: u64,
}

/// A tool result: the JSON object in its text block, and the MCP `isError` flag.
#[derive(Debug, Clone)]
pub struct ToolReply {
    pub json: Value,
    pub is_error: bool,
    /// Characters of the JSON-RPC request text that carried the call.
    pub request_chars: usize,
    /// Characters of the tool's text block.
    pub response_chars: usize,
    /// Bytes of the tool's text block.
    pub response_bytes: usize,
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
        McpClient::connect_with(url, ClientOptions::new(client_name)).await
    }

    /// Connects with explicit options and performs the handshake.
    pub async fn connect_with(url: &str, options: ClientOptions) -> anyhow::Result<McpClient> {
        let mut builder = reqwest::Client::builder().connect_timeout(options.connect_timeout);
        if let Some(timeout) = options.timeout {
            builder = builder.timeout(timeout);
        }
        let http = builder.build().context("building the HTTP client")?;
        let mut client = McpClient {
            http,
            url: url.to_string(),
            options,
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
        // Close the session being replaced, so a recovery does not leak one (D20).
        self.delete_session().await;
        let params = json!({
            "protocolVersion": self.options.protocol_version,
            "capabilities": {},
            "clientInfo": {"name": self.options.client_name, "version": self.options.client_version}
        });
        let initialize = self.request("initialize", params);
        let (body, session) = self.post(&initialize).await?;
        let session = session.ok_or_else(|| {
            anyhow!(
                "initialize returned no mcp-session-id header; response: {}",
                first_lines(&body, 30)
            )
        })?;
        parse_reply(&body)?;
        self.session = Some(session);
        let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.post(&notification)
            .await
            .context("sending notifications/initialized")?;
        Ok(())
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    }

    /// POSTs one JSON-RPC message (retrying transport failures as configured); returns the
    /// body text and any session id header.
    async fn post(&self, message: &Value) -> anyhow::Result<(String, Option<String>)> {
        let mut attempt = 0;
        let response = loop {
            let mut request = self
                .http
                .post(&self.url)
                .header("content-type", "application/json")
                .json(message);
            if self.options.accept_header {
                request = request.header("accept", "application/json, text/event-stream");
            }
            if let Some(session) = &self.session {
                request = request.header("mcp-session-id", session);
            }
            match request.send().await {
                Ok(response) => break response,
                Err(_) if attempt < self.options.retries => {
                    attempt += 1;
                    tokio::time::sleep(self.options.retry_delay).await;
                }
                Err(error) => {
                    return Err(error).with_context(|| {
                        format!("request could not reach server at {}", self.url)
                    });
                }
            }
        };
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

    /// One JSON-RPC call; returns the result and the request's length in characters.
    async fn rpc(&mut self, method: &str, params: Value) -> anyhow::Result<(Value, usize)> {
        for attempt in 0..2 {
            let message = self.request(method, params.clone());
            let request_chars = message.to_string().chars().count();
            let (body, _) = self.post(&message).await?;
            match parse_reply(&body)? {
                Reply::Result(result) => return Ok((result, request_chars)),
                Reply::Reinitialize if attempt == 0 && self.options.reinit_on_session_error => {
                    self.handshake().await?
                }
                Reply::Reinitialize => break,
            }
        }
        bail!("{method}: the hub asks for a new session (unknown or expired session id)")
    }

    /// JSON-RPC `ping`: answered by the MCP transport itself, no tool and no store involved.
    pub async fn ping(&mut self) -> anyhow::Result<()> {
        self.rpc("ping", json!({})).await.map(|_| ())
    }

    pub async fn list_tools(&mut self) -> anyhow::Result<Vec<Value>> {
        let (result, _) = self.rpc("tools/list", json!({})).await?;
        Ok(result["tools"].as_array().cloned().unwrap_or_default())
    }

    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> anyhow::Result<ToolReply> {
        let (result, request_chars) = self
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
            request_chars,
            response_chars: text.chars().count(),
            response_bytes: text.len(),
        })
    }

    async fn delete_session(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = self
                .http
                .delete(&self.url)
                .header("mcp-session-id", session)
                .send()
                .await;
        }
    }

    /// Ends the session on the hub (errors ignored).
    pub async fn close(mut self) {
        self.delete_session().await;
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
