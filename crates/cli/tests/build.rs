//! `build` as a docker user drives it: a fixture Dockerfile with (nearly) every
//! instruction, the result run and inspected; the cache (a rebuild uses it for every
//! step and starts no container; a changed file rebuilds from the step that copies
//! it); `.dockerignore`; `--target`; `--build-arg`; two builds on fresh stores with
//! `SOURCE_DATE_EPOCH` give one image id; a failing RUN's code; a hostile context.

mod common;

use common::{basic_docker, ok};

use std::fs;
use std::path::Path;

/// Each test builds on a store of its own (the cache is per store).
fn fresh_store() -> Option<(tempfile::TempDir, String)> {
    common::busybox_store()?;
    let image = basic_test_support::harness()?.reference("busybox_latest");
    let dir = tempfile::tempdir().unwrap();
    ok(basic_docker(dir.path(), &["pull", "-q", &image]));
    Some((dir, image))
}

const FIXTURE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE
FROM $BASE AS builder
ARG FLAVOUR=plain
RUN mkdir -p /out && echo "built ${FLAVOUR}" > /out/artifact

FROM ${BASE}
ARG VERSION=0
ENV APP_HOME=/srv/app \
    GREETING="hello there"
LABEL org.example.version=${VERSION} org.example.name="fixture app"
WORKDIR $APP_HOME
COPY --chown=1000:1000 app/ ./
COPY --chmod=755 tool.sh /usr/local/bin/tool
COPY --chown=nobody app/nested/deep.txt /srv/nobody.txt
ADD files.tar.gz /srv/unpacked/
COPY --from=builder /out/artifact ./artifact
SHELL ["/bin/sh", "-c"]
RUN echo "${GREETING:-none} ${UNSET:-dflt} ${VERSION:+v$VERSION}" > generated.txt && rm -rf /home
USER 1000:1000
EXPOSE 8080 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --retries=2 CMD ["true"]
ONBUILD RUN echo triggered > /tmp/onbuild.txt
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat generated.txt"]
"#;

/// A context with the fixture, its files, and things `.dockerignore` leaves out.
fn context(dir: &Path) {
    fs::create_dir_all(dir.join("app/nested")).unwrap();
    fs::write(dir.join("Dockerfile"), FIXTURE).unwrap();
    fs::write(dir.join("app/main.txt"), "main v1\n").unwrap();
    fs::write(dir.join("app/nested/deep.txt"), "deep\n").unwrap();
    fs::write(dir.join("app/debug.log"), "left out\n").unwrap();
    fs::write(dir.join("app/keep.log"), "kept by an exception\n").unwrap();
    fs::write(dir.join("tool.sh"), "#!/bin/sh\necho tool ran\n").unwrap();
    fs::write(dir.join(".dockerignore"), "**/*.log\n!app/keep.log\n").unwrap();
    let files = dir.join("files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("inside.txt"), "from the tarball\n").unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&files)
        .args(["-czf"])
        .arg(dir.join("files.tar.gz"))
        .arg("inside.txt")
        .status()
        .unwrap();
    assert!(tar.success());
}

fn build(root: &Path, ctx: &Path, image: &str, extra: &[&str]) -> std::process::Output {
    let base = format!("BASE={image}");
    let mut args = vec!["build", "--network", "none", "--build-arg", &base];
    args.extend_from_slice(extra);
    let ctx = ctx.to_str().unwrap();
    args.push(ctx);
    basic_docker(root, &args)
}

fn inspect(root: &Path, name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&ok(basic_docker(root, &["inspect", name]))).unwrap();
    v[0].clone()
}

