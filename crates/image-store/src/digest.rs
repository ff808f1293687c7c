//! Digests and chain IDs.

use sha2::{Digest as _, Sha256};

use crate::error::StoreError;

/// The chain IDs of a stack of layers, bottom first:
/// `chain(L0) = diff_id(L0)`, `chain(Ln) = sha256(chain(Ln-1) + " " + diff_id(Ln))`.
///
/// A chain ID names a layer *together with everything below it*, which is what
/// makes an extracted layer directory reusable between images.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(parent) => sha256_of(format!("{parent} {diff_id}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// Docker's short id: the first 12 hex digits, without the algorithm.
pub fn short_id(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:` digest, checked so that it is safe as a file name.
pub(crate) fn hex_of(digest: &str) -> Result<&str, StoreError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    hex.ok_or_else(|| StoreError::InvalidDigest(digest.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_of_one_is_the_diff_id_and_later_ones_hash_the_parent() {
        let a = sha256_of(b"a");
        let b = sha256_of(b"b");
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], sha256_of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn hex_of_refuses_path_tricks() {
        assert!(hex_of("sha256:../../etc").is_err());
        assert!(hex_of(&sha256_of(b"x")).is_ok());
        assert_eq!(short_id(&sha256_of(b"x")).len(), 12);
    }
}
