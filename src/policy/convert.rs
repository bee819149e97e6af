//! JSON → Cedar values, for tool arguments, credential claims and annotations.
//!
//! Every value is built with `RestrictedExpression` constructors, never through Cedar's
//! JSON entity format: that format gives the keys `__entity` and `__extn` a meaning, so a
//! client could send `{"__entity": {"type": "User", "id": "admin"}}` as an argument and
//! have it read as an entity reference. Built this way, it stays an ordinary record.
//!
//! The mapping:
//! - integers that fit an `i64` → `Long`;
//! - every other number (fractions, exponents, integers beyond `i64`) → the `String` of
//!   its JSON spelling (`0.5` → `"0.5"`), since Cedar has no floating point;
//! - `null` → the attribute (or set element) is left out, so `has` is false for it;
//! - strings and booleans → `String` and `Bool`;
//! - arrays → `Set` (duplicates collapse, order is lost);
//! - objects → `Record`.
//!
//! Nesting is bounded by [`MAX_DEPTH`]: a deeper value is a [`ConvertError`], which the
//! engine turns into a deny (fail closed) rather than a silently truncated value.

use cedar_policy::RestrictedExpression;
use cedar_policy_core::ast;
use serde_json::{Map, Value};

/// What a converted value is built as: a `RestrictedExpression` (entity attributes,
/// which Cedar evaluates when it builds the entity) or the value Cedar's evaluation of
/// that expression gives (the request context, built per request, `cedar_context.rs`).
/// One walk over the JSON serves both, so the two cannot disagree on the mapping.
trait Build: Sized {
    fn bool(b: bool) -> Self;
    fn long(i: i64) -> Self;
    fn string(s: &str) -> Self;
    fn set(elements: Vec<Self>) -> Self;
    fn record(fields: Vec<(String, Self)>) -> Result<Self, String>;
}

impl Build for RestrictedExpression {
    fn bool(b: bool) -> Self {
        RestrictedExpression::new_bool(b)
    }
    fn long(i: i64) -> Self {
        RestrictedExpression::new_long(i)
    }
    fn string(s: &str) -> Self {
        RestrictedExpression::new_string(s.to_owned())
    }
    fn set(elements: Vec<Self>) -> Self {
        RestrictedExpression::new_set(elements)
    }
    fn record(fields: Vec<(String, Self)>) -> Result<Self, String> {
        RestrictedExpression::new_record(fields).map_err(|e| e.to_string())
    }
}

impl Build for ast::Value {
    fn bool(b: bool) -> Self {
        ast::Value::from(b)
    }
    fn long(i: i64) -> Self {
        ast::Value::from(i)
    }
    fn string(s: &str) -> Self {
        ast::Value::from(s)
    }
    fn set(elements: Vec<Self>) -> Self {
        ast::Value::set(elements, None)
    }
    fn record(fields: Vec<(String, Self)>) -> Result<Self, String> {
        // The keys of a JSON object are distinct: no duplicate to refuse.
        Ok(ast::Value::record(fields, None))
    }
}

/// How deeply nested (objects and arrays) a converted value may be. The outermost
/// object counts as level 1.
pub const MAX_DEPTH: usize = 32;

/// A JSON value could not be turned into a Cedar value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The value nests objects/arrays deeper than [`MAX_DEPTH`].
    #[error("`{what}` is nested deeper than {max} levels")]
    TooDeep {
        /// Which value (`arguments`, `claims`, `annotations`).
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// The value must be a JSON object (or absent) but is something else.
    #[error("`{what}` must be a JSON object, not {found}")]
    NotAnObject {
        /// Which value.
        what: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// Cedar refused to build the record (e.g. a duplicate key).
    #[error("`{what}` cannot be represented in Cedar: {message}")]
    Construction {
        /// Which value.
        what: &'static str,
        /// Cedar's message.
        message: String,
    },
}

/// Converts a JSON object (or `null`, read as `{}`) into a Cedar record (the reference
/// [`object_to_value`] is tested against).
#[cfg(test)]
pub fn object_to_record(
    value: &Value,
    what: &'static str,
) -> Result<RestrictedExpression, ConvertError> {
    object(value, what)
}

/// [`object_to_record`] as the value Cedar evaluates that record to.
pub(crate) fn object_to_value(
    value: &Value,
    what: &'static str,
) -> Result<ast::Value, ConvertError> {
    object(value, what)
}

fn object<T: Build>(value: &Value, what: &'static str) -> Result<T, ConvertError> {
    match value {
        Value::Object(map) => record(map, what, 1),
        Value::Null => record_of(Vec::new(), what),
        other => Err(ConvertError::NotAnObject {
            what,
            found: json_type(other),
        }),
    }
}

/// Converts a JSON object map into a Cedar record.
pub fn map_to_record(
    map: &Map<String, Value>,
    what: &'static str,
) -> Result<RestrictedExpression, ConvertError> {
    record(map, what, 1)
}

fn record_of<T: Build>(fields: Vec<(String, T)>, what: &'static str) -> Result<T, ConvertError> {
    T::record(fields).map_err(|message| ConvertError::Construction { what, message })
}

/// Converts one JSON value at nesting level `depth`; `Ok(None)` for `null`.
fn value<T: Build>(v: &Value, what: &'static str, depth: usize) -> Result<Option<T>, ConvertError> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Bool(b) => T::bool(*b),
        Value::String(s) => T::string(s),
        Value::Number(n) => match n.as_i64() {
            Some(i) => T::long(i),
            None => T::string(&n.to_string()),
        },
        Value::Array(items) => {
            check_depth(what, depth)?;
            let mut elements = Vec::with_capacity(items.len());
            for item in items {
                if let Some(e) = value(item, what, depth + 1)? {
                    elements.push(e);
                }
            }
            T::set(elements)
        }
        Value::Object(map) => record(map, what, depth)?,
    }))
}