#[test]
fn the_fixture_builds_runs_and_caches() {
    let Some((dir, image)) = fresh_store() else {
        return;
    };
    let root = dir.path();
    let ctx = tempfile::tempdir().unwrap();
    context(ctx.path());
    let first = build(
        root,
        ctx.path(),
        &image,
        &["-t", "fixture:1", "--build-arg", "VERSION=7"],
    );
    let text = common::stdout(&first);
    assert!(text.contains("Step 1/24 : ARG BASE"), "{text}");
    assert!(text.contains(" ---> Running in "), "{text}");
    assert!(text.contains("Successfully tagged fixture:1"), "{text}");

    // What a user checks: the default command, the files, owners, modes, config.
    assert_eq!(
        ok(basic_docker(
            root,
            &["run", "--rm", "--network", "none", "fixture:1"]
        )),
        "hello there dflt v7"
    );
    let seen = ok(basic_docker(
        root,
        &[
            "run",
            "--rm",
            "fixture:1",
            "pwd; id -u; cat main.txt nested/deep.txt keep.log artifact /srv/unpacked/inside.txt; \
             ls debug.log 2>&1; stat -c '%u:%g %a' main.txt /usr/local/bin/tool; tool; ls /home 2>&1; true",
        ],
    ));
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "/srv/app", "{seen}");
    assert_eq!(lines[1], "1000", "{seen}");
    assert_eq!(
        &lines[2..7],
        [
            "main v1",
            "deep",
            "kept by an exception",
            "built plain",
            "from the tarball"
        ],
        "{seen}"
    );
    assert!(lines[7].contains("No such file"), "{seen}");
    assert_eq!(lines[8], "1000:1000 644", "{seen}");
    assert_eq!(lines[9], "0:0 755", "{seen}");
    assert_eq!(lines[10], "tool ran", "{seen}");
    assert!(lines[11].contains("No such file"), "{seen}");
    // --chown by name: the image's own passwd and group files.
    assert_eq!(
        ok(basic_docker(
            root,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "fixture:1",
                "stat -c '%u:%g' /srv/nobody.txt"
            ],
        )),
        "65534:65534"
    );
    // A fresh container of the image has changed nothing; the store is consistent.
    let _cleanup = common::Cleanup::new(root, &["fixture-fresh"]);
    ok(basic_docker(
        root,
        &[
            "create",
            "--network",
            "none",
            "--name",
            "fixture-fresh",
            "fixture:1",
        ],
    ));
    assert_eq!(ok(basic_docker(root, &["diff", "fixture-fresh"])), "");
    ok(basic_docker(root, &["rm", "fixture-fresh"]));
    ok(basic_docker(root, &["system", "check"]));
    let doc = inspect(root, "fixture:1");
    let config = &doc["Config"];
    assert_eq!(config["User"], "1000:1000");
    assert_eq!(config["WorkingDir"], "/srv/app");
    assert_eq!(config["StopSignal"], "SIGQUIT");
    assert_eq!(config["Labels"]["org.example.version"], "7");
    assert_eq!(config["Labels"]["org.example.name"], "fixture app");
    assert!(config["ExposedPorts"]["8080/tcp"].is_object(), "{config}");
    assert!(config["ExposedPorts"]["53/udp"].is_object(), "{config}");
    assert!(config["Volumes"]["/data"].is_object(), "{config}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(config["Cmd"], serde_json::json!(["cat generated.txt"]));
    assert_eq!(
        config["OnBuild"],
        serde_json::json!(["RUN echo triggered > /tmp/onbuild.txt"])
    );
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "true"])
    );
    assert_eq!(config["Healthcheck"]["Interval"], 30_000_000_000u64);
    assert!(
        config["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hello there"),
        "{config}"
    );

    // Nothing changed: every step from the cache, no container started.
    let containers_before = ok(basic_docker(root, &["ps", "-aq"]));
    let again = common::stdout(&build(
        root,
        ctx.path(),
        &image,
        &["-t", "fixture:1", "--build-arg", "VERSION=7"],
    ));
    assert!(!again.contains("Running in"), "{again}");
    let steps = again.lines().filter(|l| l.starts_with("Step ")).count();
    let cached = again.lines().filter(|l| *l == " ---> Using cache").count();
    // Every step but the global ARG, the two FROMs and the stage ARGs comes from the cache.
    assert_eq!(cached, steps - 5, "{again}");
    assert_eq!(ok(basic_docker(root, &["ps", "-aq"])), containers_before);
    assert_eq!(inspect(root, "fixture:1")["Id"], doc["Id"]);

    // A changed file: the steps before the COPY that reads it come from the cache,
    // that one and every later one run again.
    fs::write(ctx.path().join("app/main.txt"), "main v2\n").unwrap();
    let changed = common::stdout(&build(
        root,
        ctx.path(),
        &image,
        &["-t", "fixture:2", "--build-arg", "VERSION=7"],
    ));
    let after_copy = changed
        .split("COPY --chown=1000:1000 app/ ./")
        .nth(1)
        .unwrap();
    let before_copy = changed
        .split("COPY --chown=1000:1000 app/ ./")
        .next()
        .unwrap();
    assert!(before_copy.contains("Using cache"), "{changed}");
    let first_line_after = after_copy.lines().nth(1).unwrap();
    assert_ne!(first_line_after, " ---> Using cache", "{changed}");
    assert!(after_copy.contains("Running in"), "{changed}");
    assert_eq!(
        ok(basic_docker(
            root,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "fixture:2",
                "cat main.txt"
            ]
        )),
        "main v2"
    );
    // An unchanged file ignored by .dockerignore changes nothing.
    fs::write(
        ctx.path().join("app/debug.log"),
        "different, still left out\n",
    )
    .unwrap();
    let ignored = common::stdout(&build(
        root,
        ctx.path(),
        &image,
        &["--build-arg", "VERSION=7"],
    ));
    assert!(!ignored.contains("Running in"), "{ignored}");

    // An image built on this one runs its ONBUILD trigger.
    let child = tempfile::tempdir().unwrap();
    fs::write(
        child.path().join("Dockerfile"),
        "FROM fixture:1\nUSER 0\nRUN cat /tmp/onbuild.txt\n",
    )
    .unwrap();
    let child_out = common::stdout(&basic_docker(
        root,
        &[
            "build",
            "--network",
            "none",
            "-t",
            "child:1",
            child.path().to_str().unwrap(),
        ],
    ));
    assert!(child_out.contains("triggered"), "{child_out}");
    assert_eq!(
        inspect(root, "child:1")["Config"]["OnBuild"],
        serde_json::Value::Null
    );
}

