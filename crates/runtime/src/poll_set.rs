//! One `poll(2)` over descriptors that several parts of a single-threaded loop register
//! (the supervisor's pump: the container's output, its input, the attach clients).

use std::os::fd::RawFd;

/// The descriptors of one round, each part remembering the indices it got.
#[derive(Debug, Default)]
pub(crate) struct PollSet {
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    /// Empties the set for the next round (keeping its allocation).
    pub(crate) fn clear(&mut self) {
        self.fds.clear();
    }

    /// Adds `fd`, waiting for `events`; returns its index for [`PollSet::revents`].
    pub(crate) fn add(&mut self, fd: RawFd, events: libc::c_short) -> usize {
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        self.fds.len() - 1
    }

    /// Waits until something is ready or `timeout_ms` passes (-1: no timeout). An
    /// interruption by a signal counts as a round where nothing was ready.
    pub(crate) fn wait(&mut self, timeout_ms: i32) -> std::io::Result<()> {
        for fd in &mut self.fds {
            fd.revents = 0;
        }
        // SAFETY: `fds` is a valid array of pollfd of that length; poll only writes revents.
        let n = unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }

    /// What happened to the descriptor at `index` in the last [`PollSet::wait`].
    pub(crate) fn revents(&self, index: usize) -> libc::c_short {
        self.fds.get(index).map_or(0, |p| p.revents)
    }

    /// Whether the descriptor at `index` can be read (or hung up, or failed: a read says
    /// which).
    pub(crate) fn readable(&self, index: usize) -> bool {
        self.revents(index) & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
    }
}
