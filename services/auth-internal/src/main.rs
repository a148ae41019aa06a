//! auth-internal binary: load settings, start, serve until SIGTERM/SIGINT;
//! or run an administrative subcommand (`auth-internal operator add EMAIL`).

use auth_internal::{
    Application, Settings,
    cli::{self, Command},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::parse(&args)? {
        Command::Serve => {}
        Command::Help => {
            println!("{}", cli::USAGE);
            return Ok(());
        }
        Command::OperatorAdd { email } => {
            let settings = Settings::load()?;
            let password = cli::read_password()?;
            println!("{}", cli::add_operator(&settings, &email, password).await?);
            return Ok(());
        }
    }
    let settings = Settings::load()?;
    service_kit::telemetry::init(settings.log_format);
    let bind = settings.bind_addr.clone();
    let app = Application::build(settings).await?;
    tracing::info!(bind = %bind, port = app.port(), "auth-internal listening");
    app.run_until_stopped().await?;
    tracing::info!("auth-internal stopped");
    Ok(())
}
