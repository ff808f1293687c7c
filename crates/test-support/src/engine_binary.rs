//! The engine's own binaries as the target of a container (CVE-2019-5736: a
//! process in the container re-opens the runtime's `/proc/PID/exe` and writes
//! into the host's binary).
//!
//! Attacks run against a [`BinaryCopy`] in a temporary directory, never against
//! the build output; its hash and its (device, inode) pair tell afterwards
//! whether the attack reached it.
//!
//! The binaries are dynamically linked, so when a container process executes
//! one (a `#!/proc/self/exe` script, a `/bin/sh` symlink to `/proc/self/exe`),
//! the image's dynamic loader runs it and looks for its libraries in the image.
//! [`DynamicLinking::stall_in_layer`] puts the host's loader in the image and a
//! named pipe wherever a library would be: the engine's process then waits in
//! `open` inside the container, as long as the attacker wants, instead of
//! racing it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::image::LayerBuilder;

/// A copy of a binary in a temporary directory of its own, with what it was.
pub struct BinaryCopy {
    _dir: tempfile::TempDir,
    path: PathBuf,
    sha256: String,
    identity: (u64, u64),
}

impl BinaryCopy {
    /// Copies `original` (keeping its name and mode) and records its hash.
    pub fn of(original: &Path) -> BinaryCopy {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::Builder::new()
            .prefix("basic-docker-binary-copy-")
            .tempdir()
            .unwrap();
        let path = dir.path().join(original.file_name().unwrap());
        std::fs::copy(original, &path)
            .unwrap_or_else(|e| panic!("copying {}: {e}", original.display()));
        let meta = std::fs::metadata(&path).unwrap();
        BinaryCopy {
            sha256: sha256_of(&path),
            identity: (meta.dev(), meta.ino()),
            _dir: dir,
            path,
        }
    }

    /// Copies `original` into a new directory under `parent`, with `companions` (programs
    /// it looks for beside itself) next to it, everything owned by `owner` (uid, gid): an
    /// ordinary user's own installation, which that user — and so a rootless container's
    /// root — could overwrite if it reached it.
    pub fn owned_by(
        original: &Path,
        companions: &[&Path],
        parent: &Path,
        owner: (u32, u32),
    ) -> BinaryCopy {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::Builder::new()
            .prefix("binary-copy-")
            .tempdir_in(parent)
            .unwrap();
        std::os::unix::fs::chown(dir.path(), Some(owner.0), Some(owner.1)).unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut path = PathBuf::new();
        for (i, program) in std::iter::once(&original).chain(companions).enumerate() {
            let to = dir.path().join(program.file_name().unwrap());
            crate::rootless::copy_in_another_process(program, &to)
                .unwrap_or_else(|e| panic!("copying {}: {e}", program.display()));
            std::os::unix::fs::chown(&to, Some(owner.0), Some(owner.1)).unwrap();
            if i == 0 {
                path = to;
            }
        }
        let meta = std::fs::metadata(&path).unwrap();
        BinaryCopy {
            sha256: sha256_of(&path),
            identity: (meta.dev(), meta.ino()),
            _dir: dir,
            path,
        }
    }

    /// Where the copy is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its hash when it was made.
    pub fn original_sha256(&self) -> &str {
        &self.sha256
    }

    /// Its hash now.
    pub fn current_sha256(&self) -> String {
        sha256_of(&self.path)
    }

    /// Its (`st_dev`, `st_ino`), as `stat` reports them on the host.
    pub fn identity(&self) -> (u64, u64) {
        self.identity
    }
}

