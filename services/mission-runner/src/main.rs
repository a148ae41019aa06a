//! mission-runner binary: read settings, start telemetry, serve until SIGTERM/SIGINT.

use mission_runner::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = runner_kit::env_map();
    let settings = Settings::from_env(&env)?;
    let telemetry =
        service_kit::telemetry::Telemetry::init(settings.runner.log_format, "mission-runner");
    let app = Application::build(settings)?;
    tracing::info!(port = app.port(), "mission-runner listening");
    let served = app.run_until_stopped().await;
    tracing::info!("mission-runner stopped");
    // Flush the spans still queued (bounded; a dead collector costs at most the timeout).
    telemetry.shutdown();
    served?;
    Ok(())
}
