//! The coalesced bookkeeping: heartbeats, token last-use, auth events and quiet activity
//! rows reach the database in batches — after a flush, and at shutdown at the latest.

use serde_json::json;

use crate::harness::{START_MS, TestHub};

fn count(rows: &[Vec<String>]) -> i64 {
    rows[0][0].parse().unwrap()
}

#[tokio::test]
async fn bookkeeping_lands_on_flush_with_the_call_times() {
    let hub = TestHub::start().await;
    let (client, token) = hub.agent("keeper").await;
    hub.flush_bookkeeping().await;
    let calls = "SELECT COALESCE(SUM(calls), 0) FROM call_minutes
                 WHERE tool = 'read_messages' AND auth = 'valid' AND agent_id = 'keeper'";
    let events_before = count(&hub.query(calls).await);
    hub.clock.advance_ms(5_000);
    for _ in 0..3 {
        client
            .call(
                "read_messages",
                json!({"agent_id": "keeper", "auth_token": token}),
            )
            .await
            .ok();
    }
    hub.flush_bookkeeping().await;
    let events = count(&hub.query(calls).await);
    assert_eq!(events, events_before + 3, "every call counted");
    let seen = hub
        .query("SELECT last_seen, status FROM agents WHERE id = 'keeper'")
        .await;
    assert_eq!(
        seen[0],
        vec![(START_MS + 5_000).to_string(), "online".into()]
    );
    let used = hub
        .query("SELECT last_used_at FROM agent_tokens WHERE agent_id = 'keeper'")
        .await;
    assert_eq!(used[0][0], (START_MS + 5_000).to_string());
    let reads = hub
        .query("SELECT COUNT(*) FROM activity_log WHERE action = 'read_messages' AND quiet = 1")
        .await;
    assert_eq!(count(&reads), 3);
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn shutdown_flushes_what_is_pending() {
    let hub = TestHub::start().await;
    let (client, token) = hub.agent("late").await;
    client
        .call(
            "list_agents",
            json!({"agent_id": "late", "auth_token": token}),
        )
        .await
        .ok();
    client.close().await;
    // No flush: a clean stop writes what is still queued.
    let hub = hub.restart().await;
    let rows = hub
        .query("SELECT COUNT(*) FROM activity_log WHERE action = 'list_agents'")
        .await;
    assert_eq!(count(&rows), 1);
    hub.stop().await;
}
