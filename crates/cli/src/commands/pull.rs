//! `pull`: docker's progress lines, redrawn in place on a terminal.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Mutex;

use basic_image_store::{LayerStatus, PullEvent, PullOptions, PullReport, short_id};
use basic_registry::{Platform, Reference};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::format::human_size;
use super::{image_store, registry_client};
use crate::cli::{GlobalOptions, PullArgs};

/// `pull [--platform P] [-q] REF`.
pub async fn pull(global: &GlobalOptions, args: PullArgs) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(&args.reference)?;
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let output = if args.quiet {
        Output::Quiet
    } else {
        Output::Stdout
    };
    pull_image(
        global,
        &reference,
        platform,
        args.max_concurrent_downloads,
        output,
    )
    .await?;
    if args.quiet {
        println!("{reference}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Pulls for `run`, with the progress on stderr (stdout is the container's).
pub async fn pull_to_stderr(
    global: &GlobalOptions,
    reference: &Reference,
    platform: Option<Platform>,
) -> anyhow::Result<PullReport> {
    pull_image(
        global,
        reference,
        platform,
        PullOptions::default().concurrency,
        Output::Stderr,
    )
    .await
}

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Quiet,
    Stdout,
    Stderr,
}

impl Output {
    fn line(self, text: &str) {
        match self {
            Output::Quiet => {}
            Output::Stdout => println!("{text}"),
            Output::Stderr => eprintln!("{text}"),
        }
    }

    fn is_terminal(self) -> bool {
        match self {
            Output::Quiet => false,
            Output::Stdout => std::io::stdout().is_terminal(),
            Output::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

async fn pull_image(
    global: &GlobalOptions,
    reference: &Reference,
    platform: Option<Platform>,
    concurrency: usize,
    output: Output,
) -> anyhow::Result<PullReport> {
    let mut options = PullOptions::default().concurrency(concurrency);
    if let Some(p) = platform {
        options = options.platform(p);
    }
    let store = image_store(global)?;
    let client = registry_client(global)?;
    let what = reference.tag().or(reference.digest()).unwrap_or("latest");
    output.line(&format!("{what}: Pulling from {}", reference.repository()));
    let display = Mutex::new(Display::new(output));
    let report = basic_image_store::pull(&store, &client, reference, &options, |event| {
        display
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .show(event)
    })
    .await;
    display.lock().unwrap_or_else(|e| e.into_inner()).finish();
    // Every pull error but a layer's names the image already: said once.
    let report = report.map_err(|e| match e {
        e @ basic_image_store::PullError::Layer { .. } => {
            anyhow::Error::new(e).context(format!("pulling {}", reference.familiar()))
        }
        e => e.into(),
    })?;
    output.line(&format!("Digest: {}", report.repo_digest));
    let status = if report.up_to_date {
        "Image is up to date for"
    } else {
        "Downloaded newer image for"
    };
    output.line(&format!("Status: {status} {}", reference.familiar()));
    if output != Output::Quiet {
        output.line(&reference.to_string());
    }
    Ok(report)
}

/// Renders events: bars redrawn in place on a terminal, one line per change otherwise.
struct Display {
    output: Output,
    bars: Option<MultiProgress>,
    layers: HashMap<String, Layer>,
}

struct Layer {
    bar: Option<ProgressBar>,
    last: String,
}

impl Display {
    fn new(output: Output) -> Self {
        let target = match output {
            Output::Stderr => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::stdout(),
        };
        let bars = output
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(target));
        Display {
            output,
            bars,
            layers: HashMap::new(),
        }
    }

    fn show(&mut self, event: PullEvent) {
        if self.output == Output::Quiet {
            return;
        }
        let PullEvent::Layer { digest, status } = event else {
            return;
        };
        let id = short_id(&digest).to_string();
        let text = describe(&status);
        let bars = self.bars.as_ref();
        let layer = self.layers.entry(id.clone()).or_insert_with(|| Layer {
            bar: bars.map(|m| {
                let bar = m.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template("{prefix}: {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix(id.clone());
                bar
            }),
            last: String::new(),
        });
        match &layer.bar {
            Some(bar) => bar.set_message(text),
            None => {
                // Plain output: one line per state, not one per chunk.
                let state = text.split(' ').next().unwrap_or_default().to_string();
                if state != layer.last {
                    self.output.line(&format!("{id}: {}", plain(&status)));
                    layer.last = state;
                }
            }
        }
    }

    fn finish(&mut self) {
        for layer in self.layers.values() {
            if let Some(bar) = &layer.bar {
                bar.finish();
            }
        }
    }
}

/// The text of a status, with a bar while downloading.
fn describe(status: &LayerStatus) -> String {
    match status {
        LayerStatus::Downloading { current, total } => {
            let width = 50usize;
            let done = if *total == 0 {
                width
            } else {
                ((*current as f64 / *total as f64) * width as f64) as usize
            }
            .min(width);
            let bar = format!(
                "{}>{}",
                "=".repeat(done.saturating_sub(1)),
                " ".repeat(width - done)
            );
            format!(
                "Downloading [{bar}]  {}/{}",
                human_size(*current),
                human_size(*total)
            )
        }
        other => plain(other).to_string(),
    }
}

/// Docker's words for each state.
fn plain(status: &LayerStatus) -> &'static str {
    match status {
        LayerStatus::Waiting => "Pulling fs layer",
        LayerStatus::AlreadyExists => "Already exists",
        LayerStatus::Downloading { .. } => "Downloading",
        LayerStatus::Verifying => "Verifying Checksum",
        LayerStatus::DownloadComplete => "Download complete",
        LayerStatus::Extracting => "Extracting",
        LayerStatus::PullComplete => "Pull complete",
    }
}