#[test]
fn target_and_build_args_choose_what_is_built() {
    let Some((dir, image)) = fresh_store() else {
        return;
    };
    let root = dir.path();
    let ctx = tempfile::tempdir().unwrap();
    context(ctx.path());
    let out = common::stdout(&build(
        root,
        ctx.path(),
        &image,
        &[
            "--target",
            "builder",
            "--build-arg",
            "FLAVOUR=spicy",
            "-t",
            "stage:1",
        ],
    ));
    assert!(out.contains("Step 4/4 : RUN"), "{out}");
    assert!(!out.contains("Step 5/"), "{out}");
    assert_eq!(
        ok(basic_docker(
            root,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "stage:1",
                "cat",
                "/out/artifact"
            ]
        )),
        "built spicy"
    );
    // The build arg is part of the RUN's key: the same value uses the cache, another
    // runs the step again.
    let same = common::stdout(&build(
        root,
        ctx.path(),
        &image,
        &["--target", "builder", "--build-arg", "FLAVOUR=spicy"],
    ));
    assert!(!same.contains("Running in"), "{same}");
    let other = common::stdout(&build(
        root,
        ctx.path(),
        &image,
        &[
            "--target",
            "builder",
            "--build-arg",
            "FLAVOUR=mild",
            "-t",
            "stage:2",
        ],
    ));
    assert!(other.contains("Running in"), "{other}");
    assert_eq!(
        ok(basic_docker(
            root,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "stage:2",
                "cat",
                "/out/artifact"
            ]
        )),
        "built mild"
    );
    let missing = build(root, ctx.path(), &image, &["--target", "nowhere"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nowhere"));
}

#[test]
fn reproducible_builds_give_one_image_id_on_two_stores() {
    let Some((one, image)) = fresh_store() else {
        return;
    };
    let Some((two, _)) = fresh_store() else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    context(ctx.path());
    let mut ids = Vec::new();
    for (n, store) in [one.path(), two.path()].into_iter().enumerate() {
        if n == 1 {
            // Different file times on the second machine.
            fs::write(ctx.path().join("tool.sh"), "#!/bin/sh\necho tool ran\n").unwrap();
        }
        let out = build(
            store,
            ctx.path(),
            &image,
            &[
                "-q",
                "--build-arg",
                "SOURCE_DATE_EPOCH=1700000000",
                "--build-arg",
                "VERSION=7",
            ],
        );
        ids.push(ok(out));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert!(ids[0].starts_with("sha256:"), "{ids:?}");
    assert_eq!(ids[0], ids[1]);
    let doc = inspect(one.path(), &ids[0]);
    assert_eq!(doc["Created"], "2023-11-14T22:13:20Z");
}

#[test]
fn a_failing_run_stops_with_its_code_and_bad_files_are_named() {
    let Some((dir, image)) = fresh_store() else {
        return;
    };
    let root = dir.path();
    let ctx = tempfile::tempdir().unwrap();
    fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nRUN echo before\nRUN exit 3\nRUN echo never\n"),
    )
    .unwrap();
    let out = basic_docker(
        root,
        &[
            "build",
            "--network",
            "none",
            "-t",
            "failed:1",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("returned a non-zero code: 3"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("never"));
    assert!(
        !basic_docker(root, &["inspect", "failed:1"])
            .status
            .success()
    );
    // No container is left, and the store is consistent.
    assert_eq!(ok(basic_docker(root, &["ps", "-aq"])), "");
    ok(basic_docker(root, &["system", "check"]));

    fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\n\nCOPY . /\nFROBNICATE x\n"),
    )
    .unwrap();
    let out = basic_docker(root, &["build", ctx.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("FROBNICATE") && stderr.contains("line 4"),
        "{stderr}"
    );
    fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nCOPY missing.txt /\n"),
    )
    .unwrap();
    let out = basic_docker(root, &["build", ctx.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("missing.txt"), "{stderr}");
    fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nCOPY --chown=nosuchuser Dockerfile /\n"),
    )
    .unwrap();
    let out = basic_docker(
        root,
        &["build", "--network", "none", ctx.path().to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("unable to find user nosuchuser"),
        "{stderr}"
    );
    assert_eq!(ok(basic_docker(root, &["ps", "-aq"])), "");
    // A BuildKit flag is refused by name rather than dropped.
    fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nRUN --mount=type=cache,target=/c true\n"),
    )
    .unwrap();
    let out = basic_docker(
        root,
        &["build", "--network", "none", ctx.path().to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--mount") && stderr.contains("line 2"),
        "{stderr}"
    );
}

#[test]
fn a_hostile_context_copies_links_as_links() {
    let Some((dir, image)) = fresh_store() else {
        return;
    };
    let root = dir.path();
    let ctx = tempfile::tempdir().unwrap();
    let host_marker = tempfile::tempdir().unwrap();
    fs::write(host_marker.path().join("untouched"), "host\n").unwrap();
    std::os::unix::fs::symlink("/etc", ctx.path().join("etc-link")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", ctx.path().join("shadow-link")).unwrap();
    std::os::unix::fs::symlink(host_marker.path(), ctx.path().join("host-dir")).unwrap();
    fs::write(ctx.path().join("..dots"), "dots\n").unwrap();
    fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {image}\nCOPY etc-link shadow-link ..dots /copied/\nCOPY host-dir /copied/host-dir\n\
             COPY . /all/\nRUN echo written > /copied/host-dir/untouched 2>/dev/null; echo pwned > /copied/etc-link/pwned 2>/dev/null; true\n"
        ),
    )
    .unwrap();
    let out = common::stdout(&basic_docker(
        root,
        &[
            "build",
            "--network",
            "none",
            "-t",
            "hostile:1",
            ctx.path().to_str().unwrap(),
        ],
    ));
    assert!(out.contains("Successfully built"), "{out}");
    let seen = ok(basic_docker(
        root,
        &[
            "run",
            "--rm",
            "hostile:1",
            "sh",
            "-c",
            "for f in /copied/etc-link /copied/shadow-link /copied/host-dir /all/etc-link; do readlink $f; done; cat /copied/..dots",
        ],
    ));
    assert_eq!(
        seen,
        format!(
            "/etc\n/etc/shadow\n{}\n/etc\ndots",
            host_marker.path().display()
        )
    );
    assert_eq!(
        fs::read_to_string(host_marker.path().join("untouched")).unwrap(),
        "host\n"
    );
    assert!(!Path::new("/etc/pwned").exists());
}

#[test]
fn standard_input_gives_a_dockerfile_or_a_whole_context() {
    let Some((dir, image)) = fresh_store() else {
        return;
    };
    let root = dir.path();
    // A Dockerfile alone: no context, so no COPY.
    let dockerfile = format!("FROM {image}\nRUN echo from-stdin > /s.txt\n");
    let out = common::with_stdin(
        root,
        &["build", "--network", "none", "-t", "stdin:1", "-"],
        dockerfile.as_bytes(),
    );
    assert!(common::stdout(&out).contains("Successfully tagged stdin:1"));
    // A gzip tar of a whole context (extracted by basic-rootfs, path-safe).
    let ctx = tempfile::tempdir().unwrap();
    fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nCOPY . /ctx/\nCMD [\"cat\", \"/ctx/file.txt\"]\n"),
    )
    .unwrap();
    fs::write(ctx.path().join("file.txt"), "in the tarball\n").unwrap();
    let tarball = tempfile::NamedTempFile::new().unwrap();
    let made = std::process::Command::new("tar")
        .arg("-C")
        .arg(ctx.path())
        .arg("-czf")
        .arg(tarball.path())
        .args(["Dockerfile", "file.txt"])
        .status()
        .unwrap();
    assert!(made.success());
    let out = common::with_stdin(
        root,
        &["build", "--network", "none", "-t", "stdin:2", "-"],
        &fs::read(tarball.path()).unwrap(),
    );
    assert!(common::stdout(&out).contains("Successfully tagged stdin:2"));
    assert_eq!(
        ok(basic_docker(
            root,
            &["run", "--rm", "--network", "none", "stdin:2"]
        )),
        "in the tarball"
    );
    // The extracted context is gone from the store's tmp/.
    assert!(common::tmp_is_empty(root));
}

#[test]
fn from_scratch_an_image_of_only_what_is_copied() {
    let Some((dir, _image)) = fresh_store() else {
        return;
    };
    let root = dir.path();
    let ctx = tempfile::tempdir().unwrap();
    fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"ls\", \"/\"]\n",
    )
    .unwrap();
    let out = common::stdout(&basic_docker(
        root,
        &["build", "-t", "scratchy:1", ctx.path().to_str().unwrap()],
    ));
    assert!(out.contains("Step 1/3 : FROM scratch"), "{out}");
    let doc = inspect(root, "scratchy:1");
    assert_eq!(
        doc["RootFS"]["Layers"].as_array().unwrap().len(),
        1,
        "{doc}"
    );
    // The root holds the copied file and what the runtime mounts, nothing of an image.
    let listing = ok(basic_docker(
        root,
        &["run", "--rm", "--network", "none", "scratchy:1"],
    ));
    assert!(listing.lines().any(|l| l == "bin"), "{listing}");
    assert!(
        !listing.lines().any(|l| l == "usr" || l == "home"),
        "{listing}"
    );
}

