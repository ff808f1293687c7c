use super::*;
use crate::error::ErrorKind;

fn two_cpus() -> HostCpus {
    HostCpus {
        count: 2,
        available: "0-1".into(),
    }
}

fn with_env(env: &[&str]) -> ContainerConfig {
    ContainerConfig {
        env: Some(env.iter().map(|e| e.to_string()).collect()),
        ..Default::default()
    }
}

fn with_host(host: HostConfig) -> ContainerConfig {
    ContainerConfig {
        host_config: Some(host),
        ..Default::default()
    }
}

/// The message of the refusal, which must be an `InvalidArgument` (the API's 400).
#[track_caller]
fn refused(config: ContainerConfig) -> String {
    let e = check(&config, &two_cpus()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(e.exit_code(), 125);
    e.to_string()
}

#[test]
fn environment_entries_need_a_name() {
    assert_eq!(refused(with_env(&[""])), "invalid environment variable: ");
    assert_eq!(
        refused(with_env(&["=x"])),
        "invalid environment variable: =x"
    );
    assert_eq!(
        refused(with_env(&["A=1", " =x"])),
        "invalid environment variable:  =x"
    );
    // A bare name removes the variable; an empty value is a value.
    check(&with_env(&["A", "B=", "C=="]), &two_cpus()).unwrap();
}

#[test]
fn the_working_directory_is_absolute() {
    let config = ContainerConfig {
        working_dir: Some("rel/dir".into()),
        ..Default::default()
    };
    assert_eq!(
        refused(config),
        "the working directory 'rel/dir' is invalid, it needs to be an absolute path"
    );
    for ok in ["", "/", "/srv/app"] {
        let config = ContainerConfig {
            working_dir: Some(ok.into()),
            ..Default::default()
        };
        check(&config, &two_cpus()).unwrap();
    }
}

#[test]
fn memory_limits_follow_dockers_rules() {
    let memory = |memory: i64, swap: Option<i64>| {
        with_host(HostConfig {
            memory: Some(memory),
            memory_swap: swap,
            ..Default::default()
        })
    };
    for small in [1, (6 << 20) - 1, -1] {
        assert_eq!(
            refused(memory(small, None)),
            "Minimum memory limit allowed is 6MB"
        );
    }
    check(&memory(6 << 20, None), &two_cpus()).unwrap();
    check(&memory(0, Some(-1)), &two_cpus()).unwrap();
    check(&memory(64 << 20, Some(-1)), &two_cpus()).unwrap();
    assert!(refused(memory(64 << 20, Some(32 << 20))).starts_with("Minimum memoryswap limit"));
    assert!(refused(memory(0, Some(32 << 20))).starts_with("You should always set the Memory"));
}

#[test]
fn cpus_are_between_a_hundredth_and_the_hosts_count() {
    let cpus = |nano: i64| {
        with_host(HostConfig {
            nano_cpus: Some(nano),
            ..Default::default()
        })
    };
    let range = "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available";
    for bad in [2_000_000_001, 1_000_000, 9_999_999, -1] {
        assert_eq!(refused(cpus(bad)), range, "{bad}");
    }
    for ok in [0, 10_000_000, 500_000_000, 2_000_000_000] {
        check(&cpus(ok), &two_cpus()).unwrap();
    }
}

#[test]
fn a_cpuset_names_only_the_hosts_cpus() {
    let cpuset = |set: &str| {
        with_host(HostConfig {
            cpuset_cpus: Some(set.into()),
            ..Default::default()
        })
    };
    for ok in ["0", "1", "0-1", "0,1", "1-1,0"] {
        check(&cpuset(ok), &two_cpus()).unwrap();
    }
    assert_eq!(
        refused(cpuset("0-3")),
        "Requested CPUs are not available - requested 0-3, available: 0-1"
    );
    assert_eq!(
        refused(cpuset("7")),
        "Requested CPUs are not available - requested 7, available: 0-1"
    );
    for malformed in ["a", "1-0", "0,", "-1", "0-", "+1", "99999999999"] {
        assert_eq!(
            refused(cpuset(malformed)),
            format!("Invalid value {malformed} for cpuset cpus: invalid format: {malformed}")
        );
    }
}

#[test]
fn the_hosts_cpus_are_read_from_the_machine() {
    let host = HostCpus::read();
    assert!(host.count >= 1);
    assert!(cpu_list(&host.available).is_some(), "{host:?}");
}
