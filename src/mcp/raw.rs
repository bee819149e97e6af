//! Reading an upstream answer without building a tree of it.
//!
//! Why: a list answer is large (35 KB for 100 tools, 347 KB for 1,000) and the filter
//! needs only a few things from it: the ids, the shape of `result`, each item's name and
//! annotations. Building a `serde_json::Value` of the whole answer and writing it back
//! costs more than everything else the proxy does with it, and so does reading it once
//! per level of nesting. So every byte is read once, without allocating a tree:
//!
//! 1. [`check`] scans the answer under exactly the rules of
//!    [`parse_strict`](super::parse_strict) (duplicate keys compared after unescaping,
//!    nesting depth, lone surrogates, control characters, numbers that do not fit,
//!    trailing bytes, invalid UTF-8), builds no tree, and keeps the keys of open
//!    objects borrowed on one stack; as it goes, it records the members of the objects
//!    and the elements of the arrays of the outer levels ([`check_split`]: as deep as
//!    the caller will look), each value a slice of the text ([`Checked`]);
//! 2. [`Checked::object`] and [`Checked::array`] then give those splits from the
//!    tables, without reading the text again (deeper parts are split by walking their
//!    text), so the filter writes its answer from slices of the upstream's own bytes.
//!
//! [`check_strict`] is the same check written on serde_json's deserializer (a visitor
//! that builds nothing): [`check`] falls back to it for the reason of a refusal. The
//! property tests (`jsonrpc::props`) hold both to `parse_strict`'s verdict, and the
//! split of every accepted input to the tree `parse_strict` builds.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

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

/// One member of an object of checked text: its key unescaped, its value as written.
pub type Member<'a> = (Cow<'a, str>, &'a str);

/// Checked JSON text, and the members and elements of its objects and arrays nested at
/// most `split_depth` deep (see [`check_split`]): what splitting those needs, so no part
/// of them is read again. Deeper parts are split by walking their text.
#[derive(Debug)]
pub struct Checked<'a> {
    text: &'a str,
    /// Every recorded object and array, sorted by where it starts.
    containers: Vec<Container>,
    /// The members of the recorded objects, each object's together and in order.
    members: Vec<Member<'a>>,
    /// The elements of the recorded arrays, each array's together and in order.
    elements: Vec<&'a str>,
}

/// One recorded object or array: where it starts, and its members (an object) or
/// elements (an array) in [`Checked`]'s tables.
#[derive(Debug, Clone, Copy)]
struct Container {
    start: usize,
    first: usize,
    len: usize,
}

/// Check `bytes` as [`parse_strict`](super::parse_strict) would, in one pass that
/// builds no value: on success the text with every object and array split, for
/// [`Checked::object`] and [`Checked::array`].
pub fn check(bytes: &[u8], max_depth: usize) -> Result<Checked<'_>, BodyError> {
    check_split(bytes, max_depth, usize::MAX)
}

/// [`check`], splitting in the pass only the objects and arrays nested in at most
/// `split_depth` others (the outermost value is nested in none): the parts a caller
/// will ask about, so the pass records no more than it needs.
///
/// The pass is a hand-written scanner of the JSON grammar under the strict rules
/// (module docs). Anything it refuses is checked again by [`check_strict`], whose
/// refusal (the same as `parse_strict`'s) is returned; should that check accept what
/// the scanner refused, the answer is still refused (fail closed; the property tests
/// hold the two to the same verdict).
pub fn check_split(
    bytes: &[u8],
    max_depth: usize,
    split_depth: usize,
) -> Result<Checked<'_>, BodyError> {
    if let Some(checked) = Scanner::run(bytes, max_depth, split_depth) {
        return Ok(checked);
    }
    check_strict(bytes, max_depth)?;
    Err(BodyError::Malformed {
        reason: "refused by the strict scanner".to_owned(),
    })
}

/// serde_json's recursion limit: its 128th nested container is refused, whatever the
/// configured depth.
const SERDE_DEPTH_LIMIT: usize = 127;

/// One object or array being scanned.
struct Frame<'a> {
    object: bool,
    /// Whether its members or elements are recorded (it is shallow enough).
    record: bool,
    /// Its entry in `Scanner::containers` (if recorded).
    index: usize,
    /// Where its members start in `Scanner::open` (objects).
    keys: usize,
    /// Where its elements start in `Scanner::open_elements` (recorded arrays).
    elements: usize,
    /// Where the value being read of it starts (recorded containers).
    value_start: usize,
    /// Its keys once there are more than [`FEW_KEYS`].
    many: Option<HashSet<Cow<'a, str>>>,
}

