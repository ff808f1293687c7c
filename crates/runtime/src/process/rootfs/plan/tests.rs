//! The plan, without root: docker's default spec, binds, propagation, `/dev`, user
//! namespaces, cgroup hierarchies, and what is created.

use super::*;
use oci_spec::runtime::LinuxNamespace;

fn v1_host() -> Host {
    Host {
        cgroup: CgroupVersion::V1,
        cgroup_v1_hierarchies: ["cpu", "memory", "systemd", "unified"]
            .map(String::from)
            .to_vec(),
        own_cgroups: Default::default(),
        directory_sources: HashSet::new(),
        user_namespace: false,
    }
}

fn v2_host() -> Host {
    Host {
        cgroup: CgroupVersion::V2,
        cgroup_v1_hierarchies: Vec::new(),
        own_cgroups: Default::default(),
        directory_sources: HashSet::new(),
        user_namespace: false,
    }
}

fn docker_spec() -> Spec {
    crate::default_spec(vec!["sh".into()], vec![], "/work").unwrap()
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(dest.into());
    m.set_typ(Some(typ.into()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

fn with_mounts(mut spec: Spec, extra: Vec<Mount>) -> Spec {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.extend(extra);
    spec.set_mounts(Some(mounts));
    spec
}

fn step<'a>(plan: &'a Plan, dest: &str) -> &'a MountStep {
    plan.mounts
        .iter()
        .find(|m| m.destination == Path::new(dest))
        .unwrap_or_else(|| panic!("no mount on {dest}"))
}

fn nodes(plan: &Plan) -> Vec<&DeviceNode> {
    plan.dev
        .iter()
        .filter_map(|e| match e {
            DevEntry::Node(n) => Some(n),
            DevEntry::Symlink { .. } => None,
        })
        .collect()
}

#[test]
fn options_split_into_flags_propagation_and_data() {
    let opts: Vec<String> = ["nosuid", "ro", "rbind", "rslave", "mode=755", "size=65536k"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (flags, prop, data) = parse_options(&opts);
    assert_eq!(
        flags,
        MsFlags::MS_NOSUID | MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC
    );
    assert_eq!(prop, MsFlags::MS_SLAVE | MsFlags::MS_REC);
    assert_eq!(data, ["mode=755", "size=65536k"]);
    let (flags, _, _) = parse_options(&["ro".to_string(), "rw".to_string()]);
    assert!(!flags.contains(MsFlags::MS_RDONLY), "a later rw wins");
}

#[test]
fn dockers_default_spec_plans_dockers_root() {
    let plan = plan(&docker_spec(), &v1_host(), false).unwrap();
    assert_eq!(plan.propagation.name, "rslave");
    assert_eq!(plan.propagation.flag, MsFlags::MS_SLAVE);
    assert!(!plan.propagation.reapplied_in_root());
    let order: Vec<_> = plan
        .mounts
        .iter()
        .map(|m| m.destination.to_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/sys",
            "/sys/fs/cgroup",
            "/dev/mqueue",
            "/dev/shm"
        ]
    );
    let proc = step(&plan, "/proc");
    assert!(proc.real_directory);
    assert_eq!(proc.mount_point, Leaf::Dir);
    assert_eq!(
        proc.action,
        MountAction::Filesystem {
            source: "proc".into(),
            fstype: "proc".into(),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
            data: None,
        }
    );
    assert_eq!(
        step(&plan, "/dev").action,
        MountAction::Filesystem {
            source: "tmpfs".into(),
            fstype: "tmpfs".into(),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            data: Some("mode=755,size=65536k".into()),
        }
    );
    let MountAction::Filesystem { data, .. } = &step(&plan, "/dev/pts").action else {
        panic!("devpts is a filesystem");
    };
    assert_eq!(
        data.as_deref(),
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5")
    );
    let sys = step(&plan, "/sys");
    assert!(sys.real_directory);
    assert!(matches!(&sys.action, MountAction::Filesystem { flags, .. }
        if flags.contains(MsFlags::MS_RDONLY)));
    assert_eq!(
        step(&plan, "/dev/shm").what,
        "mounting shm (tmpfs) on /dev/shm"
    );
    assert!(plan.mounts.iter().all(|m| m.propagation.is_empty()));

    // /dev is the container's own tmpfs: the six nodes, then docker's symlinks.
    let made: Vec<_> = nodes(&plan)
        .iter()
        .map(|n| (n.path.to_str().unwrap(), n.major, n.minor, n.mode))
        .collect();
    assert_eq!(
        made,
        [
            ("/dev/null", 1, 3, 0o666),
            ("/dev/zero", 1, 5, 0o666),
            ("/dev/full", 1, 7, 0o666),
            ("/dev/random", 1, 8, 0o666),
            ("/dev/urandom", 1, 9, 0o666),
            ("/dev/tty", 5, 0, 0o666),
        ]
    );
    assert!(nodes(&plan).iter().all(|n| n.kind == SFlag::S_IFCHR
        && n.how == MakeNode::MknodOrBind
        && n.uid.is_none()
        && n.gid.is_none()));
    assert!(matches!(
        plan.dev[6],
        DevEntry::Symlink {
            link: "fd",
            target: "/proc/self/fd"
        }
    ));
    assert!(matches!(
        plan.dev[10],
        DevEntry::Symlink {
            link: "ptmx",
            target: "pts/ptmx"
        }
    ));
    assert_eq!(plan.dev.len(), 12);

    assert_eq!(plan.enter, Enter::PivotRoot);
    assert_eq!(plan.cwd.as_deref(), Some(Path::new("/work")));
    assert!(plan.masked.contains(&PathBuf::from("/proc/kcore")));
    assert!(plan.readonly.contains(&PathBuf::from("/proc/sys")));
    assert!(!plan.readonly_root);
    assert!(plan.sysctls.is_empty());
}

#[test]
fn binds_get_a_file_or_a_directory_and_a_remount_for_their_flags() {
    let spec = with_mounts(
        docker_spec(),
        vec![
            mount("/data", "bind", "/srv/data", &["rbind", "ro", "nosuid"]),
            mount("/etc/hosts", "bind", "/run/hosts", &["bind"]),
            mount("/cache", "none", "/srv/cache", &["rbind", "rw"]),
        ],
    );
    let mut host = v1_host();
    host.directory_sources = ["/srv/data", "/srv/cache"].map(PathBuf::from).into();
    let plan = plan(&spec, &host, false).unwrap();

    let data = step(&plan, "/data");
    assert_eq!(data.mount_point, Leaf::Dir);
    assert!(!data.real_directory);
    assert_eq!(
        data.action,
        MountAction::Bind {
            source: "/srv/data".into(),
            recursive: true,
            remount: MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
        }
    );
    // A file is bound onto a file: the mount point created is an empty file.
    let hosts = step(&plan, "/etc/hosts");
    assert_eq!(hosts.mount_point, Leaf::File);
    assert_eq!(
        hosts.action,
        MountAction::Bind {
            source: "/run/hosts".into(),
            recursive: false,
            remount: MsFlags::empty(),
        }
    );
    // A bind by option alone (type "none"), read-write: no remount.
    assert_eq!(
        step(&plan, "/cache").action,
        MountAction::Bind {
            source: "/srv/cache".into(),
            recursive: true,
            remount: MsFlags::empty(),
        }
    );
}

#[test]
fn propagation_of_the_root_and_of_single_mounts() {
    let mut spec = with_mounts(
        docker_spec(),
        vec![
            mount("/shared", "bind", "/srv/a", &["rbind", "rshared"]),
            mount("/private", "bind", "/srv/b", &["bind", "private"]),
        ],
    );
    let host = v2_host();
    let p = plan(&spec, &host, false).unwrap();
    assert_eq!(
        step(&p, "/shared").propagation,
        MsFlags::MS_SHARED | MsFlags::MS_REC
    );
    assert_eq!(step(&p, "/private").propagation, MsFlags::MS_PRIVATE);

    for (name, flag) in [
        ("private", MsFlags::MS_PRIVATE),
        ("rshared", MsFlags::MS_SHARED),
        ("unbindable", MsFlags::MS_UNBINDABLE),
        ("slave", MsFlags::MS_SLAVE),
    ] {
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_rootfs_propagation(Some(name.into()));
        let p = plan(&spec, &host, false).unwrap();
        assert_eq!(p.propagation.flag, flag, "{name}");
        // Anything but slave is applied again inside the new root.
        assert_eq!(p.propagation.reapplied_in_root(), flag != MsFlags::MS_SLAVE);
    }
    spec.linux_mut()
        .as_mut()
        .unwrap()
        .set_rootfs_propagation(Some("sideways".into()));
    let e = plan(&spec, &host, false).unwrap_err().to_string();
    assert!(e.contains("unknown rootfsPropagation \"sideways\""), "{e}");
}

#[test]
fn dev_nodes_come_only_with_a_dev_of_its_own_and_keep_their_owner() {
    // /dev bound from the host: no default nodes or symlinks, only the spec's devices.
    let mut spec = docker_spec();
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.retain(|m| m.destination() != Path::new("/dev"));
    mounts.push(mount("/dev", "bind", "/dev", &["rbind"]));
    spec.set_mounts(Some(mounts));
    let device = |path: &str, typ, uid, gid, mode| {
        let mut d = LinuxDevice::default();
        d.set_path(path.into());
        d.set_typ(typ);
        d.set_major(8);
        d.set_minor(1);
        d.set_uid(uid);
        d.set_gid(gid);
        d.set_file_mode(mode);
        d
    };
    spec.linux_mut().as_mut().unwrap().set_devices(Some(vec![
        device(
            "/dev/sda1",
            LinuxDeviceType::B,
            Some(1000),
            Some(6),
            Some(0o660),
        ),
        device("/dev/fifo", LinuxDeviceType::P, None, None, None),
    ]));
    let p = plan(&spec, &v1_host(), false).unwrap();
    assert!(!p.dev.iter().any(|e| matches!(e, DevEntry::Symlink { .. })));
    let made = nodes(&p);
    assert_eq!(made.len(), 2);
    assert_eq!(
        (made[0].kind, made[0].uid, made[0].gid, made[0].mode),
        (SFlag::S_IFBLK, Some(1000), Some(6), 0o660)
    );
    assert_eq!(
        (made[1].kind, made[1].uid, made[1].gid, made[1].mode),
        (SFlag::S_IFIFO, None, None, 0o666)
    );

    spec.linux_mut()
        .as_mut()
        .unwrap()
        .set_devices(Some(vec![device(
            "/",
            LinuxDeviceType::C,
            None,
            None,
            None,
        )]));
    let e = plan(&spec, &v1_host(), false).unwrap_err().to_string();
    assert!(e.contains("device path / has no name"), "{e}");
}

#[test]
fn a_user_namespace_binds_the_hosts_nodes_instead_of_mknod() {
    let mut spec = docker_spec();
    let linux = spec.linux_mut().as_mut().unwrap();
    let mut namespaces = linux.namespaces().clone().unwrap();
    let mut user = LinuxNamespace::default();
    user.set_typ(LinuxNamespaceType::User);
    namespaces.push(user);
    linux.set_namespaces(Some(namespaces));
    let p = plan(&spec, &v1_host(), false).unwrap();
    assert_eq!(nodes(&p).len(), 6);
    assert!(nodes(&p).iter().all(|n| n.how == MakeNode::Bind));
}

#[test]
fn sys_fs_cgroup_follows_the_hosts_hierarchy() {
    let spec = docker_spec();
    let sealed = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;

    let p = plan(&spec, &v2_host(), false).unwrap();
    let cgroup = step(&p, "/sys/fs/cgroup");
    assert_eq!(cgroup.mount_point, Leaf::Dir);
    assert_eq!(
        cgroup.action,
        MountAction::Cgroup2 {
            flags: sealed | MsFlags::MS_RDONLY
        }
    );

    let p = plan(&spec, &v1_host(), false).unwrap();
    assert_eq!(
        step(&p, "/sys/fs/cgroup").action,
        MountAction::CgroupV1 {
            flags: sealed | MsFlags::MS_RDONLY,
            hierarchies: vec![
                ("cpu".into(), "cpu".into(), None),
                ("memory".into(), "memory".into(), None),
                ("systemd".into(), "none,name=systemd".into(), None),
            ],
            readonly: true,
        }
    );

    // --privileged: read-write, still nosuid, nodev, noexec.
    let mut spec = spec;
    for m in spec.mounts_mut().as_mut().unwrap() {
        if m.destination() == Path::new("/sys/fs/cgroup") {
            m.set_options(Some(vec!["rw".into()]));
        }
    }
    let p = plan(&spec, &v1_host(), false).unwrap();
    assert!(matches!(
        &step(&p, "/sys/fs/cgroup").action,
        MountAction::CgroupV1 { flags, readonly: false, .. } if *flags == sealed
    ));
}

#[test]
fn what_is_created_and_written_inside_the_root() {
    let mut spec = docker_spec();
    spec.process_mut().as_mut().unwrap().set_cwd("".into());
    spec.root_mut().as_mut().unwrap().set_readonly(Some(true));
    spec.linux_mut().as_mut().unwrap().set_sysctl(Some(
        [
            ("net.ipv4.ip_forward".to_string(), "1".to_string()),
            ("kernel.msgmax".to_string(), "8192".to_string()),
        ]
        .into(),
    ));
    let p = plan(&spec, &v1_host(), true).unwrap();
    assert_eq!(p.cwd, None, "an empty cwd creates nothing");
    assert!(p.readonly_root);
    assert_eq!(p.enter, Enter::MoveAndChroot);
    assert_eq!(
        p.sysctls,
        [
            Sysctl {
                key: "kernel.msgmax".into(),
                file: "/proc/sys/kernel/msgmax".into(),
                value: "8192".into(),
            },
            Sysctl {
                key: "net.ipv4.ip_forward".into(),
                file: "/proc/sys/net/ipv4/ip_forward".into(),
                value: "1".into(),
            },
        ]
    );
}

#[test]
fn the_host_facts_are_only_read_for_what_the_spec_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let mut spec = docker_spec();
    spec.set_mounts(Some(vec![
        mount("/d", "bind", dir.path().to_str().unwrap(), &["rbind"]),
        mount("/f", "bind", file.to_str().unwrap(), &["bind"]),
        mount("/tmp", "tmpfs", "tmpfs", &[]),
    ]));
    let host = Host::read(&spec).unwrap();
    assert_eq!(
        host.directory_sources,
        HashSet::from([dir.path().to_path_buf()])
    );
    assert!(host.cgroup_v1_hierarchies.is_empty(), "no cgroup mount");
}

#[test]
fn without_a_cgroup_namespace_each_hierarchy_shows_the_containers_own_cgroup() {
    let own = super::own_cgroups(
        "9:name=systemd:/\n4:memory:/basic-docker/c1\n1:cpu,cpuacct:/basic-docker/c1\n0::/\n",
    );
    assert_eq!(own["memory"], Path::new("/basic-docker/c1"));
    assert_eq!(own["cpu,cpuacct"], Path::new("/basic-docker/c1"));
    assert_eq!(own["cpuacct"], Path::new("/basic-docker/c1"));
    assert_eq!(own["systemd"], Path::new("/"));
    assert!(!own.contains_key(""), "the v2 line is no hierarchy");
    let mut host = v1_host();
    host.own_cgroups = own;
    let p = plan(&docker_spec(), &host, false).unwrap();
    let MountAction::CgroupV1 { hierarchies, .. } = &step(&p, "/sys/fs/cgroup").action else {
        panic!("not a v1 cgroup mount");
    };
    assert!(
        hierarchies.contains(&(
            "memory".into(),
            "memory".into(),
            Some("/basic-docker/c1".into())
        )),
        "{hierarchies:?}"
    );
}
