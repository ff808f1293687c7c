use super::*;
use crate::spec::DEFAULT_CAPABILITIES;

fn host(arch_name: &str, arch: Option<Arch>, kernel: &str) -> Host {
    Host {
        arch_name: arch_name.into(),
        arch,
        kernel_release: kernel.into(),
    }
}

fn amd64() -> Host {
    host("amd64", Some(Arch::ScmpArchX86_64), "6.18.44-generic")
}

fn default_for(extra: &[Capability], on: &Host) -> LinuxSeccomp {
    let caps: Vec<Capability> = DEFAULT_CAPABILITIES.iter().chain(extra).copied().collect();
    DockerProfile::docker_default()
        .to_oci_on(&caps, on)
        .unwrap()
}

/// The rules naming `name`.
fn rules<'a>(profile: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
    profile
        .syscalls()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|s| s.names().iter().any(|n| n == name))
        .collect()
}

/// Allowed whatever the arguments.
fn allowed(profile: &LinuxSeccomp, name: &str) -> bool {
    rules(profile, name)
        .iter()
        .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
}

#[test]
fn the_default_refuses_with_eperm_and_covers_x86_and_x32_on_x86_64() {
    let p = default_for(&[], &amd64());
    assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(p.default_errno_ret(), Some(1));
    assert_eq!(
        p.architectures().as_deref().unwrap(),
        [Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    );
    let p = default_for(&[], &host("arm64", Some(Arch::ScmpArchAarch64), "6.1"));
    assert_eq!(
        p.architectures().as_deref().unwrap(),
        [Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    );
    assert!(allowed(&p, "set_tls") && !allowed(&p, "arch_prctl"));
    let p = default_for(&[], &host("sparc64", None, "6.1"));
    assert_eq!(p.architectures(), &None, "libseccomp's native architecture");
}

#[test]
fn ordinary_syscalls_are_allowed_and_the_dangerous_ones_are_not() {
    let p = default_for(&[], &amd64());
    for name in [
        "read",
        "write",
        "openat",
        "execve",
        "fork",
        "wait4",
        "mmap",
        "futex",
        "bind",
        "connect",
        "sendmsg",
        "epoll_pwait",
        "getdents64",
        "rt_sigaction",
        "arch_prctl",
        "clock_gettime",
    ] {
        assert!(allowed(&p, name), "{name} should be allowed");
    }
    for name in [
        "keyctl",
        "add_key",
        "request_key",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "userfaultfd",
        "bpf",
        "perf_event_open",
        "mount",
        "umount2",
        "unshare",
        "setns",
        "fsopen",
        "fsmount",
        "open_tree",
        "move_mount",
        "pivot_root",
        "init_module",
        "kexec_load",
        "reboot",
        "settimeofday",
        "clock_settime",
        "swapon",
        "acct",
        "kcmp",
        "pidfd_getfd",
        "open_by_handle_at",
        "syslog",
        "iopl",
        "vhangup",
        "sethostname",
        "mbind",
        "s390_runtime_instr",
        "lsm_set_self_attr",
    ] {
        assert!(
            rules(&p, name).is_empty(),
            "{name} should fall to the default action"
        );
    }
}

#[test]
fn clone_is_allowed_only_without_namespace_flags_and_clone3_fails_with_enosys() {
    let p = default_for(&[], &amd64());
    let clone = rules(&p, "clone");
    assert_eq!(clone.len(), 1, "{clone:?}");
    let arg = &clone[0].args().as_deref().unwrap()[0];
    assert_eq!(
        (
            arg.index(),
            arg.value(),
            arg.value_two().unwrap_or(0),
            arg.op()
        ),
        (0, 0x7E02_0000, 0, LinuxSeccompOperator::ScmpCmpMaskedEq)
    );
    let clone3 = rules(&p, "clone3");
    assert_eq!(clone3.len(), 1);
    assert_eq!(
        (clone3[0].action(), clone3[0].errno_ret()),
        (LinuxSeccompAction::ScmpActErrno, Some(38))
    );
    // s390 passes the flags second.
    let s390 = default_for(&[], &host("s390x", Some(Arch::ScmpArchS390x), "6.1"));
    let clone = rules(&s390, "clone");
    assert_eq!(clone[0].args().as_deref().unwrap()[0].index(), 1);
}

#[test]
fn cap_sys_admin_opens_mounts_namespaces_and_plain_clone() {
    let p = default_for(&[Capability::SysAdmin], &amd64());
    for name in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "bpf",
        "perf_event_open",
        "fsopen",
        "fsmount",
        "open_tree",
        "move_mount",
        "clone",
        "clone3",
        "sethostname",
    ] {
        assert!(allowed(&p, name), "{name} with CAP_SYS_ADMIN");
    }
    assert!(
        rules(&p, "clone3")
            .iter()
            .all(|r| r.action() == LinuxSeccompAction::ScmpActAllow),
        "no ENOSYS rule beside the allowance"
    );
    assert!(rules(&p, "clone").iter().all(|r| r.args().is_none()));
}

#[test]
fn each_capability_opens_its_own_syscalls_only() {
    let table: &[(Capability, &[&str])] = &[
        (
            Capability::SysPtrace,
            &["kcmp", "pidfd_getfd", "process_madvise"],
        ),
        (
            Capability::SysModule,
            &["init_module", "finit_module", "delete_module"],
        ),
        (Capability::SysBoot, &["reboot"]),
        (Capability::SysTime, &["settimeofday", "clock_settime"]),
        (Capability::SysPacct, &["acct"]),
        (Capability::SysRawio, &["iopl", "ioperm"]),
        (
            Capability::SysNice,
            &["mbind", "set_mempolicy", "get_mempolicy"],
        ),
        (Capability::Syslog, &["syslog"]),
        (Capability::SysTtyConfig, &["vhangup"]),
        (Capability::Bpf, &["bpf"]),
        (Capability::Perfmon, &["perf_event_open"]),
        (Capability::DacReadSearch, &["open_by_handle_at"]),
    ];
    for (cap, names) in table {
        let with = default_for(&[*cap], &amd64());
        let without = default_for(&[], &amd64());
        for name in *names {
            assert!(allowed(&with, name), "{name} with {cap:?}");
            assert!(!allowed(&without, name), "{name} without {cap:?}");
        }
        assert!(!allowed(&with, "mount"), "{cap:?} does not open mount");
    }
    // CAP_SYS_CHROOT is one of docker's defaults.
    assert!(allowed(&default_for(&[], &amd64()), "chroot"));
}

#[test]
fn personality_and_socket_are_allowed_only_with_dockers_values() {
    let p = default_for(&[], &amd64());
    let values: Vec<u64> = rules(&p, "personality")
        .iter()
        .map(|r| r.args().as_deref().unwrap()[0].value())
        .collect();
    assert_eq!(values, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
    let sockets: Vec<(u64, LinuxSeccompOperator)> = rules(&p, "socket")
        .iter()
        .map(|r| {
            let a = r.args().as_deref().unwrap()[0];
            (a.value(), a.op())
        })
        .collect();
    assert_eq!(
        sockets,
        [
            (38, LinuxSeccompOperator::ScmpCmpLt),
            (39, LinuxSeccompOperator::ScmpCmpEq),
            (40, LinuxSeccompOperator::ScmpCmpGt)
        ],
        "AF_ALG (38) and AF_VSOCK (40) refused"
    );
}

#[test]
fn min_kernel_is_compared_with_the_running_kernel() {
    let new = default_for(&[], &amd64());
    let old = default_for(&[], &host("amd64", Some(Arch::ScmpArchX86_64), "4.4.0-210"));
    assert!(allowed(&new, "ptrace"));
    assert!(
        !allowed(&old, "ptrace"),
        "before 4.8 only with CAP_SYS_PTRACE"
    );
    let e = DockerProfile::docker_default()
        .to_oci_on(
            DEFAULT_CAPABILITIES,
            &host("amd64", Some(Arch::ScmpArchX86_64), "unknown"),
        )
        .unwrap_err();
    assert!(e.to_string().contains("minKernel"), "{e}");
    assert_eq!(
        KernelVersion::from_release("6.18.44-fc-v1272"),
        Some(KernelVersion {
            major: 6,
            minor: 18
        })
    );
}

#[test]
fn the_default_compiles_with_libseccomp() {
    for extra in [&[][..], &[Capability::SysAdmin, Capability::SysPtrace][..]] {
        let p = DockerProfile::docker_default()
            .to_oci(DEFAULT_CAPABILITIES.iter().chain(extra))
            .unwrap();
        let prog = crate::seccomp::Program::compile(&p).unwrap();
        assert!(prog.len() > 100, "{}", prog.len());
    }
}

fn error(json: &str) -> String {
    DockerProfile::from_json(json).unwrap_err().to_string()
}

#[test]
fn errors_name_the_field() {
    let e = error(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["mkdir"],"action":"SCMP_ACT_NOPE"}]}"#,
    );
    assert!(
        e.contains("syscalls[1].action") && e.contains("SCMP_ACT_NOPE"),
        "{e}"
    );
    let e = error(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_SOMETIMES"}]}]}"#,
    );
    assert!(e.contains("syscalls[0].args[0].op"), "{e}");
    let e = error(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ALLOW","exclude":{"caps":["CAP_SYS_ADMIN"]}}]}"#,
    );
    assert!(
        e.contains("syscalls[0].exclude") && e.contains("unknown field"),
        "{e}"
    );
    let e = error(r#"{"syscalls":[]}"#);
    assert!(e.contains("defaultAction") && e.contains("missing"), "{e}");
    let e = error(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    assert!(e.contains("syscalls[0].name"), "{e}");
    let e = error(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#,
    );
    assert!(e.contains("archMap"), "{e}");
    let e =
        error(r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_VAX"}]}"#);
    assert!(e.contains("archMap[0].architecture"), "{e}");
    let e = error(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4"}}]}"#,
    );
    assert!(e.contains("syscalls[0].includes.minKernel"), "{e}");
    let e = error(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(e.contains("syscalls[0].args[0].index"), "{e}");
    let e = error(r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":"EPERM"}"#);
    assert!(e.contains("defaultErrnoRet"), "{e}");
    let e = error(r#"["not", "an", "object"]"#);
    assert!(e.contains("the document"), "{e}");
    assert!(error("{").contains("not valid JSON"));
}

#[test]
fn older_and_simpler_profiles_read_as_docker_reads_them() {
    let p = DockerProfile::from_json(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":null,
            "syscalls":[{"name":"mkdir","action":"SCMP_ACT_ERRNO","args":null,
                         "includes":{},"excludes":{"minKernel":""}}]}"#,
    )
    .unwrap();
    let oci = p.to_oci_on(DEFAULT_CAPABILITIES, &amd64()).unwrap();
    assert_eq!(oci.architectures(), &None, "no archMap, no architectures");
    assert_eq!(rules(&oci, "mkdir").len(), 1);
    assert_eq!(oci.default_errno_ret(), None);
}