/// The one-pass strict scanner behind [`check_split`].
struct Scanner<'a> {
    bytes: &'a [u8],
    text: &'a str,
    split_depth: usize,
    containers: Vec<Container>,
    members: Vec<Member<'a>>,
    elements: Vec<&'a str>,
    stack: Vec<Frame<'a>>,
    /// The members of every open object, innermost last: their keys (for the duplicate
    /// check) and, in recorded objects, their values.
    open: Vec<Member<'a>>,
    /// The elements of every open recorded array, innermost last.
    open_elements: Vec<&'a str>,
}

impl<'a> Scanner<'a> {
    fn run(bytes: &'a [u8], max_depth: usize, split_depth: usize) -> Option<Checked<'a>> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut s = Scanner {
            bytes,
            text,
            split_depth,
            containers: Vec::new(),
            // A list answer records about one member per 25 bytes (its items' and their
            // annotations' members): room for them without copying the table as it grows.
            members: Vec::with_capacity(bytes.len() / 24),
            elements: Vec::new(),
            stack: Vec::new(),
            open: Vec::new(),
            open_elements: Vec::new(),
        };
        let limit = max_depth.min(SERDE_DEPTH_LIMIT);
        let mut pos = ws(bytes, 0);
        'value: loop {
            // A value starts at `pos`.
            match *bytes.get(pos)? {
                open @ (b'{' | b'[') => {
                    let depth = s.stack.len();
                    if depth >= limit {
                        return None;
                    }
                    let record = depth <= s.split_depth;
                    if record {
                        s.containers.push(Container {
                            start: pos,
                            first: 0,
                            len: 0,
                        });
                    }
                    let object = open == b'{';
                    pos = ws(bytes, pos + 1);
                    s.stack.push(Frame {
                        object,
                        record,
                        index: s.containers.len().wrapping_sub(1),
                        keys: s.open.len(),
                        elements: s.open_elements.len(),
                        value_start: pos,
                        many: None,
                    });
                    let close = if object { b'}' } else { b']' };
                    if bytes.get(pos) == Some(&close) {
                        pos = s.close(pos);
                    } else {
                        if object {
                            pos = s.key(pos)?;
                        }
                        continue 'value;
                    }
                }
                b'"' => pos = s.string(pos)?.0,
                b't' => pos = s.literal(pos, b"true")?,
                b'f' => pos = s.literal(pos, b"false")?,
                b'n' => pos = s.literal(pos, b"null")?,
                b'-' | b'0'..=b'9' => pos = s.number(pos)?,
                _ => return None,
            }
            // After a value (it ends at `pos`): a separator, the end of containers, or
            // the end of input.
            loop {
                let Some(frame) = s.stack.last_mut() else {
                    return (ws(bytes, pos) == bytes.len()).then_some(Checked {
                        text,
                        containers: s.containers,
                        members: s.members,
                        elements: s.elements,
                    });
                };
                if frame.record {
                    let value = &text[frame.value_start..pos];
                    if frame.object {
                        s.open.last_mut()?.1 = value;
                    } else {
                        s.open_elements.push(value);
                    }
                }
                pos = ws(bytes, pos);
                match (frame.object, *bytes.get(pos)?) {
                    (object, b',') => {
                        pos = ws(bytes, pos + 1);
                        frame.value_start = pos;
                        if object {
                            pos = s.key(pos)?;
                        }
                        continue 'value;
                    }
                    (true, b'}') | (false, b']') => pos = s.close(pos),
                    _ => return None,
                }
            }
        }
    }

    /// Closes the innermost container at its bracket `pos` (recording its members or
    /// elements if it is recorded); the position after it.
    fn close(&mut self, pos: usize) -> usize {
        if let Some(frame) = self.stack.pop() {
            if frame.record {
                let (first, len) = if frame.object {
                    let first = self.members.len();
                    self.members.extend(self.open.drain(frame.keys..));
                    (first, self.members.len() - first)
                } else {
                    let first = self.elements.len();
                    self.elements
                        .extend(self.open_elements.drain(frame.elements..));
                    (first, self.elements.len() - first)
                };
                if let Some(container) = self.containers.get_mut(frame.index) {
                    container.first = first;
                    container.len = len;
                }
            } else {
                self.open.truncate(frame.keys);
            }
        }
        pos + 1
    }

    fn literal(&self, pos: usize, word: &[u8]) -> Option<usize> {
        self.bytes[pos..]
            .starts_with(word)
            .then_some(pos + word.len())
    }

    /// A number at `pos` under JSON's grammar; anything beyond a short integer is also
    /// read by serde_json, which refuses what does not fit a finite `f64`.
    fn number(&self, start: usize) -> Option<usize> {
        let b = self.bytes;
        let digits = |mut pos: usize| {
            let from = pos;
            while b.get(pos).is_some_and(u8::is_ascii_digit) {
                pos += 1;
            }
            (pos > from).then_some(pos)
        };
        let mut pos = start;
        if b[pos] == b'-' {
            pos += 1;
        }
        let int_start = pos;
        pos = if b.get(pos) == Some(&b'0') {
            pos + 1
        } else {
            digits(pos)?
        };
        let int_digits = pos - int_start;
        let mut simple = int_digits <= 18;
        if b.get(pos) == Some(&b'.') {
            pos = digits(pos + 1)?;
            simple = false;
        }
        if let Some(b'e' | b'E') = b.get(pos) {
            pos += 1;
            if let Some(b'+' | b'-') = b.get(pos) {
                pos += 1;
            }
            pos = digits(pos)?;
            simple = false;
        }
        if !simple && serde_json::from_str::<serde_json::Number>(&self.text[start..pos]).is_err() {
            return None;
        }
        Some(pos)
    }

    /// A string at `pos` (its opening quote): the position after it, and whether it has
    /// escapes. Refuses control characters, unknown escapes and lone surrogates.
    fn string(&self, pos: usize) -> Option<(usize, bool)> {
        let b = self.bytes;
        let mut pos = pos + 1;
        let mut escaped = false;
        loop {
            let at = string_stop(b, pos)?;
            match b[at] {
                b'"' => return Some((at + 1, escaped)),
                b'\\' => {
                    escaped = true;
                    pos = match *b.get(at + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at + 2,
                        b'u' => {
                            let unit = hex4(b, at + 2)?;
                            match unit {
                                0xD800..=0xDBFF => {
                                    // A leading surrogate must be followed by a trailing one.
                                    if b.get(at + 6) != Some(&b'\\') || b.get(at + 7) != Some(&b'u')
                                    {
                                        return None;
                                    }
                                    if !(0xDC00..=0xDFFF).contains(&hex4(b, at + 8)?) {
                                        return None;
                                    }
                                    at + 12
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => at + 6,
                            }
                        }
                        _ => return None,
                    };
                }
                _ => return None,
            }
        }
    }

    /// An object's key at `pos`, remembered (a repeat refuses), and the colon after it:
    /// the position of the member's value.
    fn key(&mut self, pos: usize) -> Option<usize> {
        if self.bytes.get(pos) != Some(&b'"') {
            return None;
        }
        let (end, escaped) = self.string(pos)?;
        let key = if escaped {
            Cow::Owned(serde_json::from_str::<String>(&self.text[pos..end]).ok()?)
        } else {
            Cow::Borrowed(&self.text[pos + 1..end - 1])
        };
        let frame = self.stack.last_mut()?;
        if let Some(many) = &mut frame.many {
            if !many.insert(key.clone()) {
                return None;
            }
        } else {
            let own = &self.open[frame.keys..];
            if own.iter().any(|(k, _)| *k == key) {
                return None;
            }
            if own.len() >= FEW_KEYS {
                let mut many: HashSet<Cow<'a, str>> = own.iter().map(|(k, _)| k.clone()).collect();
                many.insert(key.clone());
                frame.many = Some(many);
            }
        }
        self.open.push((key, ""));
        let pos = ws(self.bytes, end);
        if self.bytes.get(pos) != Some(&b':') {
            return None;
        }
        let pos = ws(self.bytes, pos + 1);
        frame.value_start = pos;
        Some(pos)
    }
}

