//! Container records: what `create` decided and what the last run ended with.
//!
//! A record lives from `create` to `rm`. It holds the container's image (a
//! `holders` row written in the same transaction), so the image's layers stay
//! while any container uses them. Whether a container is running right now is
//! not stored here: that is the runtime's live state, which a crash can wipe;
//! the record keeps only what must survive one (created, last start, last exit).

use rusqlite::{OptionalExtension as _, Row, Transaction, params};
use serde_json::Value;

use crate::error::StoreError;
use crate::record::{HolderKind, Removal};
use crate::store::ImageStore;

/// One container, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique among containers (docker's `--name`, or a generated one).
    pub name: String,
    /// The image's id (config digest).
    pub image_id: String,
    /// The image as the user named it (`busybox`, `127.0.0.1:5000/app:1`).
    pub image: String,
    /// When it was created, in unix nanoseconds.
    pub created: i64,
    /// The engine's settings for it (command, restart policy, ...), opaque here.
    pub config: Value,
    /// The last start, in unix nanoseconds.
    pub started: Option<i64>,
    /// The last exit, when it has exited since that start.
    pub exit: Option<ContainerExit>,
    /// How often a restart policy restarted it.
    pub restart_count: u32,
}

/// How a container's last run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerExit {
    /// The exit code docker reports (128 + signal for a signalled init).
    pub code: i32,
    /// When, in unix nanoseconds.
    pub finished: i64,
    /// Whether the kernel's OOM killer ended it.
    pub oom_killed: bool,
}

const COLUMNS: &str = "id, name, image_id, image, created, config, started, finished, \
                       exit_code, oom_killed, restart_count";

