//! Regular file contents: plain, GNU sparse (holes found again) and PAX
//! sparse (regions from the map).

use super::*;

impl Applier<'_> {
    pub(super) fn read_data<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        buf: &mut [u8],
    ) -> Result<usize, ApplyError> {
        loop {
            match entry.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.stream_error(e)),
            }
        }
    }

    pub(super) fn short_data(&self) -> ApplyError {
        ApplyError::Truncated {
            offset: self.state.pos.get(),
            last_member: self.last_member.clone(),
        }
    }

    pub(super) fn write_plain<R: Read>(
        &mut self,
        file: &mut File,
        entry: &mut tar::Entry<'_, R>,
        size: u64,
        member: &str,
    ) -> Result<u64, ApplyError> {
        let mut buf = std::mem::take(&mut self.buf);
        let mut done = 0u64;
        let result = loop {
            if done == size {
                break Ok(done);
            }
            let n = match self.read_data(entry, &mut buf) {
                Ok(0) => break Err(self.short_data()),
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if let Err(e) = file.write_all(&buf[..n]) {
                break Err(Self::fs_err(member, "write the file")(e));
            }
            done += n as u64;
        };
        self.buf = buf;
        result
    }

    /// Account a sparse file's logical size against the byte limit.
    pub(super) fn check_logical(&self, size: u64, member: &str) -> Result<(), ApplyError> {
        if self.stats.file_bytes.saturating_add(size) > self.opts.limits.max_bytes {
            return Err(ApplyError::Limit {
                what: "bytes of file content",
                limit: self.opts.limits.max_bytes,
                member: Some(member.to_owned()),
            });
        }
        Ok(())
    }

    /// GNU sparse members: the parser fills holes with zeros; leave zero
    /// blocks as holes again.
    pub(super) fn write_holey<R: Read>(
        &mut self,
        file: &mut File,
        entry: &mut tar::Entry<'_, R>,
        size: u64,
        member: &str,
    ) -> Result<u64, ApplyError> {
        self.check_logical(size, member)?;
        let mut buf = std::mem::take(&mut self.buf);
        let mut done = 0u64;
        let result = (|| {
            while done < size {
                let n = self.read_data(entry, &mut buf)?;
                if n == 0 {
                    return Err(self.short_data());
                }
                for block in buf[..n].chunks(4096) {
                    if block.iter().all(|&b| b == 0) {
                        file.seek(SeekFrom::Current(block.len() as i64))
                            .map_err(Self::fs_err(member, "seek in the file"))?;
                    } else {
                        file.write_all(block)
                            .map_err(Self::fs_err(member, "write the file"))?;
                    }
                }
                done += n as u64;
            }
            file.set_len(size)
                .map_err(Self::fs_err(member, "set the file size"))?;
            Ok(size)
        })();
        self.buf = buf;
        result
    }

    /// PAX sparse members: data regions follow one another in the member's
    /// data (after the map, in format 1.0).
    pub(super) fn write_pax_sparse<R: Read>(
        &mut self,
        file: &mut File,
        entry: &mut tar::Entry<'_, R>,
        sparse: &PaxSparse,
        member: &str,
    ) -> Result<u64, ApplyError> {
        self.check_logical(sparse.real_size, member)?;
        let bad = |reason: &str| ApplyError::InvalidMember {
            member: member.to_owned(),
            reason: reason.to_owned(),
        };
        let stored = entry.size();
        let mut consumed = 0u64;
        let map = match &sparse.map {
            Some(map) => map.clone(),
            None => {
                // Format 1.0: decimal numbers, one per line, padded to 512 bytes.
                let mut header = Vec::new();
                let mut read_line = |consumed: &mut u64| -> Result<u64, ApplyError> {
                    let mut line = Vec::new();
                    loop {
                        let mut b = [0u8; 1];
                        if self.read_data(entry, &mut b)? == 0 {
                            return Err(self.short_data());
                        }
                        *consumed += 1;
                        header.push(b[0]);
                        if b[0] == b'\n' {
                            break;
                        }
                        line.push(b[0]);
                        if line.len() > 20 {
                            return Err(bad("malformed sparse map"));
                        }
                    }
                    meta::parse_u64_pub(&line).ok_or_else(|| bad("malformed sparse map"))
                };
                let count = read_line(&mut consumed)?;
                if count > self.opts.limits.max_header_bytes / 2 {
                    return Err(bad("sparse map too long"));
                }
                let mut map = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let off = read_line(&mut consumed)?;
                    let len = read_line(&mut consumed)?;
                    map.push((off, len));
                }
                let pad = (512 - consumed % 512) % 512;
                let mut skip = vec![0u8; pad as usize];
                let mut got = 0;
                while got < skip.len() {
                    let n = self.read_data(entry, &mut skip[got..])?;
                    if n == 0 {
                        return Err(self.short_data());
                    }
                    got += n;
                }
                consumed += pad;
                map
            }
        };
        let mut last_end = 0u64;
        let mut buf = std::mem::take(&mut self.buf);
        let result = (|| {
            for &(off, len) in &map {
                let end = off
                    .checked_add(len)
                    .ok_or_else(|| bad("sparse region overflows"))?;
                if off < last_end || end > sparse.real_size {
                    return Err(bad("sparse regions out of order or past the end"));
                }
                if consumed + len > stored {
                    return Err(bad("sparse regions hold more data than the member"));
                }
                last_end = end;
                file.seek(SeekFrom::Start(off))
                    .map_err(Self::fs_err(member, "seek in the file"))?;
                let mut left = len;
                while left > 0 {
                    let want = left.min(buf.len() as u64) as usize;
                    let n = self.read_data(entry, &mut buf[..want])?;
                    if n == 0 {
                        return Err(self.short_data());
                    }
                    file.write_all(&buf[..n])
                        .map_err(Self::fs_err(member, "write the file"))?;
                    left -= n as u64;
                }
                consumed += len;
            }
            file.set_len(sparse.real_size)
                .map_err(Self::fs_err(member, "set the file size"))?;
            Ok(sparse.real_size)
        })();
        self.buf = buf;
        result
    }
}
