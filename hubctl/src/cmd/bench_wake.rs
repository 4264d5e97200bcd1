//! `hubctl bench wake`: how quickly parked `wait_for_updates` calls wake after a broadcast
//! (after a ping phase on the same sessions, for the share of the transport ceiling, and with
//! the writer's CPU over the rounds), what an idle hub with many parked waiters costs in CPU,
//! and how many bytes each response mode sends. On replicas (`--backend postgres-2`) the
//! waiters park on the first replica and the broadcast goes through the last one, so the
//! latency is the cross-replica wake-up (commit, NOTIFY, the listener, the waiters).

use std::time::{Duration, Instant};

use anyhow::bail;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use super::bench::{RunPlan, Sync, WakeArgs, external_target, for_each_plan};
use super::bench_cpu::process_cpu_seconds;
use super::bench_ping::measure_against_ping;
use super::bench_report::{RunReport, print_notes, report_json, runs_table};
use super::bench_runner::{
    HubTarget, PhaseStats, Session, close_sessions, connect_sessions, db_use, progress_bar,
    writer_use,
};

/// One wait_for_updates call on the messages stream from the session's cursor; advances it.
async fn wait_call(session: &mut Session, wait_ms: u64, mode: &str) -> anyhow::Result<Value> {
    let reply = session
        .client
        .call_tool(
            "wait_for_updates",
            json!({"agent_id": session.agent, "auth_token": session.token,
                   "streams": ["messages"], "cursor": session.cursor, "wait_ms": wait_ms,
                   "response_mode": mode, "timeout_response": "default"}),
        )
        .await?;
    if !reply.succeeded() {
        bail!("wait_for_updates failed: {}", reply.json);
    }
    if let Some(cursor) = reply.json["u"].as_str().or(reply.json["cursor"].as_str()) {
        session.cursor = cursor.to_string();
    }
    Ok(reply.json)
}

/// `count` waiter sessions with their cursors positioned at "now".
async fn connect_waiters(url: &str, count: usize, tag: &str) -> anyhow::Result<Vec<Session>> {
    let urls = [url.to_string()];
    let mut waiters = connect_sessions(&urls, count, &format!("wake-{tag}")).await?;
    // One probe positions every cursor: fresh agents have no direct messages, so the same
    // cursor is exact for all of them.
    if let Some(first) = waiters.first_mut() {
        first.cursor = String::new();
        wait_call(first, 100, "nano").await?;
        let cursor = first.cursor.clone();
        for waiter in &mut waiters {
            waiter.cursor = cursor.clone();
        }
    }
    Ok(waiters)
}

/// A session that only sends.
async fn connect_sender(url: &str, tag: &str) -> anyhow::Result<Session> {
    let urls = [url.to_string()];
    let mut senders = connect_sessions(&urls, 1, &format!("wake-{tag}-sender")).await?;
    Ok(senders.pop().expect("one sender"))
}

async fn send(sender: &mut Session, to_agent: Option<&str>, content: &str) -> anyhow::Result<()> {
    let mut arguments = json!({"from_agent": sender.agent, "content": content,
                               "auth_token": sender.token});
    if let Some(to_agent) = to_agent {
        arguments["to_agent"] = json!(to_agent);
    }
    let reply = sender.client.call_tool("send_message", arguments).await?;
    if !reply.succeeded() {
        bail!("send_message failed: {}", reply.json);
    }
    Ok(())
}

