//! persona-runner binary: read settings, start telemetry, serve until SIGTERM/SIGINT.

use persona_runner::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = runner_kit::env_map();
    let settings = Settings::from_env(&env)?;
    let telemetry =
        service_kit::telemetry::Telemetry::init(settings.runner.log_format, "persona-runner");
    let app = Application::build(settings)?;
    tracing::info!(port = app.port(), "persona-runner listening");
    let served = app.run_until_stopped().await;
    tracing::info!("persona-runner stopped");
    // Flush the spans still queued (bounded; a dead collector costs at most the timeout).
    telemetry.shutdown();
    served?;
    Ok(())
}
