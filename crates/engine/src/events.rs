//! What happens to containers, as docker's events: `create`, `start`, `die`, `stop`,
//! `kill`, `pause`, `unpause`, `rename`, `destroy`…
//!
//! Every process of the engine — a command, a detached supervisor, an API server —
//! appends to one journal of the store (`<root>/events.jsonl`, one [`EventMessage`] per
//! line, each written with a single `O_APPEND` write so lines from different processes
//! never mix), and [`Engine::events`] reads it back and follows it. The journal is the
//! store's, as its containers are (two stores on one machine do not see each other's
//! events), and is cut to its newer half when it grows past [`MAX_JOURNAL`], as docker
//! keeps only recent events.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use bollard_stubs::models::{EventActor, EventMessage, EventMessageTypeEnum};

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::status::now_nanos;

/// The journal's size past which older events are dropped.
pub const MAX_JOURNAL: u64 = 4 << 20;

/// How often a follower looks for new events.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(50);

/// Which events, and whether to wait for more.
#[derive(Debug, Clone, Default)]
pub struct EventOptions {
    /// Only events at or after this time (unix nanoseconds).
    pub since: Option<i64>,
    /// Only events before this time (unix nanoseconds); reading stops there.
    pub until: Option<i64>,
    /// docker's filters: `container` (id or name), `event` (action), `type`.
    pub filters: HashMap<String, Vec<String>>,
    /// After what is there, what follows (until `until`, or until the callback fails).
    pub follow: bool,
}

impl EventOptions {
    fn wanted(&self, e: &EventMessage) -> bool {
        let at = e.time_nano.unwrap_or(0);
        if self.since.is_some_and(|s| at < s) || self.until.is_some_and(|u| at >= u) {
            return false;
        }
        self.filters.iter().all(|(key, values)| {
            values.iter().any(|v| match key.as_str() {
                "event" => e.action.as_deref() == Some(v.as_str()),
                "type" => e.typ.is_some_and(|t| t.to_string() == *v),
                "container" => e.actor.as_ref().is_some_and(|a| {
                    a.id.as_deref().is_some_and(|id| id.starts_with(v.as_str()))
                        || a.attributes
                            .as_ref()
                            .and_then(|at| at.get("name"))
                            .is_some_and(|n| n == v)
                }),
                _ => false,
            })
        })
    }
}

/// The journal of the store at `root`.
pub(crate) fn journal(root: &Path) -> PathBuf {
    root.join("events.jsonl")
}

/// Appends a container event. A journal that cannot be written costs only the event:
/// it is logged, and the verb goes on.
pub(crate) fn container_event(root: &Path, c: &Container, action: &str, extra: &[(&str, String)]) {
    let mut attributes = HashMap::from([
        ("name".to_string(), c.record.name.clone()),
        ("image".to_string(), c.record.image.clone()),
    ]);
    for (k, v) in extra {
        attributes.insert((*k).to_string(), v.clone());
    }
    let now = now_nanos();
    let event = EventMessage {
        typ: Some(EventMessageTypeEnum::CONTAINER),
        action: Some(action.to_string()),
        actor: Some(EventActor {
            id: Some(c.record.id.clone()),
            attributes: Some(attributes),
        }),
        scope: None,
        time: Some(now / 1_000_000_000),
        time_nano: Some(now),
    };
    if let Err(e) = append(&journal(root), &event) {
        tracing::warn!("recording the {action} event of {}: {e}", c.record.name);
    }
}

fn append(path: &Path, event: &EventMessage) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    // One write: with O_APPEND the kernel places it whole at the end, whoever else writes.
    file.write_all(&line)?;
    if file.metadata()?.len() > MAX_JOURNAL {
        trim(path)?;
    }
    Ok(())
}

/// Keeps the newer half of the journal: written to a temporary file and renamed over
/// it, under an exclusive lock so that two trimmers do not race.
fn trim(path: &Path) -> std::io::Result<()> {
    let lock = File::open(path)?;
    lock.lock()?;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len <= MAX_JOURNAL {
        return Ok(());
    }
    file.seek(SeekFrom::Start(len - MAX_JOURNAL / 2))?;
    let mut reader = BufReader::new(file);
    let mut partial = String::new();
    reader.read_line(&mut partial)?;
    let tmp = path.with_extension("jsonl.tmp");
    let mut out = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    std::io::copy(&mut reader, &mut out)?;
    std::fs::rename(&tmp, path)
}

