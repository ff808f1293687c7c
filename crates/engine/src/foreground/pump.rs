//! Copying the supervisor's output pipes to this process's stdout and stderr, in one
//! thread around one `poll`, until told the supervisor has exited.
//!
//! The end is not the pipes' end of file: whatever the supervisor left running (the
//! teardown of a `--rm` container's network, which inherits its stdio) may hold them open
//! for a while. Once the supervisor has exited, everything it wrote is in the pipes, so
//! [`Pump::finish`] copies what they hold and stops.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// A running copy.
pub(super) struct Pump {
    stop: OwnedFd,
    thread: JoinHandle<()>,
}

/// One pipe and where its bytes go.
struct Stream {
    from: OwnedFd,
    to: BorrowedFd<'static>,
    /// What arrived while held.
    kept: Vec<u8>,
}

impl Pump {
    /// Copies each `(pipe, destination)`; while `hold` is set, keeps what arrives and
    /// writes it once `hold` is cleared or at [`Pump::finish`].
    pub(super) fn start(
        streams: Vec<(OwnedFd, BorrowedFd<'static>)>,
        hold: Option<Arc<AtomicBool>>,
    ) -> std::io::Result<Pump> {
        let streams = streams
            .into_iter()
            .map(|(from, to)| {
                let flags = OFlag::from_bits_truncate(fcntl(&from, FcntlArg::F_GETFL)?);
                fcntl(&from, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
                Ok(Stream {
                    from,
                    to,
                    kept: Vec::new(),
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let (stop_read, stop) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let thread = std::thread::Builder::new()
            .name("attach-output".into())
            .spawn(move || run(streams, stop_read, hold))?;
        Ok(Pump { stop, thread })
    }

    /// Copies what the pipes hold now, writes what was kept, and stops.
    pub(super) fn finish(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

fn run(mut streams: Vec<Stream>, stop: OwnedFd, hold: Option<Arc<AtomicBool>>) {
    let held = || hold.as_ref().is_some_and(|h| h.load(Ordering::SeqCst));
    let mut open: Vec<bool> = vec![true; streams.len()];
    loop {
        let mut fds = vec![PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
        let watched: Vec<usize> = (0..streams.len()).filter(|i| open[*i]).collect();
        fds.extend(
            watched
                .iter()
                .map(|i| PollFd::new(streams[*i].from.as_fd(), PollFlags::POLLIN)),
        );
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => return,
        }
        let fired = |at: usize| fds[at].revents().is_some_and(|r| !r.is_empty());
        let stopping = fired(0);
        let ready: Vec<usize> = (0..watched.len())
            .filter(|at| fired(at + 1))
            .map(|at| watched[at])
            .collect();
        drop(fds);
        for i in ready {
            open[i] = copy_available(&mut streams[i], held());
        }
        if stopping {
            for (i, stream) in streams.iter_mut().enumerate() {
                if open[i] {
                    copy_available(stream, false);
                }
                flush(stream);
            }
            return;
        }
    }
}

/// Copies (or keeps, when `held`) what `stream`'s pipe holds now; false once it has ended.
fn copy_available(stream: &mut Stream, held: bool) -> bool {
    if !held {
        flush(stream);
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        match nix::unistd::read(&stream.from, &mut buf) {
            Ok(0) => return false,
            Ok(n) if held => stream.kept.extend_from_slice(&buf[..n]),
            Ok(n) => write_all(stream.to, &buf[..n]),
            Err(nix::Error::EINTR) => {}
            Err(nix::Error::EAGAIN) => return true,
            Err(_) => return false,
        }
    }
}

fn flush(stream: &mut Stream) {
    if !stream.kept.is_empty() {
        write_all(stream.to, &stream.kept);
        stream.kept.clear();
    }
}

/// Writes all of `bytes`, waiting while `fd` is full (it may be non-blocking: a terminal
/// shared with other programs). A destination that fails drops the bytes; one that is a
/// pipe nobody reads ends this process with SIGPIPE, as any command-line program.
fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(nix::Error::EINTR) => {}
            Err(nix::Error::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::NONE);
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap()
    }

    /// A destination with a 'static borrow, as this process's stdout has.
    fn leak(fd: OwnedFd) -> BorrowedFd<'static> {
        let fd: &'static OwnedFd = Box::leak(Box::new(fd));
        fd.as_fd()
    }

    #[test]
    fn finish_copies_what_is_waiting_even_while_a_writer_remains() {
        let (from, writer) = pipe();
        let (out_read, out_write) = pipe();
        let pump = Pump::start(vec![(from, leak(out_write))], None).unwrap();
        let mut writer = std::fs::File::from(writer);
        writer.write_all(b"last words\n").unwrap();
        // `writer` stays open (a process the supervisor left behind): finish must not wait.
        pump.finish();
        let mut out = std::fs::File::from(out_read);
        let mut buf = [0u8; 64];
        let n = out.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"last words\n");
    }

    #[test]
    fn held_output_comes_after_the_hold_in_order() {
        let (from, writer) = pipe();
        let (out_read, out_write) = pipe();
        let hold = Arc::new(AtomicBool::new(true));
        let pump = Pump::start(vec![(from, leak(out_write))], Some(hold.clone())).unwrap();
        let mut writer = std::fs::File::from(writer);
        writer.write_all(b"one\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let flags = OFlag::from_bits_truncate(fcntl(&out_read, FcntlArg::F_GETFL).unwrap());
        fcntl(&out_read, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).unwrap();
        let mut buf = [0u8; 64];
        assert!(
            nix::unistd::read(&out_read, &mut buf).is_err(),
            "nothing is written while held"
        );
        hold.store(false, Ordering::SeqCst);
        writer.write_all(b"two\n").unwrap();
        drop(writer);
        pump.finish();
        let mut got = Vec::new();
        while let Ok(n) = nix::unistd::read(&out_read, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"one\ntwo\n");
    }
}