impl ImageStore {
    /// Records a new container and holds its image, in one transaction. Fails
    /// with [`StoreError::NameInUse`] when another container has the name, and
    /// with [`StoreError::NoSuchImage`] when the image was removed meanwhile.
    pub fn create_container(&self, record: &ContainerRecord) -> Result<(), StoreError> {
        self.write("create container", |tx| {
            let db = || self.db_error("create container");
            let owner: Option<String> = tx
                .query_row(
                    "SELECT id FROM containers WHERE name = ?1",
                    [&record.name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db())?;
            if let Some(id) = owner {
                return Err(StoreError::NameInUse {
                    name: record.name.clone(),
                    id,
                });
            }
            self.hold_in(tx, HolderKind::Container, &record.id, &record.image_id)?;
            tx.execute(
                &format!("INSERT INTO containers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![
                    record.id,
                    record.name,
                    record.image_id,
                    record.image,
                    record.created,
                    record.config.to_string(),
                    record.started,
                    record.exit.map(|e| e.finished),
                    record.exit.map(|e| e.code),
                    record.exit.is_some_and(|e| e.oom_killed),
                    record.restart_count,
                ],
            )
            .map_err(db())?;
            Ok(())
        })
    }

    /// Every container, oldest first.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM containers ORDER BY created, id");
        let rows = self.read("list containers", |c| {
            c.prepare(&sql)?
                .query_map([], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().collect()
    }

    /// The container named by a full id, a name, or a unique id prefix (in that
    /// order, as docker resolves them).
    pub fn container(&self, query: &str) -> Result<ContainerRecord, StoreError> {
        // Each step reads only the rows it matches: every lookup of one container (each
        // API request, each look of a wait) must not parse every record of the store.
        let name = query.strip_prefix('/').unwrap_or(query);
        let by = |condition: &str, key: &str| {
            let sql = format!("SELECT {COLUMNS} FROM containers WHERE {condition} ORDER BY id");
            let rows = self.read("find a container", |c| {
                c.prepare(&sql)?
                    .query_map([key], from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })?;
            rows.into_iter().collect::<Result<Vec<_>, StoreError>>()
        };
        if let Some(found) = by("id = ?1", query)?.pop() {
            return Ok(found);
        }
        if let Some(found) = by("name = ?1", name)?.pop() {
            return Ok(found);
        }
        if query.is_empty() {
            return Err(StoreError::NoSuchContainer(query.to_string()));
        }
        // A prefix compared as a string: `LIKE` would read `%` and `_` in it as patterns.
        let mut matches = by("substr(id, 1, length(?1)) = ?1", query)?;
        match matches.len() {
            1 => Ok(matches.remove(0)),
            0 => Err(StoreError::NoSuchContainer(query.to_string())),
            count => Err(StoreError::AmbiguousContainer {
                prefix: query.to_string(),
                count,
            }),
        }
    }

    /// Records a start: clears the last exit.
    pub fn container_started(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.update_container(
            id,
            "record container start",
            "UPDATE containers SET started = ?2, finished = NULL, exit_code = NULL, \
             oom_killed = 0 WHERE id = ?1",
            params![id, at],
        )
    }

    /// Records an exit; `restarting` counts a restart the policy is about to make.
    pub fn container_exited(
        &self,
        id: &str,
        exit: ContainerExit,
        restarting: bool,
    ) -> Result<(), StoreError> {
        self.update_container(
            id,
            "record container exit",
            "UPDATE containers SET finished = ?2, exit_code = ?3, oom_killed = ?4, \
             restart_count = restart_count + ?5 WHERE id = ?1",
            params![
                id,
                exit.finished,
                exit.code,
                exit.oom_killed,
                u32::from(restarting)
            ],
        )
    }

    /// Gives a container another name; fails with [`StoreError::NameInUse`]
    /// when another container has it.
    pub fn rename_container(&self, id: &str, name: &str) -> Result<(), StoreError> {
        self.write("rename container", |tx| {
            let db = || self.db_error("rename container");
            let owner: Option<String> = tx
                .query_row("SELECT id FROM containers WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db())?;
            match owner {
                Some(owner) if owner == id => return Ok(()),
                Some(owner) => {
                    return Err(StoreError::NameInUse {
                        name: name.to_string(),
                        id: owner,
                    });
                }
                None => {}
            }
            let changed = tx
                .execute(
                    "UPDATE containers SET name = ?2 WHERE id = ?1",
                    params![id, name],
                )
                .map_err(db())?;
            if changed == 0 {
                return Err(StoreError::NoSuchContainer(id.to_string()));
            }
            Ok(())
        })
    }

    /// Replaces the engine's settings of a container.
    pub fn set_container_config(&self, id: &str, config: &Value) -> Result<(), StoreError> {
        self.update_container(
            id,
            "update container",
            "UPDATE containers SET config = ?2 WHERE id = ?1",
            params![id, config.to_string()],
        )
    }

    /// Deletes the record and releases its image, in one transaction; an image
    /// `rmi -f` removed while this container used it is collected now.
    pub fn remove_container(&self, id: &str) -> Result<Vec<Removal>, StoreError> {
        self.write_collecting("remove container", |tx, garbage| {
            delete_row(self, tx, id)?;
            self.release_in(tx, garbage, HolderKind::Container, id)
        })
    }

    fn update_container(
        &self,
        id: &str,
        op: &'static str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<(), StoreError> {
        self.write(op, |tx| {
            let changed = tx.execute(sql, params).map_err(self.db_error(op))?;
            if changed == 0 {
                return Err(StoreError::NoSuchContainer(id.to_string()));
            }
            Ok(())
        })
    }
}

fn delete_row(store: &ImageStore, tx: &Transaction<'_>, id: &str) -> Result<(), StoreError> {
    let changed = tx
        .execute("DELETE FROM containers WHERE id = ?1", [id])
        .map_err(store.db_error("remove container"))?;
    if changed == 0 {
        return Err(StoreError::NoSuchContainer(id.to_string()));
    }
    Ok(())
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<ContainerRecord, StoreError>> {
    let id: String = r.get(0)?;
    let config: String = r.get(5)?;
    let config = match serde_json::from_str(&config) {
        Ok(config) => config,
        Err(e) => {
            return Ok(Err(StoreError::Corrupt {
                what: format!("the record of container {id}"),
                reason: e.to_string(),
            }));
        }
    };
    let finished: Option<i64> = r.get(7)?;
    let code: Option<i32> = r.get(8)?;
    let exit = match (finished, code) {
        (Some(finished), Some(code)) => Some(ContainerExit {
            code,
            finished,
            oom_killed: r.get(9)?,
        }),
        _ => None,
    };
    Ok(Ok(ContainerRecord {
        id,
        name: r.get(1)?,
        image_id: r.get(2)?,
        image: r.get(3)?,
        created: r.get(4)?,
        config,
        started: r.get(6)?,
        exit,
        restart_count: r.get(10)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str) -> ContainerRecord {
        ContainerRecord {
            id: id.to_string(),
            name: name.to_string(),
            image_id: "sha256:missing".to_string(),
            image: "busybox".to_string(),
            created: 1,
            config: serde_json::json!({"cmd": ["true"]}),
            started: None,
            exit: None,
            restart_count: 0,
        }
    }

    #[test]
    fn a_container_needs_its_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let err = store.create_container(&record("ab", "web")).unwrap_err();
        assert!(matches!(err, StoreError::NoSuchImage(_)), "{err}");
        assert!(store.containers().unwrap().is_empty());
        let err = store.container("ab").unwrap_err();
        assert_eq!(err.to_string(), "No such container: ab");
    }
}
