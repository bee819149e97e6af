//! JWT verification keys: where they come from ([`KeySources`]) and the loaded,
//! immutable generation used per request ([`KeySet`]).
//!
//! Every key is bound to exactly one algorithm when it is loaded, and a token is only
//! ever verified with keys bound to its header's `alg`. That is what rules out algorithm
//! confusion: an RSA public key is never handed to HMAC, whatever the token claims.
//! Keys are also checked when loaded (HMAC secret length, RSA modulus size, point on
//! the curve) so a bad key fails the load instead of every request.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use serde_json::Value;

use super::config::{JwtConfig, JwtKeyConfig};
use super::error::AuthConfigError;

/// Largest JWKS file accepted.
const MAX_JWKS_BYTES: u64 = 1 << 20;
/// Largest PEM or secret file accepted.
const MAX_KEY_FILE_BYTES: u64 = 64 << 10;
/// RSA modulus bounds in bits: below 2048 is weak (RFC 7518 §3.3 requires it), above
/// 4096 the verifier refuses the key.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 4096;

/// The algorithms this module supports, by registered name (RFC 7518, RFC 8037).
const SUPPORTED: [(&str, Algorithm); 12] = [
    ("HS256", Algorithm::HS256),
    ("HS384", Algorithm::HS384),
    ("HS512", Algorithm::HS512),
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// The registered name of a supported algorithm.
pub(crate) fn alg_name(alg: Algorithm) -> &'static str {
    SUPPORTED
        .iter()
        .find(|(_, a)| *a == alg)
        .map_or("unsupported", |(name, _)| name)
}

/// The supported algorithm names, comma-separated, for help messages.
pub(crate) fn supported_alg_names() -> String {
    SUPPORTED.map(|(name, _)| name).join(", ")
}

/// Parses a supported algorithm's registered name (case-sensitive, as in JWS headers).
pub(crate) fn parse_alg(name: &str) -> Option<Algorithm> {
    SUPPORTED.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
}

/// One verification key, bound to one algorithm.
pub(crate) struct VerifyKey {
    /// Only tokens carrying this `kid` use the key; `None`: only tokens without `kid`.
    pub(crate) kid: Option<String>,
    /// The only algorithm this key verifies.
    pub(crate) alg: Algorithm,
    /// The key material.
    pub(crate) key: DecodingKey,
}

/// One generation of verification keys (inline keys, then JWKS keys).
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<VerifyKey>,
}

impl KeySet {
    /// Whether any key carries this `kid`.
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys that may verify a token with this header `kid` and `alg`: same `kid`
    /// (or both without one) and same algorithm.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.alg == alg && k.kid.as_deref() == kid)
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// Where an inline HMAC secret comes from.
#[derive(Clone)]
enum SecretSource {
    Env(String),
    File(PathBuf),
    Inline(String),
}

/// Where an inline key's material comes from.
#[derive(Clone)]
enum Material {
    Secret(SecretSource),
    PublicKeyFile(PathBuf),
}

/// An inline key, checked for shape but not yet loaded.
#[derive(Clone)]
struct InlineKey {
    origin: String,
    label: String,
    kid: Option<String>,
    alg: Algorithm,
    material: Material,
}

/// The configured key sources; [`KeySources::load`] reads them into a [`KeySet`].
pub(crate) struct KeySources {
    inline: Vec<InlineKey>,
    jwks_file: Option<PathBuf>,
    allowed: Vec<Algorithm>,
}

impl KeySources {
    /// Checks the shape of the key configuration (no I/O). `allowed` is the parsed
    /// `algorithms` allow-list.
    pub(crate) fn from_config(
        cfg: &JwtConfig,
        base_dir: &Path,
        allowed: &[Algorithm],
    ) -> Result<Self, AuthConfigError> {
        if cfg.keys.is_empty() && cfg.jwks_file.is_none() {
            return Err(AuthConfigError::Setting {
                setting: "auth.jwt".to_owned(),
                reason: "no verification keys\nhelp: add `jwks_file` or `[[auth.jwt.keys]]`"
                    .to_owned(),
            });
        }
        let inline = cfg
            .keys
            .iter()
            .enumerate()
            .map(|(index, key)| inline_key(index, key, base_dir, allowed))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeySources {
            inline,
            jwks_file: cfg.jwks_file.as_ref().map(|p| base_dir.join(p)),
            allowed: allowed.to_vec(),
        })
    }

