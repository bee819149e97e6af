//! The facts the proxy adds to the authorizer for one question. These names and arities
//! are the Biscuit request model; operators write policies and tokens carry checks
//! against them, so they are stable (the fact reference in `docs/src/biscuit.md` lists them too).
//!
//! | fact | when |
//! |---|---|
//! | `method($m)` | always: the JSON-RPC method (`"tools/call"`; `"response"` for a response) |
//! | `action($a)` | always: the action name, as in Cedar (`"call_tool"`, `"list_tools"`, `"protocol"`, …) |
//! | `tool($name)` | `tools/call` |
//! | `prompt($name)` | `prompts/get`, `completion/complete` of a prompt |
//! | `resource($uri)` | `resources/read`, `resources/subscribe`/`unsubscribe`, completion of a resource |
//! | `arg($name, $value)` | `tools/call`, `prompts/get`: one per top-level argument |
//! | `annotation($hint, $value)` | `tools/call`: one per tool annotation (hints default as in the MCP spec) |
//! | `pinned($name)` | `tools/call`: the tool's definition matches an approved pin (see [`crate::pins`]) |
//! | `invisible_characters($name)` | `tools/call`: the tool's definition carries invisible or control characters |
//! | `time($t)` | always: arrival time (a Datalog date) |
//! | `source_ip($ip)` | when the client address is known (text, e.g. `"10.0.0.7"`) |
//! | `session($id)` | when the request carries `Mcp-Session-Id` |
//! | `protocol_version($v)` | when known |
//! | `taint($label)` | one per taint label of the session and credential |
//! | `mtls_client($id)` | when the connection presented a verified client certificate: its SPIFFE ID, or its SHA-256 fingerprint (hex) when it has none |
//! | `mtls_spiffe_id($id)`, `mtls_subject($cn)`, `mtls_fingerprint($hex)` | with a verified client certificate: its SPIFFE ID (when it has one), subject CN (when not empty), fingerprint |
//! | `mtls_dns($name)` | one per DNS SAN of the verified client certificate |
//! | `auth_method($m)` | always: `"biscuit"`, `"jwt"`, `"api_key"`, `"mtls"` or `"anonymous"` |
//! | `caller($subject)` | always: the authenticated user |
//! | `caller_agent($a)` | when the credential names an agent |
//! | `caller_role($r)`, `caller_scope($s)` | one per role, per scope |
//!
//! Argument values: strings, booleans, integers and `null` as themselves; other
//! numbers as their JSON text (a string: Datalog has no floats); arrays as Datalog
//! arrays and objects as maps (string keys), recursively, at most
//! [`MAX_DEPTH`] deep. So `arg("filter", $f),
//! $f.get("status") == "open"` reads a nested field.
//!
//! The listing question for a tool (see [`super::BiscuitEngine`]) has the facts of a
//! `tools/call` of that tool with no `arg` facts.

use std::borrow::Cow;
use std::collections::HashMap;

use biscuit_auth::builder::{self, date, MapKey};
use biscuit_auth::datalog::{self, SymbolIndex, SymbolTable};
use serde_json::{Map, Value};

use crate::auth::Identity;
use crate::mcp::{methods, CompletionRef, ListKind, McpAction};
use crate::policy::{DefinitionFacts, ListedItem, RequestEnv, MAX_DEPTH};

/// An argument could not become a Datalog term (always a deny).
#[derive(Debug, thiserror::Error)]
#[error("argument `{name}` nests deeper than {MAX_DEPTH} levels")]
pub(crate) struct TooDeep {
    name: String,
}

/// A term of a request fact, borrowed from the request where it can be. A JSON value
/// has been checked to nest at most [`MAX_DEPTH`] levels when the fact was made.
#[derive(Debug, Clone)]
pub(crate) enum ReqTerm<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Date(u64),
    Json(&'a Value),
}

/// One request fact (every request fact has one or two terms): what the per-request
/// authorizer gets as a builder [`builder::Fact`] ([`ReqFact::to_builder`]) and the
/// loaded one directly in Datalog form ([`ReqFact::to_datalog`]); both are the same fact.
#[derive(Debug, Clone)]
pub(crate) struct ReqFact<'a> {
    pub(crate) name: &'static str,
    first: ReqTerm<'a>,
    second: Option<ReqTerm<'a>>,
}

fn fact<'a>(name: &'static str, term: ReqTerm<'a>) -> ReqFact<'a> {
    ReqFact {
        name,
        first: term,
        second: None,
    }
}

