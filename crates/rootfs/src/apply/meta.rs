//! What a member says about the file it describes, gathered from its
//! header and PAX records: owner, mode, times, xattrs, sparse maps, and a
//! normalized path.

use std::ffi::CString;
use std::io;

use super::{ApplyError, Limits, numeric};

/// Member metadata, independent of the entry type.
pub(crate) struct Meta {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub mtime: libc::timespec,
    pub atime: libc::timespec,
    pub xattrs: Vec<(CString, Vec<u8>)>,
    /// PAX sparse layout (`GNU.sparse.*`), when the member uses one.
    pub pax_sparse: Option<PaxSparse>,
}

/// A PAX-format sparse file (formats 0.0, 0.1 and 1.0 of GNU tar).
pub(crate) struct PaxSparse {
    /// The real name (`GNU.sparse.name`), replacing the member path.
    pub name: Option<Vec<u8>>,
    /// Logical file size.
    pub real_size: u64,
    /// (offset, length) of each data region; `None` for format 1.0, whose
    /// map is at the start of the member's data.
    pub map: Option<Vec<(u64, u64)>>,
}

pub(crate) fn parse_u64_pub(v: &[u8]) -> Option<u64> {
    parse_u64(v)
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// A uid or gid, which must fit the kernel's 32 bits.
fn id(what: &str, value: u64) -> Result<u32, String> {
    u32::try_from(value).map_err(|_| format!("{what} {value} out of range"))
}

/// A PAX `uid` or `gid` record: decimal.
fn pax_id(what: &str, value: &[u8]) -> Result<u32, String> {
    let number = parse_u64(value)
        .ok_or_else(|| format!("malformed PAX {what} {:?}", String::from_utf8_lossy(value)))?;
    id(what, number)
}

/// PAX time: decimal seconds with an optional fraction, possibly negative.
pub(crate) fn parse_pax_time(v: &[u8]) -> Option<libc::timespec> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = if secs.is_empty() {
        0
    } else {
        secs.parse().ok()?
    };
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    let (mut sec, mut nsec) = (secs, nanos);
    if neg {
        sec = -sec;
        if nsec > 0 {
            sec -= 1;
            nsec = 1_000_000_000 - nsec;
        }
    }
    Some(crate::sys::timespec(sec, nsec as u32))
}

