//! The database connection, chosen so that a full or read-only filesystem
//! still lets users read the store and free space in it.
//!
//! * **A rollback journal, kept (`PERSIST`), not WAL.** A WAL database needs its
//!   `-shm` file mapped even to be read, and the first process to open it
//!   truncates and regrows that file: on a full filesystem every command failed
//!   ("I/O error within the xShmMap method"), and a read-only one cannot hold a
//!   `-shm` at all. A rollback journal needs nothing to read but the database
//!   file and a shared `fcntl` lock, which a read-only descriptor can take.
//! * **A journal reserved in advance.** A change writes the pages it alters into
//!   the journal first. Kept at [`JOURNAL_RESERVE`] bytes of real (zero) blocks,
//!   the journal is overwritten in place, so a change that fits there — deleting
//!   a container, an image, their names — needs no new block: `rm`, `rmi` and the
//!   prunes work on a full disk and free space. SQLite truncates a journal that
//!   outgrew the reserve back to it after the commit.
//! * **Older stores in WAL** are switched on open. That needs every other
//!   connection closed (an older supervisor holds one for its container's life):
//!   until then they stay in WAL, and where their `-shm` cannot be made they are
//!   read without one (`immutable`), which is exact when the WAL is empty.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, MAIN_DB, OpenFlags};

use crate::error::StoreError;
use crate::fsutil::PRIVATE_FILE;
use crate::schema;
use crate::storage::StorageFault;

/// Bytes of journal kept allocated: a few hundred pages, more than removing
/// an image or a container alters.
pub(crate) const JOURNAL_RESERVE: u64 = 1 << 20;

/// The free space a filesystem must have for the journal to be reserved on it.
const RESERVE_ROOM: u64 = 4 * JOURNAL_RESERVE;

/// How long a command waits for another process's write to end.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an open waits to switch an older store out of WAL before it
/// leaves that for a later open.
const SWITCH_TIMEOUT: Duration = Duration::from_millis(200);

/// An open database, and why it cannot be written when it cannot.
pub(super) struct Database {
    pub(super) conn: Connection,
    /// `Some` when the filesystem allowed only reading at open.
    pub(super) read_only: Option<StorageFault>,
}

/// Opens the database at `path` for reading and writing, or, where its
/// filesystem allows only reading, for reading.
pub(super) fn open(path: &Path) -> Result<Database, StoreError> {
    let failed = match open_writable(path) {
        Ok(conn) => {
            let read_only = match conn.is_readonly(MAIN_DB) {
                Ok(true) => StorageFault::probe(path),
                _ => None,
            };
            if read_only.is_none() {
                reserve_journal(&conn, path);
            }
            return Ok(Database { conn, read_only });
        }
        Err(e) => e,
    };
    let StoreError::Storage { fault, .. } = failed else {
        return Err(failed);
    };
    if !wal_is_empty(path) {
        return Err(failed);
    }
    let conn = open_immutable(path).map_err(|_| failed)?;
    Ok(Database {
        conn,
        read_only: Some(fault),
    })
}

fn open_writable(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::database("open", path, e))?;
    init(&conn).map_err(|e| StoreError::database("open", path, e))?;
    Ok(conn)
}

/// Settings per connection, the journal, then the tables.
fn init(conn: &Connection) -> rusqlite::Result<()> {
    // The busy timeout makes a second process wait for a writer instead of failing.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    persist_journal(conn)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_RESERVE as i64)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    schema::create(conn)
}

