//! Layer compression: recognised from the media type and from magic bytes.

use std::fmt;
use std::io::{self, BufReader, Read};

/// Errors recognising a layer's compression.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// The media type names a layer format this crate cannot apply.
    #[error("unsupported layer media type `{}`", basic_escape::escape(.0))]
    UnsupportedMediaType(String),
    /// Reading the first bytes of the stream failed.
    #[error("cannot read the start of the layer stream")]
    Peek(#[source] io::Error),
}

/// How a layer tar stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// The compression a layer media type declares.
    ///
    /// Knows the OCI (`application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]`,
    /// including the non-distributable variants) and Docker
    /// (`application/vnd.docker.image.rootfs.diff.tar[.gzip]`,
    /// `...foreign.diff.tar.gzip`) layer types. Anything else, such as an
    /// encrypted layer, is an error rather than a guess.
    pub fn from_media_type(media_type: &str) -> Result<Compression, CompressionError> {
        let unsupported = || CompressionError::UnsupportedMediaType(media_type.to_owned());
        let base = media_type.split(';').next().unwrap_or("").trim();
        match base {
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                return Ok(Compression::Gzip);
            }
            "application/vnd.docker.image.rootfs.diff.tar" => return Ok(Compression::None),
            _ => {}
        }
        let rest = base
            .strip_prefix("application/vnd.oci.image.layer.v1.tar")
            .or_else(|| {
                base.strip_prefix("application/vnd.oci.image.layer.nondistributable.v1.tar")
            })
            .ok_or_else(unsupported)?;
        match rest {
            "" => Ok(Compression::None),
            "+gzip" => Ok(Compression::Gzip),
            "+zstd" => Ok(Compression::Zstd),
            _ => Err(unsupported()),
        }
    }

    /// The compression the first bytes of a stream show (`None` when they
    /// match no known magic, as a plain tar does).
    pub fn from_magic(prefix: &[u8]) -> Compression {
        if prefix.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if prefix.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// The stream with its first bytes already read for magic detection.
pub(crate) type Peeked<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Peek at the stream and settle its compression: the magic bytes win over
/// the hint (registries mislabel layers), the hint only rejects formats we
/// cannot apply.
pub(crate) fn detect<R: Read>(
    mut reader: R,
    hint: Option<&str>,
) -> Result<(Compression, Peeked<R>), CompressionError> {
    let declared = hint.map(Compression::from_media_type).transpose()?;
    let mut prefix = vec![0u8; ZSTD_MAGIC.len()];
    let mut filled = 0;
    while filled < prefix.len() {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CompressionError::Peek(e)),
        }
    }
    prefix.truncate(filled);
    let found = reconcile(declared, Compression::from_magic(&prefix));
    Ok((found, io::Cursor::new(prefix).chain(reader)))
}

fn reconcile(declared: Option<Compression>, found: Compression) -> Compression {
    match declared {
        Some(d) if d != found => {
            tracing::warn!(declared = %d, found = %found, "layer media type disagrees with its magic bytes; using the magic bytes");
            found
        }
        _ => found,
    }
}

/// A decompressing reader over `input`.
pub(crate) fn decoder<'a, R: Read + Send + 'a>(
    input: BufReader<R>,
    compression: Compression,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(input),
        // MultiGzDecoder: concatenated members are valid gzip, and bytes after
        // the last member that are not another member are an error.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        let ok = [
            ("application/vnd.oci.image.layer.v1.tar", Compression::None),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::Zstd,
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar",
                Compression::None,
            ),
        ];
        for (mt, c) in ok {
            assert_eq!(Compression::from_media_type(mt).unwrap(), c, "{mt}");
        }
        for bad in [
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            "application/json",
            "",
        ] {
            assert!(Compression::from_media_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn magic() {
        assert_eq!(Compression::from_magic(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::from_magic(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::from_magic(b"etc/\0\0\0"), Compression::None);
        assert_eq!(Compression::from_magic(b""), Compression::None);
    }
}
