//! The container runtime (`hubctl --docker …`): the same lifecycle driven through the Docker
//! CLI with the image built from the repository's Dockerfile. The instance's data dir is
//! mounted at /data; the port is published on 127.0.0.1 and on each extra bind host.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::instance::Instance;

/// The image name (`MCP_HUB_IMAGE`, default `mcp-agent-hub`).
pub fn image(instance: &Instance) -> String {
    instance
        .layers
        .get("MCP_HUB_IMAGE")
        .unwrap_or("mcp-agent-hub")
        .to_string()
}

fn docker(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running the docker CLI")
}

/// Fails with a clear message unless a Docker engine answers.
pub fn ensure_available() -> anyhow::Result<()> {
    match docker(&["info", "--format", "{{.ServerVersion}}"]) {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => bail!(
            "docker is not available: {}; use the native runtime (omit --docker)",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => {
            bail!("docker is not available: {error:#}; use the native runtime (omit --docker)")
        }
    }
}

fn container_running(name: &str) -> bool {
    docker(&["inspect", "-f", "{{.State.Running}}", name])
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "true")
}

pub fn build(instance: &Instance, root: &Path) -> anyhow::Result<ExitCode> {
    ensure_available()?;
    let image = image(instance);
    println!("Building image {image} from {}...", root.display());
    let status = Command::new("docker")
        .args(["build", "-t", &image])
        .arg(root)
        .status()?;
    Ok(if status.success() {
        println!("Image: {image}");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `hubctl --docker test`: builds the Dockerfile's build stage as `<image>-dev` and runs the
/// workspace tests in it.
pub fn test(instance: &Instance, args: &[String]) -> anyhow::Result<ExitCode> {
    ensure_available()?;
    let dev = format!("{}-dev", image(instance));
    let root = crate::instance::install_root();
    println!("Building {dev} from {}...", root.display());
    let built = Command::new("docker")
        .args(["build", "--target", "build", "-t", &dev])
        .arg(&root)
        .status()?;
    if !built.success() {
        return Ok(ExitCode::FAILURE);
    }
    let status = Command::new("docker")
        .args([
            "run",
            "--rm",
            &dev,
            "cargo",
            "test",
            "--workspace",
            "--locked",
        ])
        .args(args)
        .status()?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn start(instance: &Instance) -> anyhow::Result<ExitCode> {
    ensure_available()?;
    let name = &instance.name;
    if container_running(name) {
        println!(
            "{name} is already running; use `hubctl --docker restart` to apply configuration changes."
        );
        return status(instance).await;
    }
    let _ = docker(&["rm", "-f", name]);
    std::fs::create_dir_all(instance.data_dir())?;
    let port = instance.port();
    println!("Starting MCP Agent Hub on port {port}...");
    instance.print_warnings();
    println!("Publishing:");
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        name.clone(),
        "--restart".into(),
        "unless-stopped".into(),
        "-v".into(),
        format!("{}:/data", instance.data_dir().display()),
    ];
    for address in instance.config.bind_addresses() {
        println!("  {address}:{port}");
        args.push("-p".into());
        args.push(format!("{address}:{port}:3000"));
    }
    // Inside the container the paths and the listener are fixed; the rest is the profile.
    let pinned = [
        ("MCP_HUB_HOST", "0.0.0.0".to_string()),
        ("MCP_HUB_PORT", "3000".to_string()),
        ("MCP_HUB_DATA", "/data".to_string()),
        ("MCP_HUB_DB", "/data/hub.db".to_string()),
        ("MCP_HUB_ARTIFACTS_DIR", "/data/artifacts".to_string()),
        (
            "MCP_HUB_PUBLIC_BASE_URL",
            instance.config.public_base_url.clone(),
        ),
    ];
    for (key, value) in instance.child_env() {
        if key == "MCP_HUB_EXTRA_BIND_HOSTS" || pinned.iter().any(|(k, _)| *k == key) {
            continue;
        }
        args.push("-e".into());
        args.push(format!("{key}={value}"));
    }
    for (key, value) in pinned {
        args.push("-e".into());
        args.push(format!("{key}={value}"));
    }
    args.push(image(instance));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = docker(&refs)?;
    if !output.status.success() {
        bail!(
            "docker run failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if http
            .get(instance.health_url())
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            println!("Server: {}", instance.mcp_url());
            println!("Health: {}/health", instance.base_url());
            println!("DB: {}", instance.db_path().display());
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = docker(&["logs", "--tail", "20", name])?;
    eprintln!(
        "The container did not become healthy within 10s. Last log lines:\n{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    Ok(ExitCode::FAILURE)
}

pub fn stop(instance: &Instance) -> anyhow::Result<ExitCode> {
    ensure_available()?;
    let name = &instance.name;
    if !container_running(name) {
        let _ = docker(&["rm", "-f", name]);
        println!("{name} is not running.");
        return Ok(ExitCode::SUCCESS);
    }
    println!("Stopping {name}...");
    docker(&["stop", "-t", "10", name])?;
    docker(&["rm", name])?;
    Ok(ExitCode::SUCCESS)
}

pub async fn status(instance: &Instance) -> anyhow::Result<ExitCode> {
    ensure_available()?;
    let name = &instance.name;
    if !container_running(name) {
        println!("{name} is not running.");
        return Ok(ExitCode::FAILURE);
    }
    let ports = docker(&["port", name])?;
    println!(
        "{name}: running, ports {}",
        String::from_utf8_lossy(&ports.stdout)
            .trim()
            .replace('\n', ", ")
    );
    match super::status::fetch_health(&instance.health_url()).await {
        Some(health) => {
            println!("{health}");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!("Health check failed");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn logs(instance: &Instance, follow: bool) -> anyhow::Result<ExitCode> {
    ensure_available()?;
    let mut command = Command::new("docker");
    command.arg("logs");
    if follow {
        command.arg("-f");
    }
    let status = command.arg(&instance.name).status()?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Removes the container and the images (`<image>` and `<image>-dev`).
pub fn remove(instance: &Instance) -> anyhow::Result<()> {
    ensure_available()?;
    let _ = docker(&["rm", "-f", &instance.name]);
    let image = image(instance);
    let _ = docker(&["rmi", &image, &format!("{image}-dev")]);
    Ok(())
}
