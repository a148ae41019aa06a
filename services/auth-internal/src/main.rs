//! auth-internal binary: load settings, start, serve until SIGTERM/SIGINT.

use auth_internal::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let telemetry = service_kit::telemetry::Telemetry::init(settings.log_format, "auth-internal");
    let bind = settings.bind_addr.clone();
    let app = Application::build(settings).await?;
    tracing::info!(bind = %bind, port = app.port(), "auth-internal listening");
    let served = app.run_until_stopped().await;
    tracing::info!("auth-internal stopped");
    // Flush the spans still queued (bounded; a dead collector costs at most the timeout).
    telemetry.shutdown();
    served?;
    Ok(())
}
