//! Filtering list results per caller, and matching responses to requests.
//!
//! A `tools/list` (or `resources/list`, `resources/templates/list`, `prompts/list`)
//! result shows a caller only what it may use. The filter removes items in place and
//! leaves everything else in the result (`nextCursor`, `_meta`, fields of later
//! revisions) untouched. A result it cannot read with certainty is an error, never
//! passed through: the caller withholds it (fail closed).

use serde_json::{Map, Value};

use super::ListKind;

/// The upstream's answer has a shape the proxy cannot filter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unfilterable list result: {reason}")]
pub struct FilterError {
    /// What is wrong.
    pub reason: String,
}

fn unfilterable(reason: impl Into<String>) -> FilterError {
    FilterError {
        reason: reason.into(),
    }
}

/// Filter one JSON-RPC response message to a list request in place. `keep` is called
/// with each item's name, its annotations and the whole item (for pinning, which digests
/// the definition). Returns how many items were removed.
///
/// An error response (`error` and no `result`) is left alone (`Ok(0)`). Otherwise
/// `result` must be an object holding `kind.result_key()` as an array of objects, each
/// with a string `kind.item_key()` and, if it has `annotations`, an object (or `null`,
/// read as absent) there. Any other shape is a [`FilterError`] and `message` is left
/// unchanged.
#[expect(
    clippy::type_complexity,
    reason = "the shared contract's signature; an alias would only hide what `keep` sees"
)]
pub fn filter_list_response(
    message: &mut Value,
    kind: ListKind,
    keep: &mut dyn FnMut(&str, Option<&Map<String, Value>>, &Map<String, Value>) -> bool,
) -> Result<usize, FilterError> {
    let Value::Object(message) = message else {
        return Err(unfilterable("the message is not an object"));
    };
    match (
        message.contains_key("result"),
        message.contains_key("error"),
    ) {
        (false, true) => return Ok(0),
        (true, false) => {}
        (true, true) => return Err(unfilterable("both `result` and `error`")),
        (false, false) => return Err(unfilterable("neither `result` nor `error`")),
    }
    let items = match message.get_mut("result") {
        Some(Value::Object(result)) => match result.get_mut(kind.result_key()) {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(unfilterable(format!(
                    "`result.{}` is not an array",
                    kind.result_key()
                )))
            }
        },
        _ => return Err(unfilterable("`result` is not an object")),
    };
    // Check every item before touching any, so a refusal leaves the message as it was.
    for (index, item) in items.iter().enumerate() {
        item_parts(item, kind).ok_or_else(|| {
            unfilterable(format!(
                "item {index} of `result.{}` has no string `{}` or bad `annotations`",
                kind.result_key(),
                kind.item_key()
            ))
        })?;
    }
    let before = items.len();
    items.retain(|item| match (item_parts(item, kind), item.as_object()) {
        (Some((name, annotations)), Some(object)) => keep(name, annotations, object),
        _ => false,
    });
    Ok(before - items.len())
}

/// An item's name and annotations, `None` if it is not a well-formed list item.
fn item_parts(item: &Value, kind: ListKind) -> Option<(&str, Option<&Map<String, Value>>)> {
    let item = item.as_object()?;
    let name = item.get(kind.item_key())?.as_str()?;
    let annotations = match item.get("annotations") {
        None | Some(Value::Null) => None,
        Some(Value::Object(annotations)) => Some(annotations),
        Some(_) => return None,
    };
    Some((name, annotations))
}

/// Whether `message` is a JSON-RPC response: an object with an `id`, no `method`, and
/// a `result` or an `error`.
pub fn is_response(message: &Value) -> bool {
    message.as_object().is_some_and(|m| {
        m.contains_key("id")
            && !m.contains_key("method")
            && (m.contains_key("result") || m.contains_key("error"))
    })
}

