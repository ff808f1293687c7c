//! The supervisor with real containers: output into a json-file log, exit
//! statuses reported, restarts by policy, a stop request honoured.
//!
//! One test: the supervisor points this process's stdio at pipes while a
//! container runs, which tests running beside it in other threads would see.

mod common;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use basic_runtime::Container;
use basic_runtime::logfile::{self, Rotation, Stream};
use basic_runtime::supervisor::{Input, Output, RestartPolicy, Supervisor, SupervisorEvent};
use common::{privileged, rootfs, sh};

fn container(name: &str, script: &str, state: &std::path::Path) -> Container {
    Container::builder(common::id(name), sh(script), rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(state)
        .forward_signals(false)
        .build()
        .unwrap()
}

#[test]
fn supervised_containers_log_report_and_restart() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c-json.log");
    let output = Output {
        log: Some((log.clone(), Rotation::default())),
        echo: false,
        stdin: Input::Null,
    };

    // Output to both streams is logged line by line, with its stream; a
    // failing container is restarted by `on-failure:2`, then given up on.
    let c = container(
        "sup-fail",
        "echo out; echo err >&2; printf partial; exit 3",
        dir.path(),
    );
    let events = RefCell::new(Vec::new());
    let policy: RestartPolicy = "on-failure:2".parse().unwrap();
    let status = Supervisor::new(&c, output.clone(), policy)
        .run(&|| false, &mut |e| {
            events.borrow_mut().push(match e {
                SupervisorEvent::Starting => "start".to_string(),
                SupervisorEvent::Exited { status, restarting } => {
                    format!("exit {} {restarting}", status.exit_code())
                }
            })
        })
        .unwrap();
    assert_eq!(status.exit_code(), 3);
    assert_eq!(
        events.into_inner(),
        [
            "start",
            "exit 3 true",
            "start",
            "exit 3 true",
            "start",
            "exit 3 false"
        ]
    );
    let entries = logfile::read_all(&log).unwrap();
    let stdout: Vec<&str> = entries
        .iter()
        .filter(|e| e.stream == Stream::Stdout)
        .map(|e| e.log.as_str())
        .collect();
    assert_eq!(
        stdout,
        ["out\n", "partial", "out\n", "partial", "out\n", "partial"]
    );
    let stderr = entries
        .iter()
        .filter(|e| e.stream == Stream::Stderr)
        .count();
    assert_eq!(stderr, 3);
    assert!(entries.iter().all(|e| logfile::entry_time(e).is_some()));

    // `always` restarts a container that succeeds too, until a stop is asked for.
    let c = container("sup-always", "echo again", dir.path());
    let starts = RefCell::new(0);
    let begun = Instant::now();
    let stop = || *starts.borrow() >= 3 || begun.elapsed() > Duration::from_secs(20);
    let status = Supervisor::new(&c, output, RestartPolicy::Always)
        .run(&stop, &mut |e| {
            if matches!(e, SupervisorEvent::Starting) {
                *starts.borrow_mut() += 1;
            }
        })
        .unwrap();
    assert_eq!(status.exit_code(), 0);
    assert_eq!(*starts.borrow(), 3, "stopped after the third start");
}
