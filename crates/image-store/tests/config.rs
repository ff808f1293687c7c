//! Typed image configs from what real tools write: docker 20.10's classic
//! builder (`tests/data/docker-20.10-*`, made with `docker build` and read
//! from its image store or `docker save`), the `null`s docker writes for
//! absent values, and OCI configs.

use std::fs;

use basic_image_store::{HealthConfig, ImageConfig, ImageStore, load};
use basic_test_support::require_root;
use oci_spec::image::ImageConfiguration;
use serde_json::json;

const FEATURES: &[u8] = include_bytes!("data/docker-20.10-features.config.json");
const NO_LAYERS: &[u8] = include_bytes!("data/docker-20.10-no-layers.config.json");

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_docker_config_keeps_what_oci_defines_and_what_only_docker_has() {
    let config = ImageConfig::from_slice(FEATURES).unwrap();
    assert_eq!(config.entrypoint(), ["/bin/busybox"]);
    assert_eq!(config.cmd(), ["sh"]);
    assert_eq!(config.env(), ["PATH=/bin", "GREETING=hello"]);
    assert_eq!(config.working_dir(), Some("/srv"));
    assert_eq!(config.user(), Some("1000:1000"));
    assert_eq!(config.stop_signal(), Some("SIGQUIT"));
    assert_eq!(config.exposed_ports(), ["53/udp", "80/tcp", "8080/tcp"]);
    assert_eq!(config.volumes(), ["/cache", "/data"]);
    assert_eq!(config.labels()["org.example.team"], "web");
    assert_eq!(config.history().len(), 13);
    assert_eq!(config.history()[1].empty_layer(), Some(true));
    assert_eq!(config.oci.rootfs().diff_ids().len(), 2);

    let docker = &config.docker;
    assert_eq!(
        docker.config.healthcheck,
        Some(HealthConfig {
            test: Some(strings(&["CMD", "/bin/busybox", "true"])),
            interval: Some(30_000_000_000),
            timeout: Some(3_000_000_000),
            start_period: Some(5_000_000_000),
            start_interval: None,
            retries: Some(2),
        })
    );
    assert_eq!(
        docker.config.on_build,
        Some(strings(&["RUN /bin/busybox echo child"]))
    );
    assert_eq!(
        docker.config.shell,
        Some(strings(&["/bin/busybox", "sh", "-c"]))
    );
    assert_eq!(docker.docker_version.as_deref(), Some("20.10.24+dfsg1"));
    let step = docker.container_config.as_ref().expect("container_config");
    assert_eq!(
        step.oci.cmd().as_deref(),
        Some(&strings(&["/bin/busybox", "sh", "-c", "#(nop) ", "CMD [\"sh\"]"])[..])
    );
    assert_eq!(step.docker.hostname.as_deref(), Some("70789626ffbc"));
}

/// Why the store has a type of its own: OCI's drops docker's fields.
#[test]
fn oci_s_type_alone_loses_the_healthcheck() {
    let oci: ImageConfiguration = serde_json::from_slice(FEATURES).unwrap();
    let written = serde_json::to_value(&oci).unwrap();
    assert!(written["config"].get("Healthcheck").is_none());
    assert!(written.get("docker_version").is_none());
    // Ours writes them back where docker has them.
    let ours = serde_json::to_value(ImageConfig::from_slice(FEATURES).unwrap()).unwrap();
    assert_eq!(ours["config"]["Healthcheck"]["Retries"], 2);
    assert_eq!(
        ours["config"]["OnBuild"],
        json!(["RUN /bin/busybox echo child"])
    );
    assert_eq!(ours["config"]["Entrypoint"], json!(["/bin/busybox"]));
    assert_eq!(ours["docker_version"], "20.10.24+dfsg1");
    assert_eq!(ours["container_config"]["Hostname"], "70789626ffbc");
    let again: ImageConfig = serde_json::from_value(ours).unwrap();
    assert_eq!(again, ImageConfig::from_slice(FEATURES).unwrap());
}

#[test]
fn an_image_without_layers_parses_though_docker_leaves_out_diff_ids() {
    assert!(serde_json::from_slice::<ImageConfiguration>(NO_LAYERS).is_err());
    let config = ImageConfig::from_slice(NO_LAYERS).unwrap();
    assert!(config.oci.rootfs().diff_ids().is_empty());
    assert_eq!(config.cmd(), ["/nothing"]);
    assert!(config.entrypoint().is_empty());
    assert!(config.volumes().is_empty());
    assert!(config.labels().is_empty());
    assert_eq!(config.docker.config.on_build, None);
}

