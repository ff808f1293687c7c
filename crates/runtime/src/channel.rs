//! The pipes between the runner and the container's processes.
//!
//! Child → parent messages are framed (tag byte, then payload); the child's write end is
//! close-on-exec, so the parent reading end-of-file after "go" means the exec succeeded.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

/// Errors on the sync pipes.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// pipe2() failed.
    #[error("creating a sync pipe")]
    Create(#[source] nix::Error),
    /// Reading or writing failed.
    #[error("{0} on the sync pipe")]
    Io(&'static str, #[source] std::io::Error),
    /// The other side sent something we did not expect.
    #[error("unexpected message on the sync pipe: tag {0:#x}")]
    Unexpected(u8),
}

/// What went wrong in the container's processes before exec, as sent to the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The command was not found (docker exits 127).
    NotFound = 1,
    /// The command could not be executed (docker exits 126).
    PermissionDenied = 2,
    /// Any other setup failure (docker exits 125).
    Setup = 3,
}

/// A message from the container side.
#[derive(Debug)]
pub enum Message {
    /// The first child made a user namespace and waits for its id maps.
    NeedIdMaps,
    /// The container's init has this pid (in the runner's pid namespace).
    InitPid(i32),
    /// The init is set up and waits for the word to exec its command.
    Ready,
    /// The init has made the container's mounts and waits, before `pivot_root`, for the
    /// runner to run the `prestart` and `createRuntime` hooks and send the state.
    Hooks,
    /// Setup failed.
    Failure(FailureKind, String),
    /// The other side closed the pipe.
    Eof,
}

/// Reading end on the parent, writing end in the children.
pub fn pipe() -> Result<(File, File), ChannelError> {
    let (r, w): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(ChannelError::Create)?;
    Ok((File::from(r), File::from(w)))
}

/// Sends one message (child side).
pub fn send(w: &mut File, msg: &Message) -> Result<(), ChannelError> {
    let mut buf = Vec::new();
    match msg {
        Message::NeedIdMaps => buf.push(b'U'),
        Message::Ready => buf.push(b'R'),
        Message::Hooks => buf.push(b'H'),
        Message::InitPid(pid) => {
            buf.push(b'P');
            buf.extend_from_slice(&pid.to_le_bytes());
        }
        Message::Failure(kind, text) => {
            buf.push(b'E');
            buf.push(*kind as u8);
            buf.extend_from_slice(&(text.len() as u32).to_le_bytes());
            buf.extend_from_slice(text.as_bytes());
        }
        Message::Eof => return Ok(()),
    }
    w.write_all(&buf)
        .map_err(|e| ChannelError::Io("writing", e))
}

/// Receives one message (parent side).
pub fn recv(r: &mut File) -> Result<Message, ChannelError> {
    let mut tag = [0u8; 1];
    loop {
        match r.read(&mut tag) {
            Ok(0) => return Ok(Message::Eof),
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ChannelError::Io("reading", e)),
        }
    }
    let mut four = [0u8; 4];
    let read =
        |r: &mut File, b: &mut [u8]| r.read_exact(b).map_err(|e| ChannelError::Io("reading", e));
    match tag[0] {
        b'U' => Ok(Message::NeedIdMaps),
        b'R' => Ok(Message::Ready),
        b'H' => Ok(Message::Hooks),
        b'P' => {
            read(r, &mut four)?;
            Ok(Message::InitPid(i32::from_le_bytes(four)))
        }
        b'E' => {
            let mut k = [0u8; 1];
            read(r, &mut k)?;
            read(r, &mut four)?;
            let mut text = vec![0u8; u32::from_le_bytes(four) as usize];
            read(r, &mut text)?;
            let kind = match k[0] {
                1 => FailureKind::NotFound,
                2 => FailureKind::PermissionDenied,
                _ => FailureKind::Setup,
            };
            Ok(Message::Failure(
                kind,
                String::from_utf8_lossy(&text).into_owned(),
            ))
        }
        t => Err(ChannelError::Unexpected(t)),
    }
}

/// Parent → child: one byte meaning "go on" (id maps written, cgroup joined, or exec).
pub fn signal(w: &mut File) -> Result<(), ChannelError> {
    w.write_all(b"G")
        .map_err(|e| ChannelError::Io("writing", e))
}

/// Parent → child: the container's state as JSON, for the hooks the init runs.
pub fn send_state(w: &mut File, json: &[u8]) -> Result<(), ChannelError> {
    let mut buf = Vec::with_capacity(5 + json.len());
    buf.push(b'S');
    buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
    buf.extend_from_slice(json);
    w.write_all(&buf)
        .map_err(|e| ChannelError::Io("writing", e))
}

/// Child side: receives [`send_state`]'s JSON; end-of-file means the runner died (or
/// refused to go on because a hook failed).
pub fn recv_state(r: &mut File) -> Result<Vec<u8>, ChannelError> {
    let mut tag = [0u8; 1];
    let read = |r: &mut File, b: &mut [u8]| {
        r.read_exact(b)
            .map_err(|e| ChannelError::Io("waiting for the state", e))
    };
    read(r, &mut tag)?;
    if tag[0] != b'S' {
        return Err(ChannelError::Unexpected(tag[0]));
    }
    let mut four = [0u8; 4];
    read(r, &mut four)?;
    let mut json = vec![0u8; u32::from_le_bytes(four) as usize];
    read(r, &mut json)?;
    Ok(json)
}

/// Child side: waits for [`signal`]; end-of-file means the runner died, so give up.
pub fn wait(r: &mut File) -> Result<(), ChannelError> {
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(1) if b[0] == b'G' => return Ok(()),
            Ok(0) => {
                return Err(ChannelError::Io(
                    "waiting",
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "runner went away"),
                ));
            }
            Ok(_) => return Err(ChannelError::Unexpected(b[0])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ChannelError::Io("waiting", e)),
        }
    }
}
