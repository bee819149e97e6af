//! Reading an upstream answer without building a tree of it.
//!
//! Why: a list answer is large (35 KB for 100 tools, 347 KB for 1,000) and the filter
//! needs only a few things from it: the ids, the shape of `result`, each item's name and
//! annotations. Building a `serde_json::Value` of the whole answer and writing it back
//! costs more than everything else the proxy does with it. So the answer is read twice
//! without allocating a tree:
//!
//! 1. [`check_strict`] walks every byte under exactly the rules of
//!    [`parse_strict`](super::parse_strict) (duplicate keys compared after unescaping,
//!    nesting depth, lone surrogates, trailing bytes, invalid UTF-8) and builds nothing;
//! 2. [`RawObject`] and [`raw_array`] then split the checked text one level at a time
//!    into members whose values stay raw text (`serde_json::value::RawValue`), so the
//!    filter writes its answer from slices of the upstream's own bytes.
//!
//! A property test (`jsonrpc::props`) holds [`check_strict`] to `parse_strict`'s
//! verdict on every generated input.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::jsonrpc::{bounded, BodyError};

/// Check `bytes` as [`parse_strict`](super::parse_strict) would, without building a
/// value; on success the same bytes as text.
pub fn check_strict(bytes: &[u8], max_depth: usize) -> Result<&str, BodyError> {
    let ctx = Ctx {
        max_depth,
        failure: Cell::new(None),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let checked = Check {
        ctx: &ctx,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match checked {
        Ok(()) => std::str::from_utf8(bytes).map_err(|e| BodyError::Malformed {
            reason: e.to_string(),
        }),
        Err(err) => Err(ctx.failure.take().unwrap_or(BodyError::Malformed {
            reason: err.to_string(),
        })),
    }
}

/// Shared state of one check: the limit and the first structural refusal.
struct Ctx {
    max_depth: usize,
    failure: Cell<Option<BodyError>>,
}

impl Ctx {
    fn fail<E: de::Error>(&self, failure: BodyError) -> E {
        let err = E::custom(&failure);
        self.failure.set(Some(failure));
        err
    }
}

/// Checks one JSON value nested inside `depth` containers.
#[derive(Clone, Copy)]
struct Check<'c> {
    ctx: &'c Ctx,
    depth: usize,
}

impl<'c> Check<'c> {
    /// The check for the children of a container opened at this level.
    fn enter<E: de::Error>(self) -> Result<Check<'c>, E> {
        let depth = self.depth + 1;
        if depth > self.ctx.max_depth {
            return Err(self.ctx.fail(BodyError::TooDeep {
                limit: self.ctx.max_depth,
            }));
        }
        Ok(Check {
            ctx: self.ctx,
            depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(E::custom("non-finite number"))
        }
    }

    // Strings are visited decoded (not skipped), so serde_json refuses lone surrogates
    // here as it does when building a value.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        let mut keys = Keys::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if let Some(key) = keys.insert(key) {
                return Err(self.ctx.fail(BodyError::DuplicateKey {
                    key: bounded(key.into_owned()),
                }));
            }
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// The keys of one object seen so far: a short list for the usual few, a set beyond.
#[derive(Default)]
struct Keys<'de> {
    few: Vec<Cow<'de, str>>,
    many: HashSet<Cow<'de, str>>,
}

/// Keys compared linearly up to this many; a set beyond.
const FEW_KEYS: usize = 16;

impl<'de> Keys<'de> {
    /// Remember `key`; give it back if it was already there.
    fn insert(&mut self, key: Cow<'de, str>) -> Option<Cow<'de, str>> {
        if self.many.is_empty() {
            if self.few.contains(&key) {
                return Some(key);
            }
            if self.few.len() < FEW_KEYS {
                self.few.push(key);
                return None;
            }
            self.many.extend(self.few.drain(..));
        }
        if self.many.contains(&key) {
            return Some(key);
        }
        self.many.insert(key);
        None
    }
}

/// An object key, borrowed from the input unless it had escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// One object of checked text: its members in document order, each value raw.
#[derive(Debug)]
pub struct RawObject<'a> {
    /// `(key unescaped, value as written)`.
    pub members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    /// Split `text` (one JSON object, already checked) into its members; `None` if it is
    /// not an object.
    pub fn parse(text: &'a str) -> Option<Self> {
        if !text.trim_start().starts_with('{') {
            return None;
        }
        serde_json::from_str(text).ok()
    }

