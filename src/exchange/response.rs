//! Filtering the upstream's answers: list results are cut down to what the caller may
//! use, whether they arrive as one `application/json` body or as events of a
//! `text/event-stream`, on the POST's own stream, a resumed GET stream, or any other
//! stream of the session.
//!
//! ## The rule: every list answer is filtered or withheld
//!
//! A JSON-RPC response in any answer the proxy reads is filtered as a list result when
//! - its id is that of a list request of this request's body, or one ever sent in the
//!   session — outstanding *or already answered* ([`ListScope::take`]): a second answer
//!   to the same id, on the same stream, in the same batch, on a GET stream (resumed with
//!   `Last-Event-ID` or not) or on a later POST's stream, is filtered like the first
//!   (also under the looser id forms a client may equate with it, [`lenient_keys`]);
//! - or its `result` *looks like* a list result, whatever its id: it holds `tools`,
//!   `resources`, `resourceTemplates` or `prompts` ([`list_shape`]). Each such array is
//!   filtered with its kind's listing rule.
//!
//! A message that must be filtered but cannot be — the array is not an array of
//! well-formed items, unparseable JSON, duplicate keys — is withheld and replaced by a
//! JSON-RPC error with its id: fail closed. Every `text/event-stream` answer is read
//! event by event (an SSE stream may carry any answer); an `application/json` answer is
//! read when its POST holds list requests or watched calls, or the session has list
//! requests outstanding, and list-shaped results in it are then filtered too. A JSON
//! body answering a POST with neither passes unread: it answers only that POST's own
//! requests, none of them a list (what a client reads as a call's result is the tool's
//! output, which the call's decision already allowed). Other messages pass byte for byte. In filtered tools, the operator's annotation
//! overrides replace the server's hints ([`ListScope::overrides`]), so clients see what
//! the proxy enforces.
//!
//! A filtered answer is written from the upstream's own bytes ([`crate::mcp::raw`]): the
//! kept items and everything around them go out as they came, after a check as strict as
//! the request parser's. A filtered list is the caller's own view, so its `cacheScope`
//! hint (MCP 2026-07-28) goes out `"private"`; a `ttlMs` or `cacheScope` the proxy cannot
//! read withholds the list.
//!
//! The same matching watches the answers to calls of taint sources
//! ([`ListScope::watching`], [`ListScope::answered`]; see [`crate::taint`]). Those answers
//! are never changed: the proxy only reads them to learn whether the call succeeded. A
//! message it cannot read while a call is watched is passed on (unless a list is also
//! outstanding) and reported with [`ListScope::unreadable`], which taints: it may have
//! been the data.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::mcp::raw::{
    check_split, first_byte, is_plain, raw_str, raw_value, Checked, ObjectWriter, RawObject,
};
use crate::mcp::sse::{SseEvent, SseFramer};
use crate::mcp::{id_key, ListKind};
use crate::policy::ItemAnnotations;

use super::refusal::Withheld;

/// Deepest JSON nesting accepted in an upstream list response.
pub const MAX_RESPONSE_DEPTH: usize = 128;

/// How deep the filter splits a message: the message (0), its `result` (1), a list (2),
/// an item (3), its `annotations` (4); one level more in a batch. The check records the
/// members of these levels as it reads them ([`check_split`]), and no deeper ones.
const SPLIT_DEPTH: usize = 4;

/// [`SPLIT_DEPTH`] for the document `bytes`: one more if it is a batch (an array).
fn split_depth(bytes: &[u8]) -> usize {
    let batch = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
        == Some(&b'[');
    SPLIT_DEPTH + usize::from(batch)
}

/// What the filter needs from the request it serves.
pub trait ListScope {
    /// Is any list request outstanding (cheap; decides whether events are parsed)?
    fn pending(&self) -> bool;
    /// Is any watched call (a taint source) awaiting its answer (cheap; also decides
    /// whether events are parsed)?
    fn watching(&self) -> bool {
        false
    }
    /// A response with this id key arrived: if it answers a watched call, judge it
    /// ([`crate::taint::call_outcome`]) and stop watching that call.
    fn answered(&mut self, _id_key: &str, _message: &Value) {}
    /// A message arrived that could not be read while calls were watched: it may have
    /// answered any of them.
    fn unreadable(&mut self) {}
    /// The list request answered by a response with this id key, if any; removes it.
    fn take(&mut self, id_key: &str) -> Option<ListKind>;
    /// The ids of this request's own list requests, for the errors that end a stream
    /// the proxy can no longer filter ([`SseFilter::push`]).
    fn own_list_ids(&self) -> Vec<Value> {
        Vec::new()
    }
    /// The operator's annotation overrides for a listed tool, written into the item.
    fn overrides(&self, _name: &str) -> Option<&Map<String, Value>> {
        None
    }
    /// The listing rule for one item (and a chance to learn its annotations and judge
    /// its definition against the pins; `item` is the whole list item).
    fn keep(
        &mut self,
        kind: ListKind,
        name: &str,
        annotations: Option<ItemAnnotations<'_>>,
        item: &ListItem<'_>,
    ) -> bool;
}

/// Counts of what filtering did, for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FilterStats {
    /// List results filtered.
    pub lists: usize,
    /// Items hidden.
    pub hidden: usize,
    /// Messages withheld because they could not be filtered.
    pub withheld: usize,
}

/// Filter the JSON-RPC message(s) of one JSON document (a response or a batch of them).
/// Returns `None` when nothing answered a list request (forward the original bytes).
///
/// The document is checked as strictly as [`parse_strict`](crate::mcp::parse_strict)
/// would read it, in one pass that builds no tree ([`check_split`]); filtered answers are
/// written from the upstream's own bytes: items that stay, and everything around them,
/// are copied as they came.
pub fn filter_document(
    bytes: &[u8],
    scope: &mut dyn ListScope,
    stats: &mut FilterStats,
) -> Option<Bytes> {
    filter_text(bytes, scope, stats).map(Bytes::from)
}

/// [`filter_document`] as text (an SSE event's data is written from it).
fn filter_text(bytes: &[u8], scope: &mut dyn ListScope, stats: &mut FilterStats) -> Option<String> {
    let checked = match check_split(bytes, MAX_RESPONSE_DEPTH, split_depth(bytes)) {
        Ok(checked) => checked,
        Err(e) => {
            // We cannot tell which request this answers. A watched source call may have
            // been answered: taint. A client might parse it more leniently than we do, so
            // it must not pass while lists are outstanding.
            let watched = scope.watching();
            if watched {
                tracing::warn!(error = %e, "unreadable upstream message while a taint source call is outstanding");
                scope.unreadable();
                if !scope.pending() {
                    return None;
                }
            }
            tracing::warn!(error = %e, "withholding unparseable upstream message");
            stats.withheld += 1;
            return Some(unfilterable_body());
        }
    };
    let text = checked.text();
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        let Some(items) = checked.array(trimmed) else {
            stats.withheld += 1;
            return Some(unfilterable_body());
        };
        let filtered: Vec<Option<String>> = items
            .iter()
            .map(|item| filter_message(&checked, item, scope, stats))
            .collect();
        if filtered.iter().all(Option::is_none) {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        out.push('[');
        for (index, (item, filtered)) in items.iter().zip(&filtered).enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(filtered.as_deref().unwrap_or(item));
        }
        out.push(']');
        Some(out)
    } else {
        filter_message(&checked, trimmed, scope, stats)
    }
}