fn fact2<'a>(name: &'static str, first: ReqTerm<'a>, second: ReqTerm<'a>) -> ReqFact<'a> {
    ReqFact {
        name,
        first,
        second: Some(second),
    }
}

fn string(s: &str) -> ReqTerm<'_> {
    ReqTerm::Str(Cow::Borrowed(s))
}

/// Whether `value` (at `depth`) nests at most [`MAX_DEPTH`] levels: exactly when
/// [`json_term`] gives a term.
fn fits(value: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match value {
        Value::Array(items) => items.iter().all(|v| fits(v, depth + 1)),
        Value::Object(map) => map.values().all(|v| fits(v, depth + 1)),
        _ => true,
    }
}

/// A JSON value as a Datalog term (see the module docs).
pub(crate) fn json_term(value: &Value, depth: usize) -> Option<builder::Term> {
    use builder::Term;
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match value {
        Value::Null => Term::Null,
        Value::Bool(b) => Term::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Term::Integer(i),
            None => Term::Str(n.to_string()),
        },
        Value::String(s) => Term::Str(s.clone()),
        Value::Array(items) => Term::Array(
            items
                .iter()
                .map(|v| json_term(v, depth + 1))
                .collect::<Option<_>>()?,
        ),
        Value::Object(map) => Term::Map(
            map.iter()
                .map(|(k, v)| Some((MapKey::Str(k.clone()), json_term(v, depth + 1)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

/// The strings of a symbol table and their indices, to intern request strings without
/// [`SymbolTable::insert`]'s scan of the whole table (made once per loaded state).
#[derive(Clone)]
pub(crate) struct Interner {
    known: HashMap<Box<str>, SymbolIndex, foldhash::fast::RandomState>,
}

impl Interner {
    /// The interner of `table` as it is now (Biscuit's default symbols included).
    pub(crate) fn of(table: &SymbolTable) -> Self {
        let mut known = HashMap::default();
        // The default symbols have the indices below Biscuit's table offset (1024).
        let defaults = (0..1024).map_while(|i| table.get_symbol(i));
        for symbol in defaults.map(str::to_owned).chain(table.strings()) {
            if let Some(index) = table.get(&symbol) {
                known.entry(symbol.into_boxed_str()).or_insert(index);
            }
        }
        Interner { known }
    }

    /// The index of `s` in the table this interner was made of: what `table.insert(s)`
    /// gives for a `table` that is that one with strings appended since (appending moves
    /// none); for any other string `insert` looks it up or appends it itself.
    pub(crate) fn known(&self, s: &str) -> Option<SymbolIndex> {
        self.known.get(s).copied()
    }

    /// See [`Interner::known`]: `table.insert(s)`, for a `table` that is the one this
    /// interner was made of with strings appended since.
    pub(crate) fn intern(&self, table: &mut SymbolTable, s: &str) -> SymbolIndex {
        match self.known.get(s) {
            Some(&index) => index,
            None => table.insert(s),
        }
    }

    fn json(&self, table: &mut SymbolTable, value: &Value) -> datalog::Term {
        use datalog::Term;
        match value {
            Value::Null => Term::Null,
            Value::Bool(b) => Term::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Term::Integer(i),
                None => Term::Str(self.intern(table, &n.to_string())),
            },
            Value::String(s) => Term::Str(self.intern(table, s)),
            Value::Array(items) => Term::Array(items.iter().map(|v| self.json(table, v)).collect()),
            Value::Object(map) => {
                // In the order of the builder's `BTreeMap` of string keys, each key
                // interned before its value, as `builder::Term::convert` does.
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                Term::Map(
                    entries
                        .into_iter()
                        .map(|(k, v)| {
                            let key = datalog::MapKey::Str(self.intern(table, k));
                            (key, self.json(table, v))
                        })
                        .collect(),
                )
            }
        }
    }

    fn term(&self, table: &mut SymbolTable, term: &ReqTerm<'_>) -> datalog::Term {
        match term {
            ReqTerm::Str(s) => datalog::Term::Str(self.intern(table, s)),
            ReqTerm::Bool(b) => datalog::Term::Bool(*b),
            ReqTerm::Date(d) => datalog::Term::Date(*d),
            ReqTerm::Json(v) => self.json(table, v),
        }
    }
}

impl ReqTerm<'_> {
    fn to_builder(&self) -> builder::Term {
        match self {
            ReqTerm::Str(s) => builder::Term::Str(s.clone().into_owned()),
            ReqTerm::Bool(b) => builder::Term::Bool(*b),
            ReqTerm::Date(d) => builder::Term::Date(*d),
            // Checked when the fact was made: the value fits.
            ReqTerm::Json(v) => json_term(v, 1).unwrap_or(builder::Term::Null),
        }
    }
}

impl ReqFact<'_> {
    /// Whether the fact has no JSON term: then two such facts are the same Datalog
    /// fact exactly when [`ReqFact::same_plain`] says so.
    pub(crate) fn is_plain(&self) -> bool {
        !matches!(self.first, ReqTerm::Json(_)) && !matches!(self.second, Some(ReqTerm::Json(_)))
    }

    /// For two plain facts ([`ReqFact::is_plain`]): the same fact.
    pub(crate) fn same_plain(&self, other: &ReqFact<'_>) -> bool {
        fn same(a: &ReqTerm<'_>, b: &ReqTerm<'_>) -> bool {
            match (a, b) {
                (ReqTerm::Str(a), ReqTerm::Str(b)) => a == b,
                (ReqTerm::Bool(a), ReqTerm::Bool(b)) => a == b,
                (ReqTerm::Date(a), ReqTerm::Date(b)) => a == b,
                _ => false,
            }
        }
        self.name == other.name
            && same(&self.first, &other.first)
            && match (&self.second, &other.second) {
                (None, None) => true,
                (Some(a), Some(b)) => same(a, b),
                _ => false,
            }
    }

    /// The fact in builder form (for `AuthorizerBuilder::fact`).
    pub(crate) fn to_builder(&self) -> builder::Fact {
        let mut terms = Vec::with_capacity(2);
        terms.push(self.first.to_builder());
        terms.extend(self.second.as_ref().map(ReqTerm::to_builder));
        builder::Fact::new(self.name.to_owned(), terms)
    }

    /// The fact in Datalog form with the strings interned in `table` (whose interner is
    /// `interner`), in the order `builder::Fact::convert` interns them: exactly
    /// `self.to_builder().convert(table)`.
    pub(crate) fn to_datalog(&self, interner: &Interner, table: &mut SymbolTable) -> datalog::Fact {
        let name = interner.intern(table, self.name);
        let mut terms = Vec::with_capacity(2);
        terms.push(interner.term(table, &self.first));
        if let Some(second) = &self.second {
            terms.push(interner.term(table, second));
        }
        datalog::Fact {
            predicate: datalog::Predicate { name, terms },
        }
    }
}

/// The JSON-RPC method of an action.
fn method_of(action: &McpAction) -> &str {
    match action {
        McpAction::CallTool { .. } => methods::TOOLS_CALL,
        McpAction::ReadResource { .. } => methods::RESOURCES_READ,
        McpAction::SubscribeResource { unsubscribe, .. } => {
            if *unsubscribe {
                methods::RESOURCES_UNSUBSCRIBE
            } else {
                methods::RESOURCES_SUBSCRIBE
            }
        }
        McpAction::GetPrompt { .. } => methods::PROMPTS_GET,
        McpAction::Complete { .. } => methods::COMPLETION_COMPLETE,
        McpAction::List(kind) => kind.method(),
        McpAction::Protocol { method } | McpAction::Other { method } => method,
        McpAction::Response => "response",
    }
}

/// Facts about the caller and the environment, common to every question.
fn context_facts<'a>(identity: &'a Identity, env: &'a RequestEnv, out: &mut Vec<ReqFact<'a>>) {
    let builder::Term::Date(time) = date(&env.time) else {
        unreachable!("`date` gives a date")
    };
    out.push(fact("time", ReqTerm::Date(time)));
    if let Some(ip) = env.source_ip {
        out.push(fact(
            "source_ip",
            ReqTerm::Str(Cow::Owned(ip.to_canonical().to_string())),
        ));
    }
    if let Some(id) = &env.session_id {
        out.push(fact("session", string(id)));
    }
    if let Some(v) = &env.protocol_version {
        out.push(fact("protocol_version", string(v)));
    }
    for label in &env.taints {
        out.push(fact("taint", string(label)));
    }
    if let Some(cert) = &env.mtls {
        mtls_facts(cert, out);
    }
    out.push(fact("auth_method", string(identity.method.as_str())));
    out.push(fact("caller", string(&identity.subject)));
    if let Some(agent) = &identity.agent {
        out.push(fact("caller_agent", string(agent)));
    }
    for role in &identity.roles {
        out.push(fact("caller_role", string(role)));
    }
    for scope in &identity.scopes {
        out.push(fact("caller_scope", string(scope)));
    }
}

/// The connection's verified client certificate as facts (see the module docs).
fn mtls_facts<'a>(cert: &'a crate::auth::ClientCert, out: &mut Vec<ReqFact<'a>>) {
    let id = cert.spiffe_id.as_deref().unwrap_or(&cert.fingerprint);
    out.push(fact("mtls_client", string(id)));
    if let Some(spiffe) = &cert.spiffe_id {
        out.push(fact("mtls_spiffe_id", string(spiffe)));
    }
    if !cert.subject.is_empty() {
        out.push(fact("mtls_subject", string(&cert.subject)));
    }
    out.push(fact("mtls_fingerprint", string(&cert.fingerprint)));
    for name in &cert.dns {
        out.push(fact("mtls_dns", string(name)));
    }
}

