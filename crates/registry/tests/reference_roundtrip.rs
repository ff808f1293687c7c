//! Property tests for `Reference`: references generated from docker's grammar
//! parse, and their normalised and familiar forms parse back to the same value.

use basic_registry::Reference;
use proptest::prelude::*;

fn domain_label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?"
}

fn port() -> impl Strategy<Value = Option<u16>> {
    proptest::option::of(any::<u16>())
}

/// Registries docker recognises as such in the first component: dotted names,
/// IP addresses, `localhost`, any name with a port, and bracketed IPv6.
fn registry() -> impl Strategy<Value = String> {
    let dotted = (prop::collection::vec(domain_label(), 2..4), port())
        .prop_map(|(labels, port)| with_port(labels.join("."), port));
    let single_with_port =
        (domain_label(), any::<u16>()).prop_map(|(label, port)| format!("{label}:{port}"));
    let localhost = port().prop_map(|port| with_port("localhost".into(), port));
    let ipv4 = (any::<[u8; 4]>(), port())
        .prop_map(|(o, port)| with_port(format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]), port));
    // Written out by hand: `Ipv6Addr`'s Display may use dotted IPv4 notation,
    // which docker's grammar does not accept inside brackets.
    let full = any::<[u16; 8]>().prop_map(|segments| segments.map(|s| format!("{s:x}")).join(":"));
    let ipv6 = (
        prop_oneof![Just("::1".to_owned()), Just("fe80::1".to_owned()), full],
        port(),
    )
        .prop_map(|(address, port)| with_port(format!("[{address}]"), port));
    let uppercase = "[A-Z][a-zA-Z0-9]{0,6}";
    prop_oneof![
        Just("docker.io".to_owned()),
        Just("index.docker.io".to_owned()),
        dotted,
        single_with_port,
        localhost,
        ipv4,
        ipv6,
        uppercase,
    ]
}

fn with_port(host: String, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

fn path_component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,5}(([._]|__|-{1,3})[a-z0-9]{1,5}){0,3}"
}

fn tag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
}

fn digest() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-f0-9]{64}".prop_map(|hex| format!("sha256:{hex}")),
        "[a-f0-9]{128}".prop_map(|hex| format!("sha512:{hex}")),
    ]
}

#[derive(Debug)]
struct Generated {
    input: String,
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn reference() -> impl Strategy<Value = Generated> {
    (
        proptest::option::of(registry()),
        prop::collection::vec(path_component(), 1..=4),
        proptest::option::of(tag()),
        proptest::option::of(digest()),
    )
        .prop_map(|(registry, mut path, tag, digest)| {
            if registry.is_none() && path.len() > 1 {
                // Without a registry, a dotted first component would be read as one.
                path[0] = path[0].replace('.', "-");
            }
            let mut input = match &registry {
                Some(registry) => format!("{registry}/{}", path.join("/")),
                None => path.join("/"),
            };
            if let Some(tag) = &tag {
                input = format!("{input}:{tag}");
            }
            if let Some(digest) = &digest {
                input = format!("{input}@{digest}");
            }
            let registry = match registry.as_deref() {
                None | Some("index.docker.io") => "docker.io".to_owned(),
                Some(other) => other.to_owned(),
            };
            let mut repository = path.join("/");
            if registry == "docker.io" && path.len() == 1 {
                repository = format!("library/{repository}");
            }
            let tag = match (&tag, &digest) {
                (None, None) => Some("latest".to_owned()),
                _ => tag,
            };
            Generated {
                input,
                registry,
                repository,
                tag,
                digest,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn generated_references_round_trip(g in reference()) {
        let r = Reference::parse(&g.input)
            .map_err(|e| TestCaseError::fail(format!("{:?} should parse: {e}", g.input)))?;
        prop_assert_eq!(r.registry(), g.registry.as_str());
        prop_assert_eq!(r.repository(), g.repository.as_str());
        prop_assert_eq!(r.tag(), g.tag.as_deref());
        prop_assert_eq!(r.digest(), g.digest.as_deref());

        let display = r.to_string();
        prop_assert_eq!(Reference::parse(&display), Ok(r.clone()), "Display {}", display);
        let familiar = r.familiar();
        prop_assert_eq!(Reference::parse(&familiar), Ok(r.clone()), "familiar {}", familiar);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        if let Ok(r) = Reference::parse(&s) {
            prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r.clone()));
        }
    }

    /// Strings from the characters references are made of reach deeper into the parser.
    #[test]
    fn reference_like_strings_never_panic_and_round_trip(s in "[a-zA-Z0-9:/@._\\-\\[\\]]{0,80}") {
        if let Ok(r) = Reference::parse(&s) {
            prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r.clone()));
            prop_assert_eq!(Reference::parse(&r.familiar()), Ok(r.clone()));
        }
    }
}
