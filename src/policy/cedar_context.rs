//! The request context (`context.*` in policies), built as Cedar's evaluated values.
//!
//! Why: `Context::from_pairs` takes restricted expressions and has Cedar evaluate the
//! whole record on every request: each string, the session record, the taint set, and
//! the `datetime` and `ip` extension values, which Cedar parses again from their text.
//! That was about a third of a decision. Here the record is built directly from values
//! (`cedar-policy-core`'s `Value`, what that evaluation produces), and the extension
//! values come evaluated from a small cache (per second, per address,
//! `extension_cache.rs`). The arguments are converted by `convert.rs` (the one mapping
//! from JSON, which gives `__entity` and friends no meaning) straight into values.
//!
//! The shape (see `cedar.rs`'s module docs): `arguments`, `time`, `datetime`, optional
//! `source_ip`, `session { id, taints }`, `protocol_version`, optional `agent`, optional
//! `mtls { spiffe_id, dns, subject, fingerprint }`. A test holds the result equal to
//! `Context::from_pairs` over the same attributes as expressions.

use std::time::UNIX_EPOCH;

use cedar_policy::Context;
use cedar_policy_core::ast::{self, Value, ValueKind};

use super::BuildError;
use crate::auth::{ClientCert, Identity};
use crate::mcp::McpAction;
use crate::policy::convert;
use crate::policy::extension_cache::ExtensionCache;
use crate::policy::RequestEnv;

/// An attribute Cedar could not evaluate: the context cannot be built (a deny).
fn context_error(e: impl std::fmt::Display) -> BuildError {
    BuildError::Context {
        message: e.to_string(),
    }
}

/// The `context.arguments` record of `action` (`{}` for actions without arguments).
pub(super) fn arguments(action: &McpAction) -> Result<Value, BuildError> {
    match action {
        McpAction::CallTool { arguments, .. } | McpAction::GetPrompt { arguments, .. } => {
            Ok(convert::object_to_value(arguments, "arguments")?)
        }
        _ => Ok(Value::empty_record(None)),
    }
}