fn record<T: Build>(
    map: &Map<String, Value>,
    what: &'static str,
    depth: usize,
) -> Result<T, ConvertError> {
    check_depth(what, depth)?;
    let mut fields = Vec::with_capacity(map.len());
    for (k, v) in map {
        if let Some(e) = value(v, what, depth + 1)? {
            fields.push((k.clone(), e));
        }
    }
    record_of(fields, what)
}

/// Whether [`map_to_record`] would convert `map`: its nesting stays within
/// [`MAX_DEPTH`] (the only way a record built from a JSON map can fail). Cheap; for
/// callers that only need to know the conversion would succeed.
pub fn convertible(map: &Map<String, Value>) -> bool {
    record_fits(map, 1)
}

fn record_fits(map: &Map<String, Value>, depth: usize) -> bool {
    depth <= MAX_DEPTH && map.values().all(|v| value_fits(v, depth + 1))
}

fn value_fits(v: &Value, depth: usize) -> bool {
    match v {
        Value::Array(items) => depth <= MAX_DEPTH && items.iter().all(|i| value_fits(i, depth + 1)),
        Value::Object(map) => record_fits(map, depth),
        _ => true,
    }
}

fn check_depth(what: &'static str, depth: usize) -> Result<(), ConvertError> {
    if depth > MAX_DEPTH {
        Err(ConvertError::TooDeep {
            what,
            max: MAX_DEPTH,
        })
    } else {
        Ok(())
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The converted value, as Cedar prints it inside a context: `{v: …}`.
    fn show(v: &Value) -> String {
        let record = object_to_record(v, "arguments").unwrap();
        cedar_policy::Context::from_pairs([("v".to_owned(), record)])
            .unwrap()
            .to_string()
    }

    #[test]
    fn scalars_map_to_cedar_types() {
        let s = show(&json!({"i": 7, "neg": -3, "b": true, "s": "x"}));
        assert_eq!(s, r#"{v: {b: true, i: 7, neg: -3, s: "x"}}"#);
    }

    #[test]
    fn floats_and_huge_integers_become_strings() {
        let s = show(&json!({"f": 0.5, "big": 18446744073709551615u64}));
        assert_eq!(s, r#"{v: {big: "18446744073709551615", f: "0.5"}}"#);
    }

    #[test]
    fn null_is_omitted_and_arrays_are_sets() {
        let s = show(&json!({"gone": null, "set": [1, null, 2], "o": {"n": null}}));
        assert_eq!(s, "{v: {o: {}, set: [1, 2]}}");
    }

    #[test]
    fn entity_escape_stays_a_record() {
        let s = show(&json!({"x": {"__entity": {"type": "User", "id": "admin"}}}));
        assert_eq!(s, r#"{v: {x: {__entity: {id: "admin", type: "User"}}}}"#);
        let s = show(&json!({"x": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}}));
        assert_eq!(s, r#"{v: {x: {__extn: {arg: "10.0.0.1", fn: "ip"}}}}"#);
    }

    #[test]
    fn depth_is_bounded() {
        let mut v = json!(1);
        for _ in 0..MAX_DEPTH {
            v = json!({ "a": v });
        }
        assert!(object_to_record(&v, "arguments").is_ok());
        let deeper = json!({ "a": v });
        assert_eq!(
            object_to_record(&deeper, "arguments").unwrap_err(),
            ConvertError::TooDeep {
                what: "arguments",
                max: MAX_DEPTH
            }
        );
    }

    #[test]
    fn convertible_says_what_map_to_record_does() {
        let nest = |mut v: Value, levels: usize, array: bool| {
            for _ in 0..levels {
                v = if array { json!([v]) } else { json!({ "a": v }) };
            }
            v
        };
        for levels in MAX_DEPTH - 3..MAX_DEPTH + 3 {
            for array in [false, true] {
                let map = json!({ "k": nest(json!(1), levels, array) });
                let map = map.as_object().unwrap();
                assert_eq!(
                    convertible(map),
                    map_to_record(map, "annotations").is_ok(),
                    "{levels} levels, arrays: {array}"
                );
            }
        }
    }

    #[test]
    fn non_objects_are_refused_and_null_is_empty() {
        assert!(matches!(
            object_to_record(&json!([1]), "arguments"),
            Err(ConvertError::NotAnObject { .. })
        ));
        assert_eq!(show(&Value::Null), "{v: {}}");
    }
}
