//! The startup warning for `MCP_HUB_*` variables that are not in the table (a typo, or a
//! setting for a feature this build does not have), with the closest known name.

use super::{EnvLayers, VARIABLES, variable};

/// Levenshtein distance over bytes (variable names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Names further than this from every known variable get no suggestion.
const SUGGESTION_DISTANCE: usize = 2;

/// One warning for each `MCP_HUB_*` variable in `env` that is not in the table, with the
/// closest known name when one is within a couple of edits.
pub fn unknown_variable_warnings(env: &EnvLayers) -> Vec<String> {
    env.vars
        .keys()
        .filter(|name| name.starts_with("MCP_HUB_") && variable(name).is_none())
        .map(|name| {
            let closest = VARIABLES
                .iter()
                .map(|v| (edit_distance(name, v.name), v.name))
                .min_by_key(|(distance, _)| *distance)
                .filter(|(distance, _)| *distance <= SUGGESTION_DISTANCE);
            match closest {
                Some((_, known)) => {
                    format!("{name} is not a known variable; did you mean {known}?")
                }
                None => format!("{name} is not a known variable; it is ignored"),
            }
        })
        .collect()
}
