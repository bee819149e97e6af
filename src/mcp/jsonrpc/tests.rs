//! Tests for strict parsing and classification.

use serde_json::json;

use super::*;

const DEPTH: usize = 16;

fn parse(json: &str) -> Result<Value, BodyError> {
    parse_strict(json.as_bytes(), DEPTH)
}

fn one(json: &str) -> Classified {
    let body = parse_request_body(json.as_bytes(), DEPTH).expect("body parses");
    assert!(!body.batch);
    assert_eq!(body.messages.len(), 1);
    body.messages.into_iter().next().expect("one message")
}

fn refused(json: &str) -> String {
    match parse_request_body(json.as_bytes(), DEPTH) {
        Err(BodyError::NotJsonRpc { reason }) => reason,
        other => panic!("expected NotJsonRpc for {json}, got {other:?}"),
    }
}

fn request(method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string()
}

fn action(method: &str, params: Value) -> McpAction {
    one(&request(method, params)).action
}

fn dup(key: &str) -> Result<Value, BodyError> {
    Err(BodyError::DuplicateKey {
        key: key.to_owned(),
    })
}

// ---- strict JSON ----

#[test]
fn parses_plain_json_keeping_key_order() {
    let value = parse(r#"{"b":1,"a":[true,null,-2,1.5,"x"],"c":{}}"#).expect("valid");
    assert_eq!(value, json!({"b":1,"a":[true,null,-2,1.5,"x"],"c":{}}));
    let keys: Vec<_> = value.as_object().expect("object").keys().cloned().collect();
    assert_eq!(keys, ["b", "a", "c"]);
    assert_eq!(parse(" 7 ").expect("scalar"), json!(7));
}

#[test]
fn duplicate_key_at_top_level() {
    assert_eq!(parse(r#"{"a":1,"a":2}"#), dup("a"));
    assert_eq!(parse(r#"{"a":1,"a":1}"#), dup("a"));
}

#[test]
fn duplicate_key_nested() {
    assert_eq!(parse(r#"{"p":{"x":{"name":1,"name":2}}}"#), dup("name"));
}

#[test]
fn duplicate_key_inside_array() {
    assert_eq!(parse(r#"[1,{"k":0},[{"z":1,"y":2,"z":3}]]"#), dup("z"));
}

#[test]
fn duplicate_key_via_unicode_escape() {
    assert_eq!(parse(r#"{"name":"a","n\u0061me":"b"}"#), dup("name"));
    assert_eq!(parse(r#"{"\u00e9":1,"é":2}"#), dup("é"));
    assert_eq!(parse(r#"{"\ud83d\ude00":1,"😀":2}"#), dup("😀"));
    assert_eq!(parse(r#"{"a\/b":1,"a/b":2}"#), dup("a/b"));
}

#[test]
fn same_key_in_sibling_objects_is_fine() {
    assert!(parse(r#"[{"a":1},{"a":2}]"#).is_ok());
    assert!(parse(r#"{"a":{"a":{"a":1}}}"#).is_ok());
}

#[test]
fn duplicate_key_in_request_is_refused() {
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","name":"evil"}}"#;
    assert_eq!(
        parse_request_body(body.as_bytes(), DEPTH),
        Err(BodyError::DuplicateKey { key: "name".into() })
    );
}

#[test]
fn depth_bound() {
    assert!(parse_strict(b"[[[1]]]", 3).is_ok());
    assert!(parse_strict(br#"{"a":{"b":[]}}"#, 3).is_ok());
    assert_eq!(
        parse_strict(b"[[[[1]]]]", 3),
        Err(BodyError::TooDeep { limit: 3 })
    );
    assert_eq!(
        parse_strict(br#"{"a":{"b":[{}]}}"#, 3),
        Err(BodyError::TooDeep { limit: 3 })
    );
    assert_eq!(parse_strict(b"{}", 0), Err(BodyError::TooDeep { limit: 0 }));
    assert!(parse_strict(b"\"x\"", 0).is_ok());
}

#[test]
fn depth_error_wins_over_later_garbage() {
    assert_eq!(
        parse_strict(b"[[[[1]]]] trailing", 2),
        Err(BodyError::TooDeep { limit: 2 })
    );
}

#[test]
fn serde_recursion_limit_is_a_backstop() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert!(matches!(
        parse_strict(deep.as_bytes(), 1000),
        Err(BodyError::Malformed { .. })
    ));
    let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(parse_strict(ok.as_bytes(), 1000).is_ok());
}

#[test]
fn malformed_inputs() {
    for bad in [
        &b""[..],
        b"   ",
        b"{",
        b"{\"a\":1} x",
        b"{\"a\":1}{}",
        b"[1,]",
        b"{\"a\":1,}",
        b"'a'",
        b"NaN",
        b"1e400",
        b"\"\xff\"",
        b"\"\xc3\"",
        b"\xef\xbb\xbf{}",
        b"\"\\ud800\"",
        b"{\"\\udc00\":1}",
        b"{\"a\" 1}",
    ] {
        assert!(
            matches!(parse_strict(bad, DEPTH), Err(BodyError::Malformed { .. })),
            "{:?} should be malformed",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn trailing_whitespace_is_fine() {
    assert!(parse_strict(b"{} \r\n\t", DEPTH).is_ok());
}

#[test]
fn error_codes() {
    let malformed = BodyError::Malformed { reason: "x".into() };
    assert_eq!(malformed.code(), crate::mcp::errors::PARSE_ERROR);
    assert_eq!(
        dup("a").unwrap_err().code(),
        crate::mcp::errors::INVALID_REQUEST
    );
}

// ---- message shapes ----

#[test]
fn single_request() {
    let c = one(r#"{"jsonrpc":"2.0","id":"abc","method":"ping"}"#);
    assert_eq!(c.id, Some(json!("abc")));
    assert_eq!(c.method.as_deref(), Some("ping"));
    assert_eq!(
        c.action,
        McpAction::Protocol {
            method: "ping".into()
        }
    );
    assert_eq!(c.protocol_version, None);
}

#[test]
fn notification_has_no_id() {
    let c = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    assert_eq!(c.id, None);
    assert_eq!(
        c.action,
        McpAction::Protocol {
            method: "notifications/initialized".into()
        }
    );
}

#[test]
fn responses() {
    let c = one(r#"{"jsonrpc":"2.0","id":5,"result":{"content":[]}}"#);
    assert_eq!(c.action, McpAction::Response);
    assert_eq!(c.id, Some(json!(5)));
    assert_eq!(c.method, None);
    let c = one(r#"{"jsonrpc":"2.0","id":"s-1","error":{"code":-1,"message":"no","data":{}}}"#);
    assert_eq!(c.action, McpAction::Response);
    let c = one(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}"#);
    assert_eq!(c.id, Some(Value::Null));
}

#[test]
fn bad_responses() {
    refused(r#"{"jsonrpc":"2.0","result":{}}"#);
    refused(r#"{"jsonrpc":"2.0","id":1}"#);
    refused(r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}"#);
    refused(r#"{"jsonrpc":"2.0","id":null,"result":{}}"#);
    refused(r#"{"jsonrpc":"2.0","id":1,"error":"bad"}"#);
    refused(r#"{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"m"}}"#);
    refused(r#"{"jsonrpc":"2.0","id":1,"error":{"code":1}}"#);
    refused(r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m","x":1}}"#);
    refused(r#"{"jsonrpc":"2.0","id":1,"result":{},"extra":1}"#);
}

#[test]
fn jsonrpc_version_is_required() {
    refused(r#"{"id":1,"method":"ping"}"#);
    refused(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#);
    refused(r#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#);
    refused(r#"{"jsonrpc":"2.0 ","id":1,"method":"ping"}"#);
}

#[test]
fn method_must_be_a_string() {
    refused(r#"{"jsonrpc":"2.0","id":1,"method":1}"#);
    refused(r#"{"jsonrpc":"2.0","id":1,"method":null}"#);
    refused(r#"{"jsonrpc":"2.0","id":1,"method":["tools/call"]}"#);
}

#[test]
fn request_must_not_carry_result_or_unknown_members() {
    refused(r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#);
    refused(r#"{"jsonrpc":"2.0","id":1,"method":"ping","error":{"code":1,"message":"m"}}"#);
    refused(r#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call"}"#);
}

#[test]
fn params_must_be_structured() {
    refused(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}"#);
    refused(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":null}"#);
    refused(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":3}"#);
    one(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[]}"#);
    one(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}"#);
}

#[test]
fn ids() {
    for good in [
        r#""x""#,
        "0",
        "-3",
        "9007199254740991",
        "-9007199254740991",
        r#""""#,
    ] {
        let c = one(&format!(
            r#"{{"jsonrpc":"2.0","id":{good},"method":"ping"}}"#
        ));
        assert_eq!(c.id, Some(serde_json::from_str(good).expect("json")));
    }
    for bad in [
        "null",
        "1.5",
        "1.0",
        "1e3",
        "true",
        "[1]",
        r#"{"a":1}"#,
        "9007199254740992",
        "-9007199254740992",
        "18446744073709551615",
        "100000000000000000000",
    ] {
        refused(&format!(
            r#"{{"jsonrpc":"2.0","id":{bad},"method":"ping"}}"#
        ));
    }
}

#[test]
fn top_level_shapes() {
    assert_eq!(refused("[]"), "empty batch");
    refused("1");
    refused(r#""x""#);
    refused("null");
    refused("[1]");
    refused(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},2]"#);
}

#[test]
fn batches() {
    let body = parse_request_body(
        br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},
             {"jsonrpc":"2.0","method":"notifications/progress"},
             {"jsonrpc":"2.0","id":1,"result":{}},
             {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t"}}]"#,
        DEPTH,
    )
    .expect("valid batch");
    assert!(body.batch);
    let actions: Vec<_> = body.messages.iter().map(|m| m.action.clone()).collect();
    assert_eq!(
        actions,
        [
            McpAction::List(ListKind::Tools),
            McpAction::Protocol {
                method: "notifications/progress".into()
            },
            McpAction::Response,
            McpAction::CallTool {
                name: "t".into(),
                arguments: json!({})
            },
        ]
    );
    let single = parse_request_body(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, DEPTH)
        .expect("batch of one");
    assert!(single.batch);
}

#[test]
fn batch_refuses_repeated_request_ids() {
    refused(
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},
            {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}]"#,
    );
    refused(r#"[{"jsonrpc":"2.0","id":"a","result":{}},{"jsonrpc":"2.0","id":"a","result":{}}]"#);
    // A string and a number are different ids.
    parse_request_body(
        br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":"1","method":"ping"}]"#,
        DEPTH,
    )
    .expect("distinct ids");
}

#[test]
fn one_bad_message_refuses_the_batch() {
    let reason = refused(
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call"}]"#,
    );
    assert!(reason.starts_with("batch element 1:"), "{reason}");
}

// ---- classification ----

#[test]
fn tools_call() {
    assert_eq!(
        action(
            "tools/call",
            json!({"name": "deploy", "arguments": {"env": "prod"}})
        ),
        McpAction::CallTool {
            name: "deploy".into(),
            arguments: json!({"env": "prod"})
        }
    );
    assert_eq!(
        action("tools/call", json!({"name": "deploy"})),
        McpAction::CallTool {
            name: "deploy".into(),
            arguments: json!({})
        }
    );
    refused(&request("tools/call", json!({})));
    refused(&request("tools/call", json!({"name": 5})));
    refused(&request("tools/call", json!({"name": null})));
    refused(&request("tools/call", json!(["deploy"])));
    refused(&request(
        "tools/call",
        json!({"name": "d", "arguments": [1]}),
    ));
    refused(&request(
        "tools/call",
        json!({"name": "d", "arguments": "x"}),
    ));
    refused(&request(
        "tools/call",
        json!({"name": "d", "arguments": null}),
    ));
    refused(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#);
}

#[test]
fn tools_call_name_is_unescaped() {
    let c = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/c\u0061ll","params":{"name":"de\u0070loy"}}"#,
    );
    assert_eq!(
        c.action,
        McpAction::CallTool {
            name: "deploy".into(),
            arguments: json!({})
        }
    );
    assert_eq!(c.mcp_name.as_deref(), Some("deploy"));
}

#[test]
fn resources() {
    assert_eq!(
        action("resources/read", json!({"uri": "file:///etc/passwd"})),
        McpAction::ReadResource {
            uri: "file:///etc/passwd".into()
        }
    );
    assert_eq!(
        action("resources/subscribe", json!({"uri": "u"})),
        McpAction::SubscribeResource {
            uri: "u".into(),
            unsubscribe: false
        }
    );
    assert_eq!(
        action("resources/unsubscribe", json!({"uri": "u"})),
        McpAction::SubscribeResource {
            uri: "u".into(),
            unsubscribe: true
        }
    );
    for method in [
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
    ] {
        refused(&request(method, json!({})));
        refused(&request(method, json!({"uri": 1})));
        refused(&request(method, json!({"name": "u"})));
    }
}

#[test]
fn prompts_get() {
    assert_eq!(
        action("prompts/get", json!({"name": "p", "arguments": {"a": "b"}})),
        McpAction::GetPrompt {
            name: "p".into(),
            arguments: json!({"a": "b"})
        }
    );
    assert_eq!(
        action("prompts/get", json!({"name": "p"})),
        McpAction::GetPrompt {
            name: "p".into(),
            arguments: json!({})
        }
    );
    refused(&request("prompts/get", json!({})));
    refused(&request(
        "prompts/get",
        json!({"name": "p", "arguments": []}),
    ));
}

#[test]
fn completion() {
    assert_eq!(
        action(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": ""}})
        ),
        McpAction::Complete {
            reference: CompletionRef::Prompt("p".into())
        }
    );
    assert_eq!(
        action(
            "completion/complete",
            json!({"ref": {"type": "ref/resource", "uri": "u"}})
        ),
        McpAction::Complete {
            reference: CompletionRef::Resource("u".into())
        }
    );
    for bad in [
        json!({}),
        json!({"ref": "p"}),
        json!({"ref": {"type": "ref/tool", "name": "t"}}),
        json!({"ref": {"type": "ref/prompt"}}),
        json!({"ref": {"type": "ref/prompt", "uri": "u"}}),
        json!({"ref": {"type": "ref/resource", "name": "n"}}),
        json!({"ref": {"name": "p"}}),
        json!({"ref": {"type": "Ref/Prompt", "name": "p"}}),
    ] {
        refused(&request("completion/complete", bad));
    }
}

#[test]
fn lists() {
    assert_eq!(
        action("tools/list", json!({})),
        McpAction::List(ListKind::Tools)
    );
    assert_eq!(
        action("resources/list", json!({"cursor": "c"})),
        McpAction::List(ListKind::Resources)
    );
    assert_eq!(
        action("resources/templates/list", json!({})),
        McpAction::List(ListKind::ResourceTemplates)
    );
    assert_eq!(
        action("prompts/list", json!({})),
        McpAction::List(ListKind::Prompts)
    );
    for kind in [
        ListKind::Tools,
        ListKind::Resources,
        ListKind::ResourceTemplates,
        ListKind::Prompts,
    ] {
        assert_eq!(action(kind.method(), json!({})), McpAction::List(kind));
    }
}

#[test]
fn protocol_methods() {
    for method in [
        "initialize",
        "ping",
        "server/discover",
        "logging/setLevel",
        "tasks/get",
        "tasks/result",
        "tasks/list",
        "tasks/cancel",
        "tasks/update",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/tools/list_changed",
    ] {
        assert_eq!(
            action(method, json!({})),
            McpAction::Protocol {
                method: method.into()
            },
            "{method}"
        );
    }
}

#[test]
fn other_methods_match_exactly() {
    for method in [
        "Tools/Call",
        "tools/call ",
        " tools/call",
        "tools/call\u{0}",
        "tools//call",
        "TOOLS/LIST",
        "Ping",
        "notifications/",
        "Notifications/initialized",
        "notifications",
        "tasks/get/x",
        "sampling/createMessage",
        "",
    ] {
        assert_eq!(
            action(method, json!({"name": "x", "uri": "u"})),
            McpAction::Other {
                method: method.into()
            },
            "{method:?}"
        );
    }
}

#[test]
fn protocol_version_from_meta() {
    let c = one(&request(
        "tools/list",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
    ));
    assert_eq!(c.protocol_version.as_deref(), Some("2026-07-28"));
    let c = one(&request(
        "tools/list",
        json!({"_meta": {"progressToken": 1}}),
    ));
    assert_eq!(c.protocol_version, None);
    refused(&request(
        "tools/list",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": 20260728}}),
    ));
    refused(&request("tools/list", json!({"_meta": "x"})));
}

#[test]
fn protocol_version_from_initialize() {
    let c = one(&request(
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}}),
    ));
    assert_eq!(c.protocol_version.as_deref(), Some("2025-11-25"));
    // Only `initialize` names it in `params.protocolVersion`.
    let c = one(&request(
        "tools/list",
        json!({"protocolVersion": "2025-11-25"}),
    ));
    assert_eq!(c.protocol_version, None);
    refused(&request("initialize", json!({"protocolVersion": 1})));
    let same = json!({"protocolVersion": "2026-07-28",
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}});
    assert_eq!(
        one(&request("initialize", same))
            .protocol_version
            .as_deref(),
        Some("2026-07-28")
    );
    refused(&request(
        "initialize",
        json!({"protocolVersion": "2025-11-25",
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
    ));
}

#[test]
fn mcp_name_is_recorded_per_method() {
    let name = |method: &str, params: Value| one(&request(method, params)).mcp_name;
    assert_eq!(
        name("tools/call", json!({"name": "t"})).as_deref(),
        Some("t")
    );
    assert_eq!(
        name("prompts/get", json!({"name": "p"})).as_deref(),
        Some("p")
    );
    assert_eq!(
        name("resources/read", json!({"uri": "u"})).as_deref(),
        Some("u")
    );
    assert_eq!(
        name("tasks/get", json!({"taskId": "t1"})).as_deref(),
        Some("t1")
    );
    assert_eq!(name("tasks/cancel", json!({"taskId": 3})), None);
    assert_eq!(name("tasks/list", json!({"taskId": "t1"})), None);
    assert_eq!(name("tools/list", json!({"name": "t"})), None);
}
