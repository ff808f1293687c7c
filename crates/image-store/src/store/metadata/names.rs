//! Names: tags and repo digests, and how a name the user gives (a tag, a
//! repo digest, an id or a unique id prefix) resolves to an image.

use std::collections::HashSet;
use std::path::Path;

use basic_registry::Reference;
use rusqlite::{Connection, OptionalExtension as _, Transaction, params};

use crate::digest::short_id;
use crate::error::StoreError;
use crate::record::{ImageRecord, Removal, repo_name};
use crate::store::ImageStore;

impl ImageStore {
    /// Points the tag `name` (any reference form; stored familiar) at the image
    /// `id`, moving it from another image if it named one, as `docker tag` does.
    pub fn tag(&self, id: &str, name: &str) -> Result<(), StoreError> {
        let familiar = Reference::parse(name)
            .ok()
            .filter(|r| r.digest().is_none())
            .map(|r| r.familiar())
            .ok_or_else(|| StoreError::InvalidTag(name.to_string()))?;
        self.write("tag image", |tx| {
            let db = || self.db_error("tag image");
            self.require_image(tx, id, "tag image")?;
            tx.execute(
                "INSERT OR REPLACE INTO tags (name, image_id) VALUES (?1, ?2)",
                params![familiar, id],
            )
            .map_err(db())?;
            // Named again, it is an ordinary image: releasing it must not delete it.
            tx.execute("DELETE FROM doomed_images WHERE image_id = ?1", [id])
                .map_err(db())?;
            Ok(())
        })
    }

    /// The image a user means by `name`: a tag (`busybox`, `busybox:1`), a
    /// repo digest (`busybox@sha256:…`), a full id or a unique id prefix.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, StoreError> {
        let (id, _) = {
            let conn = self.conn();
            resolve_in(&conn, name).map_err(|e| e.into_store(name, &self.inner.db_path))?
        };
        self.image(&id)
    }
}

/// How a name given by the user matched an image.
pub(in crate::store) enum Matched {
    Tag(String),
    Digest(String),
    Id,
}

/// Why a name did not resolve, before the database path is attached.
pub(in crate::store) enum ResolveError {
    Db(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for ResolveError {
    fn from(e: rusqlite::Error) -> Self {
        ResolveError::Db(e)
    }
}

impl ResolveError {
    pub(in crate::store) fn into_store(self, _name: &str, db_path: &Path) -> StoreError {
        match self {
            ResolveError::Db(source) => StoreError::database("look up image", db_path, source),
            ResolveError::Store(e) => e,
        }
    }
}

pub(in crate::store) fn resolve_in(
    c: &Connection,
    name: &str,
) -> Result<(String, Matched), ResolveError> {
    if let Ok(reference) = Reference::parse(name) {
        let (table, key, matched): (&str, String, fn(String) -> Matched) = match reference.digest()
        {
            Some(digest) => (
                "repo_digests",
                format!("{}@{digest}", repo_name(&reference)),
                Matched::Digest,
            ),
            None => ("tags", reference.familiar(), Matched::Tag),
        };
        let found: Option<String> = c
            .query_row(
                &format!("SELECT image_id FROM {table} WHERE name = ?1"),
                [&key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = found {
            return Ok((id, matched(key)));
        }
    }
    let prefix = name.strip_prefix("sha256:").unwrap_or(name);
    let is_hex = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if is_hex {
        let ids: Vec<String> = c
            .prepare("SELECT id FROM images WHERE substr(id, 8, ?2) = ?1")?
            .query_map(params![prefix, prefix.len() as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        match ids.len() {
            1 => return Ok((ids.into_iter().next().unwrap_or_default(), Matched::Id)),
            0 => {}
            count => {
                return Err(ResolveError::Store(StoreError::Ambiguous {
                    prefix: name.to_string(),
                    count,
                }));
            }
        }
    }
    Err(ResolveError::Store(StoreError::NoSuchImage(
        name.to_string(),
    )))
}

pub(in crate::store) fn names_of(c: &Connection, id: &str) -> rusqlite::Result<Vec<String>> {
    c.prepare(
        "SELECT name FROM tags WHERE image_id = ?1
         UNION ALL SELECT name FROM repo_digests WHERE image_id = ?1",
    )?
    .query_map([id], |r| r.get(0))?
    .collect()
}

/// Removes the names `matched` asks to remove; returns whether the image
/// itself must go (docker: with its last tag, or when removed by id).
pub(in crate::store) fn untag(
    tx: &Transaction<'_>,
    id: &str,
    matched: Matched,
    force: bool,
    out: &mut Vec<Removal>,
) -> Result<bool, ResolveError> {
    let count = |sql: &str| tx.query_row(sql, [id], |r| r.get::<_, i64>(0));
    match matched {
        Matched::Tag(name) => {
            tx.execute("DELETE FROM tags WHERE name = ?1", [&name])?;
            out.push(Removal::Untagged(name));
            if count("SELECT COUNT(*) FROM tags WHERE image_id = ?1")? > 0 {
                return Ok(false);
            }
        }
        Matched::Digest(name) => {
            tx.execute("DELETE FROM repo_digests WHERE name = ?1", [&name])?;
            out.push(Removal::Untagged(name));
            let left = count(
                "SELECT (SELECT COUNT(*) FROM tags WHERE image_id = ?1)
                      + (SELECT COUNT(*) FROM repo_digests WHERE image_id = ?1)",
            )?;
            if left > 0 {
                return Ok(false);
            }
        }
        Matched::Id => {
            let repos: HashSet<String> = tx
                .prepare("SELECT name FROM tags WHERE image_id = ?1")?
                .query_map([id], |r| r.get::<_, String>(0))?
                .filter_map(|n| n.ok())
                .filter_map(|n| Reference::parse(&n).ok().map(|r| repo_name(&r)))
                .collect();
            if repos.len() > 1 && !force {
                return Err(ResolveError::Store(StoreError::Conflict {
                    short: short_id(id).to_string(),
                }));
            }
        }
    }
    // The image goes: its remaining names go with it.
    for name in names_of(tx, id)? {
        out.push(Removal::Untagged(name));
    }
    Ok(true)
}
