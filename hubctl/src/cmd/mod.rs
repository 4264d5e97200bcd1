//! One module per hubctl subcommand.

pub mod bench;
pub mod bench_claims;
pub mod bench_cpu;
pub mod bench_messages;
pub mod bench_ping;
pub mod bench_report;
pub mod bench_runner;
pub mod bench_suite;
pub mod bench_wake;
pub mod clean;
pub mod consensus_ab;
pub mod db;
pub mod docker;
pub mod kpi_round;
pub mod logs;
pub mod observe;
pub mod report;
pub mod round;
pub mod serve;
pub mod smart_swarm;
pub mod smoke;
pub mod start;
pub mod status;
pub mod stop;
pub mod swarm_backends;
pub mod wait_mode_ab;