/// Short ids of `images` with these flags.
fn listed_ids(root: &Path, flags: &[&str]) -> Vec<String> {
    let mut args = vec!["images", "--format", "{{.ID}}"];
    args.extend_from_slice(flags);
    ok(basic_docker(root, &args))
        .lines()
        .map(str::to_string)
        .collect()
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:")[..12].to_string()
}

#[test]
fn intermediate_images_are_hidden_kept_while_used_and_removed_with_their_last_child() {
    let Some((dir, image)) = fresh_store() else {
        return;
    };
    let root = dir.path();
    let ctx = tempfile::tempdir().unwrap();
    fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nRUN echo a > /a\nENV X=1\nCOPY f /f\n"),
    )
    .unwrap();
    fs::write(ctx.path().join("f"), "one\n").unwrap();
    let ctx_path = ctx.path().to_str().unwrap();
    let build = |tag: &str| {
        ok(basic_docker(
            root,
            &["build", "-q", "--network", "none", "-t", tag, ctx_path],
        ))
        .trim()
        .to_string()
    };
    let first = build("app:1");
    let base = inspect(root, &image)["Id"].as_str().unwrap().to_string();
    // `history` names each step's image (as docker, from the parent links).
    let step_images = |top: &str| -> Vec<String> {
        let history = ok(basic_docker(root, &["history", "-q", "--no-trunc", top]));
        let ids: Vec<String> = history.lines().map(str::to_string).collect();
        assert_eq!(ids[0], top, "{history}");
        // COPY's (the result), ENV's, RUN's, then the base's last entry.
        assert_eq!(ids[3], base, "{history}");
        ids[1..3].to_vec()
    };
    let steps = step_images(&first);
    assert!(!steps.contains(&base), "{steps:?}");

    // A plain listing shows the base and the result; `-a` the steps too.
    let plain = listed_ids(root, &[]);
    assert_eq!(plain.len(), 2, "{plain:?}");
    assert!(
        plain.contains(&short(&first)) && plain.contains(&short(&base)),
        "{plain:?}"
    );
    let all = listed_ids(root, &["-a"]);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(
        steps.iter().all(|s| all.contains(&short(s))),
        "{all:?} {steps:?}"
    );

    // Their descendant is tagged: prune keeps them.
    ok(basic_docker(root, &["image", "prune", "-f"]));
    assert_eq!(listed_ids(root, &["-a"]).len(), 4);

    // A changed file: a new result on the same steps; the old one is dangling, and
    // prune takes it alone (the steps still have a tagged descendant).
    fs::write(ctx.path().join("f"), "two\n").unwrap();
    let second = build("app:1");
    assert_ne!(first, second);
    assert_eq!(step_images(&second), steps);
    let plain = listed_ids(root, &[]);
    assert_eq!(plain.len(), 3, "{plain:?}");
    assert!(
        plain.contains(&short(&first)),
        "the dangling result is listed: {plain:?}"
    );
    let pruned = ok(basic_docker(root, &["image", "prune", "-f"]));
    assert!(pruned.contains(&first), "{pruned}");
    assert!(steps.iter().all(|s| !pruned.contains(s)), "{pruned}");
    let all = listed_ids(root, &["-a"]);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(!all.contains(&short(&first)), "{all:?}");

    // A step with children cannot be removed by id, forced or not.
    for force in [false, true] {
        let mut args = vec!["rmi"];
        if force {
            args.push("-f");
        }
        args.push(&steps[0]);
        let out = basic_docker(root, &args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("image has dependent child images"), "{err}");
    }

    // Removing the result removes the steps made for it, not the base.
    let removed = ok(basic_docker(root, &["rmi", "app:1"]));
    assert!(removed.contains("Untagged: app:1"), "{removed}");
    for id in std::iter::once(&second).chain(&steps) {
        assert!(removed.contains(&format!("Deleted: {id}")), "{removed}");
    }
    assert_eq!(listed_ids(root, &["-a"]), vec![short(&base)]);
    ok(basic_docker(
        root,
        &["run", "--rm", "--network", "none", &image, "true"],
    ));
}

