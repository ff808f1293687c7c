//! A session keyring of the container's own, so containers do not share kernel keys.

use super::{ChildError, sys};

/// keyctl(2) operation number (linux/keyctl.h).
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// Joins a new session keyring called `name`. A kernel (or seccomp filter) without keyctl
/// leaves the container in the runner's keyring, as runc allows.
pub(crate) fn join_session(name: &str) -> Result<(), ChildError> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| ChildError::Spec(format!("NUL byte in keyring name {name:?}")))?;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING) reads the NUL-terminated name, which outlives
    // the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            cname.as_ptr(),
        )
    };
    if ret < 0 {
        let e = nix::Error::last();
        if e != nix::Error::ENOSYS {
            return Err(sys(format!("joining a new session keyring {name:?}"))(e));
        }
    }
    Ok(())
}
