//! Biscuit key text: parsing public and private keys in the forms operators meet.
//!
//! Accepted, for public keys: `ed25519/<hex>` and `secp256r1/<hex>` (the Biscuit
//! specification's textual form, printed by `mcp-warden keygen`, the `biscuit` CLI and
//! `biscuit-python`), bare hex together with an algorithm, and PEM (`PUBLIC KEY`). For
//! private keys: `ed25519-private/<hex>`, `secp256r1-private/<hex>`, bare hex with an
//! algorithm, and PEM (`PRIVATE KEY`). Surrounding whitespace is ignored.

use biscuit_auth::builder::Algorithm;
use biscuit_auth::{PrivateKey, PublicKey};

/// The algorithm names used in configuration and on the command line.
pub const ALGORITHMS: [&str; 2] = ["ed25519", "secp256r1"];

/// Parses `ed25519` or `secp256r1` (also `p256`, `p-256`, case-insensitive).
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    match name.to_ascii_lowercase().as_str() {
        "ed25519" => Ok(Algorithm::Ed25519),
        "secp256r1" | "p256" | "p-256" => Ok(Algorithm::Secp256r1),
        _ => Err(format!(
            "unknown algorithm `{name}`\nhelp: use one of {}",
            ALGORITHMS.join(", ")
        )),
    }
}

/// The configuration name of an algorithm.
pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Ed25519 => "ed25519",
        Algorithm::Secp256r1 => "secp256r1",
    }
}

/// The algorithm of a public key.
pub fn public_key_algorithm(key: &PublicKey) -> Algorithm {
    match key {
        PublicKey::Ed25519(_) => Algorithm::Ed25519,
        PublicKey::P256(_) => Algorithm::Secp256r1,
    }
}

/// A public key in its textual form, `ed25519/<hex>` or `secp256r1/<hex>`.
pub fn public_key_text(key: &PublicKey) -> String {
    format!(
        "{}/{}",
        algorithm_name(public_key_algorithm(key)),
        key.to_bytes_hex()
    )
}

/// Parses a public key (see the module docs). `algorithm`, when given, must agree with
/// a prefixed or PEM key and is required for bare hex.
pub fn parse_public_key(text: &str, algorithm: Option<Algorithm>) -> Result<PublicKey, String> {
    let text = text.trim();
    let key = if text.starts_with("-----BEGIN") {
        PublicKey::from_pem(text).map_err(|e| format!("not a PEM public key: {e}"))?
    } else if let Some((prefix, hex)) = text.split_once('/') {
        let declared = parse_algorithm(prefix)?;
        PublicKey::from_bytes_hex(hex.trim(), declared)
            .map_err(|e| format!("not a valid `{prefix}` public key: {e}"))?
    } else {
        let Some(algorithm) = algorithm else {
            return Err(
                "bare hex key without an algorithm\nhelp: write `ed25519/<hex>` or set `algorithm`"
                    .to_owned(),
            );
        };
        PublicKey::from_bytes_hex(text, algorithm).map_err(|e| {
            format!(
                "not a valid `{}` public key: {e}",
                algorithm_name(algorithm)
            )
        })?
    };
    if let Some(algorithm) = algorithm {
        let actual = public_key_algorithm(&key);
        if actual != algorithm {
            return Err(format!(
                "the key is `{}`, not `{}`",
                algorithm_name(actual),
                algorithm_name(algorithm)
            ));
        }
    }
    Ok(key)
}

/// Parses a private key (see the module docs).
pub fn parse_private_key(text: &str, algorithm: Option<Algorithm>) -> Result<PrivateKey, String> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return match algorithm {
            Some(a) => PrivateKey::from_pem_with_algorithm(text, a),
            None => PrivateKey::from_pem(text),
        }
        .map_err(|e| format!("not a PEM private key: {e}"));
    }
    if let Some((prefix, hex)) = text.split_once('/') {
        let declared = match prefix {
            "ed25519-private" => Algorithm::Ed25519,
            "secp256r1-private" => Algorithm::Secp256r1,
            other => {
                return Err(format!(
                    "unknown private key prefix `{other}`\nhelp: expected `ed25519-private/` or `secp256r1-private/`"
                ))
            }
        };
        if algorithm.is_some_and(|a| a != declared) {
            return Err("the key's prefix disagrees with the algorithm given".to_owned());
        }
        return PrivateKey::from_bytes_hex(hex.trim(), declared)
            .map_err(|e| format!("not a valid private key: {e}"));
    }
    let algorithm = algorithm.ok_or_else(|| {
        "bare hex private key without an algorithm\nhelp: write `ed25519-private/<hex>`".to_owned()
    })?;
    PrivateKey::from_bytes_hex(text, algorithm).map_err(|e| format!("not a valid private key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use biscuit_auth::KeyPair;

    #[test]
    fn public_key_forms_round_trip() {
        for algorithm in [Algorithm::Ed25519, Algorithm::Secp256r1] {
            let pair = KeyPair::new_with_algorithm(algorithm);
            let public = pair.public();
            let text = public_key_text(&public);
            assert_eq!(text, public.to_string(), "same as the crate's own form");
            assert_eq!(parse_public_key(&text, None).unwrap(), public);
            assert_eq!(parse_public_key(&text, Some(algorithm)).unwrap(), public);
            let hex = public.to_bytes_hex();
            assert_eq!(parse_public_key(&hex, Some(algorithm)).unwrap(), public);
            assert!(parse_public_key(&hex, None).is_err());
            let pem = public.to_pem().unwrap();
            assert_eq!(parse_public_key(&pem, None).unwrap(), public);
        }
    }

    #[test]
    fn algorithm_mismatch_and_garbage_are_refused() {
        let ed = KeyPair::new().public();
        let err = parse_public_key(&public_key_text(&ed), Some(Algorithm::Secp256r1)).unwrap_err();
        assert!(err.contains("not `secp256r1`"), "{err}");
        assert!(parse_public_key("ed25519/zz", None).is_err());
        assert!(parse_public_key("rsa/00", None).is_err());
        assert!(parse_public_key("ed25519/0011", None).is_err());
    }

    #[test]
    fn private_key_forms_round_trip() {
        for algorithm in [Algorithm::Ed25519, Algorithm::Secp256r1] {
            let pair = KeyPair::new_with_algorithm(algorithm);
            let private = pair.private();
            let text = private.to_prefixed_string();
            assert_eq!(
                parse_private_key(&text, None).unwrap().public(),
                pair.public()
            );
            let pem = private.to_pem().unwrap();
            assert_eq!(
                parse_private_key(&pem, Some(algorithm)).unwrap().public(),
                pair.public()
            );
        }
        assert!(parse_private_key("abcd", None).is_err());
        assert!(parse_private_key("ed25519/abcd", None).is_err());
    }
}
