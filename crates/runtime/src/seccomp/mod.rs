//! Seccomp: docker's profile format and default profile ([`docker`]), and the spec's
//! `linux.seccomp` enforced.
//!
//! libseccomp compiles the filters, as it does for docker (through runc) and podman, so the
//! architecture handling (x86 and x32 processes on x86_64 hosts, the `socketcall`
//! multiplexer) and the argument comparisons are exactly theirs.
//!
//! [`Program::compile`] turns the profile into a BPF program with libseccomp in the runner,
//! before the fork; the container side only hands the finished program to the kernel
//! ([`Program::load`], one `seccomp(2)` call, no allocation), as late as the profile allows:
//! right before exec when `noNewPrivileges` is set, otherwise before capabilities are dropped
//! (without `no_new_privs` installing a filter needs `CAP_SYS_ADMIN`). Both are runc's points.
//!
//! Applied: `defaultAction`, `defaultErrnoRet`, `architectures`, `flags` (`LOG`, `SPEC_ALLOW`,
//! `TSYNC`, `WAIT_KILLABLE_RECV`), every syscall rule with its `action`, `errnoRet` and
//! argument comparisons (conditions on one argument index are split into separate rules, as
//! runc does, since libseccomp allows one comparison per argument in a rule). Syscall names
//! this libseccomp does not know are skipped (profiles list syscalls of newer kernels), and so
//! are rules whose action is the default one. Refused: `SCMP_ACT_NOTIFY` and `listenerPath`
//! (a seccomp agent is not implemented).

use std::io::{Read, Seek};
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

pub mod docker;

pub use docker::{DockerProfile, Host, KernelVersion, ProfileError};

