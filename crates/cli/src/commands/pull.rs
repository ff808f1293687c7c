//! `pull`: docker's progress lines, redrawn in place on a terminal. A registry
//! that sends nothing for a few seconds shows as "Waiting" with how long.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use basic_image_store::{Fetching, LayerStatus, PullEvent, PullOptions, PullReport, short_id};
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
    let display = Mutex::new(Display::new(output, reference.registry()));
    let report = basic_image_store::pull(&store, &client, reference, &options, |event| {
        display
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .show(event)
    })
    .await;
    display.lock().unwrap_or_else(|e| e.into_inner()).finish();
    let report = report.with_context(|| format!("pulling {}", reference.familiar()))?;
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
    registry: String,
    bars: Option<MultiProgress>,
    layers: HashMap<String, Row>,
    /// The line saying the manifest or config is late, with its label.
    waiting: Option<(String, Row)>,
}

/// In plain output a wait is reported when it starts, then every this many seconds.
const PLAIN_WAIT_EVERY: u64 = 5;

/// One line of the display: a layer's, or the registry's while it is late.
struct Row {
    bar: Option<ProgressBar>,
    last: String,
}

impl Display {
    fn new(output: Output, registry: &str) -> Self {
        let target = match output {
            Output::Stderr => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::stdout(),
        };
        let bars = output
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(target));
        Display {
            output,
            registry: registry.to_string(),
            bars,
            layers: HashMap::new(),
            waiting: None,
        }
    }

    fn show(&mut self, event: PullEvent) {
        if self.output == Output::Quiet {
            return;
        }
        match event {
            PullEvent::Waiting {
                fetching: Fetching::Layer { digest },
                silent,
            } => self.layer_waiting(&digest, silent),
            PullEvent::Waiting { fetching, silent } => self.registry_waiting(&fetching, silent),
            PullEvent::Layer { digest, status } => {
                self.done_waiting();
                self.layer_status(&digest, &status);
            }
            _ => self.done_waiting(),
        }
    }

    fn layer_status(&mut self, digest: &str, status: &LayerStatus) {
        let text = describe(status);
        let output = self.output;
        let (id, layer) = self.layer(digest);
        match &layer.bar {
            Some(bar) => bar.set_message(text),
            None => {
                // Plain output: one line per state, not one per chunk.
                let state = text.split(' ').next().unwrap_or_default().to_string();
                if state != layer.last {
                    output.line(&format!("{id}: {}", plain(status)));
                    layer.last = state;
                }
            }
        }
    }

    /// A layer whose bytes stopped coming: "Waiting 7s" in its row.
    fn layer_waiting(&mut self, digest: &str, silent: Duration) {
        let output = self.output;
        let (id, layer) = self.layer(digest);
        layer.wait(output, &format!("{id}: "), silent);
    }

    /// The manifest or config is late: one line for the registry.
    fn registry_waiting(&mut self, fetching: &Fetching, silent: Duration) {
        let what = match fetching {
            Fetching::Config { digest } => format!("config {}", short_id(digest)),
            _ => "manifest".to_string(),
        };
        let label = format!("{what} from {}", self.registry);
        if self.waiting.as_ref().is_some_and(|(l, _)| *l != label) {
            self.done_waiting();
        }
        let bars = self.bars.as_ref();
        let output = self.output;
        let (_, row) = self
            .waiting
            .get_or_insert_with(|| (label.clone(), Row::new(bars, &label)));
        row.wait(output, &format!("{label}: "), silent);
    }

    fn done_waiting(&mut self) {
        if let Some((_, Row { bar: Some(bar), .. })) = self.waiting.take() {
            bar.finish_and_clear();
        }
    }

    /// The row of `digest`, made on first use.
    fn layer(&mut self, digest: &str) -> (String, &mut Row) {
        let id = short_id(digest).to_string();
        let bars = self.bars.as_ref();
        let layer = self
            .layers
            .entry(id.clone())
            .or_insert_with(|| Row::new(bars, &id));
        (id, layer)
    }

    fn finish(&mut self) {
        self.done_waiting();
        for layer in self.layers.values() {
            if let Some(bar) = &layer.bar {
                bar.finish();
            }
        }
    }
}

impl Row {
    fn new(bars: Option<&MultiProgress>, prefix: &str) -> Self {
        Row {
            bar: bars.map(|m| {
                let bar = m.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template("{prefix}: {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix(prefix.to_string());
                bar
            }),
            last: String::new(),
        }
    }

    /// Shows "Waiting Ns": in place on a terminal; in plain output when the
    /// wait starts and then every few seconds, not every second.
    fn wait(&mut self, output: Output, prefix: &str, silent: Duration) {
        let secs = silent.as_secs();
        let text = format!("Waiting {secs}s");
        match &self.bar {
            Some(bar) => bar.set_message(text),
            None => {
                if self.last != "Waiting" || secs.is_multiple_of(PLAIN_WAIT_EVERY) {
                    output.line(&format!("{prefix}{text}"));
                    self.last = "Waiting".to_string();
                }
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