#[test]
fn nulls_and_absent_fields_read_as_unset() {
    let doc = json!({
        "created": "2015-10-31T22:22:56.015925234Z",
        "config": {
            "Cmd": null, "Env": null, "Entrypoint": null, "Labels": null,
            "ExposedPorts": {"80/tcp": {}, "443/tcp": null}, "Volumes": null,
            "WorkingDir": "", "User": "", "Healthcheck": null, "OnBuild": null,
            "Shell": null, "StopSignal": null,
        },
        "container_config": null,
        "history": null,
        "rootfs": {"type": "layers", "diff_ids": null},
    });
    let config: ImageConfig = serde_json::from_value(doc).unwrap();
    assert!(config.cmd().is_empty() && config.env().is_empty());
    assert_eq!(config.exposed_ports(), ["443/tcp", "80/tcp"]);
    assert_eq!(config.working_dir(), None, "empty means unset");
    assert_eq!(config.user(), None);
    assert_eq!(config.stop_signal(), None);
    assert!(config.history().is_empty());
    assert_eq!(config.docker, Default::default());
    // Absent platform fields read as empty, as docker leaves them out when empty.
    assert_eq!(config.oci.architecture().to_string(), "");

    let bare: ImageConfig = serde_json::from_value(json!({"config": null})).unwrap();
    assert_eq!(bare.run_config(), Default::default());
    assert!(serde_json::from_value::<ImageConfig>(json!([1])).is_err());
    assert!(serde_json::from_value::<ImageConfig>(json!({"config": {"Cmd": "sh"}})).is_err());
    assert!(serde_json::from_value::<ImageConfig>(json!({"architecture": 64})).is_err());
}

#[test]
fn the_run_config_is_docker_s_container_config_shape() {
    let run = ImageConfig::from_slice(FEATURES).unwrap().run_config();
    let value = serde_json::to_value(&run).unwrap();
    assert_eq!(value["Shell"], json!(["/bin/busybox", "sh", "-c"]));
    assert_eq!(value["ExposedPorts"]["8080/tcp"], json!({}));
    assert_eq!(value["Cmd"], json!(["sh"]));
    let back: basic_image_store::RunConfig = serde_json::from_value(value).unwrap();
    assert_eq!(back, run);
}

/// The archive `docker save` wrote for the image of FEATURES, loaded and read back.
#[tokio::test(flavor = "multi_thread")]
async fn a_saved_docker_image_loads_with_its_docker_fields() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let archive = fs::File::open("tests/data/docker-20.10-features.tar").unwrap();
    let loaded = load(&store, archive, "docker-20.10-features.tar", |_| {})
        .await
        .unwrap();
    assert_eq!(loaded[0].tags, ["fixtures/docker-features:1"]);
    let config = store.image_configuration(&loaded[0].id).unwrap();
    assert_eq!(config, ImageConfig::from_slice(FEATURES).unwrap());
    assert!(config.docker.config.healthcheck.is_some());
    assert_eq!(config.stop_signal(), Some("SIGQUIT"));
}

#[test]
fn a_blob_that_is_not_a_config_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    let bytes = b"[\"not a config\"]";
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    );
    store.put_blob(&lease, &digest, bytes).unwrap();
    let err = store.image_configuration(&digest).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("config blob {digest} is corrupt")),
        "{err}"
    );
}

/// `import --change` with typed run defaults: they come back as written.
#[tokio::test(flavor = "multi_thread")]
async fn an_import_s_typed_run_config_is_its_image_s() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut run = basic_image_store::RunConfig::default();
    run.oci.set_cmd(Some(strings(&["httpd", "-f"])));
    run.oci.set_exposed_ports(Some(strings(&["80/tcp"])));
    run.docker.healthcheck = Some(HealthConfig {
        test: Some(strings(&["NONE"])),
        ..Default::default()
    });
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "etc/hi", &b"hi"[..]).unwrap();
    let input = std::io::Cursor::new(tar.into_inner().unwrap());
    let id =
        basic_image_store::import_with_run_config(&store, input, "app.tar", None, &run, |_| {})
            .await
            .unwrap();
    let config = store.image_configuration(&id).unwrap();
    assert_eq!(config.run_config(), run);
    assert_eq!(
        config.history()[0].comment().as_deref(),
        Some("Imported from tarball")
    );
}