/// The request's Unix time in whole seconds (0 before the epoch).
fn unix_secs(env: &RequestEnv) -> i64 {
    env.time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn string(s: &str) -> Value {
    Value::from(s)
}

/// The context of a request by `identity` in `env` with `arguments`.
pub(super) fn build(
    extensions: &ExtensionCache,
    identity: &Identity,
    env: &RequestEnv,
    arguments: Value,
) -> Result<Context, BuildError> {
    let secs = unix_secs(env);
    let mut record = Vec::with_capacity(8);
    record.push(("arguments", arguments));
    record.push(("time", Value::from(secs)));
    record.push((
        "datetime",
        extensions.datetime(secs).map_err(context_error)?,
    ));
    if let Some(ip) = env.source_ip {
        record.push(("source_ip", extensions.ip(ip).map_err(context_error)?));
    }
    let session = Value::record(
        [
            ("id", string(env.session_id.as_deref().unwrap_or_default())),
            (
                "taints",
                Value::set(env.taints.iter().map(|t| string(t)), None),
            ),
        ],
        None,
    );
    record.push(("session", session));
    record.push((
        "protocol_version",
        string(env.protocol_version.as_deref().unwrap_or_default()),
    ));
    if let Some(agent) = &identity.agent {
        record.push(("agent", string(agent)));
    }
    if let Some(cert) = &env.mtls {
        record.push(("mtls", mtls(cert)));
    }
    match ValueKind::record(record) {
        ValueKind::Record(attributes) => Ok(Context::from(ast::Context::Value(attributes))),
        _ => unreachable!("`ValueKind::record` makes a record"),
    }
}

/// The attributes [`build`] can put in a context (a test holds it to `build`).
#[cfg(test)]
const ATTRIBUTES: &[&str] = &[
    "arguments",
    "time",
    "datetime",
    "source_ip",
    "session",
    "protocol_version",
    "agent",
    "mtls",
];

/// Writes into `out` what the context attributes `attrs` (every one if `None`) are built
/// from, for a request by `identity` in `env` with no arguments (a list's context): two
/// requests that write the same bytes have the same values in those attributes. Every
/// part is tagged and length-prefixed, so different inputs never write the same bytes;
/// the bytes may tell apart inputs that build the same value (an absent session id and
/// an empty one), which costs a cache miss, never a wrong answer. It is the key under
/// which a listing answer that reads only `attrs` is reused across lists
/// (`cedar_listing.rs`); `arguments` is `{}` in every list's context, so it writes nothing.
pub(super) fn write_inputs(
    identity: &Identity,
    env: &RequestEnv,
    attrs: Option<&[String]>,
    out: &mut Vec<u8>,
) {
    let reads = |name: &str| attrs.is_none_or(|attrs| attrs.iter().any(|a| a == name));
    fn text(out: &mut Vec<u8>, value: Option<&str>) {
        match value {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                out.extend_from_slice(&(value.len() as u64).to_le_bytes());
                out.extend_from_slice(value.as_bytes());
            }
        }
    }
    if reads("time") || reads("datetime") {
        out.push(b't');
        out.extend_from_slice(&unix_secs(env).to_le_bytes());
    }
    if reads("source_ip") {
        out.push(b'i');
        match env.source_ip {
            None => out.push(0),
            Some(std::net::IpAddr::V4(ip)) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
            Some(std::net::IpAddr::V6(ip)) => {
                out.push(6);
                out.extend_from_slice(&ip.octets());
            }
        }
    }
    if reads("session") {
        out.push(b's');
        text(out, env.session_id.as_deref());
        out.extend_from_slice(&(env.taints.len() as u64).to_le_bytes());
        for taint in &env.taints {
            text(out, Some(taint));
        }
    }
    if reads("protocol_version") {
        out.push(b'p');
        text(out, env.protocol_version.as_deref());
    }
    if reads("agent") {
        out.push(b'a');
        text(out, identity.agent.as_deref());
    }
    if reads("mtls") {
        out.push(b'm');
        match &env.mtls {
            None => out.push(0),
            Some(cert) => {
                out.push(1);
                text(out, cert.spiffe_id.as_deref());
                out.extend_from_slice(&(cert.dns.len() as u64).to_le_bytes());
                for name in &cert.dns {
                    text(out, Some(name));
                }
                text(out, Some(&cert.subject));
                text(out, Some(&cert.fingerprint));
            }
        }
    }
}

