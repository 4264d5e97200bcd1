//! One module per hubctl subcommand.

pub mod bench;
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
