//! How long a fetch may wait for a registry.
//!
//! Three limits, as docker users would expect of a pull: a connect timeout; an
//! idle timeout, which fails one attempt when nothing arrives for that long
//! (a response that keeps trickling in never trips it); and a total that bounds
//! one fetch across all its retries, counted from its last progress, so a
//! registry that accepts connections and then says nothing fails in seconds
//! rather than after every retry has waited in full.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::RegistryError;

/// How long to wait for a registry. See [`RegistryClientBuilder::timeouts`](crate::RegistryClientBuilder::timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection, TLS handshake included.
    pub connect: Duration,
    /// Waiting for a response, or for the next bytes of its body: this long
    /// with nothing received fails the attempt, which is then retried.
    pub idle: Duration,
    /// The longest one fetch (a manifest, a blob) goes without progress, over
    /// all its attempts. For a blob it counts from the last bytes received, so
    /// a download that keeps moving is never cut.
    pub total: Duration,
}

impl Default for Timeouts {
    /// 10 s to connect, 15 s of silence per attempt, 30 s without progress in
    /// all: a silent registry fails within half a minute.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            idle: Duration::from_secs(15),
            total: Duration::from_secs(30),
        }
    }
}

/// What the client was waiting for when time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// No connection could be established within the connect timeout.
    Connect,
    /// The request went unanswered: no response arrived.
    Answer,
    /// A response began, then its body stopped arriving.
    Data,
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stall::Connect => "no connection could be made",
            Stall::Answer => "the registry sent no answer",
            Stall::Data => "the registry stopped sending data",
        })
    }
}

/// One fetch's clock: what it fetches (for the error), when it last made
/// progress, and the limits it runs under.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    registry: String,
    what: String,
    timeouts: Timeouts,
    since: Instant,
}

impl Budget {
    /// Starts the clock for fetching `what` from `registry`.
    pub(crate) fn start(registry: &str, what: String, timeouts: Timeouts) -> Self {
        Budget {
            registry: registry.to_string(),
            what,
            timeouts,
            since: Instant::now(),
        }
    }

    /// The registry host the fetch talks to.
    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }

    /// Bytes arrived: the total counts from now on.
    pub(crate) fn progressed(&mut self) {
        self.since = Instant::now();
    }

    /// When the fetch gives up unless it makes progress first.
    pub(crate) fn deadline(&self) -> Instant {
        self.since + self.timeouts.total
    }

    /// Whether something taking `delay` would end past the deadline.
    pub(crate) fn cannot_wait(&self, delay: Duration) -> bool {
        Instant::now() + delay >= self.deadline()
    }

    /// Runs one network step (a request, the next chunk) for at most the idle
    /// timeout, and never past the deadline; `Err(stall)` when time ran out.
    pub(crate) async fn wait<F: Future>(&self, step: F, stall: Stall) -> Result<F::Output, Stall> {
        let limit = (Instant::now() + self.timeouts.idle).min(self.deadline());
        tokio::time::timeout_at(limit, step)
            .await
            .map_err(|_| stall)
    }

    /// Runs `step` until the deadline at most (reading an error's body).
    pub(crate) async fn within<F: Future>(&self, step: F) -> Option<F::Output> {
        tokio::time::timeout_at(self.deadline(), step).await.ok()
    }

    /// The error for a fetch that ran out of time waiting for `stall`.
    pub(crate) fn timed_out(&self, stall: Stall) -> RegistryError {
        RegistryError::TimedOut {
            registry: self.registry.clone(),
            what: self.what.clone(),
            after: self.since.elapsed(),
            stall,
        }
    }

    /// The error for a transport failure after the last retry: a connect
    /// timeout is this fetch timing out; anything else stays a transport error.
    pub(crate) fn transport(&self, url: &str, source: reqwest::Error) -> RegistryError {
        if source.is_timeout() {
            return self.timed_out(if source.is_connect() {
                Stall::Connect
            } else {
                Stall::Answer
            });
        }
        RegistryError::Http {
            url: url.to_string(),
            source,
        }
    }
}

/// `3s`, `12s`, or `0.5s` below ten seconds when not whole: how long, as a
/// person reads it.
pub(crate) fn seconds(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 && (secs * 10.0).round() % 10.0 != 0.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}s", secs.round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_seconds() {
        assert_eq!(seconds(Duration::from_millis(3004)), "3s");
        assert_eq!(seconds(Duration::from_millis(2999)), "3s");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5s");
        assert_eq!(seconds(Duration::from_millis(30_400)), "30s");
    }

    #[tokio::test]
    async fn a_step_is_cut_at_the_idle_timeout_or_the_deadline() {
        let timeouts = Timeouts {
            connect: Duration::from_secs(1),
            idle: Duration::from_millis(200),
            total: Duration::from_millis(300),
        };
        let budget = Budget::start("r", "blob".into(), timeouts);
        let started = Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(budget.wait(never, Stall::Answer).await, Err(Stall::Answer));
        assert!(started.elapsed() >= Duration::from_millis(200));
        let never = std::future::pending::<()>();
        assert_eq!(budget.wait(never, Stall::Data).await, Err(Stall::Data));
        let waited = started.elapsed();
        // Cut by the deadline (300 ms), not by a second idle timeout (400 ms).
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_millis(400));
        let message = budget.timed_out(Stall::Data).to_string();
        assert!(message.starts_with("r: timed out after"), "{message}");
    }
}
