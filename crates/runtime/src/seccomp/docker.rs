//! docker's seccomp profile format, as `docker run --security-opt seccomp=PROFILE.json`
//! reads it, and docker's default profile.
//!
//! A docker profile is an OCI `LinuxSeccomp` with conditions: `archMap` lists, per native
//! architecture, the sub-architectures a filter must also cover, and each syscall rule
//! may be limited by `includes`/`excludes` on capabilities, architectures and a minimum
//! kernel. [`DockerProfile::to_oci`] resolves those for one container, as moby does when
//! it builds the runtime spec: the native architecture and its sub-architectures from the
//! `archMap`; a rule kept when every capability in `includes.caps` is in the container's
//! bounding set, none of `excludes.caps` is, the native architecture (docker's names:
//! `amd64`, `arm64`, `x86`, `s390x`, ...) is in `includes.arches` and not in
//! `excludes.arches`, and the running kernel is at least `includes.minKernel` and below
//! `excludes.minKernel`.
//!
//! Parsing is stricter than docker's in one way: a key this format does not have is
//! refused by name rather than ignored, because a misspelt `excludes` would silently widen
//! a rule. containers/common's informational `errno` and `defaultErrno` are accepted.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The profile docker applies when the user names none (docker 29's semantics).
const DEFAULT_PROFILE: &str = include_str!("default.json");

/// Errors reading a docker profile or resolving it for a container.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The text is not JSON at all.
    #[error("not valid JSON")]
    Json(#[source] serde_json::Error),
    /// A field has a value this format does not allow; `path` names it
    /// (`syscalls[3].args[0].op`).
    #[error("{path}: {message}")]
    Field {
        /// Where in the document.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The running kernel's version, needed by a `minKernel` condition, cannot be read.
    #[error("{path}.minKernel needs the running kernel's version, but {release:?} is not one")]
    KernelVersion {
        /// The rule's filter.
        path: String,
        /// What `uname` said.
        release: String,
    },
}

/// A docker seccomp profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerProfile {
    /// The action for syscalls no rule matches.
    pub default_action: LinuxSeccompAction,
    /// The errno of that action, when it is `SCMP_ACT_ERRNO` (EPERM when unset).
    pub default_errno_ret: Option<u32>,
    /// Fixed architectures (exclusive with `arch_map`).
    pub architectures: Vec<Arch>,
    /// Per native architecture, the ones the filter must also cover.
    pub arch_map: Vec<ArchMap>,
    /// The rules, in order.
    pub syscalls: Vec<SyscallRule>,
    /// `seccomp(2)` filter flags.
    pub flags: Vec<LinuxSeccompFilterFlag>,
    /// A seccomp agent's socket, for `SCMP_ACT_NOTIFY` (passed on; this runtime refuses it).
    pub listener_path: Option<PathBuf>,
    /// Opaque data for that agent.
    pub listener_metadata: Option<String>,
}

/// One `archMap` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchMap {
    /// A native architecture.
    pub architecture: Arch,
    /// What its processes may also run as (x86 and x32 binaries on x86_64).
    pub sub_architectures: Vec<Arch>,
}

/// One entry of `syscalls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallRule {
    /// The syscalls (docker's `names`, or its older single `name`).
    pub names: Vec<String>,
    /// What happens when one is made and `args` match.
    pub action: LinuxSeccompAction,
    /// The errno for `SCMP_ACT_ERRNO` (or the value for `SCMP_ACT_TRACE`).
    pub errno_ret: Option<u32>,
    /// Conditions on the arguments.
    pub args: Vec<LinuxSeccompArg>,
    /// Free text.
    pub comment: String,
    /// The rule applies only when all of these hold.
    pub includes: Filter,
    /// The rule does not apply when any of these holds.
    pub excludes: Filter,
}

/// docker's `includes`/`excludes` conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Capability names as docker writes them (`CAP_SYS_ADMIN`).
    pub caps: Vec<String>,
    /// docker's architecture names (`amd64`, `arm64`, `x86`, `s390x`, ...).
    pub arches: Vec<String>,
    /// A kernel version, `major.minor`.
    pub min_kernel: Option<KernelVersion>,
}

/// A kernel's `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    /// The first number (`6` in 6.8).
    pub major: u32,
    /// The second number (`8` in 6.8).
    pub minor: u32,
}

impl KernelVersion {
    /// The leading `major.minor` of a release string such as `6.18.44-generic`.
    pub fn from_release(release: &str) -> Option<Self> {
        let mut parts = release.split('.');
        let number = |p: Option<&str>| -> Option<u32> {
            let p = p?;
            let end = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            p[..end].parse().ok()
        };
        Some(KernelVersion {
            major: number(parts.next())?,
            minor: number(parts.next())?,
        })
    }
}