/// Waits until the hub reports at least `count` parked waiters.
async fn parked(health_url: &str, count: u64) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health: Value = http.get(health_url).send().await?.json().await?;
        if health["waiters"].as_u64().unwrap_or(0) >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {count} waiters parked after 60 s",
                health["waiters"]
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `rounds` broadcasts to `waiters` parked sessions; one latency sample per waiter and round.
/// Calls counted: every wait_for_updates return plus every send.
async fn wake_rounds(
    hub: &HubTarget,
    health_url: &str,
    mut waiters: Vec<Session>,
    sender: &mut Session,
    rounds: usize,
) -> anyhow::Result<(Vec<Session>, PhaseStats)> {
    let count = waiters.len();
    let progress = progress_bar(rounds as u64, " rounds");
    progress.set_message(format!("{}: {count} waiters", hub.label));
    let mut micros = Vec::with_capacity(count * rounds);
    let mut errors = 0;
    let db_before = hub.db_counters().await;
    let writer_before = hub.writer.cpu_seconds();
    let started = Instant::now();
    for round in 0..rounds {
        let mut tasks = Vec::with_capacity(count);
        for mut waiter in waiters.drain(..) {
            tasks.push(tokio::spawn(async move {
                let result = wait_call(&mut waiter, 25_000, "nano").await;
                (waiter, result.map(|_| Instant::now()))
            }));
        }
        parked(health_url, count as u64).await?;
        let sent_at = Instant::now();
        send(sender, None, &format!("wake {round}")).await?;
        for task in tasks {
            let (waiter, result) = task.await?;
            match result {
                Ok(returned) => micros.push(returned.duration_since(sent_at).as_micros() as u64),
                Err(_) => errors += 1,
            }
            waiters.push(waiter);
        }
        progress.set_position(round as u64 + 1);
    }
    let seconds = started.elapsed().as_secs_f64();
    let writer = writer_use(writer_before, hub.writer.cpu_seconds());
    progress.finish_and_clear();
    let calls = micros.len() + rounds;
    let mut stats = PhaseStats::from_latencies(
        "wake-up after broadcast",
        count,
        micros,
        calls,
        errors,
        seconds,
        writer,
    );
    stats.db = db_use(db_before, hub.db_counters().await);
    Ok((waiters, stats))
}

/// Ping on the waiters' sessions, then the wake rounds, for one waiter count.
async fn wake_run(
    hub: &HubTarget,
    health_url: &str,
    count: usize,
    args: &WakeArgs,
) -> anyhow::Result<RunReport> {
    let tag = format!("{}-{count}", std::process::id());
    let waiters = connect_waiters(hub.url(), count, &tag).await?;
    let sender_url = hub.urls.last().expect("a hub has a URL");
    let mut sender = connect_sender(sender_url, &tag).await?;
    let (waiters, mut report) =
        measure_against_ping(hub, waiters, args.ping_seconds, Vec::new(), 0).await?;
    report.hub = format!("{}, {count} waiters", hub.label);
    let (waiters, stats) = wake_rounds(hub, health_url, waiters, &mut sender, args.rounds).await?;
    report.phases.push(stats);
    close_sessions(waiters).await;
    sender.client.close().await;
    Ok(report)
}

/// Response size of a hit and of a timeout in every mode.
async fn response_bytes(url: &str) -> anyhow::Result<Vec<(String, usize, usize)>> {
    let tag = format!("{}-bytes", std::process::id());
    let mut waiter = connect_waiters(url, 1, &tag)
        .await?
        .pop()
        .expect("one waiter");
    let mut sender = connect_sender(url, &tag).await?;
    let mut sizes = Vec::new();
    for mode in ["nano", "micro", "tiny", "compact", "full"] {
        let timeout = wait_call(&mut waiter, 100, mode).await?.to_string().len();
        send(&mut sender, Some(&waiter.agent), "x").await?;
        let hit = wait_call(&mut waiter, 5_000, mode).await?.to_string().len();
        sizes.push((mode.to_string(), hit, timeout));
    }
    waiter.client.close().await;
    sender.client.close().await;
    Ok(sizes)
}

