//! Applying several layers at once.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::apply::{ApplyError, ApplyMode, ApplyOptions, LayerStats, apply_layer};

/// One layer to apply: its stream and the directory it goes to.
#[derive(Debug)]
pub struct LayerJob<R> {
    /// The layer stream (gzip, zstd or plain tar).
    pub reader: R,
    /// Where it goes; must exist.
    pub target: PathBuf,
}

/// Apply `jobs` with up to `threads` layers in flight (`0`: one per CPU).
///
/// In [`ApplyMode::Overlay`] layers are independent (each has its own
/// directory), so they are applied concurrently; each also decompresses on
/// a helper thread. Each is applied on its own, as docker's overlay2 driver
/// does: for containerd's and umoci's tree (a member below a lower layer's
/// symlink lands where it points), pass [`ApplyOptions::footprint`] and
/// settle each result against the layers below with
/// [`Footprint::settle`](crate::Footprint::settle), as basic-image-store's
/// pull does. In [`ApplyMode::Flatten`] the order matters, so jobs
/// run one after another and stop at the first failure: the result then
/// ends with that failure.
///
/// The results are in the order of `jobs`.
pub fn apply_layers_parallel<R: Read + Send>(
    jobs: Vec<LayerJob<R>>,
    options: &ApplyOptions,
    threads: usize,
) -> Vec<Result<LayerStats, ApplyError>> {
    if options.mode() == ApplyMode::Flatten {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let r = apply_layer(job.reader, &job.target, options);
            let failed = r.is_err();
            out.push(r);
            if failed {
                break;
            }
        }
        return out;
    }
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
    .min(jobs.len().max(1));
    let count = jobs.len();
    let queue = Mutex::new(jobs.into_iter().enumerate());
    let results: Mutex<Vec<Option<Result<LayerStats, ApplyError>>>> =
        Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some((i, job)) = next else { break };
                    let r = apply_layer(job.reader, &job.target, options);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or(Err(ApplyError::Panicked)))
        .collect()
}
