//! Every path inside a container's root is resolved inside it. An image (or a
//! container, between two starts) makes the places where the engine creates
//! mount points and files symlinks to a host directory the test made; after
//! the run nothing may have been created or changed there, and the mounts must
//! have landed where the symlinks point *inside* the root, as docker does.
//! What the engine creates inside has modes 0755 and 0644, never 0777 or 0666.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use basic_test_support::image::{ImageBuilder, LayerBuilder};

use crate::common::Cleanup;
use crate::support::{HostDir, Store, run_within, text, unique};

const WAIT: Duration = Duration::from_secs(60);

/// A relative symlink target that climbs out of any root and into `dir`.
fn climbing_to(dir: &str) -> String {
    format!("{}{}", "../".repeat(24), dir.trim_start_matches('/'))
}

/// A host directory with one file in it, to bind-mount with `-v`.
fn volume_source() -> HostDir {
    let dir = HostDir::new("volume");
    std::fs::write(dir.path().join("file"), "from-the-volume").unwrap();
    dir
}

/// Links `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/dev/shm` and
/// `/data` to `target` (absolute and climbing `..` links both).
fn links_to(l: &mut LayerBuilder, target: &str) {
    l.symlink("etc/hosts", &format!("{target}/hosts"));
    l.symlink("etc/hostname", &format!("{target}/hostname"));
    l.symlink(
        "etc/resolv.conf",
        &climbing_to(&format!("{target}/resolv.conf")),
    );
    l.symlink("dev/shm", &format!("{target}/shm"));
    l.symlink("data", &format!("{target}/target"));
}

/// Runs the image whose `/etc` files and `/data` link to the host, with a
/// volume on `/data`, on `network`.
fn etc_and_volume_links(network: &str) {
    let Some(store) = Store::new() else { return };
    let host = HostDir::new("etc-links");
    // An existing directory: a mount point that follows the link lands on it
    // (a dangling link only makes the start fail).
    std::fs::create_dir(host.path().join("target")).unwrap();
    let target = host.text();
    let image = store.image(
        ImageBuilder::busybox().layer(|l| links_to(l, &target)),
        &format!("etc-links-{network}"),
    );
    let source = volume_source();
    let before = host.snapshot();
    let volume = format!("{}:/data", source.text());
    // Not --rm: that detaches from the network in the background, after the
    // test's store is gone.
    let name = unique("etc-links");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    let out = run_within(
        store.command(&[
            "run",
            "--name",
            &name,
            "--network",
            network,
            "-v",
            &volume,
            &image,
            "sh",
            "-c",
            "echo link=$(readlink /data); echo data=$(cat /data/file); \
             echo hosts=$(grep -c localhost /etc/hosts); echo hostname=$(cat /etc/hostname)",
        ]),
        WAIT,
    );
    let shown = text(&out);
    assert!(
        shown.contains(&format!("link={target}/target")),
        "positive control: the container did not run with the image's links:\n{shown}"
    );
    host.assert_unchanged(&before, &format!("run --network {network}:\n{shown}"));
    assert!(
        shown.contains("data=from-the-volume"),
        "the volume is not at /data's target inside the container (its mount followed \
         the link out of the root):\n{shown}"
    );
    if network != "none" {
        assert!(
            !shown.contains("hosts=0")
                && shown.contains("hosts=")
                && !shown.contains("hostname=\n"),
            "/etc/hosts and /etc/hostname did not land at their targets inside the container:\n{shown}"
        );
    }
}

#[test]
fn etc_files_and_a_volume_linked_to_the_host_stay_inside_the_root_on_the_bridge_network() {
    etc_and_volume_links("bridge");
}

#[test]
fn etc_files_and_a_volume_linked_to_the_host_stay_inside_the_root_without_a_network() {
    etc_and_volume_links("none");
}

#[test]
fn a_volume_below_a_directory_linked_to_the_host_stays_inside_the_root() {
    let Some(store) = Store::new() else { return };
    let host = HostDir::new("mnt-link");
    let target = host.text();
    let image = store.image(
        ImageBuilder::busybox().layer(|l| {
            l.symlink("mnt", &target);
        }),
        "mnt-link",
    );
    let source = volume_source();
    let before = host.snapshot();
    let volume = format!("{}:/mnt/sub", source.text());
    let out = run_within(
        store.command(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &volume,
            &image,
            "sh",
            "-c",
            "echo link=$(readlink /mnt); echo data=$(cat /mnt/sub/file)",
        ]),
        WAIT,
    );
    let shown = text(&out);
    assert!(
        shown.contains(&format!("link={target}")),
        "positive control: the container did not run with the image's link:\n{shown}"
    );
    host.assert_unchanged(&before, &format!("run -v {volume}:\n{shown}"));
    assert!(
        shown.contains("data=from-the-volume"),
        "the volume did not land below /mnt's target inside the container:\n{shown}"
    );
}

/// Links to directories that do not exist on the host: a mount point created
/// through them would appear there.
#[test]
fn proc_sys_and_dev_linked_to_the_host_create_nothing_there() {
    let Some(store) = Store::new() else { return };
    let host = HostDir::new("root-dir-links");
    let target = host.text();
    let image = store.image(
        ImageBuilder::busybox().layer(|l| {
            l.symlink("proc", &format!("{target}/proc"));
            l.symlink("sys", &climbing_to(&format!("{target}/sys")));
            l.symlink("dev", &format!("{target}/dev"));
        }),
        "root-dir-links",
    );
    let before = host.snapshot();
    let out = run_within(
        store.command(&[
            "run",
            "--rm",
            "--network",
            "none",
            &image,
            "sh",
            "-c",
            // Masked paths read empty when /proc is the container's and masked.
            "echo ran; echo masked-bytes=$(cat /proc/timer_list /proc/sched_debug 2>/dev/null | wc -c)",
        ]),
        WAIT,
    );
    let shown = text(&out);
    assert!(
        shown.contains("ran") || shown.contains("/proc"),
        "positive control: the container neither ran nor failed at its /proc:\n{shown}"
    );
    host.assert_unchanged(&before, &format!("run:\n{shown}"));
    if shown.contains("ran") {
        assert!(
            shown.contains("masked-bytes=0"),
            "masked paths are readable:\n{shown}"
        );
    }
}

