//! Truncated, corrupt and oversized streams are errors, never a silently
//! shorter tree.

mod common;

use basic_rootfs::{ApplyError, ApplyMode, ApplyOptions, Limits, apply_layer};
use common::{Layer, gzip, privileged, zstd};

fn sample() -> Vec<u8> {
    let mut l = Layer::new();
    l.dir("etc", 0o755);
    for i in 0..20 {
        let data: Vec<u8> = (0..3000u32).map(|j| (i * 7 + j) as u8).collect();
        l.file(&format!("etc/f{i}"), &data, 0o644);
    }
    l.finish()
}

fn apply(data: &[u8], opts: &ApplyOptions) -> Result<basic_rootfs::LayerStats, ApplyError> {
    let tmp = tempfile::tempdir().unwrap();
    apply_layer(data, tmp.path(), opts)
}

fn flatten() -> ApplyOptions {
    ApplyOptions::new(ApplyMode::Flatten)
}

#[test]
fn truncated_gzip_zstd_and_tar_are_errors() {
    if !privileged() {
        return;
    }
    let tar = sample();
    for (name, data) in [("gzip", gzip(&tar)), ("zstd", zstd(&tar))] {
        apply(&data, &flatten()).unwrap();
        let step = (data.len() / 97).max(1);
        let mut cuts: Vec<usize> = (1..data.len()).step_by(step).collect();
        cuts.extend([data.len() - 1, data.len() - 4, data.len() - 8]);
        for cut in cuts {
            let err = apply(&data[..cut], &flatten())
                .err()
                .unwrap_or_else(|| panic!("{name} cut at {cut}/{} applied", data.len()));
            assert!(
                matches!(
                    err,
                    ApplyError::Decompress { .. }
                        | ApplyError::Truncated { .. }
                        | ApplyError::Tar { .. }
                ),
                "{name} cut at {cut}: {err}"
            );
        }
    }
    // Plain tar cut anywhere before its end-of-archive block, including
    // exactly at a member boundary.
    let end = tar.len() - 1024;
    for cut in (1..=end).step_by(97).chain([512, end, end - 512]) {
        let err = apply(&tar[..cut], &flatten())
            .err()
            .unwrap_or_else(|| panic!("tar cut at {cut} applied"));
        assert!(
            matches!(err, ApplyError::Truncated { .. } | ApplyError::Tar { .. }),
            "cut {cut}: {err}"
        );
    }
    let mut l = Layer::new();
    l.file("a", b"x", 0o644);
    let err = apply(&l.unterminated(), &flatten()).unwrap_err();
    assert!(matches!(err, ApplyError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("`a`"), "{err}");
    // A lone end-of-archive block is accepted (GNU tar does too).
    apply(&tar[..end + 512], &flatten()).unwrap();
    // The empty stream is not a layer.
    assert!(matches!(
        apply(b"", &flatten()).unwrap_err(),
        ApplyError::Truncated { .. }
    ));
}

#[test]
fn trailing_garbage_after_compressed_stream_is_an_error() {
    if !privileged() {
        return;
    }
    let tar = sample();
    for mut data in [gzip(&tar), zstd(&tar)] {
        data.extend_from_slice(b"garbage after the stream");
        let err = apply(&data, &flatten()).unwrap_err();
        assert!(matches!(err, ApplyError::Decompress { .. }), "{err}");
    }
    // Concatenated gzip members are one valid stream.
    let (a, b) = tar.split_at(4096);
    let mut two = gzip(a);
    two.extend(gzip(b));
    apply(&two, &flatten()).unwrap();
}

#[test]
fn corrupt_headers_are_errors() {
    if !privileged() {
        return;
    }
    let mut tar = sample();
    tar[100] ^= 0x55; // inside the first header: checksum mismatch
    let err = apply(&tar, &flatten()).unwrap_err();
    assert!(matches!(err, ApplyError::Tar { .. }), "{err}");
    let noise: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert!(apply(&noise, &flatten()).is_err());
    // Gzip magic followed by junk.
    assert!(matches!(
        apply(&[0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6], &flatten()).unwrap_err(),
        ApplyError::Decompress { .. }
    ));
}

#[test]
fn decompression_bomb_hits_the_byte_limit() {
    if !privileged() {
        return;
    }
    let mut l = Layer::new();
    l.file("zeros", &vec![0u8; 32 << 20], 0o644);
    let bomb = gzip(&l.finish());
    assert!(bomb.len() < 1 << 20);
    let opts = flatten().limits(Limits::default().max_bytes(8 << 20));
    let err = apply(&bomb, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::Limit {
                what: "uncompressed bytes",
                ..
            }
        ),
        "{err}"
    );
    // Padding after the end of the archive counts too.
    let mut l = Layer::new();
    l.file("a", b"", 0o644);
    let mut tar = l.finish();
    tar.resize(32 << 20, 0);
    let err = apply(&zstd(&tar), &opts).unwrap_err();
    assert!(matches!(err, ApplyError::Limit { .. }), "{err}");
}

