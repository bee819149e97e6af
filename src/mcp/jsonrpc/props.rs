//! Property tests for the strict parser: it never panics, its refusals are bounded, and
//! on every input without duplicate keys it reads exactly what `serde_json` reads.
//!
//! The case budget and seed come from the proptest configuration (`PROPTEST_CASES`,
//! default below), so `cargo test` stays quick and a failure replays.

use proptest::prelude::*;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{parse_request_body, parse_strict, BodyError};

/// A JSON document as written: objects keep every pair, duplicates included. An
/// independent reading to tell whether an input has duplicate keys.
#[derive(Debug)]
enum Written {
    Scalar,
    Array(Vec<Written>),
    Object(Vec<(String, Written)>),
}

impl Written {
    fn has_duplicate_keys(&self) -> bool {
        match self {
            Written::Scalar => false,
            Written::Array(items) => items.iter().any(Written::has_duplicate_keys),
            Written::Object(pairs) => {
                let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
                keys.sort_unstable();
                keys.windows(2).any(|w| w[0] == w[1])
                    || pairs.iter().any(|(_, v)| v.has_duplicate_keys())
            }
        }
    }

    fn depth(&self) -> usize {
        match self {
            Written::Scalar => 0,
            Written::Array(items) => 1 + items.iter().map(Written::depth).max().unwrap_or(0),
            Written::Object(pairs) => 1 + pairs.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
        }
    }
}