impl Engine {
    /// Calls `on_event` with each event `options` asks for, oldest first; with `follow`,
    /// keeps going as events happen (until `until`, or until `on_event` fails).
    pub fn events(
        &self,
        options: &EventOptions,
        mut on_event: impl FnMut(&EventMessage) -> Result<()>,
    ) -> Result<()> {
        let path = journal(&self.paths.root);
        let mut at = Position::default();
        loop {
            let (events, next) = read_from(&path, at)?;
            for e in events.iter().filter(|e| options.wanted(e)) {
                on_event(e)?;
            }
            at = next;
            let past_until = options.until.is_some_and(|u| now_nanos() >= u);
            if !options.follow || past_until {
                return Ok(());
            }
            std::thread::sleep(FOLLOW_INTERVAL);
        }
    }
}

impl Engine {
    /// The newest event `options` asks for (`follow` is ignored), read from the end of the
    /// journal back: a container's last `die` is among the last lines, and a journal of a
    /// long-lived store holds megabytes. Reading stops at events older than `since` (less
    /// a second: processes append in about, not exactly, the order of their clocks).
    pub fn last_event(&self, options: &EventOptions) -> Result<Option<EventMessage>> {
        last_matching(&journal(&self.paths.root), options)
    }
}

/// [`Engine::last_event`] on the journal at `path`.
fn last_matching(path: &Path, options: &EventOptions) -> Result<Option<EventMessage>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EngineError::io("reading", path)(e)),
    };
    let oldest = options.since.map(|s| s - 1_000_000_000);
    let mut end = file
        .metadata()
        .map_err(EngineError::io("reading", path))?
        .len();
    // Bytes after the last newline seen so far: the start of a line being read back.
    let mut tail: Vec<u8> = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(BACKWARD_CHUNK);
        let mut chunk = vec![0u8; (end - start) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut chunk, start)
            .map_err(EngineError::io("reading", path))?;
        chunk.extend_from_slice(&tail);
        // The first piece may be cut: it is kept for the next chunk, unless the file
        // starts here.
        let mut lines = chunk.split(|b| *b == b'\n');
        let first = if start > 0 { lines.next() } else { None };
        let whole: Vec<&[u8]> = lines.collect();
        for line in whole.iter().rev().filter(|l| !l.is_empty()) {
            let Ok(event) = serde_json::from_slice::<EventMessage>(line) else {
                continue;
            };
            if options.wanted(&event) {
                return Ok(Some(event));
            }
            if oldest.is_some_and(|o| event.time_nano.unwrap_or(0) < o) {
                return Ok(None);
            }
        }
        tail = first.map(<[u8]>::to_vec).unwrap_or_default();
        end = start;
    }
    Ok(None)
}

/// How much of the journal [`Engine::last_event`] reads at a time, from the end.
const BACKWARD_CHUNK: u64 = 64 << 10;

/// Where a reader of the journal is: the offset after what it read, in which file (its
/// device and inode: a journal replaced by a trim is read again from its start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Position {
    offset: u64,
    file: Option<(u64, u64)>,
}

