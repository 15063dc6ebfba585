//! The keys of a drive's two logs, derived as Hyperdrive 13 derives them: the metadata log is
//! the store's log named `db`; the content log is signed by the same key pair under a manifest
//! whose signer namespaces are bound to the metadata log's key.

use crate::crypto::{self, Hash};
use crate::manifest::{Manifest, ManifestSigner};

/// `crypto.namespace('hyperdrive', 1)[0]`: the content-log namespace.
pub fn blobs_namespace() -> Hash {
    crypto::namespace("hyperdrive", 1)[0]
}

/// The manifest of the content log of the drive whose metadata log has `db_key` and
/// `db_manifest`: each signer keeps its key and gets the namespace
/// `BLAKE2b-256(BLOBS ‖ db_key ‖ signer.namespace)`.
pub fn content_manifest(db_key: &Hash, db_manifest: &Manifest) -> Manifest {
    let ns = blobs_namespace();
    Manifest {
        version: db_manifest.version,
        hash: db_manifest.hash,
        allow_patch: db_manifest.allow_patch,
        quorum: db_manifest.quorum,
        signers: db_manifest
            .signers
            .iter()
            .map(|s| ManifestSigner {
                signature: s.signature,
                namespace: crypto::hash(&[&ns, db_key, &s.namespace]),
                public_key: s.public_key,
            })
            .collect(),
        prologue: None,
        linked: None,
        user_data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DEFAULT_NAMESPACE, derive_key_pair};

    fn hex(h: &[u8]) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_reference_drive_keys() {
        // shared/vectors/out/drive-vector.txt (hyperdrive 13.3.4, primary key 0x01 × 32)
        let kp = derive_key_pair(&[1u8; 32], &DEFAULT_NAMESPACE, "db");
        let db = Manifest::default_signer(kp.public_key());
        let db_key = db.hash();
        assert_eq!(
            hex(&db_key),
            "765ce6f1b788dd123061c6a1b74730c45a93e403af97e391b98c87291e6602b6"
        );
        assert_eq!(
            hex(&blobs_namespace()),
            "f217b747161784b495ceee3c42163b07dd62cb06df26e20e95ba4d438123aeeb"
        );
        let content = content_manifest(&db_key, &db);
        assert_eq!(
            hex(&content.signers[0].namespace),
            "c5b94cd98452de9308791b0a188c4b4537fb512d5be7ee0660b3745c139e4207"
        );
        assert_eq!(content.encode().len(), 70);
        assert_eq!(
            hex(&content.hash()),
            "29dad855b61308ad7fa5c79b6857ad1c541671f6d6c26cfd622359f96c9d340a"
        );
    }
}
