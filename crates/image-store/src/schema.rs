//! The metadata database's tables.
//!
//! Blobs and layer directories are the content; these tables say which of
//! them count and who refers to them. A layer or blob nothing here refers to
//! is garbage, whatever is on disk.

use rusqlite::Connection;

/// Bumped when the tables change incompatibly; stored in `PRAGMA user_version`.
pub(crate) const VERSION: i32 = 5;
// Version 2 added `holders` and `doomed_images`, version 3 `containers`, version 4
// `compressed_layers`, version 5 `image_parents`; every
// statement below is `IF NOT EXISTS`, so re-running them upgrades an older
// database in place.

pub(crate) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS images (
    id                  TEXT PRIMARY KEY,      -- config digest
    manifest_digest     TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    created             TEXT,                  -- from the config, RFC 3339
    architecture        TEXT,
    os                  TEXT,
    size                INTEGER NOT NULL,      -- bytes of the layers' files
    added               INTEGER NOT NULL       -- unix seconds, when first stored
);
CREATE TABLE IF NOT EXISTS layers (
    chain_id        TEXT PRIMARY KEY,
    diff_id         TEXT NOT NULL,
    parent          TEXT,                      -- chain id of the layer below
    blob_digest     TEXT,                      -- compressed blob it came from
    media_type      TEXT,
    compressed_size INTEGER,
    size            INTEGER NOT NULL,
    added           INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    chain_id TEXT NOT NULL REFERENCES layers(chain_id),
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS image_blobs (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest   TEXT NOT NULL,
    PRIMARY KEY (image_id, digest)
);
CREATE INDEX IF NOT EXISTS image_blobs_digest ON image_blobs(digest);
CREATE TABLE IF NOT EXISTS tags (
    name     TEXT PRIMARY KEY,                 -- familiar repo:tag
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS repo_digests (
    name     TEXT PRIMARY KEY,                 -- familiar repo@digest
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
-- A lease protects what an unfinished pull has already verified from GC.
CREATE TABLE IF NOT EXISTS leases (
    id      TEXT PRIMARY KEY,
    pid     INTEGER NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_refs (
    lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    key      TEXT NOT NULL,                    -- a blob digest or a chain id
    PRIMARY KEY (lease_id, key)
);
-- A container or an `image mount` using an image: while a row names it, the
-- image record (and so its layers and blobs) stays, whatever `rmi -f` says.
-- No foreign key: a holder must be able to name an image that is doomed.
CREATE TABLE IF NOT EXISTS holders (
    kind     TEXT NOT NULL,                    -- 'container' | 'mount'
    id       TEXT NOT NULL,                    -- container id, or the image id for a mount
    image_id TEXT NOT NULL,
    created  INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS holders_image ON holders(image_id);
-- Images `rmi -f` removed while they were held: kept (untagged) until their
-- last holder lets go, then collected.
CREATE TABLE IF NOT EXISTS doomed_images (
    image_id TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE
);
-- Containers, from `create` until `rm`. Each also has a `holders` row for its
-- image, written and deleted in the same transaction as this one.
CREATE TABLE IF NOT EXISTS containers (
    id            TEXT PRIMARY KEY,            -- 64 hex digits
    name          TEXT NOT NULL UNIQUE,
    image_id      TEXT NOT NULL,
    image         TEXT NOT NULL,               -- the image as the user named it
    created       INTEGER NOT NULL,            -- unix nanoseconds
    config        TEXT NOT NULL,               -- the engine's settings, JSON
    started       INTEGER,                     -- last start, unix nanoseconds
    finished      INTEGER,                     -- last exit, unix nanoseconds
    exit_code     INTEGER,
    oom_killed    INTEGER NOT NULL DEFAULT 0,
    restart_count INTEGER NOT NULL DEFAULT 0
);
-- Compressed forms of layers made for a push (a loaded image's plain tar layers),
-- so the next push sends the same blob without compressing again. The blob itself
-- is kept by an `image_blobs` row of the image pushed; a row whose blob is gone
-- means nothing.
CREATE TABLE IF NOT EXISTS compressed_layers (
    digest     TEXT PRIMARY KEY,               -- the compressed blob
    diff_id    TEXT NOT NULL,                  -- the tar it holds
    media_type TEXT NOT NULL,
    size       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS compressed_layers_diff ON compressed_layers(diff_id);
-- The image a build step started from, for the images a build makes (docker's
-- `Parent`): an untagged image with children is an intermediate one, hidden from
-- `images` and kept by `image prune` while it has a descendant. No foreign key on
-- `parent`: removing a parent (`prune -a`) leaves its children parentless, which
-- `delete_image_rows` does by hand.
CREATE TABLE IF NOT EXISTS image_parents (
    image_id TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    parent   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS image_parents_parent ON image_parents(parent);
";

/// Creates or upgrades the tables. Only a new or older database is written
/// to: a read-only command (`images`, `run` of a present image) must not pay
/// for a write transaction and its fsyncs.
pub(crate) fn create(conn: &Connection) -> rusqlite::Result<()> {
    let current: i32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current != VERSION {
        conn.execute_batch(TABLES)?;
        conn.pragma_update(None, "user_version", VERSION)?;
    }
    Ok(())
}

/// For a database that cannot be upgraded (it is read-only): fails unless its
/// tables are this version's.
pub(crate) fn check_version(conn: &Connection) -> rusqlite::Result<()> {
    let current: i32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current == VERSION {
        return Ok(());
    }
    Err(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
        Some(format!(
            "its tables are version {current}, this version reads {VERSION}, and it cannot be upgraded while read-only"
        )),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_4_database_is_upgraded_in_place_keeping_its_rows() {
        let conn = Connection::open_in_memory().unwrap();
        let v4: String = TABLES
            .split("-- The image a build step started from")
            .next()
            .unwrap()
            .to_string();
        conn.execute_batch(&v4).unwrap();
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute(
            "INSERT INTO images (id, manifest_digest, manifest_media_type, size, added)
             VALUES ('sha256:a', 'sha256:m', 'x', 0, 0)",
            [],
        )
        .unwrap();
        create(&conn).unwrap();
        let version: i32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
        conn.execute(
            "INSERT INTO image_parents (image_id, parent) VALUES ('sha256:a', 'sha256:p')",
            [],
        )
        .unwrap();
        let images: i64 = conn
            .query_row("SELECT COUNT(*) FROM images", [], |r| r.get(0))
            .unwrap();
        assert_eq!(images, 1);
    }
}
