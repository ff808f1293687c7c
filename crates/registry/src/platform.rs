//! Platforms (`linux/arm64/v8`) and choosing one manifest from an image index.
//!
//! Names and matching follow containerd's `platforms` package, which docker uses:
//! spellings are normalised (`aarch64` is `arm64`, `armhf` is `arm/v7`), a
//! missing variant means the baseline (`arm64` is `arm64/v8`, `arm` is `arm/v7`),
//! and a machine also runs older variants and its 32-bit sibling (an `arm/v7`
//! host runs `arm/v6`; an `arm64` host runs `arm/v7`; an `amd64` host runs `386`).
//!
//! ```
//! use basic_registry::Platform;
//!
//! let want = Platform::parse("linux/arm64").unwrap();
//! assert!(want.matches(&Platform::parse("linux/aarch64/v8").unwrap()));
//! assert!(!want.matches(&Platform::parse("linux/amd64").unwrap()));
//! ```

use std::fmt;
use std::str::FromStr;

use basic_escape::escape;
use oci_spec::image::{Descriptor, ImageIndex};

/// An error from parsing a platform or selecting a manifest for one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The platform string is not `os/architecture[/variant]`.
    #[error("invalid platform \"{}\": {}", escape(input), escape(reason))]
    Invalid {
        /// The string as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The index has no manifest a machine of the wanted platform can run.
    #[error(
        "no manifest for platform {wanted} in the index; available: {}",
        available_list(.available)
    )]
    NoMatch {
        /// The platform that was asked for.
        wanted: Platform,
        /// The platforms the index offers, as written in it, in index order.
        available: Vec<String>,
    },
}

fn available_list(available: &[String]) -> String {
    if available.is_empty() {
        "none (the index lists no platform-specific manifests)".to_owned()
    } else {
        // As written in the index, which is the registry's text.
        escape(&available.join(", ")).into_owned()
    }
}