/// Errors turning a profile into a filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile asks for something this runtime does not do.
    #[error("seccomp profile: {0} is not supported")]
    Unsupported(String),
    /// The profile is malformed.
    #[error("seccomp profile: {0}")]
    Invalid(String),
    /// libseccomp refused an operation.
    #[error("seccomp profile: {what}")]
    Library {
        /// The operation.
        what: String,
        /// The cause.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// Writing or reading the compiled program failed.
    #[error("seccomp profile: exporting the compiled filter")]
    Export(#[source] std::io::Error),
}

fn lib(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let what = what.into();
    move |source| SeccompError::Library { what, source }
}

/// A compiled filter: `struct sock_filter` instructions plus `seccomp(2)` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    instructions: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

// The seccomp(2) flag bits (linux/seccomp.h); libc does not carry them all.
const FLAG_TSYNC: libc::c_ulong = 1;
const FLAG_LOG: libc::c_ulong = 2;
const FLAG_SPEC_ALLOW: libc::c_ulong = 4;
const FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 32;

impl Program {
    /// Compiles `profile` for this machine's architectures.
    pub fn compile(profile: &LinuxSeccomp) -> Result<Self, SeccompError> {
        if profile.listener_path().is_some() {
            return Err(SeccompError::Unsupported(
                "listenerPath (a seccomp notify agent)".into(),
            ));
        }
        let default = action(profile.default_action(), profile.default_errno_ret())?;
        let mut ctx = ScmpFilterContext::new(default).map_err(lib("creating the filter"))?;
        for arch in profile.architectures().as_deref().unwrap_or_default() {
            let name = serde_name(arch);
            let a = ScmpArch::from_str(&name)
                .map_err(|_| SeccompError::Invalid(format!("unknown architecture {name}")))?;
            ctx.add_arch(a)
                .map_err(lib(format!("adding architecture {name}")))?;
        }
        for rule in profile.syscalls().as_deref().unwrap_or_default() {
            let act = action(rule.action(), rule.errno_ret())?;
            if act == default {
                continue;
            }
            let conditions = conditions(rule.args().as_deref().unwrap_or_default())?;
            for name in rule.names() {
                // Unknown to this libseccomp: a syscall this kernel generation cannot make.
                let Ok(nr) = ScmpSyscall::from_name(name) else {
                    continue;
                };
                for set in &conditions {
                    ctx.add_rule_conditional(act, nr, set)
                        .map_err(lib(format!("adding the rule for {name}")))?;
                }
            }
        }
        let mut flags = 0;
        for f in profile.flags().as_deref().unwrap_or_default() {
            flags |= match f {
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                    FLAG_WAIT_KILLABLE_RECV
                }
            };
        }
        Ok(Program {
            instructions: export(&ctx)?,
            flags,
        })
    }

    /// [`Program::compile`], remembered in `cache_dir` across processes: compiling docker's
    /// default profile takes libseccomp about 16 ms, on every container start and exec. The
    /// file is named by the SHA-256 of the profile and the libseccomp version, so a profile
    /// (a bundle's, say) can only ever find its own program; it is written to a temporary
    /// name and renamed, mode 0600, and one that does not read back whole is compiled again.
    /// A cache that cannot be written costs only the time.
    pub fn compile_cached(
        profile: &LinuxSeccomp,
        cache_dir: &std::path::Path,
    ) -> Result<Self, SeccompError> {
        let Some(key) = cache_key(profile) else {
            return Self::compile(profile);
        };
        let path = cache_dir.join(format!("{key}.bpf"));
        if let Some(program) = std::fs::read(&path).ok().and_then(|b| Self::from_bytes(&b)) {
            return Ok(program);
        }
        let program = Self::compile(profile)?;
        let _ = program.store(cache_dir, &path);
        Ok(program)
    }

    /// [`Program::compile_cached`] when there is a cache, else [`Program::compile`].
    pub fn compile_in(
        profile: &LinuxSeccomp,
        cache_dir: Option<&std::path::Path>,
    ) -> Result<Self, SeccompError> {
        match cache_dir {
            Some(dir) => Self::compile_cached(profile, dir),
            None => Self::compile(profile),
        }
    }

    /// The flags, the number of instructions, then the instructions, in this machine's byte
    /// order. The count makes a file cut short unreadable rather than a shorter filter.
    fn to_bytes(&self) -> Vec<u8> {
        // `c_ulong` is u32 on 32-bit targets: the conversion is not useless there.
        #[allow(clippy::useless_conversion)]
        let mut out = u64::from(self.flags).to_ne_bytes().to_vec();
        out.extend_from_slice(&(self.instructions.len() as u64).to_ne_bytes());
        for i in &self.instructions {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.extend_from_slice(&[i.jt, i.jf]);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (flags, rest) = bytes.split_first_chunk::<8>()?;
        let (count, rest) = rest.split_first_chunk::<8>()?;
        let count = usize::try_from(u64::from_ne_bytes(*count)).ok()?;
        if count == 0 || rest.len() != count.checked_mul(8)? {
            return None;
        }
        let instructions = rest
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Some(Program {
            instructions,
            flags: libc::c_ulong::try_from(u64::from_ne_bytes(*flags)).ok()?,
        })
    }

    fn store(&self, dir: &std::path::Path, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&self.to_bytes())?;
        drop(file);
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.instructions.len()
    }

    /// Whether the program is empty (never true for a compiled profile).
    pub fn is_empty(&self) -> bool {
        self.instructions.is_empty()
    }

    /// Installs the filter on the calling thread. Needs `no_new_privs` or `CAP_SYS_ADMIN`.
    /// Async-signal-safe: one syscall, so it may run in a forked child.
    pub fn load(&self) -> Result<(), nix::Error> {
        let prog = libc::sock_fprog {
            len: self.instructions.len() as libc::c_ushort,
            filter: self.instructions.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `instructions`, which outlive the call; the kernel copies
        // the program and keeps no pointer to it.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if ret != 0 {
            return Err(nix::Error::last());
        }
        Ok(())
    }
}

/// SHA-256 of the profile as JSON and of the libseccomp version that compiles it.
fn cache_key(profile: &LinuxSeccomp) -> Option<String> {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(profile).ok()?;
    let version = libseccomp::ScmpVersion::current().ok()?;
    let mut hash = Sha256::new();
    let (major, minor, micro) = (version.major, version.minor, version.micro);
    hash.update(format!("libseccomp {major}.{minor}.{micro}\n").as_bytes());
    hash.update(&json);
    Some(hex::encode(hash.finalize()))
}