/// Skips JSON whitespace from `pos`.
fn ws(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// Eight bytes of `byte`.
const fn splat(byte: u8) -> u64 {
    0x0101_0101_0101_0101 * byte as u64
}

/// The position of the first `"`, `\\` or control character (below 0x20) at or after
/// `pos` in `b`: where a string's plain run ends.
///
/// Eight bytes at a time (SWAR): for a word `w`, `(w - splat(n)) & !w & splat(0x80)` is
/// non-zero exactly when some byte of `w` is below `n` (for `n` ≤ 0x80), and its lowest
/// set bit is in the lowest such byte (a borrow only starts at a byte below `n`, and only
/// moves up). A byte equal to `c` is a zero byte of `w ^ splat(c)`. So a word with no mark
/// holds none of the three bytes, and the lowest mark is the first that does. The tail
/// shorter than a word is read byte by byte.
#[inline]
fn string_stop(b: &[u8], mut pos: usize) -> Option<usize> {
    const HIGH: u64 = splat(0x80);
    while let Some(word) = b.get(pos..pos + 8) {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        let w = u64::from_le_bytes(bytes);
        let quote = w ^ splat(b'"');
        let backslash = w ^ splat(b'\\');
        let marks = ((quote.wrapping_sub(splat(1)) & !quote)
            | (backslash.wrapping_sub(splat(1)) & !backslash)
            | (w.wrapping_sub(splat(0x20)) & !w))
            & HIGH;
        if marks != 0 {
            return Some(pos + (marks.trailing_zeros() / 8) as usize);
        }
        pos += 8;
    }
    b.get(pos..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|at| pos + at)
}

/// The four hex digits at `pos`, as a UTF-16 unit.
fn hex4(b: &[u8], pos: usize) -> Option<u32> {
    let digits = b.get(pos..pos + 4)?;
    let mut unit = 0;
    for &d in digits {
        unit = unit * 16 + char::from(d).to_digit(16)?;
    }
    Some(unit)
}

impl<'a> Checked<'a> {
    /// The whole checked text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Where `part` (a slice of this text) starts in it.
    fn offset(&self, part: &str) -> Option<usize> {
        let offset = (part.as_ptr() as usize).checked_sub(self.text.as_ptr() as usize)?;
        (offset + part.len() <= self.text.len()).then_some(offset)
    }

    /// The value that `value` (a slice of this text, surrounding whitespace allowed)
    /// holds: where it starts, its first byte, and its entry if it is a recorded
    /// container.
    fn locate(&self, value: &str) -> Option<(usize, u8, Option<Container>)> {
        let b = self.text.as_bytes();
        let pos = ws(b, self.offset(value)?);
        let first = *b.get(pos)?;
        let recorded = match first {
            b'{' | b'[' => self
                .containers
                .binary_search_by_key(&pos, |c| c.start)
                .ok()
                .map(|i| self.containers[i]),
            _ => None,
        };
        Some((pos, first, recorded))
    }

    /// Splits `value` (a slice of this text holding one value, surrounding whitespace
    /// allowed) into its members if it is an object: keys unescaped, values raw.
    /// A recorded object's members are its entries in the table the check made; any
    /// other's are found by walking its text.
    pub fn object<'c>(&'c self, value: &'a str) -> Option<RawObject<'c, 'a>> {
        let (pos, first, recorded) = self.locate(value)?;
        if first != b'{' {
            return None;
        }
        let members = match recorded {
            Some(c) => Cow::Borrowed(self.members.get(c.first..c.first + c.len)?),
            None => Cow::Owned(split_object(self.text, pos)?),
        };
        Some(RawObject { members })
    }

    /// Splits `value` (a slice of this text) into its elements, each raw, if it is an
    /// array (recorded or walked, as [`Checked::object`]).
    pub fn array<'c>(&'c self, value: &'a str) -> Option<Cow<'c, [&'a str]>> {
        let (pos, first, recorded) = self.locate(value)?;
        if first != b'[' {
            return None;
        }
        match recorded {
            Some(c) => self
                .elements
                .get(c.first..c.first + c.len)
                .map(Cow::Borrowed),
            None => split_array(self.text, pos).map(Cow::Owned),
        }
    }
}

