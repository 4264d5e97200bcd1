//! `hubctl logs [-f]`: print (or follow) the instance log.

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::Duration;

use crate::instance::Instance;

pub async fn run(instance: &Instance, follow: bool) -> anyhow::Result<ExitCode> {
    let path = instance.logfile();
    let Ok(mut file) = std::fs::File::open(&path) else {
        println!(
            "No logs yet for {} ({} does not exist).",
            instance.name,
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let mut stdout = std::io::stdout();
    let mut position = std::io::copy(&mut file, &mut stdout)?;
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let length = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if length < position {
            // Rotated or truncated: start over.
            file = std::fs::File::open(&path)?;
            position = 0;
        }
        if length > position {
            file.seek(SeekFrom::Start(position))?;
            let mut chunk = Vec::new();
            Read::by_ref(&mut file)
                .take(length - position)
                .read_to_end(&mut chunk)?;
            stdout.write_all(&chunk)?;
            stdout.flush()?;
            position = length;
        }
    }
}
