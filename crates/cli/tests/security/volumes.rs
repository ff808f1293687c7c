//! Volumes against hostile input: a volume's name is never a path; an image's `VOLUME`
//! that is a symlink (to a host directory, to `/etc`) or that holds symlinks pointing out
//! cannot make the copy-up read or write outside the container's root and the volume;
//! a container cannot reach another volume's data, neither from inside nor through what
//! the engine does on the host with the links it leaves in its own volume.
//!
//! Each test first shows its attack is real (the image's links are there and point where
//! the attack wants, a host program that follows them reaches the target), then that
//! nothing outside changed and nothing of it was read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use basic_test_support::image::ImageBuilder;

use crate::common::Cleanup;
use crate::support::{HostDir, Store, run_within, text, unique};

const WAIT: Duration = Duration::from_secs(60);

/// A relative symlink target that climbs out of any root and into `dir`.
fn climbing_to(dir: &str) -> String {
    format!("{}{}", "../".repeat(24), dir.trim_start_matches('/'))
}

/// The `Source` of the volume mounted at `destination` in container `name`.
fn volume_data(store: &Store, name: &str, destination: &str) -> PathBuf {
    let doc = store.inspect(name);
    let mount = doc["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == destination)
        .unwrap_or_else(|| panic!("no mount at {destination}: {}", doc["Mounts"]));
    assert_eq!(mount["Type"], "volume", "{mount}");
    PathBuf::from(mount["Source"].as_str().unwrap())
}

/// Every file below `dir` whose contents hold `needle`; symlinks are not followed.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if meta.is_file()
            && String::from_utf8_lossy(&std::fs::read(&path).unwrap()).contains(needle)
        {
            found.push(path);
        }
    }
    found
}

/// A host directory holding a secret file, and the secret.
fn secret_dir(what: &str) -> (HostDir, String) {
    let host = HostDir::new(what);
    let secret = unique("host-secret");
    std::fs::write(host.path().join("secret"), &secret).unwrap();
    std::fs::create_dir(host.path().join("sub")).unwrap();
    (host, secret)
}

#[test]
fn volume_names_that_are_paths_are_refused_and_touch_nothing() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    // A directory laid out as a volume, outside the store, for a name to reach.
    let (host, secret) = secret_dir("volume-names");
    std::fs::create_dir_all(host.path().join("victim/_data")).unwrap();
    std::fs::write(host.path().join("victim/_data/file"), &secret).unwrap();
    std::fs::write(
        host.path().join("victim/volume.json"),
        r#"{"name":"victim","driver":"local","created":0}"#,
    )
    .unwrap();
    let before = host.snapshot();
    let reaching = climbing_to(&format!("{}/victim", host.text()));
    let names = [
        "../escape".to_string(),
        "..".to_string(),
        ".".to_string(),
        "/etc".to_string(),
        reaching.clone(),
        format!("{}/victim", host.text()),
    ];
    for name in &names {
        let out = store.docker(&["volume", "create", name]);
        assert!(
            !out.status.success() && text(&out).contains("invalid characters"),
            "volume create {name:?}:\n{}",
            text(&out)
        );
        let mount = format!("type=volume,source={name},target=/d");
        let out = store.docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--mount",
            &mount,
            &image,
            "true",
        ]);
        assert_eq!(
            out.status.code(),
            Some(125),
            "--mount source={name}:\n{}",
            text(&out)
        );
        assert!(text(&out).contains("invalid characters"), "{}", text(&out));
        for verb in [
            &["volume", "inspect"][..],
            &["volume", "rm"][..],
            &["volume", "rm", "-f"][..],
        ] {
            let mut args = verb.to_vec();
            args.push(name);
            let out = store.docker(&args);
            assert!(
                verb.contains(&"-f") || text(&out).contains("No such volume"),
                "{args:?}:\n{}",
                text(&out)
            );
        }
    }
    // Relative sources in -v are names too (an absolute one is the user's own bind).
    let bind = format!("{}:/d", &reaching);
    let out = store.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &bind,
        &image,
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(text(&out).contains("invalid characters"), "{}", text(&out));
    host.assert_unchanged(&before, "volume verbs given names that are paths");
    let store_root = store.root().to_path_buf();
    for path in ["escape", "volumes/escape", "../escape"] {
        assert!(!store_root.join(path).exists(), "{path} was created");
    }
    // Positive control: a name is taken when it is one, and it lives under volumes/.
    store.ok(&["volume", "create", "fine-name"]);
    assert!(store_root.join("volumes/fine-name/_data").is_dir());
}