/// `context.mtls`: the connection's verified client certificate (`spiffe_id` is `""`
/// when the certificate has none).
fn mtls(cert: &ClientCert) -> Value {
    Value::record(
        [
            (
                ("spiffe_id"),
                string(cert.spiffe_id.as_deref().unwrap_or("")),
            ),
            (
                ("dns"),
                Value::set(cert.dns.iter().map(|d| string(d)), None),
            ),
            ("subject", string(&cert.subject)),
            ("fingerprint", string(&cert.fingerprint)),
        ],
        None,
    )
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use cedar_policy::RestrictedExpression;

    use super::super::tests::{env, user};
    use super::*;
    use crate::policy::extension_cache::{evaluate, rfc3339_utc};

    /// The context as `Context::from_pairs` builds it from expressions: what [`build`]
    /// must equal.
    fn reference(
        identity: &Identity,
        env: &RequestEnv,
        arguments: RestrictedExpression,
    ) -> Context {
        let secs = unix_secs(env);
        let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
        let mut pairs = vec![
            ("arguments".to_owned(), arguments),
            ("time".to_owned(), RestrictedExpression::new_long(secs)),
            (
                "datetime".to_owned(),
                RestrictedExpression::new_datetime(rfc3339_utc(secs)),
            ),
        ];
        if let Some(ip) = env.source_ip {
            pairs.push((
                "source_ip".to_owned(),
                RestrictedExpression::new_ip(ip.to_canonical().to_string()),
            ));
        }
        let session = RestrictedExpression::new_record([
            (
                "id".to_owned(),
                string(env.session_id.as_deref().unwrap_or_default()),
            ),
            (
                "taints".to_owned(),
                RestrictedExpression::new_set(env.taints.iter().map(|t| string(t))),
            ),
        ])
        .unwrap();
        pairs.push(("session".to_owned(), session));
        pairs.push((
            "protocol_version".to_owned(),
            string(env.protocol_version.as_deref().unwrap_or_default()),
        ));
        if let Some(agent) = &identity.agent {
            pairs.push(("agent".to_owned(), string(agent)));
        }
        if let Some(cert) = &env.mtls {
            let mtls = RestrictedExpression::new_record([
                (
                    "spiffe_id".to_owned(),
                    string(cert.spiffe_id.as_deref().unwrap_or("")),
                ),
                (
                    "dns".to_owned(),
                    RestrictedExpression::new_set(cert.dns.iter().map(|d| string(d))),
                ),
                ("subject".to_owned(), string(&cert.subject)),
                ("fingerprint".to_owned(), string(&cert.fingerprint)),
            ])
            .unwrap();
            pairs.push(("mtls".to_owned(), mtls));
        }
        Context::from_pairs(pairs).unwrap()
    }

    fn identity(agent: Option<&str>) -> Identity {
        Identity {
            agent: agent.map(str::to_owned),
            ..user("alice", &["staff"])
        }
    }

    #[test]
    fn the_context_equals_cedars_evaluation_of_the_same_record() {
        let cert = Arc::new(ClientCert {
            spiffe_id: Some("spiffe://example.org/agent".to_owned()),
            dns: vec![
                "b.example".to_owned(),
                "a.example".to_owned(),
                "a.example".to_owned(),
            ],
            subject: "agent".to_owned(),
            fingerprint: "ab".repeat(32),
            x5t_s256: String::new(),
        });
        let no_spiffe = Arc::new(ClientCert {
            spiffe_id: None,
            dns: Vec::new(),
            ..(*cert).clone()
        });
        let ips: [Option<IpAddr>; 4] = [
            None,
            Some("10.1.2.3".parse().unwrap()),
            Some("::ffff:203.0.113.9".parse().unwrap()),
            Some("2001:db8::1".parse().unwrap()),
        ];
        let arguments = [
            serde_json::json!({}),
            serde_json::json!({"city": "Paris", "days": 3, "nested": {"a": [1, 2, 2, "x"]}, "gone": null, "x": 0.5}),
        ];
        let extensions = ExtensionCache::new();
        let mut checked = 0;
        for (i, ip) in ips.iter().enumerate() {
            for mtls in [None, Some(&cert), Some(&no_spiffe)] {
                for agent in [None, Some("agent-1")] {
                    for args in &arguments {
                        let env = RequestEnv {
                            time: SystemTime::UNIX_EPOCH
                                + Duration::from_secs(1_700_000_000 + i as u64),
                            source_ip: *ip,
                            session_id: (i % 2 == 0).then(|| "s-1".to_owned()),
                            taints: if i % 2 == 0 {
                                Vec::new()
                            } else {
                                vec!["pii".to_owned(), "secret\u{e9}".to_owned()]
                            },
                            protocol_version: (i > 1).then(|| "2025-11-25".to_owned()),
                            mtls: mtls.cloned(),
                        };
                        let identity = identity(agent);
                        let expr = convert::object_to_record(args, "arguments").unwrap();
                        let value = convert::object_to_value(args, "arguments").unwrap();
                        assert_eq!(Ok(&value), evaluate(&expr).as_ref());
                        let built = build(&extensions, &identity, &env, value).unwrap();
                        assert_eq!(built, reference(&identity, &env, expr), "{env:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 48);
    }

    /// Requests that differ from one another in one input each (and the base request).
    fn variants() -> Vec<(Identity, RequestEnv)> {
        let cert = ClientCert {
            spiffe_id: Some("spiffe://example.org/agent".to_owned()),
            dns: vec!["a.example".to_owned()],
            subject: "agent".to_owned(),
            fingerprint: "ab".repeat(32),
            x5t_s256: String::new(),
        };
        let base = RequestEnv {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            source_ip: Some("10.1.2.3".parse().unwrap()),
            session_id: Some("s-1".to_owned()),
            taints: vec!["pii".to_owned()],
            protocol_version: Some("2025-11-25".to_owned()),
            mtls: Some(Arc::new(cert.clone())),
        };
        let with = |change: &dyn Fn(&mut RequestEnv)| {
            let mut env = base.clone();
            change(&mut env);
            (identity(Some("agent-1")), env)
        };
        let certs = [
            ClientCert {
                spiffe_id: None,
                ..cert.clone()
            },
            ClientCert {
                dns: vec!["a.example".to_owned(), "b.example".to_owned()],
                ..cert.clone()
            },
            ClientCert {
                subject: "other".to_owned(),
                ..cert.clone()
            },
            ClientCert {
                fingerprint: "cd".repeat(32),
                ..cert.clone()
            },
        ];
        let mut out = vec![
            (identity(Some("agent-1")), base.clone()),
            (identity(None), base.clone()),
            (identity(Some("agent-2")), base.clone()),
            with(&|e| e.time += Duration::from_secs(1)),
            with(&|e| e.time += Duration::from_millis(300)),
            with(&|e| e.source_ip = None),
            with(&|e| e.source_ip = Some("10.1.2.4".parse().unwrap())),
            with(&|e| e.source_ip = Some("2001:db8::1".parse().unwrap())),
            with(&|e| e.session_id = None),
            with(&|e| e.session_id = Some(String::new())),
            with(&|e| e.session_id = Some("s-2".to_owned())),
            with(&|e| e.taints = Vec::new()),
            with(&|e| e.taints = vec!["pii".to_owned(), "secret".to_owned()]),
            with(&|e| e.taints = vec!["piisecret".to_owned()]),
            with(&|e| e.protocol_version = None),
            with(&|e| e.protocol_version = Some("2025-06-18".to_owned())),
            with(&|e| e.mtls = None),
        ];
        for cert in certs {
            out.push(with(&|e| e.mtls = Some(Arc::new(cert.clone()))));
        }
        out
    }

    #[test]
    fn equal_inputs_build_equal_attributes() {
        let extensions = ExtensionCache::new();
        let requests = variants();
        let built: Vec<Context> = requests
            .iter()
            .map(|(identity, env)| {
                build(&extensions, identity, env, Value::empty_record(None)).unwrap()
            })
            .collect();
        for context in &built {
            for (name, _) in context.clone() {
                assert!(ATTRIBUTES.contains(&name.as_str()), "{name} is not listed");
            }
        }
        let key = |(identity, env): &(Identity, RequestEnv), attrs: Option<&[String]>| {
            let mut out = Vec::new();
            write_inputs(identity, env, attrs, &mut out);
            out
        };
        let mut told_apart = 0;
        for attr in ATTRIBUTES {
            let attrs = [(*attr).to_owned()];
            for (a, context_a) in requests.iter().zip(&built) {
                for (b, context_b) in requests.iter().zip(&built) {
                    if key(a, Some(&attrs)) == key(b, Some(&attrs)) {
                        assert_eq!(context_a.get(attr), context_b.get(attr), "{attr}");
                    } else {
                        told_apart += 1;
                    }
                    if key(a, None) == key(b, None) {
                        assert_eq!(context_a, context_b);
                    }
                }
            }
        }
        // Each variant is told apart from the others by the attribute it changes.
        assert!(told_apart >= 2 * (requests.len() - 1), "{told_apart}");
    }

    #[test]
    fn a_time_cedar_cannot_write_fails_the_context() {
        // Before 1970 reads as 0; after year 9999 `rfc3339_utc` gives "" and Cedar
        // refuses to evaluate `datetime("")`.
        let env = RequestEnv {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(300_000_000_000),
            ..env()
        };
        let built = build(
            &ExtensionCache::new(),
            &identity(None),
            &env,
            Value::empty_record(None),
        );
        assert!(
            matches!(built, Err(BuildError::Context { .. })),
            "{built:?}"
        );
    }
}
