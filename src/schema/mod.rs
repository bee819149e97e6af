//! Tool arguments checked against the tool's own `inputSchema`.
//!
//! A policy that reads `context.arguments.city == "Paris"` assumes `city` is a string;
//! a server that accepts an array or an object there would run a call the policy never
//! judged. So `tools/call` arguments are validated against the schema the server
//! published (JSON Schema 2020-12, the MCP default, or whatever draft its `$schema`
//! names: draft-07 and earlier, 2019-09) before the policy sees them.
//!
//! Schemas come from the upstream, so they are hostile input too. [`compile`] bounds
//! them before and while compiling ([`SchemaLimits`]): size, nesting depth, number of
//! `$ref`s, length of each `pattern`; references are resolved inside the schema only
//! (never fetched from the network or the disk); patterns are ECMA-262 regexes run on
//! the linear-time `regex` engine (no backtracking, so no ReDoS at call time; its
//! default compiled-size limit applies); and a schema whose compilation takes longer than
//! the time budget is discarded.
//!
//! The validator is [`boon`] (drafts 4, 6, 7, 2019-09 and 2020-12, passes the
//! JSON-Schema-Test-Suite). `jsonschema` was tried first: it turns on `serde_json`'s
//! `float_roundtrip` feature, which rebuilds every crate in the tree that uses
//! `serde_json` (Cedar, Biscuit, rmcp, Pingora's dependents) and changes how the whole
//! proxy parses floats; `boon` adds its own code and nothing else. A schema
//! that fails any of this is [`SchemaError`]: its tool cannot be checked, which makes it
//! unusable under `validation = "enforce"`.
//!
//! Compilation happens once per definition (see [`crate::pins::Catalogue`]), never per
//! call; [`CompiledSchema::check`] is the per-call cost.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

/// What to do with arguments that do not match the tool's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationMode {
    /// Do not check arguments (the default).
    #[default]
    Off,
    /// Check, audit and count mismatches, forward anyway.
    Warn,
    /// Refuse mismatching arguments (`-32602`), calls of tools whose schema cannot be
    /// checked, and calls of tools the proxy has never seen listed.
    Enforce,
}

/// `[arguments]`: checking `tools/call` arguments against the tool's `inputSchema`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArgumentsConfig {
    /// `off` (the default), `warn` or `enforce`.
    pub validation: ValidationMode,
    /// Largest schema accepted, in bytes of canonical JSON.
    pub max_schema_bytes: usize,
    /// Deepest nesting of objects and arrays in a schema.
    pub max_schema_depth: usize,
    /// Most `$ref`/`$dynamicRef` keywords in one schema.
    pub max_refs: usize,
    /// Longest `pattern` (or `patternProperties` key), in bytes.
    pub max_pattern_bytes: usize,
    /// Longest a schema may take to compile; a slower one is discarded.
    #[serde(with = "humantime_serde")]
    pub compile_budget: Duration,
    /// Most validation errors kept per call (for the audit line).
    pub max_errors: usize,
}

impl Default for ArgumentsConfig {
    fn default() -> Self {
        ArgumentsConfig {
            validation: ValidationMode::default(),
            max_schema_bytes: 256 * 1024,
            max_schema_depth: 32,
            max_refs: 128,
            max_pattern_bytes: 1024,
            compile_budget: Duration::from_millis(100),
            max_errors: 8,
        }
    }
}

/// The bounds [`compile`] applies (from [`ArgumentsConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaLimits {
    /// See [`ArgumentsConfig::max_schema_bytes`].
    pub max_bytes: usize,
    /// See [`ArgumentsConfig::max_schema_depth`].
    pub max_depth: usize,
    /// See [`ArgumentsConfig::max_refs`].
    pub max_refs: usize,
    /// See [`ArgumentsConfig::max_pattern_bytes`].
    pub max_pattern_bytes: usize,
    /// See [`ArgumentsConfig::compile_budget`].
    pub budget: Duration,
    /// See [`ArgumentsConfig::max_errors`].
    pub max_errors: usize,
}

