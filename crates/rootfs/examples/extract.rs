//! Extract image layers with basic-rootfs.
//!
//! ```text
//! extract [--flatten | --with-lowers] [--jobs N] TARGET LAYER...
//! ```
//!
//! Overlay mode (the default) puts layer `i` in `TARGET/i` (layers are
//! extracted concurrently, `--jobs` at a time); `--with-lowers` does the
//! same in order, each layer applied with the ones below in view
//! (`ApplyOptions::lower_layers`); `--flatten` applies them in order onto
//! `TARGET`. Compression is detected from the magic bytes.

use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;

use basic_rootfs::{ApplyMode, ApplyOptions, LayerJob, apply_layers_parallel};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut mode = ApplyMode::Overlay;
    let mut with_lowers = false;
    let mut jobs = 0;
    let mut positional = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--flatten" => mode = ApplyMode::Flatten,
            "--with-lowers" => with_lowers = true,
            "--jobs" => jobs = args.next().and_then(|n| n.parse().ok()).unwrap_or(0),
            _ => positional.push(PathBuf::from(a)),
        }
    }
    if positional.len() < 2 {
        eprintln!("usage: extract [--flatten | --with-lowers] [--jobs N] TARGET LAYER...");
        return ExitCode::from(2);
    }
    let target = positional.remove(0);
    let mut work = Vec::new();
    for (i, layer) in positional.iter().enumerate() {
        let dir = match mode {
            ApplyMode::Overlay => target.join(i.to_string()),
            _ => target.clone(),
        };
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("extract: creating {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        let reader = match File::open(layer) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("extract: opening {}: {e}", layer.display());
                return ExitCode::FAILURE;
            }
        };
        work.push(LayerJob {
            reader,
            target: dir,
        });
    }
    let options = ApplyOptions::new(mode);
    let results = if with_lowers && mode == ApplyMode::Overlay {
        let mut lowers = Vec::new();
        let mut results = Vec::new();
        for job in work {
            let opts = options.clone().lower_layers(lowers.clone());
            results.push(basic_rootfs::apply_layer(job.reader, &job.target, &opts));
            lowers.push(job.target);
        }
        results
    } else {
        apply_layers_parallel(work, &options, jobs)
    };
    let mut status = ExitCode::SUCCESS;
    for (layer, result) in positional.iter().zip(results) {
        match result {
            Ok(stats) => println!(
                "{} {} entries={} files={} bytes={}",
                layer.display(),
                stats.diff_id,
                stats.entries,
                stats.files,
                stats.tar_bytes
            ),
            Err(e) => {
                let mut msg = format!("extract: {}: {e}", layer.display());
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                eprintln!("{msg}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
