//! Runtime profile detection (spec http-config-cli §11.2): what the working directory says
//! about where the agent runs. [`scan`] gathers the facts (I/O); [`classify`] turns facts and
//! a forced mode into the profile (pure, table-tested). Auto-detection yields only `repo` or
//! `isolated`; `unknown` comes only from `--runtime-mode unknown`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// The hub's own runtime modes: what the launcher declares is what the hub routes by.
pub use hub_server::domain::task::RuntimeMode;

/// `--runtime-mode` values (anything else exits 1 with this sentence).
pub fn parse_mode(text: &str) -> Result<RuntimeMode, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "repo" => Ok(RuntimeMode::Repo),
        "isolated" => Ok(RuntimeMode::Isolated),
        "unknown" => Ok(RuntimeMode::Unknown),
        _ => Err(format!(
            "unsupported runtime mode {text:?}: repo, isolated or unknown"
        )),
    }
}

/// What the directory looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirFacts {
    pub cwd: PathBuf,
    /// Inside a git work tree (the directory or any ancestor has `.git`).
    pub has_git: bool,
    /// Regular files at depth ≤ 2 below cwd, `./.git/**` excluded.
    pub file_count: u64,
}

/// The profile sent with `register_agent` and quoted in the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeProfile {
    pub mode: RuntimeMode,
    /// What detection said, whatever was forced.
    pub detected: RuntimeMode,
    pub forced: bool,
    pub facts: DirFacts,
    pub detected_at_ms: i64,
}

pub fn classify(facts: DirFacts, forced: Option<RuntimeMode>, now_ms: i64) -> RuntimeProfile {
    let detected = if facts.has_git || facts.file_count > 0 {
        RuntimeMode::Repo
    } else {
        // No git and no file: the directory is empty.
        RuntimeMode::Isolated
    };
    RuntimeProfile {
        mode: forced.unwrap_or(detected),
        detected,
        forced: forced.is_some(),
        facts,
        detected_at_ms: now_ms,
    }
}

impl RuntimeProfile {
    pub fn empty_dir(&self) -> bool {
        self.facts.file_count == 0
    }

    /// The wire form (`runtime_profile` of register_agent).
    pub fn to_json(&self) -> Value {
        json!({
            "mode": self.mode.as_str(),
            "cwd": self.facts.cwd.display().to_string(),
            "has_git": self.facts.has_git,
            "file_count": self.facts.file_count,
            "empty_dir": self.empty_dir(),
            "source": if self.forced { "client_declared" } else { "client_auto" },
            "detected_at": self.detected_at_ms,
            "notes": if self.forced { json!("runtime_mode_forced_via_hub_flag") } else { Value::Null },
        })
    }
}

/// Reads the facts of `cwd` (absolute). Unreadable subdirectories count as empty.
pub fn scan(cwd: &Path) -> DirFacts {
    let has_git = cwd.ancestors().any(|dir| dir.join(".git").exists());
    DirFacts {
        cwd: cwd.to_path_buf(),
        has_git,
        file_count: count_files(cwd, 1),
    }
}

fn count_files(dir: &Path, depth: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut count = 0;
    for entry in entries.flatten() {
        // file_type() does not follow symlinks: a link is neither counted nor descended into.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_file() {
            count += 1;
        } else if kind.is_dir() && depth < 2 && !(depth == 1 && entry.file_name() == ".git") {
            count += count_files(&entry.path(), depth + 1);
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(has_git: bool, file_count: u64) -> DirFacts {
        DirFacts {
            cwd: PathBuf::from("/work/x"),
            has_git,
            file_count,
        }
    }

    #[test]
    fn classify_table() {
        use RuntimeMode::*;
        // (has_git, file_count, forced) → (mode, empty_dir, source, notes)
        let table = [
            (true, 12, None, Repo, false, "client_auto", Value::Null),
            (true, 0, None, Repo, true, "client_auto", Value::Null),
            (false, 3, None, Repo, false, "client_auto", Value::Null),
            (false, 0, None, Isolated, true, "client_auto", Value::Null),
            (
                true,
                5,
                Some(Isolated),
                Isolated,
                false,
                "client_declared",
                json!("runtime_mode_forced_via_hub_flag"),
            ),
            (
                false,
                0,
                Some(Repo),
                Repo,
                true,
                "client_declared",
                json!("runtime_mode_forced_via_hub_flag"),
            ),
            (
                false,
                0,
                Some(Unknown),
                Unknown,
                true,
                "client_declared",
                json!("runtime_mode_forced_via_hub_flag"),
            ),
        ];
        for (has_git, count, forced, mode, empty, source, notes) in table {
            let profile = classify(facts(has_git, count), forced, 1_800_000_000_000);
            let wire = profile.to_json();
            let case = format!("has_git={has_git} files={count} forced={forced:?}");
            assert_eq!(profile.mode, mode, "{case}");
            assert_eq!(wire["mode"], mode.as_str(), "{case}");
            assert_eq!(wire["empty_dir"], empty, "{case}");
            assert_eq!(wire["source"], source, "{case}");
            assert_eq!(wire["notes"], notes, "{case}");
            // A forced mode replaces the mode only; the other fields stay detected.
            assert_eq!(wire["has_git"], has_git, "{case}");
            assert_eq!(wire["file_count"], count, "{case}");
            assert_eq!(wire["cwd"], "/work/x");
            assert_eq!(wire["detected_at"], 1_800_000_000_000i64);
        }
    }

    #[test]
    fn scan_counts_regular_files_to_depth_two_and_skips_git() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("work");
        std::fs::create_dir_all(dir.join("a/b/c")).unwrap();
        std::fs::create_dir_all(dir.join(".git/objects")).unwrap();
        std::fs::write(dir.join("top.txt"), "x").unwrap(); // depth 1
        std::fs::write(dir.join("a/mid.txt"), "x").unwrap(); // depth 2
        std::fs::write(dir.join("a/b/deep.txt"), "x").unwrap(); // depth 3: not counted
        std::fs::write(dir.join(".git/HEAD"), "x").unwrap(); // .git: not counted
        std::fs::write(dir.join(".git/objects/o"), "x").unwrap();
        let found = scan(&dir);
        assert_eq!(found.file_count, 2);
        assert!(found.has_git);

        let empty = root.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let found = scan(&empty);
        // The temp dir lives outside any git work tree on CI; an ancestor .git would be found.
        assert_eq!(found.file_count, 0);
        assert!(classify(found, None, 1).empty_dir());

        let nested = dir.join("a/b");
        assert!(scan(&nested).has_git, "an ancestor's .git counts");
    }
}
