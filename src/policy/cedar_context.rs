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
