//! The list filter: on any JSON the strict parser accepts, a filtered `tools/list`
//! answer holds no tool the rule hides (`secret*`), read back as a client would.
// The library's `src/mcp/` by path: it depends on nothing else of the crate, so the
// targets build with a few small dependencies instead of instrumenting Pingora and Cedar.
#[allow(dead_code, unused_imports)]
#[path = "../../src/mcp/mod.rs"]
mod mcp;

use mcp::{filter_list_response, parse_strict, ListKind};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(mut message) = parse_strict(data, 128) else {
            return;
        };
        let mut keep = |name: &str, _: Option<&serde_json::Map<String, serde_json::Value>>| {
            !name.starts_with("secret")
        };
        if filter_list_response(&mut message, ListKind::Tools, &mut keep).is_err() {
            return; // withheld by the caller
        }
        let text = message.to_string();
        let client: serde_json::Value = serde_json::from_str(&text).expect("own output reads");
        if let Some(tools) = client.pointer("/result/tools").and_then(|t| t.as_array()) {
            for tool in tools {
                if let Some(name) = tool.get("name").and_then(|n| n.as_str()) {
                    assert!(!name.starts_with("secret"), "hidden tool {name} passed");
                }
            }
        }
    });
}