impl Default for SchemaLimits {
    fn default() -> Self {
        ArgumentsConfig::default().limits()
    }
}

impl ArgumentsConfig {
    /// The compilation bounds.
    pub fn limits(&self) -> SchemaLimits {
        SchemaLimits {
            max_bytes: self.max_schema_bytes,
            max_depth: self.max_schema_depth,
            max_refs: self.max_refs,
            max_pattern_bytes: self.max_pattern_bytes,
            budget: self.compile_budget,
            max_errors: self.max_errors.max(1),
        }
    }
}

/// Why a schema cannot be used to check arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// Larger than [`SchemaLimits::max_bytes`].
    #[error("schema is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Nested deeper than [`SchemaLimits::max_depth`].
    #[error("schema nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More references than [`SchemaLimits::max_refs`].
    #[error("schema has more than {limit} `$ref`s")]
    TooManyRefs {
        /// The limit.
        limit: usize,
    },
    /// A pattern longer than [`SchemaLimits::max_pattern_bytes`].
    #[error("pattern at `{at}` is {size} bytes, over the limit of {limit}")]
    PatternTooLong {
        /// JSON pointer of the pattern.
        at: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Took longer than [`SchemaLimits::budget`] to compile.
    #[error("schema took {took:?} to compile, over the budget of {budget:?}")]
    OverBudget {
        /// How long it took.
        took: Duration,
        /// The budget.
        budget: Duration,
    },
    /// Not a schema (not an object or boolean), or the schema is invalid, names an
    /// unknown draft, refers outside itself, or has a pattern the engine refuses.
    #[error("schema does not compile: {reason}")]
    Invalid {
        /// The compiler's message.
        reason: String,
    },
}

/// One way the arguments miss the schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArgumentError {
    /// JSON pointer into the arguments (`""` for the arguments object itself).
    pub path: String,
    /// The schema keyword that failed (`type`, `required`, `additionalProperties`, …).
    pub rule: String,
    /// What the validator says, with the offending values replaced by `value` (the
    /// audit line keeps [`ArgumentError::detail`]).
    pub message: String,
    /// The full message, values included (audit only).
    #[serde(skip)]
    pub detail: String,
}

impl std::fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "`{path}`: {} ({})", self.message, self.rule)
    }
}

/// The location the schema is compiled under; the loader refuses every other one.
const SCHEMA_URL: &str = "urn:mcp-warden:input-schema";

/// A schema loader that loads nothing: `$ref`s resolve inside the schema (and to the
/// drafts' own metaschemas, which the crate embeds) or not at all.
struct NoLoader;

impl boon::UrlLoader for NoLoader {
    fn load(&self, url: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Err(format!("`{url}`: references outside the schema are not fetched").into())
    }
}

/// A compiled `inputSchema`.
pub struct CompiledSchema {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
    max_errors: usize,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema").finish_non_exhaustive()
    }
}

impl CompiledSchema {
    /// Check a call's arguments (`null`, an absent `arguments`, reads as `{}`). `Ok` when
    /// they match; otherwise the first few errors.
    pub fn check(&self, arguments: &Value) -> Result<(), Vec<ArgumentError>> {
        let empty = Value::Object(serde_json::Map::new());
        let arguments = if arguments.is_null() {
            &empty
        } else {
            arguments
        };
        let Err(error) = self.schemas.validate(arguments, self.index) else {
            return Ok(());
        };
        let mut errors = Vec::new();
        leaves(&error, self.max_errors, &mut errors);
        if errors.is_empty() {
            errors.push(ArgumentError {
                path: error.instance_location.to_string(),
                rule: "schema".into(),
                message: "arguments do not match the schema".into(),
                detail: error.to_string(),
            });
        }
        Err(errors)
    }
}