/// The id of a response message (see [`is_response`]), to match it to its request.
/// Compare ids as JSON values: `1` and `"1"` are different ids.
pub fn response_id(message: &Value) -> Option<&Value> {
    if is_response(message) {
        message.get("id")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    type Object = Map<String, Value>;

    fn keep_all_but<'a>(
        hidden: &'a [&'a str],
    ) -> impl FnMut(&str, Option<&Object>, &Object) -> bool + 'a {
        move |name, _, _| !hidden.contains(&name)
    }

    #[test]
    fn removes_denied_tools_and_keeps_the_rest_of_result() {
        let mut message = json!({
            "jsonrpc": "2.0", "id": 3,
            "result": {
                "tools": [
                    {"name": "read", "inputSchema": {}},
                    {"name": "delete", "inputSchema": {}},
                    {"name": "write", "inputSchema": {}}
                ],
                "nextCursor": "page-2",
                "_meta": {"k": "v"}
            }
        });
        let removed = filter_list_response(
            &mut message,
            ListKind::Tools,
            &mut keep_all_but(&["delete"]),
        );
        assert_eq!(removed, Ok(1));
        assert_eq!(
            message,
            json!({
                "jsonrpc": "2.0", "id": 3,
                "result": {
                    "tools": [
                        {"name": "read", "inputSchema": {}},
                        {"name": "write", "inputSchema": {}}
                    ],
                    "nextCursor": "page-2",
                    "_meta": {"k": "v"}
                }
            })
        );
    }

    #[test]
    fn passes_annotations_to_keep() {
        let mut message = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
            {"name": "a", "annotations": {"readOnlyHint": true}},
            {"name": "b", "annotations": {"readOnlyHint": false}},
            {"name": "c"},
            {"name": "d", "annotations": null}
        ]}});
        let mut seen = Vec::new();
        let removed = filter_list_response(&mut message, ListKind::Tools, &mut |name, ann, _| {
            seen.push((name.to_owned(), ann.cloned()));
            ann.and_then(|a| a.get("readOnlyHint"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        });
        assert_eq!(removed, Ok(3));
        assert_eq!(seen.len(), 4);
        assert_eq!(
            seen[0].1,
            json!({"readOnlyHint": true}).as_object().cloned()
        );
        assert_eq!(seen[2].1, None);
        assert_eq!(seen[3].1, None);
        assert_eq!(
            message["result"]["tools"],
            json!([{"name": "a", "annotations": {"readOnlyHint": true}}])
        );
    }

    #[test]
    fn each_kind_uses_its_keys() {
        let cases = [
            (
                ListKind::Resources,
                json!({"resources": [{"uri": "a"}, {"uri": "x"}]}),
            ),
            (
                ListKind::ResourceTemplates,
                json!({"resourceTemplates": [{"uriTemplate": "a"}, {"uriTemplate": "x"}]}),
            ),
            (
                ListKind::Prompts,
                json!({"prompts": [{"name": "a"}, {"name": "x"}]}),
            ),
            (
                ListKind::Tools,
                json!({"tools": [{"name": "a"}, {"name": "x"}]}),
            ),
        ];
        for (kind, result) in cases {
            let mut message = json!({"jsonrpc": "2.0", "id": 1, "result": result});
            assert_eq!(
                filter_list_response(&mut message, kind, &mut keep_all_but(&["x"])),
                Ok(1),
                "{kind:?}"
            );
            assert_eq!(
                message["result"][kind.result_key()]
                    .as_array()
                    .map(Vec::len),
                Some(1)
            );
        }
    }

    #[test]
    fn error_responses_pass_unchanged() {
        let original = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "x"}});
        let mut message = original.clone();
        let mut called = false;
        let removed = filter_list_response(&mut message, ListKind::Tools, &mut |_, _, _| {
            called = true;
            false
        });
        assert_eq!(removed, Ok(0));
        assert!(!called);
        assert_eq!(message, original);
    }

    #[test]
    fn empty_list_is_fine() {
        let mut message = json!({"jsonrpc": "2.0", "id": 1, "result": {"prompts": []}});
        assert_eq!(
            filter_list_response(&mut message, ListKind::Prompts, &mut |_, _, _| false),
            Ok(0)
        );
    }

    #[test]
    fn wrong_shapes_are_refused_and_left_unchanged() {
        let bad = [
            json!([1]),
            json!("x"),
            json!({"jsonrpc": "2.0", "id": 1}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {}, "error": {"code": 1, "message": "m"}}),
            json!({"jsonrpc": "2.0", "id": 1, "result": null}),
            json!({"jsonrpc": "2.0", "id": 1, "result": [{"name": "a"}]}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {}}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": {"name": "a"}}}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": null}}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {"prompts": [{"name": "a"}]}}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a"}, "b"]}}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a"}, {"name": 2}]}}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a"}, {"title": "b"}]}}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"uri": "a"}]}}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a", "annotations": []}]}}),
            json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a", "annotations": "ro"}]}}),
        ];
        for original in bad {
            let mut message = original.clone();
            let result = filter_list_response(&mut message, ListKind::Tools, &mut |_, _, _| false);
            assert!(result.is_err(), "{original}");
            assert_eq!(message, original);
        }
    }

    #[test]
    fn response_matching() {
        let ok = json!({"jsonrpc": "2.0", "id": 7, "result": {}});
        let err = json!({"jsonrpc": "2.0", "id": "a", "error": {"code": 1, "message": "m"}});
        assert!(is_response(&ok));
        assert_eq!(response_id(&ok), Some(&json!(7)));
        assert_eq!(response_id(&err), Some(&json!("a")));
        for not in [
            json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}),
            json!({"jsonrpc": "2.0", "method": "notifications/progress"}),
            json!({"jsonrpc": "2.0", "result": {}}),
            json!({"jsonrpc": "2.0", "id": 7}),
            json!([{"jsonrpc": "2.0", "id": 7, "result": {}}]),
        ] {
            assert!(!is_response(&not), "{not}");
            assert_eq!(response_id(&not), None);
        }
    }
}
