//! The orchestrator's snapshot at the end of `smart-swarm-round`: what the hub supports
//! (namespaces, nano, read_snapshot), one batch read or three reads, the bytes of each
//! section and the counts of the workers' tasks, messages and context entries.

use serde_json::{Value, json};

use super::round::{RoundAgent, RoundSession};

/// What `tools/list` says the hub supports.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Support {
    pub(crate) namespace: bool,
    pub(crate) nano: bool,
    pub(crate) batch: bool,
}

pub(crate) fn support(tools: &[Value]) -> Support {
    let tool = |name: &str| tools.iter().find(|t| t["name"] == name);
    let has_property = |name: &str, property: &str| {
        tool(name).is_some_and(|t| t["inputSchema"]["properties"].get(property).is_some())
    };
    // The response_mode enum may sit in the schema's $defs: look through the whole schema.
    let nano_mode =
        |name: &str| tool(name).is_some_and(|t| t["inputSchema"].to_string().contains("\"nano\""));
    Support {
        namespace: has_property("create_task", "namespace")
            && has_property("poll_and_claim", "namespace"),
        nano: ["list_tasks", "read_messages", "get_context"]
            .iter()
            .all(|t| nano_mode(t)),
        batch: tool("read_snapshot").is_some(),
    }
}

/// Counts of the orchestrator's snapshot.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct SnapshotCounts {
    pub(crate) done: u64,
    pub(crate) in_progress: u64,
    pub(crate) pending: u64,
    pub(crate) inbox_messages: u64,
    pub(crate) inbox_chars: u64,
    pub(crate) context_entries: u64,
    pub(crate) context_chars: u64,
}

/// The first of `keys` that `row` has as a string / number: the same field is `title` in
/// compact rows, `title_preview` in tiny ones and `t` in nano ones.
fn text_of<'a>(row: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|key| row[*key].as_str())
}

fn number_of(row: &Value, keys: &[&str]) -> u64 {
    keys.iter().find_map(|key| row[*key].as_u64()).unwrap_or(0)
}

/// Counts tasks by title prefix and status, and inbox/context rows of workers with their
/// chars, whatever the response mode (nano keys: tasks t/s, messages f/c, context a/c).
pub(crate) fn count_snapshot(
    tasks: &[Value],
    messages: &[Value],
    contexts: &[Value],
    title_prefix: &str,
    worker_prefix: &str,
) -> SnapshotCounts {
    let mut counts = SnapshotCounts::default();
    for task in tasks {
        if !text_of(task, &["title", "title_preview", "t"])
            .is_some_and(|t| t.starts_with(title_prefix))
        {
            continue;
        }
        match text_of(task, &["status", "s"]) {
            Some("done") => counts.done += 1,
            Some("in_progress") => counts.in_progress += 1,
            Some("pending") => counts.pending += 1,
            _ => {}
        }
    }
    let by_worker = |row: &Value, keys: &[&str]| {
        text_of(row, keys).is_some_and(|o| o.starts_with(worker_prefix))
    };
    for message in messages
        .iter()
        .filter(|m| by_worker(m, &["from_agent", "f"]))
    {
        counts.inbox_messages += 1;
        counts.inbox_chars += number_of(message, &["content_chars", "c"]);
    }
    for context in contexts.iter().filter(|c| by_worker(c, &["agent_id", "a"])) {
        counts.context_entries += 1;
        counts.context_chars += number_of(context, &["value_chars", "c"]);
    }
    counts
}

fn rows<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Bytes of each section (tasks, messages, context) and the rows to count.
pub(crate) struct Snapshot {
    pub(crate) batch_used: bool,
    pub(crate) bytes: [usize; 3],
    pub(crate) tasks: Vec<Value>,
    pub(crate) messages: Vec<Value>,
    pub(crate) contexts: Vec<Value>,
}

