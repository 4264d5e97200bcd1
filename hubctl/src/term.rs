//! Terminal presentation: colour only when stdout is a terminal (and NO_COLOR is unset), so
//! piped output and files stay plain text.

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy)]
pub enum Tone {
    Good,
    Bad,
}

pub fn colour_enabled() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `text` in the tone's colour on a terminal, unchanged otherwise.
pub fn paint(text: &str, tone: Tone) -> String {
    if !colour_enabled() {
        return text.to_string();
    }
    let code = match tone {
        Tone::Good => "32",
        Tone::Bad => "31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}
