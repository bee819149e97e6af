//! [`BiscuitToken`]: a verified token as the rest of the proxy carries it.

use std::fmt;

use biscuit_auth::Biscuit;
use sha2::{Digest, Sha256};

/// A verified Biscuit, as carried in an authenticated identity.
///
/// Compared by the SHA-256 of its text; `Debug` prints the revocation ids, never the
/// token.
pub struct BiscuitToken {
    biscuit: Biscuit,
    sha256: [u8; 32],
    revocation_ids: Vec<String>,
}

impl BiscuitToken {
    /// Wraps a token verified by the caller. `text` is the token as sent.
    pub fn new(biscuit: Biscuit, text: &str) -> Self {
        let revocation_ids = biscuit
            .revocation_identifiers()
            .iter()
            .map(hex::encode)
            .collect();
        BiscuitToken {
            biscuit,
            sha256: Sha256::digest(text.as_bytes()).into(),
            revocation_ids,
        }
    }

    /// The verified token.
    pub fn biscuit(&self) -> &Biscuit {
        &self.biscuit
    }

    /// The SHA-256 of the token's text (what caches find it by).
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// The revocation id of each block (lowercase hex), authority block first.
    pub fn revocation_ids(&self) -> &[String] {
        &self.revocation_ids
    }

    /// The token's `root_key_id`, if it has one.
    pub fn root_key_id(&self) -> Option<u32> {
        self.biscuit.root_key_id()
    }
}

impl fmt::Debug for BiscuitToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BiscuitToken")
            .field("root_key_id", &self.root_key_id())
            .field("revocation_ids", &self.revocation_ids)
            .finish_non_exhaustive()
    }
}

impl PartialEq for BiscuitToken {
    fn eq(&self, other: &Self) -> bool {
        self.sha256 == other.sha256
    }
}
