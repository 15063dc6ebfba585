//! Hashes, namespaces and keys, byte for byte as `hypercore-crypto` computes them.

use blake2b_simd::{Params, State};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::tree::Node;

/// A 32-byte BLAKE2b-256 digest.
pub type Hash = [u8; 32];

/// BLAKE2b-256 over the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> Hash {
    let mut h = state();
    for p in parts {
        h.update(p);
    }
    finish(&h)
}

fn state() -> State {
    Params::new().hash_length(32).to_state()
}

fn finish(h: &State) -> Hash {
    h.finalize().as_bytes().try_into().expect("32-byte digest")
}

/// Keyed BLAKE2b-256 (libsodium `crypto_generichash` with a key) over the concatenation of `parts`.
pub fn keyed_hash(key: &[u8], parts: &[&[u8]]) -> Hash {
    let mut h = Params::new().hash_length(32).key(key).to_state();
    for p in parts {
        h.update(p);
    }
    finish(&h)
}

/// Hash of a leaf (block): `BLAKE2b(0x00 || u64le(len) || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    hash(&[&[0u8], &(data.len() as u64).to_le_bytes(), data])
}

/// Leaf hashes of many blocks at once: several messages per SIMD lane set (`blake2b_simd::many`),
/// spread over the available cores for big batches. Same result as [`leaf_hash`] on each.
pub fn leaf_hashes<B: AsRef<[u8]> + Sync>(blocks: &[B]) -> Vec<Hash> {
    let total: usize = blocks.iter().map(|b| b.as_ref().len()).sum();
    let threads = if total >= 1 << 18 {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    } else {
        1
    };
    if threads <= 1 || blocks.len() < 2 * threads {
        return leaf_hashes_simd(blocks);
    }
    let chunk = blocks.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = blocks
            .chunks(chunk)
            .map(|c| s.spawn(move || leaf_hashes_simd(c)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("hashing does not panic"))
            .collect()
    })
}

/// Leaf hashes of many blocks on this thread, several messages per SIMD pass
/// (`blake2b_simd::many::update_many`: each state takes its 9-byte prefix, then the blocks are
/// hashed in place, four lanes at a time with AVX2; nothing is copied).
pub fn leaf_hashes_simd<B: AsRef<[u8]>>(blocks: &[B]) -> Vec<Hash> {
    if blocks.len() < 2 {
        return blocks.iter().map(|b| leaf_hash(b.as_ref())).collect();
    }
    let mut params = Params::new();
    params.hash_length(32);
    let mut states: Vec<State> = blocks
        .iter()
        .map(|b| {
            let mut st = params.to_state();
            st.update(&[0u8]);
            st.update(&(b.as_ref().len() as u64).to_le_bytes());
            st
        })
        .collect();
    blake2b_simd::many::update_many(states.iter_mut().zip(blocks.iter().map(|b| b.as_ref())));
    states.iter().map(finish).collect()
}

/// Hash of a parent node: `BLAKE2b(0x01 || u64le(size) || left.hash || right.hash)`.
pub fn parent_hash(left: &Node, right: &Node) -> Hash {
    let (l, r) = if left.index <= right.index {
        (left, right)
    } else {
        (right, left)
    };
    hash(&[&[1u8], &(l.size + r.size).to_le_bytes(), &l.hash, &r.hash])
}

/// The tree hash of a set of roots (left to right).
pub fn tree_hash(roots: &[Node]) -> Hash {
    let mut h = state();
    h.update(&[2u8]);
    for r in roots {
        h.update(&r.hash);
        h.update(&r.index.to_le_bytes());
        h.update(&r.size.to_le_bytes());
    }
    finish(&h)
}

/// `crypto.namespace(name, count)`: `NS[i] = BLAKE2b(BLAKE2b(name) || i)`.
pub fn namespace(name: &str, count: u8) -> Vec<Hash> {
    let ns = hash(&[name.as_bytes()]);
    (0..count).map(|i| hash(&[&ns, &[i]])).collect()
}

/// Hypercore's namespaces (`lib/caps.js`).
pub mod caps {
    use super::{Hash, namespace};
    use std::sync::LazyLock;

    static HYPERCORE: LazyLock<Vec<Hash>> = LazyLock::new(|| namespace("hypercore", 6));

