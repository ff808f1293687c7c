//! The extraction loop: members from the tar parser, dispatched by kind;
//! stream errors classified; directory times restored at the end.

use super::*;

impl<'o> Applier<'o> {
    pub(super) fn new(
        target: &Path,
        root_fd: OwnedFd,
        opts: &'o ApplyOptions,
        state: Rc<ReadState>,
        compression: Compression,
    ) -> Result<Self, ApplyError> {
        let root = Root::new(root_fd).map_err(|e| ApplyError::Target {
            op: "stat the target directory",
            path: target.to_owned(),
            source: e,
        })?;
        let lowers = if opts.mode == ApplyMode::Overlay && !opts.lower_layers.is_empty() {
            Some(
                Lowers::open(&opts.lower_layers).map_err(|(path, e)| ApplyError::Target {
                    op: "open the lower layer",
                    path,
                    source: e,
                })?,
            )
        } else {
            None
        };
        Ok(Applier {
            target: target.to_owned(),
            root,
            opts,
            state,
            compression,
            umask: sys::current_umask(),
            layer_paths: HashSet::new(),
            whiteouts: HashSet::new(),
            dir_times: Vec::new(),
            stats: LayerStats::default(),
            buf: vec![0u8; 256 << 10],
            last_member: String::new(),
            lowers,
            resolved: std::collections::HashMap::new(),
            footprint: footprint::Recorder::new(opts).filter(|_| opts.mode == ApplyMode::Overlay),
        })
    }

    /// With [`ApplyOptions::allow_unterminated`]: whether the stream ended
    /// cleanly at the end of a member (after its data, or after its padding)
    /// rather than inside one. Never for an empty stream or a failed one.
    pub(super) fn unterminated_end_accepted(&self, data_end: u64) -> bool {
        let pos = self.state.pos.get();
        let padded = data_end.div_ceil(512) * 512;
        self.opts.allow_unterminated
            && self.stats.entries > 0
            && self.state.eof.get()
            && self.state.error.borrow().is_none()
            && (pos == data_end || pos == padded)
    }

    /// Turn an error of the tar parser or of reading member data into the
    /// most precise [`ApplyError`].
    pub(super) fn stream_error(&self, e: io::Error) -> ApplyError {
        let offset = self.state.pos.get();
        match self.state.take_error() {
            Some(StreamError::Input(e)) => ApplyError::Read(e),
            Some(StreamError::Decompress(e)) => ApplyError::Decompress {
                compression: self.compression,
                source: e,
            },
            Some(StreamError::TooLarge(limit)) => ApplyError::Limit {
                what: "uncompressed bytes",
                limit,
                member: Some(self.last_member.clone()),
            },
            Some(StreamError::HeaderTooLarge(limit)) => ApplyError::Limit {
                what: "header bytes for one member",
                limit,
                member: Some(self.last_member.clone()),
            },
            None if self.state.eof.get() => ApplyError::Truncated {
                offset,
                last_member: self.last_member.clone(),
            },
            None => ApplyError::Tar {
                offset,
                last_member: self.last_member.clone(),
                source: e,
            },
        }
    }