    /// Reads every key (secrets, PEM files, the JWKS file) into a new generation.
    pub(crate) fn load(&self) -> Result<KeySet, AuthConfigError> {
        let mut keys = Vec::new();
        for inline in &self.inline {
            keys.push(load_inline(inline)?);
        }
        if let Some(file) = &self.jwks_file {
            let jwks = load_jwks(file, &self.allowed)?;
            if jwks.is_empty() {
                tracing::warn!(file = %file.display(), "JWKS file has no usable verification key");
            }
            keys.extend(jwks);
        }
        Ok(KeySet { keys })
    }

    /// Files whose change should trigger a reload: the JWKS file, PEM files and secret
    /// files.
    pub(crate) fn watched_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .inline
            .iter()
            .filter_map(|k| match &k.material {
                Material::PublicKeyFile(p) | Material::Secret(SecretSource::File(p)) => {
                    Some(p.clone())
                }
                Material::Secret(_) => None,
            })
            .collect();
        files.extend(self.jwks_file.iter().cloned());
        files.sort();
        files.dedup();
        files
    }
}

fn inline_key(
    index: usize,
    key: &JwtKeyConfig,
    base_dir: &Path,
    allowed: &[Algorithm],
) -> Result<InlineKey, AuthConfigError> {
    let origin = format!("auth.jwt.keys[{index}]");
    let label = key.kid.clone().unwrap_or_else(|| format!("#{index}"));
    let fail = |reason: String| AuthConfigError::Key {
        origin: origin.clone(),
        key: label.clone(),
        reason,
    };
    if key.kid.as_deref() == Some("") {
        return Err(fail("`kid` is empty".to_owned()));
    }
    let alg = parse_alg(&key.alg).ok_or_else(|| fail(format!("unsupported alg `{}`", key.alg)))?;
    if !allowed.contains(&alg) {
        return Err(fail(format!(
            "alg `{}` is not in `auth.jwt.algorithms`",
            alg_name(alg)
        )));
    }
    let secrets = [
        key.secret_env.clone().map(SecretSource::Env),
        key.secret_file
            .as_ref()
            .map(|p| SecretSource::File(base_dir.join(p))),
        key.secret.clone().map(SecretSource::Inline),
    ];
    let mut secrets = secrets.into_iter().flatten();
    let material = if alg.family() == AlgorithmFamily::Hmac {
        if key.public_key_file.is_some() {
            return Err(fail(format!(
                "`public_key_file` is for public-key algorithms, not `{}`",
                alg_name(alg)
            )));
        }
        match (secrets.next(), secrets.next()) {
            (Some(source), None) => Material::Secret(source),
            (None, _) => {
                return Err(fail(
                    "no secret\nhelp: set one of `secret_env`, `secret_file`, `secret`".to_owned(),
                ))
            }
            (Some(_), Some(_)) => {
                return Err(fail(
                    "more than one of `secret_env`, `secret_file`, `secret`".to_owned(),
                ))
            }
        }
    } else {
        if secrets.next().is_some() {
            return Err(fail(format!(
                "`{}` takes `public_key_file`, not a secret",
                alg_name(alg)
            )));
        }
        match &key.public_key_file {
            Some(p) => Material::PublicKeyFile(base_dir.join(p)),
            None => return Err(fail("no `public_key_file`".to_owned())),
        }
    };
    Ok(InlineKey {
        origin,
        label,
        kid: key.kid.clone(),
        alg,
        material,
    })
}

/// A file that does not exist, told as the setting that names it and how to make it;
/// any other error as it is.
fn named_by(e: AuthConfigError, setting: &str, help: impl FnOnce() -> String) -> AuthConfigError {
    match e {
        AuthConfigError::Read { file, source } if source.kind() == std::io::ErrorKind::NotFound => {
            AuthConfigError::MissingFile {
                setting: setting.to_owned(),
                file,
                source,
                help: help(),
            }
        }
        other => other,
    }
}

