//! Integration tests: each starts a real hub on 127.0.0.1:0 and talks to it over HTTP with
//! rmcp's MCP client (or raw HTTP where the wire itself is under test). One binary keeps
//! link time down.

mod harness;

mod events;

mod agents;
mod arguments;
mod artifacts;
mod authz;
mod ballot;
mod blobs;
mod bookkeeping;
mod consensus;
mod context;
mod http_surface;
mod live;
mod messages;
mod observability;
mod prompts;
mod replicas;
mod resources;
mod surface;
mod tasks;
mod wire;