    /// Namespace of the signable tree statement.
    pub fn tree() -> &'static Hash {
        &HYPERCORE[0]
    }
    /// Capability namespace of the initiator.
    pub fn replicate_initiator() -> &'static Hash {
        &HYPERCORE[1]
    }
    /// Capability namespace of the responder.
    pub fn replicate_responder() -> &'static Hash {
        &HYPERCORE[2]
    }
    /// Namespace of manifest hashes.
    pub fn manifest() -> &'static Hash {
        &HYPERCORE[3]
    }
    /// Default signer namespace.
    pub fn default_namespace() -> &'static Hash {
        &HYPERCORE[4]
    }
    /// Default block-encryption namespace.
    pub fn default_encryption() -> &'static Hash {
        &HYPERCORE[5]
    }
}

/// The discovery key of a log key: keyed BLAKE2b-256 of `"hypercore"` with the key.
pub fn discovery_key(key: &[u8; 32]) -> Hash {
    keyed_hash(key, &[b"hypercore"])
}

/// An Ed25519 key pair.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_key", &hex32(&self.public_key()))
            .finish_non_exhaustive()
    }
}

fn hex32(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl KeyPair {
    /// `crypto_sign_seed_keypair(seed)`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// A fresh random key pair from the OS random source.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        Self::from_seed(&seed)
    }

    /// The 32-byte seed (libsodium's secret key is `seed || public key`).
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The 64-byte libsodium secret key: `seed || public key`.
    pub fn secret_key(&self) -> [u8; 64] {
        self.signing.to_keypair_bytes()
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// A detached Ed25519 signature.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }
}

/// Verifies a detached Ed25519 signature (strict: rejects non-canonical encodings).
pub fn verify(public_key: &[u8; 32], msg: &[u8], signature: &[u8]) -> bool {
    let Ok(sig) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    let Ok(vk) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    // strict, as libsodium: rejects small-order keys and R points, and non-canonical encodings
    vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
        .is_ok()
}

/// The signable statement of a manifest-keyed log (112 bytes).
pub fn signable(manifest_hash: &Hash, tree_hash: &Hash, length: u64, fork: u64) -> [u8; 112] {
    let mut out = [0u8; 112];
    out[..32].copy_from_slice(caps::tree());
    out[32..64].copy_from_slice(manifest_hash);
    out[64..96].copy_from_slice(tree_hash);
    out[96..104].copy_from_slice(&length.to_le_bytes());
    out[104..].copy_from_slice(&fork.to_le_bytes());
    out
}

/// The signable statement of a compat log (80 bytes).
pub fn signable_compat(tree_hash: &Hash, length: u64, fork: u64) -> [u8; 80] {
    let mut out = [0u8; 80];
    out[..32].copy_from_slice(caps::tree());
    out[32..64].copy_from_slice(tree_hash);
    out[64..72].copy_from_slice(&length.to_le_bytes());
    out[72..].copy_from_slice(&fork.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn upstream_hypercore_crypto_vectors() {
        let leaf = leaf_hash(b"hello world");
        assert_eq!(
            leaf.to_vec(),
            h("9f1b578fd57a4df015493d2886aec9600eef913c3bb009768c7f0fb875996308")
        );
        let a = Node::new(0, 11, leaf);
        let b = Node::new(2, 11, leaf);
        assert_eq!(
            parent_hash(&a, &b).to_vec(),
            h("3ad0c9b58b771d1b7707e1430f37c23a23dd46e0c7c3ab9c16f79d25f7c36804")
        );
        let roots = [Node::new(3, 11, [0; 32]), Node::new(9, 2, [0; 32])];
        assert_eq!(
            tree_hash(&roots).to_vec(),
            h("0e576a56b478cddb6ffebab8c494532b6de009466b2e9f7af9143fc54b9eaa36")
        );
    }

    #[test]
    fn batched_leaf_hashes_match_single_ones() {
        let blocks: Vec<Vec<u8>> = (0..300usize)
            .map(|i| vec![i as u8; (i * 37) % 5000])
            .collect();
        let single: Vec<Hash> = blocks.iter().map(|b| leaf_hash(b)).collect();
        assert_eq!(leaf_hashes(&blocks), single);
        assert_eq!(leaf_hashes(&blocks[..3]), single[..3].to_vec());
        let big: Vec<Vec<u8>> = (0..64usize).map(|i| vec![i as u8; 40_000 + i]).collect();
        let single: Vec<Hash> = big.iter().map(|b| leaf_hash(b)).collect();
        assert_eq!(leaf_hashes(&big), single);
    }

    #[test]
    fn secret_stream_namespaces() {
        let ns = namespace("hyperswarm/secret-stream", 3);
        assert_eq!(
            ns[0].to_vec(),
            h("a931a0155b5c09e6d28628236af83c4b8a6af9af60986edeede9dc5d63192bf7")
        );
    }
}
