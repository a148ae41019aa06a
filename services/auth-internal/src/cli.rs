//! Administrative subcommands of the `auth-internal` binary.
//!
//! `auth-internal operator add EMAIL` creates a console operator (or sets a
//! new password for an existing one, ending its sessions).
//!
//! Rules:
//! - The password never appears on the command line or in the environment:
//!   on a terminal it is prompted for twice without echo; otherwise exactly
//!   one line is read from standard input (so scripts can pipe it in).
//! - The same settings as the server (database, argon2 cost) apply, and
//!   migrations run first, so the command works on a fresh database.
//! - An email that belongs to a human or persona account is refused.

use std::{
    io::{BufRead, IsTerminal},
    time::Duration,
};

use secrecy::ExposeSecret;

use crate::{
    auth::password::Hasher,
    config::Settings,
    db::{self, operators},
};

/// Shortest accepted operator password.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A parsed subcommand.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the server (no arguments).
    Serve,
    OperatorAdd {
        email: String,
    },
    Help,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read the password: {0}")]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("database error: {0}")]
    Query(String),
    #[error("{0}")]
    App(#[from] crate::error::AppError),
}

pub const USAGE: &str = "usage:\n  auth-internal                      run the server\n  auth-internal operator add EMAIL   create a console operator (password from the terminal or one line of stdin)";

/// Parse the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, CliError> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => Ok(Command::Serve),
        ["-h" | "--help" | "help"] => Ok(Command::Help),
        ["operator", "add", email] => {
            let email = email.trim();
            if email.len() < 3 || !email.contains('@') || email.len() > 320 {
                return Err(CliError::Invalid(format!(
                    "{email:?} is not an email address"
                )));
            }
            Ok(Command::OperatorAdd {
                email: email.to_owned(),
            })
        }
        _ => Err(CliError::Usage(USAGE.to_owned())),
    }
}

/// Check a new operator password.
pub fn check_password(password: &str) -> Result<(), CliError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CliError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Read the password: prompted twice on a terminal, else one line of stdin.
pub fn read_password() -> Result<String, CliError> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("New operator password: ")?;
        let second = rpassword::prompt_password("Repeat the password: ")?;
        if first != second {
            return Err(CliError::Invalid("the passwords differ".into()));
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// Create (or re-password) the operator `email`; returns a line to print.
pub async fn add_operator(
    settings: &Settings,
    email: &str,
    password: String,
) -> Result<String, CliError> {
    check_password(&password)?;
    let url = settings.database_url.expose_secret().to_owned();
    db::run_migrations(
        &url,
        Duration::from_secs(settings.database.startup_timeout_secs),
    )
    .await?;
    let pool = db::build_pool(&url, &settings.database)?;
    let hash = Hasher::new(&settings.password)?.hash(password).await?;
    let mut conn = pool
        .get()
        .await
        .map_err(|e| CliError::Query(e.to_string()))?;
    match operators::upsert_operator(&mut conn, email, &hash)
        .await
        .map_err(|e| CliError::Query(e.to_string()))?
    {
        operators::OperatorUpsert::Created(id) => Ok(format!("operator {email} created ({id})")),
        operators::OperatorUpsert::PasswordChanged(id) => Ok(format!(
            "operator {email} exists ({id}): password changed, its sessions ended"
        )),
        operators::OperatorUpsert::OtherKind => Err(CliError::Invalid(format!(
            "{email} belongs to an account that is not an operator"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_the_subcommands() {
        assert_eq!(parse(&args(&[])).unwrap(), Command::Serve);
        assert_eq!(
            parse(&args(&["operator", "add", "op@mana.test"])).unwrap(),
            Command::OperatorAdd {
                email: "op@mana.test".into()
            }
        );
        assert!(matches!(
            parse(&args(&["operator", "add", "nope"])),
            Err(CliError::Invalid(_))
        ));
        assert!(matches!(
            parse(&args(&["operator"])),
            Err(CliError::Usage(_))
        ));
        assert!(check_password("short").is_err());
        assert!(check_password("long enough password").is_ok());
    }
}