/// An operating system, CPU architecture and optional CPU variant, spelled as
/// in OCI image indexes (Go's `GOOS`/`GOARCH` names).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture, e.g. `amd64`, `arm64`, `arm`.
    pub architecture: String,
    /// CPU variant, e.g. `v8` for `arm64` or `v7` for `arm`.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this program was compiled for, in OCI spelling.
    ///
    /// 32-bit ARM reports `v7`: Rust's `std::env::consts` cannot tell v6 from v7,
    /// and v7 is by far the common case (and docker's default for `arm`).
    pub fn host() -> Self {
        from_rust_names(
            std::env::consts::OS,
            std::env::consts::ARCH,
            cfg!(target_endian = "little"),
        )
    }

    /// Parses `os/architecture` or `os/architecture/variant`, e.g. `linux/arm64/v8`.
    ///
    /// The string is kept as written; [`normalize`](Self::normalize) canonicalises it.
    /// Unlike containerd, a bare `arm64` is refused: docker's `--platform`
    /// needs the operating system too.
    pub fn parse(s: &str) -> Result<Self, PlatformError> {
        let fail = |reason: String| PlatformError::Invalid {
            input: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(fail(
                "the platform is empty; expected os/architecture[/variant], e.g. \"linux/amd64\""
                    .into(),
            ));
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() == 1 {
            return Err(fail(format!(
                "expected os/architecture[/variant]; the operating system is required, e.g. \"linux/{s}\""
            )));
        }
        if parts.len() > 3 {
            return Err(fail(
                "too many '/'-separated parts; expected os/architecture[/variant]".into(),
            ));
        }
        let names = ["operating system", "architecture", "variant"];
        for (part, name) in parts.iter().zip(names) {
            if part.is_empty() {
                return Err(fail(format!("the {name} is empty")));
            }
            if let Some(bad) = part
                .chars()
                .find(|c| !c.is_ascii_alphanumeric() && !matches!(c, '_' | '.' | '-'))
            {
                return Err(fail(format!(
                    "character {bad:?} is not allowed in the {name}; use letters, digits, '_', '.' and '-'"
                )));
            }
        }
        Ok(Self {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        })
    }

    /// Canonical spelling, as containerd normalises it: lowercase; `macos` is
    /// `darwin`; `aarch64` is `arm64`; `x86_64`/`x86-64` are `amd64`; `i386` is
    /// `386`; `armhf` is `arm/v7`, `armel` is `arm/v6`; variants get their `v`
    /// (`7` is `v7`).
    ///
    /// A missing variant is filled in with the baseline (`arm64` becomes
    /// `arm64/v8`, `arm` becomes `arm/v7`), and the baseline `amd64/v1` loses
    /// its variant, so equal platforms normalise to equal values.
    pub fn normalize(self) -> Self {
        let mut os = self.os.to_ascii_lowercase();
        if os == "macos" {
            os = "darwin".to_owned();
        }
        let variant = self
            .variant
            .map(|v| v.to_ascii_lowercase())
            .filter(|v| !v.is_empty());
        let (architecture, variant) = match self.architecture.to_ascii_lowercase().as_str() {
            "i386" | "386" => ("386".to_owned(), None),
            "x86_64" | "x86-64" | "amd64" => {
                let variant = variant.filter(|v| v != "v1" && v != "1");
                ("amd64".to_owned(), variant.map(with_v))
            }
            "aarch64" | "arm64" => ("arm64".to_owned(), Some(normalize_arm64_variant(variant))),
            "armhf" => ("arm".to_owned(), Some("v7".to_owned())),
            "armel" => ("arm".to_owned(), Some("v6".to_owned())),
            "arm" => (
                "arm".to_owned(),
                Some(variant.map_or_else(|| "v7".to_owned(), with_v)),
            ),
            other => (other.to_owned(), variant),
        };
        Self {
            os,
            architecture,
            variant,
        }
    }

    /// Whether a machine of this platform can run an image built for `candidate`,
    /// comparing normalised forms.
    ///
    /// Beyond equality this accepts what containerd accepts: older variants of
    /// the same architecture (`arm/v7` runs `arm/v6` and `arm/v5`; `amd64/v3`
    /// runs `amd64/v2` and `amd64`; `arm64/v8.2` runs `arm64/v8`), 32-bit ARM on
    /// `arm64`, and `386` on `amd64`. A request without a variant means the
    /// baseline, so `linux/arm64` matches candidates `arm64` and `arm64/v8`.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.preference(&candidate.clone().normalize()).is_some()
    }

    /// Where a normalised `candidate` ranks among what this platform can run
    /// (0 is best), or `None` when it cannot run it at all.
    fn preference(&self, candidate: &Platform) -> Option<usize> {
        let want = self.clone().normalize();
        if want.os != candidate.os {
            return None;
        }
        compatible(&want).iter().position(|p| p == candidate)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<&oci_spec::image::Platform> for Platform {
    fn from(p: &oci_spec::image::Platform) -> Self {
        Self {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone().filter(|v| !v.is_empty()),
        }
    }
}

/// Picks the manifest in `index` that suits `want` best.
///
/// Entries without a platform, and attestation entries (platform
/// `unknown/unknown`), are skipped. Among the rest, the closest compatible
/// platform wins (see [`Platform::matches`]); ties go to an entry whose variant
/// is written exactly as requested (`arm64/v8` over `arm64` when `v8` was asked
/// for), then to the earlier entry.
pub fn select_manifest<'a>(
    index: &'a ImageIndex,
    want: &Platform,
) -> Result<&'a Descriptor, PlatformError> {
    let candidates = index.manifests().iter().filter_map(|descriptor| {
        let platform = Platform::from(descriptor.platform().as_ref()?);
        let is_attestation = platform.os == "unknown" || platform.architecture == "unknown";
        (!is_attestation).then_some((descriptor, platform))
    });

    let mut best: Option<((usize, bool), &Descriptor)> = None;
    let mut available: Vec<String> = Vec::new();
    for (descriptor, platform) in candidates {
        let written = platform.to_string();
        if !available.contains(&written) {
            available.push(written);
        }
        let exact = platform.variant == want.variant;
        let Some(rank) = want.preference(&platform.normalize()) else {
            continue;
        };
        let key = (rank, !exact);
        if best.as_ref().is_none_or(|(best_key, _)| key < *best_key) {
            best = Some((key, descriptor));
        }
    }
    best.map(|(_, descriptor)| descriptor)
        .ok_or_else(|| PlatformError::NoMatch {
            wanted: want.clone(),
            available,
        })
}