/// [`Withheld::Unfilterable`]'s error without an id, as text.
fn unfilterable_body() -> String {
    Withheld::Unfilterable.error(None).to_string()
}

/// Filter one message (checked JSON text) if it answers a list request or looks like a
/// list result. Returns its new text if it did.
fn filter_message<'a>(
    checked: &Checked<'a>,
    text: &'a str,
    scope: &mut dyn ListScope,
    stats: &mut FilterStats,
) -> Option<String> {
    let message = checked.object(text)?;
    // Only answers are matched: a response ([`is_response`](crate::mcp::is_response)), or a malformed answer (an
    // `id` with neither `method`, `result` nor `error`), which the list filter withholds
    // rather than lets pass.
    let (method, result, error) = (
        message.contains("method"),
        message.contains("result"),
        message.contains("error"),
    );
    let malformed_answer = !method && !result && !error;
    let response = !method && (result || error);
    if !response && !malformed_answer {
        return None;
    }
    let id: Value = serde_json::from_str(message.get("id")?).ok()?;
    let key = id_key(&id);
    if scope.watching() {
        // The taint judgement reads the whole answer (rare: calls of taint sources).
        let whole: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        scope.answered(&key, &whole);
    }
    // A client may take a response for the answer to its request under a looser id
    // equality than the exact JSON text (`1.0` or `"1"` for `1`: the TypeScript SDK
    // compares `Number(id)`), so those forms answer an outstanding list too.
    let taken = scope
        .take(&key)
        .or_else(|| lenient_keys(&id).iter().find_map(|k| scope.take(k)));
    let result_object = message.get("result").and_then(|r| checked.object(r));
    let mut kinds = result_object
        .as_ref()
        .map(raw_list_shape)
        .unwrap_or_default();
    if let Some(kind) = taken {
        if !kinds.contains(&kind) {
            kinds.insert(0, kind);
        }
    }
    if kinds.is_empty() {
        return None;
    }
    match filter_lists(
        checked,
        &message,
        result_object.as_ref(),
        &kinds,
        scope,
        stats,
    ) {
        Ok(filtered) => filtered,
        Err(e) => {
            tracing::warn!(error = %e, list = kinds[0].method(), "withholding list result");
            stats.withheld += 1;
            Some(Withheld::Unfilterable.error(Some(&id)).to_string())
        }
    }
}

/// One list item, checked: its name and annotations read, the rest left as raw text.
struct ReadItem<'c, 'a> {
    raw: &'a str,
    name: Cow<'a, str>,
    annotations: Annotations<'c, 'a>,
}

/// An item's `annotations` as read: absent (or `null`), the raw members of the
/// upstream's object when every value is plain ([`ItemAnnotations::Raw`]), else parsed.
enum Annotations<'c, 'a> {
    Absent,
    Raw(RawObject<'c, 'a>),
    Parsed(Map<String, Value>),
}

impl Annotations<'_, '_> {
    /// What the listing rule is given.
    fn view(&self) -> Option<ItemAnnotations<'_>> {
        match self {
            Annotations::Absent => None,
            Annotations::Raw(object) => Some(ItemAnnotations::Raw(object.members())),
            Annotations::Parsed(map) => Some(ItemAnnotations::Map(map)),
        }
    }
}

/// Read one item of a `kind` list, `None` if it is not a well-formed list item: an
/// object with a string `kind.item_key()` and, if it has `annotations`, an object (or
/// `null`, read as absent) there.
///
/// The name and the annotations are read from the checked text's raw members
/// ([`raw_str`], [`is_plain`], [`raw_value`]): the same values `serde_json::from_str` gives.
fn read_item<'c, 'a>(
    checked: &'c Checked<'a>,
    raw: &'a str,
    kind: ListKind,
) -> Option<ReadItem<'c, 'a>> {
    let item = checked.object(raw)?;
    let name = item.get(kind.item_key())?;
    if first_byte(name) != b'"' {
        return None;
    }
    let name = raw_str(name)?;
    let annotations = match item.get("annotations") {
        None => Annotations::Absent,
        Some(a) if first_byte(a) == b'n' => Annotations::Absent,
        Some(a) if first_byte(a) == b'{' => {
            let object = checked.object(a)?;
            if object.members().iter().all(|(_, value)| is_plain(value)) {
                Annotations::Raw(object)
            } else {
                let mut map = Map::with_capacity(object.members().len());
                for (key, value) in object.members() {
                    map.insert(key.as_ref().to_owned(), raw_value(value)?);
                }
                Annotations::Parsed(map)
            }
        }
        Some(_) => return None,
    };
    Some(ReadItem {
        raw,
        name,
        annotations,
    })
}