    pub(super) fn run(mut self, chan: ChannelReader) -> Result<LayerStats, ApplyError> {
        let mut archive = tar::Archive::new(chan);
        // Where the last member's data ended: an unterminated archive may stop
        // there or after that member's padding, and nowhere else.
        let mut data_end = 0u64;
        {
            let mut entries = archive.entries().map_err(|e| self.stream_error(e))?;
            loop {
                self.state
                    .set_window(self.opts.limits.max_header_bytes + 512);
                let entry = match entries.next() {
                    None => break,
                    Some(Ok(entry)) => entry,
                    Some(Err(_)) if self.unterminated_end_accepted(data_end) => break,
                    Some(Err(e)) => return Err(self.stream_error(e)),
                };
                self.state.set_window(u64::MAX);
                self.stats.entries += 1;
                if self.stats.entries > self.opts.limits.max_entries {
                    return Err(ApplyError::Limit {
                        what: "members",
                        limit: self.opts.limits.max_entries,
                        member: None,
                    });
                }
                let mut entry = entry;
                self.entry(&mut entry)?;
                // Whatever the member's data was, read it here so the parser's
                // skip to the next header never counts against the header window.
                io::copy(&mut entry, &mut io::sink()).map_err(|e| self.stream_error(e))?;
                data_end = self.state.pos.get();
            }
        }
        if self.state.eof.get() && !self.unterminated_end_accepted(data_end) {
            // The parser hit the end of the stream instead of an
            // end-of-archive block.
            return Err(ApplyError::Truncated {
                offset: self.state.pos.get(),
                last_member: self.last_member.clone(),
            });
        }
        // Consume the rest (the second zero block, record padding) so the
        // digest covers the whole stream and decompression errors surface.
        self.state.set_window(u64::MAX);
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| self.stream_error(e))?;
        self.restore_dir_times()?;
        self.stats.footprint = self.footprint.take().map(footprint::Recorder::finish);
        if self.opts.sync {
            sys::syncfs(self.root.fd()).map_err(|e| ApplyError::Target {
                op: "sync the filesystem of",
                path: self.target.clone(),
                source: e,
            })?;
        }
        Ok(self.stats)
    }

    pub(super) fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), ApplyError> {
        let raw_path = entry.path_bytes().into_owned();
        self.last_member = display(&raw_path);
        let member = self.last_member.clone();
        if raw_path.len() > self.opts.limits.max_path_len {
            return Err(ApplyError::Limit {
                what: "bytes in a member name",
                limit: self.opts.limits.max_path_len as u64,
                member: Some(member),
            });
        }
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind == tar::EntryType::new(b'V') {
            // Global PAX records carry nothing a layer needs; volume labels
            // are not files.
            return Ok(());
        }
        let mut meta = meta::read_meta(entry, &member, &self.opts.limits)?;
        if let Some((uid, gid)) = self.opts.owner {
            (meta.uid, meta.gid) = (uid, gid);
        }
        let path_bytes = match meta.pax_sparse.as_ref().and_then(|s| s.name.as_ref()) {
            Some(name) => name.clone(),
            None => raw_path.clone(),
        };
        let path = meta::normalize(&path_bytes).map_err(|reason| ApplyError::Escape {
            member: member.clone(),
            reason: reason.to_owned(),
        })?;
        let (parent, name) = meta::split(&path);

        // Whiteouts and opaque markers.
        if let Some(hidden) = name
            .strip_prefix(WHITEOUT_PREFIX.as_bytes())
            .filter(|_| self.opts.whiteouts)
        {
            self.stats.whiteouts += 1;
            if name == OPAQUE_MARKER.as_bytes() {
                return self.opaque(parent, &member);
            }
            if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                // Other `.wh..wh.` names are aufs metadata (e.g. `.wh..wh.plnk`).
                return Ok(());
            }
            if hidden.is_empty() {
                return Err(ApplyError::InvalidMember {
                    member,
                    reason: "whiteout without a name".to_owned(),
                });
            }
            let mut hidden_path = parent.to_vec();
            if !hidden_path.is_empty() {
                hidden_path.push(b'/');
            }
            hidden_path.extend_from_slice(hidden);
            return self.whiteout(&hidden_path, &member);
        }

        use tar::EntryType as T;
        let is_dir = kind == T::Directory
            || kind == T::new(b'D')
            || (matches!(kind, T::Regular | T::Continuous) && raw_path.ends_with(b"/"));
        if path.is_empty() {
            if !is_dir {
                return Err(ApplyError::InvalidMember {
                    member,
                    reason: "names the root directory but is not a directory".to_owned(),
                });
            }
            if !self.opts.root_metadata {
                return Ok(());
            }
            return self.root_dir(&meta, &member);
        }
        match kind {
            _ if is_dir => self.directory(&path, &meta, &member),
            T::Regular | T::Continuous | T::GNUSparse => {
                self.file(&path, &meta, entry, &member, kind == T::GNUSparse)
            }
            T::Link => {
                let target = self.link_target(entry, &member)?;
                self.hardlink(&path, &target, &member)
            }
            T::Symlink => {
                let target = self.link_target(entry, &member)?;
                self.symlink(&path, &target, &meta, &member)
            }
            T::Char | T::Block if !self.opts.device_nodes => {
                tracing::warn!(
                    member,
                    "device node not created (device nodes are refused here)"
                );
                Ok(())
            }
            T::Char | T::Block | T::Fifo => {
                let header = entry.header();
                let dev = match kind {
                    T::Fifo => 0,
                    _ => {
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        libc::makedev(major, minor)
                    }
                };
                let fmt = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                self.special(&path, fmt, dev, &meta, &member)
            }
            other => Err(ApplyError::InvalidMember {
                member,
                reason: format!("unsupported entry type {:?}", other.as_byte() as char),
            }),
        }?;
        Ok(())
    }

    pub(super) fn link_target<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        member: &str,
    ) -> Result<Vec<u8>, ApplyError> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| ApplyError::InvalidMember {
                member: member.to_owned(),
                reason: "link without a target".to_owned(),
            })?
            .into_owned();
        if target.len() > self.opts.limits.max_path_len {
            return Err(ApplyError::Limit {
                what: "bytes in a link target",
                limit: self.opts.limits.max_path_len as u64,
                member: Some(member.to_owned()),
            });
        }
        if target.is_empty() {
            return Err(ApplyError::InvalidMember {
                member: member.to_owned(),
                reason: "link with an empty target".to_owned(),
            });
        }
        Ok(target)
    }

    /// Record `path` (and its ancestors) as part of this layer.
    pub(super) fn mark(&mut self, path: &[u8]) {
        if !self.layer_paths.insert(path.to_vec()) {
            return;
        }
        let mut p = path;
        while let Some(i) = p.iter().rposition(|&b| b == b'/') {
            p = &p[..i];
            if !self.layer_paths.insert(p.to_vec()) {
                break;
            }
        }
    }

    pub(super) fn fs_err<'m>(
        member: &'m str,
        op: &'static str,
    ) -> impl FnOnce(io::Error) -> ApplyError + 'm {
        move |source| ApplyError::Fs {
            member: member.to_owned(),
            op,
            source,
        }
    }

    pub(super) fn restore_dir_times(&mut self) -> Result<(), ApplyError> {
        let dir_times = std::mem::take(&mut self.dir_times);
        for (path, times) in dir_times.iter() {
            let member = display(path);
            let fd = if path.is_empty() {
                sys::openat(self.root.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
            } else {
                let c = sys::cstr(path).map_err(Self::fs_err(&member, "name"))?;
                sys::openat2(
                    self.root.fd(),
                    &c,
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                    sys::RESOLVE_IN_ROOT,
                )
            };
            let fd = match fd {
                Ok(fd) => fd,
                // Replaced later in the layer by something else.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(Self::fs_err(&member, "open the directory")(e)),
            };
            // futimens refuses O_PATH descriptors; utimensat on "" does not.
            sys::utimensat_empty(fd.as_fd_ref(), times)
                .map_err(Self::fs_err(&member, "set directory times"))?;
        }
        Ok(())
    }
}
