//! Privileges: rlimits, user and groups, no_new_privs, capability sets.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability as Cap};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, PosixRlimit, Process};

use super::{ChildError, sys};

/// The libc resource for an OCI rlimit type ("RLIMIT_NOFILE" ...).
pub(crate) fn rlimit_resource(
    limit: &PosixRlimit,
) -> Result<(String, libc::__rlimit_resource_t), ChildError> {
    let name = serde_json::to_value(limit.typ())
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let res = match name.as_str() {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        other => return Err(ChildError::Spec(format!("unknown rlimit {other:?}"))),
    };
    Ok((name, res))
}

pub(crate) fn apply_rlimits(process: &Process) -> Result<(), ChildError> {
    for limit in process.rlimits().as_deref().unwrap_or_default() {
        let (name, res) = rlimit_resource(limit)?;
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one struct we own.
        unsafe { libc::getrlimit(res, &mut cur) };
        let raising = limit.hard() > cur.rlim_max;
        let new = libc::rlimit {
            rlim_cur: limit.soft(),
            rlim_max: limit.hard(),
        };
        // SAFETY: setrlimit reads one struct we own.
        if unsafe { libc::setrlimit(res, &new) } != 0 {
            let source = nix::Error::last();
            let what = if raising && source == nix::Error::EPERM {
                // The usual cause on hosts whose bounding set lacks CAP_SYS_RESOURCE.
                format!(
                    "setting {name} to {}:{}: the hard limit {} is above the current {} and raising it needs CAP_SYS_RESOURCE, which this process does not have",
                    limit.soft(),
                    limit.hard(),
                    limit.hard(),
                    cur.rlim_max
                )
            } else {
                format!("setting {name} to {}:{}", limit.soft(), limit.hard())
            };
            return Err(ChildError::Sys { what, source });
        }
    }
    Ok(())
}

/// OCI capability to the `caps` crate's type (both spell them "CAP_CHOWN").
pub(crate) fn to_caps(set: &Capabilities) -> Result<HashSet<Cap>, ChildError> {
    set.iter()
        .map(|c| {
            let name = serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            Cap::from_str(&name).map_err(|_| ChildError::Spec(format!("unknown capability {name}")))
        })
        .collect()
}

fn caps_err(what: &str) -> impl FnOnce(caps::errors::CapsError) -> ChildError + '_ {
    move |source| ChildError::Caps {
        what: what.to_string(),
        source,
    }
}

/// Order matters: the bounding set shrinks while we still have CAP_SETPCAP; KEEPCAPS keeps
/// the permitted set across setuid; then the sets are written so that each write is valid
/// against the previous state (inheritable needs permitted, effective ⊆ permitted, ambient ⊆
/// permitted ∩ inheritable).
pub(crate) fn switch_user_and_caps(process: &Process) -> Result<(), ChildError> {
    let caps = process.capabilities().as_ref();
    let set = |f: fn(&oci_spec::runtime::LinuxCapabilities) -> &Option<Capabilities>| {
        caps.and_then(|c| f(c).as_ref())
            .map(to_caps)
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let bounding = set(|c| c.bounding())?;
    let effective = set(|c| c.effective())?;
    let permitted = set(|c| c.permitted())?;
    let inheritable = set(|c| c.inheritable())?;
    let ambient = set(|c| c.ambient())?;

    for cap in caps::all() {
        if !bounding.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(caps_err("dropping from the bounding set"))?;
        }
    }
    nix::sys::prctl::set_keepcaps(true).map_err(sys("prctl(PR_SET_KEEPCAPS)"))?;
    let user = process.user();
    let gid = Gid::from_raw(user.gid());
    let uid = Uid::from_raw(user.uid());
    let groups: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups is denied in a user namespace whose setgroups file says "deny"; skip the
    // call only when there is nothing to set.
    if let Err(e) = nix::unistd::setgroups(&groups)
        && !(groups.is_empty() && e == nix::Error::EPERM)
    {
        return Err(ChildError::Sys {
            what: format!("setgroups({groups:?})"),
            source: e,
        });
    }
    nix::unistd::setresgid(gid, gid, gid).map_err(sys(format!("setgid({gid})")))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(sys(format!("setuid({uid})")))?;
    nix::sys::prctl::set_keepcaps(false).map_err(sys("prctl(PR_SET_KEEPCAPS, 0)"))?;

    capset(&effective, &permitted, &inheritable)?;
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clearing the ambient set"))?;
    // Like runc: an ambient capability outside permitted ∩ inheritable cannot be raised;
    // runc's own default spec asks for such ones, so they are skipped, not fatal.
    for cap in ambient {
        if permitted.contains(&cap) && inheritable.contains(&cap) {
            caps::raise(None, CapSet::Ambient, cap)
                .map_err(caps_err("raising an ambient capability"))?;
        }
    }
    if process.no_new_privileges().unwrap_or(false) {
        nix::sys::prctl::set_no_new_privs().map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    }
    Ok(())
}

fn mask(set: &HashSet<Cap>) -> u64 {
    set.iter().fold(0u64, |m, c| m | c.bitmask())
}

/// One capset(2) for the three sets at once: the kernel validates the new sets together,
/// so no order of separate writes can trip over an intermediate state.
fn capset(
    effective: &HashSet<Cap>,
    permitted: &HashSet<Cap>,
    inheritable: &HashSet<Cap>,
) -> Result<(), ChildError> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const V3: u32 = 0x2008_0522;
    let (e, p, i) = (mask(effective), mask(permitted), mask(inheritable));
    let mut hdr = Header {
        version: V3,
        pid: 0,
    };
    let data = [
        Data {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        Data {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    // SAFETY: capset(2) with a version 3 header reads the header and two data structs,
    // laid out as the kernel's (repr(C)).
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) } != 0 {
        return Err(sys(format!(
            "capset(effective={e:#x}, permitted={p:#x}, inheritable={i:#x})"
        ))(nix::Error::last()));
    }
    Ok(())
}
