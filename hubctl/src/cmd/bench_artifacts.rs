//! `hubctl bench artifacts`: the artifact side channel's upload and download throughput
//! (MB/s) for each file size, next to a raw loopback TCP copy of the same bytes measured in
//! the same run (the ceiling: no HTTP, no hashing, no disk), and the hub's peak RSS growth
//! while it receives the largest upload (bodies must stream, not buffer).
//!
//! Tickets are requested over MCP outside the timed region; each timed transfer is one
//! HTTP request through the real endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::bench::{Sync, start_temp_hub};
use super::bench_runner::register_agent;
use crate::client::McpClient;

#[derive(Debug, Clone, Args)]
pub(crate) struct ArtifactsArgs {
    /// Measure this running hub (its MCP URL) instead of a temporary one.
    #[arg(long)]
    endpoint: Option<String>,
    /// Process id whose RSS is sampled during the largest upload (default: this process,
    /// which hosts the temporary hub).
    #[arg(long)]
    hub_pid: Option<u32>,
    /// File sizes in MiB, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,50")]
    sizes_mib: Vec<usize>,
    /// Transfers per size and direction; the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

const MIB: usize = 1024 * 1024;

fn payload(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn mb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / MIB as f64 / seconds.max(1e-9)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Raw loopback TCP, upload direction: the client writes `bytes`, the server reads them all
/// and answers one byte.
async fn raw_upload(bytes: &[u8]) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let expected = bytes.len();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buffer = vec![0u8; 64 * 1024];
        let mut received = 0;
        while received < expected {
            let n = socket.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            received += n;
        }
        socket.write_all(&[1]).await?;
        anyhow::Ok(())
    });
    let started = Instant::now();
    let mut socket = tokio::net::TcpStream::connect(address).await?;
    socket.write_all(bytes).await?;
    let mut ack = [0u8; 1];
    socket.read_exact(&mut ack).await?;
    let seconds = started.elapsed().as_secs_f64();
    server.await??;
    Ok(mb_per_s(expected, seconds))
}

/// Raw loopback TCP, download direction: the server writes `bytes`, the client reads all.
async fn raw_download(bytes: Arc<Vec<u8>>) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let expected = bytes.len();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        socket.write_all(&bytes).await?;
        anyhow::Ok(())
    });
    let started = Instant::now();
    let mut socket = tokio::net::TcpStream::connect(address).await?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut received = 0;
    while received < expected {
        let n = socket.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        received += n;
    }
    let seconds = started.elapsed().as_secs_f64();
    server.await??;
    Ok(mb_per_s(received, seconds))
}

/// The ticket URL, pointed at the hub actually measured (tickets name the public base URL).
fn on_hub(base: &str, url: &str) -> anyhow::Result<String> {
    let at = url.find("/artifacts/").context("a ticket URL")?;
    Ok(format!("{base}{}", &url[at..]))
}

async fn ticket(
    client: &mut McpClient,
    tool: &str,
    args: Value,
    field: &str,
) -> anyhow::Result<(String, String)> {
    let reply = client.call_tool(tool, args).await?;
    if !reply.succeeded() {
        bail!("{tool} failed: {}", reply.json);
    }
    let id = reply.json["artifact"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let url = reply.json[field]["url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((id, url))
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Samples RSS every 2 ms on its own thread until stopped; returns the peak.
fn sample_peak_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid).unwrap_or(0));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        peak.max(rss_kib(pid).unwrap_or(0))
    })
}

#[derive(Debug, Clone, serde::Serialize)]
struct SizeReport {
    size_mib: usize,
    raw_upload_mb_s: f64,
    upload_mb_s: f64,
    upload_pct_of_raw: f64,
    raw_download_mb_s: f64,
    download_mb_s: f64,
    download_pct_of_raw: f64,
}