/// Reads a file of bounded size.
pub(crate) fn read_bounded(file: &Path, max: u64) -> Result<Vec<u8>, AuthConfigError> {
    use std::io::Read;
    let read_err = |source| AuthConfigError::Read {
        file: file.to_owned(),
        source,
    };
    let handle = std::fs::File::open(file).map_err(read_err)?;
    let mut bytes = Vec::new();
    handle
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > max {
        return Err(AuthConfigError::File {
            file: file.to_owned(),
            reason: format!("larger than {max} bytes"),
        });
    }
    Ok(bytes)
}

fn load_inline(inline: &InlineKey) -> Result<VerifyKey, AuthConfigError> {
    let fail = |reason: String| AuthConfigError::Key {
        origin: inline.origin.clone(),
        key: inline.label.clone(),
        reason,
    };
    let key = match &inline.material {
        Material::Secret(source) => {
            let secret = match source {
                SecretSource::Env(var) => std::env::var_os(var)
                    .ok_or_else(|| fail(format!("environment variable `{var}` is not set")))?
                    .into_encoded_bytes(),
                SecretSource::File(file) => {
                    let mut bytes = read_bounded(file, MAX_KEY_FILE_BYTES).map_err(|e| {
                        named_by(e, &format!("{}.secret_file", inline.origin), || {
                            format!(
                                "write the shared secret to it, e.g. `head -c 32 /dev/urandom \
                                 | base64 > {}`; the demo configurations' keys are made by \
                                 `mcp-warden demo`",
                                file.display()
                            )
                        })
                    })?;
                    if bytes.ends_with(b"\n") {
                        bytes.pop();
                        if bytes.ends_with(b"\r") {
                            bytes.pop();
                        }
                    }
                    bytes
                }
                SecretSource::Inline(secret) => secret.as_bytes().to_vec(),
            };
            DecodingKey::from_secret(&secret)
        }
        Material::PublicKeyFile(file) => {
            let pem = read_bounded(file, MAX_KEY_FILE_BYTES).map_err(|e| {
                named_by(e, &format!("{}.public_key_file", inline.origin), || {
                    "save your identity provider's signing key there (PEM `PUBLIC KEY`)".to_owned()
                })
            })?;
            let parsed = match inline.alg.family() {
                AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
                AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
                AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&pem),
                AlgorithmFamily::Hmac => return Err(fail("HMAC key from a PEM file".to_owned())),
            };
            parsed.map_err(|e| {
                fail(format!(
                    "`{}`: not a PEM public key for `{}`: {e}",
                    file.display(),
                    alg_name(inline.alg)
                ))
            })?
        }
    };
    let key = checked_key(inline.alg, key).map_err(fail)?;
    Ok(VerifyKey {
        kid: inline.kid.clone(),
        alg: inline.alg,
        key,
    })
}

/// Checks that `key` is usable with `alg`; returns it (RSA keys normalised to their
/// modulus and exponent, so requests don't re-parse DER).
fn checked_key(alg: Algorithm, key: DecodingKey) -> Result<DecodingKey, String> {
    let name = alg_name(alg);
    if key.family() != alg.family() {
        return Err(format!("key type does not match alg `{name}`"));
    }
    let key = match alg.family() {
        AlgorithmFamily::Hmac => {
            let min = match alg {
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => 32,
            };
            let len = key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
            if len < min {
                return Err(format!(
                    "secret is {len} bytes, `{name}` needs at least {min} (RFC 7518 §3.2)"
                ));
            }
            key
        }
        AlgorithmFamily::Rsa => {
            let (n, e) = rsa_components(&key)?;
            let bits = bit_len(&n);
            if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                return Err(format!(
                    "RSA modulus is {bits} bits, expected {RSA_MIN_BITS} to {RSA_MAX_BITS}"
                ));
            }
            let e_bits = bit_len(&e);
            let odd = e.last().is_some_and(|b| b & 1 == 1);
            if !(2..=33).contains(&e_bits) || !odd {
                return Err("RSA public exponent is invalid".to_owned());
            }
            DecodingKey::from_rsa_raw_components(&n, &e)
        }
        AlgorithmFamily::Ec => {
            let want = if alg == Algorithm::ES384 { 97 } else { 65 };
            let bytes = key.try_get_as_bytes().unwrap_or_default();
            if bytes.len() != want || bytes.first() != Some(&4) {
                return Err(format!(
                    "not an uncompressed point on the curve of `{name}`"
                ));
            }
            key
        }
        AlgorithmFamily::Ed => {
            // The verifier slices the first 32 bytes without a length check: guard here.
            if key.try_get_as_bytes().map(<[u8]>::len).ok() != Some(32) {
                return Err("not an Ed25519 public key".to_owned());
            }
            key
        }
    };
    // Building a verifier parses the key (curve point decoding and so on); a failure
    // here would otherwise turn every request into a bad-signature error.
    if jsonwebtoken::crypto::verify("AA", b"probe", &key, alg).is_err() {
        return Err(format!("not a valid `{name}` public key"));
    }
    Ok(key)
}