#[test]
fn an_image_volume_linked_to_a_host_directory_copies_nothing_of_the_host() {
    let Some(store) = Store::new() else { return };
    let (host, secret) = secret_dir("volume-link");
    let target = host.text();
    let image = store.image(
        ImageBuilder::busybox()
            .layer(|l| {
                l.symlink("data", &target);
                l.symlink("data2", &climbing_to(&format!("{target}/sub")));
            })
            .config("Volumes", serde_json::json!({"/data": {}, "/data2": {}})),
        "volume-link",
    );
    let before = host.snapshot();
    let name = unique("volume-link");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    let out = run_within(
        store.command(&[
            "run",
            "--name",
            &name,
            "--network",
            "none",
            &image,
            "sh",
            "-c",
            "echo link=$(readlink /data); ls -A /data /data2; cat /data/secret 2>&1; \
             echo written > /data/new; echo written > /data2/new; echo end",
        ]),
        WAIT,
    );
    let shown = text(&out);
    assert!(
        shown.contains(&format!("link={target}")) && shown.contains("end"),
        "positive control: the container did not run with the image's links:\n{shown}"
    );
    host.assert_unchanged(&before, &format!("copy-up through VOLUME links:\n{shown}"));
    assert!(
        !shown.contains(&secret),
        "the container read the host's file:\n{shown}"
    );
    for destination in ["/data", "/data2"] {
        let data = volume_data(&store, &name, destination);
        assert!(
            files_holding(&data, &secret).is_empty(),
            "the copy-up copied the host's file into the volume of {destination}"
        );
        assert_eq!(
            std::fs::read_to_string(data.join("new")).unwrap(),
            "written\n",
            "the volume is what the container wrote to at {destination}"
        );
    }
}

#[test]
fn an_image_volume_linked_to_etc_copies_the_images_etc_not_the_hosts() {
    let Some(store) = Store::new() else { return };
    let host_only = ["os-release", "fstab", "shadow"];
    let present: Vec<&&str> = host_only
        .iter()
        .filter(|f| Path::new("/etc").join(f).exists())
        .collect();
    assert!(
        !present.is_empty(),
        "positive control: the host's /etc has none of {host_only:?}"
    );
    let image = store.image(
        ImageBuilder::busybox()
            .layer(|l| {
                l.symlink("conf", "/etc");
                l.file("etc/image-marker", b"from-the-image\n", 0o644);
            })
            .config("Volumes", serde_json::json!({"/conf": {}})),
        "volume-etc",
    );
    let name = unique("volume-etc");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    let out = run_within(
        store.command(&[
            "run",
            "--name",
            &name,
            "--network",
            "none",
            &image,
            "sh",
            "-c",
            "echo link=$(readlink /conf); cat /conf/image-marker",
        ]),
        WAIT,
    );
    let shown = text(&out);
    assert!(
        shown.contains("link=/etc") && shown.contains("from-the-image"),
        "positive control: the image's /conf link and /etc content:\n{shown}"
    );
    let data = volume_data(&store, &name, "/conf");
    assert_eq!(
        std::fs::read_to_string(data.join("image-marker")).unwrap(),
        "from-the-image\n"
    );
    let passwd = std::fs::read_to_string(data.join("passwd")).unwrap();
    assert!(
        passwd.contains("nobody:x:65534:65534:nobody:/:/bin/false"),
        "{passwd}"
    );
    assert_ne!(passwd, std::fs::read_to_string("/etc/passwd").unwrap());
    for file in present {
        assert!(
            !data.join(file).exists(),
            "the host's /etc/{file} was copied into the volume"
        );
    }
}

#[test]
fn links_inside_an_image_volume_are_copied_as_links_and_lead_nowhere_on_the_host() {
    let Some(store) = Store::new() else { return };
    let (host, secret) = secret_dir("volume-content-links");
    let target = host.text();
    let image = store.image(
        ImageBuilder::busybox()
            .layer(|l| {
                l.dir("data", 0o755);
                l.file("data/plain", b"plain\n", 0o644);
                l.symlink("data/passwd", "/etc/passwd");
                l.symlink("data/abs", &target);
                l.symlink("data/up", &climbing_to(&target));
                l.dir("data/deep", 0o755);
                l.symlink("data/deep/secret", &format!("{target}/secret"));
            })
            .config("Volumes", serde_json::json!({"/data": {}})),
        "volume-content-links",
    );
    let before = host.snapshot();
    let name = unique("volume-content-links");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    let out = run_within(
        store.command(&[
            "run",
            "--name",
            &name,
            "--network",
            "none",
            &image,
            "sh",
            "-c",
            "cat /data/abs/secret /data/up/secret /data/deep/secret 2>&1; \
             echo x > /data/abs/planted 2>&1; grep nobody /data/passwd; echo end",
        ]),
        WAIT,
    );
    let shown = text(&out);
    assert!(shown.contains("end"), "the container did not run:\n{shown}");
    host.assert_unchanged(&before, &format!("copy-up of links:\n{shown}"));
    assert!(
        !shown.contains(&secret),
        "the container read the host's file:\n{shown}"
    );
    assert!(
        shown.contains("/bin/false"),
        "/data/passwd leads to the image's passwd inside the container:\n{shown}"
    );
    let data = volume_data(&store, &name, "/data");
    assert_eq!(
        std::fs::read_to_string(data.join("plain")).unwrap(),
        "plain\n"
    );
    for (link, points_to) in [
        ("passwd", "/etc/passwd".to_string()),
        ("abs", target.clone()),
        ("up", climbing_to(&target)),
        ("deep/secret", format!("{target}/secret")),
    ] {
        let meta = std::fs::symlink_metadata(data.join(link)).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "{link} was not copied as a link"
        );
        assert_eq!(
            std::fs::read_link(data.join(link)).unwrap(),
            Path::new(&points_to)
        );
    }
    // Positive control: a host program that follows these links reaches the secret,
    // so a copier that followed them would have copied it.
    assert_eq!(
        std::fs::read_to_string(data.join("deep/secret")).unwrap(),
        secret
    );
    assert!(files_holding(&data, &secret).is_empty());
}