/// A kept rollback journal for this connection. A database an older version
/// left in WAL mode is switched, unless other connections use it now (then a
/// later open does, and this one goes on in WAL).
fn persist_journal(conn: &Connection) -> rusqlite::Result<()> {
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return conn.pragma_update(None, "journal_mode", "PERSIST");
    }
    conn.busy_timeout(SWITCH_TIMEOUT)?;
    let switched =
        conn.pragma_update_and_check(None, "journal_mode", "PERSIST", |r| r.get::<_, String>(0));
    conn.busy_timeout(BUSY_TIMEOUT)?;
    match switched {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
            tracing::debug!("the store's database stays in WAL mode while others use it");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Read-only, without locks or `-shm`: SQLite then reads the database file
/// alone, which holds everything when the WAL beside it is empty.
fn open_immutable(path: &Path) -> Result<Connection, StoreError> {
    let uri = format!("file:{}?immutable=1", uri_path(path));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(uri, flags)
        .map_err(|e| StoreError::database("open", path, e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .and_then(|()| schema::check_version(&conn))
        .map_err(|e| StoreError::database("open", path, e))?;
    Ok(conn)
}

/// Whether the database's `-wal` is missing or holds no frame.
fn wal_is_empty(path: &Path) -> bool {
    match fs::metadata(side_file(path, "-wal")) {
        Ok(meta) => meta.len() == 0,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// Makes the journal at least [`JOURNAL_RESERVE`] bytes of written zeros (a
/// journal whose header is zero is an empty one to SQLite). Done under a
/// RESERVED lock, which keeps every other writer out of the journal; skipped
/// when the journal is that big already, so an open costs a `stat`, and on a
/// filesystem nearly full, whose last blocks are for the removals that free
/// space (a later open tries again).
fn reserve_journal(conn: &Connection, path: &Path) {
    let journal = side_file(path, "-journal");
    if fs::metadata(&journal).is_ok_and(|m| m.len() >= JOURNAL_RESERVE) {
        return;
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    if StorageFault::free_bytes(dir).is_none_or(|free| free < RESERVE_ROOM) {
        tracing::debug!(journal = %journal.display(), "too little room to reserve the journal");
        return;
    }
    let reserved = conn.execute_batch("BEGIN IMMEDIATE").map(|()| {
        let extended = extend_with_zeros(&journal, JOURNAL_RESERVE);
        (extended, conn.execute_batch("COMMIT"))
    });
    let result = match reserved {
        Ok((Ok(()), Ok(()))) => return,
        Ok((Err(e), _)) => e.to_string(),
        Ok((_, Err(e))) | Err(e) => e.to_string(),
    };
    tracing::debug!(journal = %journal.display(), error = %result, "journal not reserved");
}

fn extend_with_zeros(path: &Path, size: u64) -> io::Result<()> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE)
        .open(path)?;
    let zeros = vec![0u8; 64 << 10];
    let mut at = file.metadata()?.len();
    while at < size {
        let n = zeros.len().min((size - at) as usize);
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()?;
    // A new journal's name must survive a crash too.
    fs::File::open(path.parent().unwrap_or(Path::new("."))).and_then(|d| d.sync_all())
}

/// `metadata.db` + `-journal`, `-wal`, `-shm`.
pub(crate) fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut side = path.as_os_str().to_owned();
    side.push(suffix);
    PathBuf::from(side)
}

/// `path` for a `file:` URI: everything but unreserved characters and `/`
/// percent-encoded, so `?`, `#` and `%` in a directory name stay a path.
fn uri_path(path: &Path) -> String {
    path.as_os_str()
        .as_bytes()
        .iter()
        .map(|&b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_keep_their_bytes() {
        assert_eq!(
            uri_path(Path::new("/var/lib/a b?c#d%e/metadata.db")),
            "/var/lib/a%20b%3Fc%23d%25e/metadata.db"
        );
    }

    #[test]
    fn a_new_database_has_its_journal_reserved_and_no_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        let db = open(&path).unwrap();
        assert!(db.read_only.is_none());
        let mode: String = db
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "persist");
        let journal = fs::metadata(side_file(&path, "-journal")).unwrap();
        assert_eq!(journal.len(), JOURNAL_RESERVE);
        db.conn.execute("DELETE FROM containers", []).unwrap();
        assert!(!side_file(&path, "-wal").exists());
        assert!(!side_file(&path, "-shm").exists());
    }

    #[test]
    fn a_wal_database_of_an_older_version_is_switched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        {
            let old = Connection::open(&path).unwrap();
            old.pragma_update(None, "journal_mode", "WAL").unwrap();
            schema::create(&old).unwrap();
        }
        let db = open(&path).unwrap();
        let mode: String = db
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "persist");
    }

    #[test]
    fn an_idle_older_connection_keeps_working_across_the_switch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        let old = Connection::open(&path).unwrap();
        old.pragma_update(None, "journal_mode", "WAL").unwrap();
        schema::create(&old).unwrap();
        let db = open(&path).unwrap();
        db.conn.execute("DELETE FROM containers", []).unwrap();
        old.execute("DELETE FROM holders", []).unwrap();
        let n: i64 = db
            .conn
            .query_row("SELECT COUNT(*) FROM holders", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn a_wal_database_another_connection_holds_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        let old = Connection::open(&path).unwrap();
        old.pragma_update(None, "journal_mode", "WAL").unwrap();
        schema::create(&old).unwrap();
        // An older supervisor reading now and then: the switch must wait for it.
        old.execute_batch("BEGIN; SELECT COUNT(*) FROM images;")
            .unwrap();
        let db = open(&path).unwrap();
        db.conn.execute("DELETE FROM containers", []).unwrap();
        old.execute_batch("COMMIT").unwrap();
    }
}
