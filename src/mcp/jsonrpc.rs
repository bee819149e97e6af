//! Strict JSON-RPC 2.0 body parsing and classification.
//!
//! The proxy authorizes the body it parsed, and the upstream acts on the body it
//! parses. Wherever two parsers could read the same bytes differently, the body is
//! refused rather than guessed at:
//!
//! - **duplicate object keys** anywhere (compared after unescaping, so `"name"` and
//!   `"n\u0061me"` collide): serde_json keeps the last, other parsers the first;
//! - **nesting** deeper than the configured limit (serde_json's own recursion limit of
//!   128 stays as a backstop and is reported as malformed JSON);
//! - trailing bytes after the value, a leading byte order mark, invalid UTF-8, lone
//!   surrogates;
//! - members JSON-RPC 2.0 does not define, a request that also carries `result` or
//!   `error`, a response with both or neither;
//! - ids that are not strings or integers within ±(2^53 − 1): fractional ids are
//!   refused, and big integers could be rounded by a JavaScript upstream so that its
//!   response no longer matches the request it answers (and escapes list filtering);
//!   `null` ids are refused on requests (MCP forbids them) and allowed only on error
//!   responses;
//! - two requests (or two responses) with the same id in one batch.
//!
//! Method names are matched exactly, byte for byte, on the unescaped string:
//! `Tools/Call` is not `tools/call`, it is an unknown method that needs an explicit
//! permit.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::action::{mcp_name_key, methods};
use super::{Classified, CompletionRef, ListKind, McpAction};

/// The `params._meta` key naming the protocol revision (MCP 2026-07-28).
pub const PROTOCOL_VERSION_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";

/// The largest integer id accepted: 2^53 − 1, exact in every JSON implementation.
const MAX_SAFE_ID: u64 = (1 << 53) - 1;

/// A request body, parsed and classified.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedBody {
    /// `true` if the body was a JSON array (a batch).
    pub batch: bool,
    /// The messages, in body order (one for a non-batch body).
    pub messages: Vec<Classified>,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON.
    #[error("malformed JSON: {reason}")]
    Malformed {
        /// serde_json's message.
        reason: String,
    },
    /// An object has the same key twice.
    #[error("duplicate key `{key}`")]
    DuplicateKey {
        /// The repeated key (unescaped).
        key: String,
    },
    /// Nesting deeper than allowed.
    #[error("nesting deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// JSON, but not a JSON-RPC 2.0 message or batch.
    #[error("not a JSON-RPC message: {reason}")]
    NotJsonRpc {
        /// What is wrong.
        reason: String,
    },
}

impl BodyError {
    /// The JSON-RPC error code for this refusal.
    pub fn code(&self) -> i64 {
        match self {
            BodyError::Malformed { .. } => super::errors::PARSE_ERROR,
            _ => super::errors::INVALID_REQUEST,
        }
    }
}

/// The key a JSON-RPC id is remembered by (to match a response to its request): its
/// JSON text, so `1` and `"1"` differ.
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

fn not_rpc(reason: impl Into<String>) -> BodyError {
    BodyError::NotJsonRpc {
        reason: bounded(reason.into()),
    }
}

/// Longest text from the input a refusal carries (it reaches logs and audit lines).
const MAX_ECHO: usize = 256;

/// `text`, cut to at most [`MAX_ECHO`] bytes (on a character boundary) with `…` added.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_ECHO {
        let mut end = MAX_ECHO;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Parse JSON strictly: duplicate keys and nesting beyond `max_depth` are errors.
///
/// Depth counts the arrays and objects open at once: `1` has depth 0, `[]` and `{}`
/// depth 1, `{"a": [1]}` depth 2. Object key order is kept.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, BodyError> {
    let ctx = StrictCtx {
        max_depth,
        failure: Cell::new(None),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue {
        ctx: &ctx,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(value),
        Err(err) => Err(ctx.failure.take().unwrap_or(BodyError::Malformed {
            reason: err.to_string(),
        })),
    }
}