/// What [`DockerProfile::to_oci_on`] needs to know about the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// docker's name for the native architecture (`amd64`, `arm64`, ...).
    pub arch_name: String,
    /// The native architecture, when libseccomp has one for it.
    pub arch: Option<Arch>,
    /// The running kernel's release (`uname -r`).
    pub kernel_release: String,
}

impl Host {
    /// This build's architecture and the running kernel.
    pub fn current() -> Self {
        let (arch_name, arch) = native_arch();
        Host {
            arch_name: arch_name.to_string(),
            arch,
            kernel_release: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

/// docker's (Go's, then libseccomp's) name for the architecture this was built for, as
/// moby uses the binary's own architecture.
fn native_arch() -> (&'static str, Option<Arch>) {
    let little = cfg!(target_endian = "little");
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", Some(Arch::ScmpArchX86_64)),
        "x86" => ("x86", Some(Arch::ScmpArchX86)),
        "aarch64" => ("arm64", Some(Arch::ScmpArchAarch64)),
        "arm" => ("arm", Some(Arch::ScmpArchArm)),
        "mips64" if little => ("mipsel64", Some(Arch::ScmpArchMipsel64)),
        "mips64" => ("mips64", Some(Arch::ScmpArchMips64)),
        "mips" if little => ("mipsel", Some(Arch::ScmpArchMipsel)),
        "mips" => ("mips", Some(Arch::ScmpArchMips)),
        "powerpc64" if little => ("ppc64le", Some(Arch::ScmpArchPpc64le)),
        "powerpc64" => ("ppc64", Some(Arch::ScmpArchPpc64)),
        "powerpc" => ("ppc", Some(Arch::ScmpArchPpc)),
        "s390x" => ("s390x", Some(Arch::ScmpArchS390x)),
        "riscv64" => ("riscv64", Some(Arch::ScmpArchRiscv64)),
        "loongarch64" => ("loong64", Some(Arch::ScmpArchLoongarch64)),
        other => (other, None),
    }
}

impl DockerProfile {
    /// docker's default profile: everything is refused with EPERM except an allow-list of
    /// ordinary syscalls; `personality` only with the values docker allows; `socket` for
    /// every family but AF_ALG and AF_VSOCK; `clone` only without namespace flags and
    /// `clone3` failing with ENOSYS (so libc falls back to `clone`) unless CAP_SYS_ADMIN;
    /// mount, namespace, BPF, perf, module, clock, reboot, ptrace-like and other
    /// privileged syscalls only with the capability that makes them useful; `keyctl`,
    /// `add_key`, `request_key`, `io_uring_*` and `userfaultfd` never.
    pub fn docker_default() -> Self {
        static PROFILE: OnceLock<DockerProfile> = OnceLock::new();
        PROFILE
            .get_or_init(|| {
                // The embedded profile is checked by this crate's tests.
                DockerProfile::from_json(DEFAULT_PROFILE)
                    .unwrap_or_else(|e| panic!("the embedded default seccomp profile: {e}"))
            })
            .clone()
    }

    /// Parses a profile in docker's JSON format.
    pub fn from_json(text: &str) -> Result<Self, ProfileError> {
        let doc: Value = serde_json::from_str(text).map_err(ProfileError::Json)?;
        parse_profile(&Obj::new(&doc, String::new())?)
    }

    /// The OCI profile for a container whose bounding set is `caps`, on this machine.
    pub fn to_oci<'a>(
        &self,
        caps: impl IntoIterator<Item = &'a Capability>,
    ) -> Result<LinuxSeccomp, ProfileError> {
        self.to_oci_on(caps, &Host::current())
    }

    /// [`to_oci`](Self::to_oci) for a given architecture and kernel.
    pub fn to_oci_on<'a>(
        &self,
        caps: impl IntoIterator<Item = &'a Capability>,
        host: &Host,
    ) -> Result<LinuxSeccomp, ProfileError> {
        let caps: HashSet<String> = caps.into_iter().map(capability_name).collect();
        let mut syscalls = Vec::new();
        for (i, rule) in self.syscalls.iter().enumerate() {
            if rule.applies(&caps, host, &format!("syscalls[{i}]"))? {
                syscalls.push(rule.to_oci());
            }
        }
        let mut out = LinuxSeccomp::default();
        out.set_default_action(self.default_action);
        out.set_default_errno_ret(self.default_errno_ret);
        let arches = self.architectures_on(host);
        out.set_architectures((!arches.is_empty()).then_some(arches));
        out.set_flags((!self.flags.is_empty()).then(|| self.flags.clone()));
        out.set_listener_path(self.listener_path.clone());
        out.set_listener_metadata(self.listener_metadata.clone());
        out.set_syscalls(Some(syscalls));
        Ok(out)
    }