/// An RSA key's big-endian modulus and exponent, leading zeros stripped.
fn rsa_components(key: &DecodingKey) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (n, e) = match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => (n.clone(), e.clone()),
        DecodingKeyKind::SecretOrDer(_) => {
            let jwk = Jwk::from_decoding_key(key, None)
                .map_err(|e| format!("not a valid RSA public key: {e}"))?;
            match jwk.algorithm {
                AlgorithmParameters::RSA(p) => {
                    let n = URL_SAFE_NO_PAD.decode(&p.n).map_err(|e| e.to_string())?;
                    let e = URL_SAFE_NO_PAD.decode(&p.e).map_err(|e| e.to_string())?;
                    (n, e)
                }
                _ => return Err("not an RSA public key".to_owned()),
            }
        }
    };
    Ok((strip_zeros(n), strip_zeros(e)))
}

fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// Bit length of a big-endian unsigned integer without leading zero bytes.
fn bit_len(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(first) => bytes.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// Loads the signing keys of a JWKS file (RFC 7517 §5).
fn load_jwks(file: &Path, allowed: &[Algorithm]) -> Result<Vec<VerifyKey>, AuthConfigError> {
    let bytes = read_bounded(file, MAX_JWKS_BYTES)?;
    let file_err = |reason: String| AuthConfigError::File {
        file: file.to_owned(),
        reason,
    };
    let doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| file_err(format!("not JSON: {e}")))?;
    let entries = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| file_err("not a JWKS: no `keys` array".to_owned()))?;
    let origin = file.display().to_string();
    let mut keys = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        if let Some(key) = jwk_entry(index, entry, &origin, allowed)? {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// One JWKS entry: `Ok(None)` when the key is not for verifying (or not allowed).
fn jwk_entry(
    index: usize,
    entry: &Value,
    origin: &str,
    allowed: &[Algorithm],
) -> Result<Option<VerifyKey>, AuthConfigError> {
    let kid = match entry.get("kid") {
        None => None,
        Some(Value::String(kid)) if !kid.is_empty() => Some(kid.clone()),
        Some(_) => None,
    };
    let label = kid.clone().unwrap_or_else(|| format!("#{index}"));
    let fail = |reason: String| AuthConfigError::Key {
        origin: origin.to_owned(),
        key: label.clone(),
        reason,
    };
    if !entry.is_object() {
        return Err(fail("not a JSON object".to_owned()));
    }
    if entry.get("kid").is_some() && kid.is_none() {
        return Err(fail("`kid` is not a non-empty string".to_owned()));
    }
    match entry.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Ok(None),
    }
    if let Some(ops) = entry.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Ok(None);
        }
    }
    let alg = match entry.get("alg") {
        Some(Value::String(name)) => {
            parse_alg(name).ok_or_else(|| fail(format!("unsupported alg `{name}`")))?
        }
        Some(_) => return Err(fail("`alg` is not a string".to_owned())),
        None => default_alg(entry)
            .ok_or_else(|| fail("no `alg`, and none is implied by its `kty`/`crv`".to_owned()))?,
    };
    if !allowed.contains(&alg) {
        tracing::debug!(origin, key = %label, alg = alg_name(alg), "JWKS key skipped: alg not allowed");
        return Ok(None);
    }
    let jwk: Jwk =
        serde_json::from_value(entry.clone()).map_err(|e| fail(format!("invalid JWK: {e}")))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| fail(format!("invalid JWK: {e}")))?;
    let key = checked_key(alg, key).map_err(fail)?;
    Ok(Some(VerifyKey { kid, alg, key }))
}

