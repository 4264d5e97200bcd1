//! Read-only MCP resources for dashboards and humans: `hub://agents`, `hub://tasks`
//! (`?namespace=&status=`), `hub://tasks/{id}` (the handoff packet) and `hub://inbox/{agent}`
//! (the caller's own inbox), with `resources/subscribe` and `notifications/resources/updated`
//! driven by the wait `wait_for_updates` runs (`live::wait_for_change` on `Store::subscribe`).
//!
//! A resource is a view over a read tool: reading one runs that tool through the same
//! pipeline (validation, the Caller from the bearer token, the auth mode, the private-data
//! rule, rate limits, the reader pool), so a resource can show nothing its tool would refuse.
//! The caller is named by `?agent=<id>` (the inbox's `{agent}`), checked against the
//! `Authorization: Bearer` token like a tool's caller field; under enforce a read without it
//! is refused, and another agent's inbox is refused (`FOREIGN_PRIVATE_DATA`,
//! `AUTH_TOKEN_INVALID`). No SQL here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::ErrorData;
use rmcp::model::{JsonObject, ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use rmcp::service::{Peer, RoleServer};
use serde_json::{Value, json};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{CallEnv, Hub, Rejected, registry};

pub const SCHEME: &str = "hub://";
const JSON: &str = "application/json";

/// One parsed resource URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubResource {
    Agents,
    Tasks {
        namespace: Option<String>,
        status: Option<String>,
    },
    Task(i64),
    Inbox(String),
}

/// A resource URI: what it names and who is asking (`?agent=`; the inbox's owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub resource: HubResource,
    pub agent: Option<String>,
}

/// Parses `hub://…`; `Err` is a sentence naming what is wrong.
pub fn parse(uri: &str) -> Result<Request, String> {
    let rest = uri
        .strip_prefix(SCHEME)
        .ok_or_else(|| format!("uri must start with {SCHEME}, got {uri:?}"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut params: HashMap<&str, String> = HashMap::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        if !matches!(key, "agent" | "namespace" | "status") {
            return Err(format!(
                "unknown query parameter {key:?} in {uri:?}: use agent, namespace or status"
            ));
        }
        if !value.trim().is_empty() {
            params.insert(key, value.trim().to_string());
        }
    }
    let agent = params.remove("agent");
    let only_agent =
        |resource: HubResource, params: &HashMap<&str, String>| match params.keys().next() {
            Some(key) => Err(format!("{key} does not apply to {uri:?}")),
            None => Ok(resource),
        };
    let resource = match path.trim_end_matches('/').split('/').collect::<Vec<_>>()[..] {
        ["agents"] => only_agent(HubResource::Agents, &params)?,
        ["tasks"] => HubResource::Tasks {
            namespace: params.remove("namespace"),
            status: params.remove("status"),
        },
        ["tasks", id] => {
            let id = id
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| format!("task id must be a positive integer, got {id:?}"))?;
            only_agent(HubResource::Task(id), &params)?
        }
        ["inbox", owner] if !owner.trim().is_empty() => {
            let owner = percent_decode(owner);
            if agent.as_deref().is_some_and(|agent| agent != owner) {
                return Err("hub://inbox/{agent} is read as {agent}: drop ?agent=".into());
            }
            only_agent(HubResource::Inbox(owner), &params)?
        }
        _ => {
            return Err(format!(
                "unknown resource {uri:?}: hub://agents, hub://tasks, hub://tasks/{{id}}, \
                 hub://inbox/{{agent}}"
            ));
        }
    };
    let agent = match &resource {
        HubResource::Inbox(owner) => Some(owner.clone()),
        _ => agent,
    };
    Ok(Request { resource, agent })
}

