//! Numeric header fields as GNU tar reads them.
//!
//! The `tar` crate refuses a field with no digits ("numeric field was not a number"),
//! but a field left all NUL bytes, as many writers leave the owner of a member they do
//! not care about, is 0 to GNU tar, Python's `tarfile` and Go's `archive/tar`. So:
//! leading NULs and spaces are skipped, octal digits read up to a NUL or a space, an
//! empty field is 0, and a field whose first byte has the high bit set is GNU's
//! base-256 (big-endian binary) form.

/// The value of the numeric field `field`, or why it is not one.
pub(crate) fn field(field: &[u8]) -> Result<u64, String> {
    match field.first() {
        // Base-256: the high bit marks it, the next one is the sign.
        Some(&first) if first & 0xc0 == 0xc0 => Err("negative base-256 number".to_owned()),
        Some(&first) if first & 0x80 != 0 => base256(u64::from(first & 0x3f), &field[1..]),
        _ => octal(field),
    }
}

fn octal(field: &[u8]) -> Result<u64, String> {
    let text = field
        .iter()
        .position(|b| !matches!(b, b'\0' | b' '))
        .map_or(&[][..], |start| &field[start..]);
    let end = text
        .iter()
        .position(|b| matches!(b, b'\0' | b' '))
        .unwrap_or(text.len());
    let (digits, rest) = text.split_at(end);
    if rest.iter().any(|b| !matches!(b, b'\0' | b' ')) {
        return Err(format!(
            "not a number: {:?}",
            String::from_utf8_lossy(field)
        ));
    }
    digits.iter().try_fold(0u64, |value, &b| {
        let digit = match b {
            b'0'..=b'7' => u64::from(b - b'0'),
            _ => return Err(format!("not octal: {:?}", String::from_utf8_lossy(field))),
        };
        value
            .checked_mul(8)
            .and_then(|v| v.checked_add(digit))
            .ok_or_else(|| "octal number too large".to_owned())
    })
}

fn base256(top: u64, bytes: &[u8]) -> Result<u64, String> {
    bytes.iter().try_fold(top, |value, &b| {
        value
            .checked_mul(256)
            .map(|v| v | u64::from(b))
            .ok_or_else(|| "base-256 number too large".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn reads_what_gnu_tar_reads() {
        assert_eq!(field(b"0001750\0"), Ok(0o1750));
        assert_eq!(field(b"\0\0\0\0\0\0\0\0"), Ok(0));
        assert_eq!(field(b"        "), Ok(0));
        assert_eq!(field(b"  755 \0 "), Ok(0o755));
        assert_eq!(field(b"\x001750\0\0\0"), Ok(0o1750));
        assert_eq!(field(b"17777777777\0"), Ok(0o17777777777));
        assert_eq!(field(b"\x80\0\0\0\0\0\x01\0"), Ok(256));
        assert_eq!(field(b"\x81\0\0\0\0\0\0\0"), Ok(1 << 56));
        assert!(field(b"12x4\0\0\0\0").is_err());
        assert!(field(b"0008\0\0\0\0").is_err());
        assert!(field(b"12 4\0\0\0\0").is_err());
        assert!(field(b"\xff\xff\xff\xff\xff\xff\xff\xff").is_err());
    }
}