/// The algorithm implied by a JWK without `alg`.
fn default_alg(entry: &Value) -> Option<Algorithm> {
    match (
        entry.get("kty").and_then(Value::as_str),
        entry.get("crv").and_then(Value::as_str),
    ) {
        (Some("RSA"), _) => Some(Algorithm::RS256),
        (Some("EC"), Some("P-256")) => Some(Algorithm::ES256),
        (Some("EC"), Some("P-384")) => Some(Algorithm::ES384),
        (Some("OKP"), Some("Ed25519")) => Some(Algorithm::EdDSA),
        (Some("oct"), _) => Some(Algorithm::HS256),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    /// Test-only key material under `src/auth/testdata/`.
    pub(crate) fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/auth/testdata")
            .join(name)
    }

    pub(crate) fn read_testdata(name: &str) -> Vec<u8> {
        std::fs::read(testdata(name)).expect("testdata file")
    }

    /// The public JWK of a test private key, with `kid` and `alg`.
    pub(crate) fn public_jwk(private_pem: &str, alg: Algorithm, kid: &str) -> Value {
        let pem = read_testdata(private_pem);
        let enc = match alg.family() {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(&pem),
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(&pem),
            AlgorithmFamily::Ed => EncodingKey::from_ed_pem(&pem),
            AlgorithmFamily::Hmac => panic!("no PEM for HMAC"),
        }
        .expect("private key");
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&enc, alg).expect("jwk")).expect("json");
        jwk["kid"] = json!(kid);
        jwk
    }

    const ALL: [Algorithm; 4] = [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ];

    fn entry(value: Value) -> Result<Option<VerifyKey>, AuthConfigError> {
        jwk_entry(0, &value, "keys/jwks.json", &ALL)
    }

    #[test]
    fn jwks_entry_per_algorithm() {
        for (pem, alg) in [
            ("rsa_private.pem", Algorithm::RS256),
            ("ec_private.pem", Algorithm::ES256),
            ("ed_private.pem", Algorithm::EdDSA),
        ] {
            let key = entry(public_jwk(pem, alg, "k"))
                .expect("loads")
                .expect("kept");
            assert_eq!(key.alg, alg);
            assert_eq!(key.kid.as_deref(), Some("k"));
        }
    }

    #[test]
    fn jwks_unsupported_alg_names_file_key_and_alg() {
        let mut jwk = public_jwk("rsa_private.pem", Algorithm::RS256, "k1");
        jwk["alg"] = json!("HS999");
        let err = entry(jwk).err().expect("refused");
        assert_eq!(
            err.to_string(),
            "`keys/jwks.json`: key `k1`: unsupported alg `HS999`"
        );
    }

    #[test]
    fn jwks_skips_encryption_and_disallowed_keys() {
        let mut enc = public_jwk("rsa_private.pem", Algorithm::RS256, "k");
        enc["use"] = json!("enc");
        assert!(entry(enc).expect("ok").is_none());
        let mut ops = public_jwk("rsa_private.pem", Algorithm::RS256, "k");
        ops["key_ops"] = json!(["encrypt"]);
        assert!(entry(ops).expect("ok").is_none());
        let mut ps = public_jwk("rsa_private.pem", Algorithm::RS256, "k");
        ps["alg"] = json!("PS256");
        assert!(entry(ps).expect("ok").is_none());
    }

    #[test]
    fn jwks_alg_must_match_key_type() {
        let mut jwk = public_jwk("rsa_private.pem", Algorithm::RS256, "k");
        jwk["alg"] = json!("ES256");
        assert!(entry(jwk).is_err());
        // An RSA key declared as HS256 must never become an HMAC secret.
        let mut jwk = public_jwk("rsa_private.pem", Algorithm::RS256, "k");
        jwk["alg"] = json!("HS256");
        assert!(entry(jwk).is_err());
    }

    #[test]
    fn jwks_alg_implied_by_kty() {
        let mut jwk = public_jwk("ec_private.pem", Algorithm::ES256, "k");
        jwk.as_object_mut().expect("object").remove("alg");
        assert_eq!(entry(jwk).expect("ok").expect("kept").alg, Algorithm::ES256);
    }

    #[test]
    fn short_eddsa_key_is_refused_without_panic() {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": "AAAA"});
        assert!(entry(jwk).is_err());
    }

    #[test]
    fn invalid_ec_point_is_refused() {
        let mut jwk = public_jwk("ec_private.pem", Algorithm::ES256, "k");
        jwk["y"] = jwk["x"].clone();
        assert!(entry(jwk).is_err());
    }

    #[test]
    fn short_hmac_secret_is_refused() {
        let jwk = json!({"kty": "oct", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(b"short")});
        let err = entry(jwk).err().expect("refused").to_string();
        assert!(err.contains("needs at least 32"), "{err}");
    }

    #[test]
    fn weak_rsa_key_is_refused() {
        let n = URL_SAFE_NO_PAD.encode([0xff_u8; 128]);
        let jwk = json!({"kty": "RSA", "alg": "RS256", "n": n, "e": "AQAB"});
        let err = entry(jwk).err().expect("refused").to_string();
        assert!(err.contains("1024 bits"), "{err}");
    }

    #[test]
    fn rsa_pem_is_normalised_to_components() {
        let key = DecodingKey::from_rsa_pem(&read_testdata("rsa_public.pem")).expect("pem");
        let key = checked_key(Algorithm::RS256, key).expect("valid");
        assert!(matches!(
            key.kind(),
            DecodingKeyKind::RsaModulusExponent { .. }
        ));
    }

    #[test]
    fn p384_key_is_not_an_es256_key() {
        let key = DecodingKey::from_ec_pem(&read_testdata("p384_public.pem")).expect("pem");
        assert!(checked_key(Algorithm::ES256, key).is_err());
    }

    #[test]
    fn inline_key_shape_errors() {
        let dir = Path::new("/cfg");
        let check = |key: JwtKeyConfig, allowed: &[Algorithm]| {
            inline_key(0, &key, dir, allowed)
                .err()
                .map(|e| e.to_string())
        };
        let hs = |f: fn(&mut JwtKeyConfig)| {
            let mut k = JwtKeyConfig {
                kid: Some("dev".to_owned()),
                alg: "HS256".to_owned(),
                ..JwtKeyConfig::default()
            };
            f(&mut k);
            k
        };
        let err = check(hs(|_| {}), &ALL).expect("no secret");
        assert!(
            err.starts_with("`auth.jwt.keys[0]`: key `dev`: no secret"),
            "{err}"
        );
        let both = hs(|k| {
            k.secret = Some("x".into());
            k.secret_env = Some("Y".into());
        });
        assert!(check(both, &ALL)
            .expect("two secrets")
            .contains("more than one"));
        let pem = hs(|k| k.public_key_file = Some("k.pem".into()));
        assert!(check(pem, &ALL).is_some());
        let unknown = hs(|k| {
            k.alg = "HS999".into();
            k.secret = Some("x".into());
        });
        assert_eq!(
            check(unknown, &ALL).expect("bad alg"),
            "`auth.jwt.keys[0]`: key `dev`: unsupported alg `HS999`"
        );
        let not_allowed = hs(|k| k.secret = Some("x".into()));
        assert!(check(not_allowed, &[Algorithm::RS256])
            .expect("not allowed")
            .contains("not in `auth.jwt.algorithms`"));
        let rs_secret = hs(|k| {
            k.alg = "RS256".into();
            k.secret = Some("x".into());
        });
        assert!(check(rs_secret, &ALL).is_some());
    }

    #[test]
    fn secret_file_trailing_newline_is_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = "0123456789abcdef0123456789abcdef";
        std::fs::write(dir.path().join("secret"), format!("{secret}\n")).expect("write");
        let cfg = JwtKeyConfig {
            alg: "HS256".into(),
            secret_file: Some("secret".into()),
            ..JwtKeyConfig::default()
        };
        let inline = inline_key(0, &cfg, dir.path(), &ALL).expect("shape");
        let key = load_inline(&inline).expect("loads");
        assert_eq!(
            key.key.try_get_as_bytes().expect("bytes"),
            secret.as_bytes()
        );
    }

    #[test]
    fn missing_file_error_names_the_file() {
        let cfg = JwtKeyConfig {
            alg: "RS256".into(),
            public_key_file: Some("nope/rs.pem".into()),
            ..JwtKeyConfig::default()
        };
        let inline = inline_key(0, &cfg, Path::new("/nonexistent"), &ALL).expect("shape");
        let err = load_inline(&inline).err().expect("fails").to_string();
        assert!(
            err.starts_with("`/nonexistent/nope/rs.pem`: cannot read"),
            "{err}"
        );
    }
}
