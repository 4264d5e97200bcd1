//! One module per hubctl subcommand.

pub mod bench;
pub mod bench_claims;
pub mod bench_cpu;
pub mod bench_messages;
pub mod bench_ping;
pub mod bench_report;
pub mod bench_runner;
pub mod bench_suite;
pub mod bench_tokens;
pub mod bench_wake;
pub mod clean;
pub mod db;
pub mod docker;
pub mod logs;
pub mod observe;
pub mod report;
pub mod serve;
pub mod smoke;
pub mod start;
pub mod status;
pub mod stop;