/// `%XX` escapes (ids and namespaces are plain text; `+` stays `+`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl HubResource {
    /// The read tool this resource is a view of, and its arguments.
    fn tool_call(&self, agent: Option<&str>) -> Result<(&'static str, Value), String> {
        let mut args = match self {
            HubResource::Agents => json!({"tool": "list_agents", "agent_id": agent}),
            HubResource::Tasks { namespace, status } => json!({
                "tool": "list_tasks", "agent_id": agent, "namespace": namespace, "status": status,
            }),
            HubResource::Task(id) => {
                let agent = agent.ok_or(
                    "hub://tasks/{id} is read for an agent: add ?agent=<your id> (its token \
                     as Authorization: Bearer)",
                )?;
                json!({"tool": "get_task_handoff", "agent_id": agent, "task_id": id})
            }
            // read_snapshot marks nothing read: browsing an inbox must not consume it.
            HubResource::Inbox(owner) => json!({
                "tool": "read_snapshot", "requesting_agent": owner, "agent_id": owner,
                "include_content": true, "task_limit": 1, "context_limit": 1,
            }),
        };
        let object = args.as_object_mut().expect("a JSON object");
        let tool = match object.remove("tool") {
            Some(Value::String(tool)) => registry()
                .get(&tool)
                .map(|def| def.name)
                .expect("resource tools are registered"),
            _ => unreachable!("every arm names its tool"),
        };
        object.retain(|_, value| !value.is_null());
        object.insert("response_mode".into(), json!("compact"));
        Ok((tool, args))
    }

    /// The streams whose movement changes this resource, as `wait_for_updates` names them.
    fn streams(&self) -> crate::live::StreamSet {
        let names: &[&str] = match self {
            // Registrations and presence changes are activity rows.
            HubResource::Agents => &["activity"],
            HubResource::Tasks { .. } | HubResource::Task(_) => &["tasks"],
            HubResource::Inbox(_) => &["messages"],
        };
        crate::live::StreamSet::parse(names.iter().copied()).expect("stream names")
    }

    /// Whose view of the messages stream counts (the inbox owner's; none elsewhere).
    fn watcher(&self) -> &str {
        match self {
            HubResource::Inbox(owner) => owner,
            _ => "",
        }
    }

    /// What the tool's answer shows of this resource.
    fn view(&self, answer: Value) -> Value {
        match self {
            HubResource::Inbox(owner) => json!({
                "agent": owner,
                "messages": answer["snapshot"]["messages"]["messages"],
                "has_more": answer["snapshot"]["messages"]["has_more"],
                "next_cursor": answer["snapshot"]["messages"]["next_cursor"],
            }),
            _ => {
                let mut answer = answer;
                if let Some(object) = answer.as_object_mut() {
                    object.remove("success");
                }
                answer
            }
        }
    }
}

pub fn list() -> Vec<Resource> {
    [
        (
            "hub://agents",
            "agents",
            "Registered agents, most recently seen first.",
        ),
        (
            "hub://tasks",
            "tasks",
            "The task board; filter with ?namespace=&status=.",
        ),
    ]
    .into_iter()
    .map(|(uri, name, description)| {
        Resource::new(uri, name)
            .with_description(description)
            .with_mime_type(JSON)
    })
    .collect()
}

pub fn templates() -> Vec<ResourceTemplate> {
    [
        (
            "hub://tasks{?namespace,status}",
            "tasks-filtered",
            "Tasks of one namespace and/or status (pending, in_progress, done, blocked).",
        ),
        (
            "hub://tasks/{id}?agent={agent}",
            "task-handoff",
            "One task's handoff packet: task, dependencies, evidence, artifacts.",
        ),
        (
            "hub://inbox/{agent}",
            "inbox",
            "Your own inbox (Authorization: Bearer with your token); reading marks nothing read.",
        ),
    ]
    .into_iter()
    .map(|(uri, name, description)| {
        ResourceTemplate::new(uri, name)
            .with_description(description)
            .with_mime_type(JSON)
    })
    .collect()
}

/// `resources/read`: the resource's tool through the call pipeline, its answer as JSON text.
pub async fn read(hub: Arc<Hub>, env: CallEnv, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let request = parse(uri).map_err(|message| ErrorData::invalid_params(message, None))?;
    let (tool, args) = request
        .resource
        .tool_call(request.agent.as_deref())
        .map_err(|message| ErrorData::invalid_params(message, None))?;
    let def = registry().get(tool).expect("registered");
    let arguments: JsonObject = match args {
        Value::Object(object) => object,
        _ => unreachable!("tool_call builds an object"),
    };
    let answer = match (def.call)(hub, env, arguments).await {
        Ok(answer) | Err(Rejected(answer)) => answer,
    };
    if answer.get("success") == Some(&Value::Bool(false)) {
        return Err(refusal(uri, answer));
    }
    let text = request.resource.view(answer).to_string();
    Ok(ReadResourceResult::new(vec![
        ResourceContents::TextResourceContents {
            uri: uri.to_string(),
            mime_type: Some(JSON.into()),
            text,
            meta: None,
        },
    ]))
}

/// A tool refusal as a JSON-RPC error: the refusal object (its `error_code`) is the data.
fn refusal(uri: &str, answer: Value) -> ErrorData {
    let message = format!(
        "{uri}: {}",
        answer["error"].as_str().unwrap_or("refused by the hub")
    );
    match answer["error_code"].as_str() {
        Some("TASK_NOT_FOUND") | Some("NOT_FOUND") => {
            ErrorData::resource_not_found(message, Some(answer))
        }
        _ => ErrorData::invalid_params(message, Some(answer)),
    }
}

/// The subscriptions of one MCP session: dropping it (the session ends) stops its watchers.
#[derive(Clone, Default)]
pub struct Subscriptions {
    watchers: Arc<Mutex<HashMap<String, DropGuard>>>,
}