/// The MCP spec's tool hints and their defaults (a hint declared as anything but a
/// boolean takes its default too), as `crate::policy::cedar::with_hint_defaults` fills
/// them in.
const HINTS: [&str; 4] = [
    "readOnlyHint",
    "destructiveHint",
    "idempotentHint",
    "openWorldHint",
];

/// The `annotation` facts: the declared annotations with the hint defaults, in key
/// order (`with_hint_defaults(annotations)` as facts, without building the map).
fn annotation_facts<'a>(annotations: Option<&'a Map<String, Value>>, out: &mut Vec<ReqFact<'a>>) {
    let declared_bool = |hint: &str| {
        annotations
            .and_then(|d| d.get(hint))
            .and_then(Value::as_bool)
    };
    let read_only = declared_bool("readOnlyHint").unwrap_or(false);
    let mut all: Vec<(&'a str, ReqTerm<'a>)> = Vec::with_capacity(8);
    for (key, value) in annotations.into_iter().flatten() {
        if HINTS.contains(&key.as_str()) && !value.is_boolean() {
            continue; // replaced by the default below
        }
        if fits(value, 1) {
            all.push((key, ReqTerm::Json(value)));
        }
    }
    let defaults = [false, !read_only, false, true];
    for (hint, default) in HINTS.into_iter().zip(defaults) {
        if declared_bool(hint).is_none() {
            all.push((hint, ReqTerm::Bool(default)));
        }
    }
    all.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (hint, term) in all {
        out.push(fact2("annotation", string(hint), term));
    }
}