#[test]
fn a_container_cannot_reach_another_volumes_data() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let secret = unique("volume-secret");
    let (owner, prober, reader) = (
        unique("vol-owner"),
        unique("vol-prober"),
        unique("vol-reader"),
    );
    let _cleanup = Cleanup::new(store.root(), &[&owner, &prober, &reader]);
    let write = format!("echo {secret} > /mine/secret");
    store.ok(&[
        "run",
        "--name",
        &owner,
        "--network",
        "none",
        "-v",
        "theirs:/mine",
        &image,
        "sh",
        "-c",
        &write,
    ]);
    let theirs = volume_data(&store, &owner, "/mine");
    assert_eq!(
        std::fs::read_to_string(theirs.join("secret"))
            .unwrap()
            .trim(),
        secret,
        "positive control: the secret is in the other volume"
    );
    // From inside: climb out of the mount, look for the volume's host path, search every
    // file it can see, and leave links aimed at the other volume in its own.
    let probe = format!(
        "grep ' /v ' /proc/self/mountinfo; ls -a /v/.. /v/../..; \
         ln -s ../../theirs/_data /v/rel; ln -s {theirs} /v/abs; ln -s / /v/root; \
         cat /v/rel/secret /v/abs/secret /v/root{theirs}/secret 2>&1; \
         for d in $(ls / | grep -v -e proc -e sys -e dev); do grep -rl {needle} /$d 2>/dev/null | sed 's/^/found:/'; done; \
         echo end",
        theirs = theirs.display(),
        // The secret's first half: the probe's own text does not hold the whole secret.
        needle = &secret[..secret.len() - 2],
    );
    let out = run_within(
        store.command(&[
            "run",
            "--name",
            &prober,
            "--network",
            "none",
            "-v",
            "mine:/v",
            &image,
            "sh",
            "-c",
            &probe,
        ]),
        WAIT,
    );
    let shown = text(&out);
    assert!(shown.contains("end"), "the probe did not run:\n{shown}");
    assert!(
        !shown.contains(&secret),
        "the container read another volume:\n{shown}"
    );
    assert!(
        !shown.contains("found:"),
        "the container found another volume's file:\n{shown}"
    );
    let mine = volume_data(&store, &prober, "/v");
    // Positive control: the links it left lead to the other volume's data on the host.
    assert_eq!(
        std::fs::read_to_string(mine.join("abs/secret"))
            .unwrap()
            .trim(),
        secret
    );
    // Another container mounting the planted volume gets nothing through the links.
    let out = run_within(
        store.command(&[
            "run",
            "--name",
            &reader,
            "--network",
            "none",
            "-v",
            "mine:/w",
            &image,
            "sh",
            "-c",
            "cat /w/rel/secret /w/abs/secret 2>&1; echo end",
        ]),
        WAIT,
    );
    let shown = text(&out);
    assert!(shown.contains("end") && !shown.contains(&secret), "{shown}");
    // The engine on the host: inspect, prune (which measures the data: following
    // `root -> /` would count the host's disk) and removal of the planted volume.
    store.ok(&["volume", "inspect", "mine"]);
    store.ok(&["rm", &prober, &reader]);
    let pruned = store.ok(&["volume", "prune", "-f"]);
    assert!(pruned.contains("\nmine\n"), "{pruned}");
    let reclaimed = pruned.lines().last().unwrap_or_default();
    assert!(
        reclaimed.ends_with("B") && !reclaimed.contains("MB") && !reclaimed.contains("GB"),
        "prune measured through the planted links: {reclaimed}"
    );
    assert_eq!(
        std::fs::read_to_string(theirs.join("secret"))
            .unwrap()
            .trim(),
        secret,
        "the other volume lost its data"
    );
    assert!(Path::new("/etc/passwd").exists());
}
