//! Incremental content digests, so blobs are verified while they stream.

use sha2::{Digest as _, Sha256, Sha512};

/// A running hash for one of the digest algorithms the OCI spec registers.
#[derive(Clone)]
pub struct Digester {
    state: State,
}

#[derive(Clone)]
enum State {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// A digest string whose algorithm this crate cannot compute.
#[derive(Debug, thiserror::Error)]
#[error(
    "unsupported digest \"{}\": expected sha256:<64 hex> or sha512:<128 hex>",
    basic_escape::escape(.0)
)]
pub struct UnsupportedDigest(pub String);

impl Digester {
    /// A SHA-256 digester, the algorithm registries use by default.
    pub fn sha256() -> Self {
        Digester {
            state: State::Sha256(Sha256::new()),
        }
    }

    /// A digester for the algorithm named by `digest` (`sha256:…` or `sha512:…`).
    pub fn for_digest(digest: &str) -> Result<Self, UnsupportedDigest> {
        match digest.split_once(':') {
            Some(("sha256", hex)) if is_hex(hex, 64) => Ok(Self::sha256()),
            Some(("sha512", hex)) if is_hex(hex, 128) => Ok(Digester {
                state: State::Sha512(Sha512::new()),
            }),
            _ => Err(UnsupportedDigest(digest.to_string())),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            State::Sha256(h) => h.update(bytes),
            State::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far, as `algorithm:hex`.
    pub fn finish(self) -> String {
        match self.state {
            State::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            State::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }

    /// Feeds `bytes` and finishes: the digest of a whole buffer.
    pub fn finish_with(mut self, bytes: &[u8]) -> String {
        self.update(bytes);
        self.finish()
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sha256() {
        assert_eq!(
            Digester::sha256().finish_with(b"{}"),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn algorithm_follows_the_expected_digest() {
        let d = Digester::for_digest(&format!("sha512:{}", "a".repeat(128))).unwrap();
        assert!(d.finish_with(b"x").starts_with("sha512:"));
        assert!(Digester::for_digest("md5:abcd").is_err());
        assert!(Digester::for_digest("sha256:ABC").is_err());
    }
}
