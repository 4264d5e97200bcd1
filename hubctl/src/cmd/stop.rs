//! `hubctl stop`: SIGTERM the instance's hub, wait for it (SIGKILL after a timeout), remove
//! the pidfile.

use std::process::ExitCode;
use std::time::Duration;

use crate::instance::Instance;
use crate::process::{signal, wait_for_exit};

const GRACE: Duration = Duration::from_secs(10);

pub fn run(instance: &Instance) -> anyhow::Result<ExitCode> {
    let Some(record) = instance.running()? else {
        let _ = std::fs::remove_file(instance.pidfile());
        println!("{} is not running.", instance.name);
        return Ok(ExitCode::SUCCESS);
    };
    println!("Stopping {} (pid {})...", instance.name, record.pid);
    signal(record.pid, "TERM");
    if !wait_for_exit(record.pid, GRACE) {
        eprintln!(
            "{} did not stop within {}s; sending SIGKILL",
            instance.name,
            GRACE.as_secs()
        );
        signal(record.pid, "KILL");
        wait_for_exit(record.pid, Duration::from_secs(5));
    }
    let _ = std::fs::remove_file(instance.pidfile());
    println!("Stopped.");
    Ok(ExitCode::SUCCESS)
}