#[test]
fn absurd_headers_hit_limits() {
    if !privileged() {
        return;
    }
    // Too many members.
    let mut l = Layer::new();
    for i in 0..50 {
        l.file(&format!("f{i}"), b"", 0o644);
    }
    let err = apply(
        &l.finish(),
        &flatten().limits(Limits::default().max_entries(10)),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::Limit {
                what: "members",
                ..
            }
        ),
        "{err}"
    );
    // A PAX header larger than the header window.
    let mut l = Layer::new();
    let big = vec![b'a'; 2 << 20];
    l.pax(&[("comment", &big)]).file("x", b"", 0o644);
    let err = apply(&l.finish(), &flatten()).unwrap_err();
    assert!(matches!(err, ApplyError::Limit { .. }), "{err}");
    // A name longer than allowed.
    let mut l = Layer::new();
    let long = "a/".repeat(3000) + "f";
    l.pax(&[("path", long.as_bytes())]).file("x", b"", 0o644);
    let err = apply(&l.finish(), &flatten()).unwrap_err();
    assert!(matches!(err, ApplyError::Limit { .. }), "{err}");
    // An xattr value over 64 KiB.
    let mut l = Layer::new();
    let value = vec![b'v'; 70 << 10];
    l.pax(&[("SCHILY.xattr.user.big", &value)])
        .file("x", b"", 0o644);
    let err = apply(&l.finish(), &flatten()).unwrap_err();
    assert!(matches!(err, ApplyError::Limit { .. }), "{err}");
    assert!(err.to_string().contains("`x`"), "{err}");
    // A header claiming an enormous size, on a short stream.
    let mut l = Layer::new();
    let mut h = tar::Header::new_gnu();
    h.set_path("huge").unwrap();
    h.set_size(1 << 40);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    l.bytes(h.as_bytes()).bytes(&[b'x'; 4096]);
    let err = apply(&l.unterminated(), &flatten()).unwrap_err();
    assert!(matches!(err, ApplyError::Truncated { .. }), "{err}");
}

#[test]
fn failing_reader_is_a_read_error() {
    if !privileged() {
        return;
    }
    struct Failing(usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("connection reset"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(0x1f);
            self.0 -= n;
            Ok(n)
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let err = apply_layer(Failing(3), tmp.path(), &flatten()).unwrap_err();
    assert!(matches!(err, ApplyError::Read(_)), "{err}");
}

/// `allow_unterminated`: a tar that stops at the end of a member, as Go's
/// `archive/tar` accepts and `umoci insert` writes, applies whole; a cut
/// anywhere inside a member still does not.
#[test]
fn unterminated_archives_end_only_at_member_boundaries() {
    if !privileged() {
        return;
    }
    let mut l = Layer::new();
    l.dir("d", 0o755);
    l.file("d/five", b"12345", 0o644);
    let padded = l.unterminated(); // headers, data and padding; no end blocks
    let data_end = padded.len() - (512 - 5);
    let lenient = || flatten().allow_unterminated(true);
    for cut in [data_end, padded.len()] {
        let tmp = tempfile::tempdir().unwrap();
        apply_layer(&padded[..cut], tmp.path(), &lenient())
            .unwrap_or_else(|e| panic!("cut at {cut} (a member boundary): {e}"));
        assert_eq!(std::fs::read(tmp.path().join("d/five")).unwrap(), b"12345");
        let tmp = tempfile::tempdir().unwrap();
        apply_layer(&gzip(&padded[..cut])[..], tmp.path(), &lenient()).unwrap();
        let strict = apply(&padded[..cut], &flatten()).unwrap_err();
        assert!(
            matches!(strict, ApplyError::Truncated { .. }),
            "default stays strict: {strict}"
        );
    }
    // Inside the data, inside the padding, inside the second header.
    for cut in [data_end - 2, data_end + 3, 512 + 100] {
        let err = apply(&padded[..cut], &lenient()).unwrap_err();
        assert!(
            matches!(err, ApplyError::Truncated { .. } | ApplyError::Tar { .. }),
            "cut at {cut}: {err}"
        );
    }
    assert!(
        apply(b"", &lenient()).is_err(),
        "an empty stream is not a layer"
    );
}
