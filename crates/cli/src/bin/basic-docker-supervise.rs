//! `basic-docker-supervise`: what keeps a running container company between a start and
//! its exit (its output into the log, the attach clients, the terminal, the exit), in a
//! small program rather than all of `basic-docker`. A container's supervisor process
//! re-executes itself as this program once the container's processes are forked, and this
//! program executes the supervisor's program again when the container's init exits (see
//! `basic_runtime::supervisor`). It is no command for a user.

fn main() -> std::process::ExitCode {
    basic_runtime::supervisor::lean_main()
}
