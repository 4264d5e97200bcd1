//! `hubctl serve` (hidden): run the hub in the foreground. `hubctl start` launches this in
//! the background, so one installed binary is enough to operate a hub.

use hub_server::config::{Config, EnvLayers};

pub async fn run() -> anyhow::Result<()> {
    // `start` already resolved the env files into this process's environment.
    let layers = EnvLayers::resolve(std::env::vars(), None, None).map_err(anyhow::Error::msg)?;
    let (config, warnings) = Config::load(&layers).map_err(anyhow::Error::msg)?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    hub_server::run_until_signal(config, &[]).await
}
