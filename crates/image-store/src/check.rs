//! `system check [--repair]`: re-hash every blob, check every record's
//! references, and (on request) remove what is broken so that a later pull
//! fetches it again.
//!
//! A layer's compressed blob may legitimately be absent (its chain ID was
//! extracted from another image's blob), so only blobs an image cannot be
//! read without (manifest, config) must exist.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;

use rusqlite::{Connection, Transaction};
use sha2::{Digest as _, Sha256};

use crate::error::StoreError;
use crate::record::Removal;
use crate::store::{Garbage, ImageStore};

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A blob file's bytes do not hash to its name.
    CorruptBlob {
        /// The name it is stored under.
        digest: String,
        /// What its bytes hash to.
        actual: String,
    },
    /// A file in `blobs/sha256/` whose name is not a digest.
    StrayBlobFile {
        /// Its name.
        name: String,
    },
    /// A recorded layer whose directory is gone.
    MissingLayerDir {
        /// The layer's chain ID.
        chain_id: String,
    },
    /// A directory in `layers/` nothing records (a crash between rename and commit).
    UnrecordedLayerDir {
        /// Its name.
        name: String,
    },
    /// An image's manifest or config blob is missing or corrupt.
    BrokenImageBlob {
        /// The image id.
        image: String,
        /// The blob.
        digest: String,
    },
    /// An image uses a layer that is broken or not recorded.
    BrokenImageLayer {
        /// The image id.
        image: String,
        /// The layer's chain ID.
        chain_id: String,
    },
    /// A tag or repo digest names an image that is not recorded.
    DanglingName {
        /// The name.
        name: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::CorruptBlob { digest, actual } => {
                write!(
                    f,
                    "blob {digest} is corrupt: its content hashes to {actual}"
                )
            }
            Problem::StrayBlobFile { name } => {
                write!(f, "blobs/sha256/{name} is not named by a digest")
            }
            Problem::MissingLayerDir { chain_id } => {
                write!(f, "layer {chain_id}: its directory is missing")
            }
            Problem::UnrecordedLayerDir { name } => {
                write!(f, "layers/{name} is not recorded as a layer")
            }
            Problem::BrokenImageBlob { image, digest } => {
                write!(f, "image {image}: blob {digest} is missing or corrupt")
            }
            Problem::BrokenImageLayer { image, chain_id } => {
                write!(f, "image {image}: layer {chain_id} is missing or broken")
            }
            Problem::DanglingName { name } => {
                write!(f, "{name} points at an image that is not recorded")
            }
        }
    }
}

/// What a check found, and what a repair removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Every problem found.
    pub problems: Vec<Problem>,
    /// What `--repair` removed (images, layers; blobs are named in `problems`).
    pub removed: Vec<Removal>,
}

impl ImageStore {
    /// Checks the whole store; with `repair`, removes corrupt blobs, layers
    /// whose directory is gone, images that cannot be used any more, and
    /// then collects garbage. The check runs under the store's lock, so a
    /// concurrent pull's half-committed work is never mistaken for damage;
    /// without `repair` it only reads, so it works on a full or read-only store.
    pub fn check(&self, repair: bool) -> Result<CheckReport, StoreError> {
        if !repair {
            return self.read_locked("check the store", |c| Ok(self.examine(c)?.report));
        }
        self.write_collecting("check the store", |tx, garbage| {
            let mut found = self.examine(tx)?;
            self.repair(tx, garbage, &found.damage, &mut found.report)?;
            Ok(found.report)
        })
    }

    fn examine(&self, c: &Connection) -> Result<Examined, StoreError> {
        let mut report = CheckReport::default();
        let blobs = self.check_blobs(&mut report.problems)?;
        let layers = self.check_layers(c, &mut report.problems)?;
        let images = self.check_images(c, &blobs, &layers, &mut report)?;
        Ok(Examined {
            report,
            damage: Damage {
                blobs,
                layers,
                images,
            },
        })
    }