/// Filter the `kinds` lists of one answer. `Ok(None)`: an error answer, passed as it is;
/// `Ok(Some(text))`: the answer rewritten; `Err`: it must be withheld. Nothing is asked
/// of the listing rule before the whole answer's shape has been checked.
fn filter_lists<'a>(
    checked: &Checked<'a>,
    message: &RawObject<'_, 'a>,
    result: Option<&RawObject<'_, 'a>>,
    kinds: &[ListKind],
    scope: &mut dyn ListScope,
    stats: &mut FilterStats,
) -> Result<Option<String>, FilterError> {
    match (message.contains("result"), message.contains("error")) {
        (false, true) => {
            stats.lists += kinds.len();
            return Ok(None);
        }
        (true, false) => {}
        (true, true) => return Err(unfilterable("both `result` and `error`")),
        (false, false) => return Err(unfilterable("neither `result` nor `error`")),
    }
    let result = result.ok_or_else(|| unfilterable("`result` is not an object"))?;
    check_cache_hints(result)?;
    let mut lists = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        let items = result
            .get(kind.result_key())
            .and_then(|a| checked.array(a))
            .ok_or_else(|| {
                unfilterable(format!("`result.{}` is not an array", kind.result_key()))
            })?;
        let items = items
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                read_item(checked, raw, kind).ok_or_else(|| {
                    unfilterable(format!(
                        "item {index} of `result.{}` has no string `{}` or bad `annotations`",
                        kind.result_key(),
                        kind.item_key()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        lists.push((kind, items));
    }
    let mut kept_lists = Vec::with_capacity(lists.len());
    for (kind, items) in lists {
        let before = items.len();
        let mut kept: Vec<Cow<'_, str>> = Vec::with_capacity(before);
        for item in items {
            let listed = scope.keep(
                kind,
                &item.name,
                item.annotations.view(),
                &ListItem::new(item.raw),
            );
            if listed {
                kept.push(with_overrides(kind, &item, scope));
            }
        }
        stats.lists += 1;
        stats.hidden += before - kept.len();
        kept_lists.push((kind, kept));
    }
    Ok(Some(write_answer(message, result, &kept_lists)))
}

/// The cache hints of MCP 2026-07-28 (`ttlMs`, `cacheScope`) must read as the
/// specification defines them: a non-negative integer, `"public"` or `"private"`. A hint
/// read one way here and another by a client or a cache is an odd shape.
fn check_cache_hints(result: &RawObject<'_, '_>) -> Result<(), FilterError> {
    if let Some(ttl) = result.get(TTL_MS) {
        if serde_json::from_str::<u64>(ttl).is_err() {
            return Err(unfilterable(format!(
                "`result.{TTL_MS}` is not a non-negative integer"
            )));
        }
    }
    if let Some(scope) = result.get(CACHE_SCOPE) {
        match serde_json::from_str::<String>(scope) {
            Ok(s) if s == "public" || s == "private" => {}
            _ => {
                return Err(unfilterable(format!(
                    "`result.{CACHE_SCOPE}` is not \"public\" or \"private\""
                )))
            }
        }
    }
    Ok(())
}

/// The `result` member naming how long a list stays fresh (MCP 2026-07-28).
pub const TTL_MS: &str = "ttlMs";
/// The `result` member naming who may cache a list (MCP 2026-07-28).
pub const CACHE_SCOPE: &str = "cacheScope";

/// An item's text as it goes out: as the upstream wrote it, or, for a tool the operator
/// overrides annotations of, with those written into its `annotations`.
fn with_overrides<'a>(
    kind: ListKind,
    item: &ReadItem<'_, 'a>,
    scope: &dyn ListScope,
) -> Cow<'a, str> {
    if kind != ListKind::Tools {
        return Cow::Borrowed(item.raw);
    }
    let Some(overrides) = scope.overrides(&item.name) else {
        return Cow::Borrowed(item.raw);
    };
    let Ok(mut tool) = serde_json::from_str::<Map<String, Value>>(item.raw) else {
        return Cow::Borrowed(item.raw);
    };
    let annotations = tool
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        // `null` (read as absent by the filter)
        *annotations = Value::Object(Map::new());
    }
    if let Some(annotations) = annotations.as_object_mut() {
        annotations.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Cow::Owned(Value::Object(tool).to_string())
}

/// The answer written again: every member as it came, `result`'s filtered lists from
/// the kept items, and `cacheScope: "private"` (the list is this caller's view; a shared
/// cache must not serve it to another).
fn write_answer(
    message: &RawObject<'_, '_>,
    result: &RawObject<'_, '_>,
    lists: &[(ListKind, Vec<Cow<'_, str>>)],
) -> String {
    // One buffer for the whole answer: no part is written twice.
    let capacity = message
        .members()
        .iter()
        .map(|(k, v)| k.len() + v.len() + 4)
        .sum::<usize>()
        + CACHE_SCOPE.len()
        + 16;
    let mut out = ObjectWriter::with_capacity(capacity);
    for (key, value) in message.members() {
        if key != "result" {
            out.member(key, value);
            continue;
        }
        out.open(key);
        let mut scoped = false;
        for (key, value) in result.members() {
            if let Some((_, kept)) = lists.iter().find(|(kind, _)| kind.result_key() == key) {
                let array = out.key(key);
                array.push('[');
                for (index, item) in kept.iter().enumerate() {
                    if index > 0 {
                        array.push(',');
                    }
                    array.push_str(item);
                }
                array.push(']');
            } else if key == CACHE_SCOPE {
                out.member(key, "\"private\"");
                scoped = true;
            } else {
                out.member(key, value);
            }
        }
        if !scoped {
            out.member(CACHE_SCOPE, "\"private\"");
        }
        out.close();
    }
    out.finish()
}

/// The list kinds a response's `result` looks like, whatever its id: each of `tools`,
/// `resources`, `resourceTemplates`, `prompts` it holds (any value: a non-array is then
/// unfilterable, so withheld).
fn raw_list_shape(result: &RawObject<'_, '_>) -> Vec<ListKind> {
    LIST_KINDS
        .into_iter()
        .filter(|kind| result.contains(kind.result_key()))
        .collect()
}

const LIST_KINDS: [ListKind; 4] = [
    ListKind::Tools,
    ListKind::Resources,
    ListKind::ResourceTemplates,
    ListKind::Prompts,
];

/// `raw_list_shape` of a parsed message.
pub fn list_shape(message: &Value) -> Vec<ListKind> {
    let Some(result) = message.get("result").and_then(Value::as_object) else {
        return Vec::new();
    };
    LIST_KINDS
        .into_iter()
        .filter(|kind| result.contains_key(kind.result_key()))
        .collect()
}

/// The upstream's answer has a shape the proxy cannot filter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unfilterable list result: {reason}")]
struct FilterError {
    reason: String,
}

fn unfilterable(reason: impl Into<String>) -> FilterError {
    FilterError {
        reason: reason.into(),
    }
}

/// One list item as the upstream wrote it, for the listing rule's bookkeeping (pinning
/// digests the whole definition): its raw text, parsed into an object only if asked.
#[derive(Debug)]
pub struct ListItem<'a> {
    raw: &'a str,
    object: std::sync::OnceLock<Map<String, Value>>,
}

impl<'a> ListItem<'a> {
    /// An item of checked text (one JSON object).
    pub fn new(raw: &'a str) -> Self {
        ListItem {
            raw,
            object: std::sync::OnceLock::new(),
        }
    }

    /// The item's JSON text, as the upstream wrote it.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The item as an object (parsed on first use).
    pub fn object(&self) -> &Map<String, Value> {
        self.object
            .get_or_init(|| serde_json::from_str(self.raw).unwrap_or_default())
    }
}

/// Largest integer every JSON implementation holds exactly (2^53 − 1).
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_991.0;

/// Other id keys a client might equate with `id`: when `id` reads as an integral number
/// (a number such as `1.0` or `1e0`, or a string such as `"1"`, `" 1"` or `"0x1"`, as
/// JavaScript's `Number()` reads them), the key of that integer and of its string form.
pub fn lenient_keys(id: &Value) -> Vec<String> {
    let number = match id {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => js_number(s),
        _ => None,
    };
    match number {
        Some(v) if v.fract() == 0.0 && v.abs() <= MAX_EXACT_INTEGER => {
            // Integral and exact: the cast cannot truncate.
            let int = v as i64;
            vec![int.to_string(), Value::String(int.to_string()).to_string()]
        }
        _ => Vec::new(),
    }
}

/// JavaScript's `Number(s)` for the forms an id could take, `None` for `NaN`.
fn js_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return Some(0.0);
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = t.strip_prefix(prefix) {
            return u64::from_str_radix(digits, radix).ok().map(|v| v as f64);
        }
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Buffers an `application/json` response whole, then filters it.
#[derive(Debug)]
pub struct JsonBuffer {
    buf: BytesMut,
    limit: usize,
    /// What to do with a body over `limit`: withhold it (lists) or pass it on.
    pass_oversized: bool,
    overflow: bool,
}

impl JsonBuffer {
    /// A buffer that holds at most `limit` bytes; a larger body is withheld. For answers
    /// that may hold list results.
    pub fn new(limit: usize) -> Self {
        JsonBuffer {
            buf: BytesMut::new(),
            limit,
            pass_oversized: false,
            overflow: false,
        }
    }

    /// A buffer for answers that are only watched (taint sources, no list outstanding):
    /// a body larger than `limit` is reported [`ListScope::unreadable`] and passed on.
    pub fn watching(limit: usize) -> Self {
        JsonBuffer {
            pass_oversized: true,
            ..JsonBuffer::new(limit)
        }
    }

    /// Add a chunk of the body; returns what to send the client now (nothing while
    /// buffering).
    pub fn push(&mut self, chunk: &[u8], scope: &mut dyn ListScope) -> Bytes {
        if self.overflow {
            return if self.pass_oversized {
                Bytes::copy_from_slice(chunk)
            } else {
                Bytes::new()
            };
        }
        if self.buf.len() + chunk.len() > self.limit {
            self.overflow = true;
            let mut buffered = std::mem::take(&mut self.buf);
            if self.pass_oversized {
                tracing::warn!(
                    limit = self.limit,
                    "answer to a taint source call too large to read; passing it on, tainted"
                );
                scope.unreadable();
                buffered.extend_from_slice(chunk);
                return buffered.freeze();
            }
            return Bytes::new();
        }
        self.buf.extend_from_slice(chunk);
        Bytes::new()
    }

    /// The rest of the body to send the client, filtered.
    pub fn finish(&mut self, scope: &mut dyn ListScope, stats: &mut FilterStats) -> Bytes {
        if self.overflow && self.pass_oversized {
            return Bytes::new();
        }
        if self.overflow {
            stats.withheld += 1;
            return Withheld::TooLarge.body();
        }
        let body = std::mem::take(&mut self.buf).freeze();
        filter_document(&body, scope, stats).unwrap_or(body)
    }
}

/// Filters a `text/event-stream` response event by event.
///
/// An event larger than the limit (an endless one included) cannot be filtered: what is
/// buffered of it is dropped, and the stream *ends* — the client gets one withheld-answer
/// error event per list request of its own POST (one with id `null` if none), and the
/// filter is then [`SseFilter::ended`]: it passes nothing more, and the proxy closes the
/// stream rather than leave the client waiting on an upstream that keeps sending.
#[derive(Debug)]
pub struct SseFilter {
    framer: SseFramer,
    events: Vec<SseEvent>,
    ended: bool,
}

impl SseFilter {
    /// A filter refusing single events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseFilter {
            framer: SseFramer::with_limit(max_event_bytes),
            events: Vec::new(),
            ended: false,
        }
    }

    /// An event was too large to filter: the stream ended with an error, and nothing
    /// more passes.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Feed one chunk; returns the bytes to send downstream now (whole events only).
    pub fn push(
        &mut self,
        chunk: &[u8],
        scope: &mut dyn ListScope,
        stats: &mut FilterStats,
    ) -> Bytes {
        if self.ended {
            return Bytes::new();
        }
        self.events.clear();
        let too_large = self.framer.push(chunk, &mut self.events).err();
        let mut out = BytesMut::new();
        for event in &self.events {
            out.extend_from_slice(&filter_event(event, scope, stats));
        }
        if let Some(e) = too_large {
            // An event too large to filter: drop what is buffered of it and end the
            // stream with an error in its place (an unfiltered answer never goes out,
            // and the client is not left waiting).
            tracing::warn!(error = %e, "SSE event too large to filter; ending the stream");
            stats.withheld += 1;
            if scope.watching() {
                scope.unreadable();
            }
            let mut ids: Vec<Option<Value>> = scope.own_list_ids().into_iter().map(Some).collect();
            if ids.is_empty() {
                ids.push(None);
            }
            for id in ids {
                let error = Withheld::TooLarge.error(id.as_ref()).to_string();
                out.extend_from_slice(b"event: message\ndata: ");
                out.extend_from_slice(error.as_bytes());
                out.extend_from_slice(b"\n\n");
            }
            self.ended = true;
            self.framer = SseFramer::new();
        }
        out.freeze()
    }

    /// End of stream: what is still buffered (an event ended by a lone `\r`, or an
    /// unfinished one some clients still deliver) goes through the same filter.
    pub fn finish(&mut self, scope: &mut dyn ListScope, stats: &mut FilterStats) -> Bytes {
        if self.ended {
            return Bytes::new();
        }
        let raw = self.framer.take_pending();
        if raw.is_empty() {
            return raw;
        }
        filter_event(&SseEvent { raw }, scope, stats)
    }
}

