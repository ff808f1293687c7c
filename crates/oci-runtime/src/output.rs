//! Writing to stdout and stderr without panicking when the reader went away.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe (`basic-runtime list | head -0`) is an
//! EPIPE error, on which `println!` panics (exit 101 with a backtrace hint). Here it ends the
//! program quietly with the status a shell gives a program killed by SIGPIPE (141), which is
//! what runc (Go) does.

use std::io::Write;

/// The exit status of a program that wrote to a closed pipe.
const BROKEN_PIPE_EXIT: i32 = 128 + nix::sys::signal::Signal::SIGPIPE as i32;

/// Writes `text` and a newline to stdout; exits quietly when stdout is a closed pipe.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(BROKEN_PIPE_EXIT)
        }
        // Nothing better to do with a failing stdout than to say so where we still can.
        Err(e) => error_line(&format!("writing to stdout: {e}")),
    }
}

/// Writes `basic-runtime: <msg>` to stderr, ignoring a closed stderr.
pub fn error_line(msg: &str) {
    let _ = writeln!(std::io::stderr(), "basic-runtime: {msg}");
}

/// `println!` over [`line`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(&format!($($arg)*))
    };
}