/// Shared state of one strict parse: the limit, and the first structural refusal
/// (serde errors are strings; this keeps the typed reason).
struct StrictCtx {
    max_depth: usize,
    failure: Cell<Option<BodyError>>,
}

impl StrictCtx {
    fn fail<E: de::Error>(&self, failure: BodyError) -> E {
        let err = E::custom(&failure);
        self.failure.set(Some(failure));
        err
    }
}

/// Builds a [`Value`] for one JSON value nested inside `depth` containers.
struct StrictValue<'c> {
    ctx: &'c StrictCtx,
    depth: usize,
}

impl<'c> StrictValue<'c> {
    /// The seed for the children of a container opened at this level.
    fn enter<E: de::Error>(&self) -> Result<StrictValue<'c>, E> {
        let depth = self.depth + 1;
        if depth > self.ctx.max_depth {
            return Err(self.ctx.fail(BodyError::TooDeep {
                limit: self.ctx.max_depth,
            }));
        }
        Ok(StrictValue {
            ctx: self.ctx,
            depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue {
            ctx: inner.ctx,
            depth: inner.depth,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(self.ctx.fail(BodyError::DuplicateKey { key: bounded(key) }));
            }
            let value = map.next_value_seed(StrictValue {
                ctx: inner.ctx,
                depth: inner.depth,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Parse and classify a request body.
///
/// A JSON object is one message; a non-empty array is a batch. Any message that is
/// not a well-formed JSON-RPC 2.0 request, notification or response refuses the whole
/// body.
pub fn parse_request_body(bytes: &[u8], max_depth: usize) -> Result<ParsedBody, BodyError> {
    match parse_strict(bytes, max_depth)? {
        Value::Object(message) => Ok(ParsedBody {
            batch: false,
            messages: vec![classify(message)?],
        }),
        Value::Array(items) if items.is_empty() => Err(not_rpc("empty batch")),
        Value::Array(items) => {
            let mut messages = Vec::with_capacity(items.len());
            let mut request_ids = HashSet::new();
            let mut response_ids = HashSet::new();
            for (index, item) in items.into_iter().enumerate() {
                let Value::Object(message) = item else {
                    return Err(not_rpc(format!("batch element {index} is not an object")));
                };
                let classified = classify(message).map_err(|err| match err {
                    BodyError::NotJsonRpc { reason } => {
                        not_rpc(format!("batch element {index}: {reason}"))
                    }
                    other => other,
                })?;
                if let Some(id) = &classified.id {
                    let seen = if classified.method.is_some() {
                        &mut request_ids
                    } else {
                        &mut response_ids
                    };
                    if !seen.insert(id.to_string()) {
                        return Err(not_rpc(format!("id `{id}` repeated in batch")));
                    }
                }
                messages.push(classified);
            }
            Ok(ParsedBody {
                batch: true,
                messages,
            })
        }
        _ => Err(not_rpc("body is neither an object nor an array")),
    }
}

/// Classify one message object.
fn classify(mut message: Map<String, Value>) -> Result<Classified, BodyError> {
    match message.get("jsonrpc") {
        Some(Value::String(version)) if version == "2.0" => {}
        _ => return Err(not_rpc("`jsonrpc` must be \"2.0\"")),
    }
    if message.contains_key("method") {
        classify_request(message)
    } else {
        check_members(&message, &["jsonrpc", "id", "result", "error"])?;
        let id = message
            .remove("id")
            .ok_or_else(|| not_rpc("a message without `method` is a response and needs `id`"))?;
        match (message.get("result"), message.get("error")) {
            (Some(_), None) => check_id(&id, false)?,
            (None, Some(error)) => {
                check_id(&id, true)?;
                check_error_object(error)?;
            }
            _ => {
                return Err(not_rpc(
                    "a response needs exactly one of `result` and `error`",
                ))
            }
        }
        Ok(Classified {
            id: Some(id),
            method: None,
            action: McpAction::Response,
            protocol_version: None,
            mcp_name: None,
        })
    }
}

/// Classify a request or notification (a message with `method`).
fn classify_request(mut message: Map<String, Value>) -> Result<Classified, BodyError> {
    check_members(&message, &["jsonrpc", "id", "method", "params"])?;
    let method = match message.remove("method") {
        Some(Value::String(method)) => method,
        _ => return Err(not_rpc("`method` must be a string")),
    };
    let id = message.remove("id");
    if let Some(id) = &id {
        check_id(id, false)?;
    }
    let params = match message.remove("params") {
        None => None,
        Some(Value::Object(params)) => Some(params),
        Some(Value::Array(_)) => None,
        Some(_) => return Err(not_rpc("`params` must be an object or an array")),
    };
    let protocol_version = protocol_version(&method, params.as_ref())?;
    let mcp_name = mcp_name_key(&method)
        .and_then(|key| params.as_ref()?.get(key)?.as_str())
        .map(str::to_owned);
    let action = classify_method(&method, params)?;
    Ok(Classified {
        id,
        method: Some(method),
        action,
        protocol_version,
        mcp_name,
    })
}

/// Refuse members JSON-RPC 2.0 does not define for this kind of message.
fn check_members(message: &Map<String, Value>, allowed: &[&str]) -> Result<(), BodyError> {
    match message.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(not_rpc(format!("unexpected member `{key}`"))),
        None => Ok(()),
    }
}

/// A request id: a string or an integer within ±(2^53 − 1); `null` only when
/// `null_ok` (error responses, which may answer an unparseable request).
fn check_id(id: &Value, null_ok: bool) -> Result<(), BodyError> {
    let ok = match id {
        Value::String(_) => true,
        Value::Null => null_ok,
        Value::Number(n) => n
            .as_i64()
            .map(|n| n.unsigned_abs() <= MAX_SAFE_ID)
            .or_else(|| n.as_u64().map(|n| n <= MAX_SAFE_ID))
            .unwrap_or(false),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(not_rpc(format!(
            "`id` must be a string or an integer within ±(2^53 − 1), got `{id}`"
        )))
    }
}

/// A JSON-RPC error object: integer `code`, string `message`, optional `data`.
fn check_error_object(error: &Value) -> Result<(), BodyError> {
    let Value::Object(error) = error else {
        return Err(not_rpc("`error` must be an object"));
    };
    check_members(error, &["code", "message", "data"])?;
    let code_ok = error.get("code").is_some_and(|c| c.is_i64());
    let message_ok = error.get("message").is_some_and(Value::is_string);
    if code_ok && message_ok {
        Ok(())
    } else {
        Err(not_rpc(
            "`error` needs an integer `code` and a string `message`",
        ))
    }
}

/// The protocol revision a request names: `params._meta[PROTOCOL_VERSION_META_KEY]`,
/// or for `initialize` `params.protocolVersion`. Both present and different is refused.
fn protocol_version(
    method: &str,
    params: Option<&Map<String, Value>>,
) -> Result<Option<String>, BodyError> {
    let Some(params) = params else {
        return Ok(None);
    };
    let from_meta = match params.get("_meta") {
        None => None,
        Some(Value::Object(meta)) => match meta.get(PROTOCOL_VERSION_META_KEY) {
            None => None,
            Some(Value::String(version)) => Some(version.as_str()),
            Some(_) => {
                return Err(not_rpc(format!(
                    "`params._meta[\"{PROTOCOL_VERSION_META_KEY}\"]` must be a string"
                )))
            }
        },
        Some(_) => return Err(not_rpc("`params._meta` must be an object")),
    };
    let from_initialize = if method == methods::INITIALIZE {
        match params.get("protocolVersion") {
            None => None,
            Some(Value::String(version)) => Some(version.as_str()),
            Some(_) => return Err(not_rpc("`params.protocolVersion` must be a string")),
        }
    } else {
        None
    };
    match (from_meta, from_initialize) {
        (Some(a), Some(b)) if a != b => Err(not_rpc(format!(
            "protocol version `{a}` in `_meta` disagrees with `protocolVersion` `{b}`"
        ))),
        (a, b) => Ok(a.or(b).map(str::to_owned)),
    }
}

/// Whether `method` is protocol plumbing (see [`McpAction::Protocol`]).
fn is_protocol_method(method: &str) -> bool {
    matches!(
        method,
        methods::INITIALIZE
            | methods::PING
            | methods::SERVER_DISCOVER
            | methods::LOGGING_SET_LEVEL
            | methods::SUBSCRIPTIONS_LISTEN
            | methods::TASKS_GET
            | methods::TASKS_RESULT
            | methods::TASKS_LIST
            | methods::TASKS_CANCEL
            | methods::TASKS_UPDATE
    ) || method
        .strip_prefix(methods::NOTIFICATIONS_PREFIX)
        .is_some_and(|rest| !rest.is_empty())
}

/// Map a method and its params to the action policies see.
fn classify_method(
    method: &str,
    params: Option<Map<String, Value>>,
) -> Result<McpAction, BodyError> {
    let list = |kind| Ok(McpAction::List(kind));
    match method {
        methods::TOOLS_CALL => {
            let mut params = require_params(method, params)?;
            Ok(McpAction::CallTool {
                name: take_string(&mut params, "name")?,
                arguments: take_arguments(&mut params)?,
            })
        }
        methods::PROMPTS_GET => {
            let mut params = require_params(method, params)?;
            Ok(McpAction::GetPrompt {
                name: take_string(&mut params, "name")?,
                arguments: take_arguments(&mut params)?,
            })
        }
        methods::RESOURCES_READ => {
            let mut params = require_params(method, params)?;
            Ok(McpAction::ReadResource {
                uri: take_string(&mut params, "uri")?,
            })
        }
        methods::RESOURCES_SUBSCRIBE | methods::RESOURCES_UNSUBSCRIBE => {
            let mut params = require_params(method, params)?;
            Ok(McpAction::SubscribeResource {
                uri: take_string(&mut params, "uri")?,
                unsubscribe: method == methods::RESOURCES_UNSUBSCRIBE,
            })
        }
        methods::COMPLETION_COMPLETE => {
            let mut params = require_params(method, params)?;
            let Some(Value::Object(mut reference)) = params.remove("ref") else {
                return Err(not_rpc("`params.ref` must be an object"));
            };
            let reference = match reference.get("type").and_then(Value::as_str) {
                Some("ref/prompt") => CompletionRef::Prompt(take_string(&mut reference, "name")?),
                Some("ref/resource") => {
                    CompletionRef::Resource(take_string(&mut reference, "uri")?)
                }
                _ => {
                    return Err(not_rpc(
                        "`params.ref.type` must be \"ref/prompt\" or \"ref/resource\"",
                    ))
                }
            };
            Ok(McpAction::Complete { reference })
        }
        methods::TOOLS_LIST => list(ListKind::Tools),
        methods::RESOURCES_LIST => list(ListKind::Resources),
        methods::RESOURCES_TEMPLATES_LIST => list(ListKind::ResourceTemplates),
        methods::PROMPTS_LIST => list(ListKind::Prompts),
        _ if is_protocol_method(method) => Ok(McpAction::Protocol {
            method: method.to_owned(),
        }),
        _ => Ok(McpAction::Other {
            method: method.to_owned(),
        }),
    }
}

fn require_params(
    method: &str,
    params: Option<Map<String, Value>>,
) -> Result<Map<String, Value>, BodyError> {
    params.ok_or_else(|| not_rpc(format!("`{method}` needs `params` as an object")))
}

/// Remove `key` from `object`; it must be a string.
fn take_string(object: &mut Map<String, Value>, key: &str) -> Result<String, BodyError> {
    match object.remove(key) {
        Some(Value::String(value)) => Ok(value),
        _ => Err(not_rpc(format!("`{key}` must be a string"))),
    }
}

/// `params.arguments`: an object, `{}` when absent.
fn take_arguments(params: &mut Map<String, Value>) -> Result<Value, BodyError> {
    match params.remove("arguments") {
        None => Ok(Value::Object(Map::new())),
        Some(arguments @ Value::Object(_)) => Ok(arguments),
        Some(_) => Err(not_rpc("`params.arguments` must be an object")),
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