fn tool_facts<'a>(
    name: &'a str,
    annotations: Option<&'a Map<String, Value>>,
    definition: DefinitionFacts,
    out: &mut Vec<ReqFact<'a>>,
) {
    out.push(fact("tool", string(name)));
    if definition.pinned {
        out.push(fact("pinned", string(name)));
    }
    if definition.invisible_characters {
        out.push(fact("invisible_characters", string(name)));
    }
    annotation_facts(annotations, out);
}

fn argument_facts<'a>(arguments: &'a Value, out: &mut Vec<ReqFact<'a>>) -> Result<(), TooDeep> {
    if let Value::Object(map) = arguments {
        for (name, value) in map {
            if !fits(value, 1) {
                return Err(TooDeep { name: name.clone() });
            }
            out.push(fact2("arg", string(name), ReqTerm::Json(value)));
        }
    }
    Ok(())
}

/// The facts for deciding `action`.
pub(crate) fn request_facts<'a>(
    identity: &'a Identity,
    action: &'a McpAction,
    annotations: Option<&'a Map<String, Value>>,
    definition: DefinitionFacts,
    env: &'a RequestEnv,
) -> Result<Vec<ReqFact<'a>>, TooDeep> {
    let mut out = Vec::with_capacity(24);
    out.push(fact("method", string(method_of(action))));
    out.push(fact("action", string(action.policy_action())));
    match action {
        McpAction::CallTool { name, arguments } => {
            tool_facts(name, annotations, definition, &mut out);
            argument_facts(arguments, &mut out)?;
        }
        McpAction::GetPrompt { name, arguments } => {
            out.push(fact("prompt", string(name)));
            argument_facts(arguments, &mut out)?;
        }
        McpAction::ReadResource { uri } | McpAction::SubscribeResource { uri, .. } => {
            out.push(fact("resource", string(uri)));
        }
        McpAction::Complete { reference } => match reference {
            CompletionRef::Prompt(name) => out.push(fact("prompt", string(name))),
            CompletionRef::Resource(uri) => out.push(fact("resource", string(uri))),
        },
        McpAction::List(_)
        | McpAction::Protocol { .. }
        | McpAction::Response
        | McpAction::Other { .. } => {}
    }
    context_facts(identity, env, &mut out);
    Ok(out)
}

