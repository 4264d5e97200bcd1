//! `POST /artifacts/upload/:id` and `GET /artifacts/download/:id` (tools-more §3.11): raw
//! bodies streamed to and from `artifact_files`, never held in memory. Ticket rules are
//! `service::artifacts`; this module only speaks HTTP.
//!
//! Upload: validate the ticket (not consumed) → stream the body to a temp file, hashing
//! and counting, refusing over the cap with 413 + `Connection: close` → fsync + rename →
//! one write consumes the ticket and records the bytes. Download: one write consumes the
//! ticket and counts the access → stream the file (whole or one `Range`).

use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::AppState;
use super::mcp::json_response;
use crate::artifact_files::{self, ArtifactWriter};
use crate::domain::artifact::{self as rules, RangeRequest};
use crate::service::artifacts::{self as service, SideRefusal, SideRefusalKind, StoredBytes};
use crate::store::StoreError;

#[derive(Debug, Deserialize)]
pub struct TicketQuery {
    token: Option<String>,
}

/// Which route failed, for the 500 token.
#[derive(Clone, Copy)]
enum Route {
    Upload,
    Download,
}

impl Route {
    fn failure_token(self) -> &'static str {
        match self {
            Route::Upload => "artifact_upload_failed",
            Route::Download => "artifact_download_failed",
        }
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json_response(status, &json!({"success": false, "error": message.into()}))
}

