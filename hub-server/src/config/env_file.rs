//! Env files and layering: parsing `KEY=VALUE` profiles (never executing them) and resolving
//! the process environment over the local overlay over the base profile into [`EnvLayers`].
//!
//! Layering, highest wins: the process environment; the local overlay
//! (`MCP_HUB_LOCAL_ENV_FILE`); the base profile (`MCP_HUB_ENV_FILE`). `hubctl` adds the
//! default file locations (`deploy/hub.production.env`, `deploy/hub.local.env`). `/dev/null`
//! is accepted as an explicit, empty profile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Variables that come from a resolved environment (process env over env files).
#[derive(Debug, Clone, Default)]
pub struct EnvLayers {
    pub vars: BTreeMap<String, String>,
    /// `base:<path>` / `local:<path>` for every file that was loaded, for display.
    pub loaded_files: Vec<String>,
}

/// Parses `KEY=VALUE` lines: `#` comments, blank lines, an optional `export ` prefix and
/// matching surrounding quotes are accepted. Nothing is expanded or executed.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=VALUE", number + 1));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "line {}: invalid variable name {key:?}",
                number + 1
            ));
        }
        let mut value = value.trim();
        // A trailing comment after an unquoted value.
        if !value.starts_with(['"', '\''])
            && let Some(position) = value.find(" #")
        {
            value = value[..position].trim_end();
        }
        for quote in ['"', '\''] {
            if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
                value = &value[1..value.len() - 1];
            }
        }
        vars.insert(key.to_string(), value.to_string());
    }
    Ok(vars)
}

/// The null device, accepted as an explicit empty profile (`MCP_HUB_ENV_FILE=/dev/null`
/// runs without the production profile). It is not a regular file, so `is_file` refuses it.
const NULL_DEVICE: &str = "/dev/null";

/// Whether `path` can serve as a profile: a regular file, or the null device.
fn is_profile(path: &Path) -> bool {
    path.is_file() || path == Path::new(NULL_DEVICE)
}

impl EnvLayers {
    /// Resolves the layers from `process_env`. `default_base` / `default_local` are the
    /// file locations used when the variables are unset (hubctl passes its `deploy/` files;
    /// the bare server passes none). Missing explicit files are errors; missing defaults are
    /// skipped.
    pub fn resolve(
        process_env: impl IntoIterator<Item = (String, String)>,
        default_base: Option<&Path>,
        default_local: Option<&Path>,
    ) -> Result<EnvLayers, String> {
        let process: BTreeMap<String, String> = process_env
            .into_iter()
            .filter(|(key, _)| key.starts_with("MCP_HUB_"))
            .collect();
        let explicit = |name: &str| {
            process
                .get(name)
                .filter(|value| !value.trim().is_empty())
                .map(PathBuf::from)
        };
        let mut layers = EnvLayers::default();
        let base = match explicit("MCP_HUB_ENV_FILE") {
            Some(path) if !is_profile(&path) => {
                return Err(format!("Environment file not found: {}", path.display()));
            }
            Some(path) => Some(path),
            None => default_base.filter(|p| p.is_file()).map(Path::to_path_buf),
        };
        let local = match explicit("MCP_HUB_LOCAL_ENV_FILE") {
            Some(path) if !is_profile(&path) => {
                return Err(format!(
                    "Local environment file not found: {}",
                    path.display()
                ));
            }
            Some(path) => Some(path),
            None => default_local.filter(|p| p.is_file()).map(Path::to_path_buf),
        };
        let local = local.filter(|local| Some(local) != base.as_ref());
        for (label, path) in [("base", base), ("local", local)] {
            let Some(path) = path else { continue };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let vars = parse_env_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            layers.vars.extend(vars);
            layers
                .loaded_files
                .push(format!("{label}:{}", path.display()));
        }
        layers.vars.extend(process);
        Ok(layers)
    }

    /// The trimmed value of `name`; an empty value counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }
}