/// Everything a machine of the normalised platform `want` runs, best first
/// (containerd's `platformVector`).
fn compatible(want: &Platform) -> Vec<Platform> {
    let with = |architecture: &str, variant: Option<String>| Platform {
        os: want.os.clone(),
        architecture: architecture.to_owned(),
        variant,
    };
    let mut out = vec![want.clone()];
    match want.architecture.as_str() {
        "amd64" => {
            if let Some(level) = want.variant.as_deref().and_then(variant_number) {
                for lower in (2..level).rev() {
                    out.push(with("amd64", Some(format!("v{lower}"))));
                }
                if level > 1 {
                    out.push(with("amd64", None));
                }
            }
            out.push(with("386", None));
        }
        "arm" => {
            if let Some(version) = want.variant.as_deref().and_then(variant_number) {
                for lower in (5..version).rev() {
                    out.push(with("arm", Some(format!("v{lower}"))));
                }
            }
        }
        "arm64" => {
            out = arm64_variants(want.variant.as_deref().unwrap_or("v8"))
                .into_iter()
                .map(|variant| with("arm64", Some(variant)))
                .collect();
            if out.is_empty() {
                out.push(want.clone());
            }
            out.extend(compatible(&with("arm", Some("v7".to_owned()))));
        }
        _ => {}
    }
    out
}

/// `v8.2` runs `v8.2`, `v8.1`, `v8`; `v9.1` runs `v9.1`, `v9`, then `v8.6` down
/// to `v8` (Armv9.x is based on Armv8.(x+5)). Empty for variants not of this form.
fn arm64_variants(variant: &str) -> Vec<String> {
    let Some((major, minor)) = parse_arm64_variant(variant) else {
        return Vec::new();
    };
    let spell = |major: u32, minor: u32| {
        if minor == 0 {
            format!("v{major}")
        } else {
            format!("v{major}.{minor}")
        }
    };
    let mut out = Vec::new();
    let mut v8_minor = minor;
    if major == 9 {
        out.extend((0..=minor).rev().map(|m| spell(9, m)));
        v8_minor = minor + 5;
    }
    out.extend((0..=v8_minor).rev().map(|m| spell(8, m)));
    out
}

fn parse_arm64_variant(variant: &str) -> Option<(u32, u32)> {
    let rest = variant.strip_prefix('v')?;
    let (major, minor) = match rest.split_once('.') {
        Some((major, minor)) => (major.parse().ok()?, minor.parse().ok()?),
        None => (rest.parse().ok()?, 0),
    };
    matches!(major, 8 | 9).then_some((major, minor))
}

fn normalize_arm64_variant(variant: Option<String>) -> String {
    let Some(variant) = variant else {
        return "v8".to_owned();
    };
    let variant = with_v(variant);
    match variant.as_str() {
        "v8.0" => "v8".to_owned(),
        "v9.0" => "v9".to_owned(),
        _ => variant,
    }
}

fn with_v(variant: String) -> String {
    if variant.starts_with(|c: char| c.is_ascii_digit()) {
        format!("v{variant}")
    } else {
        variant
    }
}

/// `v7` is 7; anything else has no number.
fn variant_number(variant: &str) -> Option<u32> {
    variant.strip_prefix('v')?.parse().ok()
}

