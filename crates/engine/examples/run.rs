//! Pulls an image when the store lacks it and runs a container from it in the foreground,
//! through `basic-engine`: `run IMAGE [COMMAND...]`, with the store in
//! `$BASIC_ENGINE_ROOT` (default `/tmp/basic-engine-example`).
//!
//! ```sh
//! cargo run -p basic-engine --example run -- 127.0.0.1:5000/library/busybox echo hello
//! ```

use anyhow::Context as _;
use basic_engine::config::{ContainerConfig, HostConfig};
use basic_engine::{Attachment, CreateOptions, Engine, EngineError, EngineOptions};
use basic_image_store::PullOptions;
use basic_registry::{Reference, RegistryClient};

fn main() -> anyhow::Result<()> {
    // First, before any thread: no container may overwrite this program (CVE-2019-5736).
    basic_runtime::sealed_exe::ensure()?;
    let mut args = std::env::args().skip(1);
    let image = args.next().context("usage: run IMAGE [COMMAND...]")?;
    let command: Vec<String> = args.collect();
    let root =
        std::env::var_os("BASIC_ENGINE_ROOT").unwrap_or_else(|| "/tmp/basic-engine-example".into());
    let engine = Engine::open(EngineOptions {
        root: root.into(),
        state: "/run/basic-engine-example".into(),
        // Foreground only: no detached supervisor to start.
        supervisor: None,
    })?;
    let config = ContainerConfig {
        image: Some(image.clone()),
        cmd: (!command.is_empty()).then_some(command),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            auto_remove: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateOptions {
        keep_root_mounted: true,
        ..Default::default()
    };
    let created = match engine.create(config.clone(), &options) {
        Err(EngineError::NoSuchImage(_)) => {
            pull(&engine, &image)?;
            engine.create(config, &options)?
        }
        other => other?,
    };
    for warning in &created.warnings {
        eprintln!("WARNING: {warning}");
    }
    let code = engine.supervise(created.container.id(), Attachment::Foreground)?;
    std::process::exit(code);
}

/// Pulls on a runtime of one thread, gone before the container is forked.
fn pull(engine: &Engine, image: &str) -> anyhow::Result<()> {
    let reference = Reference::parse(image)?;
    let client = RegistryClient::builder().build()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(basic_image_store::pull(
        engine.store(),
        &client,
        &reference,
        &PullOptions::default(),
        |_| {},
    ))?;
    eprintln!("pulled {} as {}", reference.familiar(), report.image_id);
    Ok(())
}