#[test]
fn mount_points_and_files_the_engine_creates_are_0755_and_0644() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let source = volume_source();
    let name = unique("modes");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    let volume = format!("{}:/newdir/sub", source.text());
    // The harness's busybox has no /etc/hosts, /etc/hostname or /etc/resolv.conf:
    // the engine creates them as mount points, with the volume's directories.
    store.ok(&[
        "run", "-d", "--name", &name, "-v", &volume, "-w", "/newwd", &image, "sleep", "1000",
    ]);
    let rootfs = store.rootfs_of(&store.id_of(&name));
    let mut wrong = Vec::new();
    for (path, want) in [
        ("newdir", 0o755),
        ("newdir/sub", 0o755),
        ("newwd", 0o755),
        ("etc/hosts", 0o644),
        ("etc/hostname", 0o644),
        ("etc/resolv.conf", 0o644),
    ] {
        // The host's view of the container's root shows the mount points
        // themselves, not what is mounted on them.
        let mode = std::fs::symlink_metadata(rootfs.join(path))
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or_else(|e| panic!("{path} in the container's root: {e}"));
        if mode != want {
            wrong.push(format!("/{path} is {mode:o}, not {want:o}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("; "));
}

/// busybox without `/etc` and `/mnt`: the engine makes them (for `/etc/hosts`
/// and a volume) as directories of the container's own layer, which a process
/// of the container can rename.
fn busybox_without_etc() -> ImageBuilder {
    let applets = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("running /bin/busybox --list");
    ImageBuilder::empty().layer(|l| {
        for d in ["bin", "proc", "sys", "dev"] {
            l.dir(d, 0o755);
        }
        l.dir("tmp", 0o1777);
        l.copy("bin/busybox", std::path::Path::new("/bin/busybox"), 0o755);
        for applet in String::from_utf8_lossy(&applets.stdout).lines() {
            if applet != "busybox" {
                l.symlink(&format!("bin/{applet}"), "busybox");
            }
        }
    })
}

/// The first start replaces `/etc` (with its `hosts`, `hostname` and
/// `resolv.conf` mount points) and `/mnt` (above the volume `/mnt/sub`) with
/// links to `target`; the next start reports itself and stays up.
fn swapping_script(target: &str) -> String {
    format!(
        "if [ -e /swapped ]; then echo second-start; exec sleep 1000; fi; touch /swapped; \
         mv /etc /etc.orig && mkdir /etc && ln -s {target}/hosts /etc/hosts && \
         ln -s {target}/hostname /etc/hostname && ln -s {target}/resolv.conf /etc/resolv.conf \
         && echo swapped-etc; \
         mv /mnt /mnt.orig && ln -s {target} /mnt && echo swapped-mnt"
    )
}

/// Polls until the second start ran or failed (its error recorded).
fn wait_for_second_start(store: &Store, name: &str) -> String {
    let until = Instant::now() + WAIT;
    loop {
        let log = store.logs(name);
        let error = store.inspect(name)["State"]["Error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if log.contains("second-start") || !error.is_empty() || Instant::now() > until {
            return format!("{log}{error}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_container_that_swaps_its_mount_points_for_links_cannot_reach_the_host_on_restart() {
    let Some(store) = Store::new() else { return };
    let image = store.image(busybox_without_etc(), "no-etc");
    let host = HostDir::new("swap-restart");
    let source = volume_source();
    let before = host.snapshot();
    let name = unique("swap-restart");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    let volume = format!("{}:/mnt/sub", source.text());
    store.ok(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        &name,
        "-v",
        &volume,
        &image,
        "sh",
        "-c",
        &swapping_script(&host.text()),
    ]);
    let seen = wait_for_second_start(&store, &name);
    assert!(
        seen.contains("swapped-etc") && seen.contains("swapped-mnt"),
        "positive control: the container did not swap its mount points:\n{seen}"
    );
    host.assert_unchanged(&before, &format!("after the restart:\n{seen}"));
}

#[test]
fn a_container_that_swaps_its_mount_points_for_links_cannot_reach_the_host_on_start() {
    let Some(store) = Store::new() else { return };
    let image = store.image(busybox_without_etc(), "no-etc");
    let host = HostDir::new("swap-start");
    let source = volume_source();
    let before = host.snapshot();
    let name = unique("swap-start");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    let volume = format!("{}:/mnt/sub", source.text());
    store.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &volume,
        &image,
        "sh",
        "-c",
        &swapping_script(&host.text()),
    ]);
    store.ok(&["wait", &name]);
    let first = store.logs(&name);
    assert!(
        first.contains("swapped-etc") && first.contains("swapped-mnt"),
        "positive control: the container did not swap its mount points:\n{first}"
    );
    let start = store.docker(&["start", &name]);
    let seen = wait_for_second_start(&store, &name);
    host.assert_unchanged(
        &before,
        &format!("after start ({}):\n{seen}", text(&start).trim()),
    );
}
