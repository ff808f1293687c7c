//! `build`: a Dockerfile and its context made into an image, with docker's classic
//! builder's output; base images missing from the store are pulled first.

use std::collections::BTreeMap;
use std::io::{self, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use basic_build::{BuildOptions, Context, base_images, build as run_build, check_platform};
use basic_image_store::LayerCompression;
use basic_registry::Reference;
use clap::Args;

use super::engine;
use crate::cli::GlobalOptions;

/// `build [-t NAME]... [-f FILE] [--build-arg K=V]... [--target STAGE] [--no-cache]
/// [--network MODE] [-q] CONTEXT|-`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format
    #[arg(short, long = "tag", value_name = "NAME")]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (Default is 'PATH/Dockerfile')
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_arg: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Set the networking mode for the RUN instructions during build: none, host or bridge
    #[arg(long, default_value = "bridge")]
    pub network: String,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Always attempt to pull a newer version of the base images
    #[arg(long)]
    pub pull: bool,
    /// Set platform if server is multi-platform capable (only the host's: RUN executes here)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Compression of new layers: gzip or zstd
    #[arg(long, default_value = "gzip")]
    pub compression: LayerCompression,
    /// The build context: a directory, or `-` for a Dockerfile on standard input
    pub context: String,
}

/// Builds; a failed `RUN` ends with its code, as docker's does.
pub async fn build(global: &GlobalOptions, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let mut build_args = BTreeMap::new();
    for pair in &args.build_arg {
        match pair.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), v.to_string()),
            // docker takes `--build-arg K` from the environment.
            None => match std::env::var(pair) {
                Ok(v) => build_args.insert(pair.clone(), v),
                Err(_) => continue,
            },
        };
    }
    for tag in &args.tag {
        let reference = Reference::parse(tag)
            .with_context(|| format!("invalid argument \"{tag}\" for \"-t, --tag\" flag"))?;
        if reference.digest().is_some() {
            bail!("invalid argument \"{tag}\" for \"-t, --tag\" flag: a tag, not a digest");
        }
    }
    let platform = match &args.platform {
        Some(p) => Some(check_platform(p)?),
        None => None,
    };
    let engine = engine(global)?;
    // A tar context from standard input is extracted here, and removed after.
    let mut scratch = None;
    let (dockerfile, name, context) = if args.context == "-" {
        let mut input = Vec::new();
        io::stdin()
            .read_to_end(&mut input)
            .context("reading the build context from standard input")?;
        if is_archive(&input) {
            let dir = engine
                .store()
                .tmp_dir()
                .join(format!("{}-build-context", std::process::id()));
            scratch = Some(Scratch(dir.clone()));
            let context = Context::extract(input.as_slice(), &dir)?;
            let file = args
                .file
                .clone()
                .unwrap_or_else(|| PathBuf::from("Dockerfile"));
            let (text, name) = read_dockerfile(&dir.join(&file))?;
            (text, name, context)
        } else {
            let text = String::from_utf8(input)
                .context("the Dockerfile on standard input is not UTF-8 text")?;
            (text, "Dockerfile".to_string(), Context::empty())
        }
    } else {
        let dir = PathBuf::from(&args.context);
        if !dir.is_dir() {
            bail!(
                "unable to prepare context: path {:?} not found",
                args.context
            );
        }
        let file = args.file.clone().unwrap_or_else(|| dir.join("Dockerfile"));
        let file = if file.is_relative() && args.file.is_some() && !file.exists() {
            dir.join(file)
        } else {
            file
        };
        let (text, name) = read_dockerfile(&file)?;
        (text, name, Context::open(&dir)?)
    };
    let epoch = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<i64>()
                .with_context(|| format!("SOURCE_DATE_EPOCH={t}: expected unix seconds"))
        })
        .transpose()?;
    for image in base_images(&dockerfile, &name, &build_args)? {
        // `--pull` fetches even what is present: the tag may have moved on.
        if args.pull || engine.find_image(&image).is_err() {
            let reference = Reference::parse(&image)?;
            let platform = platform.as_deref().map(str::parse).transpose()?;
            super::pull::pull_to_stderr(global, &reference, platform).await?;
        }
    }
    let options = BuildOptions {
        tags: args.tag,
        build_args,
        target: args.target,
        no_cache: args.no_cache,
        network: Some(args.network),
        quiet: args.quiet,
        compression: args.compression,
        source_date_epoch: epoch,
    };
    let mut out = io::stdout();
    let built = run_build(&engine, &dockerfile, &name, &context, &options, &mut out);
    drop(scratch);
    match built {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(
                u8::try_from(e.exit_code()).unwrap_or(1).max(1),
            ))
        }
    }
}

/// The Dockerfile's text and its name for messages.
fn read_dockerfile(file: &std::path::Path) -> anyhow::Result<(String, String)> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("unable to read the Dockerfile {}", file.display()))?;
    let name = file
        .file_name()
        .map_or("Dockerfile".into(), |n| n.to_string_lossy().into_owned());
    Ok((text, name))
}

/// Whether standard input holds an archive (plain tar, gzip or zstd) rather than a
/// Dockerfile, as docker tells them apart.
fn is_archive(input: &[u8]) -> bool {
    input.starts_with(&[0x1f, 0x8b])
        || input.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || input.get(257..262) == Some(b"ustar".as_slice())
}

/// An extracted context, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!("removing {}: {e}", self.0.display());
        }
    }
}
