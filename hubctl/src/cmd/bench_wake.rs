//! `hubctl bench wake`: how quickly parked `wait_for_updates` calls wake after a broadcast,
//! what an idle hub with many parked waiters costs in CPU, and how many bytes each response
//! mode sends.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use super::bench::{
    PhaseStats, Sync, WakeArgs, percentile, print_report, register_agent, start_temp_hub,
};
use crate::client::McpClient;

/// A waiter: an MCP session watching one agent's messages.
struct Waiter {
    client: McpClient,
    agent: String,
    token: String,
    cursor: String,
}

async fn wait_call(waiter: &mut Waiter, wait_ms: u64, mode: &str) -> anyhow::Result<Value> {
    let reply = waiter
        .client
        .call_tool(
            "wait_for_updates",
            json!({"agent_id": waiter.agent, "auth_token": waiter.token, "streams": ["messages"],
                   "cursor": waiter.cursor, "wait_ms": wait_ms, "response_mode": mode,
                   "timeout_response": "default"}),
        )
        .await?;
    if !reply.succeeded() {
        bail!("wait_for_updates failed: {}", reply.json);
    }
    let cursor = reply.json["u"]
        .as_str()
        .or(reply.json["cursor"].as_str())
        .unwrap_or(&waiter.cursor)
        .to_string();
    waiter.cursor = cursor;
    Ok(reply.json)
}

async fn connect_waiters(url: &str, count: usize, tag: &str) -> anyhow::Result<Vec<Waiter>> {
    let mut waiters = Vec::with_capacity(count);
    for index in 0..count {
        let mut client = McpClient::connect(url, "hubctl-bench-wake").await?;
        let agent = format!("wake-{tag}-{index}");
        let token = register_agent(&mut client, &agent).await?;
        waiters.push(Waiter {
            client,
            agent,
            token,
            cursor: String::new(),
        });
    }
    // Position every cursor at "now" with one probe: fresh agents have no direct messages,
    // so the same cursor is exact for all of them.
    if let Some(first) = waiters.first_mut() {
        wait_call(first, 100, "nano").await?;
        let cursor = first.cursor.clone();
        for waiter in &mut waiters {
            waiter.cursor = cursor.clone();
        }
    }
    Ok(waiters)
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

async fn wake_latency(
    url: &str,
    health_url: &str,
    count: usize,
    rounds: usize,
) -> anyhow::Result<PhaseStats> {
    let tag = format!("{}-{count}", std::process::id());
    let mut waiters = connect_waiters(url, count, &tag).await?;
    let mut sender = McpClient::connect(url, "hubctl-bench-wake").await?;
    let sender_id = format!("wake-{tag}-sender");
    let sender_token = register_agent(&mut sender, &sender_id).await?;
    let progress = super::bench::progress_bar(rounds as u64);
    progress.set_message(format!("{count} waiters"));
    let mut micros = Vec::with_capacity(count * rounds);
    let mut errors = 0;
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
        let reply = sender
            .call_tool(
                "send_message",
                json!({"from_agent": sender_id, "content": format!("wake {round}"),
                       "auth_token": sender_token}),
            )
            .await?;
        if !reply.succeeded() {
            bail!("send_message failed: {}", reply.json);
        }
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
    progress.finish_and_clear();
    for waiter in waiters {
        waiter.client.close().await;
    }
    sender.close().await;
    micros.sort_unstable();
    let mean_ms = micros.iter().sum::<u64>() as f64 / micros.len().max(1) as f64 / 1000.0;
    Ok(PhaseStats {
        hub: format!("{count} waiters"),
        tool: "wake-up after broadcast",
        clients: count,
        calls: micros.len(),
        errors,
        seconds: started.elapsed().as_secs_f64(),
        p50_ms: percentile(&micros, 0.50),
        p99_ms: percentile(&micros, 0.99),
        mean_ms,
    })
}

/// Response size of a hit and of a timeout in every mode.
async fn response_bytes(url: &str) -> anyhow::Result<Vec<(String, usize, usize)>> {
    let tag = format!("{}-bytes", std::process::id());
    let mut waiters = connect_waiters(url, 1, &tag).await?;
    let mut waiter = waiters.pop().expect("one waiter");
    let mut sender = McpClient::connect(url, "hubctl-bench-wake").await?;
    let sender_id = format!("wake-{tag}-sender");
    let sender_token = register_agent(&mut sender, &sender_id).await?;
    let mut sizes = Vec::new();
    for mode in ["nano", "micro", "tiny", "compact", "full"] {
        let timeout = wait_call(&mut waiter, 100, mode).await?.to_string().len();
        sender
            .call_tool(
                "send_message",
                json!({"from_agent": sender_id, "to_agent": waiter.agent, "content": "x",
                       "auth_token": sender_token}),
            )
            .await?;
        let hit = wait_call(&mut waiter, 5_000, mode).await?.to_string().len();
        sizes.push((mode.to_string(), hit, timeout));
    }
    waiter.client.close().await;
    sender.close().await;
    Ok(sizes)
}

/// CPU seconds (user + system) this process has used so far, from /proc.
fn process_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("parsing /proc/self/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let per_second = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    Ok(ticks / per_second)
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
    let progress = super::bench::progress_bar(seconds);
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

pub async fn run(args: WakeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let temp = match &args.endpoint {
        Some(_) => None,
        None => Some(start_temp_hub(Sync::Full).await?),
    };
    let url = match (&args.endpoint, &temp) {
        (Some(endpoint), _) => endpoint.clone(),
        (None, Some(temp)) => temp.handle.mcp_url(),
        (None, None) => unreachable!("a temporary hub exists without --endpoint"),
    };
    let health_url = format!("{}/health", url.trim_end_matches("/mcp"));
    let outcome = async {
        let mut latency = Vec::new();
        for &count in &args.waiters {
            latency.push(wake_latency(&url, &health_url, count.max(1), args.rounds).await?);
        }
        let bytes = response_bytes(&url).await?;
        let idle = if temp.is_some() && args.idle_waiters > 0 {
            Some(idle_cpu(&url, &health_url, args.idle_waiters, args.idle_seconds).await?)
        } else {
            None
        };
        anyhow::Ok((latency, bytes, idle))
    }
    .await;
    if let Some(temp) = temp {
        temp.handle.shutdown().await;
    }
    let (latency, bytes, idle) = outcome?;
    if args.json {
        let report = json!({
            "scenario": "wake",
            "latency": latency.iter().map(PhaseStats::to_json).collect::<Vec<_>>(),
            "response_bytes": bytes.iter().map(|(mode, hit, timeout)| json!({
                "mode": mode, "hit": hit, "timeout": timeout,
            })).collect::<Vec<_>>(),
            "idle": idle.map(|cpu| json!({
                "waiters": args.idle_waiters,
                "seconds": args.idle_seconds,
                "cpu_seconds": (cpu * 1000.0).round() / 1000.0,
                "cpu_percent_of_one_core": (cpu / args.idle_seconds as f64 * 10000.0).round() / 100.0,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_report("wake", &latency, false);
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
    if let Some(cpu) = idle {
        println!(
            "Idle: {} parked waiters for {} s used {:.3} CPU seconds ({:.2} % of one core)",
            args.idle_waiters,
            args.idle_seconds,
            cpu,
            cpu / args.idle_seconds as f64 * 100.0
        );
    }
    Ok(())
}
