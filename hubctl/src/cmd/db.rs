//! `hubctl db`: an SQL shell on the instance database — `sqlite3` when installed, otherwise
//! a built-in read-only prompt.

use std::io::{BufRead, Write};
use std::process::{Command, ExitCode};

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use hub_server::store::inspect;

use crate::instance::Instance;

const MAX_ROWS: usize = 500;

fn sqlite3_available() -> bool {
    Command::new("sqlite3")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run(instance: &Instance, builtin: bool) -> anyhow::Result<ExitCode> {
    let Some(location) = instance.existing_db(None) else {
        return Ok(ExitCode::FAILURE);
    };
    if let inspect::Location::File(path) = &location
        && !builtin
        && sqlite3_available()
    {
        let status = Command::new("sqlite3").arg(path).status()?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let conn = location.open_read_only()?;
    println!(
        "Built-in read-only SQL prompt on {}. End statements with ';'. .tables lists tables, \
         .quit leaves.",
        location.describe()
    );
    let stdin = std::io::stdin();
    let mut statement = String::new();
    loop {
        print!(
            "{}",
            if statement.is_empty() {
                "hub.db> "
            } else {
                "   ...> "
            }
        );
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let trimmed = line.trim();
        if statement.is_empty() {
            match trimmed {
                "" => continue,
                ".quit" | ".exit" => break,
                ".tables" => {
                    println!("{}", inspect::table_names(&conn)?.join("  "));
                    continue;
                }
                _ => {}
            }
        }
        statement.push_str(&line);
        if !trimmed.ends_with(';') {
            continue;
        }
        match inspect::query(&conn, statement.trim(), MAX_ROWS) {
            Ok(result) => {
                let mut table = Table::new();
                table
                    .load_preset(UTF8_FULL_CONDENSED)
                    .set_header(result.columns);
                let count = result.rows.len();
                for row in result.rows {
                    table.add_row(row);
                }
                println!("{table}");
                println!(
                    "{count} row(s){}",
                    if count == MAX_ROWS {
                        " (truncated)"
                    } else {
                        ""
                    }
                );
            }
            Err(error) => eprintln!("error: {error}"),
        }
        statement.clear();
    }
    Ok(ExitCode::SUCCESS)
}