#[test]
fn pull_fetches_the_base_again_and_platform_must_be_the_hosts() {
    let Some((dir, image)) = fresh_store() else {
        return;
    };
    let root = dir.path();
    let registry_id = inspect(root, &image)["Id"].as_str().unwrap().to_string();
    // The base's name made to point at a local image of two layers.
    let local = tempfile::tempdir().unwrap();
    fs::write(
        local.path().join("Dockerfile"),
        format!("FROM {image}\nCOPY f /f\n"),
    )
    .unwrap();
    fs::write(local.path().join("f"), "local\n").unwrap();
    let moved = ok(basic_docker(
        root,
        &["build", "-q", local.path().to_str().unwrap()],
    ));
    ok(basic_docker(root, &["tag", moved.trim(), &image]));

    let ctx = tempfile::tempdir().unwrap();
    fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nENV A=1\n"),
    )
    .unwrap();
    let ctx_path = ctx.path().to_str().unwrap();
    let layers = |flags: &[&str]| {
        let mut args = vec!["build", "-q"];
        args.extend_from_slice(flags);
        args.push(ctx_path);
        let id = ok(basic_docker(root, &args));
        inspect(root, id.trim())["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(layers(&[]), 2, "without --pull the local image is the base");
    assert_eq!(layers(&["--pull"]), 1, "--pull uses the registry's image");
    assert_eq!(inspect(root, &image)["Id"].as_str().unwrap(), registry_id);

    // Another platform is refused before anything runs, naming it; the host's builds.
    let other = if std::env::consts::ARCH == "s390x" {
        "linux/amd64"
    } else {
        "linux/s390x"
    };
    let out = basic_docker(root, &["build", "--platform", other, ctx_path]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(other) && err.contains("RUN"), "{err}");
    let host = match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        other => panic!("no platform name for {other}"),
    };
    assert_eq!(layers(&["--platform", host]), 1);
}