/// The members of the checked object at `pos` of `text`, read by walking its text.
fn split_object(text: &str, mut pos: usize) -> Option<Vec<Member<'_>>> {
    let b = text.as_bytes();
    let mut members = Vec::new();
    pos = ws(b, pos + 1);
    if b.get(pos) == Some(&b'}') {
        return Some(members);
    }
    loop {
        let (end, escaped) = string_end_escaped(b, pos)?;
        let key = unquote(&text[pos..end], escaped)?;
        pos = ws(b, end);
        if b.get(pos) != Some(&b':') {
            return None;
        }
        let start = ws(b, pos + 1);
        let end = value_end(b, start)?;
        members.push((key, &text[start..end]));
        pos = ws(b, end);
        match b.get(pos) {
            Some(b',') => pos = ws(b, pos + 1),
            Some(b'}') => return Some(members),
            _ => return None,
        }
    }
}

/// The elements of the checked array at `pos` of `text`, read by walking its text.
fn split_array(text: &str, mut pos: usize) -> Option<Vec<&str>> {
    let b = text.as_bytes();
    let mut items = Vec::new();
    pos = ws(b, pos + 1);
    if b.get(pos) == Some(&b']') {
        return Some(items);
    }
    loop {
        let end = value_end(b, pos)?;
        items.push(&text[pos..end]);
        pos = ws(b, end);
        match b.get(pos) {
            Some(b',') => pos = ws(b, pos + 1),
            Some(b']') => return Some(items),
            _ => return None,
        }
    }
}

