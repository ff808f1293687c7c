//! Holders: the containers and `image mount`s using an image. While one
//! holds it, the image cannot be removed without force, and its layers and
//! blobs are never collected.

use rusqlite::{Connection, OptionalExtension as _, Transaction, params};

use crate::digest::short_id;
use crate::error::StoreError;
use crate::fsutil::now_secs;
use crate::record::{Holder, HolderKind, Removal};
use crate::store::{Garbage, ImageStore};

impl ImageStore {
    /// Records that a container (`id` = container id) or an `image mount`
    /// (`id` = image id) uses `image_id`. While held, the image cannot be
    /// removed without `force`, and its layers and blobs are never collected.
    /// Fails with [`StoreError::NoSuchImage`] when the image is gone (an `rmi`
    /// may have run since the caller resolved it): holding checks and records
    /// in one transaction, so the layers cannot vanish in between.
    pub fn hold(&self, kind: HolderKind, id: &str, image_id: &str) -> Result<(), StoreError> {
        self.write("hold image", |tx| self.hold_in(tx, kind, id, image_id))
    }

    /// [`hold`](Self::hold) inside the caller's transaction.
    pub(crate) fn hold_in(
        &self,
        tx: &Transaction<'_>,
        kind: HolderKind,
        id: &str,
        image_id: &str,
    ) -> Result<(), StoreError> {
        let db = || self.db_error("hold image");
        self.require_image(tx, image_id, "hold image")?;
        tx.execute(
            "INSERT OR REPLACE INTO holders (kind, id, image_id, created) VALUES (?1, ?2, ?3, ?4)",
            params![kind.as_str(), id, image_id, now_secs()],
        )
        .map_err(db())?;
        Ok(())
    }

    /// Ends what [`hold`](Self::hold) started (releasing what is not held is
    /// not an error: cleanup paths may run twice). When the image was removed
    /// with `force` while held and this was its last holder, it is collected
    /// now, with the layers and blobs nothing else uses; those are returned.
    pub fn release(&self, kind: HolderKind, id: &str) -> Result<Vec<Removal>, StoreError> {
        self.write_collecting("release image", |tx, garbage| {
            self.release_in(tx, garbage, kind, id)
        })
    }

    /// [`release`](Self::release) inside the caller's transaction.
    pub(crate) fn release_in(
        &self,
        tx: &Transaction<'_>,
        garbage: &mut Garbage,
        kind: HolderKind,
        id: &str,
    ) -> Result<Vec<Removal>, StoreError> {
        let db = || self.db_error("release image");
        let image: Option<String> = tx
            .query_row(
                "DELETE FROM holders WHERE kind = ?1 AND id = ?2 RETURNING image_id",
                params![kind.as_str(), id],
                |r| r.get(0),
            )
            .optional()
            .map_err(db())?;
        let mut out = Vec::new();
        // Only a doomed image makes GC worth its directory listing here.
        let doomed = match &image {
            Some(image) => tx
                .query_row(
                    "SELECT 1 FROM doomed_images WHERE image_id = ?1",
                    [image],
                    |_| Ok(()),
                )
                .optional()
                .map_err(db())?
                .is_some(),
            None => false,
        };
        if doomed {
            self.collect(tx, garbage, &mut out)?;
        }
        Ok(out)
    }

    /// Who holds `image_id`, oldest first.
    pub fn holders_of(&self, image_id: &str) -> Result<Vec<Holder>, StoreError> {
        self.read("list holders", |c| holders_in(c, image_id))
    }
}

pub(in crate::store) fn holders_in(
    c: &Connection,
    image_id: &str,
) -> rusqlite::Result<Vec<Holder>> {
    c.prepare("SELECT kind, id FROM holders WHERE image_id = ?1 ORDER BY created, kind, id")?
        .query_map([image_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        // A kind this version does not know (a newer one wrote it) still holds.
        .map(|row| {
            row.map(|(kind, id)| Holder {
                kind: HolderKind::parse(&kind).unwrap_or(HolderKind::Container),
                id,
                image_id: image_id.to_string(),
            })
        })
        .collect()
}

pub(in crate::store) fn first_holder(
    c: &Connection,
    image_id: &str,
) -> rusqlite::Result<Option<Holder>> {
    Ok(holders_in(c, image_id)?.into_iter().next())
}

pub(in crate::store) fn in_use(
    reference: &str,
    image_id: &str,
    holder: &Holder,
    by_id: bool,
) -> StoreError {
    let holder_short = short_id(&holder.id).to_string();
    let image = short_id(image_id).to_string();
    if by_id {
        StoreError::InUseById {
            kind: holder.kind,
            holder: holder_short,
            image,
        }
    } else {
        StoreError::InUse {
            reference: reference.to_string(),
            kind: holder.kind,
            holder: holder_short,
            image,
        }
    }
}