impl<'de> Deserialize<'de> for Written {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Written;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Written, E> {
                Ok(Written::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Written, E> {
                Ok(Written::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Written, E> {
                Ok(Written::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Written, E> {
                Ok(Written::Scalar)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Written, E> {
                Ok(Written::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Written, E> {
                Ok(Written::Scalar)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Written, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Written::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Written, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Written>()? {
                    pairs.push((k, v));
                }
                Ok(Written::Object(pairs))
            }
        }
        d.deserialize_any(V)
    }
}

/// Generous enough for anything generated; small enough to exercise the limit.
const DEPTH: usize = 8;

fn json_value() -> impl Strategy<Value = Value> {
    crate::testing::json_value(10, 64, 6)
}

/// A serialization: compact or pretty.
fn written(value: &Value, pretty: bool) -> Vec<u8> {
    if pretty {
        serde_json::to_vec_pretty(value).expect("serializable")
    } else {
        serde_json::to_vec(value).expect("serializable")
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    /// Repeat a slice in place (makes duplicate keys and members likely).
    Repeat(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        Just(b'"'),
        Just(b'\\'),
        Just(b','),
        Just(b':'),
        Just(b'{'),
        Just(b'}'),
        Just(b'['),
        Just(b']'),
        Just(b'0'),
        Just(b'-'),
        Just(b'e'),
        Just(0xff),
        Just(0xef),
        any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), interesting.clone()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), interesting).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1..40usize).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Flip(i, b) if !bytes.is_empty() => bytes[i % len] = b,
            Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Mutation::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i % len);
            }
            Mutation::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
            Mutation::Repeat(i, n) if !bytes.is_empty() => {
                let start = i % len;
                let end = (start + n).min(bytes.len());
                let slice = bytes[start..end].to_vec();
                bytes.splice(start..start, slice);
            }
            _ => {}
        }
    }
    bytes
}

/// The value `part` (a slice of `checked`'s text) holds, read through the split alone:
/// objects and arrays by [`Checked::object`](crate::mcp::raw::Checked::object) and
/// [`Checked::array`](crate::mcp::raw::Checked::array), scalars by serde_json (and
/// [`raw_value`](crate::mcp::raw::raw_value) held to it).
fn rebuilt(checked: &crate::mcp::raw::Checked<'_>, part: &str) -> Value {
    if let Some(object) = checked.object(part) {
        let mut map = serde_json::Map::new();
        for (key, value) in object.members() {
            map.insert(key.to_string(), rebuilt(checked, value));
        }
        return Value::Object(map);
    }
    if let Some(items) = checked.array(part) {
        return Value::Array(items.iter().map(|item| rebuilt(checked, item)).collect());
    }
    let scalar: Value = serde_json::from_str(part).expect("a checked scalar");
    // The filter's own reading of a raw scalar (an item's name and annotations) is
    // serde_json's.
    assert_eq!(
        crate::mcp::raw::raw_value(part).as_ref(),
        Some(&scalar),
        "raw_value of {part}"
    );
    assert_eq!(
        crate::mcp::raw::raw_str(part).as_deref(),
        scalar.as_str(),
        "raw_str of {part}"
    );
    scalar
}

/// The strict parser against `serde_json` on one input.
fn agrees_with_serde_json(bytes: &[u8]) -> Result<(), TestCaseError> {
    let strict = parse_strict(bytes, DEPTH);
    // The tree-less check the answer filter uses gives the same verdict, refusal included.
    prop_assert_eq!(
        crate::mcp::raw::check_strict(bytes, DEPTH).map(|_| ()),
        strict.as_ref().map(|_| ()).map_err(Clone::clone),
        "check_strict disagrees with parse_strict"
    );
    // So does the one-pass scanner, and its split of what it accepts is the tree; recording
    // the members of only the outer levels (`check_split`) changes neither the verdict nor
    // the split (deeper parts are split by walking their text).
    let split = |depth| crate::mcp::raw::check_split(bytes, DEPTH, depth);
    let scans = [
        ("check", crate::mcp::raw::check(bytes, DEPTH)),
        ("check_split 0", split(0)),
        ("check_split 1", split(1)),
        ("check_split 3", split(3)),
    ];
    for (what, scanned) in &scans {
        prop_assert_eq!(
            scanned.as_ref().map(|_| ()).map_err(Clone::clone),
            strict.as_ref().map(|_| ()).map_err(Clone::clone),
            "{} disagrees with parse_strict",
            what
        );
        if let (Ok(checked), Ok(tree)) = (scanned, &strict) {
            prop_assert_eq!(&rebuilt(checked, checked.text()), tree);
        }
    }
    let reference = serde_json::from_slice::<Value>(bytes);
    let written = serde_json::from_slice::<Written>(bytes);
    match (&strict, &reference) {
        (Ok(ours), Ok(theirs)) => prop_assert_eq!(ours, theirs),
        (Ok(ours), Err(e)) => {
            return Err(TestCaseError::fail(format!(
                "strict accepted what serde_json refuses ({e}): {ours}"
            )))
        }
        (Err(BodyError::DuplicateKey { .. }), Ok(_)) => {
            let written = written.as_ref().expect("serde_json read it");
            prop_assert!(
                written.has_duplicate_keys(),
                "no duplicate key in the input"
            );
        }
        (Err(BodyError::TooDeep { .. }), Ok(_)) => {
            let written = written.as_ref().expect("serde_json read it");
            prop_assert!(
                written.depth() > DEPTH,
                "depth {} is allowed",
                written.depth()
            );
        }
        (Err(e), Ok(theirs)) => {
            return Err(TestCaseError::fail(format!(
                "strict refused ({e}) what serde_json reads: {theirs}"
            )))
        }
        (Err(_), Err(_)) => {}
    }
    if let (Ok(w), Err(e)) = (&written, &strict) {
        if !w.has_duplicate_keys() && w.depth() <= DEPTH {
            return Err(TestCaseError::fail(format!(
                "refused a duplicate-free input within the depth limit: {e}"
            )));
        }
    }
    // Refusals are bounded, whatever the input (they reach logs and audit lines).
    if let Err(e) = &strict {
        prop_assert!(
            e.to_string().len() <= 512,
            "refusal of {} bytes",
            e.to_string().len()
        );
    }
    Ok(())
}

fn budget(cases: u32) -> ProptestConfig {
    crate::testing::proptest_budget(cases, 0x6d63_7077_6172_6465)
}

proptest! {
    #![proptest_config(budget(256))]

    #[test]
    fn serialized_values_read_back_exactly(value in json_value(), pretty in any::<bool>()) {
        let bytes = written(&value, pretty);
        agrees_with_serde_json(&bytes)?;
        // (Compared with what serde_json reads, not with `value`: without its
        // `float_roundtrip` feature serde_json may read a float back one ulp off.)
        if Written::depth(&serde_json::from_slice(&bytes).expect("valid")) <= DEPTH {
            prop_assert!(parse_strict(&bytes, DEPTH).is_ok());
        }
        let _ = value;
    }

    #[test]
    fn mutated_values_agree_with_serde_json(
        value in json_value(),
        pretty in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let bytes = mutate(written(&value, pretty), &mutations);
        agrees_with_serde_json(&bytes)?;
        // The classifier never panics either.
        let _ = parse_request_body(&bytes, DEPTH);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        agrees_with_serde_json(&bytes)?;
        let _ = parse_request_body(&bytes, DEPTH);
    }

    #[test]
    fn json_rpc_messages_with_mutations_never_panic(
        id in prop_oneof![any::<i64>().prop_map(Value::from), "[a-z0-9]{0,6}".prop_map(Value::from)],
        params in json_value(),
        batch in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        let message = serde_json::json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": params},
        });
        let body = if batch { Value::Array(vec![message]) } else { message };
        let bytes = mutate(written(&body, false), &mutations);
        agrees_with_serde_json(&bytes)?;
        let _ = parse_request_body(&bytes, DEPTH);
    }
}

/// Deep nesting is refused at the limit, long before any stack could overflow, and the
/// refusal does not grow with the input.
#[test]
fn nesting_far_beyond_the_limit_is_a_small_refusal() {
    for open in [b'[', b'{'] {
        let mut bytes = Vec::new();
        for _ in 0..200_000 {
            bytes.push(open);
            if open == b'{' {
                bytes.extend_from_slice(b"\"a\":");
            }
        }
        let err = parse_strict(&bytes, 64).expect_err("too deep");
        assert_eq!(err, BodyError::TooDeep { limit: 64 });
    }
}

/// A duplicate key of any length is reported in bounded space.
#[test]
fn a_huge_duplicate_key_is_reported_in_bounded_space() {
    let key = "k".repeat(1 << 20);
    let body = format!("{{\"{key}\":1,\"{key}\":2}}");
    let err = parse_strict(body.as_bytes(), 8).expect_err("duplicate");
    assert!(matches!(err, BodyError::DuplicateKey { .. }));
    assert!(
        err.to_string().len() <= 512,
        "{} bytes",
        err.to_string().len()
    );
}
