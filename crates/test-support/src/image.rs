//! Images for tests, made the way a registry user would meet them: an OCI image
//! layout written here (layers as plain tars, any paths, owners, modes and link
//! targets a hostile image could carry) and pushed to a registry with skopeo.
//!
//! ```no_run
//! use basic_test_support::image::ImageBuilder;
//! let reference = ImageBuilder::busybox()
//!     .layer(|l| {
//!         l.symlink("etc/hosts", "/tmp/outside-marker");
//!     })
//!     .config("Cmd", serde_json::json!(["cat", "/etc/hosts"]))
//!     .push("127.0.0.1:5100", "hostile/hosts-link");
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A fixed modification time, so the same layer always has the same digest.
const MTIME: u64 = 1_600_000_000;

/// One layer's tar under construction.
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(MTIME);
    h.set_size(0);
    h
}

impl LayerBuilder {
    fn new() -> Self {
        LayerBuilder {
            tar: tar::Builder::new(Vec::new()),
        }
    }

    /// A directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = header(tar::EntryType::Directory, mode, 0, 0);
        self.tar.append_data(&mut h, path, &b""[..]).unwrap();
        self
    }

    /// A regular file owned by root.
    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        self.file_owned(path, data, mode, 0, 0)
    }

    /// A regular file with an owner (setuid bits in `mode` are kept).
    pub fn file_owned(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = header(tar::EntryType::Regular, mode, uid, gid);
        h.set_size(data.len() as u64);
        self.tar.append_data(&mut h, path, data).unwrap();
        self
    }

    /// A host file copied in, e.g. a program from [`crate::programs::static_program`].
    pub fn copy(&mut self, path: &str, from: &Path, mode: u32) -> &mut Self {
        let data = std::fs::read(from)
            .unwrap_or_else(|e| panic!("reading {} for the layer: {e}", from.display()));
        self.file(path, &data, mode)
    }

    /// A symbolic link; `target` is written as given (absolute, `..`, anything).
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0);
        self.tar.append_link(&mut h, path, target).unwrap();
        self
    }

    /// A named pipe (FIFO), e.g. where a program will block opening it.
    pub fn fifo(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = header(tar::EntryType::Fifo, mode, 0, 0);
        self.tar.append_data(&mut h, path, &b""[..]).unwrap();
        self
    }

    /// A hard link to an earlier member.
    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Link, 0o644, 0, 0);
        self.tar.append_link(&mut h, path, target).unwrap();
        self
    }

    fn finish(self) -> Vec<u8> {
        self.tar.into_inner().unwrap()
    }
}

/// An image: layers and the `config` section of its image config.
pub struct ImageBuilder {
    layers: Vec<Vec<u8>>,
    config: serde_json::Map<String, Value>,
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ImageBuilder {
    /// No layers; `PATH` set as docker sets it.
    pub fn empty() -> Self {
        let mut config = serde_json::Map::new();
        config.insert(
            "Env".into(),
            json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
        );
        ImageBuilder {
            layers: Vec::new(),
            config,
        }
    }

    /// A first layer with Debian's busybox-static as `/bin/busybox`, its applets as
    /// symlinks, `/etc/passwd` and `/etc/group` with root and `nobody`, `/tmp` 1777.
    pub fn busybox() -> Self {
        let applets = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("running /bin/busybox --list (install busybox-static)");
        Self::empty().layer(|l| {
            for d in ["bin", "etc", "proc", "sys", "dev", "root"] {
                l.dir(d, 0o755);
            }
            l.dir("tmp", 0o1777);
            l.copy("bin/busybox", Path::new("/bin/busybox"), 0o755);
            for applet in String::from_utf8_lossy(&applets.stdout).lines() {
                if applet != "busybox" {
                    l.symlink(&format!("bin/{applet}"), "busybox");
                }
            }
            l.file(
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
                0o644,
            );
            l.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644);
        })
    }

    /// Adds a layer built by `build`.
    pub fn layer(mut self, build: impl FnOnce(&mut LayerBuilder)) -> Self {
        let mut layer = LayerBuilder::new();
        build(&mut layer);
        self.layers.push(layer.finish());
        self
    }

    /// Sets a field of the image config's `config` (`Cmd`, `Entrypoint`,
    /// `WorkingDir`, `User`, `Env`, ...).
    pub fn config(mut self, key: &str, value: Value) -> Self {
        self.config.insert(key.to_string(), value);
        self
    }

    /// The image's blobs (distinct, by digest: config and layers) and its manifest.
    fn assemble(&self) -> (BTreeMap<String, Vec<u8>>, Vec<u8>) {
        let mut blobs = BTreeMap::new();
        let mut put = |data: Vec<u8>| {
            let digest = format!("sha256:{}", sha256_hex(&data));
            let size = data.len();
            blobs.insert(digest.clone(), data);
            (digest, size)
        };
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for layer in &self.layers {
            let (digest, size) = put(layer.clone());
            diff_ids.push(digest.clone());
            layers.push(json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest,
                "size": size,
            }));
        }
        let config = json!({
            "architecture": crate::image::host_architecture(),
            "os": "linux",
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let (config_digest, config_size) = put(serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": layers,
        });
        (blobs, serde_json::to_vec(&manifest).unwrap())
    }

    /// Writes the image as an OCI image layout in `dir`, tagged `latest`.
    pub fn write_layout(&self, dir: &Path) {
        let dir_blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&dir_blobs).unwrap();
        let (blobs, manifest) = self.assemble();
        let write = |digest: &str, data: &[u8]| {
            let hex = digest.strip_prefix("sha256:").unwrap();
            std::fs::write(dir_blobs.join(hex), data).unwrap();
        };
        for (digest, data) in &blobs {
            write(digest, data);
        }
        let manifest_digest = format!("sha256:{}", sha256_hex(&manifest));
        write(&manifest_digest, &manifest);
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }],
        });
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    }

    /// Pushes the image to `registry` (plain HTTP, no credentials: the harness's open
    /// one) with the distribution API's requests themselves, each distinct blob once,
    /// and returns its reference (tagged as [`ImageBuilder::push`] tags). For images of
    /// thousands of layers, which skopeo pushes at about four a second.
    pub fn push_direct(&self, registry: &str, name: &str) -> String {
        let tag = unique_tag();
        let (blobs, manifest) = self.assemble();
        for (digest, data) in &blobs {
            crate::push::blob(registry, name, digest, data);
        }
        crate::push::manifest(registry, name, &tag, OCI_MANIFEST, &manifest);
        format!("{registry}/{name}:{tag}")
    }

    /// Pushes the image to `registry` (plain HTTP, e.g. the harness's open one) as
    /// `name:<this process's id>-<n>`, a tag no other push makes — not another test run's,
    /// nor another test's of this run pushing other content under the same name — and
    /// returns that reference.
    pub fn push(&self, registry: &str, name: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        self.write_layout(dir.path());
        let reference = format!("{registry}/{name}:{}", unique_tag());
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", dir.path().display()))
            .arg(format!("docker://{reference}"))
            .output()
            .expect("running skopeo (scripts/harness.sh install)");
        assert!(
            out.status.success(),
            "skopeo copy to {reference} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        reference
    }
}

/// `<this process's id>-<n>`: a tag no other push makes.
fn unique_tag() -> String {
    static PUSHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PUSHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// The OCI name of this machine's architecture (`amd64`, `arm64`, ...).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
