//! `hubctl clean`: after confirmation (or --yes), stop the instance (with --docker: remove
//! the container and images) and delete its data dir. The question comes first: answering
//! "no" leaves the hub running and every file in place.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use crate::instance::Instance;

fn confirm(question: &str) -> anyhow::Result<bool> {
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y"))
}

pub fn run(instance: &Instance, yes: bool, docker: bool) -> anyhow::Result<ExitCode> {
    let data = instance.data_dir();
    let remove_data = data.exists();
    let question = if remove_data {
        format!(
            "Stop {} and remove its database at {}?",
            instance.name,
            data.display()
        )
    } else {
        format!("Stop and remove {}?", instance.name)
    };
    if !(yes || confirm(&question)?) {
        println!("Nothing changed.");
        return Ok(ExitCode::SUCCESS);
    }
    if docker {
        super::docker::remove(instance)?;
    } else {
        super::stop::run(instance)?;
    }
    if remove_data {
        std::fs::remove_dir_all(data)?;
        println!("Database removed.");
    }
    println!("Done.");
    Ok(ExitCode::SUCCESS)
}
