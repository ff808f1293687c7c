//! docker's documents about images: `docker image inspect` (`GET /images/{name}/json`),
//! the listing (`GET /images/json`) and the history (`GET /images/{name}/history`).

use std::collections::HashMap;

use basic_image_store::{ImageRecord, ImageStore, Removal};
use bollard_stubs::models::{
    DriverData, ImageConfig, ImageDeleteResponseItem, ImageHistoryResponseItem, ImageInspect,
    ImageInspectMetadata, ImageInspectRootFs, ImageSummary,
};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::host;

/// docker's zero time, for times an image does not have.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Engine {
    /// docker's document for image `name` (a reference, an id or an id prefix).
    pub fn inspect_image(&self, name: &str) -> Result<ImageInspect> {
        let record = self.store.resolve(name)?;
        describe(
            &self.store,
            &record,
            &host::snapshotter_kind(&self.paths).to_string(),
        )
    }

    /// Every image of the store as docker lists them (one entry per image, with all its
    /// names), newest first, with how many containers use each; intermediate images
    /// ([`ImageRecord::is_intermediate`]) only with `all`, as `GET /images/json?all=1`.
    pub fn image_summaries(&self, all: bool) -> Result<Vec<ImageSummary>> {
        let containers = self.store.containers()?;
        let mut summaries: Vec<ImageSummary> = self
            .store
            .images()?
            .into_iter()
            .filter(|record| all || !record.is_intermediate())
            .map(|record| {
                let labels = self
                    .store
                    .image_configuration(&record.id)
                    .map(|c| c.labels().into_iter().collect())
                    .unwrap_or_default();
                let users = containers
                    .iter()
                    .filter(|c| c.image_id == record.id)
                    .count();
                ImageSummary {
                    created: created_seconds(&record),
                    size: i64::try_from(record.size).unwrap_or(i64::MAX),
                    shared_size: -1,
                    containers: i64::try_from(users).unwrap_or(i64::MAX),
                    labels,
                    repo_tags: record.repo_tags,
                    repo_digests: record.repo_digests,
                    parent_id: record.parent.unwrap_or_default(),
                    id: record.id,
                    ..Default::default()
                }
            })
            .collect();
        summaries.sort_by_key(|s| std::cmp::Reverse(s.created));
        Ok(summaries)
    }

    /// The image's history, newest first, as `docker history` shows it: each step of the
    /// config's history, the ones that made a layer with that layer's size (the bytes of
    /// its files), the rest 0; the newest step carries the image's id and tags, the
    /// others `<missing>`. The CLI's `history` and the API's `/images/{name}/history`
    /// both print this.
    pub fn image_history(&self, name: &str) -> Result<Vec<ImageHistoryResponseItem>> {
        let record = self.store.resolve(name)?;
        let config = self.store.image_configuration(&record.id)?;
        let mut layers = record.layers.iter();
        let mut items: Vec<ImageHistoryResponseItem> = config
            .history()
            .iter()
            .map(|h| {
                // As docker: the bytes of the layer's files, not of its blob.
                let size = match h.empty_layer() {
                    Some(true) => 0,
                    _ => layers
                        .next()
                        .map_or(0, |l| i64::try_from(l.size).unwrap_or(i64::MAX)),
                };
                ImageHistoryResponseItem {
                    id: "<missing>".to_string(),
                    created: h.created().as_deref().and_then(parse_seconds).unwrap_or(0),
                    created_by: h.created_by().clone().unwrap_or_default(),
                    tags: Vec::new(),
                    size,
                    comment: h.comment().clone().unwrap_or_default(),
                }
            })
            .collect();
        items.reverse();
        if let Some(newest) = items.first_mut() {
            newest.id = record.id.clone();
            newest.tags = record.repo_tags.clone();
        }
        // As docker: each ancestor still in the store (a build's earlier steps) names
        // the entry its own history ends at.
        let total = items.len();
        let mut parent = record.parent.clone();
        let mut seen = vec![record.id.clone()];
        while let Some(id) = parent.take() {
            let Ok(ancestor) = self.store.image(&id) else {
                break;
            };
            if seen.contains(&id) {
                break;
            }
            let depth = self.store.image_configuration(&id)?.history().len();
            if let Some(item) = total.checked_sub(depth).and_then(|i| items.get_mut(i)) {
                item.id = ancestor.id.clone();
                item.tags = ancestor.repo_tags.clone();
            }
            seen.push(id);
            parent = ancestor.parent;
        }
        Ok(items)
    }

    /// Removes image `name` (untags a name; deletes the image when no name is left), as
    /// `docker rmi`: refused while a container uses it unless `force`.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<Vec<ImageDeleteResponseItem>> {
        Ok(self
            .store
            .remove(name, force)?
            .iter()
            .map(delete_item)
            .collect())
    }

    /// Adds the name `repository[:tag]` to image `name`.
    pub fn tag_image(&self, name: &str, new_name: &str) -> Result<()> {
        let record = self.store.resolve(name)?;
        let reference = basic_registry::Reference::parse(new_name)?;
        if reference.digest().is_some() {
            return Err(EngineError::InvalidArgument(format!(
                "refusing to create a tag with a digest reference: {new_name}"
            )));
        }
        self.store.tag(&record.id, &reference.to_string())?;
        Ok(())
    }
}

