//! `hubctl clean`: stop the instance (with --docker: remove the container and images) and,
//! after confirmation (or --yes), delete its data dir.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use crate::instance::Instance;

pub fn run(instance: &Instance, yes: bool, docker: bool) -> anyhow::Result<ExitCode> {
    if docker {
        super::docker::remove(instance)?;
    } else {
        super::stop::run(instance)?;
    }
    let data = instance.data_dir();
    if data.exists() {
        let confirmed = yes || {
            print!("Remove database at {}? [y/N] ", data.display());
            std::io::stdout().flush()?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            matches!(answer.trim(), "y" | "Y")
        };
        if confirmed {
            std::fs::remove_dir_all(data)?;
            println!("Database removed.");
        }
    }
    println!("Done.");
    Ok(ExitCode::SUCCESS)
}