/// `sha256sum`: the binaries are large, and the test profile's own hashing is slow.
fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("running sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// How a dynamically linked binary finds its libraries.
#[derive(Debug, Clone)]
pub struct DynamicLinking {
    /// The program interpreter (`/lib64/ld-linux-x86-64.so.2`).
    pub loader: PathBuf,
    /// The libraries it needs, by name (`libc.so.6`).
    pub libraries: Vec<String>,
    /// The host directories they came from (`/lib/x86_64-linux-gnu`).
    pub directories: Vec<PathBuf>,
}

/// `binary`'s loader and libraries as `ldd` reports them; `None` for a static binary.
pub fn dynamic_linking(binary: &Path) -> Option<DynamicLinking> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .expect("running ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut loader = None;
    let mut libraries = Vec::new();
    let mut directories: Vec<PathBuf> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        match (words.next(), words.next()) {
            (Some("=>"), Some(resolved)) if resolved.starts_with('/') => {
                libraries.push(first.to_string());
                let dir = Path::new(resolved).parent().unwrap().to_path_buf();
                if !directories.contains(&dir) {
                    directories.push(dir);
                }
            }
            _ if first.starts_with('/') => loader = Some(PathBuf::from(first)),
            _ => {}
        }
    }
    Some(DynamicLinking {
        loader: loader?,
        libraries,
        directories,
    })
}

/// Where a loader without a cache looks, besides the host's own library directories.
const DEFAULT_LIBRARY_DIRS: &[&str] = &["/lib", "/usr/lib", "/lib64", "/usr/lib64"];

