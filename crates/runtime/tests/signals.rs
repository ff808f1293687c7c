//! Signal forwarding from the runner to the container (its own binary: it sends signals to
//! the test process itself).

mod common;

use basic_runtime::Container;
use common::privileged;

#[test]
fn sigterm_to_the_runner_reaches_the_container() {
    if !privileged() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let id = common::id("fwd");
    let state_file = state.path().join(&id).join("state.json");
    let sender = std::thread::spawn(move || {
        while !state_file.exists() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Give the shell time to install its trap.
        std::thread::sleep(std::time::Duration::from_millis(300));
        nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    });
    // A shell as PID 1 only gets signals it has a handler for: the trap exits 42.
    let spec = common::sh("trap 'exit 42' TERM; while :; do sleep 0.05; done");
    let status = Container::builder(id, spec, common::rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(state.path())
        .build()
        .unwrap()
        .run()
        .unwrap();
    sender.join().unwrap();
    assert_eq!(status.exit_code(), 42, "{status}");
}