    /// `architectures` as given, or the native one and its sub-architectures from
    /// `archMap` (nothing when the native one is not listed: libseccomp's native).
    fn architectures_on(&self, host: &Host) -> Vec<Arch> {
        let mut arches = self.architectures.clone();
        if let Some(entry) = self
            .arch_map
            .iter()
            .find(|m| Some(m.architecture) == host.arch)
        {
            arches.push(entry.architecture);
            arches.extend(entry.sub_architectures.iter().copied());
        }
        arches
    }
}

impl SyscallRule {
    /// moby's reading: excludes first, then includes, each condition on its own.
    fn applies(
        &self,
        caps: &HashSet<String>,
        host: &Host,
        path: &str,
    ) -> Result<bool, ProfileError> {
        let ex = &self.excludes;
        if ex.arches.contains(&host.arch_name) || ex.caps.iter().any(|c| caps.contains(c)) {
            return Ok(false);
        }
        if let Some(min) = ex.min_kernel
            && kernel_at_least(host, min, &format!("{path}.excludes"))?
        {
            return Ok(false);
        }
        let inc = &self.includes;
        if !inc.arches.is_empty() && !inc.arches.contains(&host.arch_name) {
            return Ok(false);
        }
        if !inc.caps.iter().all(|c| caps.contains(c)) {
            return Ok(false);
        }
        match inc.min_kernel {
            Some(min) => kernel_at_least(host, min, &format!("{path}.includes")),
            None => Ok(true),
        }
    }

    fn to_oci(&self) -> LinuxSyscall {
        let mut s = LinuxSyscall::default();
        s.set_names(self.names.clone());
        s.set_action(self.action);
        s.set_errno_ret(self.errno_ret);
        s.set_args((!self.args.is_empty()).then(|| self.args.clone()));
        s
    }
}

fn kernel_at_least(host: &Host, min: KernelVersion, path: &str) -> Result<bool, ProfileError> {
    let running = KernelVersion::from_release(&host.kernel_release).ok_or_else(|| {
        ProfileError::KernelVersion {
            path: path.to_string(),
            release: host.kernel_release.clone(),
        }
    })?;
    Ok(running >= min)
}

/// `CAP_SYS_ADMIN`, as docker profiles name capabilities.
fn capability_name(cap: &Capability) -> String {
    serde_json::to_value(cap)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A JSON object being read, with its place in the document for error messages.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value, path: String) -> Result<Self, ProfileError> {
        match value.as_object() {
            Some(map) => Ok(Obj { map, path }),
            None => Err(field_error(&path_or_top(&path), "expected an object")),
        }
    }

    fn at(&self, key: &str) -> String {
        match self.path.is_empty() {
            true => key.to_string(),
            false => format!("{}.{key}", self.path),
        }
    }

    /// Refuses keys outside `known`, naming the first one.
    fn only(&self, known: &[&str]) -> Result<(), ProfileError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(field_error(
                &self.at(k),
                &format!("unknown field; expected one of {}", known.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// The value at `key`; absent and `null` are both `None`, as for docker.
    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ProfileError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| field_error(&self.at(key), &e.to_string())),
        }
    }

    fn list<T: DeserializeOwned>(&self, key: &str) -> Result<Vec<T>, ProfileError> {
        Ok(self.get(key)?.unwrap_or_default())
    }

    /// Each element of the array at `key` as an object.
    fn objects(&self, key: &str) -> Result<Vec<Obj<'a>>, ProfileError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| Obj::new(v, format!("{}[{i}]", self.at(key))))
                .collect(),
            Some(_) => Err(field_error(&self.at(key), "expected an array")),
        }
    }

    fn object(&self, key: &str) -> Result<Option<Obj<'a>>, ProfileError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Obj::new(v, self.at(key)).map(Some),
        }
    }
}

fn path_or_top(path: &str) -> String {
    match path.is_empty() {
        true => "the document".to_string(),
        false => path.to_string(),
    }
}

fn field_error(path: &str, message: &str) -> ProfileError {
    ProfileError::Field {
        path: path.to_string(),
        message: message.to_string(),
    }
}

