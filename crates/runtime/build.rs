//! Fails the build with one line when libseccomp cannot be linked, instead of a linker
//! error about `-lseccomp` at the very end of a long build.
//!
//! The library is looked for where the linker would find it: `LIBSECCOMP_LIB_PATH` (which
//! libseccomp-sys passes to the linker), `LIBRARY_PATH`, pkg-config's libdir, then the
//! usual system directories including the multiarch one. `LIBSECCOMP_LINK_TYPE=static`
//! (also libseccomp-sys's) asks for `libseccomp.a`; otherwise `libseccomp.so`. Cross builds
//! are not checked: the host's directories say nothing about the target's sysroot.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const MESSAGE: &str = "basic-runtime needs libseccomp to link: install libseccomp-dev \
                       (Debian/Ubuntu) or libseccomp-devel (Fedora), or set \
                       LIBSECCOMP_LIB_PATH to the directory holding it";

fn main() {
    for var in [
        "LIBSECCOMP_LIB_PATH",
        "LIBSECCOMP_LINK_TYPE",
        "LIBRARY_PATH",
        "PKG_CONFIG_PATH",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rerun-if-changed=build.rs");
    if env::var("HOST").ok() != env::var("TARGET").ok()
        || env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
    {
        return;
    }
    let file = match env::var("LIBSECCOMP_LINK_TYPE").as_deref() {
        Ok("static") => "libseccomp.a",
        _ => "libseccomp.so",
    };
    match search_dirs()
        .into_iter()
        .map(|d| d.join(file))
        .find(|p| p.is_file())
    {
        // Removing the library later makes the check run again.
        Some(found) => println!("cargo::rerun-if-changed={}", found.display()),
        None => println!("cargo::error={MESSAGE}"),
    }
}

/// The directories the linker searches, in its order.
fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(path) = env::var_os("LIBSECCOMP_LIB_PATH") {
        dirs.push(path.into());
    }
    if let Some(paths) = env::var_os("LIBRARY_PATH") {
        dirs.extend(env::split_paths(&paths));
    }
    dirs.extend(pkg_config_libdir());
    let multiarch = multiarch_triple();
    for prefix in ["/usr/local/lib", "/usr/lib", "/lib"] {
        if let Some(triple) = &multiarch {
            dirs.push(Path::new(prefix).join(triple));
        }
        dirs.push(PathBuf::from(prefix));
        dirs.push(PathBuf::from(format!("{prefix}64")));
    }
    dirs
}

/// `pkg-config --variable=libdir libseccomp`, when pkg-config is installed and knows it.
fn pkg_config_libdir() -> Option<PathBuf> {
    let out = Command::new("pkg-config")
        .args(["--variable=libdir", "libseccomp"])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = dir.trim();
    (out.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Debian's multiarch directory name for the target (`x86_64-linux-gnu`, ...).
fn multiarch_triple() -> Option<String> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let env_abi = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let abi = match (arch.as_str(), env_abi.as_str()) {
        ("arm", _) => "gnueabihf",
        (_, "musl") => "musl",
        _ => "gnu",
    };
    let little = env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() == Ok("little");
    let arch = match arch.as_str() {
        "x86" => "i386",
        "powerpc64" if little => "powerpc64le",
        other => other,
    };
    Some(format!("{arch}-linux-{abi}"))
}
