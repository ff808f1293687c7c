//! A process's stdio through pipes this process owns, never the caller's own descriptors.
//!
//! Handing a container process the caller's stdin, stdout or stderr gives it the caller's
//! terminal (or whatever file they are): it could `TIOCSTI` keystrokes into the user's
//! shell, or read and write the file behind them. Instead the process gets pipes, and a
//! relay thread copies between them and the caller's descriptors: input from the caller
//! into the process's stdin pipe (end of file closes it), and the process's output pipes
//! out to the caller.
//!
//! The relay is one thread around one `poll`; [`Relay::finish`] stops it once the process
//! has exited, after copying what is already in the output pipes (output that processes
//! left in the background write later is not waited for).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// One direction: bytes read from `from` are written to `to`.
#[derive(Debug)]
pub(crate) struct Link {
    from: OwnedFd,
    to: Option<OwnedFd>,
    /// Input into the process: at end of file, `to` is closed so the process sees it too,
    /// and when the process has exited it is not drained.
    input: bool,
}

impl Link {
    /// Copies the caller's descriptor `caller` into the process's pipe end `pipe`.
    pub(crate) fn input(caller: BorrowedFd<'_>, pipe: OwnedFd) -> io::Result<Link> {
        Ok(Link {
            from: dup_cloexec(caller)?,
            to: Some(pipe),
            input: true,
        })
    }

    /// Copies the process's pipe end `pipe` out to the caller's descriptor `caller`.
    pub(crate) fn output(pipe: OwnedFd, caller: BorrowedFd<'_>) -> io::Result<Link> {
        Ok(Link {
            from: pipe,
            to: Some(dup_cloexec(caller)?),
            input: false,
        })
    }
}

/// A pipe as `(read end, write end)`, both close-on-exec (the child's end is dup2'ed onto
/// its stdio, which clears the flag there).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

fn dup_cloexec(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor from an open one; we own the result.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just returned by fcntl and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// The running relay.
#[derive(Debug)]
pub(crate) struct Relay {
    stop: OwnedFd,
    thread: JoinHandle<()>,
}

impl Relay {
    /// Starts relaying `links` in a thread of its own.
    pub(crate) fn start(links: Vec<Link>) -> io::Result<Relay> {
        let (stop_read, stop) = pipe()?;
        let thread = std::thread::Builder::new()
            .name("stdio-relay".into())
            .spawn(move || relay(links, stop_read))?;
        Ok(Relay { stop, thread })
    }

    /// Stops the relay after copying the output already waiting, and waits for it.
    pub(crate) fn finish(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

fn relay(mut links: Vec<Link>, stop: OwnedFd) {
    block_sigpipe();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = vec![PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
        fds.extend(
            links
                .iter()
                .map(|l| PollFd::new(l.from.as_fd(), PollFlags::POLLIN)),
        );
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(_) => return,
        }
        let ready = |i: usize| {
            fds[i].revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let stopping = ready(0);
        let fired: Vec<bool> = (0..links.len()).map(|i| ready(i + 1)).collect();
        drop(fds);
        if stopping {
            links.retain(|l| !l.input);
            for link in &mut links {
                drain(link, &mut buf);
            }
            return;
        }
        let mut ended = Vec::new();
        for (i, link) in links.iter_mut().enumerate() {
            if fired[i] && !copy_once(link, &mut buf) {
                ended.push(i);
            }
        }
        for i in ended.into_iter().rev() {
            // Dropping an input link closes the process's stdin: it reads end of file.
            links.remove(i);
        }
        if links.is_empty() {
            return;
        }
    }
}

/// One read and its write; false once the link has ended (end of file, or an error).
fn copy_once(link: &mut Link, buf: &mut [u8]) -> bool {
    let n = match nix::unistd::read(&link.from, buf) {
        Ok(0) => return false,
        Ok(n) => n,
        Err(nix::Error::EINTR | nix::Error::EAGAIN) => return true,
        Err(_) => return false,
    };
    if let Some(to) = &link.to
        && write_all(to.as_fd(), &buf[..n]).is_err()
    {
        // The reader went away (the caller's output closed, or the process closed its
        // stdin): keep reading so the writer is not blocked, but drop the bytes.
        link.to = None;
        if link.input {
            return false;
        }
    }
    true
}

/// What the output pipe holds now, without waiting for more.
fn drain(link: &mut Link, buf: &mut [u8]) {
    let flags = nix::fcntl::fcntl(&link.from, nix::fcntl::FcntlArg::F_GETFL)
        .map(nix::fcntl::OFlag::from_bits_truncate)
        .unwrap_or(nix::fcntl::OFlag::empty());
    let _ = nix::fcntl::fcntl(
        &link.from,
        nix::fcntl::FcntlArg::F_SETFL(flags | nix::fcntl::OFlag::O_NONBLOCK),
    );
    loop {
        match nix::unistd::read(&link.from, buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Some(to) = &link.to
                    && write_all(to.as_fd(), &buf[..n]).is_err()
                {
                    return;
                }
            }
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> nix::Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A write to a pipe whose reader is gone raises SIGPIPE in the writing thread; blocked
/// here, it stays pending on this thread and the write fails with EPIPE instead of killing
/// the whole program.
pub(crate) fn block_sigpipe() {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGPIPE);
    let _ = set.thread_block();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn input_reaches_the_pipe_and_its_end_closes_it() {
        let (caller_in_read, caller_in_write) = pipe().unwrap();
        let (child_stdin, ours) = pipe().unwrap();
        let relay = Relay::start(vec![Link::input(caller_in_read.as_fd(), ours).unwrap()]).unwrap();
        drop(caller_in_read);
        let mut w = std::fs::File::from(caller_in_write);
        w.write_all(b"typed\n").unwrap();
        drop(w);
        let mut got = String::new();
        std::fs::File::from(child_stdin)
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "typed\n");
        relay.finish();
    }

    #[test]
    fn output_waiting_at_finish_is_copied() {
        let (ours, child_stdout) = pipe().unwrap();
        let (caller_out_read, caller_out_write) = pipe().unwrap();
        let relay =
            Relay::start(vec![Link::output(ours, caller_out_write.as_fd()).unwrap()]).unwrap();
        drop(caller_out_write);
        // A background process still holds the write end: finish must not wait for it.
        let mut w = std::fs::File::from(child_stdout.try_clone().unwrap());
        w.write_all(b"last words\n").unwrap();
        relay.finish();
        let mut got = String::new();
        std::fs::File::from(caller_out_read)
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "last words\n");
        drop(child_stdout);
    }
}
