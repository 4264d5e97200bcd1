//! What a POST /mcp body must be before rmcp sees it, and the JSON answer when it is not:
//! 415 for a non-JSON content type, 413 (with `Connection: close`) past the size limit, 400
//! for a body that breaks off or cannot be read, 400 with JSON-RPC `-32700` for bytes that
//! are not JSON (invalid UTF-8, `1e400`, nesting past 128), `-32600` for JSON that is no
//! JSON-RPC message, `-32602` for a `tools/call` without a `name` or with non-object
//! `arguments`. [`json_error_body`] turns any other error rmcp answers in plain text into
//! JSON, so every error a client reads parses.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::mcp::{MAX_BODY_BYTES, json_response, jsonrpc_error};

/// The response that refuses a body (boxed: it is large, and the rare path).
pub type Refusal = Box<Response<Body>>;

fn refusal(status: StatusCode, id: Value, code: i64, message: &str) -> Refusal {
    Box::new(jsonrpc_error(status, id, code, message))
}

/// The body read and parsed, or the refusal to send instead.
pub async fn admit(headers: &HeaderMap, body: Body) -> Result<(Bytes, Value), Refusal> {
    check_content_type(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(Box::new(too_large()));
    }
    let bytes = read_body(body).await?;
    let message: Value = serde_json::from_slice(&bytes).map_err(|error| {
        refusal(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32700,
            &format!("Parse error: the body is not valid JSON ({error})"),
        )
    })?;
    check_message(&message)
        .map_err(|(id, code, text)| refusal(StatusCode::BAD_REQUEST, id, code, text))?;
    Ok((bytes, message))
}

fn check_content_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" {
        return Ok(());
    }
    Err(Box::new(json_response(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        &json!({
            "jsonrpc": "2.0", "id": null,
            "error": {"code": -32600, "message": format!(
                "Unsupported Media Type: POST /mcp takes Content-Type: application/json, got {:?}",
                content_type)}
        }),
    )))
}

/// Reads the body frame by frame: past the limit is 413, a stream error (a short body, a
/// bad chunk size, a client that stopped sending) is 400 — never reported as "too large".
async fn read_body(mut body: Body) -> Result<Bytes, Refusal> {
    let mut collected: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            refusal(
                StatusCode::BAD_REQUEST,
                Value::Null,
                -32700,
                &format!("Parse error: the request body broke off or could not be read ({error})"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > MAX_BODY_BYTES {
                return Err(Box::new(too_large()));
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(collected))
}

/// 413 closes the connection: the rest of the body is never read, so the socket cannot
/// carry another request.
fn too_large() -> Response<Body> {
    let mut response = jsonrpc_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        Value::Null,
        -32600,
        &format!("Request body over {MAX_BODY_BYTES} bytes; send large payloads in parts"),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Why a message is refused: the id to answer, the JSON-RPC code and the sentence.
type Refused = (Value, i64, &'static str);

/// A JSON-RPC 2.0 message, and for `tools/call` a name and object arguments.
fn check_message(message: &Value) -> Result<(), Refused> {
    let invalid = |id: &Value, code: i64, text: &'static str| Err((id.clone(), code, text));
    let Some(object) = message.as_object() else {
        return invalid(
            &Value::Null,
            -32600,
            "Invalid Request: the body must be one JSON-RPC message object (batches are not supported)",
        );
    };
    let id = object.get("id").cloned().unwrap_or(Value::Null);
    if !matches!(id, Value::Null | Value::String(_) | Value::Number(_)) {
        return invalid(
            &Value::Null,
            -32600,
            "Invalid Request: `id` must be a string or a number",
        );
    }
    if object.get("jsonrpc") != Some(&Value::from("2.0")) {
        return invalid(&id, -32600, "Invalid Request: `jsonrpc` must be \"2.0\"");
    }
    let method = match object.get("method") {
        Some(Value::String(method)) => method.as_str(),
        Some(_) => return invalid(&id, -32600, "Invalid Request: `method` must be a string"),
        // A response to a server request.
        None if object.contains_key("result") || object.contains_key("error") => return Ok(()),
        None => {
            return invalid(
                &id,
                -32600,
                "Invalid Request: a message needs `method` (or `result`/`error` with an `id`)",
            );
        }
    };
    let params = object.get("params");
    if !matches!(params, None | Some(Value::Object(_))) {
        return invalid(&id, -32602, "Invalid params: `params` must be an object");
    }
    if method == "tools/call" {
        let params = params.and_then(Value::as_object);
        if !params
            .and_then(|p| p.get("name"))
            .is_some_and(Value::is_string)
        {
            return invalid(
                &id,
                -32602,
                "Invalid params: tools/call needs `params.name`, the tool's name as a string",
            );
        }
        let arguments = params.and_then(|p| p.get("arguments"));
        if !matches!(arguments, None | Some(Value::Null) | Some(Value::Object(_))) {
            return invalid(
                &id,
                -32602,
                "Invalid params: tools/call `params.arguments` must be an object of named arguments",
            );
        }
    }
    Ok(())
}

/// An error status with a body that is not JSON (rmcp answers some refusals in plain
/// text) becomes a JSON-RPC error carrying that text.
pub async fn json_error_body(response: Response<Body>, id: &Value) -> Response<Body> {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let code = if status.is_server_error() {
        -32603
    } else {
        -32600
    };
    let mut rebuilt = jsonrpc_error(status, id.clone(), code, &text);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonrpc_shapes_table() {
        let table = [
            (json!([]), Some(-32600)),
            (json!(42), Some(-32600)),
            (
                json!({"jsonrpc": "1.0", "method": "x", "id": 1}),
                Some(-32600),
            ),
            (json!({"jsonrpc": "2.0", "id": 1}), Some(-32600)),
            (
                json!({"jsonrpc": "2.0", "method": 5, "id": 1}),
                Some(-32600),
            ),
            (
                json!({"jsonrpc": "2.0", "method": "x", "id": {"a": 1}}),
                Some(-32600),
            ),
            (
                json!({"jsonrpc": "2.0", "method": "x", "params": [1], "id": 1}),
                Some(-32602),
            ),
            (
                json!({"jsonrpc": "2.0", "method": "tools/call", "params": {}, "id": 1}),
                Some(-32602),
            ),
            (
                json!({"jsonrpc": "2.0", "method": "tools/call", "id": 1,
                       "params": {"name": "x", "arguments": [1]}}),
                Some(-32602),
            ),
            (
                json!({"jsonrpc": "2.0", "method": "tools/call", "id": 1,
                       "params": {"name": "x", "arguments": {}}}),
                None,
            ),
            (
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                None,
            ),
            (json!({"jsonrpc": "2.0", "id": 1, "result": {}}), None),
        ];
        for (message, refused) in table {
            let code = check_message(&message).err().map(|(_, code, _)| code);
            assert_eq!(code, refused, "{message}");
        }
    }
}