    fn check_blobs(&self, problems: &mut Vec<Problem>) -> Result<HashSet<String>, StoreError> {
        let dir = self.root().join("blobs/sha256");
        let mut bad = HashSet::new();
        for entry in fs::read_dir(&dir)
            .map_err(StoreError::io("list", &dir))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            if self.blob_path(&digest).is_err() {
                problems.push(Problem::StrayBlobFile { name });
                continue;
            }
            let actual =
                hash_file(&entry.path()).map_err(StoreError::io("read blob", entry.path()))?;
            if actual != digest {
                problems.push(Problem::CorruptBlob {
                    digest: digest.clone(),
                    actual,
                });
                bad.insert(digest);
            }
        }
        Ok(bad)
    }

    fn check_layers(
        &self,
        tx: &Connection,
        problems: &mut Vec<Problem>,
    ) -> Result<HashSet<String>, StoreError> {
        let db = || self.db_error("check layers");
        let recorded: Vec<String> = tx
            .prepare("SELECT chain_id FROM layers")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(db())?;
        let mut bad = HashSet::new();
        for chain_id in &recorded {
            if !self.layer_dir(chain_id)?.join("diff").is_dir() {
                problems.push(Problem::MissingLayerDir {
                    chain_id: chain_id.clone(),
                });
                bad.insert(chain_id.clone());
            }
        }
        let known: HashSet<&str> = recorded
            .iter()
            .filter_map(|c| c.strip_prefix("sha256:"))
            .collect();
        let dir = self.root().join("layers");
        for entry in fs::read_dir(&dir)
            .map_err(StoreError::io("list", &dir))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known.contains(name.as_str()) {
                problems.push(Problem::UnrecordedLayerDir { name });
            }
        }
        Ok(bad)
    }

    /// Returns the images that cannot be used any more.
    fn check_images(
        &self,
        tx: &Connection,
        bad_blobs: &HashSet<String>,
        bad_layers: &HashSet<String>,
        report: &mut CheckReport,
    ) -> Result<Vec<String>, StoreError> {
        let db = || self.db_error("check images");
        let images: Vec<(String, String)> = tx
            .prepare("SELECT id, manifest_digest FROM images")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(db())?;
        let mut broken = Vec::new();
        for (id, manifest) in images {
            let mut ok = true;
            for digest in [&id, &manifest] {
                if bad_blobs.contains(digest) || !self.has_blob(digest) {
                    report.problems.push(Problem::BrokenImageBlob {
                        image: id.clone(),
                        digest: digest.clone(),
                    });
                    ok = false;
                }
            }
            let layers: Vec<(String, bool)> = tx
                .prepare(
                    "SELECT il.chain_id, l.chain_id IS NOT NULL FROM image_layers il
                     LEFT JOIN layers l ON l.chain_id = il.chain_id WHERE il.image_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .map_err(db())?;
            for (chain_id, recorded) in layers {
                if !recorded || bad_layers.contains(&chain_id) {
                    report.problems.push(Problem::BrokenImageLayer {
                        image: id.clone(),
                        chain_id,
                    });
                    ok = false;
                }
            }
            if !ok {
                broken.push(id);
            }
        }
        let dangling: Vec<String> = tx
            .prepare(
                "SELECT name FROM tags WHERE image_id NOT IN (SELECT id FROM images)
                 UNION ALL SELECT name FROM repo_digests WHERE image_id NOT IN (SELECT id FROM images)",
            )
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(db())?;
        report.problems.extend(
            dangling
                .into_iter()
                .map(|name| Problem::DanglingName { name }),
        );
        Ok(broken)
    }

    fn repair(
        &self,
        tx: &Transaction<'_>,
        garbage: &mut Garbage,
        damage: &Damage,
        report: &mut CheckReport,
    ) -> Result<(), StoreError> {
        let db = || self.db_error("repair");
        for digest in &damage.blobs {
            // A corrupt blob is no content whatever the records say: it goes now.
            let path = self.blob_path(digest)?;
            fs::remove_file(&path).map_err(StoreError::io("remove corrupt blob", &path))?;
        }
        for id in &damage.images {
            // ON DELETE CASCADE takes its tags, digests and layer references.
            tx.execute("DELETE FROM images WHERE id = ?1", [id])
                .map_err(db())?;
            report.removed.push(Removal::Deleted(id.clone()));
        }
        tx.execute(
            "DELETE FROM tags WHERE image_id NOT IN (SELECT id FROM images)",
            [],
        )
        .map_err(db())?;
        tx.execute(
            "DELETE FROM repo_digests WHERE image_id NOT IN (SELECT id FROM images)",
            [],
        )
        .map_err(db())?;
        for chain_id in &damage.layers {
            tx.execute("DELETE FROM layers WHERE chain_id = ?1", [chain_id])
                .map_err(db())?;
            // What is left of its directory (layer.json) goes too.
            garbage.add(self.layer_dir(chain_id)?);
            report.removed.push(Removal::Deleted(chain_id.clone()));
        }
        // Unrecorded directories never counted: move them out of the way.
        let dir = self.root().join("layers");
        for problem in &report.problems {
            if let Problem::UnrecordedLayerDir { name } = problem {
                garbage.add(dir.join(name));
            }
        }
        self.collect(tx, garbage, &mut report.removed)
    }
}

/// What a check found: the report, and what a repair removes.
struct Examined {
    report: CheckReport,
    damage: Damage,
}

/// Corrupt blobs, layers whose directory is gone, images that cannot be used.
struct Damage {
    blobs: HashSet<String>,
    layers: HashSet<String>,
    images: Vec<String>,
}

fn hash_file(path: &std::path::Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}
