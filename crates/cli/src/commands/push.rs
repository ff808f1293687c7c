//! `push`: docker's push output: rows redrawn in place on a terminal, one line per
//! layer state change otherwise.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Mutex;

use basic_image_store::{PushEvent, PushOptions, PushStatus};
use basic_registry::Reference;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::format::human_size;
use super::{image_store, registry_client};
use crate::cli::{GlobalOptions, PushArgs};

/// `push [-a] [-q] NAME[:TAG]`.
pub async fn push(global: &GlobalOptions, args: PushArgs) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(&args.reference)?;
    let store = image_store(global)?;
    let client = registry_client(global)?;
    let references = if args.all_tags {
        let explicit_tag = args
            .reference
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
        anyhow::ensure!(
            !explicit_tag && reference.digest().is_none(),
            "tag can't be used with --all-tags/-a"
        );
        let tags = store.repository_tags(&reference)?;
        anyhow::ensure!(
            !tags.is_empty(),
            "An image does not exist locally with the tag: {}",
            args.reference
        );
        tags
    } else {
        vec![reference.clone()]
    };
    let quiet = args.quiet;
    if !quiet {
        println!(
            "The push refers to repository [{}/{}]",
            reference.registry(),
            reference.repository()
        );
    }
    for reference in &references {
        let display = Mutex::new(Display::new(quiet));
        let report = basic_image_store::push(
            &store,
            &client,
            reference,
            &PushOptions::default(),
            |event| {
                display
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .show(event)
            },
        )
        .await;
        display.lock().unwrap_or_else(|e| e.into_inner()).finish();
        let report = report?;
        if quiet {
            println!("{reference}");
        } else {
            println!(
                "{}: digest: {} size: {}",
                report.tag, report.digest, report.size
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Renders events: on a terminal one row per layer, redrawn in place (with the bytes
/// sent while pushing); otherwise one line per state change, as docker prints them.
struct Display {
    quiet: bool,
    bars: Option<MultiProgress>,
    rows: HashMap<String, Row>,
}

struct Row {
    bar: Option<ProgressBar>,
    last: String,
}

impl Display {
    fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::stdout().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        Display {
            quiet,
            bars,
            rows: HashMap::new(),
        }
    }

    fn show(&mut self, event: PushEvent) {
        if self.quiet {
            return;
        }
        let PushEvent::Layer { id, status } = event else {
            return;
        };
        let text = match &status {
            PushStatus::Preparing => "Preparing".to_string(),
            PushStatus::Waiting => "Waiting".to_string(),
            PushStatus::Compressing => "Compressing".to_string(),
            PushStatus::Pushing { current, total } => {
                format!("Pushing  {}/{}", human_size(*current), human_size(*total))
            }
            PushStatus::Pushed => "Pushed".to_string(),
            PushStatus::AlreadyExists => "Layer already exists".to_string(),
            PushStatus::MountedFrom(from) => format!("Mounted from {from}"),
            _ => return,
        };
        let bars = self.bars.as_ref();
        let row = self.rows.entry(id.clone()).or_insert_with(|| Row {
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
        match &row.bar {
            Some(bar) => bar.set_message(text),
            // Plain output: one line per state, not one per chunk sent.
            None => {
                let state = text.split(' ').next().unwrap_or_default().to_string();
                if state != row.last && !matches!(status, PushStatus::Pushing { .. }) {
                    println!("{id}: {text}");
                }
                row.last = state;
            }
        }
    }

    fn finish(&mut self) {
        for row in self.rows.values() {
            if let Some(bar) = &row.bar {
                bar.finish();
            }
        }
    }
}