    /// The raw value of `key` (keys are unique in checked text).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| *value)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = RawObject<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value: &'de RawValue = map.next_value()?;
            members.push((key, value));
        }
        Ok(RawObject { members })
    }
}

/// The elements of one array of checked text, each raw; `None` if it is not an array.
pub fn raw_array(text: &str) -> Option<Vec<&RawValue>> {
    if !text.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// What kind of JSON value a raw value is, by its first byte.
pub fn first_byte(raw: &RawValue) -> u8 {
    raw.get()
        .trim_start()
        .as_bytes()
        .first()
        .copied()
        .unwrap_or(b' ')
}

/// Appends JSON objects written from raw parts.
#[derive(Debug, Default)]
pub struct ObjectWriter {
    out: String,
    members: usize,
}

impl ObjectWriter {
    /// An object being written, with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut out = String::with_capacity(capacity);
        out.push('{');
        ObjectWriter { out, members: 0 }
    }

    /// Start a member: its key (escaped here) and the colon; the caller writes the value
    /// into `ObjectWriter::buf`.
    pub fn key(&mut self, key: &str) -> &mut String {
        if self.members > 0 {
            self.out.push(',');
        }
        self.members += 1;
        push_json_string(&mut self.out, key);
        self.out.push(':');
        &mut self.out
    }

    /// A member whose value is raw JSON text.
    pub fn member(&mut self, key: &str, value: &str) {
        self.key(key).push_str(value);
    }

    /// The finished object.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Write `text` as a JSON string.
pub fn push_json_string(out: &mut String, text: &str) {
    // serde_json's escaping; writing a `str` to a `String` cannot fail.
    match serde_json::to_string(text) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::parse_strict;

    #[test]
    fn refuses_what_parse_strict_refuses() {
        let cases: &[&[u8]] = &[
            br#"{"a":1,"a":2}"#,
            br#"{"name":1,"n\u0061me":2}"#,
            br#"[{"a":{"b":1,"b":1}}]"#,
            br#"{"a":"\ud800"}"#,
            b"{} x",
            b"\xEF\xBB\xBF{}",
            b"{\"a\":\"\xff\"}",
            b"[[[[1]]]]",
            b"1e400",
            b"",
        ];
        for case in cases {
            let strict = parse_strict(case, 3).map(|_| ());
            let checked = check_strict(case, 3).map(|_| ());
            assert!(strict.is_err(), "{}", String::from_utf8_lossy(case));
            assert_eq!(checked, strict, "{}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn a_duplicate_among_many_keys_is_found() {
        let mut text = String::from("{");
        for i in 0..40 {
            text.push_str(&format!("\"k{i}\":{i},"));
        }
        text.push_str("\"k3\":0}");
        assert_eq!(
            check_strict(text.as_bytes(), 8),
            Err(BodyError::DuplicateKey { key: "k3".into() })
        );
        let ok = text.replace("\"k3\":0", "\"k40\":0");
        assert!(check_strict(ok.as_bytes(), 8).is_ok());
    }

    #[test]
    fn objects_split_into_raw_members_in_order() {
        let text = r#"{"z": [1, 2], "a\u0062": {"x": "y"}, "n": null}"#;
        let object = RawObject::parse(text).unwrap();
        let keys: Vec<&str> = object.members.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["z", "ab", "n"]);
        assert_eq!(object.get("z").unwrap().get(), "[1, 2]");
        assert_eq!(object.get("ab").unwrap().get(), r#"{"x": "y"}"#);
        assert_eq!(first_byte(object.get("n").unwrap()), b'n');
        let items = raw_array(object.get("z").unwrap().get()).unwrap();
        assert_eq!(items.len(), 2);
        assert!(RawObject::parse("[1]").is_none());
        assert!(raw_array("{}").is_none());

        let mut w = ObjectWriter::with_capacity(16);
        w.member("a\"b", "[1]");
        w.member("c", "null");
        assert_eq!(w.finish(), r#"{"a\"b":[1],"c":null}"#);
    }
}
