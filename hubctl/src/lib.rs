//! hubctl's reusable parts: the minimal MCP-over-HTTP client, shared with `hub-launch`
//! (which registers the agent it starts).

pub mod client;
