//! `-u NAME` reads the container's own `/etc/passwd` and `/etc/group`,
//! resolved inside its root: an image whose files are symlinks to the host's
//! must not make the engine read the host's accounts. And numeric ids beyond
//! 2147483647 are refused as docker refuses them ("uids and gids must be in
//! range 0-2147483647"); 4294967295 is -1 to setresuid, which changes nothing
//! and would leave the process root.

use std::time::Duration;

use basic_test_support::image::ImageBuilder;

use crate::common::Cleanup;
use crate::support::{HostDir, Store, run_within, text, unique};

const WAIT: Duration = Duration::from_secs(60);

/// A user and a group only the host's files name.
const HOST_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nhostonly:x:4242:4242::/:/bin/sh\n";
const HOST_GROUP: &str = "root:x:0:\nhostgroup:x:4343:\n";

/// A store with an image whose `/etc/passwd` links (absolutely) and whose
/// `/etc/group` links (climbing `..`) to files of a host directory.
fn store_with_account_links() -> Option<(Store, String, HostDir)> {
    let store = Store::new()?;
    let host = HostDir::new("accounts");
    std::fs::write(host.path().join("passwd"), HOST_PASSWD).unwrap();
    std::fs::write(host.path().join("group"), HOST_GROUP).unwrap();
    let target = host.text();
    let image = store.image(
        ImageBuilder::busybox().layer(|l| {
            l.symlink("etc/passwd", &format!("{target}/passwd"));
            l.symlink(
                "etc/group",
                &format!(
                    "{}{}/group",
                    "../".repeat(24),
                    target.trim_start_matches('/')
                ),
            );
        }),
        "account-links",
    );
    // Positive control: the container's files are the links, pointing where
    // the host has the accounts.
    let links = store.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        "readlink /etc/passwd; readlink /etc/group",
    ]);
    assert!(
        links.contains(&format!("{target}/passwd")) && links.contains(&format!("{target}/group")),
        "positive control: the image's account files are not the links: {links}"
    );
    Some((store, image, host))
}

/// `out` is a refusal saying the name is unknown.
#[track_caller]
fn assert_unknown(out: &std::process::Output, what: &str, kind: &str) {
    let shown = text(out);
    assert!(
        !out.status.success() && shown.contains(&format!("unable to find {kind}")),
        "{what}: the engine read the host's accounts through the image's links \
         (expected \"unable to find {kind}\"; {}):\n{shown}",
        out.status
    );
}

#[test]
fn run_as_a_user_only_the_hosts_passwd_names_fails() {
    let Some((store, image, _host)) = store_with_account_links() else {
        return;
    };
    let out = store.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-u",
        "hostonly",
        &image,
        "id",
        "-u",
    ]);
    assert_unknown(&out, "run -u hostonly", "user");
}

#[test]
fn run_with_a_group_only_the_hosts_group_file_names_fails() {
    let Some((store, image, _host)) = store_with_account_links() else {
        return;
    };
    let out = store.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-u",
        "0:hostgroup",
        &image,
        "id",
        "-g",
    ]);
    assert_unknown(&out, "run -u 0:hostgroup", "group");
}

#[test]
fn exec_as_a_user_only_the_hosts_passwd_names_fails() {
    let Some((store, image, _host)) = store_with_account_links() else {
        return;
    };
    let name = unique("exec-user-link");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    store.sleeper(&image, &name);
    let out = store.docker(&["exec", "-u", "hostonly", &name, "id", "-u"]);
    assert_unknown(&out, "exec -u hostonly", "user");
}

/// `out` is docker's refusal of an id out of range: exit 125, saying so.
fn refused_as_out_of_range(out: &std::process::Output) -> bool {
    out.status.code() == Some(125) && text(out).contains("range")
}

#[test]
fn run_refuses_user_and_group_ids_beyond_2147483647() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let run_as = |user: &str| {
        run_within(
            store.command(&[
                "run",
                "--rm",
                "--network",
                "none",
                "-u",
                user,
                &image,
                "sh",
                "-c",
                "echo uid=$(id -u) gid=$(id -g)",
            ]),
            WAIT,
        )
    };
    // Positive control: the largest id docker takes runs as that id.
    let largest = run_as("2147483647:2147483647");
    assert!(
        text(&largest).contains("uid=2147483647 gid=2147483647"),
        "positive control: -u 2147483647:2147483647: {}",
        text(&largest)
    );
    let mut accepted = Vec::new();
    for user in ["2147483648", "4294967295", "0:4294967295"] {
        let out = run_as(user);
        if !refused_as_out_of_range(&out) {
            accepted.push(format!("-u {user} ({}): {}", out.status, text(&out).trim()));
        }
    }
    assert!(
        accepted.is_empty(),
        "ids beyond 2147483647 were not refused with exit 125 and a range message:\n{}",
        accepted.join("\n")
    );
}

#[test]
fn exec_refuses_user_ids_beyond_2147483647() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let name = unique("exec-uid-range");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    store.sleeper(&image, &name);
    let largest = store.docker(&["exec", "-u", "2147483647", &name, "id", "-u"]);
    assert!(
        text(&largest).contains("2147483647"),
        "positive control: exec -u 2147483647: {}",
        text(&largest)
    );
    let out = store.docker(&["exec", "-u", "2147483648", &name, "id", "-u"]);
    assert!(
        refused_as_out_of_range(&out),
        "exec -u 2147483648 was not refused with exit 125 and a range message ({}): {}",
        out.status,
        text(&out).trim()
    );
}