/// docker's `{"Untagged": …}` / `{"Deleted": …}` entry for a removal.
pub fn delete_item(removal: &Removal) -> ImageDeleteResponseItem {
    match removal {
        Removal::Untagged(name) => ImageDeleteResponseItem {
            untagged: Some(name.clone()),
            deleted: None,
        },
        Removal::Deleted(id) => ImageDeleteResponseItem {
            untagged: None,
            deleted: Some(id.clone()),
        },
    }
}

fn describe(store: &ImageStore, record: &ImageRecord, driver: &str) -> Result<ImageInspect> {
    let config = store.image_configuration(&record.id)?;
    let layer_dirs: Vec<String> = record
        .layers
        .iter()
        .rev()
        .map(|l| {
            store
                .layer_dir(&l.chain_id)
                .map(|d| d.join("diff").display().to_string())
        })
        .collect::<std::result::Result<_, _>>()?;
    // The store's run config is docker's wire shape of `Config` already.
    let run_config: ImageConfig = serde_json::to_value(config.run_config())
        .and_then(serde_json::from_value)
        .map_err(|e| EngineError::Corrupt {
            what: format!("the config of image {}", record.id),
            message: e.to_string(),
        })?;
    Ok(ImageInspect {
        id: Some(record.id.clone()),
        repo_tags: Some(record.repo_tags.clone()),
        repo_digests: Some(record.repo_digests.clone()),
        comment: Some(config.docker.comment.clone().unwrap_or_default()),
        created: Some(record.created.clone().unwrap_or_else(|| ZERO_TIME.into())),
        author: Some(config.oci.author().clone().unwrap_or_default()),
        config: Some(run_config),
        architecture: record.architecture.clone(),
        variant: config.oci.variant().clone(),
        os: record.os.clone(),
        size: Some(i64::try_from(record.size).unwrap_or(i64::MAX)),
        graph_driver: Some(DriverData {
            name: driver.to_string(),
            data: HashMap::from([("LowerDir".to_string(), layer_dirs.join(":"))]),
        }),
        root_fs: Some(ImageInspectRootFs {
            typ: "layers".to_string(),
            layers: Some(record.layers.iter().map(|l| l.diff_id.clone()).collect()),
        }),
        metadata: Some(ImageInspectMetadata {
            last_tag_time: Some(ZERO_TIME.into()),
        }),
        ..Default::default()
    })
}

fn created_seconds(record: &ImageRecord) -> i64 {
    record
        .created
        .as_deref()
        .and_then(parse_seconds)
        .unwrap_or(record.added)
}

fn parse_seconds(rfc3339: &str) -> Option<i64> {
    rfc3339
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}
