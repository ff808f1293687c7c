//! Namespaces, mounts, masked paths, users and capabilities, for real (needs root).

mod common;

use common::{privileged, run, sh};

#[test]
fn pid_1_hostname_and_few_processes() {
    if !privileged() {
        return;
    }
    let mut spec = sh("echo $$; hostname; ls /proc | grep -c '^[0-9]'");
    spec.set_hostname(Some("inside-box".into()));
    let (status, out) = run("pid1", spec);
    assert_eq!(status.exit_code(), 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1");
    assert_eq!(lines[1], "inside-box");
    assert_ne!(
        lines[1],
        nix::unistd::gethostname().unwrap().to_string_lossy()
    );
    let pids: u32 = lines[2].trim().parse().unwrap();
    assert!(pids <= 3, "host processes visible: {pids} pids in /proc");
}

#[test]
fn kcore_masked_and_proc_sys_readonly() {
    if !privileged() {
        return;
    }
    let (status, out) = run(
        "masked",
        sh(
            "if [ -e /proc/kcore ]; then wc -c < /proc/kcore; else echo absent; fi; wc -c < /proc/timer_list; echo 1 > /proc/sys/kernel/domainname && echo writable || echo readonly",
        ),
    );
    assert_eq!(status.exit_code(), 0);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    // This machine's kernel has no /proc/kcore; where it exists it must read empty.
    assert!(lines[0] == "0" || lines[0] == "absent", "{lines:?}");
    assert!(
        !std::fs::read_to_string("/proc/timer_list")
            .unwrap()
            .is_empty()
    );
    assert_eq!(lines[1..], ["0", "readonly"]);
}

#[test]
fn bind_mount_read_only_where_asked() {
    if !privileged() {
        return;
    }
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("hello"), "from host").unwrap();
    let mut spec = sh("cat /ro/hello; echo; echo x > /ro/new && echo wrote || echo refused");
    let mut m = oci_spec::runtime::Mount::default();
    m.set_destination("/ro".into());
    m.set_typ(Some("bind".into()));
    m.set_source(Some(host.path().to_path_buf()));
    m.set_options(Some(vec!["rbind".into(), "ro".into()]));
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    let (status, out) = run("bindro", spec);
    assert_eq!(status.exit_code(), 0);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["from host", "refused"]);
    assert!(!host.path().join("new").exists());
}

