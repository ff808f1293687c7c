//! `push`: docker's push output, one line per layer state change.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Mutex;

use basic_image_store::{PushEvent, PushOptions, PushStatus};
use basic_registry::Reference;

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
        let display = Mutex::new(Display {
            quiet,
            terminal: std::io::stdout().is_terminal(),
            last: HashMap::new(),
        });
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
        .await?;
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

/// Prints each layer's state when it changes; on a terminal also its upload
/// progress, redrawn on one line.
struct Display {
    quiet: bool,
    terminal: bool,
    last: HashMap<String, String>,
}

impl Display {
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
                if self.terminal {
                    print!(
                        "\r{id}: Pushing  {}/{}\x1b[K",
                        human_size(*current),
                        human_size(*total)
                    );
                    let _ = std::io::stdout().flush();
                }
                return;
            }
            PushStatus::Pushed => "Pushed".to_string(),
            PushStatus::AlreadyExists => "Layer already exists".to_string(),
            PushStatus::MountedFrom(from) => format!("Mounted from {from}"),
            _ => return,
        };
        if self.last.get(&id) == Some(&text) {
            return;
        }
        if self.terminal {
            print!("\r\x1b[K");
        }
        println!("{id}: {text}");
        self.last.insert(id, text);
    }
}