/// 413, and the connection closes: the rest of an oversized body is never read.
fn too_large(limit: i64) -> Response<Body> {
    let mut response = error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("artifact body is larger than its limit of {limit} bytes"),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn internal(route: Route, problem: impl std::fmt::Display) -> Response<Body> {
    tracing::error!(%problem, "{}", route.failure_token());
    error(StatusCode::INTERNAL_SERVER_ERROR, route.failure_token())
}

fn refused(route: Route, refusal: SideRefusal) -> Response<Body> {
    let status = match refusal.kind {
        SideRefusalKind::BadRequest => StatusCode::BAD_REQUEST,
        SideRefusalKind::Unauthorized => StatusCode::UNAUTHORIZED,
        SideRefusalKind::Forbidden => StatusCode::FORBIDDEN,
        SideRefusalKind::NotFound => StatusCode::NOT_FOUND,
        SideRefusalKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        SideRefusalKind::Internal => return internal(route, refusal.message),
    };
    error(status, refusal.message)
}

/// The sanitised id and the ticket (`?token=`, else `x-artifact-token`); 400 when missing.
fn ticket_of(
    raw_id: &str,
    query: &TicketQuery,
    headers: &HeaderMap,
) -> Result<(String, String), &'static str> {
    let id = rules::sanitize_id(raw_id);
    if id.is_empty() {
        return Err("artifact id is required");
    }
    let token = query
        .token
        .as_deref()
        .or_else(|| {
            headers
                .get("x-artifact-token")
                .and_then(|v| v.to_str().ok())
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    match token {
        Some(token) => Ok((id, token)),
        None => Err("token is required (?token= or the x-artifact-token header)"),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    crate::auth::bearer_token(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
}

fn flatten<T>(result: Result<Result<T, SideRefusal>, StoreError>) -> Result<T, SideRefusal> {
    result.unwrap_or_else(|error| Err(error.into()))
}

pub async fn upload(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    Query(query): Query<TicketQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let route = Route::Upload;
    let (id, token) = match ticket_of(&raw_id, &query, &headers) {
        Ok(pair) => pair,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let hub = state.hub.clone();
    let server_max = hub.config.artifact.max_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    if declared.is_some_and(|length| length > server_max) {
        return too_large(server_max);
    }
    let (check_id, check_token, check_bearer) = (id.clone(), token.clone(), bearer(&headers));
    let config = hub.config.clone();
    let now_ms = hub.store.now_ms();
    let grant = flatten(
        hub.store
            .read(move |db| {
                Ok(service::check_upload(
                    db,
                    &config,
                    now_ms,
                    &check_token,
                    &check_id,
                    check_bearer.as_deref(),
                ))
            })
            .await,
    );
    let grant = match grant {
        Ok(grant) => grant,
        Err(refusal) => return refused(route, refusal),
    };
    if declared.is_some_and(|length| length > grant.max_bytes) {
        return too_large(grant.max_bytes);
    }
    let dir = hub.config.artifacts_dir.clone();
    let writer = match ArtifactWriter::begin(&dir, &id).await {
        Ok(writer) => writer,
        Err(problem) => return internal(route, problem),
    };
    let mut received: i64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            // The client went away or broke the framing; dropping the writer deletes the
            // temp file and the ticket stays usable.
            Err(problem) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("upload body broke off: {problem}"),
                );
            }
        };
        received += chunk.len() as i64;
        if received > grant.max_bytes {
            return too_large(grant.max_bytes);
        }
        if let Err(problem) = writer.write(chunk).await {
            return internal(route, problem);
        }
    }
    if received == 0 {
        return error(StatusCode::BAD_REQUEST, "upload body is empty");
    }
    let written = match writer.finish().await {
        Ok(written) => written,
        Err(problem) => return internal(route, problem),
    };
    let stored = StoredBytes {
        storage_path: written.file_name.clone(),
        size_bytes: written.size_bytes as i64,
        sha256: written.sha256.clone(),
        mime_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
    };
    let commit_id = id.clone();
    let committed = flatten(
        hub.store
            .write(move |tx| Ok(service::commit_upload(tx, &token, &commit_id, &stored)))
            .await,
    );
    match committed {
        Ok(artifact) => json_response(
            StatusCode::OK,
            &json!({
                "success": true,
                "artifact_id": artifact.id,
                "size_bytes": artifact.size_bytes,
                "sha256": artifact.sha256,
                "name": artifact.name,
            }),
        ),
        Err(refusal) => {
            // No row names the file: remove it now (the startup sweep would otherwise).
            let file = vec![written.file_name];
            let _ = tokio::task::spawn_blocking(move || artifact_files::remove(&dir, &file)).await;
            refused(route, refusal)
        }
    }
}

pub async fn download(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    Query(query): Query<TicketQuery>,
    headers: HeaderMap,
) -> Response<Body> {
    let route = Route::Download;
    let (id, token) = match ticket_of(&raw_id, &query, &headers) {
        Ok(pair) => pair,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let hub = state.hub.clone();
    let config = hub.config.clone();
    let presented = bearer(&headers);
    let begin_id = id.clone();
    let artifact = flatten(
        hub.store
            .write(move |tx| {
                Ok(service::begin_download(
                    tx,
                    &config,
                    &token,
                    &begin_id,
                    presented.as_deref(),
                ))
            })
            .await,
    );
    let artifact = match artifact {
        Ok(artifact) => artifact,
        Err(refusal) => return refused(route, refusal),
    };
    let dir = &hub.config.artifacts_dir;
    let Some(path) = artifact
        .storage_path
        .as_deref()
        .and_then(|name| artifact_files::path_of(dir, name))
    else {
        return error(StatusCode::NOT_FOUND, "artifact bytes are unavailable");
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(problem) => return internal(route, problem),
    };
    let size = artifact.size_bytes.max(0) as u64;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, length) = match rules::parse_range(range, size) {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            let mut response = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!(
                    "Range {:?} is outside the {size} bytes of this artifact",
                    range
                ),
            );
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
    };
    if start > 0
        && let Err(problem) = file.seek(SeekFrom::Start(start)).await
    {
        return internal(route, problem);
    }
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(length), 64 * 1024));
    // A MIME type given to create_artifact_upload may not be a valid header value.
    let content_type = HeaderValue::from_str(&artifact.mime_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_DISPOSITION,
            rules::content_disposition(&artifact.name, &artifact.id),
        );
    if let Some(sha) = &artifact.sha256 {
        builder = builder.header(header::ETAG, format!("\"{sha}\""));
    }
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + length - 1),
        );
    }
    match builder.body(body) {
        Ok(response) => response,
        Err(problem) => internal(route, problem),
    }
}
