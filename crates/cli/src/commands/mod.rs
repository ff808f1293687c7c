//! One module per verb; `run` dispatches.

mod login;
mod manifest;

use std::process::ExitCode;

use anyhow::Context as _;
use basic_registry::{CredentialStore, RegistryClient};

use crate::cli::{Cli, Command, GlobalOptions, ManifestCommand};

/// Runs a parsed command line, returning the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Manifest(ManifestCommand::Inspect(args)) => {
            manifest::inspect(&cli.global, args).await
        }
        Command::Login(args) => login::login(&cli.global, args).await,
        Command::Logout(args) => login::logout(&cli.global, args),
    }
}

/// Docker's credential store, at `--config` when given.
pub fn credential_store(global: &GlobalOptions) -> CredentialStore {
    match &global.config {
        Some(dir) => CredentialStore::at(dir.join("config.json")),
        None => CredentialStore::from_env(),
    }
}

/// A registry client with the user's credentials and insecure registries.
pub fn registry_client(global: &GlobalOptions) -> anyhow::Result<RegistryClient> {
    let mut builder = RegistryClient::builder()
        .credential_store(credential_store(global))
        .user_agent(concat!("basic-docker/", env!("CARGO_PKG_VERSION")));
    for registry in &global.insecure_registries {
        builder = builder.insecure_registry(registry);
    }
    builder.build().context("setting up the registry client")
}