/// The end of the checked value that starts at `pos`.
fn value_end(b: &[u8], pos: usize) -> Option<usize> {
    match *b.get(pos)? {
        b'{' | b'[' => container_end(b, pos),
        b'"' => string_end(b, pos),
        _ => Some(
            pos + b[pos..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\t' | b'\r'))
                .unwrap_or(b.len() - pos),
        ),
    }
}

/// The end of the checked object or array that starts at `pos` (one past its closing
/// bracket): brackets counted, strings skipped.
fn container_end(b: &[u8], mut pos: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match *b.get(pos)? {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(pos + 1);
                }
            }
            b'"' => {
                pos = string_end(b, pos)?;
                continue;
            }
            _ => {}
        }
        pos += 1;
    }
}

/// The end of the checked string that starts at `pos` (one past its closing quote).
fn string_end(b: &[u8], pos: usize) -> Option<usize> {
    string_end_escaped(b, pos).map(|(end, _)| end)
}

/// [`string_end`], and whether the string has escapes.
fn string_end_escaped(b: &[u8], pos: usize) -> Option<(usize, bool)> {
    if b.get(pos) != Some(&b'"') {
        return None;
    }
    let mut at = pos + 1;
    let mut escaped = false;
    loop {
        // Checked text has no control characters in strings: the first stop is a quote
        // or a backslash.
        at = string_stop(b, at)?;
        if b[at] == b'"' {
            return Some((at + 1, escaped));
        }
        escaped = true;
        at += 2;
    }
}

/// The text of a checked string as written (`quoted`, quotes included): borrowed unless
/// it has escapes, else decoded by serde_json.
fn unquote(quoted: &str, escaped: bool) -> Option<Cow<'_, str>> {
    if escaped {
        serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
    } else {
        quoted
            .get(1..quoted.len().checked_sub(1)?)
            .map(Cow::Borrowed)
    }
}

/// The text of a raw JSON string value of checked text (quotes included), `None` if it
/// is not a string: borrowed unless it has escapes.
pub fn raw_str(raw: &str) -> Option<Cow<'_, str>> {
    let raw = trim_ws(raw);
    let (end, escaped) = string_end_escaped(raw.as_bytes(), 0)?;
    if end != raw.len() {
        return None;
    }
    unquote(raw, escaped)
}

/// `raw` without JSON whitespace around it.
fn trim_ws(raw: &str) -> &str {
    raw.trim_matches(|c| matches!(c, ' ' | '\n' | '\t' | '\r'))
}

/// A raw value of checked text as a `serde_json::Value`, equal to what
/// `serde_json::from_str` reads from it: [`plain`] values directly, anything else
/// through serde_json.
pub fn raw_value(raw: &str) -> Option<serde_json::Value> {
    let raw = trim_ws(raw);
    plain(raw).or_else(|| serde_json::from_str(raw).ok())
}

/// A raw value of checked text (no surrounding whitespace) that reads without a parser,
/// as a `Value`: `true`, `false`, `null` or a string without escapes; `None` for
/// anything else.
pub fn plain(raw: &str) -> Option<serde_json::Value> {
    use serde_json::Value;
    match raw {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        _ => plain_str(raw).map(|s| Value::String(s.to_owned())),
    }
}

/// Whether [`plain`] reads `raw`, without building the value.
pub fn is_plain(raw: &str) -> bool {
    matches!(raw, "true" | "false" | "null") || plain_str(raw).is_some()
}

/// The text of `raw` if it is a string without escapes (checked text: a string holds no
/// unescaped quote or control character, and its quotes are single bytes).
pub fn plain_str(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.as_bytes().contains(&b'\\')).then_some(inner)
}

