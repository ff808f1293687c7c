//! The byte pipeline under the tar parser: decompression and hashing run on
//! their own thread (so they overlap with file creation), and hand chunks
//! to the parser through a bounded channel.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

use sha2::{Digest, Sha256};

/// Size of the chunks handed from the decompressing thread to the parser.
const CHUNK: usize = 512 * 1024;
/// Chunks in flight between the two threads.
const DEPTH: usize = 8;

/// Why the stream under the tar parser stopped.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// The caller's reader failed.
    Input(io::Error),
    /// The decompressor rejected the stream (corrupt or truncated).
    Decompress(io::Error),
    /// More uncompressed bytes than allowed.
    TooLarge(u64),
    /// A member's headers (PAX, GNU long names, sparse maps) exceed the window.
    HeaderTooLarge(u64),
}

/// What the decompressing thread reports when it ends.
pub(crate) struct Produced {
    /// sha256 of every uncompressed byte, when this thread hashed.
    pub digest: Option<[u8; 32]>,
    /// Count of uncompressed bytes.
    pub bytes: u64,
}

/// Records whether the caller's reader failed, to tell input errors from
/// decompression errors (the decoder passes both up as `io::Error`).
struct Tagged<R> {
    inner: R,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for Tagged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| {
            self.failed.store(true, Ordering::Relaxed);
        })
    }
}

/// Wrap the caller's reader so its failures are told apart later.
pub(crate) fn tag<R: Read>(inner: R) -> (impl Read, Arc<AtomicBool>) {
    let failed = Arc::new(AtomicBool::new(false));
    (
        Tagged {
            inner,
            failed: failed.clone(),
        },
        failed,
    )
}

/// The decompressing thread's body: read everything, hash it, send it.
pub(crate) fn produce(
    mut decoder: Box<dyn Read + Send + '_>,
    input_failed: Arc<AtomicBool>,
    max_bytes: u64,
    hash_here: bool,
    tx: Sender,
) -> Option<Produced> {
    let mut hasher = hash_here.then(Sha256::new);
    let mut total: u64 = 0;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        let mut eof = false;
        while filled < buf.len() {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let err = if input_failed.load(Ordering::Relaxed) {
                        StreamError::Input(e)
                    } else {
                        StreamError::Decompress(e)
                    };
                    let _ = tx.send(Err(err));
                    return None;
                }
            }
        }
        buf.truncate(filled);
        total += filled as u64;
        if total > max_bytes {
            let _ = tx.send(Err(StreamError::TooLarge(max_bytes)));
            return None;
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&buf);
        }
        if !buf.is_empty() && tx.send(Ok(buf)).is_err() {
            // The parser stopped on an error of its own.
            return None;
        }
        if eof {
            return Some(Produced {
                digest: hasher.map(|h| h.finalize().into()),
                bytes: total,
            });
        }
    }
}

/// What travels from the decompressing thread to the parser.
pub(crate) type Chunk = Result<Vec<u8>, StreamError>;
/// The decompressing thread's end of the channel.
pub(crate) type Sender = SyncSender<Chunk>;

/// A channel pair sized for the pipeline.
pub(crate) fn channel() -> (Sender, Receiver<Chunk>) {
    std::sync::mpsc::sync_channel(DEPTH)
}

/// State shared between the parser's reader and the apply loop.
#[derive(Default)]
pub(crate) struct ReadState {
    /// Bytes handed to the tar parser so far.
    pub pos: Cell<u64>,
    /// The parser may not read past this offset (bounds header sizes).
    pub window_end: Cell<u64>,
    /// The length the current window was opened with, for the error.
    pub window_len: Cell<u64>,
    /// The stream ended (the parser asked for more than there was).
    pub eof: Cell<bool>,
    /// The error that stopped the stream, if any.
    pub error: RefCell<Option<StreamError>>,
    /// Hashes chunks as they arrive, when the decompressing thread does not
    /// (it has the heavier load when the stream is compressed).
    pub hasher: RefCell<Option<Sha256>>,
}

impl ReadState {
    pub(crate) fn new() -> Rc<ReadState> {
        let state = ReadState::default();
        state.window_end.set(u64::MAX);
        Rc::new(state)
    }

    /// Allow the parser `len` more bytes from here.
    pub(crate) fn set_window(&self, len: u64) {
        self.window_end.set(self.pos.get().saturating_add(len));
        self.window_len.set(len);
    }

    /// The digest of everything received, if this side hashed.
    pub(crate) fn digest(&self) -> Option<[u8; 32]> {
        self.hasher.borrow_mut().take().map(|h| h.finalize().into())
    }

    pub(crate) fn take_error(&self) -> Option<StreamError> {
        self.error.borrow_mut().take()
    }
}

/// The parser's end of the channel.
pub(crate) struct ChannelReader {
    rx: Receiver<Chunk>,
    chunk: Vec<u8>,
    off: usize,
    state: Rc<ReadState>,
}

impl ChannelReader {
    pub(crate) fn new(rx: Receiver<Chunk>, state: Rc<ReadState>) -> Self {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            off: 0,
            state,
        }
    }

    fn fail(&self, err: StreamError) -> io::Error {
        let msg = format!("{err:?}");
        *self.state.error.borrow_mut() = Some(err);
        io::Error::other(msg)
    }
}

impl Read for ChannelReader {
    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        if into.is_empty() {
            return Ok(0);
        }
        if self.off == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    if let Some(h) = self.state.hasher.borrow_mut().as_mut() {
                        h.update(&chunk);
                    }
                    self.chunk = chunk;
                    self.off = 0;
                }
                Ok(Err(e)) => return Err(self.fail(e)),
                Err(_) => {
                    self.state.eof.set(true);
                    return Ok(0);
                }
            }
        }
        let pos = self.state.pos.get();
        let window = self.state.window_end.get().saturating_sub(pos);
        if window == 0 {
            let limit = self.state.window_len.get();
            return Err(self.fail(StreamError::HeaderTooLarge(limit)));
        }
        let avail = &self.chunk[self.off..];
        let n = avail
            .len()
            .min(into.len())
            .min(window.min(usize::MAX as u64) as usize);
        into[..n].copy_from_slice(&avail[..n]);
        self.off += n;
        self.state.pos.set(pos + n as u64);
        Ok(n)
    }
}