impl Subscriptions {
    /// `resources/subscribe`: the caller must be able to read the resource now (so a foreign
    /// inbox is refused as its read is); then every move of its stream heads sends
    /// `notifications/resources/updated` until unsubscribe, the session's end or shutdown.
    pub async fn subscribe(
        &self,
        hub: Arc<Hub>,
        env: CallEnv,
        peer: Peer<RoleServer>,
        uri: &str,
    ) -> Result<(), ErrorData> {
        read(hub.clone(), env, uri).await?;
        let resource = parse(uri)
            .map_err(|message| ErrorData::invalid_params(message, None))?
            .resource;
        let cancel = hub.shutdown.child_token();
        let previous = self
            .watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(uri.to_string(), cancel.clone().drop_guard());
        drop(previous);
        tokio::spawn(watch(hub, peer, uri.to_string(), resource, cancel));
        Ok(())
    }

    pub fn unsubscribe(&self, uri: &str) {
        let removed = self
            .watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(uri);
        drop(removed);
    }
}

/// Notifies `uri` each time its streams move as `live::wait_for_change` sees them for the
/// resource's watcher — the wait `wait_for_updates` runs, so an inbox subscription wakes only
/// for messages its owner can see, and a burst of commits yields one notification.
async fn watch(
    hub: Arc<Hub>,
    peer: Peer<RoleServer>,
    uri: String,
    resource: HubResource,
    cancel: CancellationToken,
) {
    let store = hub.store.clone();
    drop(hub);
    let (watcher, streams) = (resource.watcher(), resource.streams());
    let Ok(mut baseline) = crate::live::watermark(&store, watcher, store.heads()).await else {
        return;
    };
    loop {
        // Long waits, renewed: a subscription lasts until it is cancelled.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
        let outcome =
            crate::live::wait_for_change(&store, watcher, streams, baseline, deadline, &cancel);
        let Ok(outcome) = outcome.await else { return };
        baseline = outcome.cursor;
        match outcome.end {
            // An unsubscribe that raced a commit wins: nothing is sent after it returned.
            crate::live::WaitEnd::Changed if cancel.is_cancelled() => return,
            crate::live::WaitEnd::Changed => {
                let updated = rmcp::model::ResourceUpdatedNotificationParam::new(uri.clone());
                if peer.notify_resource_updated(updated).await.is_err() {
                    return;
                }
            }
            crate::live::WaitEnd::TimedOut => {}
            crate::live::WaitEnd::Cancelled => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse() {
        let tasks = |namespace: Option<&str>, status: Option<&str>| HubResource::Tasks {
            namespace: namespace.map(String::from),
            status: status.map(String::from),
        };
        // (uri, Ok((resource, caller)) or Err(part of the message))
        type Expected<'a> = Result<(HubResource, Option<&'a str>), &'a str>;
        let table: [(&str, Expected); 11] = [
            ("hub://agents", Ok((HubResource::Agents, None))),
            ("hub://agents?agent=a", Ok((HubResource::Agents, Some("a")))),
            ("hub://tasks", Ok((tasks(None, None), None))),
            (
                "hub://tasks?namespace=x&status=pending&agent=a",
                Ok((tasks(Some("x"), Some("pending")), Some("a"))),
            ),
            ("hub://tasks?namespace=", Ok((tasks(None, None), None))),
            (
                "hub://tasks/7?agent=a",
                Ok((HubResource::Task(7), Some("a"))),
            ),
            (
                "hub://inbox/bob%20b",
                Ok((HubResource::Inbox("bob b".into()), Some("bob b"))),
            ),
            ("hub://tasks/x", Err("positive integer")),
            ("hub://agents?status=done", Err("does not apply")),
            ("hub://tasks?color=red", Err("unknown query parameter")),
            ("http://agents", Err("must start with")),
        ];
        for (uri, expected) in table {
            match (parse(uri), expected) {
                (Ok(request), Ok((resource, agent))) => {
                    assert_eq!(request.resource, resource, "{uri}");
                    assert_eq!(request.agent.as_deref(), agent, "{uri}");
                }
                (Err(message), Err(part)) => assert!(message.contains(part), "{uri}: {message}"),
                (got, _) => panic!("{uri}: {got:?}"),
            }
        }
        assert!(parse("hub://inbox/bob?agent=eve").is_err());
        assert!(parse("hub://inbox/").is_err());
    }

    #[test]
    fn every_resource_is_a_registered_read_tool() {
        for resource in [
            HubResource::Agents,
            HubResource::Tasks {
                namespace: None,
                status: None,
            },
            HubResource::Task(1),
            HubResource::Inbox("a".into()),
        ] {
            let (tool, _) = resource.tool_call(Some("a")).expect("a tool call");
            let row = super::super::surface::entry(tool).expect("a catalog row");
            // get_task_handoff can issue tickets with include_downloads, which we never set.
            assert!(
                row.effect.read_only() || tool == "get_task_handoff",
                "{tool} is not a read"
            );
        }
        assert!(HubResource::Task(1).tool_call(None).is_err());
    }
}
