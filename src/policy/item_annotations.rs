//! A list item's `annotations` as the listing rule reads them: the members of the
//! upstream's own object, raw, or a parsed map.
//!
//! Why: a 1,000-tool list answer would otherwise build a `serde_json::Map` per item (an
//! owned key per member, a hashed index) only for the listing rule to read two or three
//! booleans from most of them. The raw form answers those lookups from the text; a map is
//! built only where a whole record is needed (the Cedar entity of the first item of a
//! class, Biscuit facts, the annotation cache's first sight of a tool).
//!
//! The raw form holds only members whose values read without a parser: `true`, `false`,
//! `null` and strings without escapes ([`plain`]). An annotations object with any other
//! value (a number, an escape, a nested value) is read into a map by the filter, as
//! before; either way the values are exactly what `serde_json` reads.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::mcp::raw::{plain, plain_str, Member};

/// The `annotations` object of one list item.
#[derive(Debug, Clone, Copy)]
pub enum ItemAnnotations<'a> {
    /// Parsed (with the operator's overrides, or given by a test).
    Map(&'a Map<String, Value>),
    /// The members of an object of checked text (keys unescaped and unique), every value
    /// [`plain`].
    Raw(&'a [Member<'a>]),
}

impl<'a> From<&'a Map<String, Value>> for ItemAnnotations<'a> {
    fn from(map: &'a Map<String, Value>) -> Self {
        ItemAnnotations::Map(map)
    }
}

/// Whether `raw` (a [`plain`] value) reads as `value`.
fn plain_equals(raw: &str, value: &Value) -> bool {
    match (raw.as_bytes(), value) {
        (b"true", Value::Bool(b)) => *b,
        (b"false", Value::Bool(b)) => !*b,
        (b"null", Value::Null) => true,
        (_, Value::String(s)) => plain_str(raw) == Some(s.as_str()),
        _ => false,
    }
}

impl<'a> ItemAnnotations<'a> {
    /// The boolean declared at `key`: `Some` only for `true` or `false` (as
    /// `Value::as_bool` reads it).
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self {
            ItemAnnotations::Map(map) => map.get(key).and_then(Value::as_bool),
            ItemAnnotations::Raw(members) => match raw_get(members, key)? {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
        }
    }

    /// The value declared at `key`.
    pub fn get(&self, key: &str) -> Option<Cow<'a, Value>> {
        match self {
            ItemAnnotations::Map(map) => map.get(key).map(Cow::Borrowed),
            ItemAnnotations::Raw(members) => plain(raw_get(members, key)?).map(Cow::Owned),
        }
    }

    /// The whole object as a map (built for the raw form).
    pub fn to_map(&self) -> Cow<'a, Map<String, Value>> {
        match self {
            ItemAnnotations::Map(map) => Cow::Borrowed(map),
            ItemAnnotations::Raw(members) => {
                let mut map = Map::with_capacity(members.len());
                for (key, value) in members.iter() {
                    // Every raw value is plain (the variant's rule); `null` stands in for
                    // none, which cannot occur.
                    map.insert(key.to_string(), plain(value).unwrap_or(Value::Null));
                }
                Cow::Owned(map)
            }
        }
    }

    /// Whether this is the same object as `map`: the same keys, each with the value
    /// serde_json reads (member order aside, as `Map` compares).
    pub fn same_as(&self, map: &Map<String, Value>) -> bool {
        match self {
            ItemAnnotations::Map(own) => *own == map,
            ItemAnnotations::Raw(members) => {
                // Annotations are a handful of keys: a scan compares them for less than
                // hashing each (`Map` hashes with SipHash).
                let known = |key: &str| {
                    if map.len() <= 8 {
                        map.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
                    } else {
                        map.get(key)
                    }
                };
                members.len() == map.len()
                    && members.iter().all(|(key, raw)| {
                        known(key.as_ref()).is_some_and(|known| plain_equals(raw, known))
                    })
            }
        }
    }

    /// Whether every value nests shallowly enough to become a Cedar record (the Cedar
    /// conversion's depth limit, [`crate::policy::MAX_DEPTH`]); raw values are scalars.
    pub fn convertible(&self) -> bool {
        match self {
            ItemAnnotations::Map(map) => super::convert::convertible(map),
            ItemAnnotations::Raw(_) => true,
        }
    }
}

/// The raw value of `key` among `members`.
fn raw_get<'a>(members: &[Member<'a>], key: &str) -> Option<&'a str> {
    members
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, value)| *value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::raw::{check, is_plain};

    #[test]
    fn plain_values_read_as_serde_json_reads_them() {
        let text = r#"[true,false,null,"","plain","é€😀","a b",1,"a\"b","\u0041",{},[]]"#;
        let checked = check(text.as_bytes(), 8).unwrap();
        for raw in checked.array(checked.text()).unwrap().iter() {
            let expected: Value = serde_json::from_str(raw).unwrap();
            match plain(raw) {
                Some(value) => {
                    assert_eq!(value, expected, "{raw}");
                    assert!(is_plain(raw), "{raw}");
                    assert!(plain_equals(raw, &expected), "{raw}");
                }
                None => assert!(
                    !is_plain(raw)
                        && !matches!(expected, Value::Bool(_) | Value::Null)
                        && (raw.contains('\\') || !expected.is_string()),
                    "{raw} is plain"
                ),
            }
        }
        assert!(!plain_equals("true", &Value::Bool(false)));
        assert!(!plain_equals("\"1\"", &serde_json::json!(1)));
        assert!(!plain_equals("null", &Value::Bool(false)));
    }

    #[test]
    fn raw_annotations_read_as_their_map() {
        let text =
            r#"{"readOnlyHint":true,"destructiveHint":false,"title":"T","x":null,"h":"yes"}"#;
        let checked = check(text.as_bytes(), 8).unwrap();
        let object = checked.object(checked.text()).unwrap();
        let raw = ItemAnnotations::Raw(object.members());
        let map: Map<String, Value> = serde_json::from_str(text).unwrap();
        let parsed = ItemAnnotations::Map(&map);
        assert_eq!(*raw.to_map(), map);
        assert!(raw.same_as(&map) && parsed.same_as(&map));
        for key in [
            "readOnlyHint",
            "destructiveHint",
            "title",
            "x",
            "h",
            "absent",
        ] {
            assert_eq!(raw.bool(key), parsed.bool(key), "{key}");
            assert_eq!(raw.get(key), parsed.get(key), "{key}");
        }
        let mut other = map.clone();
        other.insert("title".into(), Value::String("U".into()));
        assert!(!raw.same_as(&other));
        other.remove("title");
        assert!(!raw.same_as(&other));
        let mut more = map.clone();
        more.insert("y".into(), Value::Null);
        assert!(!raw.same_as(&more));
    }
}
