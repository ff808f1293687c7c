//! Descriptors an engine inherited from whoever started it.
//!
//! A shell's `exec 7</` leaks a descriptor into every program it starts. The container
//! side closes everything above stderr before a container process runs (see the
//! runtime's process setup), but an engine also starts programs of its own — a supervisor,
//! CNI plugins — that would carry the leaked descriptor on.

/// Marks every descriptor from `first` up close-on-exec, so no program this one execs
/// inherits it. Call it first thing in `main`, before any thread opens descriptors that
/// must be inherited on purpose. Kernels before 5.11 lack the flag; they keep the
/// descriptors as they are (the container side still closes them).
pub fn close_on_exec_from(first: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on this process's own
    // descriptors.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}