/// libseccomp 2.5 has no in-memory export: go through a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let fd = nix::sys::memfd::memfd_create("seccomp-bpf", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| SeccompError::Export(e.into()))?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file).map_err(lib("exporting BPF"))?;
    file.rewind().map_err(SeccompError::Export)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(SeccompError::Export)?;
    let size = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() % size != 0 || bytes.is_empty() {
        return Err(SeccompError::Invalid(format!(
            "libseccomp exported {} bytes, not a whole number of instructions",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(size)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// The spec's own spelling of an enum value ("SCMP_ARCH_X86_64").
fn serde_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action(act: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, SeccompError> {
    Ok(match act {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno.unwrap_or(libc::EPERM as u32) as i32)
        }
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.unwrap_or(libc::EPERM as u32) as u16)
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Unsupported(
                "SCMP_ACT_NOTIFY (a seccomp notify agent)".into(),
            ));
        }
    })
}

/// The rule's conditions as sets to add one rule each: all of them together when each
/// argument index appears once, otherwise one rule per condition (runc's reading).
fn conditions(args: &[LinuxSeccompArg]) -> Result<Vec<Vec<ScmpArgCompare>>, SeccompError> {
    let cmps = args.iter().map(compare).collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::HashSet::new();
    let unique = args.iter().all(|a| seen.insert(a.index()));
    Ok(if unique || cmps.is_empty() {
        vec![cmps]
    } else {
        cmps.into_iter().map(|c| vec![c]).collect()
    })
}

fn compare(arg: &LinuxSeccompArg) -> Result<ScmpArgCompare, SeccompError> {
    if arg.index() > 5 {
        return Err(SeccompError::Invalid(format!(
            "argument index {} (syscalls have 6 arguments, 0-5)",
            arg.index()
        )));
    }
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // The spec puts the mask in `value` and the expected value in `valueTwo`.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return Ok(ScmpArgCompare::new(
                arg.index() as u32,
                ScmpCompareOp::MaskedEqual(arg.value()),
                arg.value_two().unwrap_or(0),
            ));
        }
    };
    Ok(ScmpArgCompare::new(arg.index() as u32, op, arg.value()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_profile_compiles_to_whole_instructions() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "syscalls":[{"names":["read","write","no_such_syscall_xyz"],"action":"SCMP_ACT_ALLOW"},
                            {"names":["personality"],"action":"SCMP_ACT_ALLOW",
                             "args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"},
                                     {"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let prog = Program::compile(&p).unwrap();
        assert!(prog.len() > 4, "{prog:?}");
    }

    #[test]
    fn a_cached_program_is_the_compiled_one_and_a_torn_file_is_compiled_again() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO",
                "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("seccomp");
        let fresh = Program::compile(&p).unwrap();
        assert_eq!(Program::compile_cached(&p, &cache).unwrap(), fresh);
        let files: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "one file, no temporary left");
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&files[0].metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Program::compile_cached(&p, &cache).unwrap(), fresh);
        // A file cut short is not trusted, even at an instruction boundary.
        let whole = std::fs::read(files[0].path()).unwrap();
        for cut in [12, whole.len() - 8] {
            std::fs::write(files[0].path(), &whole[..cut]).unwrap();
            assert_eq!(Program::compile_cached(&p, &cache).unwrap(), fresh);
            assert_eq!(
                std::fs::read(files[0].path()).unwrap(),
                whole,
                "rewritten whole"
            );
        }
        // Another profile never reads this one's program.
        let other = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
        assert_ne!(Program::compile_cached(&other, &cache).unwrap(), fresh);
    }

    #[test]
    fn notify_is_refused_by_name() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        let e = Program::compile(&p).unwrap_err();
        assert!(e.to_string().contains("SCMP_ACT_NOTIFY"), "{e}");
        let p = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock"}"#);
        assert!(
            Program::compile(&p)
                .unwrap_err()
                .to_string()
                .contains("listenerPath")
        );
    }

    #[test]
    fn an_argument_index_past_five_is_refused() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO",
                             "args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let e = Program::compile(&p).unwrap_err();
        assert!(e.to_string().contains("argument index 6"), "{e}");
    }
}