/// A small HTTP/1.0 server on 127.0.0.1 for `ADD <url>`: `/dl/payload.tar.gz` (a gzip
/// tar, with a `Last-Modified`), `/dl/note.txt` (the text in `note`), `/short` (a body
/// shorter than its `Content-Length`), anything else 404. Counts requests.
struct Server {
    port: u16,
    note: std::sync::Arc<std::sync::Mutex<String>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn serve(payload: Vec<u8>) -> Server {
    use std::io::{BufRead as _, BufReader, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let note = std::sync::Arc::new(std::sync::Mutex::new("v1\n".to_string()));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (n, h) = (note.clone(), hits.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).ok();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split(' ').nth(1).unwrap_or("/").to_string();
            let (status, headers, body): (&str, &str, Vec<u8>) = match path.as_str() {
                "/dl/payload.tar.gz" => (
                    "200 OK",
                    "Last-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\n",
                    payload.clone(),
                ),
                "/dl/note.txt" => ("200 OK", "", n.lock().unwrap().clone().into_bytes()),
                "/" => ("200 OK", "", b"index\n".to_vec()),
                "/short" => {
                    let _ = stream
                        .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\nonly a little");
                    continue;
                }
                _ => ("404 Not Found", "", b"no\n".to_vec()),
            };
            let head = format!(
                "HTTP/1.0 {status}\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    Server { port, note, hits }
}

#[test]
fn add_of_a_url_fetches_the_file_as_served_and_caches_by_content() {
    let Some((dir, image)) = fresh_store() else {
        return;
    };
    let root = dir.path();
    let ctx = tempfile::tempdir().unwrap();
    context(ctx.path());
    let payload = fs::read(ctx.path().join("files.tar.gz")).unwrap();
    let server = serve(payload.clone());
    let base = format!("http://127.0.0.1:{}", server.port);
    fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {image}\nADD {base}/dl/payload.tar.gz /srv/\nADD {base}/dl/note.txt /srv/renamed.txt\n"
        ),
    )
    .unwrap();
    let ctx_path = ctx.path().to_str().unwrap();
    let build = || {
        common::stdout(&basic_docker(
            root,
            &["build", "--network", "none", "-t", "urlapp", ctx_path],
        ))
    };
    build();
    let run = |cmd: &str| {
        ok(basic_docker(
            root,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "urlapp",
                "sh",
                "-c",
                cmd,
            ],
        ))
    };
    // Not extracted; 0600; the server's time; the bytes served.
    assert_eq!(run("ls /srv").trim(), "payload.tar.gz\nrenamed.txt");
    assert_eq!(
        run("stat -c '%a %Y %s' /srv/payload.tar.gz").trim(),
        format!("600 1445412480 {}", payload.len())
    );
    assert_eq!(run("cat /srv/renamed.txt").trim(), "v1");

