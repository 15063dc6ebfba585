//! Manifests, multisig signatures and the verifier that decides which statement a log signs.
//!
//! Two modes exist, chosen per log and fixed by its key:
//! - **manifest** (hypercore 11 default): key = `BLAKE2b(MANIFEST_NS || encode(manifest))`, the
//!   signable is 112 bytes and the stored signature is a 68-byte multisig wrapper;
//! - **compat** (hypercore 10 default): key = the Ed25519 public key, 80-byte signable, raw 64-byte
//!   signature.

use crate::crypto::{self, Hash, KeyPair, caps};
use crate::encoding::{DecodeError, Decoder, Encoder};
use crate::error::{Error, Result};

/// One signer of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSigner {
    /// Signature scheme; 0 is Ed25519, the only one defined.
    pub signature: u64,
    /// Namespace mixed into the signable (version 0 manifests only).
    pub namespace: Hash,
    /// The signer's Ed25519 public key.
    pub public_key: [u8; 32],
}

/// A prologue: the first `length` blocks must hash to `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prologue {
    /// Tree hash at `length`.
    pub hash: Hash,
    /// Number of blocks covered.
    pub length: u64,
}

/// A hypercore manifest (versions 1 to 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Manifest version (1, 2 or 3).
    pub version: u64,
    /// Hash function; 0 is BLAKE2b, the only one defined.
    pub hash: u64,
    /// Whether signers may sign a shorter length and patch it up.
    pub allow_patch: bool,
    /// Signatures needed.
    pub quorum: u64,
    /// The signers.
    pub signers: Vec<ManifestSigner>,
    /// Optional prologue.
    pub prologue: Option<Prologue>,
    /// Linked cores (version 2+).
    pub linked: Option<Vec<Hash>>,
    /// Free-form user data (version 2+).
    pub user_data: Option<Vec<u8>>,
}

impl Manifest {
    /// The default single-signer manifest for `public_key` (what hypercore 11 makes by default).
    pub fn default_signer(public_key: [u8; 32]) -> Self {
        Manifest {
            version: 1,
            hash: 0,
            allow_patch: false,
            quorum: 1,
            signers: vec![ManifestSigner {
                signature: 0,
                namespace: *caps::default_namespace(),
                public_key,
            }],
            prologue: None,
            linked: None,
            user_data: None,
        }
    }

    /// The compact encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(80);
        self.encode_into(&mut e);
        e.finish()
    }

    /// Appends the compact encoding to `e`.
    pub fn encode_into(&self, e: &mut Encoder) {
        let mut flags = 0u64;
        if self.allow_patch {
            flags |= 1;
        }
        if self.prologue.is_some() {
            flags |= 2;
        }
        if self.linked.is_some() {
            flags |= 4;
        }
        if self.user_data.is_some() {
            flags |= 8;
        }
        e.uint(self.version)
            .uint(flags)
            .uint(self.hash)
            .uint(self.quorum);
        e.uint(self.signers.len() as u64);
        for s in &self.signers {
            e.uint(s.signature).raw(&s.namespace).raw(&s.public_key);
        }
        if let Some(p) = &self.prologue {
            e.raw(&p.hash).uint(p.length);
        }
        if let Some(l) = &self.linked {
            e.uint(l.len() as u64);
            for k in l {
                e.raw(k);
            }
        }
        if let Some(u) = &self.user_data {
            e.buffer(u);
        }
    }

    /// Decodes a whole buffer as a manifest.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        let m = Self::decode_from(&mut d)?;
        d.finish("manifest: trailing bytes")?;
        Ok(m)
    }

    /// Decodes a manifest from the decoder's position.
    pub fn decode_from(d: &mut Decoder<'_>) -> std::result::Result<Self, DecodeError> {
        let version = d.uint("manifest version")?;
        if !(1..=3).contains(&version) {
            return Err(DecodeError {
                what: "manifest version (only 1 to 3 are supported)",
            });
        }
        let flags = d.uint("manifest flags")?;
        let hash = d.uint("manifest hash")?;
        let quorum = d.uint("manifest quorum")?;
        let n = d.len(crate::encoding::MAX_ARRAY, "manifest signers")?;
        let mut signers = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            signers.push(ManifestSigner {
                signature: d.uint("signer signature")?,
                namespace: d.fixed32("signer namespace")?,
                public_key: d.fixed32("signer public key")?,
            });
        }
        let prologue = if flags & 2 != 0 {
            Some(Prologue {
                hash: d.fixed32("prologue hash")?,
                length: d.uint("prologue length")?,
            })
        } else {
            None
        };
        let linked = if flags & 4 != 0 {
            let n = d.len(crate::encoding::MAX_ARRAY, "manifest linked")?;
            let mut l = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                l.push(d.fixed32("linked key")?);
            }
            Some(l)
        } else {
            None
        };
        let user_data = if flags & 8 != 0 {
            Some(d.buffer("manifest user data")?.to_vec())
        } else {
            None
        };
        Ok(Manifest {
            version,
            hash,
            allow_patch: flags & 1 != 0,
            quorum,
            signers,
            prologue,
            linked,
            user_data,
        })
    }

    /// `BLAKE2b(MANIFEST_NS || encode(manifest))`: the key of a manifest-keyed log.
    pub fn hash(&self) -> Hash {
        crypto::hash(&[caps::manifest(), &self.encode()])
    }
}

/// One signature inside a multisig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureProof {
    /// Index of the signer in the manifest.
    pub signer: u64,
    /// The Ed25519 signature.
    pub signature: [u8; 64],
    /// Length patched by `nodes` (0 = none).
    pub patch: u64,
}

