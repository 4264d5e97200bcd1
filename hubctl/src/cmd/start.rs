//! `hubctl start`: launch the hub as a background process of this instance (pidfile and log
//! in the data dir) and return once `/health` answers.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::instance::Instance;

const HEALTH_WAIT: Duration = Duration::from_secs(10);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn port_in_use(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&address, Duration::from_millis(300)).is_ok()
}

/// The last `lines` lines of the instance log.
pub fn log_tail(instance: &Instance, lines: usize) -> String {
    let text = std::fs::read_to_string(instance.logfile()).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub async fn run(instance: &Instance) -> anyhow::Result<ExitCode> {
    if let Some(record) = instance.running()? {
        println!(
            "{} is already running (pid {}); use `hubctl restart` to apply configuration changes.",
            instance.name, record.pid
        );
        return super::status::run(instance, false).await;
    }
    let port = instance.port();
    if port_in_use(port) {
        anyhow::bail!(
            "port {port} is already in use by another process; stop it or pick another port \
             with --port / MCP_HUB_PORT"
        );
    }
    std::fs::create_dir_all(instance.data_dir())
        .with_context(|| format!("creating {}", instance.data_dir().display()))?;
    let _ = std::fs::remove_file(instance.pidfile());

    println!("Starting MCP Agent Hub on port {port}...");
    println!("Publishing:");
    for address in instance.config.bind_addresses() {
        println!("  {address}:{port}");
    }
    if !instance.env_files().is_empty() {
        println!("Using env config:");
        for file in instance.env_files() {
            println!("  {file}");
        }
    }
    println!("{}", instance.profile_line());
    instance.print_warnings();

    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(instance.logfile())
        .with_context(|| format!("opening {}", instance.logfile().display()))?;
    let exe = std::env::current_exe().context("locating the hubctl executable")?;
    let mut child = Command::new(exe)
        .arg("serve")
        .env_remove("MCP_HUB_ENV_FILE")
        .env_remove("MCP_HUB_LOCAL_ENV_FILE")
        .envs(instance.child_env())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: Ctrl-C in this terminal does not reach the hub.
        .process_group(0)
        .spawn()
        .context("launching the hub process")?;
    std::fs::write(
        instance.pidfile(),
        format!("{}\n{}\n", child.id(), now_ms()),
    )
    .with_context(|| format!("writing {}", instance.pidfile().display()))?;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()?;
    let deadline = Instant::now() + HEALTH_WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let _ = std::fs::remove_file(instance.pidfile());
            eprintln!(
                "The hub exited during startup ({status}). Last log lines:\n{}",
                log_tail(instance, 20)
            );
            return Ok(ExitCode::FAILURE);
        }
        let healthy = http
            .get(instance.health_url())
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if healthy {
            break;
        }
        if Instant::now() > deadline {
            eprintln!(
                "The hub did not answer {} within {}s. Last log lines:\n{}",
                instance.health_url(),
                HEALTH_WAIT.as_secs(),
                log_tail(instance, 20)
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("Server: {}", instance.mcp_url());
    println!("Health: {}/health", instance.base_url());
    println!("DB: {}", instance.db_path().display());
    println!("Log: {}", instance.logfile().display());
    Ok(ExitCode::SUCCESS)
}
