//! mission-runner binary: read settings, start telemetry, serve until SIGTERM/SIGINT.

use mission_runner::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = runner_kit::env_map();
    let settings = Settings::from_env(&env)?;
    service_kit::telemetry::init(settings.runner.log_format);
    let app = Application::build(settings)?;
    tracing::info!(port = app.port(), "mission-runner listening");
    app.run_until_stopped().await?;
    tracing::info!("mission-runner stopped");
    Ok(())
}
