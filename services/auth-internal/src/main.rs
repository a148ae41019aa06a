//! auth-internal binary: load settings, start, serve until SIGTERM/SIGINT;
//! or run an administrative subcommand (`auth-internal operator add EMAIL`).

use auth_internal::{
    Application, Settings,
    cli::{self, Command},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => fail(&e),
    };
    match command {
        Command::Serve => {}
        Command::Help => {
            println!("{}", cli::USAGE);
            return Ok(());
        }
        Command::OperatorAdd { email } => {
            let done = async {
                let settings = Settings::load()?;
                let password = cli::read_password()?;
                cli::add_operator(&settings, &email, password).await
            };
            match done.await {
                Ok(line) => println!("{line}"),
                Err(e) => fail(&e),
            }
            return Ok(());
        }
    }
    let settings = Settings::load()?;
    let telemetry = service_kit::telemetry::Telemetry::init(settings.log_format, "auth-internal");
    let bind = settings.bind_addr.clone();
    let app = Application::build(settings).await?;
    tracing::info!(bind = %bind, port = app.port(), "auth-internal listening");
    let served = app.run_until_signalled().await;
    tracing::info!("auth-internal stopped");
    // Flush the spans still queued (bounded; a dead collector costs at most the timeout).
    telemetry.shutdown();
    served?;
    Ok(())
}

/// A subcommand's error: one line on stderr, exit status 2.
fn fail(e: &cli::CliError) -> ! {
    eprintln!("auth-internal: {e}");
    std::process::exit(2)
}
