//! The messages of the attach protocol (see the [module docs](super) for the whole
//! protocol): one SOCK_SEQPACKET packet per message, its first byte the kind.

use crate::terminal::WindowSize;

/// The protocol's version, sent in both hellos.
pub(crate) const VERSION: u8 = 1;

/// The most bytes of stream data in one message; longer data is sent in several.
pub const MAX_PAYLOAD: usize = 32 * 1024;

/// The largest packet either side sends (a kind byte and the most data).
pub(crate) const MAX_PACKET: usize = MAX_PAYLOAD + 1;

// Client to supervisor.
pub(crate) const HELLO: u8 = 0x01;
pub(crate) const STDIN: u8 = 0x02;
pub(crate) const CLOSE_STDIN: u8 = 0x03;
pub(crate) const RESIZE: u8 = 0x04;
pub(crate) const SIGNAL: u8 = 0x05;

// Supervisor to client.
pub(crate) const SERVER_HELLO: u8 = 0x81;
pub(crate) const STDOUT: u8 = 0x82;
pub(crate) const STDERR: u8 = 0x83;
pub(crate) const EXIT: u8 = 0x84;

// Flags of the client's hello: what it attaches.
pub(crate) const WANTS_STDIN: u8 = 1;
pub(crate) const WANTS_STDOUT: u8 = 2;
pub(crate) const WANTS_STDERR: u8 = 4;

// Flags of the supervisor's hello: what the container has.
pub(crate) const HAS_TTY: u8 = 1;
pub(crate) const HAS_STDIN: u8 = 2;

/// One packet: `kind` then `payload`.
pub(crate) fn packet(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(payload.len() + 1);
    p.push(kind);
    p.extend_from_slice(payload);
    p
}

/// A hello (either side's): the version and the flags.
pub(crate) fn hello(kind: u8, flags: u8) -> Vec<u8> {
    packet(kind, &[VERSION, flags])
}

/// The flags of a hello, or `None` when it is malformed or of another version.
pub(crate) fn parse_hello(payload: &[u8]) -> Option<u8> {
    match payload {
        [VERSION, flags] => Some(*flags),
        _ => None,
    }
}

/// `RESIZE`: rows and columns, big-endian.
pub(crate) fn resize(size: WindowSize) -> Vec<u8> {
    let mut payload = [0u8; 4];
    payload[..2].copy_from_slice(&size.rows.to_be_bytes());
    payload[2..].copy_from_slice(&size.cols.to_be_bytes());
    packet(RESIZE, &payload)
}

pub(crate) fn parse_resize(payload: &[u8]) -> Option<WindowSize> {
    let bytes: [u8; 4] = payload.try_into().ok()?;
    Some(WindowSize {
        rows: u16::from_be_bytes([bytes[0], bytes[1]]),
        cols: u16::from_be_bytes([bytes[2], bytes[3]]),
    })
}

/// `SIGNAL` and `EXIT` carry one big-endian i32 (a signal number, an exit code).
pub(crate) fn with_i32(kind: u8, value: i32) -> Vec<u8> {
    packet(kind, &value.to_be_bytes())
}

pub(crate) fn parse_i32(payload: &[u8]) -> Option<i32> {
    payload.try_into().ok().map(i32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_as_written() {
        let p = hello(HELLO, WANTS_STDIN | WANTS_STDERR);
        assert_eq!(p[0], HELLO);
        assert_eq!(parse_hello(&p[1..]), Some(WANTS_STDIN | WANTS_STDERR));
        assert_eq!(parse_hello(&[VERSION + 1, 0]), None, "another version");
        assert_eq!(parse_hello(&[VERSION]), None, "truncated");
        let size = WindowSize {
            rows: 300,
            cols: 1200,
        };
        let p = resize(size);
        assert_eq!(parse_resize(&p[1..]), Some(size));
        assert_eq!(parse_resize(&p[1..3]), None);
        let p = with_i32(EXIT, -3);
        assert_eq!((p[0], parse_i32(&p[1..])), (EXIT, Some(-3)));
        assert_eq!(parse_i32(b"abc"), None);
    }
}
