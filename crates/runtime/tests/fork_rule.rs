//! The fork rule in a program that obeys it (needs root). This test has no libtest
//! harness, which would run it in a thread of its own: `main` is the only thread, the
//! program runs sealed as an engine does, and nothing here opts out of a check. So every
//! container and exec below is refused if the library (the supervisor's relays, an exec's
//! relay, a terminal's relay) had left a thread behind before a fork.

mod common;

use std::os::fd::AsFd as _;
use std::path::Path;

use basic_runtime::attach::{Endpoint, Event, Request, Serve};
use basic_runtime::exec::{Exec, ExecError, process_from};
use basic_runtime::logfile::{self, Rotation, Stream};
use basic_runtime::supervisor::{Input, Output, RestartPolicy, Supervisor};
use basic_runtime::terminal::ConsoleSocket;
use basic_runtime::{Container, ContainerError, Spec};

fn main() {
    if !common::privileged() {
        return;
    }
    basic_runtime::sealed_exe::ensure().expect("running sealed");
    let state = tempfile::tempdir().unwrap();
    a_thread_alive_at_the_fork_is_refused(state.path());
    the_supervisor_forks_before_its_relays_start(state.path());
    a_terminal_is_relayed_by_the_supervisor_after_the_fork(state.path());
    the_attach_thread_is_gone_before_a_restart(state.path());
    an_exec_forks_before_its_relay_starts(state.path());
    println!("fork_rule: 5 checks passed");
}

fn container(name: &str, spec: Spec, state: &Path) -> Container {
    Container::builder(common::id(name), spec, common::rootfs())
        .state_dir(state)
        .forward_signals(false)
        .build()
        .unwrap()
}

fn a_thread_alive_at_the_fork_is_refused(state: &Path) {
    let c = container("rule-refused", common::sh("true"), state);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || rx.recv());
    let e = c.run().unwrap_err();
    assert!(
        matches!(e, ContainerError::ForkRule { .. }),
        "{}",
        common::chain(&e)
    );
    let text = common::chain(&e);
    assert!(
        text.contains("runs 2 threads") && text.contains("only from a single-threaded process"),
        "{text}"
    );
    assert!(
        !state.join(c.id()).exists(),
        "refused before anything was set up"
    );
    // Positive control: the same container runs once the thread is gone.
    drop(tx);
    let _ = other.join();
    assert_eq!(c.run().unwrap().exit_code(), 0);
}

fn the_supervisor_forks_before_its_relays_start(state: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("json.log");
    let c = container(
        "rule-sup",
        common::sh("echo out; echo err >&2; exit 3"),
        state,
    );
    let output = Output {
        log: Some((log.clone(), Rotation::default())),
        echo: false,
        stdin: Input::Relayed,
    };
    // Two starts: the relays of the first are gone before the second fork.
    let status = Supervisor::new(&c, output, "on-failure:1".parse().unwrap())
        .run(&|| false, &mut |_| {})
        .unwrap();
    assert_eq!(status.exit_code(), 3);
    let entries = logfile::read_all(&log).unwrap();
    let lines = |stream| {
        entries
            .iter()
            .filter(|e| e.stream == stream)
            .map(|e| e.log.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(lines(Stream::Stdout), ["out\n", "out\n"]);
    assert_eq!(lines(Stream::Stderr), ["err\n", "err\n"]);
}

fn a_terminal_is_relayed_by_the_supervisor_after_the_fork(state: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("json.log");
    let mut spec = common::sh("tty");
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_terminal(Some(true));
    let (socket, container_end) = ConsoleSocket::pair().unwrap();
    let c = Container::builder(common::id("rule-tty"), spec, common::rootfs())
        .state_dir(state)
        .console_socket_fd(container_end)
        .forward_signals(false)
        .build()
        .unwrap();
    let output = Output {
        log: Some((log.clone(), Rotation::default())),
        echo: false,
        stdin: Input::Terminal,
    };
    let status = Supervisor::new(&c, output, RestartPolicy::No)
        .console(socket, false)
        .run(&|| false, &mut |_| {})
        .unwrap();
    assert_eq!(status.exit_code(), 0);
    let logged: String = logfile::read_all(&log)
        .unwrap()
        .iter()
        .map(|e| e.log.clone())
        .collect();
    assert_eq!(logged, "/dev/pts/0\r\n");
}

fn the_attach_thread_is_gone_before_a_restart(state: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let c = container("rule-attach", common::sh("echo out; exit 3"), state);
    let output = Output {
        log: None,
        echo: false,
        stdin: Input::Attach,
    };
    // A client waiting for the start: connected before the first fork. This program
    // reads it afterwards (a reading thread would break the rule it checks).
    let endpoint = Endpoint::new(dir.path().join("attach"));
    let request = Request {
        stdin: false,
        stdout: true,
        stderr: true,
    };
    let client = endpoint.connect_or_wait(request).unwrap();
    // Two starts: the thread serving the first is joined before the second fork.
    let status = Supervisor::new(&c, output, "on-failure:1".parse().unwrap())
        .attach(Serve {
            endpoint: endpoint.clone(),
            stdin_once: false,
        })
        .run(&|| false, &mut |_| {})
        .unwrap();
    assert_eq!(status.exit_code(), 3);
    let mut events = Vec::new();
    while let Some(event) = client.recv().unwrap() {
        events.push(event);
    }
    // It saw the first start from its first byte; its connection ended with that exit.
    assert_eq!(
        events,
        [
            Event::Output(basic_runtime::logfile::Stream::Stdout, b"out\n".to_vec()),
            Event::Exit(3)
        ]
    );
    assert!(
        !dir.path().join("attach/attach").exists(),
        "the socket is gone"
    );
}

fn an_exec_forks_before_its_relay_starts(state: &Path) {
    let spec = common::sh("sleep 30");
    let c = container("rule-exec", spec.clone(), state);
    let running = c.start().unwrap();
    let exec = |args: &[&str]| {
        let process = process_from(&spec, args.iter().map(|a| a.to_string()).collect()).unwrap();
        Exec::in_container(c.id(), process)
            .state_dir(state)
            .foreground()
            .forward_signals(false)
    };
    // Relayed stdio: the relay thread starts after the fork and is gone before the next.
    for code in [7, 8] {
        let status = exec(&["sh", "-c", &format!("exit {code}")])
            .build()
            .unwrap()
            .run()
            .unwrap();
        assert_eq!(status.exit_code(), code);
    }
    // A thread alive at the fork: refused.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || rx.recv());
    let null = std::fs::File::open("/dev/null").unwrap();
    let e = exec(&["true"])
        .stdin(null.as_fd().try_clone_to_owned().unwrap())
        .build()
        .unwrap()
        .run()
        .unwrap_err();
    assert!(matches!(e, ExecError::ForkRule(_)), "{}", common::chain(&e));
    drop(tx);
    let _ = other.join();
    // Dropping the running container kills it and cleans up.
    drop(running);
    assert!(!state.join(c.id()).exists());
}
