//! Every configuration key is documented: the key list comes from [`RawConfig`]'s own
//! `Deserialize` implementation, not from a hand-written list, so a field added anywhere in
//! the configuration (also in the sections other modules own: `auth`, `policy`, `taint`,
//! `audit`) fails this test until `docs/src/configuration.md` names it.
//!
//! How the keys are found: serde's derived `Deserialize` for a struct asks its deserializer
//! for `deserialize_struct(name, FIELDS, visitor)`, passing every field name as written in
//! TOML (after `rename`). [`Probe`] is a deserializer that follows one path of keys into the
//! configuration (`auth` → `jwt` → `keys` → `[]` …), reports what kind of value the type asks
//! for at the end of it (a struct and its fields, a map, a list, or a plain value) and then
//! stops with an error. Walking every field of every struct found that way yields every key.
//! Nothing is ever successfully deserialized, so no field needs a plausible sample value.
//!
//! Keys are written as paths: sections joined by `.`, `[]` for the entries of an array of
//! tables, `<name>` for the keys of a table of tables: `auth.jwt.keys[].kid`,
//! `tools.<name>.annotations.readOnlyHint`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::RawConfig;

/// What a type asks for at the end of a probed path.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// A struct, with its fields' names.
    Struct(Vec<&'static str>),
    /// A table with arbitrary keys (`BTreeMap<String, _>`).
    Map,
    /// A list (`Vec<_>`).
    Seq,
    /// Anything else: a string, number, boolean, duration, enum, untyped value.
    Plain,
}

/// A path segment.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(&'static str),
    MapKey,
    Element,
}

/// The error that ends every probe (and any error serde raises on the way).
#[derive(Debug)]
struct Stop(String);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Stop(msg.to_string())
    }
}

/// Follows `path` from `at` on; records the [`Shape`] found at its end into `seen`.
struct Probe<'a> {
    path: &'a [Segment],
    at: usize,
    seen: &'a RefCell<Option<Shape>>,
}

impl<'a> Probe<'a> {
    fn deeper(&self) -> Probe<'a> {
        Probe {
            path: self.path,
            at: self.at + 1,
            seen: self.seen,
        }
    }

    fn at_end(&self) -> bool {
        self.at == self.path.len()
    }

    fn found(&self, shape: Shape) -> Stop {
        *self.seen.borrow_mut() = Some(shape);
        Stop("probe reached the end of its path".to_owned())
    }

    fn lost(&self) -> Stop {
        Stop(format!(
            "path {:?} does not fit the type at segment {}",
            self.path, self.at
        ))
    }
}

/// One map entry: the key, then the probe for its value.
struct OneEntry<'a> {
    key: Option<&'static str>,
    value: Option<Probe<'a>>,
}

impl<'de> MapAccess<'de> for OneEntry<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match self.key.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let probe = self
            .value
            .take()
            .ok_or_else(|| Stop("value without a key".to_owned()))?;
        seed.deserialize(probe)
    }
}

/// One list element: the probe.
struct OneElement<'a>(Option<Probe<'a>>);

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        match self.0.take() {
            Some(probe) => seed.deserialize(probe).map(Some),
            None => Ok(None),
        }
    }
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        if self.at_end() {
            return Err(self.found(Shape::Plain));
        }
        Err(self.lost())
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if self.at_end() {
            return Err(self.found(Shape::Struct(fields.to_vec())));
        }
        match self.path[self.at] {
            Segment::Field(field) if fields.contains(&field) => visitor.visit_map(OneEntry {
                key: Some(field),
                value: Some(self.deeper()),
            }),
            _ => Err(self.lost()),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        if self.at_end() {
            return Err(self.found(Shape::Map));
        }
        match self.path[self.at] {
            Segment::MapKey => visitor.visit_map(OneEntry {
                key: Some("name"),
                value: Some(self.deeper()),
            }),
            _ => Err(self.lost()),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        if self.at_end() {
            return Err(self.found(Shape::Seq));
        }
        match self.path[self.at] {
            Segment::Element => visitor.visit_seq(OneElement(Some(self.deeper()))),
            _ => Err(self.lost()),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct tuple tuple_struct enum identifier ignored_any
    }
}

/// What `RawConfig` asks for at the end of `path`.
fn shape_at(path: &[Segment]) -> Shape {
    let seen = RefCell::new(None);
    let result = RawConfig::deserialize(Probe {
        path,
        at: 0,
        seen: &seen,
    });
    assert!(result.is_err(), "a probe never completes");
    seen.into_inner().unwrap_or_else(|| {
        panic!(
            "the probe for {path:?} did not reach its end: {}",
            result.err().map(|e| e.0).unwrap_or_default()
        )
    })
}

/// `auth.jwt.keys[].kid`, `tools.<name>.annotations`.
fn render(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Field(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Segment::MapKey => out.push_str(".<name>"),
            Segment::Element => out.push_str("[]"),
        }
    }
    out
}