impl DynamicLinking {
    /// Every path (absolute, inside a root) where the loader may look for a library.
    pub fn library_paths(&self) -> Vec<String> {
        let mut dirs: Vec<String> = Vec::new();
        for dir in &self.directories {
            let dir = dir.to_string_lossy().to_string();
            let usr = match dir.strip_prefix("/usr") {
                Some(rest) => rest.to_string(),
                None => format!("/usr{dir}"),
            };
            dirs.push(dir);
            dirs.push(usr);
        }
        dirs.extend(DEFAULT_LIBRARY_DIRS.iter().map(|d| d.to_string()));
        dirs.dedup();
        let mut paths = Vec::new();
        for dir in &dirs {
            for library in &self.libraries {
                let path = format!("{dir}/{library}");
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
        paths
    }

    /// Directories (relative) that must exist for the loader and the pipes.
    fn directories_in_root(&self) -> Vec<String> {
        let mut wanted: Vec<String> = Vec::new();
        let leaves = self
            .library_paths()
            .into_iter()
            .chain([self.loader.to_string_lossy().to_string()]);
        for leaf in leaves {
            let mut path = Path::new(&leaf).parent();
            let mut chain = Vec::new();
            while let Some(p) = path.filter(|p| *p != Path::new("/")) {
                chain.push(p.strip_prefix("/").unwrap().to_string_lossy().to_string());
                path = p.parent();
            }
            for dir in chain.into_iter().rev() {
                if !wanted.contains(&dir) {
                    wanted.push(dir);
                }
            }
        }
        wanted
    }

    /// The host's loader, and a named pipe wherever a library may be looked for.
    pub fn stall_in_layer(&self, layer: &mut LayerBuilder) {
        for dir in self.directories_in_root() {
            layer.dir(&dir, 0o755);
        }
        let loader = std::fs::canonicalize(&self.loader).unwrap();
        layer.copy(relative(&self.loader), &loader, 0o755);
        for path in self.library_paths() {
            layer.fifo(relative(&path), 0o644);
        }
    }

    /// The same in the root filesystem directory `root`.
    pub fn stall_in_dir(&self, root: &Path) {
        for dir in self.directories_in_root() {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::copy(&self.loader, root.join(relative(&self.loader))).unwrap();
        for path in self.library_paths() {
            let status = Command::new("mkfifo")
                .arg(root.join(relative(&path)))
                .status()
                .expect("running mkfifo");
            assert!(status.success(), "mkfifo {path}");
        }
    }
}

fn relative(path: &(impl AsRef<Path> + ?Sized)) -> &str {
    path.as_ref()
        .to_str()
        .unwrap()
        .strip_prefix('/')
        .expect("an absolute path")
}

/// What the attacker program (`exe_attacker.c`) wrote down, line by line.
#[derive(Debug, Clone, Default)]
pub struct AttackReport {
    /// The report's text.
    pub text: String,
}

impl AttackReport {
    /// The report at `path` (empty when it does not exist yet).
    pub fn read(path: &Path) -> AttackReport {
        AttackReport {
            text: std::fs::read_to_string(path).unwrap_or_default(),
        }
    }

    /// Reads `path` until `done` holds for it, or `timeout` passes.
    pub fn wait(path: &Path, timeout: Duration, done: impl Fn(&AttackReport) -> bool) -> Self {
        let until = Instant::now() + timeout;
        loop {
            let report = AttackReport::read(path);
            if done(&report) || Instant::now() > until {
                return report;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lines<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.text
            .lines()
            .filter(move |l| l.split_whitespace().next() == Some(kind))
    }

    fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }

    /// The attacker runs and scans the container's processes.
    pub fn started(&self) -> bool {
        self.lines("scanning").next().is_some()
    }

    /// It finished every phase.
    pub fn finished(&self) -> bool {
        self.lines("done").next().is_some()
    }

    /// It found the process it was after and tried to open its binary (whether
    /// the kernel let it or not).
    pub fn reached_target(&self) -> bool {
        self.lines("opened")
            .chain(self.lines("attempt"))
            .any(|l| Self::field(l, "target") == Some("1"))
    }

    /// (`st_dev`, `st_ino`) of every binary it holds a handle on, and whether that handle
    /// is on a read-only mount.
    pub fn opened(&self) -> Vec<((u64, u64), bool)> {
        self.lines("opened")
            .filter_map(|l| {
                let identity = (
                    Self::field(l, "dev")?.parse().ok()?,
                    Self::field(l, "ino")?.parse().ok()?,
                );
                Some((identity, Self::field(l, "ro") == Some("1")))
            })
            .collect()
    }

    /// Whether it held a handle on `copy` itself through a mount that is not read-only:
    /// one it could re-open for writing once nothing runs the binary. A handle through a
    /// read-only mount (the sealed program's own) cannot be: the kernel answers EROFS,
    /// whoever asks (basic-runtime's `sealed_exe` test shows it).
    pub fn holds_writably(&self, copy: &BinaryCopy) -> bool {
        self.opened()
            .iter()
            .any(|(identity, read_only)| *identity == copy.identity() && !read_only)
    }

    /// Asserts that the attacker found the process running the engine's `copy` (the
    /// positive control) and reached nothing of it: the copy is unchanged, was never
    /// re-opened for writing, and no handle on it is held through a writable mount.
    #[track_caller]
    pub fn assert_nothing_reached(&self, copy: &BinaryCopy, what: &str) {
        assert!(
            self.reached_target(),
            "positive control: {what}: the attacker never found the process running the \
             engine's binary:\n{}",
            self.text
        );
        let mut reached = Vec::new();
        let now = copy.current_sha256();
        if now != copy.original_sha256() {
            reached.push(format!(
                "the binary was overwritten (sha256 {} became {now})",
                copy.original_sha256()
            ));
        }
        if self.got_writable() {
            reached.push("the attacker re-opened the binary for writing".to_string());
        }
        if self.holds_writably(copy) {
            reached.push(format!(
                "the attacker holds a handle on the binary itself (dev, inode {:?}) through a \
                 mount that is not read-only, which it can re-open for writing once nothing \
                 runs it",
                copy.identity()
            ));
        }
        assert!(
            reached.is_empty(),
            "{what}: {}\nthe attacker's report:\n{}",
            reached.join("; "),
            self.text
        );
    }

    /// Whether it ever re-opened a binary for writing.
    pub fn got_writable(&self) -> bool {
        self.lines("writable").next().is_some()
    }
}