    // The same content: both steps from the cache (fetched again to know).
    let hits = server.hits.load(std::sync::atomic::Ordering::SeqCst);
    let again = build();
    assert_eq!(again.matches("Using cache").count(), 2, "{again}");
    assert_eq!(
        server.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits + 2
    );
    // Changed content: that step runs again.
    *server.note.lock().unwrap() = "v2\n".into();
    let changed = build();
    assert_eq!(changed.matches("Using cache").count(), 1, "{changed}");
    assert_eq!(run("cat /srv/renamed.txt").trim(), "v2");

    // Failures stop the build naming the URL (and the status).
    for (source, dest, words) in [
        (format!("{base}/dl/missing.txt"), "/x", "404"),
        (format!("{base}/short"), "/x", "fetching"),
        (format!("{base}/"), "/srv/", "file name"),
    ] {
        fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM {image}\nADD {source} {dest}\n"),
        )
        .unwrap();
        let out = basic_docker(root, &["build", "--network", "none", ctx_path]);
        assert!(!out.status.success(), "{source}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&source), "{source}: {err}");
        assert!(err.contains(words), "{source}: {err}");
    }
    // COPY does not take a URL.
    fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nCOPY {base}/dl/note.txt /x\n"),
    )
    .unwrap();
    let out = basic_docker(root, &["build", "--network", "none", ctx_path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("can't be a URL"),
        "{err}"
    );
}
