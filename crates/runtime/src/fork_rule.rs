//! The fork rule: **basic-runtime forks container processes only from a single-threaded
//! process.**
//!
//! Between `fork` and `exec` the container's processes run a good deal of this library
//! (they build the root filesystem, read files, allocate). A forked child has only the
//! thread that forked; every lock another thread held at that moment (the allocator's, a
//! `Mutex`, stdio's) stays locked forever in the child, which then hangs before it ever
//! runs the container's command, and memory other threads were changing may be half
//! written. POSIX allows only async-signal-safe calls in such a child. runc avoids the
//! problem by re-executing a small init; this library checks instead:
//! [`Container::start`](crate::Container::start), [`Container::run`](crate::Container::run),
//! [`Container::create`](crate::Container::create) and [`Exec`](crate::exec::Exec) count
//! the threads of the calling process first and refuse with
//! [`ForkRuleError::Threads`] when there is more than one.
//!
//! The check is exact: a process with one thread cannot gain another except by that
//! thread's own doing, so nothing can change between the check and the fork.
//!
//! What that means for a caller:
//! - fork before starting threads: an async runtime, a thread pool or a relay thread
//!   starts after [`Container::start`](crate::Container::start) has returned (the
//!   container's processes are forked by then) and is joined before the next container
//!   starts; [`Supervisor`](crate::supervisor::Supervisor) works that way;
//! - or run containers from a process of their own (an engine's supervisor process, the
//!   `basic-runtime` binary), started from the threaded program with `posix_spawn`-like
//!   means (`std::process::Command`), which are safe there.
//!
//! A caller that accepts the risk (a test harness, whose other threads are other tests)
//! can say so with `allow_multithreaded_fork(true)` on
//! [`ContainerBuilder`](crate::ContainerBuilder::allow_multithreaded_fork) and
//! [`ExecBuilder`](crate::exec::ExecBuilder::allow_multithreaded_fork).

use std::path::PathBuf;
use std::time::Duration;

/// The process-wide thread count, as the kernel keeps it.
const STATUS: &str = "/proc/self/status";

/// Why a fork was refused.
#[derive(Debug, thiserror::Error)]
pub enum ForkRuleError {
    /// The calling process has other threads.
    #[error(
        "this process runs {threads} threads, but basic-runtime forks container processes \
         only from a single-threaded process: start threads (async runtimes, relays) after \
         the container's processes are forked (Container::start), or run containers from a \
         process of their own"
    )]
    Threads {
        /// How many threads the process has.
        threads: usize,
    },
    /// The thread count could not be read.
    #[error(
        "reading {path} to check that this process is single-threaded before forking \
         container processes"
    )]
    Count {
        /// The file read.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How many threads this process has (the `Threads:` line of `/proc/self/status`).
pub fn thread_count() -> Result<usize, ForkRuleError> {
    let err = |source| ForkRuleError::Count {
        path: PathBuf::from(STATUS),
        source,
    };
    let status = std::fs::read_to_string(STATUS).map_err(err)?;
    parse_threads(&status).ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no Threads: line",
        ))
    })
}

fn parse_threads(status: &str) -> Option<usize> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Ok when this process is single-threaded, as the fork rule requires.
///
/// A thread that was just joined is still counted for a moment, until the kernel has
/// released it (`pthread_join` returns when its stack may be reused, a little before
/// that); the count is therefore read again for a few milliseconds before refusing. A
/// [`crate::cgroups::warm_up_migration`] thread of this process is waited for first.
pub fn check() -> Result<(), ForkRuleError> {
    const SETTLE: Duration = Duration::from_millis(1);
    crate::cgroups::finish_warm_up();
    let mut threads = thread_count()?;
    for _ in 0..20 {
        if threads == 1 {
            return Ok(());
        }
        std::thread::sleep(SETTLE);
        threads = thread_count()?;
    }
    match threads {
        1 => Ok(()),
        threads => Err(ForkRuleError::Threads { threads }),
    }
}

/// [`check`], unless the caller accepted the risk of forking from a threaded process.
pub(crate) fn enforce(allow_multithreaded: bool) -> Result<(), ForkRuleError> {
    match allow_multithreaded {
        true => Ok(()),
        false => check(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_count_is_read_from_the_status_line() {
        let status = "Name:\tx\nUmask:\t0022\nThreads:\t3\nSigQ:\t0/1\n";
        assert_eq!(parse_threads(status), Some(3));
        assert_eq!(parse_threads("Name:\tx\n"), None);
    }

    #[test]
    fn a_test_harness_thread_is_not_alone_and_is_refused() {
        // libtest runs this test in a thread of its own, beside the main thread.
        assert!(thread_count().unwrap() >= 2);
        let e = check().unwrap_err();
        assert!(
            e.to_string()
                .contains("only from a single-threaded process"),
            "{e}"
        );
        assert!(enforce(true).is_ok());
    }
}