/// Every key a configuration file can set (plain values, lists of plain values and tables
/// of plain values), and every section (struct) path, rendered.
fn all_keys() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut keys = BTreeSet::new();
    let mut sections = BTreeSet::new();
    let mut todo: Vec<Vec<Segment>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        assert!(path.len() < 12, "runaway nesting at {}", render(&path));
        match shape_at(&path) {
            Shape::Struct(fields) => {
                if !path.is_empty() {
                    sections.insert(render(&path));
                }
                for field in fields {
                    let mut child = path.clone();
                    child.push(Segment::Field(field));
                    todo.push(child);
                }
            }
            shape @ (Shape::Map | Shape::Seq) => {
                let mut child = path.clone();
                child.push(if shape == Shape::Map {
                    Segment::MapKey
                } else {
                    Segment::Element
                });
                if shape_at(&child) == Shape::Plain {
                    // A list or table of plain values is one key.
                    keys.insert(render(&path));
                } else {
                    sections.insert(render(&path));
                    todo.push(child);
                }
            }
            Shape::Plain => {
                keys.insert(render(&path));
            }
        }
    }
    (keys, sections)
}

/// The configuration reference, as the book has it.
fn reference() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/src/configuration.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read `{path}`: {e}"))
}

/// The first cell of every table row in the reference, when it is one key in backticks.
fn documented_rows(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once("` |").map(|(key, _)| key.to_owned()))
        .filter(|key| !key.contains('`'))
        .collect()
}

#[test]
fn the_probe_finds_keys_of_every_shape() {
    let (keys, sections) = all_keys();
    for key in [
        "listen",
        "limits.max_body_bytes",
        "auth.allow_anonymous",
        "auth.jwt.audience",
        "auth.jwt.keys[].kid",
        "auth.api_keys[].claims",
        "auth.biscuit.keys[].public_key_file",
        "policy.biscuit.limits.max_time",
        "policy.biscuit.external_keys",
        "taint.sources[].label",
        "tools.<name>.annotations.readOnlyHint",
        "identity_headers.claims",
    ] {
        assert!(keys.contains(key), "`{key}` not found in {keys:#?}");
    }
    for section in ["auth.jwt", "auth.jwt.keys", "tools.<name>", "taint.sources"] {
        assert!(sections.contains(section), "`{section}` in {sections:#?}");
    }
}

#[test]
fn every_configuration_key_is_in_the_reference() {
    let (keys, _) = all_keys();
    let text = reference();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|key| !text.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/src/configuration.md does not document these configuration keys \
         (write each as `key` in backticks, in its section's table):\n{missing:#?}"
    );
}

#[test]
fn the_reference_documents_no_key_that_does_not_exist() {
    let (keys, sections) = all_keys();
    let stale: Vec<String> = documented_rows(&reference())
        .into_iter()
        .filter(|key| !keys.contains(key) && !sections.contains(key))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/src/configuration.md has table rows for keys the configuration does not \
         have:\n{stale:#?}"
    );
}