/// One object of checked text: its members in document order, each value raw.
#[derive(Debug)]
pub struct RawObject<'c, 'a> {
    /// `(key unescaped, value as written)`: borrowed from the check's table, or split
    /// for this object alone.
    members: Cow<'c, [Member<'a>]>,
}

impl<'a> RawObject<'_, 'a> {
    /// Its members in document order: `(key unescaped, value as written)`.
    pub fn members(&self) -> &[Member<'a>] {
        &self.members
    }

    /// The raw value of `key` (keys are unique in checked text).
    pub fn get(&self, key: &str) -> Option<&'a str> {
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

/// What kind of JSON value a raw value is, by its first byte.
pub fn first_byte(raw: &str) -> u8 {
    raw.trim_start().as_bytes().first().copied().unwrap_or(b' ')
}

/// Appends JSON objects written from raw parts, nested ones in the same buffer.
#[derive(Debug, Default)]
pub struct ObjectWriter {
    out: String,
    /// Members written so far in the innermost open object.
    members: usize,
    /// The same count for each enclosing open object.
    outer: Vec<usize>,
}

impl ObjectWriter {
    /// An object being written, with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut out = String::with_capacity(capacity);
        out.push('{');
        ObjectWriter {
            out,
            members: 0,
            outer: Vec::new(),
        }
    }

    /// Start a member whose value is an object written next, in the same buffer, up to
    /// [`ObjectWriter::close`].
    pub fn open(&mut self, key: &str) {
        self.key(key).push('{');
        self.outer.push(self.members);
        self.members = 0;
    }

    /// Close the object [`ObjectWriter::open`] started.
    pub fn close(&mut self) {
        self.out.push('}');
        self.members = self.outer.pop().unwrap_or(0);
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
    // serde_json escapes exactly these (and nothing else): none, nothing to escape.
    if !text.bytes().any(|c| c == b'"' || c == b'\\' || c < 0x20) {
        out.push('"');
        out.push_str(text);
        out.push('"');
        return;
    }
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
    fn the_scanner_refuses_what_parse_strict_refuses() {
        let cases: &[&[u8]] = &[
            br#"{"a":1,"a":2}"#,
            br#"{"name":1,"n\u0061me":2}"#,
            br#"{"abcdefghij":1,"abcdefgX":0,"abcdefgh\u0069j":2}"#,
            br#"[{"a":{"b":1,"b":1}}]"#,
            br#"{"tools":[{"name":"x","inputSchema":{"properties":{"p":{"type":"string","type":"number"}}}}]}"#,
            br#"{"a":"\ud800"}"#,
            br#"{"a":"\udc00"}"#,
            br#"{"a":"\ud800\u0041"}"#,
            br#"{"a":"\x"}"#,
            b"{\"a\":\"\x01\"}",
            b"{} x",
            b"\xEF\xBB\xBF{}",
            b"{\"a\":\"\xff\"}",
            b"[[[[1]]]]",
            b"1e400",
            b"[01]",
            b"[1.]",
            b"[-]",
            b"[1,]",
            b"{\"a\":1,}",
            b"[tru]",
            b"",
            b"  ",
        ];
        for case in cases {
            let strict = parse_strict(case, 3).map(|_| ());
            let checked = check(case, 3).map(|_| ());
            assert!(strict.is_err(), "{}", String::from_utf8_lossy(case));
            assert_eq!(checked, strict, "{}", String::from_utf8_lossy(case));
        }
        // A duplicate among many keys (past the short list).
        let mut text = String::from("{");
        for i in 0..40 {
            text.push_str(&format!("\"k{i}\":{i},"));
        }
        text.push_str("\"k3\":0}");
        assert_eq!(
            check(text.as_bytes(), 8).map(|_| ()),
            Err(BodyError::DuplicateKey { key: "k3".into() })
        );
        let ok = text.replace("\"k3\":0", "\"k40\":0");
        assert!(check(ok.as_bytes(), 8).is_ok());
        // serde_json's own limit: 127 nested containers, not 128.
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(check(nested(127).as_bytes(), 128).is_ok());
        assert_eq!(
            check(nested(128).as_bytes(), 128).map(|_| ()),
            parse_strict(nested(128).as_bytes(), 128).map(|_| ())
        );
    }

    #[test]
    fn the_scanner_accepts_what_parse_strict_accepts() {
        let cases: &[&str] = &[
            r#"{"a\u0062":"\ud83d\ude00 \" \\ \/ \b\f\n\r\t","b":[1,-0,0.5,-1.5e-3,1E+2,123456789012345678901234567890]}"#,
            " [ true , false , null , { } , [ ] , \"\" ] ",
            "\t\r\n0\n",
            r#"{"é":"ü","e\u0301":1}"#,
            // Keys alike in length and first bytes that differ after them.
            r#"{"abcdefgX":1,"abcdefgY":2,"abcdefg":3,"abcdefgXY":4}"#,
        ];
        for case in cases {
            assert!(parse_strict(case.as_bytes(), 8).is_ok(), "{case}");
            assert!(check(case.as_bytes(), 8).is_ok(), "{case}");
        }
    }

    /// The byte-by-byte reading [`string_stop`] replaces.
    fn naive_stop(b: &[u8], pos: usize) -> Option<usize> {
        b.get(pos..)?
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map(|at| pos + at)
    }

    #[test]
    fn the_word_scan_stops_where_the_byte_scan_does() {
        // Every byte value at every offset of a word, after every alignment, with
        // bytes on either side that come near the marks (0x1f/0x20, 0x21/0x23, 0x5b/0x5d,
        // 0x7f, 0x80, 0xff): a borrow or a near miss must not hide or invent a stop.
        let fillers: &[u8] = &[b'a', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff, 0x01];
        for &filler in fillers {
            for len in 0..20 {
                for at in 0..len {
                    for byte in 0..=255u8 {
                        let mut b = vec![filler; len];
                        b[at] = byte;
                        for pos in 0..=len {
                            assert_eq!(
                                string_stop(&b, pos),
                                naive_stop(&b, pos),
                                "filler {filler:#x} len {len} byte {byte:#x} at {at} from {pos}"
                            );
                        }
                    }
                }
            }
        }
        assert_eq!(string_stop(b"abc", 4), None);
    }

    #[test]
    fn strings_read_the_same_whatever_falls_on_a_word_boundary() {
        // A string of plain text with one special part at every offset, the string itself
        // at every alignment: the scanner's verdict and split are parse_strict's.
        let specials: &[&[u8]] = &[
            b"\x01",
            b"\x1f",
            b"\x7f",
            b" ",
            b"\\\"",
            b"\\\\",
            b"\\/",
            b"\\n",
            b"\\u0041",
            b"\\u001f",
            b"\\ud83d\\ude00",
            b"\\ud800",
            b"\\ud800x",
            b"\\udc00",
            b"\\x",
            b"\\",
            b"\"",
            b"\xc3\xa9",
            b"\xe2\x82\xac",
            b"\xf0\x9f\x98\x80",
            b"\xc3",
            b"\xff",
        ];
        for special in specials {
            for lead in 0..9 {
                for at in 0..18 {
                    let mut text = b"[".to_vec();
                    text.extend(std::iter::repeat_n(b' ', lead));
                    text.push(b'"');
                    text.extend(std::iter::repeat_n(b'p', at));
                    text.extend_from_slice(special);
                    text.extend(std::iter::repeat_n(b'q', 17 - at));
                    text.extend_from_slice(b"\",{\"k");
                    text.extend_from_slice(special);
                    text.extend_from_slice(b"\":1}]");
                    let strict = parse_strict(&text, 8);
                    let scanned = check(&text, 8);
                    let shown = String::from_utf8_lossy(&text);
                    assert_eq!(
                        scanned.as_ref().map(|_| ()).map_err(Clone::clone),
                        strict.as_ref().map(|_| ()).map_err(Clone::clone),
                        "{shown}"
                    );
                    if let (Ok(checked), Ok(tree)) = (scanned, strict) {
                        let items = checked.array(checked.text()).unwrap();
                        assert_eq!(raw_value(items[0]).as_ref(), Some(&tree[0]), "{shown}");
                        assert_eq!(raw_str(items[0]).as_deref(), tree[0].as_str(), "{shown}");
                        let object = checked.object(items[1]).unwrap();
                        let key = tree[1].as_object().unwrap().keys().next().unwrap();
                        assert_eq!(object.members()[0].0, key.as_str(), "{shown}");
                    }
                }
            }
        }
    }

    /// Compares, for `part` and every value inside it, the split the check recorded with
    /// a fresh walk of the text; `depth` is how many containers hold `part`. Recorded
    /// splits are borrowed from the tables exactly down to `split_depth`.
    fn splits_agree(checked: &Checked<'_>, part: &str, depth: usize, split_depth: usize) {
        let pos = ws(checked.text.as_bytes(), checked.offset(part).unwrap());
        let recorded = depth <= split_depth;
        if let Some(object) = checked.object(part) {
            let walked = split_object(checked.text, pos).unwrap();
            assert_eq!(object.members(), &walked[..], "{part}");
            assert_eq!(
                matches!(object.members, Cow::Borrowed(_)),
                recorded,
                "{part}"
            );
            for (_, value) in object.members() {
                splits_agree(checked, value, depth + 1, split_depth);
            }
        } else if let Some(items) = checked.array(part) {
            let walked = split_array(checked.text, pos).unwrap();
            assert_eq!(*items, walked[..], "{part}");
            assert_eq!(matches!(items, Cow::Borrowed(_)), recorded, "{part}");
            for item in items.iter() {
                splits_agree(checked, item, depth + 1, split_depth);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::proptest_budget(256, 0x7370_6c69_7473))]

        #[test]
        fn recorded_members_are_a_fresh_split(
            value in crate::testing::json_value(6, 48, 6),
            pretty in proptest::bool::ANY,
            split_depth in 0usize..5,
        ) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                value.to_string()
            };
            let checked = check_split(text.as_bytes(), 16, split_depth).unwrap();
            splits_agree(&checked, checked.text(), 0, split_depth);
            let everything = check(text.as_bytes(), 16).unwrap();
            splits_agree(&everything, everything.text(), 0, usize::MAX);
        }
    }

    #[test]
    fn raw_values_read_as_serde_json_reads_them() {
        let text = r#"[true,false,null,"","plain","é€😀","a\"b","\\","\u0041\ud83d\ude00",
            0,-0,1,-1,1.0,-0.0,1e2,1E-2,123456789012345678901234567890,18446744073709551615,
            -9223372036854775808,{},[],{"a":[1,{"b":null}]},[" x "]]"#;
        let checked = check(text.as_bytes(), 8).unwrap();
        for raw in checked.array(checked.text()).unwrap().iter() {
            let expected: serde_json::Value = serde_json::from_str(raw).unwrap();
            assert_eq!(raw_value(raw), Some(expected.clone()), "{raw}");
            assert_eq!(raw_str(raw).as_deref(), expected.as_str(), "{raw}");
        }
    }

    #[test]
    fn keys_are_written_as_serde_json_writes_them() {
        let mut texts: Vec<String> = (0..=0x7f_u8).map(|c| format!("a{}b", c as char)).collect();
        texts.extend(["", "plain", "é€😀", "\u{2028}\u{2029}", "\u{fffd}"].map(String::from));
        for text in texts {
            let mut out = String::new();
            push_json_string(&mut out, &text);
            assert_eq!(out, serde_json::to_string(&text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn objects_split_into_raw_members_in_order() {
        let text = r#"{"z": [1, 2], "a\u0062": {"x": "y}"} , "n": null,"s":"a\"b","k":-1.5}"#;
        let checked = check(text.as_bytes(), 8).unwrap();
        let object = checked.object(checked.text()).unwrap();
        let keys: Vec<&str> = object.members().iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["z", "ab", "n", "s", "k"]);
        assert_eq!(object.get("z").unwrap(), "[1, 2]");
        assert_eq!(object.get("ab").unwrap(), r#"{"x": "y}"}"#);
        assert_eq!(object.get("s").unwrap(), r#""a\"b""#);
        assert_eq!(object.get("k").unwrap(), "-1.5");
        assert_eq!(first_byte(object.get("n").unwrap()), b'n');
        let items = checked.array(object.get("z").unwrap()).unwrap();
        assert_eq!(*items, ["1", "2"]);
        assert!(checked.object(object.get("z").unwrap()).is_none());
        assert!(checked.array(object.get("ab").unwrap()).is_none());

        let mut w = ObjectWriter::with_capacity(16);
        w.member("a\"b", "[1]");
        w.member("c", "null");
        w.open("o");
        w.member("d", "1");
        w.open("e");
        w.close();
        w.member("f", "2");
        w.close();
        w.member("g", "3");
        assert_eq!(
            w.finish(),
            r#"{"a\"b":[1],"c":null,"o":{"d":1,"e":{},"f":2},"g":3}"#
        );
    }
}