/// Maps Rust's `std::env::consts` names to Go's, which OCI indexes use.
fn from_rust_names(os: &str, arch: &str, little_endian: bool) -> Platform {
    let os = match os {
        "macos" => "darwin",
        other => other,
    };
    let (architecture, variant) = match arch {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "powerpc64" if little_endian => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "powerpc" => ("ppc", None),
        "mips" if little_endian => ("mipsle", None),
        "mips64" if little_endian => ("mips64le", None),
        "loongarch64" => ("loong64", None),
        // s390x, riscv64 and the rest are spelled the same way in both.
        other => (other, None),
    };
    Platform {
        os: os.to_owned(),
        architecture: architecture.to_owned(),
        variant: variant.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn parse_and_display() {
        for s in [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/arm/v7",
            "windows/amd64",
        ] {
            assert_eq!(p(s).to_string(), s);
            assert_eq!(s.parse::<Platform>(), Ok(p(s)));
        }
        assert_eq!(
            p("linux/arm/v6"),
            Platform {
                os: "linux".into(),
                architecture: "arm".into(),
                variant: Some("v6".into()),
            }
        );
        assert_eq!(p("linux/amd64").variant, None);
        // Kept as written; normalize() canonicalises.
        assert_eq!(p("Linux/AArch64").to_string(), "Linux/AArch64");
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let cases = [
            ("", "is empty"),
            (
                "arm64",
                "operating system is required, e.g. \"linux/arm64\"",
            ),
            ("linux/", "architecture is empty"),
            ("/amd64", "operating system is empty"),
            ("linux/arm/", "variant is empty"),
            ("linux/arm/v7/x", "too many"),
            ("linux/amd 64", "' ' is not allowed in the architecture"),
            ("lin:ux/amd64", "':' is not allowed in the operating system"),
        ];
        for (input, needle) in cases {
            let err = Platform::parse(input).unwrap_err();
            assert!(matches!(err, PlatformError::Invalid { .. }), "{input:?}");
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("invalid platform \"{input}\"")),
                "{msg}"
            );
            assert!(msg.contains(needle), "{input:?}: {msg:?} lacks {needle:?}");
        }
    }

    #[test]
    fn normalisation() {
        let cases = [
            ("linux/aarch64", "linux/arm64/v8"),
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/arm64/8", "linux/arm64/v8"),
            ("linux/arm64/v8.0", "linux/arm64/v8"),
            ("linux/arm64/8.2", "linux/arm64/v8.2"),
            ("linux/arm64/9.0", "linux/arm64/v9"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/x86-64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/i386", "linux/386"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/arm/v5", "linux/arm/v5"),
            ("LINUX/AMD64", "linux/amd64"),
            ("macos/arm64", "darwin/arm64/v8"),
            ("linux/s390x", "linux/s390x"),
            ("linux/riscv64", "linux/riscv64"),
        ];
        for (input, normal) in cases {
            assert_eq!(p(input).normalize().to_string(), normal, "{input}");
            // Idempotent.
            assert_eq!(p(normal).normalize().to_string(), normal, "{normal}");
        }
    }

    #[test]
    fn host_names() {
        let cases = [
            (("linux", "x86_64", true), "linux/amd64"),
            (("linux", "aarch64", true), "linux/arm64/v8"),
            (("linux", "arm", true), "linux/arm/v7"),
            (("linux", "x86", true), "linux/386"),
            (("linux", "powerpc64", true), "linux/ppc64le"),
            (("linux", "powerpc64", false), "linux/ppc64"),
            (("linux", "s390x", false), "linux/s390x"),
            (("linux", "riscv64", true), "linux/riscv64"),
            (("linux", "loongarch64", true), "linux/loong64"),
            (("linux", "mips64", true), "linux/mips64le"),
            (("macos", "aarch64", true), "darwin/arm64/v8"),
        ];
        for ((os, arch, le), expected) in cases {
            assert_eq!(from_rust_names(os, arch, le).to_string(), expected);
        }
        let host = Platform::host();
        assert_eq!(host.clone().normalize(), host, "host() is already normal");
        assert!(host.matches(&host));
    }

    #[test]
    fn matching() {
        let yes = [
            ("linux/arm64", "linux/arm64"),
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm64", "linux/aarch64"),
            ("linux/arm64/v8.2", "linux/arm64"),
            ("linux/arm64/v8.2", "linux/arm64/v8.1"),
            ("linux/arm64/v9", "linux/arm64/v8.5"),
            ("linux/arm64", "linux/arm/v7"),
            ("linux/arm64", "linux/arm/v5"),
            ("linux/arm/v7", "linux/arm"),
            ("linux/arm/v7", "linux/arm/v6"),
            ("linux/arm/v7", "linux/arm/v5"),
            ("linux/arm", "linux/armhf"),
            ("linux/arm/v6", "linux/armel"),
            ("linux/amd64", "linux/x86_64"),
            ("linux/amd64", "linux/386"),
            ("linux/amd64/v3", "linux/amd64/v2"),
            ("linux/amd64/v3", "linux/amd64"),
            ("linux/amd64", "linux/amd64/v1"),
            ("linux/s390x", "linux/s390x"),
            ("Linux/AMD64", "linux/amd64"),
        ];
        for (want, candidate) in yes {
            assert!(
                p(want).matches(&p(candidate)),
                "{want} should run {candidate}"
            );
        }
        let no = [
            ("linux/arm64", "linux/amd64"),
            ("linux/arm64", "linux/arm64/v9"),
            ("linux/arm64/v8", "linux/arm64/v8.1"),
            ("linux/arm/v6", "linux/arm/v7"),
            ("linux/arm/v7", "linux/arm64"),
            ("linux/amd64", "linux/amd64/v2"),
            ("linux/386", "linux/amd64"),
            ("linux/amd64", "windows/amd64"),
            ("linux/s390x", "linux/ppc64le"),
        ];
        for (want, candidate) in no {
            assert!(
                !p(want).matches(&p(candidate)),
                "{want} should not run {candidate}"
            );
        }
    }

    /// Builds an index whose entries have the given platforms (`None`: no
    /// platform field); entry `i` gets a digest ending in `i`.
    fn index(platforms: &[Option<&str>]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, platform)| {
                let mut entry = serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest(i),
                    "size": 100,
                });
                if let Some(platform) = platform {
                    let parts: Vec<&str> = platform.split('/').collect();
                    let mut value = serde_json::json!({"os": parts[0], "architecture": parts[1]});
                    if let Some(variant) = parts.get(2) {
                        value["variant"] = serde_json::json!(variant);
                    }
                    entry["platform"] = value;
                }
                entry
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }))
        .unwrap()
    }

    fn digest(i: usize) -> String {
        format!("sha256:{:064x}", i)
    }

    fn chosen(platforms: &[Option<&str>], want: &str) -> Result<usize, PlatformError> {
        let index = index(platforms);
        let descriptor = select_manifest(&index, &p(want))?;
        Ok((0..platforms.len())
            .find(|&i| descriptor.digest().to_string() == digest(i))
            .unwrap())
    }

    const TYPICAL: &[Option<&str>] = &[
        Some("linux/amd64"),
        Some("linux/arm/v6"),
        Some("linux/arm/v7"),
        Some("linux/arm64/v8"),
        Some("linux/386"),
        Some("linux/ppc64le"),
        Some("unknown/unknown"),
        Some("unknown/unknown"),
    ];

    #[test]
    fn selects_the_exact_platform() {
        assert_eq!(chosen(TYPICAL, "linux/amd64"), Ok(0));
        assert_eq!(chosen(TYPICAL, "linux/arm/v6"), Ok(1));
        assert_eq!(chosen(TYPICAL, "linux/arm/v7"), Ok(2));
        assert_eq!(chosen(TYPICAL, "linux/arm"), Ok(2));
        assert_eq!(chosen(TYPICAL, "linux/arm64"), Ok(3));
        assert_eq!(chosen(TYPICAL, "linux/aarch64"), Ok(3));
        assert_eq!(chosen(TYPICAL, "linux/386"), Ok(4));
        assert_eq!(chosen(TYPICAL, "linux/ppc64le"), Ok(5));
    }

    #[test]
    fn arm_falls_back_to_the_highest_older_variant() {
        let index = [
            Some("linux/arm/v5"),
            Some("linux/arm/v6"),
            Some("linux/amd64"),
        ];
        assert_eq!(chosen(&index, "linux/arm/v7"), Ok(1));
        assert_eq!(chosen(&index, "linux/arm/v6"), Ok(1));
        assert_eq!(chosen(&index, "linux/arm/v5"), Ok(0));
        // arm64 runs 32-bit ARM when there is no arm64 image.
        assert_eq!(chosen(&index, "linux/arm64"), Ok(1));
        // Entry order does not decide between variants.
        let reversed = [Some("linux/arm/v6"), Some("linux/arm/v5")];
        assert_eq!(chosen(&reversed, "linux/arm/v7"), Ok(0));
    }

    #[test]
    fn native_architecture_beats_fallbacks() {
        let index = [Some("linux/arm/v7"), Some("linux/arm64")];
        assert_eq!(chosen(&index, "linux/arm64/v8"), Ok(1));
        let index = [Some("linux/386"), Some("linux/amd64")];
        assert_eq!(chosen(&index, "linux/amd64"), Ok(1));
        assert_eq!(chosen(&[Some("linux/386")], "linux/amd64"), Ok(0));
        let index = [Some("linux/arm64/v8"), Some("linux/arm64/v8.2")];
        assert_eq!(chosen(&index, "linux/arm64/v8.2"), Ok(1));
        assert_eq!(chosen(&index, "linux/arm64/v8.1"), Ok(0));
    }

    #[test]
    fn exact_variant_spelling_beats_implied() {
        let index = [Some("linux/arm64"), Some("linux/arm64/v8")];
        assert_eq!(chosen(&index, "linux/arm64/v8"), Ok(1));
        assert_eq!(chosen(&index, "linux/arm64"), Ok(0));
        let index = [Some("linux/arm/v7"), Some("linux/arm")];
        assert_eq!(chosen(&index, "linux/arm"), Ok(1));
        assert_eq!(chosen(&index, "linux/arm/v7"), Ok(0));
    }

    #[test]
    fn skips_entries_without_a_platform_and_attestations() {
        let index = [None, Some("unknown/unknown"), Some("linux/amd64")];
        assert_eq!(chosen(&index, "linux/amd64"), Ok(2));
        let err = chosen(&[None, Some("unknown/unknown")], "linux/amd64").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no manifest for platform linux/amd64 in the index; available: none (the index lists no platform-specific manifests)"
        );
    }

    #[test]
    fn no_match_lists_what_the_index_offers() {
        let index = [
            Some("linux/amd64"),
            Some("linux/arm64/v8"),
            Some("linux/arm/v7"),
            Some("unknown/unknown"),
            Some("linux/amd64"),
        ];
        let err = chosen(&index, "linux/s390x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no manifest for platform linux/s390x in the index; available: linux/amd64, linux/arm64/v8, linux/arm/v7"
        );
        match err {
            PlatformError::NoMatch { wanted, available } => {
                assert_eq!(wanted, p("linux/s390x"));
                assert_eq!(available.len(), 3);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(chosen(&index, "windows/amd64").is_err());
        assert!(chosen(&[Some("linux/arm/v7")], "linux/arm/v6").is_err());
        assert!(chosen(&[Some("linux/arm64/v9")], "linux/arm64").is_err());
        assert!(chosen(&[], "linux/amd64").is_err());
    }

    #[test]
    fn converts_from_oci_platform() {
        let index = index(&[Some("linux/arm64/v8"), Some("linux/amd64")]);
        let platforms: Vec<Platform> = index
            .manifests()
            .iter()
            .filter_map(|d| d.platform().as_ref().map(Platform::from))
            .collect();
        assert_eq!(platforms, vec![p("linux/arm64/v8"), p("linux/amd64")]);
    }
}