/// A multisig (`multiSignature`), how manifest-keyed logs store and send their signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiSignature {
    /// The signatures.
    pub proofs: Vec<SignatureProof>,
    /// Tree nodes for patched signatures.
    pub patch: Vec<crate::tree::Node>,
}

impl MultiSignature {
    /// The compact encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(68);
        e.uint(self.proofs.len() as u64);
        for p in &self.proofs {
            e.uint(p.signer).raw(&p.signature).uint(p.patch);
        }
        e.uint(self.patch.len() as u64);
        for n in &self.patch {
            e.uint(n.index).uint(n.size).raw(&n.hash);
        }
        e.finish()
    }

    /// Decodes a multisig.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        let n = d.len(1024, "multisig proofs")?;
        let mut proofs = Vec::with_capacity(n);
        for _ in 0..n {
            proofs.push(SignatureProof {
                signer: d.uint("multisig signer")?,
                signature: d.fixed64("multisig signature")?,
                patch: d.uint("multisig patch")?,
            });
        }
        let n = d.len(1024, "multisig patch nodes")?;
        let mut patch = Vec::with_capacity(n);
        for _ in 0..n {
            patch.push(crate::tree::Node::decode_from(&mut d)?);
        }
        d.finish("multisig: trailing bytes")?;
        Ok(MultiSignature { proofs, patch })
    }
}

/// Checks and makes the signatures of one log.
#[derive(Debug, Clone)]
pub struct Verifier {
    key: Hash,
    manifest: Manifest,
    compat: bool,
}

impl Verifier {
    /// The verifier for a log with `key` and `manifest`.
    ///
    /// The manifest must either hash to the key, or be a single-signer manifest whose public key is
    /// the key (compat mode).
    pub fn new(key: Hash, manifest: Manifest) -> Result<Self> {
        let compat = is_compat(&key, &manifest);
        if !compat && manifest.hash() != key {
            return Err(Error::InvalidManifest(
                "the manifest does not hash to the log key".into(),
            ));
        }
        if manifest.hash != 0 {
            return Err(Error::InvalidManifest(
                "only BLAKE2b manifests are supported".into(),
            ));
        }
        if manifest.signers.iter().any(|s| s.signature != 0) {
            return Err(Error::InvalidManifest(
                "only Ed25519 signers are supported".into(),
            ));
        }
        Ok(Verifier {
            key,
            manifest,
            compat,
        })
    }

    /// The verifier for a compat log whose key is `public_key`.
    pub fn compat(public_key: [u8; 32]) -> Self {
        Verifier {
            key: public_key,
            manifest: Manifest::default_signer(public_key),
            compat: true,
        }
    }

    /// True for a compat (hypercore 10 style) log.
    pub fn is_compat(&self) -> bool {
        self.compat
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The log key.
    pub fn key(&self) -> &Hash {
        &self.key
    }

    /// The bytes a signer signs for the given tree state.
    pub fn signable(&self, tree_hash: &Hash, length: u64, fork: u64) -> Vec<u8> {
        if self.compat {
            crypto::signable_compat(tree_hash, length, fork).to_vec()
        } else {
            crypto::signable(&self.key, tree_hash, length, fork).to_vec()
        }
    }

    /// Signs a tree state with `key_pair`, in the form stored and sent on the wire.
    pub fn sign(
        &self,
        key_pair: &KeyPair,
        tree_hash: &Hash,
        length: u64,
        fork: u64,
    ) -> Result<Vec<u8>> {
        let pk = key_pair.public_key();
        let signer = self
            .manifest
            .signers
            .iter()
            .position(|s| s.public_key == pk)
            .ok_or_else(|| Error::NotWritable("the key pair is not a signer of this log".into()))?;
        let sig = key_pair.sign(&self.signable(tree_hash, length, fork));
        if self.compat || self.manifest.signers.len() != 1 {
            if !self.compat {
                return Err(Error::NotWritable(
                    "multi-signer logs need every signer's part; sign with a quorum".into(),
                ));
            }
            return Ok(sig.to_vec());
        }
        Ok(MultiSignature {
            proofs: vec![SignatureProof {
                signer: signer as u64,
                signature: sig,
                patch: 0,
            }],
            patch: vec![],
        }
        .encode())
    }

    /// Verifies `signature` over a tree state.
    pub fn verify(&self, tree_hash: &Hash, length: u64, fork: u64, signature: &[u8]) -> bool {
        let msg = self.signable(tree_hash, length, fork);
        if self.compat {
            return crypto::verify(&self.manifest.signers[0].public_key, &msg, signature);
        }
        if let Some(p) = &self.manifest.prologue
            && length <= p.length
        {
            return length == p.length && *tree_hash == p.hash;
        }
        let Ok(multi) = MultiSignature::decode(signature) else {
            return false;
        };
        let quorum = self.manifest.quorum as usize;
        if quorum == 0 || multi.proofs.len() < quorum {
            return false;
        }
        let mut tried = vec![false; self.manifest.signers.len()];
        for p in multi.proofs.iter().take(quorum) {
            // Patched signatures sign a shorter length; this implementation accepts only direct ones.
            if p.patch != 0 {
                return false;
            }
            let Some(s) = self.manifest.signers.get(p.signer as usize) else {
                return false;
            };
            if std::mem::replace(&mut tried[p.signer as usize], true) {
                return false;
            }
            if !crypto::verify(&s.public_key, &msg, &p.signature) {
                return false;
            }
        }
        true
    }
}

/// True when `manifest` has one signer whose public key is `key`.
pub fn is_compat(key: &Hash, manifest: &Manifest) -> bool {
    manifest.signers.len() == 1 && manifest.signers[0].public_key == *key
}
