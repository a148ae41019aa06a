//! auth-internal binary: load settings, start, serve until SIGTERM/SIGINT.

use auth_internal::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    service_kit::telemetry::init(settings.log_format);
    let bind = settings.bind_addr.clone();
    let app = Application::build(settings).await?;
    tracing::info!(bind = %bind, port = app.port(), "auth-internal listening");
    app.run_until_signalled().await?;
    tracing::info!("auth-internal stopped");
    Ok(())
}
