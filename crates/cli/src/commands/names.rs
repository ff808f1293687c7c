//! docker-style generated container names: `adjective_surname`.

use anyhow::{Context as _, bail};
use basic_image_store::ImageStore;

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
pub fn generate(store: &ImageStore) -> anyhow::Result<String> {
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
    bail!("could not find a free container name: name the container with --name")
}

/// `N` bytes from the kernel's random source.
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    use std::io::Read as _;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}