/// The innermost failures of a validation error tree, at most `max`.
fn leaves(error: &boon::ValidationError<'_, '_>, max: usize, out: &mut Vec<ArgumentError>) {
    if out.len() >= max {
        return;
    }
    if !error.causes.is_empty() {
        for cause in &error.causes {
            leaves(cause, max, out);
        }
        return;
    }
    use boon::ErrorKind as K;
    let rule = match &error.kind {
        K::AdditionalProperties { .. } => "additionalProperties".to_owned(),
        kind => kind
            .keyword_path()
            .map(|k| k.keyword.to_owned())
            .unwrap_or_else(|| "schema".to_owned()),
    };
    // What the client is told: the rule, not the values it sent (the audit keeps those).
    let message = match &error.kind {
        K::Format { want, .. } => format!("value is not a valid `{want}`"),
        K::Pattern { want, .. } => format!("value does not match pattern `{want}`"),
        K::Minimum { .. }
        | K::Maximum { .. }
        | K::ExclusiveMinimum { .. }
        | K::ExclusiveMaximum { .. }
        | K::MultipleOf { .. }
        | K::PropertyName { .. }
        | K::ContentEncoding { .. }
        | K::ContentMediaType { .. } => format!("value fails `{rule}`"),
        kind => kind.to_string(),
    };
    out.push(ArgumentError {
        path: error.instance_location.to_string(),
        rule,
        message,
        detail: error.kind.to_string(),
    });
}

/// Compile a tool's `inputSchema` within `limits`.
pub fn compile(schema: &Value, limits: &SchemaLimits) -> Result<CompiledSchema, SchemaError> {
    let size = schema.to_string().len();
    if size > limits.max_bytes {
        return Err(SchemaError::TooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    let mut walk = Walk {
        limits,
        refs: 0,
        path: String::new(),
    };
    walk.value(schema, 1)?;
    // The drafts' metaschemas are compiled once per process, on first use: not part of
    // any one schema's budget.
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        let _ = build(&Value::Object(serde_json::Map::new()));
    });
    let started = Instant::now();
    let (schemas, index) = build(schema)?;
    let took = started.elapsed();
    if took > limits.budget {
        return Err(SchemaError::OverBudget {
            took,
            budget: limits.budget,
        });
    }
    Ok(CompiledSchema {
        schemas,
        index,
        max_errors: limits.max_errors,
    })
}

/// Compile without bounds (see [`compile`]). The compiler panics on some hostile
/// input (a pattern over the regex engine's size limit); that is an invalid schema too.
fn build(schema: &Value) -> Result<(boon::Schemas, boon::SchemaIndex), SchemaError> {
    let invalid = |reason: String| SchemaError::Invalid { reason };
    std::panic::catch_unwind(|| {
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V2020_12);
        compiler.use_loader(Box::new(NoLoader));
        compiler
            .add_resource(SCHEMA_URL, schema.clone())
            .map_err(|e| invalid(e.to_string()))?;
        let mut schemas = boon::Schemas::new();
        let index = compiler
            .compile(SCHEMA_URL, &mut schemas)
            .map_err(|e| invalid(e.to_string()))?;
        Ok((schemas, index))
    })
    .unwrap_or_else(|_| Err(invalid("the schema compiler failed on it".into())))
}

/// The checks made before compiling: depth, `$ref` count, pattern length.
struct Walk<'a> {
    limits: &'a SchemaLimits,
    refs: usize,
    path: String,
}

