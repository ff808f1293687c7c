//! `login` and `logout`, storing credentials where docker does.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use basic_registry::{Credentials, normalize_registry};

use crate::cli::{GlobalOptions, LoginArgs, LogoutArgs};

const DOCKER_HUB: &str = "docker.io";

/// Verifies the credentials against the registry, then stores them.
pub async fn login(global: &GlobalOptions, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let registry = normalize_registry(args.server.as_deref().unwrap_or(DOCKER_HUB));
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let username = match args.username {
        Some(u) => u,
        None => prompt("Username: ", false)?,
    };
    let password = match (args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => p,
        (None, true) => read_password_stdin()?,
        (None, false) => prompt("Password: ", true)?,
    };
    if username.is_empty() {
        bail!("username is required to log in to {registry}");
    }
    if password.is_empty() {
        bail!("password is required to log in to {registry}");
    }
    let credentials = Credentials::Basic { username, password };
    let client = super::registry_client(global)?;
    client.login(&registry, &credentials).await?;
    let store = super::credential_store(global);
    store
        .store(&registry, &credentials)
        .with_context(|| format!("storing credentials for {registry}"))?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// Removes stored credentials for a registry.
pub fn logout(global: &GlobalOptions, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let registry = normalize_registry(args.server.as_deref().unwrap_or(DOCKER_HUB));
    super::credential_store(global)
        .erase(&registry)
        .with_context(|| format!("removing credentials for {registry}"))?;
    println!("Removing login credentials for {registry}");
    Ok(ExitCode::SUCCESS)
}

/// `--password-stdin`: the whole of stdin, without its trailing newline, as docker does.
fn read_password_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Asks on the terminal; the password without echo.
fn prompt(label: &str, secret: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "cannot prompt for the {} without a terminal: use -u and --password-stdin",
            label.trim_end_matches(": ").to_lowercase()
        );
    }
    if secret {
        return rpassword::prompt_password(label).context("reading the password");
    }
    eprint!("{label}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