/// The whole events after `at` (a line still being written is left for the next read),
/// and where they end.
fn read_from(path: &Path, at: Position) -> Result<(Vec<EventMessage>, Position)> {
    use std::os::unix::fs::MetadataExt as _;
    let handle = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), Position::default()));
        }
        Err(e) => return Err(EngineError::io("reading", path)(e)),
    };
    let meta = handle
        .metadata()
        .map_err(EngineError::io("reading", path))?;
    let file = Some((meta.dev(), meta.ino()));
    let mut offset = if file == at.file { at.offset } else { 0 };
    let mut reader = BufReader::new(handle);
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(EngineError::io("reading", path))?;
    let mut events = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .map_err(EngineError::io("reading", path))?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        offset += n as u64;
        // A line that does not parse was torn by a crash mid-write: skipped.
        if let Ok(event) = serde_json::from_str(&line) {
            events.push(event);
        }
    }
    Ok((events, Position { offset, file }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, id: &str, name: &str, at: i64) -> EventMessage {
        EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some(id.into()),
                attributes: Some(HashMap::from([("name".to_string(), name.to_string())])),
            }),
            scope: None,
            time: Some(at / 1_000_000_000),
            time_nano: Some(at),
        }
    }

    #[test]
    fn the_journal_reads_back_in_order_and_filters_as_docker() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal(dir.path());
        append(&path, &event("create", "aaa111", "web", 10)).unwrap();
        append(&path, &event("start", "aaa111", "web", 20)).unwrap();
        append(&path, &event("start", "bbb222", "db", 30)).unwrap();
        // A torn last line (a crash mid-write) is not an event yet.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"Type\":\"contai")
            .unwrap();
        let (all, at) = read_from(&path, Position::default()).unwrap();
        assert_eq!(all.len(), 3);
        let options = EventOptions {
            filters: HashMap::from([
                ("event".to_string(), vec!["start".to_string()]),
                (
                    "container".to_string(),
                    vec!["web".to_string(), "bbb".to_string()],
                ),
            ]),
            since: Some(15),
            ..Default::default()
        };
        let picked: Vec<_> = all.iter().filter(|e| options.wanted(e)).collect();
        assert_eq!(picked.len(), 2);
        // Reading on from the offset finds only what came after.
        append(&path, &event("die", "aaa111", "web", 40)).unwrap();
        let (more, _) = read_from(&path, at).unwrap();
        assert!(
            more.is_empty(),
            "the torn line was completed by nobody: {more:?}"
        );
    }

    #[test]
    fn the_newest_wanted_event_is_read_from_the_end_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal(dir.path());
        let die = |id: &str, at: i64, code: &str| {
            let mut e = event("die", id, "x", at);
            if let Some(a) = e.actor.as_mut().and_then(|a| a.attributes.as_mut()) {
                a.insert("exitCode".into(), code.into());
            }
            e
        };
        append(&path, &die("target", 1_000, "3")).unwrap();
        append(&path, &die("target", 2_000, "7")).unwrap();
        // Several chunks of other containers' events after it.
        let mut at = 3_000;
        while std::fs::metadata(&path).unwrap().len() < 3 * BACKWARD_CHUNK + 100 {
            append(&path, &event("start", &format!("{at:064}"), "other", at)).unwrap();
            at += 1;
        }
        // A torn last line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"Type\":\"contai")
            .unwrap();
        let wanted = |since| EventOptions {
            since,
            filters: HashMap::from([
                ("container".to_string(), vec!["target".to_string()]),
                ("event".to_string(), vec!["die".to_string()]),
            ]),
            ..Default::default()
        };
        let found = last_matching(&path, &wanted(None)).unwrap().unwrap();
        assert_eq!(found.time_nano, Some(2_000), "the newer of the two");
        let code = found.actor.unwrap().attributes.unwrap()["exitCode"].clone();
        assert_eq!(code, "7");
        // Events older than `since` (less a second) are not looked through.
        let late = wanted(Some(at + 2_000_000_000));
        assert!(last_matching(&path, &late).unwrap().is_none());
        assert!(
            last_matching(&dir.path().join("none.jsonl"), &wanted(None))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_long_journal_keeps_its_newer_half() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal(dir.path());
        let (mut written, mut i) = (0u64, 0i64);
        while written <= MAX_JOURNAL + MAX_JOURNAL / 4 {
            let e = event("start", &format!("{i:064}"), "x", i);
            written += serde_json::to_vec(&e).unwrap().len() as u64 + 1;
            append(&path, &e).unwrap();
            i += 1;
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= MAX_JOURNAL);
        let (kept, _) = read_from(&path, Position::default()).unwrap();
        assert_eq!(
            kept.last().unwrap().time_nano,
            Some(i - 1),
            "the newest stay"
        );
        assert!(kept[0].time_nano > Some(0), "the oldest went");
        // Every kept line is whole: the cut fell between events.
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, kept.len());
    }
}
