//! Rootless mode: an ordinary user's engine runs in a user namespace of its own, where the
//! user is root and the user's subordinate ids (`/etc/subuid`, `/etc/subgid`) are the other
//! ids, together with a mount namespace that holds the containers' root filesystems.

/// Whether this process runs in a user namespace other than the host's: rootless mode, or
/// a container engine nested in one. Creating cgroups, devices, bridges and veths on the
/// host is then out of reach, whatever `geteuid` says.
pub fn active() -> bool {
    !in_initial_user_namespace()
}

/// The host's user namespace maps every id to itself (`0 0 4294967295`).
fn in_initial_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let fields: Vec<&str> = map.split_whitespace().collect();
            fields == ["0", "0", "4294967295"]
        }
        // No /proc: nothing to go by; the host's is the likely answer.
        Err(_) => true,
    }
}