pub async fn run(args: ArtifactsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    anyhow::ensure!(!args.sizes_mib.is_empty(), "--sizes-mib needs a size");
    let temp = match &args.endpoint {
        Some(_) => None,
        None => Some(start_temp_hub(Sync::Full).await?),
    };
    let mcp_url = match (&args.endpoint, &temp) {
        (Some(url), _) => url.clone(),
        (None, Some(temp)) => temp.mcp_url(),
        (None, None) => unreachable!("a temporary hub is started without --endpoint"),
    };
    let base = mcp_url.trim_end_matches("/mcp").to_string();
    let pid = args.hub_pid.unwrap_or_else(std::process::id);
    let http = reqwest::Client::new();
    let mut client = McpClient::connect(&mcp_url, "hubctl-bench").await?;
    let agent = format!("bench-{}-artifacts", std::process::id());
    register_agent(&mut client, &agent).await?;

    let mut reports = Vec::new();
    let mut rss_growth_kib = None;
    let largest = *args.sizes_mib.iter().max().unwrap_or(&1);
    for &size_mib in &args.sizes_mib {
        let bytes = Arc::new(payload(size_mib * MIB));
        let (mut raw_up, mut raw_down, mut up, mut down) = (vec![], vec![], vec![], vec![]);
        for round in 0..args.rounds {
            raw_up.push(raw_upload(&bytes).await?);
            raw_down.push(raw_download(bytes.clone()).await?);
            let (id, url) = ticket(
                &mut client,
                "create_artifact_upload",
                json!({"agent_id": agent, "name": format!("bench-{size_mib}.bin")}),
                "upload",
            )
            .await?;
            let body = bytes.as_ref().clone();
            let measure_rss = size_mib == largest && round == 0;
            let baseline = rss_kib(pid);
            let stop = Arc::new(AtomicBool::new(false));
            let sampler = measure_rss.then(|| sample_peak_rss(pid, stop.clone()));
            let started = Instant::now();
            let response = http.post(on_hub(&base, &url)?).body(body).send().await?;
            let status = response.status();
            let _ = response.bytes().await?;
            up.push(mb_per_s(bytes.len(), started.elapsed().as_secs_f64()));
            stop.store(true, Ordering::Relaxed);
            if let (Some(sampler), Some(baseline)) = (sampler, baseline) {
                let peak = sampler.join().unwrap_or(0);
                rss_growth_kib = Some(peak.saturating_sub(baseline));
            }
            anyhow::ensure!(status.is_success(), "upload answered {status}");

            let (_, url) = ticket(
                &mut client,
                "create_artifact_download",
                json!({"agent_id": agent, "artifact_id": id}),
                "download",
            )
            .await?;
            let started = Instant::now();
            let mut response = http.get(on_hub(&base, &url)?).send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "download answered {}",
                response.status()
            );
            let mut received = 0;
            while let Some(chunk) = response.chunk().await? {
                received += chunk.len();
            }
            down.push(mb_per_s(received, started.elapsed().as_secs_f64()));
            anyhow::ensure!(received == bytes.len(), "short download: {received} bytes");
        }
        let (raw_up, raw_down, up, down) =
            (median(raw_up), median(raw_down), median(up), median(down));
        reports.push(SizeReport {
            size_mib,
            raw_upload_mb_s: raw_up,
            upload_mb_s: up,
            upload_pct_of_raw: 100.0 * up / raw_up,
            raw_download_mb_s: raw_down,
            download_mb_s: down,
            download_pct_of_raw: 100.0 * down / raw_down,
        });
    }
    client.close().await;
    if let Some(temp) = temp {
        temp.shutdown().await;
    }
    if args.json {
        let body = json!({"sizes": reports, "upload_peak_rss_growth_kib": rss_growth_kib,
                          "rss_pid": pid, "rounds": args.rounds});
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!(
        "artifact side channel, median of {} transfers per cell",
        args.rounds
    );
    println!(
        "{:>8} {:>12} {:>12} {:>8} {:>12} {:>12} {:>8}",
        "size", "raw up MB/s", "up MB/s", "% raw", "raw dn MB/s", "down MB/s", "% raw"
    );
    for r in &reports {
        println!(
            "{:>5} MiB {:>12.0} {:>12.0} {:>7.0}% {:>12.0} {:>12.0} {:>7.0}%",
            r.size_mib,
            r.raw_upload_mb_s,
            r.upload_mb_s,
            r.upload_pct_of_raw,
            r.raw_download_mb_s,
            r.download_mb_s,
            r.download_pct_of_raw
        );
    }
    match rss_growth_kib {
        Some(kib) => println!(
            "peak RSS growth of pid {pid} during the first {largest} MiB upload: {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("peak RSS growth: n/a (no /proc for pid {pid})"),
    }
    Ok(())
}
