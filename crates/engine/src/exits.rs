//! A container's last run, kept beside its record for when the store cannot take it.
//!
//! The supervisor records each start and exit in the store. On a full disk that write
//! can fail, and the record then says "started, never exited", which reads as a lost
//! supervisor (`Exited (255)`) instead of the container's own code. So the supervisor
//! also keeps `containers/<id>/last-exit`: a file of fixed size, written full of blanks
//! before the container runs, so that writing the exit into it later overwrites bytes
//! that already have their block and cannot fail for want of space. Whoever reads the
//! container ([`fold`]) takes the file's run when it is newer than the record's.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};

use basic_image_store::{ContainerExit, ContainerRecord};

use crate::paths::ContainerPaths;
use crate::privacy::PRIVATE_FILE;

/// The file's size: "code started finished oom" fits with room to spare.
const SIZE: usize = 64;

/// One run as the file keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastRun {
    /// When it started, in unix nanoseconds.
    pub started: i64,
    /// How it ended.
    pub exit: ContainerExit,
}

/// Makes the file exist at its full size, blank, unless it does already (it may hold
/// an exit the store has not taken yet).
pub(crate) fn reserve(paths: &ContainerPaths) -> io::Result<()> {
    let path = paths.last_exit();
    if fs::metadata(&path).is_ok_and(|m| m.len() >= SIZE as u64) {
        return Ok(());
    }
    let file = open(paths)?;
    file.write_all_at(&[b' '; SIZE], 0)?;
    file.sync_data()
}

/// Writes `run` over the reserved bytes, durably.
pub(crate) fn write(paths: &ContainerPaths, run: LastRun) -> io::Result<()> {
    let file = open(paths)?;
    file.write_all_at(&encode(run), 0)?;
    file.sync_data()
}

/// The run the file holds, if any.
pub(crate) fn read(paths: &ContainerPaths) -> Option<LastRun> {
    decode(&fs::read(paths.last_exit()).ok()?)
}

/// `record` with the file's run in place of its own when the file's is newer: the
/// store missed that start or that exit.
pub(crate) fn fold(record: &mut ContainerRecord, paths: &ContainerPaths) {
    let Some(run) = read(paths) else { return };
    let same_or_later_run = record.started.is_none_or(|s| s <= run.started);
    let later_exit = record.exit.is_none_or(|e| e.finished < run.exit.finished);
    if same_or_later_run && later_exit {
        record.started = Some(run.started);
        record.exit = Some(run.exit);
    }
}

fn open(paths: &ContainerPaths) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE)
        .open(paths.last_exit())
}

fn encode(run: LastRun) -> [u8; SIZE] {
    let text = format!(
        "{} {} {} {}",
        run.exit.code,
        run.started,
        run.exit.finished,
        u8::from(run.exit.oom_killed)
    );
    let mut bytes = [b' '; SIZE];
    bytes[..text.len()].copy_from_slice(text.as_bytes());
    bytes[SIZE - 1] = b'\n';
    bytes
}

fn decode(bytes: &[u8]) -> Option<LastRun> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut fields = text.split_whitespace();
    let code = fields.next()?.parse().ok()?;
    let started = fields.next()?.parse().ok()?;
    let finished = fields.next()?.parse().ok()?;
    let oom_killed = fields.next()? == "1";
    Some(LastRun {
        started,
        exit: ContainerExit {
            code,
            finished,
            oom_killed,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::EnginePaths;

    fn run(code: i32, started: i64, finished: i64) -> LastRun {
        LastRun {
            started,
            exit: ContainerExit {
                code,
                finished,
                oom_killed: false,
            },
        }
    }

    fn record(started: Option<i64>, exit: Option<LastRun>) -> ContainerRecord {
        ContainerRecord {
            id: "c0ffee".into(),
            name: "web".into(),
            image_id: "sha256:x".into(),
            image: "busybox".into(),
            created: 1,
            config: serde_json::Value::Null,
            started,
            exit: exit.map(|r| r.exit),
            restart_count: 0,
        }
    }

    fn container() -> (tempfile::TempDir, ContainerPaths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = EnginePaths {
            root: dir.path().join("root"),
            state: dir.path().join("state"),
        }
        .container("c0ffee");
        fs::create_dir_all(&paths.dir).unwrap();
        (dir, paths)
    }

    #[test]
    fn a_reserved_file_is_blank_and_an_exit_overwrites_it_in_place() {
        let (_dir, paths) = container();
        reserve(&paths).unwrap();
        assert_eq!(read(&paths), None);
        let last = LastRun {
            exit: ContainerExit {
                code: 137,
                finished: i64::MAX,
                oom_killed: true,
            },
            ..run(0, -1, 0)
        };
        write(&paths, last).unwrap();
        assert_eq!(fs::metadata(paths.last_exit()).unwrap().len(), SIZE as u64);
        assert_eq!(read(&paths), Some(last));
        // Reserving again keeps what it holds.
        reserve(&paths).unwrap();
        assert_eq!(read(&paths), Some(last));
    }

    #[test]
    fn the_file_wins_only_with_a_later_run() {
        let (_dir, paths) = container();
        write(&paths, run(7, 10, 20)).unwrap();
        // The store missed the exit of this run.
        let mut r = record(Some(10), None);
        fold(&mut r, &paths);
        assert_eq!((r.started, r.exit.map(|e| e.code)), (Some(10), Some(7)));
        // It missed the start and the exit of the first run.
        let mut r = record(None, None);
        fold(&mut r, &paths);
        assert_eq!((r.started, r.exit.map(|e| e.code)), (Some(10), Some(7)));
        // It missed the exit of a later run than an earlier recorded one.
        let mut r = record(Some(5), Some(run(1, 5, 6)));
        fold(&mut r, &paths);
        assert_eq!(r.exit.map(|e| e.code), Some(7));
        // The record is newer: a later start, or the same exit recorded.
        let mut r = record(Some(30), None);
        fold(&mut r, &paths);
        assert_eq!((r.started, r.exit), (Some(30), None));
        let mut r = record(Some(10), Some(run(7, 10, 20)));
        fold(&mut r, &paths);
        assert_eq!(r.exit.map(|e| e.finished), Some(20));
    }

    #[test]
    fn garbage_reads_as_nothing() {
        let (_dir, paths) = container();
        fs::write(paths.last_exit(), "7 x\n").unwrap();
        assert_eq!(read(&paths), None);
        let mut r = record(Some(1), None);
        fold(&mut r, &paths);
        assert_eq!(r.exit, None);
    }
}
