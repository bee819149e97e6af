//! Interop with `biscuit-python` (the bindings MCP+Biscuit prototypes use), both ways:
//! tokens it mints are accepted by the proxy and `token inspect`, and tokens
//! `mcp-warden token mint`/`attenuate` makes verify and authorize in it.

use std::process::Command;

use serde_json::{json, Value};

use crate::support::biscuit::{attenuate, example_policies, inspect, Keys, ENGINE_TOML};
use crate::support::client::{args, call_tool, list_tool_names, ClientBuilder, Revision};
use crate::support::interop::ensure_python;
use crate::support::upstream::{ResponseMode, UpstreamBuilder};
use crate::support::warden::Warden;

fn biscuit_tool(args: &[&str]) -> String {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/biscuit_tool.py");
    let out = Command::new(ensure_python())
        .arg(script)
        .args(args)
        .output()
        .expect("run biscuit_tool.py");
    assert!(
        out.status.success(),
        "biscuit_tool.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_minted_by_biscuit_python_are_accepted() {
    let keys = Keys::new();
    let private = keys.private("root1");
    let token = tokio::task::spawn_blocking(move || {
        biscuit_tool(&[
            "mint",
            "--private-key-file",
            private.to_str().unwrap(),
            "--root-key-id",
            "1",
            "--code",
            r#"user("alice"); right("tool", "echo"); right("tool", "whoami");"#,
            "--attenuate",
            r#"check if tool("echo");"#,
        ])
    })
    .await
    .unwrap();

    let report = inspect(&token, &keys.public("root1"));
    assert_eq!(report["root_key_id"], 1);
    assert_eq!(
        report["blocks"][1]["checks"],
        json!(["check if tool(\"echo\")"])
    );

    let up = UpstreamBuilder::new(ResponseMode::Json)
        .any_host()
        .start()
        .await;
    let warden = Warden::start(
        &up.url,
        &example_policies(),
        &format!("{ENGINE_TOML}{}", keys.auth_toml()),
    );
    let client = ClientBuilder::new(&warden.url, Revision::Modern)
        .bearer(&token)
        .connect()
        .await;
    assert_eq!(list_tool_names(&client).await, ["echo"]);
    call_tool(&client, "echo", args([("text", json!("from python"))]))
        .await
        .expect("echo");
    assert!(call_tool(&client, "whoami", json!({})).await.is_err());
    assert_eq!(up.seen.tool_calls(), ["echo"]);
    let call = up.seen.requests_for("tools/call").pop().unwrap();
    assert_eq!(call.header("x-mcp-user"), Some("alice"));
}

#[test]
fn tokens_minted_by_mcp_warden_verify_in_biscuit_python() {
    let keys = Keys::new();
    for (root, id) in [("root1", 1), ("root2", 2)] {
        let token = keys.mint(root, id, &[r#"user("alice")"#], &["--ttl", "1h"]);
        let narrowed = attenuate(&token, &["--check", r#"tool("echo")"#, "--ttl", "5m"]);
        let public = keys.public(root);
        let verify = |authorizer: &str| -> Value {
            serde_json::from_str(&biscuit_tool(&[
                "verify",
                "--public-key-file",
                public.to_str().unwrap(),
                "--token",
                &narrowed,
                "--authorize",
                authorizer,
            ]))
            .unwrap()
        };
        let ok = verify(r#"tool("echo"); allow if user("alice");"#);
        assert_eq!(ok["authorized"], 0, "{root}: {ok}");
        assert_eq!(ok["block_count"], 2);
        assert_eq!(ok["root_key_id"], id);
        assert_eq!(
            ok["revocation_ids"],
            inspect(&narrowed, &public)["revocation_ids"],
            "both sides agree on the revocation ids"
        );
        // The attenuation is enforced by biscuit-python too.
        let refused = verify(r#"tool("whoami"); allow if user("alice");"#);
        assert_eq!(refused["authorized"], Value::Null);
        assert!(
            refused["error"]
                .as_str()
                .unwrap()
                .contains("check if tool(\"echo\")"),
            "{refused}"
        );
    }
    // And a token signed by a key biscuit-python was not given does not verify there.
    let token = keys.mint("stranger", 1, &[r#"user("alice")"#], &[]);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/biscuit_tool.py");
    let out = Command::new(ensure_python())
        .arg(script)
        .args(["verify", "--public-key-file"])
        .arg(keys.public("root1"))
        .args(["--token", &token])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
