//! docker-style generated container names: `adjective_surname`.

use basic_image_store::ImageStore;

use crate::error::{EngineError, Result};

const ADJECTIVES: &[&str] = &[
    "admiring",
    "agitated",
    "amazing",
    "bold",
    "brave",
    "busy",
    "calm",
    "clever",
    "cool",
    "crazy",
    "dazzling",
    "determined",
    "eager",
    "ecstatic",
    "elegant",
    "epic",
    "festive",
    "focused",
    "friendly",
    "funny",
    "gallant",
    "gifted",
    "goofy",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "magical",
    "modest",
    "nice",
    "nifty",
    "optimistic",
    "peaceful",
    "pedantic",
    "priceless",
    "quirky",
    "relaxed",
    "romantic",
    "serene",
    "sharp",
    "stoic",
    "sweet",
    "tender",
    "trusting",
    "upbeat",
    "vibrant",
    "wizardly",
    "zealous",
];

const SURNAMES: &[&str] = &[
    "albattani",
    "allen",
    "archimedes",
    "babbage",
    "bardeen",
    "bell",
    "bhabha",
    "booth",
    "bose",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "fermat",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goldberg",
    "hamilton",
    "hawking",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamport",
    "lovelace",
    "maxwell",
    "meitner",
    "mendel",
    "newton",
    "noether",
    "pascal",
    "pasteur",
    "perlman",
    "planck",
    "ritchie",
    "sammet",
    "shannon",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wilson",
    "wozniak",
    "yalow",
];

/// A name no container in `store` has.
pub fn generate(store: &ImageStore) -> Result<String> {
    let taken: std::collections::HashSet<String> =
        store.containers()?.into_iter().map(|c| c.name).collect();
    let mut seed = u64::from_le_bytes(random_bytes()?);
    for attempt in 0..100u32 {
        let a = ADJECTIVES[(seed % ADJECTIVES.len() as u64) as usize];
        seed /= ADJECTIVES.len() as u64;
        let s = SURNAMES[(seed % SURNAMES.len() as u64) as usize];
        seed = seed.rotate_left(17) ^ u64::from(attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // docker appends a digit once the plain names run short.
        let name = if attempt < 10 {
            format!("{a}_{s}")
        } else {
            format!("{a}_{s}{}", attempt % 10)
        };
        if !taken.contains(&name) {
            return Ok(name);
        }
    }
    Err(EngineError::Conflict(
        "could not find a free container name: give the container a name".into(),
    ))
}

/// `N` bytes from the kernel's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    use std::io::Read as _;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(EngineError::io("reading", "/dev/urandom"))?;
    Ok(bytes)
}

/// 64 hex digits from the kernel's random source, as docker's container ids.
pub fn new_container_id() -> Result<String> {
    let bytes: [u8; 32] = random_bytes()?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// docker's name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (a leading `/`, as the API writes
/// names, is allowed and dropped by [`normalize_name`]).
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        return Err(EngineError::InvalidArgument(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(())
}

/// A name as the API may send it (`/web`), as it is kept (`web`).
pub fn normalize_name(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for good in ["web", "a", "db-1", "x_y.z", "0abc"] {
            check_name(good).unwrap();
        }
        for bad in ["", "-web", ".x", "a b", "a/b", "_x", "é"] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("only [a-zA-Z0-9]"), "{bad}: {e}");
        }
        assert_eq!(normalize_name("/web"), "web");
    }

    #[test]
    fn ids_are_64_hex_digits_and_differ() {
        let (a, b) = (new_container_id().unwrap(), new_container_id().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