impl Walk<'_> {
    fn value(&mut self, value: &Value, depth: usize) -> Result<(), SchemaError> {
        match value {
            Value::Object(map) => {
                self.depth(depth)?;
                for (key, v) in map {
                    let len = self.path.len();
                    self.path.push('/');
                    self.path.push_str(key);
                    match (key.as_str(), v) {
                        ("$ref" | "$dynamicRef" | "$recursiveRef", _) => {
                            self.refs += 1;
                            if self.refs > self.limits.max_refs {
                                return Err(SchemaError::TooManyRefs {
                                    limit: self.limits.max_refs,
                                });
                            }
                        }
                        ("pattern", Value::String(p)) => self.pattern(p.len())?,
                        ("patternProperties", Value::Object(props)) => {
                            for key in props.keys() {
                                self.pattern(key.len())?;
                            }
                        }
                        _ => {}
                    }
                    self.value(v, depth + 1)?;
                    self.path.truncate(len);
                }
                Ok(())
            }
            Value::Array(items) => {
                self.depth(depth)?;
                for item in items {
                    self.value(item, depth + 1)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn depth(&self, depth: usize) -> Result<(), SchemaError> {
        if depth > self.limits.max_depth {
            return Err(SchemaError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        Ok(())
    }

    fn pattern(&self, size: usize) -> Result<(), SchemaError> {
        if size > self.limits.max_pattern_bytes {
            return Err(SchemaError::PatternTooLong {
                at: self.path.clone(),
                size,
                limit: self.limits.max_pattern_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// Budget large enough for a debug build on a loaded machine: only the test of the
    /// budget itself depends on it.
    pub(crate) fn limits() -> SchemaLimits {
        SchemaLimits {
            budget: Duration::from_secs(600),
            ..SchemaLimits::default()
        }
    }

    fn weather() -> CompiledSchema {
        compile(
            &json!({
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
                "required": ["city"],
                "additionalProperties": false
            }),
            &limits(),
        )
        .unwrap()
    }

    fn rules(r: Result<(), Vec<ArgumentError>>) -> Vec<(String, String)> {
        r.unwrap_err()
            .into_iter()
            .map(|e| (e.path, e.rule))
            .collect()
    }

    #[test]
    fn valid_arguments_pass() {
        let s = weather();
        assert!(s.check(&json!({"city": "Paris"})).is_ok());
        assert!(s.check(&json!({"city": "Paris", "days": 3})).is_ok());
    }

    #[test]
    fn type_confusion_is_caught_with_path_and_rule() {
        let s = weather();
        assert_eq!(
            rules(s.check(&json!({"city": ["Paris", "Berlin"]}))),
            [("/city".to_owned(), "type".to_owned())]
        );
        assert_eq!(
            rules(s.check(&json!({"city": {"name": "Paris"}}))),
            [("/city".to_owned(), "type".to_owned())]
        );
        assert_eq!(
            rules(s.check(&json!({"city": "Paris", "admin": true}))),
            [(String::new(), "additionalProperties".to_owned())]
        );
        assert_eq!(
            rules(s.check(&json!({}))),
            [(String::new(), "required".to_owned())]
        );
        // absent arguments are `{}`: still missing `city`
        assert_eq!(
            rules(s.check(&Value::Null)),
            [(String::new(), "required".to_owned())]
        );
        assert_eq!(
            rules(s.check(&json!({"city": "x", "days": 0}))),
            [("/days".to_owned(), "minimum".to_owned())]
        );
    }

    #[test]
    fn client_message_masks_values_audit_detail_keeps_them() {
        let s = weather();
        let e = s
            .check(&json!({"city": "Paris", "secret_flag": "s3cr3t"}))
            .unwrap_err();
        assert!(!e[0].message.contains("s3cr3t"), "{}", e[0].message);
        assert!(e[0].detail.contains("secret_flag"), "{}", e[0].detail);
    }

    #[test]
    fn draft_07_and_2020_12_both_work() {
        let d7 = compile(
            &json!({"$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object", "properties": {"a": {"type": "array", "items": [{"type": "string"}], "additionalItems": false}}}),
            &limits(),
        )
        .unwrap();
        assert!(d7.check(&json!({"a": ["x"]})).is_ok());
        assert!(d7.check(&json!({"a": ["x", 1]})).is_err());
        let d2020 = compile(
            &json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object", "properties": {"a": {"type": "array", "prefixItems": [{"type": "string"}], "items": false}}}),
            &limits(),
        )
        .unwrap();
        assert!(d2020.check(&json!({"a": ["x"]})).is_ok());
        assert!(d2020.check(&json!({"a": ["x", 1]})).is_err());
    }

    #[test]
    fn local_refs_resolve_remote_ones_are_never_fetched() {
        let local = compile(
            &json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/s"}}, "$defs": {"s": {"type": "string"}}}),
            &limits(),
        )
        .unwrap();
        assert!(local.check(&json!({"a": 1})).is_err());
        for remote in [
            json!({"$ref": "https://example.com/schema.json"}),
            json!({"$ref": "file:///etc/passwd"}),
        ] {
            assert!(matches!(
                compile(&remote, &limits()),
                Err(SchemaError::Invalid { .. })
            ));
        }
    }

    #[test]
    fn hostile_schemas_are_bounded() {
        let small = SchemaLimits {
            max_bytes: 4096,
            max_depth: 8,
            max_refs: 4,
            max_pattern_bytes: 32,
            ..limits()
        };
        let mut deep = json!({"type": "string"});
        for _ in 0..10 {
            deep = json!({"properties": {"a": deep}});
        }
        assert_eq!(
            compile(&deep, &small).unwrap_err(),
            SchemaError::TooDeep { limit: 8 }
        );
        let refs: serde_json::Map<String, Value> = (0..5)
            .map(|i| (format!("p{i}"), json!({"$ref": "#/$defs/s"})))
            .collect();
        assert_eq!(
            compile(
                &json!({"properties": refs, "$defs": {"s": {"type": "string"}}}),
                &small
            )
            .unwrap_err(),
            SchemaError::TooManyRefs { limit: 4 }
        );
        assert!(matches!(
            compile(
                &json!({"properties": {"a": {"pattern": "a".repeat(33)}}}),
                &small
            ),
            Err(SchemaError::PatternTooLong { size: 33, .. })
        ));
        assert!(matches!(
            compile(&json!({"patternProperties": {"b".repeat(40): {}}}), &small),
            Err(SchemaError::PatternTooLong { .. })
        ));
        assert!(matches!(
            compile(&json!({"description": "x".repeat(5000)}), &small),
            Err(SchemaError::TooLarge { .. })
        ));
        // a pattern the regex engine refuses (its compiled size is bounded)
        assert!(matches!(
            compile(&json!({"pattern": "\\w{1000}{1000}"}), &limits()),
            Err(SchemaError::Invalid { .. })
        ));
        // a zero budget discards every schema
        let no_time = SchemaLimits {
            budget: Duration::ZERO,
            ..limits()
        };
        assert!(matches!(
            compile(&json!({"type": "object"}), &no_time),
            Err(SchemaError::OverBudget { .. })
        ));
    }

    #[test]
    fn backtracking_patterns_are_linear_time() {
        // The classic ReDoS pattern: the `regex` engine answers at once.
        let s = compile(
            &json!({"properties": {"a": {"type": "string", "pattern": "^(a+)+$"}}}),
            &limits(),
        )
        .unwrap();
        let hostile = format!("{}!", "a".repeat(10_000));
        assert!(s.check(&json!({ "a": hostile })).is_err());
    }
}
#[cfg(test)]
mod doc_messages {
    use super::*;
    use serde_json::json;

    /// The table of type-confused calls in `docs/src/pinning.md` shows these messages.
    #[test]
    fn the_documented_messages_are_the_ones_sent() {
        let schema = compile(
            &json!({"type": "object", "properties": {"city": {"type": "string"}},
                    "required": ["city"], "additionalProperties": false}),
            &tests::limits(),
        )
        .unwrap();
        let page = include_str!("../../docs/src/pinning.md");
        for (arguments, message) in [
            (
                json!({"city": ["Paris", "Lyon"]}),
                "`/city`: want string, but got array (type)",
            ),
            (
                json!({"city": "Paris", "notes": "x"}),
                "`/`: additionalProperties 'notes' not allowed (additionalProperties)",
            ),
            (json!({}), "`/`: missing properties 'city' (required)"),
        ] {
            let errors = schema.check(&arguments).unwrap_err();
            assert_eq!(errors[0].to_string(), message, "{arguments}");
            assert!(
                page.contains(&format!("invalid arguments: {message}")),
                "docs/src/pinning.md shows `{message}`"
            );
        }
    }
}