fn parse_profile(top: &Obj<'_>) -> Result<DockerProfile, ProfileError> {
    top.only(&[
        "defaultAction",
        "defaultErrnoRet",
        "defaultErrno",
        "architectures",
        "archMap",
        "syscalls",
        "flags",
        "listenerPath",
        "listenerMetadata",
    ])?;
    let default_action = top.get("defaultAction")?.ok_or_else(|| {
        field_error(
            "defaultAction",
            "missing; a profile must say what happens to syscalls no rule names \
             (use seccomp=unconfined to run without a profile)",
        )
    })?;
    let architectures: Vec<Arch> = top.list("architectures")?;
    let arch_map = top
        .objects("archMap")?
        .iter()
        .map(parse_arch_map)
        .collect::<Result<Vec<_>, _>>()?;
    if !architectures.is_empty() && !arch_map.is_empty() {
        return Err(field_error(
            "architectures",
            "given together with archMap; use one or the other",
        ));
    }
    let syscalls = top
        .objects("syscalls")?
        .iter()
        .map(parse_rule)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DockerProfile {
        default_action,
        default_errno_ret: top.get("defaultErrnoRet")?,
        architectures,
        arch_map,
        syscalls,
        flags: top.list("flags")?,
        listener_path: top.get("listenerPath")?,
        listener_metadata: top.get("listenerMetadata")?,
    })
}

fn parse_arch_map(o: &Obj<'_>) -> Result<ArchMap, ProfileError> {
    o.only(&["architecture", "subArchitectures"])?;
    Ok(ArchMap {
        architecture: o
            .get("architecture")?
            .ok_or_else(|| field_error(&o.at("architecture"), "missing"))?,
        sub_architectures: o.list("subArchitectures")?,
    })
}

fn parse_rule(o: &Obj<'_>) -> Result<SyscallRule, ProfileError> {
    o.only(&[
        "name", "names", "action", "errnoRet", "errno", "args", "comment", "includes", "excludes",
    ])?;
    let name: Option<String> = o.get("name")?;
    let names: Vec<String> = o.list("names")?;
    let names = match (name, names.is_empty()) {
        (Some(_), false) => {
            return Err(field_error(
                &o.at("name"),
                "given together with names; use one or the other",
            ));
        }
        (Some(n), true) => vec![n],
        (None, _) => names,
    };
    let args = o
        .objects("args")?
        .iter()
        .map(parse_arg)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SyscallRule {
        names,
        action: o
            .get("action")?
            .ok_or_else(|| field_error(&o.at("action"), "missing"))?,
        errno_ret: o.get("errnoRet")?,
        args,
        comment: o.get("comment")?.unwrap_or_default(),
        includes: parse_filter(o.object("includes")?)?,
        excludes: parse_filter(o.object("excludes")?)?,
    })
}

fn parse_arg(o: &Obj<'_>) -> Result<LinuxSeccompArg, ProfileError> {
    o.only(&["index", "value", "valueTwo", "op"])?;
    let index: usize = o.get("index")?.unwrap_or(0);
    if index > 5 {
        return Err(field_error(
            &o.at("index"),
            &format!("{index} is not an argument (syscalls have 6, 0-5)"),
        ));
    }
    let op: LinuxSeccompOperator = o
        .get("op")?
        .ok_or_else(|| field_error(&o.at("op"), "missing"))?;
    let mut arg = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(o.get::<u64>("value")?.unwrap_or(0))
        .op(op);
    if let Some(two) = o.get::<u64>("valueTwo")? {
        arg = arg.value_two(two);
    }
    arg.build()
        .map_err(|e| field_error(&o.path, &e.to_string()))
}

fn parse_filter(o: Option<Obj<'_>>) -> Result<Filter, ProfileError> {
    let Some(o) = o else {
        return Ok(Filter::default());
    };
    o.only(&["caps", "arches", "minKernel"])?;
    let min_kernel = match o.get::<String>("minKernel")? {
        None => None,
        Some(v) if v.is_empty() => None,
        Some(v) => Some(parse_kernel(&v).ok_or_else(|| {
            field_error(
                &o.at("minKernel"),
                &format!(
                    "{v:?} is not a kernel version; expected \"<major>.<minor>\" such as \"4.8\""
                ),
            )
        })?),
    };
    Ok(Filter {
        caps: o.list("caps")?,
        arches: o.list("arches")?,
        min_kernel,
    })
}

/// Exactly `major.minor`, not `0.0`, as docker accepts it.
fn parse_kernel(text: &str) -> Option<KernelVersion> {
    let (major, minor) = text.split_once('.')?;
    let version = KernelVersion {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    };
    (version != KernelVersion { major: 0, minor: 0 }).then_some(version)
}

#[cfg(test)]
mod tests;