/// CPU used by the (in-process) hub while `count` waiters are parked for `seconds`.
async fn idle_cpu(url: &str, health_url: &str, count: usize, seconds: u64) -> anyhow::Result<f64> {
    let tag = format!("{}-idle", std::process::id());
    let waiters = connect_waiters(url, count, &tag).await?;
    let mut tasks = Vec::with_capacity(count);
    for (index, mut waiter) in waiters.into_iter().enumerate() {
        // Re-park after each timeout, as a real idle agent would.
        tasks.push(tokio::spawn(async move {
            loop {
                if let Err(error) = wait_call(&mut waiter, 25_000, "nano").await {
                    eprintln!("idle waiter {index}: {error:#}");
                    return;
                }
            }
        }));
    }
    parked(health_url, count as u64).await?;
    let progress = progress_bar(seconds, "s");
    progress.set_message(format!("{count} parked waiters, idle"));
    let cpu_before = process_cpu_seconds()?;
    for second in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress.set_position(second + 1);
    }
    let cpu_used = process_cpu_seconds()? - cpu_before;
    progress.finish_and_clear();
    for task in tasks {
        task.abort();
    }
    Ok(cpu_used)
}

struct WakeReport {
    runs: Vec<RunReport>,
    bytes: Vec<(String, usize, usize)>,
    /// (hub label, CPU seconds) of the idle measurement.
    idle_cpu_seconds: Option<(String, f64)>,
}

async fn measure(hub: &HubTarget, in_process: bool, args: &WakeArgs) -> anyhow::Result<WakeReport> {
    let health_url = format!("{}/health", hub.url().trim_end_matches("/mcp"));
    let mut runs = Vec::new();
    for &count in &args.waiters {
        runs.push(wake_run(hub, &health_url, count.max(1), args).await?);
    }
    let bytes = response_bytes(hub.url()).await?;
    let idle_cpu_seconds = if in_process && args.idle_waiters > 0 {
        let cpu = idle_cpu(hub.url(), &health_url, args.idle_waiters, args.idle_seconds).await?;
        Some((hub.label.clone(), cpu))
    } else {
        None
    };
    Ok(WakeReport {
        runs,
        bytes,
        idle_cpu_seconds,
    })
}

pub async fn run(args: WakeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let args = &args;
    let reports = match &args.endpoint {
        Some(endpoint) => {
            vec![measure(&external_target(endpoint, args.hub_pid), false, args).await?]
        }
        None => {
            let plans = RunPlan::all(&args.backend, &[Sync::Full]);
            for_each_plan(&plans, |hub| async move { measure(&hub, true, args).await }).await?
        }
    };
    // Response sizes do not depend on the store: the first run's are shown.
    let bytes = reports.first().map(|r| r.bytes.clone()).unwrap_or_default();
    let idle: Vec<(String, f64)> = reports
        .iter()
        .filter_map(|r| r.idle_cpu_seconds.clone())
        .collect();
    let runs: Vec<RunReport> = reports.into_iter().flat_map(|r| r.runs).collect();
    let idle_percent = |cpu: f64| cpu / args.idle_seconds.max(1) as f64 * 100.0;
    if args.json {
        let extra = json!({
            "response_bytes": bytes.iter().map(|(mode, hit, timeout)| json!({
                "mode": mode, "hit": hit, "timeout": timeout,
            })).collect::<Vec<_>>(),
            "idle": idle.iter().map(|(hub, cpu)| json!({
                "hub": hub,
                "waiters": args.idle_waiters,
                "seconds": args.idle_seconds,
                "cpu_seconds": (cpu * 1000.0).round() / 1000.0,
                "cpu_percent_of_one_core": (idle_percent(*cpu) * 100.0).round() / 100.0,
            })).collect::<Vec<_>>(),
        });
        let document = report_json("wake", &runs, extra);
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    println!("{}", runs_table(&runs));
    print_notes(&runs);
    println!(
        "Wake rows: ops = wake-ups (latency from the start of the broadcast send to a \
         waiter's return); calls/s counts the waits and sends over all rounds."
    );
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "response_mode",
        "hit bytes",
        "timeout bytes",
    ]);
    for (mode, hit, timeout) in &bytes {
        table.add_row(vec![mode.clone(), hit.to_string(), timeout.to_string()]);
    }
    println!("{table}");
    for (hub, cpu) in idle {
        println!(
            "Idle ({hub}): {} parked waiters for {} s used {:.3} CPU seconds ({:.2} % of one core)",
            args.idle_waiters,
            args.idle_seconds,
            cpu,
            idle_percent(cpu)
        );
    }
    Ok(())
}