fn filter_event(event: &SseEvent, scope: &mut dyn ListScope, stats: &mut FilterStats) -> Bytes {
    let Some(data) = event.data() else {
        return event.raw.clone();
    };
    if data.trim().is_empty() {
        return event.raw.clone();
    }
    match filter_text(data.as_bytes(), scope, stats) {
        Some(filtered) => event.with_data(&filtered),
        None => event.raw.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::errors::UPSTREAM_UNFILTERABLE;
    use serde_json::json;
    use std::collections::HashMap;

    struct Scope {
        lists: HashMap<String, ListKind>,
        seen: Vec<String>,
    }
    impl ListScope for Scope {
        fn pending(&self) -> bool {
            !self.lists.is_empty()
        }
        fn own_list_ids(&self) -> Vec<Value> {
            let keys = self.lists.keys();
            keys.filter_map(|k| serde_json::from_str(k).ok()).collect()
        }
        fn take(&mut self, id_key: &str) -> Option<ListKind> {
            self.lists.remove(id_key)
        }
        fn keep(
            &mut self,
            _: ListKind,
            name: &str,
            _: Option<ItemAnnotations<'_>>,
            _: &ListItem<'_>,
        ) -> bool {
            self.seen.push(name.to_owned());
            name != "secret"
        }
    }

    fn scope(ids: &[&str]) -> Scope {
        Scope {
            lists: ids
                .iter()
                .map(|i| (i.to_string(), ListKind::Tools))
                .collect(),
            seen: vec![],
        }
    }

    fn tools_result(id: Value) -> Value {
        json!({"jsonrpc":"2.0","id":id,"result":{"tools":[{"name":"echo"},{"name":"secret"}],"nextCursor":"c2"}})
    }

    #[test]
    fn json_list_result_is_filtered_and_cursor_kept() {
        let mut s = scope(&["1"]);
        let mut stats = FilterStats::default();
        let mut b = JsonBuffer::new(1 << 20);
        let body = tools_result(json!(1)).to_string();
        let (a, c) = body.as_bytes().split_at(10);
        b.push(a, &mut s);
        b.push(c, &mut s);
        let out: Value = serde_json::from_slice(&b.finish(&mut s, &mut stats)).unwrap();
        assert_eq!(out["result"]["tools"], json!([{"name":"echo"}]));
        assert_eq!(out["result"]["nextCursor"], "c2");
        assert_eq!(stats.hidden, 1);
    }

    #[test]
    fn kept_items_and_the_rest_go_out_as_the_upstream_wrote_them() {
        // Odd but valid spacing, escapes and number forms survive: the filter copies the
        // upstream's bytes of what stays instead of writing a tree again.
        let body = "{ \"jsonrpc\" : \"2.0\", \"id\" : 1, \"result\" : { \"tools\" : [ \
            {\"name\" : \"echo\", \"inputSchema\": {\"maximum\": 1.50E+3, \"d\": \"\\u00e9\"}} , \
            {\"name\": \"secret\"} ], \"nextCursor\" : \"c\\/2\" } }";
        let mut stats = FilterStats::default();
        let out = filter_document(body.as_bytes(), &mut scope(&["1"]), &mut stats).unwrap();
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(
            out,
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[\
             {\"name\" : \"echo\", \"inputSchema\": {\"maximum\": 1.50E+3, \"d\": \"\\u00e9\"}}],\
             \"nextCursor\":\"c\\/2\",\"cacheScope\":\"private\"}}"
        );
        assert_eq!(stats.hidden, 1);
        // batches too: an element that answers no list goes out unchanged
        let batch = format!(
            "[ {} , {{\"jsonrpc\":\"2.0\", \"id\":9, \"result\":{{}}}} ]",
            tools_result(json!(1))
        );
        let out = filter_document(batch.as_bytes(), &mut scope(&["1"]), &mut stats).unwrap();
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            out.ends_with(",{\"jsonrpc\":\"2.0\", \"id\":9, \"result\":{}}]"),
            "{out}"
        );
        assert!(!out.contains("secret"));
    }

    #[test]
    fn filtered_lists_are_private_to_the_caller() {
        // whatever the server said (or if it said nothing), a filtered list is this
        // caller's view: `cacheScope` goes out "private", `ttlMs` as it was
        for hints in [
            json!({}),
            json!({"cacheScope":"public","ttlMs":60000}),
            json!({"cacheScope":"private","ttlMs":0}),
        ] {
            let mut message = tools_result(json!(1));
            message["result"]
                .as_object_mut()
                .unwrap()
                .extend(hints.as_object().unwrap().clone());
            let mut stats = FilterStats::default();
            let out = filter_document(
                message.to_string().as_bytes(),
                &mut scope(&["1"]),
                &mut stats,
            )
            .unwrap();
            let out: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(out["result"]["cacheScope"], "private", "{hints}");
            assert_eq!(out["result"].get("ttlMs"), hints.get("ttlMs"), "{hints}");
            assert_eq!(out["result"]["tools"], json!([{"name":"echo"}]));
        }
    }

    #[test]
    fn cache_hints_the_proxy_cannot_read_withhold_the_list() {
        for hints in [
            json!({"ttlMs":"60000"}),
            json!({"ttlMs":-1}),
            json!({"ttlMs":1.5}),
            json!({"ttlMs":null}),
            json!({"ttlMs":1e30}),
            json!({"cacheScope":"shared"}),
            json!({"cacheScope":""}),
            json!({"cacheScope":"Private"}),
            json!({"cacheScope":null}),
            json!({"cacheScope":["private"]}),
        ] {
            let mut message = tools_result(json!(1));
            message["result"]
                .as_object_mut()
                .unwrap()
                .extend(hints.as_object().unwrap().clone());
            let mut s = scope(&["1"]);
            let mut stats = FilterStats::default();
            let out = filter_document(message.to_string().as_bytes(), &mut s, &mut stats).unwrap();
            let out: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(out["error"]["code"], UPSTREAM_UNFILTERABLE, "{hints}");
            assert_eq!(out["id"], 1, "{hints}");
            assert_eq!(stats.withheld, 1, "{hints}");
            assert!(s.seen.is_empty(), "the listing rule is not asked: {hints}");
        }
    }

    #[test]
    fn every_item_is_checked_before_any_is_judged() {
        // a bad item late in the list (or in a second list) withholds the answer before
        // the listing rule sees the good ones
        for result in [
            json!({"tools":[{"name":"echo"},{"name":"b","annotations":7}]}),
            json!({"tools":[{"name":"echo"}],"prompts":[{"title":"no name"}]}),
            json!({"tools":[{"name":"echo"},["secret"]]}),
        ] {
            let message = json!({"jsonrpc":"2.0","id":1,"result":result});
            let mut s = scope(&["1"]);
            let mut stats = FilterStats::default();
            let out = filter_document(message.to_string().as_bytes(), &mut s, &mut stats).unwrap();
            let out: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(out["error"]["code"], UPSTREAM_UNFILTERABLE, "{result}");
            assert!(s.seen.is_empty(), "{result}");
        }
    }

    #[test]
    fn an_answer_under_an_id_a_client_equates_is_filtered_too() {
        for id in [
            json!(1.0),
            json!(1e0),
            json!("1"),
            json!(" 1"),
            json!("0x1"),
        ] {
            let mut s = scope(&["1"]);
            let mut stats = FilterStats::default();
            let mut b = JsonBuffer::new(1 << 20);
            b.push(tools_result(id.clone()).to_string().as_bytes(), &mut s);
            let out = b.finish(&mut s, &mut stats);
            assert!(!String::from_utf8_lossy(&out).contains("secret"), "id {id}");
            assert_eq!(stats.hidden, 1, "id {id}");
        }
        // A string request id answered by the number.
        let mut s = scope(&["\"7\""]);
        let mut stats = FilterStats::default();
        let mut b = JsonBuffer::new(1 << 20);
        b.push(tools_result(json!(7)).to_string().as_bytes(), &mut s);
        assert!(!String::from_utf8_lossy(&b.finish(&mut s, &mut stats)).contains("secret"));
        // Ids no client equates with an outstanding one are left alone.
        assert!(lenient_keys(&json!(1.5)).is_empty());
        assert!(lenient_keys(&json!("abc")).is_empty());
        assert!(lenient_keys(&json!(1e300)).is_empty());
    }

    #[test]
    fn a_batch_is_split_one_level_deeper() {
        assert_eq!(split_depth(b"{\"id\":1}"), SPLIT_DEPTH);
        assert_eq!(split_depth(b" \r\n\t[{\"id\":1}]"), SPLIT_DEPTH + 1);
        assert_eq!(split_depth(b""), SPLIT_DEPTH);
        // Items and their annotations in a batch read as in a message alone.
        let message = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
            {"name":"a","annotations":{"readOnlyHint":true,"title":"T"}},
            {"name":"secret","annotations":{"n":1}}]}}"#;
        let mut one = Recorder::default();
        let alone = filter_document(message.as_bytes(), &mut one, &mut FilterStats::default());
        let mut many = Recorder::default();
        let batch = format!("[{message}]");
        let batched = filter_document(batch.as_bytes(), &mut many, &mut FilterStats::default());
        assert_eq!(one.seen, many.seen);
        assert_eq!(one.seen.len(), 2);
        let alone: Value = serde_json::from_slice(&alone.unwrap()).unwrap();
        let batched: Value = serde_json::from_slice(&batched.unwrap()).unwrap();
        assert_eq!(batched, json!([alone]));
    }

    #[test]
    fn unrelated_json_passes_byte_for_byte() {
        let mut s = scope(&["1"]);
        let mut stats = FilterStats::default();
        let mut b = JsonBuffer::new(1 << 20);
        let body = br#"{"jsonrpc":"2.0", "id":2, "result":{}}"#;
        b.push(body, &mut s);
        assert_eq!(&b.finish(&mut s, &mut stats)[..], &body[..]);
    }

    #[test]
    fn duplicate_keys_in_a_list_answer_are_withheld() {
        let mut s = scope(&["1"]);
        let mut stats = FilterStats::default();
        let mut b = JsonBuffer::new(1 << 20);
        b.push(
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"result":{"tools":[{"name":"secret"}]}}"#,
            &mut s,
        );
        let out = b.finish(&mut s, &mut stats);
        assert!(!String::from_utf8_lossy(&out).contains("secret"));
        assert_eq!(stats.withheld, 1);
    }

    #[test]
    fn a_duplicate_key_deep_inside_an_item_withholds_the_answer() {
        for body in [
            // deep in a kept item's schema
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","inputSchema":{"properties":{"p":{"type":"string","t\u0079pe":"number"}}}}]}}"#,
            // the name twice, once escaped: which one a client reads is its choice
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","n\u0061me":"secret"}]}}"#,
            // in the annotations
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","annotations":{"readOnlyHint":true,"readOnlyHint":false}}]}}"#,
        ] {
            let mut stats = FilterStats::default();
            let out = filter_document(body.as_bytes(), &mut scope(&["1"]), &mut stats).unwrap();
            let out: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(out["error"]["code"], UPSTREAM_UNFILTERABLE, "{body}");
            assert_eq!(stats.withheld, 1, "{body}");
        }
    }

    #[test]
    fn escaped_names_are_judged_decoded() {
        let body = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"n\u0061me":"s\u0065cret"},{"name":"\u0065cho"}]}}"#;
        let mut stats = FilterStats::default();
        let out = filter_document(body.as_bytes(), &mut scope(&["1"]), &mut stats).unwrap();
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert!(!out.contains("s\\u0065cret"), "{out}");
        assert!(out.contains(r#"[{"name":"\u0065cho"}]"#), "{out}");
        assert_eq!(stats.hidden, 1);
    }

    #[test]
    fn wrong_shape_is_replaced_by_an_error_with_the_id() {
        let mut s = scope(&["1"]);
        let mut stats = FilterStats::default();
        let mut b = JsonBuffer::new(1 << 20);
        b.push(
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"secret"}}}"#,
            &mut s,
        );
        let out: Value = serde_json::from_slice(&b.finish(&mut s, &mut stats)).unwrap();
        assert_eq!(out["id"], 1);
        assert_eq!(out["error"]["code"], UPSTREAM_UNFILTERABLE);
    }

    #[test]
    fn oversized_json_is_withheld() {
        let mut s = scope(&["1"]);
        let mut stats = FilterStats::default();
        let mut b = JsonBuffer::new(8);
        b.push(tools_result(json!(1)).to_string().as_bytes(), &mut s);
        let out = b.finish(&mut s, &mut stats);
        assert!(!String::from_utf8_lossy(&out).contains("secret"));
    }

    #[test]
    fn sse_list_result_split_anywhere_is_filtered() {
        let stream = format!(
            ": keepalive\n\nid: 1\nevent: message\ndata: {}\n\ndata: {}\r\n\r\n",
            json!({"jsonrpc":"2.0","method":"notifications/message","params":{}}),
            tools_result(json!("abc")),
        );
        for split in 0..stream.len() {
            let mut s = Scope {
                lists: [("\"abc\"".to_owned(), ListKind::Tools)]
                    .into_iter()
                    .collect(),
                seen: vec![],
            };
            let mut stats = FilterStats::default();
            let mut f = SseFilter::new(1 << 20);
            let mut out = Vec::new();
            let (a, b) = stream.as_bytes().split_at(split);
            out.extend_from_slice(&f.push(a, &mut s, &mut stats));
            out.extend_from_slice(&f.push(b, &mut s, &mut stats));
            let text = String::from_utf8(out).unwrap();
            assert!(!text.contains("secret"), "split {split}: {text}");
            assert!(text.contains("\"echo\""), "split {split}");
            assert!(text.contains("notifications/message"), "split {split}");
            assert_eq!(stats.hidden, 1, "split {split}");
        }
    }

    #[test]
    fn sse_without_pending_lists_passes_other_answers_untouched() {
        let mut s = scope(&[]);
        let mut stats = FilterStats::default();
        let mut f = SseFilter::new(1 << 20);
        let body = "data: {\"jsonrpc\":\"2.0\", \"id\":1, \"result\":{\"content\":[]}}\n\n";
        let out = f.push(body.as_bytes(), &mut s, &mut stats);
        assert_eq!(&out[..], body.as_bytes());
        assert!(s.seen.is_empty());
    }

    #[test]
    fn a_list_id_answered_again_is_filtered_again() {
        // `take` keeps answering for an id (as the session table does)
        struct Sticky(Scope);
        impl ListScope for Sticky {
            fn pending(&self) -> bool {
                true
            }
            fn take(&mut self, id_key: &str) -> Option<ListKind> {
                self.0.lists.get(id_key).copied()
            }
            fn keep(
                &mut self,
                k: ListKind,
                n: &str,
                a: Option<ItemAnnotations<'_>>,
                i: &ListItem<'_>,
            ) -> bool {
                self.0.keep(k, n, a, i)
            }
        }
        let mut s = Sticky(scope(&["1"]));
        let mut stats = FilterStats::default();
        let mut f = SseFilter::new(1 << 20);
        let event = format!("data: {}\n\n", tools_result(json!(1)));
        let out = f.push(format!("{event}{event}").as_bytes(), &mut s, &mut stats);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(!text.contains("secret"), "{text}");
        assert_eq!((stats.lists, stats.hidden), (2, 2));
        let batch = format!("[{},{}]", tools_result(json!(1)), tools_result(json!(1)));
        let out = filter_document(batch.as_bytes(), &mut s, &mut stats).unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("secret"));
    }

    #[test]
    fn list_shaped_results_are_filtered_whatever_their_id() {
        for (result, kind) in [
            (json!({"tools":[{"name":"secret"}]}), ListKind::Tools),
            (json!({"resources":[{"uri":"secret"}]}), ListKind::Resources),
            (
                json!({"resourceTemplates":[{"uriTemplate":"secret"}]}),
                ListKind::ResourceTemplates,
            ),
            (json!({"prompts":[{"name":"secret"}]}), ListKind::Prompts),
        ] {
            let message = json!({"jsonrpc":"2.0","id":"other","result":result});
            assert_eq!(list_shape(&message), [kind]);
            let mut s = scope(&[]);
            let mut stats = FilterStats::default();
            let body = format!("data: {message}\n\n");
            let out = SseFilter::new(1 << 20).push(body.as_bytes(), &mut s, &mut stats);
            assert!(
                !String::from_utf8_lossy(&out).contains("secret"),
                "{kind:?}"
            );
            assert_eq!(stats.hidden, 1, "{kind:?}");
        }
        // two kinds in one result: both filtered
        let both = json!({"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"secret"}],"prompts":[{"name":"secret"}]}});
        let mut stats = FilterStats::default();
        let out = filter_document(both.to_string().as_bytes(), &mut scope(&[]), &mut stats);
        assert!(!String::from_utf8_lossy(&out.unwrap()).contains("secret"));
        assert_eq!(stats.hidden, 2);
        // a list-shaped result the filter cannot read is withheld
        for bad in [json!({"tools":{"name":"secret"}}), json!({"prompts":[7]})] {
            let message = json!({"jsonrpc":"2.0","id":3,"result":bad});
            let mut stats = FilterStats::default();
            let out = filter_document(message.to_string().as_bytes(), &mut scope(&[]), &mut stats)
                .unwrap();
            let out: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(out["error"]["code"], UPSTREAM_UNFILTERABLE);
            assert_eq!(out["id"], 3);
            assert_eq!(stats.withheld, 1);
        }
        // not list-shaped: results of other methods, errors, requests
        for other in [
            json!({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"tools"}]}}),
            json!({"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"tools"}}),
            json!({"jsonrpc":"2.0","id":1,"method":"x","params":{"tools":[]}}),
        ] {
            assert!(list_shape(&other).is_empty() || other.get("method").is_some());
            let mut stats = FilterStats::default();
            assert!(
                filter_document(other.to_string().as_bytes(), &mut scope(&[]), &mut stats)
                    .is_none()
            );
        }
    }

    #[test]
    fn operator_overrides_are_written_into_listed_tools() {
        struct Overriding(Scope, Map<String, Value>);
        impl ListScope for Overriding {
            fn pending(&self) -> bool {
                true
            }
            fn take(&mut self, id_key: &str) -> Option<ListKind> {
                self.0.take(id_key)
            }
            fn overrides(&self, name: &str) -> Option<&Map<String, Value>> {
                (name == "echo").then_some(&self.1)
            }
            fn keep(
                &mut self,
                k: ListKind,
                n: &str,
                a: Option<ItemAnnotations<'_>>,
                i: &ListItem<'_>,
            ) -> bool {
                self.0.keep(k, n, a, i)
            }
        }
        let overrides = json!({"openWorldHint": true});
        let mut s = Overriding(scope(&["1"]), overrides.as_object().unwrap().clone());
        let message = json!({"jsonrpc":"2.0","id":1,"result":{"tools":[
            {"name":"echo","annotations":{"openWorldHint":false,"readOnlyHint":true}},
            {"name":"other","annotations":{"openWorldHint":false}}]}});
        let mut stats = FilterStats::default();
        let out = filter_document(message.to_string().as_bytes(), &mut s, &mut stats).unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            out["result"]["tools"],
            json!([{"name":"echo","annotations":{"openWorldHint":true,"readOnlyHint":true}},
                {"name":"other","annotations":{"openWorldHint":false}}])
        );
        // a tool without annotations gets the overrides alone
        let mut s = Overriding(scope(&["1"]), overrides.as_object().unwrap().clone());
        let message =
            json!({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","annotations":null}]}});
        let out = filter_document(message.to_string().as_bytes(), &mut s, &mut stats).unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["result"]["tools"][0]["annotations"], overrides);
    }

    /// What the listing rule was given for one item: its name, annotations and raw text.
    type Seen = (String, Option<Map<String, Value>>, String);

    /// Records what the listing rule is given for each item.
    #[derive(Default)]
    struct Recorder {
        seen: Vec<Seen>,
    }
    impl ListScope for Recorder {
        fn pending(&self) -> bool {
            true
        }
        fn take(&mut self, _: &str) -> Option<ListKind> {
            Some(ListKind::Tools)
        }
        fn keep(
            &mut self,
            _: ListKind,
            name: &str,
            annotations: Option<ItemAnnotations<'_>>,
            item: &ListItem<'_>,
        ) -> bool {
            let annotations = annotations.map(|a| a.to_map().into_owned());
            self.seen
                .push((name.to_owned(), annotations, item.raw().to_owned()));
            !name.starts_with("secret")
        }
    }

    /// The names and annotations the rule sees, and the answer, are serde_json's reading
    /// of the upstream's text: what the filter read before it read raw members.
    fn reads_as_serde_json(text: &str) {
        let mut scope = Recorder::default();
        let mut stats = FilterStats::default();
        let out = filter_document(text.as_bytes(), &mut scope, &mut stats).expect("filtered");
        let message: Value = serde_json::from_str(text).unwrap();
        let tools = message["result"]["tools"].as_array().unwrap();
        assert_eq!(scope.seen.len(), tools.len(), "{text}");
        for ((name, annotations, raw), tool) in scope.seen.iter().zip(tools) {
            assert_eq!(Some(name.as_str()), tool["name"].as_str(), "{text}");
            let expected = match &tool.get("annotations") {
                None | Some(Value::Null) => None,
                Some(a) => Some(a.as_object().unwrap().clone()),
            };
            assert_eq!(annotations, &expected, "{text}");
            assert_eq!(&serde_json::from_str::<Value>(raw).unwrap(), tool, "{text}");
        }
        let out: Value = serde_json::from_slice(&out).unwrap();
        let mut expected = message.clone();
        let kept: Vec<Value> = tools
            .iter()
            .filter(|t| !t["name"].as_str().unwrap().starts_with("secret"))
            .cloned()
            .collect();
        expected["result"]["tools"] = Value::Array(kept);
        expected["result"]["cacheScope"] = json!("private");
        assert_eq!(out, expected, "{text}");
    }

    #[test]
    fn names_and_annotations_are_read_as_serde_json_reads_them() {
        let text = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
            {"name":"plain","annotations":{"readOnlyHint":true,"destructiveHint":false,"title":"T","x":null}},
            {"name":"secr\u0065t","annotations":{"readOnlyHint":false}},
            {"name":"esc\"aped\\ \u00e9\ud83d\ude00","annotations":{"t\u0069tle":"a\nb","n":-0,"m":1.0,"e":1e2,
                "big":123456789012345678901234567890,"u":18446744073709551615,"i":-9223372036854775808,
                "o":{"k":[1,{"z":"é"}]},"a":[],"s":"","u8":"€😀"}},
            {"name":"none"},
            {"name":"null","annotations":null},
            {"name":"empty","annotations":{}},
            {"annotations":{"readOnlyHint":true} , "name" : "spaced" , "inputSchema":{"type":"object"}}
        ],"nextCursor":"c"}}"#;
        reads_as_serde_json(text);
        // pretty-printed, as some servers write
        let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(text).unwrap());
        reads_as_serde_json(&pretty.unwrap());
    }

    fn annotation_value() -> impl proptest::strategy::Strategy<Value = Value> {
        crate::testing::json_value(3, 16, 4)
    }

    proptest::proptest! {
        #[test]
        fn generated_names_and_annotations_are_read_as_serde_json_reads_them(
            tools in proptest::collection::vec(
                (
                    "[a-z\\\\\"\u{0}-\u{1f}\u{e9}]{0,24}",
                    proptest::option::of(proptest::collection::btree_map(
                        "[a-zA-Z_\u{e9}\"\\\\\u{1}]{0,12}",
                        annotation_value(),
                        0..6,
                    )),
                    proptest::bool::ANY,
                ),
                0..6,
            ),
            pretty in proptest::bool::ANY,
        ) {
            let tools: Vec<Value> = tools
                .into_iter()
                .map(|(name, annotations, hide)| {
                    let name = if hide { format!("secret{name}") } else { name };
                    let mut tool = json!({"name": name, "inputSchema": {"type": "object"}});
                    if let Some(a) = annotations {
                        tool["annotations"] = Value::Object(a.into_iter().collect());
                    }
                    tool
                })
                .collect();
            let message = json!({"jsonrpc":"2.0","id":1,"result":{"tools":tools}});
            let text = if pretty {
                serde_json::to_string_pretty(&message).unwrap()
            } else {
                message.to_string()
            };
            reads_as_serde_json(&text);
        }
    }

    /// Watches source calls by id key, recording what the filter reported.
    #[derive(Default)]
    struct Watch {
        calls: HashMap<String, ()>,
        answered: Vec<(String, crate::taint::CallOutcome)>,
        unreadable: usize,
        parsed: bool,
    }
    impl ListScope for Watch {
        fn pending(&self) -> bool {
            false
        }
        fn watching(&self) -> bool {
            !self.calls.is_empty()
        }
        fn take(&mut self, _: &str) -> Option<ListKind> {
            self.parsed = true;
            None
        }
        fn keep(
            &mut self,
            _: ListKind,
            _: &str,
            _: Option<ItemAnnotations<'_>>,
            _: &ListItem<'_>,
        ) -> bool {
            true
        }
        fn answered(&mut self, id_key: &str, message: &Value) {
            if self.calls.remove(id_key).is_some() {
                self.answered
                    .push((id_key.to_owned(), crate::taint::call_outcome(message)));
            }
        }
        fn unreadable(&mut self) {
            self.unreadable += self.calls.len();
            self.calls.clear();
        }
    }

    fn watch(ids: &[&str]) -> Watch {
        Watch {
            calls: ids.iter().map(|i| (i.to_string(), ())).collect(),
            ..Watch::default()
        }
    }

    #[test]
    fn watched_answers_are_judged_and_passed_unchanged() {
        use crate::taint::CallOutcome;
        let ok = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"row"}]}}"#;
        let failed = r#"{"jsonrpc":"2.0","id":"x","result":{"content":[],"isError":true}}"#;
        let stream = format!(
            "data: {}\n\ndata: {ok}\n\ndata: {failed}\n\n",
            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{}})
        );
        for split in 0..stream.len() {
            let mut s = watch(&["3", "\"x\""]);
            let mut stats = FilterStats::default();
            let mut f = SseFilter::new(1 << 20);
            let (a, b) = stream.as_bytes().split_at(split);
            let mut out = f.push(a, &mut s, &mut stats).to_vec();
            out.extend_from_slice(&f.push(b, &mut s, &mut stats));
            assert_eq!(String::from_utf8(out).unwrap(), stream, "split {split}");
            let mut answered = s.answered.clone();
            answered.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(
                answered,
                [
                    ("\"x\"".to_owned(), CallOutcome::Failed),
                    ("3".to_owned(), CallOutcome::Succeeded)
                ],
                "split {split}"
            );
            assert_eq!(s.unreadable, 0);
        }

        let mut s = watch(&["3"]);
        let mut b = JsonBuffer::watching(1 << 20);
        assert!(b.push(ok.as_bytes(), &mut s).is_empty());
        let out = b.finish(&mut s, &mut FilterStats::default());
        assert_eq!(&out[..], ok.as_bytes());
        assert_eq!(s.answered, [("3".to_owned(), CallOutcome::Succeeded)]);
    }

    #[test]
    fn unreadable_answers_to_watched_calls_pass_and_are_reported() {
        // malformed JSON in an event
        let mut s = watch(&["3"]);
        let mut stats = FilterStats::default();
        let mut f = SseFilter::new(1 << 20);
        let body = "data: {\"id\":3,\"result\":\n\n";
        let out = f.push(body.as_bytes(), &mut s, &mut stats);
        assert_eq!(&out[..], body.as_bytes(), "passed on unchanged");
        assert_eq!((s.unreadable, stats.withheld), (1, 0));

        // duplicate keys in a JSON body
        let mut s = watch(&["3"]);
        let mut b = JsonBuffer::watching(1 << 20);
        let body = br#"{"jsonrpc":"2.0","id":3,"result":{"isError":true},"result":{}}"#;
        b.push(body, &mut s);
        assert_eq!(&b.finish(&mut s, &mut stats)[..], &body[..]);
        assert_eq!(s.unreadable, 1);

        // a JSON body over the limit is passed on at once, reported before it goes out
        let mut s = watch(&["3"]);
        let mut b = JsonBuffer::watching(8);
        assert!(b.push(b"{\"id\":", &mut s).is_empty());
        assert_eq!(s.unreadable, 0);
        assert_eq!(
            &b.push(b"3,\"result\"", &mut s)[..],
            b"{\"id\":3,\"result\""
        );
        assert_eq!(s.unreadable, 1);
        assert_eq!(&b.push(b":{}}", &mut s)[..], b":{}}");
        assert!(b.finish(&mut s, &mut stats).is_empty());

        // an SSE event over the limit
        let mut s = watch(&["3"]);
        let mut f = SseFilter::new(16);
        f.push(
            format!("data: {}\n\n", "x".repeat(64)).as_bytes(),
            &mut s,
            &mut stats,
        );
        assert_eq!(s.unreadable, 1);
    }

    #[test]
    fn an_event_too_large_ends_the_stream_with_an_error() {
        let mut stats = FilterStats::default();
        let mut s = scope(&["2"]);
        let mut f = SseFilter::new(64);
        let before = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
        let out = f.push(
            format!("{before}data: {{\"jsonrpc\":\"2.0\",\"id\":2,").as_bytes(),
            &mut s,
            &mut stats,
        );
        assert_eq!(&out[..], before.as_bytes(), "whole events before it pass");
        assert!(!f.ended());
        // the event never ends: past the limit, the stream ends with the error
        let out = f.push(&[b' '; 100], &mut s, &mut stats);
        assert!(f.ended());
        assert_eq!(stats.withheld, 1);
        let text = String::from_utf8(out.to_vec()).unwrap();
        let data = text.strip_prefix("event: message\ndata: ").unwrap();
        let error: Value = serde_json::from_str(data.trim_end()).unwrap();
        assert_eq!(error["id"], json!(2));
        assert_eq!(error["error"]["code"], UPSTREAM_UNFILTERABLE);
        assert!(text.ends_with("\n\n"));
        // nothing more passes, however much follows
        assert!(f
            .push(b"secret\n\ndata: {}\n\n", &mut s, &mut stats)
            .is_empty());
        assert!(f.finish(&mut s, &mut stats).is_empty());
        assert_eq!(stats.withheld, 1);
    }

    #[test]
    fn unwatched_answers_are_not_judged() {
        let mut stats = FilterStats::default();
        let mut f = SseFilter::new(1 << 20);
        let body = "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n";
        // a watched id parses, an unrelated answer is not judged
        let mut s = watch(&["9"]);
        f.push(body.as_bytes(), &mut s, &mut stats);
        assert!(s.parsed);
        assert!(s.answered.is_empty());
    }
}