#[test]
fn user_and_groups_switch() {
    if !privileged() {
        return;
    }
    let mut spec = sh("id -u; id -g; id -G; grep CapEff /proc/self/status");
    let user = basic_runtime::resolve_user(common::rootfs(), "user").unwrap();
    assert_eq!(user.additional_gids, [2000]);
    let u = spec.process_mut().as_mut().unwrap().user_mut();
    u.set_uid(user.uid);
    u.set_gid(user.gid);
    u.set_additional_gids(Some(user.additional_gids));
    let (status, out) = run("user", spec);
    assert_eq!(status.exit_code(), 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    assert_eq!(lines[2], "1000 2000");
    // docker's rule: a non-root user keeps its capabilities only in the bounding set.
    assert!(
        lines[3].ends_with("00000000a80425fb") || lines[3].ends_with("0000000000000000"),
        "{}",
        lines[3]
    );
}

#[test]
fn capabilities_dropped_to_the_given_set() {
    if !privileged() {
        return;
    }
    use oci_spec::runtime::Capability;
    let mut spec = sh("grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status");
    let set: std::collections::HashSet<Capability> = [Capability::Chown, Capability::Kill].into();
    let caps = oci_spec::runtime::LinuxCapabilitiesBuilder::default()
        .bounding(set.clone())
        .effective(set.clone())
        .permitted(set)
        .inheritable(std::collections::HashSet::new())
        .ambient(std::collections::HashSet::new())
        .build()
        .unwrap();
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_capabilities(Some(caps));
    let (status, out) = run("caps", spec);
    assert_eq!(status.exit_code(), 0, "{out}");
    for line in out.lines() {
        assert!(line.ends_with("0000000000000021"), "{line}");
    }
    assert_eq!(out.lines().count(), 3);
}

#[test]
fn default_capabilities_are_dockers() {
    if !privileged() {
        return;
    }
    let (_, out) = run("defcaps", sh("grep CapEff /proc/self/status"));
    assert!(out.trim().ends_with("00000000a80425fb"), "{out}");
}

#[test]
fn env_cwd_readonly_root_and_no_new_privs() {
    if !privileged() {
        return;
    }
    let mut spec = sh(
        "pwd; echo $FOO; grep NoNewPrivs /proc/self/status; touch /x 2>/dev/null && echo rw || echo ro; ulimit -n",
    );
    let p = spec.process_mut().as_mut().unwrap();
    p.set_cwd("/tmp".into());
    p.set_env(Some(vec!["PATH=/bin".into(), "FOO=bar".into()]));
    p.set_no_new_privileges(Some(true));
    let lim = oci_spec::runtime::PosixRlimitBuilder::default()
        .typ(oci_spec::runtime::PosixRlimitType::RlimitNofile)
        .soft(1234u64)
        .hard(2000u64)
        .build()
        .unwrap();
    p.set_rlimits(Some(vec![lim]));
    spec.root_mut().as_mut().unwrap().set_readonly(Some(true));
    let (status, out) = run("envcwd", spec);
    assert_eq!(status.exit_code(), 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "/tmp");
    assert_eq!(lines[1], "bar");
    assert!(lines[2].ends_with('1'), "{}", lines[2]);
    assert_eq!(lines[3], "ro");
    assert_eq!(lines[4], "1234");
}

#[test]
fn devices_cgroup_denies_other_nodes() {
    if !privileged() {
        return;
    }
    let (status, out) = run(
        "devices",
        sh(
            "head -c 3 /dev/zero | wc -c; mknod /dev/sda-copy b 8 0 && (head -c 1 /dev/sda-copy >/dev/null 2>&1 && echo readable || echo denied)",
        ),
    );
    assert_eq!(status.exit_code(), 0);
    assert_eq!(
        out.lines().map(str::trim).collect::<Vec<_>>(),
        ["3", "denied"]
    );
}

#[test]
fn user_namespace_with_maps() {
    if !privileged() {
        return;
    }
    // In a user namespace the device nodes are the host's, bind-mounted.
    let mut spec = sh("id -u; cat /proc/self/uid_map; stat -c %t:%T /dev/null");
    let linux = spec.linux_mut().as_mut().unwrap();
    let mut ns = linux.namespaces().clone().unwrap();
    let mut user = oci_spec::runtime::LinuxNamespace::default();
    user.set_typ(oci_spec::runtime::LinuxNamespaceType::User);
    ns.push(user);
    linux.set_namespaces(Some(ns));
    let map = oci_spec::runtime::LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(100000u32)
        .size(65536u32)
        .build()
        .unwrap();
    linux.set_uid_mappings(Some(vec![map]));
    linux.set_gid_mappings(Some(vec![map]));
    let (status, out) = run("userns", spec);
    assert_eq!(status.exit_code(), 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    assert_eq!(lines[2], "1:3");
}

#[test]
fn sysctls_devices_file_binds_and_root_propagation_as_planned() {
    if !privileged() {
        return;
    }
    let host = tempfile::tempdir().unwrap();
    let greeting = host.path().join("greeting");
    std::fs::write(&greeting, "hello").unwrap();
    let mut spec = sh(
        "cat /etc/greeting; echo; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; \
         stat -c '%a %u %g %t:%T' /dev/mine",
    );
    let mut m = oci_spec::runtime::Mount::default();
    m.set_destination("/etc/greeting".into());
    m.set_typ(Some("bind".into()));
    m.set_source(Some(greeting.clone()));
    m.set_options(Some(vec!["bind".into(), "ro".into()]));
    spec.mounts_mut().as_mut().unwrap().push(m);
    let mut device = oci_spec::runtime::LinuxDevice::default();
    device.set_path("/dev/mine".into());
    device.set_typ(oci_spec::runtime::LinuxDeviceType::C);
    device.set_major(1);
    device.set_minor(3);
    device.set_file_mode(Some(0o640));
    device.set_uid(Some(1000));
    device.set_gid(Some(2000));
    let linux = spec.linux_mut().as_mut().unwrap();
    linux.set_devices(Some(vec![device]));
    linux.set_rootfs_propagation(Some("private".into()));
    linux.set_sysctl(Some(
        [(
            "net.ipv4.ip_unprivileged_port_start".to_string(),
            "80".to_string(),
        )]
        .into(),
    ));
    let (status, out) = run("planned", spec);
    assert_eq!(status.exit_code(), 0, "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["hello", "80", "640 1000 2000 1:3"]
    );
}
