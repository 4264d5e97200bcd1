//! Process control for the native runtime: liveness, signals, waiting.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `pid` is alive and (where /proc tells) a hub started by hubctl or hub-server.
pub fn is_hub_process(pid: u32) -> bool {
    let proc_dir = std::path::Path::new("/proc").join(pid.to_string());
    if std::path::Path::new("/proc/self").exists() {
        let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
            return false;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        // A pid reused by an unrelated program does not count as our hub.
        return cmdline.contains("hubctl") || cmdline.contains("hub-server");
    }
    signal(pid, "0")
}

/// Sends a signal (`TERM`, `KILL`, `0`) with kill(1); true when delivered.
pub fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Sends a signal to every process of the process group `pgid` (a child started as its own
/// group leader, and whatever it started).
pub fn signal_group(pgid: u32, name: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Waits until the process is gone; false on timeout.
pub fn wait_for_exit(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_hub_process(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !is_hub_process(pid)
}