/// The facts of the call a list item stands for that depend on the item; `annotations`
/// are the item's as a map ([`ItemAnnotations::to_map`](crate::policy::ItemAnnotations::to_map)).
pub(crate) fn item_facts<'a>(
    item: &ListedItem<'a>,
    annotations: Option<&'a Map<String, Value>>,
) -> Vec<ReqFact<'a>> {
    let mut out = Vec::with_capacity(8);
    match item.kind {
        ListKind::Tools => {
            out.push(fact("method", string(methods::TOOLS_CALL)));
            out.push(fact("action", string("call_tool")));
            tool_facts(item.name, annotations, item.definition, &mut out);
        }
        ListKind::Prompts => {
            out.push(fact("method", string(methods::PROMPTS_GET)));
            out.push(fact("action", string("get_prompt")));
            out.push(fact("prompt", string(item.name)));
        }
        ListKind::Resources | ListKind::ResourceTemplates => {
            out.push(fact("method", string(methods::RESOURCES_READ)));
            out.push(fact("action", string("read_resource")));
            out.push(fact("resource", string(item.name)));
        }
    }
    out
}

/// The facts of a listing that depend only on the caller and the environment.
pub(crate) fn caller_facts<'a>(identity: &'a Identity, env: &'a RequestEnv) -> Vec<ReqFact<'a>> {
    let mut out = Vec::with_capacity(16);
    context_facts(identity, env, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    fn printed(facts: &[ReqFact<'_>]) -> Vec<String> {
        let mut v: Vec<String> = facts.iter().map(|f| f.to_builder().to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn tools_call_facts() {
        let mut identity = Identity::anonymous();
        identity.roles = vec!["staff".into()];
        let env = RequestEnv {
            time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            source_ip: Some("::ffff:10.0.0.7".parse().unwrap()),
            session_id: Some("s1".into()),
            taints: vec!["phi".into()],
            protocol_version: Some("2025-06-18".into()),
            mtls: None,
        };
        let action = McpAction::CallTool {
            name: "search".into(),
            arguments: json!({"q": "x", "n": 3, "f": 1.5, "none": null, "tags": ["a"], "filter": {"k": true}}),
        };
        let mut annotations = Map::new();
        annotations.insert("readOnlyHint".into(), json!(true));
        let facts = printed(
            &request_facts(
                &identity,
                &action,
                Some(&annotations),
                DefinitionFacts {
                    pinned: true,
                    invisible_characters: false,
                },
                &env,
            )
            .unwrap(),
        );
        for want in [
            r#"method("tools/call")"#,
            r#"action("call_tool")"#,
            r#"tool("search")"#,
            r#"arg("q", "x")"#,
            r#"arg("n", 3)"#,
            r#"arg("f", "1.5")"#,
            r#"arg("none", null)"#,
            r#"arg("tags", ["a"])"#,
            r#"arg("filter", {"k": true})"#,
            r#"pinned("search")"#,
            r#"annotation("readOnlyHint", true)"#,
            r#"annotation("destructiveHint", false)"#,
            r#"annotation("openWorldHint", true)"#,
            r#"time(2023-11-14T22:13:20Z)"#,
            r#"source_ip("10.0.0.7")"#,
            r#"session("s1")"#,
            r#"protocol_version("2025-06-18")"#,
            r#"taint("phi")"#,
            r#"auth_method("anonymous")"#,
            r#"caller("anonymous")"#,
            r#"caller_role("staff")"#,
        ] {
            assert!(facts.contains(&want.to_owned()), "{want} not in {facts:#?}");
        }
    }

    fn rich_env() -> RequestEnv {
        RequestEnv {
            time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            source_ip: Some("10.0.0.7".parse().unwrap()),
            session_id: Some("s1".into()),
            taints: vec!["phi".into(), "phi".into()],
            protocol_version: Some("2025-06-18".into()),
            mtls: None,
        }
    }

    /// The Datalog form is exactly the builder form converted by Biscuit: the same facts,
    /// and the same symbols appended to the table in the same order, with strings the
    /// table knows, strings it does not (some twice), nested maps and arrays, numbers
    /// that are no integers and Biscuit's default symbols.
    #[test]
    fn datalog_facts_are_the_builder_facts_converted() {
        use biscuit_auth::builder::Convert;
        let mut identity = Identity::anonymous();
        identity.subject = "alice".into();
        identity.roles = vec!["staff".into(), "admin".into()];
        identity.scopes = vec!["mcp:tools".into()];
        identity.agent = Some("bot".into());
        let action = McpAction::CallTool {
            name: "get_weather".into(),
            arguments: json!({
                "city": "Paris", "again": "Paris", "units": "metric", "more": "metric",
                "n": 3, "f": 1.5, "big": 18446744073709551615u64, "none": null, "yes": true,
                "tags": ["a", "read", ["b", {"z": 1, "a": "y"}]],
                "filter": {"status": "open", "nested": {"k": [1, "x"]}, "alice": "time"},
            }),
        };
        let annotations = match json!({"title": "Weather", "readOnlyHint": true, "x": {"b": 1, "a": 2}})
        {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let env = rich_env();
        let facts = request_facts(
            &identity,
            &action,
            Some(&annotations),
            DefinitionFacts {
                pinned: true,
                invisible_characters: true,
            },
            &env,
        )
        .unwrap();
        let item = ListedItem {
            kind: ListKind::Tools,
            name: "echo",
            annotations: Some((&annotations).into()),
            definition: DefinitionFacts::default(),
        };
        let mut base = SymbolTable::new();
        for known in [
            "Paris",
            "tool",
            "call_tool",
            "arg",
            "x",
            "open",
            "readOnlyHint",
        ] {
            base.insert(known);
        }
        let interner = Interner::of(&base);
        let (mut ours, mut theirs) = (base.clone(), base.clone());
        for f in facts
            .iter()
            .chain(&item_facts(&item, Some(&annotations)))
            .chain(&caller_facts(&identity, &env))
        {
            let got = f.to_datalog(&interner, &mut ours);
            let want = f.to_builder().convert(&mut theirs);
            assert_eq!(got, want, "{}", f.to_builder());
        }
        assert_eq!(ours, theirs);
        assert!(ours.current_offset() > base.current_offset() + 10);
    }

    /// The `annotation` facts are `with_hint_defaults` of the declared annotations, each
    /// value that fits a term as one fact.
    #[test]
    fn annotation_facts_are_the_hint_defaults() {
        use crate::policy::cedar::with_hint_defaults;
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH + 1 {
            deep = json!([deep]);
        }
        let cases = [
            None,
            Some(json!({})),
            Some(json!({"readOnlyHint": true})),
            Some(json!({"readOnlyHint": false, "destructiveHint": false})),
            Some(json!({"readOnlyHint": "yes", "destructiveHint": 1, "idempotentHint": null})),
            Some(json!({"openWorldHint": false, "title": "t", "deep": deep, "o": {"a": [1]}})),
            Some(json!({"idempotentHint": true, "readOnlyHint": [true]})),
        ];
        for case in cases {
            let map = case.map(|v| match v {
                Value::Object(m) => m,
                _ => unreachable!(),
            });
            let mut got = Vec::new();
            annotation_facts(map.as_ref(), &mut got);
            let mut got: Vec<String> = got.iter().map(|f| f.to_builder().to_string()).collect();
            let mut want: Vec<String> = with_hint_defaults(map.as_ref())
                .iter()
                .filter_map(|(k, v)| {
                    let term = json_term(v, 1)?;
                    Some(
                        builder::Fact::new(
                            "annotation".into(),
                            vec![builder::Term::Str(k.clone()), term],
                        )
                        .to_string(),
                    )
                })
                .collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{map:?}");
        }
    }

    #[test]
    fn too_deep_arguments_are_an_error() {
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH + 1 {
            deep = json!([deep]);
        }
        let action = McpAction::CallTool {
            name: "t".into(),
            arguments: json!({ "deep": deep }),
        };
        let env = RequestEnv {
            time: UNIX_EPOCH,
            source_ip: None,
            session_id: None,
            taints: vec![],
            protocol_version: None,
            mtls: None,
        };
        let err = request_facts(
            &Identity::anonymous(),
            &action,
            None,
            DefinitionFacts::default(),
            &env,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`deep`"), "{err}");
    }
}
