//! The hub's typed vocabulary and its pure rules: no I/O, no SQL, no MCP. Store rows and
//! tool arguments convert to these types at the edges; services apply the rules.

pub mod artifact;
pub mod ballot;
pub mod cursor;
pub mod done_gate;
pub mod observability;
pub mod role;
pub mod task;
pub mod task_rules;
pub mod text;