pub(crate) async fn take_snapshot(
    session: &mut RoundSession,
    orch: &RoundAgent,
    mode: &str,
    support: Support,
    namespace: Option<&str>,
) -> anyhow::Result<Snapshot> {
    if support.batch {
        let mut args = json!({"agent_id": orch.id, "response_mode": mode,
                              "message_limit": 200, "task_limit": 500, "context_limit": 500});
        if let Some(ns) = namespace {
            args["task_namespace"] = json!(ns);
            args["context_namespace"] = json!(ns);
        }
        let snap = session.call_ok("read_snapshot", args, Some(orch)).await?;
        let (messages, tasks, contexts) = if mode == "nano" {
            let s = &snap["s"];
            (s["m"].clone(), s["t"].clone(), s["c"].clone())
        } else {
            let s = &snap["snapshot"];
            (
                s["messages"].clone(),
                s["tasks"].clone(),
                s["context"].clone(),
            )
        };
        let size = |v: &Value| v.to_string().len();
        let (task_rows, message_rows, context_rows) = if mode == "nano" {
            (tasks.clone(), messages.clone(), contexts.clone())
        } else {
            (
                tasks["tasks"].clone(),
                messages["messages"].clone(),
                contexts["contexts"].clone(),
            )
        };
        return Ok(Snapshot {
            batch_used: true,
            bytes: [size(&tasks), size(&messages), size(&contexts)],
            tasks: task_rows.as_array().cloned().unwrap_or_default(),
            messages: message_rows.as_array().cloned().unwrap_or_default(),
            contexts: context_rows.as_array().cloned().unwrap_or_default(),
        });
    }
    let mut bytes = [0; 3];
    let mut task_args = json!({"agent_id": orch.id, "limit": 500, "polling": true,
                               "response_mode": mode});
    let mut context_args = json!({"requesting_agent": orch.id, "limit": 500, "polling": true,
                                  "response_mode": mode});
    if let Some(ns) = namespace {
        task_args["namespace"] = json!(ns);
        context_args["namespace"] = json!(ns);
    }
    let message_args = json!({"agent_id": orch.id, "limit": 500, "polling": true,
                              "response_mode": mode});
    let nano = mode == "nano";
    let mut sections = Vec::new();
    for (index, (tool, args, long, short)) in [
        ("list_tasks", task_args, "tasks", "t"),
        ("read_messages", message_args, "messages", "m"),
        ("get_context", context_args, "contexts", "c"),
    ]
    .into_iter()
    .enumerate()
    {
        let measured = session.call(tool, args, Some(orch)).await?;
        anyhow::ensure!(
            measured.reply.succeeded(),
            "{tool} failed: {}",
            measured.reply.json
        );
        bytes[index] = measured.reply.response_bytes;
        sections.push(rows(&measured.reply.json, if nano { short } else { long }).to_vec());
    }
    let contexts = sections.pop().unwrap_or_default();
    let messages = sections.pop().unwrap_or_default();
    let tasks = sections.pop().unwrap_or_default();
    Ok(Snapshot {
        batch_used: false,
        bytes,
        tasks,
        messages,
        contexts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_counts_in_nano_and_long_keys() {
        let tasks = vec![
            json!({"t": "[X] worker-1", "s": "done"}),
            json!({"t": "[X] worker-2", "s": "in_progress"}),
            json!({"t": "[Y] other", "s": "done"}),
        ];
        let messages = vec![
            json!({"f": "sw-X-1", "c": 40}),
            json!({"f": "orch", "c": 9}),
        ];
        let contexts = vec![json!({"a": "sw-X-2-codex", "c": 30})];
        let nano = count_snapshot(&tasks, &messages, &contexts, "[X]", "sw-X-");
        assert_eq!(
            nano,
            SnapshotCounts {
                done: 1,
                in_progress: 1,
                pending: 0,
                inbox_messages: 1,
                inbox_chars: 40,
                context_entries: 1,
                context_chars: 30
            }
        );
        let long = count_snapshot(
            &[json!({"title_preview": "[X] w", "status": "pending"})],
            &[json!({"from_agent": "sw-X-1", "content_chars": 5})],
            &[],
            "[X]",
            "sw-X-",
        );
        assert_eq!((long.pending, long.inbox_chars), (1, 5));
    }
}