/// Collect the metadata of `entry`.
pub(crate) fn read_meta<R: io::Read>(
    entry: &mut tar::Entry<'_, R>,
    member: &str,
    limits: &Limits,
) -> Result<Meta, ApplyError> {
    let header = entry.header();
    let bad = |reason: String| ApplyError::InvalidMember {
        member: member.to_owned(),
        reason,
    };
    let fields = header.as_old();
    let number = |what: &str, raw: &[u8]| {
        numeric::field(raw).map_err(|e| bad(format!("bad {what} field: {e}")))
    };
    let mut uid = id("uid", number("uid", &fields.uid)?).map_err(&bad)?;
    let mut gid = id("gid", number("gid", &fields.gid)?).map_err(&bad)?;
    let mode = number("mode", &fields.mode)? as u32 & 0o7777;
    let mtime_secs = numeric::field(&fields.mtime).unwrap_or(0);
    let mut mtime = crate::sys::timespec(i64::try_from(mtime_secs).unwrap_or(i64::MAX), 0);
    let mut atime = None;
    let mut xattrs = Vec::new();
    let mut xattr_bytes = 0usize;
    let mut sparse_major = None;
    let mut sparse_minor = None;
    let mut sparse_name = None;
    let mut sparse_size = None;
    let mut sparse_map: Option<Vec<(u64, u64)>> = None;
    let mut sparse_offsets: Vec<u64> = Vec::new();
    let mut sparse_lengths: Vec<u64> = Vec::new();

    let pax = entry
        .pax_extensions()
        .map_err(|e| bad(format!("unreadable PAX header: {e}")))?;
    if let Some(pax) = pax {
        for ext in pax {
            let ext = ext.map_err(|e| bad(format!("malformed PAX record: {e}")))?;
            let key = ext.key_bytes();
            let value = ext.value_bytes();
            match key {
                b"mtime" => {
                    mtime = parse_pax_time(value)
                        .ok_or_else(|| bad("malformed PAX mtime".to_owned()))?;
                }
                b"atime" => atime = parse_pax_time(value),
                // Owners too large for the header's field (GNU tar and our export write them).
                b"uid" => uid = pax_id("uid", value).map_err(&bad)?,
                b"gid" => gid = pax_id("gid", value).map_err(&bad)?,
                b"GNU.sparse.major" => sparse_major = parse_u64(value),
                b"GNU.sparse.minor" => sparse_minor = parse_u64(value),
                b"GNU.sparse.name" => sparse_name = Some(value.to_vec()),
                b"GNU.sparse.realsize" | b"GNU.sparse.size" => sparse_size = parse_u64(value),
                b"GNU.sparse.offset" => sparse_offsets.push(
                    parse_u64(value).ok_or_else(|| bad("malformed sparse offset".to_owned()))?,
                ),
                b"GNU.sparse.numbytes" => sparse_lengths.push(
                    parse_u64(value).ok_or_else(|| bad("malformed sparse length".to_owned()))?,
                ),
                b"GNU.sparse.map" => {
                    let nums: Option<Vec<u64>> = value
                        .split(|&b| b == b',')
                        .filter(|s| !s.is_empty())
                        .map(parse_u64)
                        .collect();
                    let nums = nums.ok_or_else(|| bad("malformed GNU.sparse.map".to_owned()))?;
                    if nums.len() % 2 != 0 {
                        return Err(bad("odd GNU.sparse.map".to_owned()));
                    }
                    sparse_map = Some(nums.chunks(2).map(|c| (c[0], c[1])).collect());
                }
                _ => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        if value.len() > limits.max_xattr_size {
                            return Err(ApplyError::Limit {
                                what: "bytes in one xattr value",
                                limit: limits.max_xattr_size as u64,
                                member: Some(member.to_owned()),
                            });
                        }
                        xattr_bytes += name.len() + value.len();
                        if xattr_bytes > limits.max_xattr_size * 16 {
                            return Err(ApplyError::Limit {
                                what: "bytes of xattrs on one member",
                                limit: (limits.max_xattr_size * 16) as u64,
                                member: Some(member.to_owned()),
                            });
                        }
                        let name = CString::new(name)
                            .map_err(|_| bad("xattr name holds NUL".to_owned()))?;
                        xattrs.push((name, value.to_vec()));
                    }
                }
            }
        }
    }

    let pax_sparse = if sparse_major.is_some() || sparse_map.is_some() || !sparse_offsets.is_empty()
    {
        let real_size =
            sparse_size.ok_or_else(|| bad("PAX sparse file without a real size".to_owned()))?;
        let map = match (sparse_major, sparse_minor) {
            (Some(1), Some(0)) => None,
            (Some(m), _) if m != 0 => {
                return Err(bad(format!("unsupported PAX sparse format {m}")));
            }
            _ => Some(match sparse_map {
                Some(map) => map,
                None => {
                    if sparse_offsets.len() != sparse_lengths.len() {
                        return Err(bad("unpaired GNU.sparse.offset/numbytes".to_owned()));
                    }
                    sparse_offsets.into_iter().zip(sparse_lengths).collect()
                }
            }),
        };
        Some(PaxSparse {
            name: sparse_name,
            real_size,
            map,
        })
    } else {
        None
    };

    Ok(Meta {
        uid,
        gid,
        mode,
        mtime,
        atime: atime.unwrap_or(mtime),
        xattrs,
        pax_sparse,
    })
}

/// Normalize a member name: leading `/` and `./`, empty and `.` components
/// are dropped (every name is relative to the root); `..` is refused, since
/// no tool writing layers emits it and resolving it lexically would let a
/// name mean something other than what a reader of the listing sees.
pub(crate) fn normalize(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("`..` component"),
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(comp);
            }
        }
    }
    Ok(out)
}

/// Split a normalized path into (parent, name).
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(normalize(b"/etc/passwd").unwrap(), b"etc/passwd");
        assert_eq!(normalize(b"./").unwrap(), b"");
        assert!(normalize(b"../../etc/x").is_err());
        assert!(normalize(b"a/../../b").is_err());
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
    }

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.123456789").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1700000000, 123456789));
        let t = parse_pax_time(b"12.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 500000000));
        let t = parse_pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750000000));
        let t = parse_pax_time(b"1700000000").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1700000000, 0));
        assert!(parse_pax_time(b"abc").is_none());
    }
}
