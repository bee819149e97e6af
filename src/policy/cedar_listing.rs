//! The Cedar listing rule in one pass: a list result's items are judged without
//! evaluating every policy once per item.
//!
//! Why: a list of 1,000 tools under 1,000 policies would otherwise cost a million
//! policy evaluations. Most items look the same to most policies: a policy that never
//! reads the resource's identity (its uid, `name` or `uri`) sees only what the item
//! declares (a tool's annotations and pinning facts), so every item with the same
//! declaration gets the same answer from it.
//!
//! At load time the policies of each listed action (`call_tool` in its list-time form,
//! `get_prompt` likewise, `read_resource`) are split in three:
//! - **blind**: no `resource == …`/`in` scope and conditions that read the resource only
//!   through the attributes an item declares (`resource.annotations`, `.pinned`,
//!   `.invisible_characters` of a tool; nothing of a prompt or a resource) and through
//!   *name tests*: `resource.name like "…"` or `resource.name == "…"` (`!=` too;
//!   `resource.uri` for a resource), whose truth depends on the item's name alone;
//! - **generic sensitive**: no `resource == …` scope, but conditions that may read the
//!   resource's identity (`resource.name like …`, `resource == …`, `resource is …`);
//! - **specific**: `resource == <uid>` scopes, kept by that uid.
//!
//! Per list, the blind set is evaluated once per *class* of items (same kind, same
//! declared attributes, same outcome of every name test) and the answer kept; for each
//! item, only the specific policies naming it and the generic sensitive ones are
//! evaluated. An item's class is found without building its Cedar entity (a key written
//! into a reused buffer from the annotations the blind policies read and the name
//! tests' bits); the entity is built only for the first item of a class and for items
//! that meet per-item policies. Cedar's partial answer is a
//! handful of flags that combine by "or" across disjoint policy sets ([`Flags`]), so the
//! combined answer is exactly the answer of evaluating all of them together (the unit
//! tests check it against the single-pass rule on generated policy sets).
//!
//! The blind answers outlive the list: they are kept with the caller ([`ClassAnswers`],
//! in the engine's caller cache, so per caller and generation), under the class key
//! prefixed with what the blind policies read of the context (`cedar_context.rs`'s
//! `write_inputs`: the session's taints when a policy reads `context.session`, the
//! second when one reads `context.time`, …). A caller's next list of the same catalogue
//! under the same context inputs then evaluates no blind policy at all.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use cedar_policy::{Effect, Entity, EntityUid, Policy, PolicySet, ResourceConstraint};
use parking_lot::Mutex;
use serde_json::Value;

use super::{engine_error, BuildError, CedarEngine, ListingParts};
use crate::auth::Identity;
use crate::mcp::ListKind;
use crate::policy::load::PolicyLoadError;
use crate::policy::{ItemAnnotations, ListedItem, Listing, RequestEnv};

/// What Cedar's partial answer says, reduced to what the listing rule reads. Each flag
/// is an "or" over the evaluated policies, so the flags of disjoint sets combine with
/// [`Flags::or`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Flags {
    /// A `forbid` errored whatever the arguments (fail closed: hides).
    forbid_errored: bool,
    /// A `forbid` is satisfied whatever the arguments.
    forbid_satisfied: bool,
    /// A `permit` is satisfied whatever the arguments.
    permit_satisfied: bool,
    /// A `permit` depends on the arguments (some call might be allowed).
    permit_residual: bool,
}

impl Flags {
    pub(super) fn of(engine: &CedarEngine, response: &cedar_policy::PartialResponse) -> Self {
        let mut flags = Flags {
            forbid_errored: response
                .definitely_errored()
                .any(|id| engine.forbids.contains(id)),
            ..Flags::default()
        };
        for policy in response.definitely_satisfied() {
            match policy.effect() {
                Effect::Forbid => flags.forbid_satisfied = true,
                Effect::Permit => flags.permit_satisfied = true,
            }
        }
        flags.permit_residual = response
            .nontrivial_residuals()
            .any(|p| p.effect() == Effect::Permit);
        flags
    }

    fn or(self, other: Flags) -> Flags {
        Flags {
            forbid_errored: self.forbid_errored || other.forbid_errored,
            forbid_satisfied: self.forbid_satisfied || other.forbid_satisfied,
            permit_satisfied: self.permit_satisfied || other.permit_satisfied,
            permit_residual: self.permit_residual || other.permit_residual,
        }
    }

    /// Hidden whatever the other policies say.
    fn hides(self) -> bool {
        self.forbid_errored || self.forbid_satisfied
    }

    /// The listing rule on Cedar's partial decision: a concrete deny (a satisfied or
    /// erroring forbid, or no permit that can hold) hides; a concrete allow or a
    /// residual (the answer depends on the arguments) lists. A residual `forbid` cannot
    /// hide: some arguments may avoid it.
    pub(super) fn listed(self) -> bool {
        !self.hides() && (self.permit_satisfied || self.permit_residual)
    }
}

/// The policies of one listed action, split for one-pass listing (module docs).
pub(super) struct ListingIndex {
    blind: PolicySet,
    /// The annotations the blind policies read (`resource.annotations.<key>` or
    /// `has <key>`); `None` if one reads the record whole. Only these tell classes apart.
    annotation_keys: Option<Vec<String>>,
    /// The name tests the blind policies make (deduplicated): one bit of an item's
    /// class each.
    name_tests: Vec<NameTest>,
    generic_sensitive: PolicySet,
    /// For each uid named by a `resource == …` scope: those policies plus the generic
    /// sensitive ones.
    by_resource: HashMap<EntityUid, PolicySet>,
    /// The ids of `by_resource`'s uids: an item whose name is none of them meets only
    /// the generic sensitive policies (no uid needs building to know).
    named: HashSet<String, foldhash::fast::RandomState>,
    /// The context attributes the blind policies read (`context.<attr>`, `context has
    /// <attr>`); `None` if one reads the context whole. Their inputs key the blind
    /// answers kept across lists.
    context_attrs: Option<Vec<String>>,
}

impl ListingIndex {
    /// Splits `policies`; `declared` are the resource attributes an item declares,
    /// `identity` the attribute that holds its name (`name`, or `uri` for a resource).
    pub(super) fn build<'a>(
        policies: impl IntoIterator<Item = &'a Policy>,
        declared: &[&str],
        identity: &str,
    ) -> Result<Self, PolicyLoadError> {
        let mut blind = Vec::new();
        let mut sensitive = Vec::new();
        let mut name_tests = Vec::new();
        let mut specific: HashMap<EntityUid, Vec<&Policy>> = HashMap::new();
        for policy in policies {
            match policy.resource_constraint() {
                ResourceConstraint::Eq(uid) => specific.entry(uid).or_default().push(policy),
                ResourceConstraint::Any | ResourceConstraint::Is(_) => {
                    match name_tests_only(policy, declared, identity)? {
                        Some(tests) => {
                            for test in tests {
                                if !name_tests.contains(&test) {
                                    name_tests.push(test);
                                }
                            }
                            blind.push(policy);
                        }
                        None => sensitive.push(policy),
                    }
                }
                _ => sensitive.push(policy),
            }
        }
        let named = specific
            .keys()
            .map(|uid| uid.id().unescaped().to_owned())
            .collect();
        let set = |policies: &[&Policy]| -> Result<PolicySet, PolicyLoadError> {
            PolicySet::from_policies(policies.iter().map(|p| (*p).clone())).map_err(engine_error)
        };
        let mut by_resource = HashMap::with_capacity(specific.len());
        for (uid, mut policies) in specific {
            policies.extend(sensitive.iter().copied());
            by_resource.insert(uid, set(&policies)?);
        }
        let conditions = blind
            .iter()
            .map(|policy| {
                let est = policy.to_json().map_err(engine_error)?;
                Ok(est.get("conditions").cloned())
            })
            .collect::<Result<Vec<_>, PolicyLoadError>>()?;
        let read_by_all = |read: fn(&Value, &mut Vec<String>) -> bool| {
            let mut attrs = Vec::new();
            for condition in conditions.iter().flatten() {
                if !read(condition, &mut attrs) {
                    return None;
                }
            }
            attrs.sort();
            attrs.dedup();
            Some(attrs)
        };
        let annotation_keys = read_by_all(annotations_read);
        let context_attrs = read_by_all(context_read);
        Ok(ListingIndex {
            blind: set(&blind)?,
            annotation_keys,
            name_tests,
            generic_sensitive: set(&sensitive)?,
            by_resource,
            named,
            context_attrs,
        })
    }
}

/// If the policy's conditions read `resource` only as `resource.<attr>` (or `resource
/// has <attr>`) with `attr` in `declared`, and through name tests on `identity`: those
/// name tests. `None` if it reads the resource otherwise.
fn name_tests_only(
    policy: &Policy,
    declared: &[&str],
    identity: &str,
) -> Result<Option<Vec<NameTest>>, PolicyLoadError> {
    let est = policy.to_json().map_err(engine_error)?;
    let mut tests = Vec::new();
    let reads = est
        .get("conditions")
        .is_some_and(|conditions| reads_identity(conditions, declared, identity, &mut tests));
    Ok((!reads).then_some(tests))
}

/// Does this part of a policy (Cedar's JSON form) mention `resource` other than through
/// a declared attribute or a name test (collected into `tests`)?
fn reads_identity(
    node: &Value,
    declared: &[&str],
    identity: &str,
    tests: &mut Vec<NameTest>,
) -> bool {
    match node {
        Value::Object(map) => {
            if map.get("Var").and_then(Value::as_str) == Some("resource") {
                return true;
            }
            if let Some(test) = NameTest::of(node, identity) {
                tests.push(test);
                return false;
            }
            for op in [".", "has"] {
                if let Some(Value::Object(access)) = map.get(op) {
                    let on_resource =
                        access.get("left") == Some(&serde_json::json!({"Var": "resource"}));
                    let attr = access.get("attr").and_then(Value::as_str);
                    if on_resource && attr.is_some_and(|a| declared.contains(&a)) && map.len() == 1
                    {
                        return access
                            .iter()
                            .filter(|(k, _)| k.as_str() != "left")
                            .any(|(_, v)| reads_identity(v, declared, identity, tests));
                    }
                }
            }
            map.values()
                .any(|child| reads_identity(child, declared, identity, tests))
        }
        Value::Array(items) => items
            .iter()
            .any(|child| reads_identity(child, declared, identity, tests)),
        _ => false,
    }
}

/// A test on an item's name that a blind policy makes: `resource.<identity> like
/// <pattern>`, or `resource.<identity> == "<text>"` (either side; `!=` too). Neither can
/// error (the attribute is always a string), and the truth of each depends on the name
/// alone, so items that agree on every test are alike to the policies that make them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NameTest {
    /// A `like` pattern as UTF-8 bytes, `None` for `*`. Matching bytes is matching
    /// characters here: a literal character's encoding can only match at a character
    /// boundary of valid UTF-8.
    Like(Vec<Option<u8>>),
    /// Equality with a string.
    Equals(String),
}

impl NameTest {
    /// The test this node (Cedar's JSON form) is, if it is one.
    fn of(node: &Value, identity: &str) -> Option<NameTest> {
        let map = node.as_object().filter(|m| m.len() == 1)?;
        let (op, args) = map.iter().next()?;
        let args = args.as_object()?;
        let is_name = |v: Option<&Value>| {
            v.and_then(|v| v.get("."))
                .and_then(Value::as_object)
                .is_some_and(|access| {
                    access.len() == 2
                        && access.get("left") == Some(&serde_json::json!({"Var": "resource"}))
                        && access.get("attr").and_then(Value::as_str) == Some(identity)
                })
                && v.and_then(Value::as_object).is_some_and(|m| m.len() == 1)
        };
        match op.as_str() {
            "like" if args.len() == 2 && is_name(args.get("left")) => {
                let mut pattern = Vec::new();
                for element in args.get("pattern")?.as_array()? {
                    match element {
                        Value::String(w) if w == "Wildcard" => pattern.push(None),
                        Value::Object(literal) if literal.len() == 1 => {
                            let text = literal.get("Literal")?.as_str()?;
                            pattern.extend(text.bytes().map(Some));
                        }
                        _ => return None,
                    }
                }
                Some(NameTest::Like(pattern))
            }
            "==" | "!=" if args.len() == 2 => {
                let string = |v: Option<&Value>| {
                    v.and_then(Value::as_object)
                        .filter(|m| m.len() == 1)
                        .and_then(|m| m.get("Value"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                let (left, right) = (args.get("left"), args.get("right"));
                if is_name(left) {
                    string(right).map(NameTest::Equals)
                } else if is_name(right) {
                    string(left).map(NameTest::Equals)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// The test's outcome on `name`.
    fn holds(&self, name: &str) -> bool {
        match self {
            NameTest::Like(pattern) => glob(pattern, name.as_bytes()),
            NameTest::Equals(text) => text == name,
        }
    }
}

/// Does `text` match `pattern` (`None` matches any run of bytes, `Some(b)` the byte
/// `b`)? The usual linear-space matcher: on a mismatch, the last `*` takes one more
/// byte.
fn glob(pattern: &[Option<u8>], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(None) => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(Some(b)) if *b == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((after, from)) => {
                    p = after;
                    t = from + 1;
                    star = Some((after, from + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(Option::is_none)
}

/// Collects into `keys` the annotations this part of a policy reads; `false` if it reads
/// `resource.annotations` other than one key at a time.
fn annotations_read(node: &Value, keys: &mut Vec<String>) -> bool {
    let annotations =
        serde_json::json!({".": {"left": {"Var": "resource"}, "attr": "annotations"}});
    attributes_read(node, &annotations, keys)
}

/// Collects into `attrs` the context attributes this part of a policy reads; `false` if
/// it reads `context` other than one attribute at a time.
fn context_read(node: &Value, attrs: &mut Vec<String>) -> bool {
    attributes_read(node, &serde_json::json!({"Var": "context"}), attrs)
}

/// Collects into `attrs` the attributes of `record` (an expression in Cedar's JSON form)
/// that this part of a policy reads as `record.<attr>` or `record has <attr>`; `false` if
/// it uses `record` any other way.
fn attributes_read(node: &Value, record: &Value, attrs: &mut Vec<String>) -> bool {
    match node {
        Value::Object(map) => {
            if node == record {
                return false;
            }
            for op in [".", "has"] {
                if let Some(Value::Object(access)) = map.get(op) {
                    if access.get("left") == Some(record) && map.len() == 1 {
                        if let Some(attr) = access.get("attr").and_then(Value::as_str) {
                            attrs.push(attr.to_owned());
                            return true;
                        }
                    }
                }
            }
            map.values()
                .all(|child| attributes_read(child, record, attrs))
        }
        Value::Array(items) => items
            .iter()
            .all(|child| attributes_read(child, record, attrs)),
        _ => true,
    }
}

/// Writes into `key` what of an item's annotations the blind policies can see: the
/// values of `keys` after the spec's hint defaults (`null` when absent, as Cedar reads
/// an absent or `null` attribute alike), or the whole record if `keys` is `None`.
fn write_class_annotations(
    key: &mut Vec<u8>,
    keys: Option<&[String]>,
    declared: Option<ItemAnnotations<'_>>,
) {
    let Some(keys) = keys else {
        let declared = declared.map(|d| d.to_map());
        let full = super::with_hint_defaults(declared.as_deref());
        // Writing a `Value` to a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *key, &full);
        return;
    };
    for k in keys {
        match hint_or_declared(declared, k) {
            Seen::Bool(b) => key.extend_from_slice(if b { b"true" } else { b"false" }),
            Seen::Value(v) => {
                let _ = serde_json::to_writer(&mut *key, &*v);
            }
            Seen::Absent => key.extend_from_slice(b"null"),
        }
        key.push(b',');
    }
}

/// One annotation as [`super::with_hint_defaults`] would leave it.
enum Seen<'a> {
    Bool(bool),
    Value(Cow<'a, Value>),
    Absent,
}

/// `with_hint_defaults(declared).get(key)`, without building the map.
fn hint_or_declared<'a>(declared: Option<ItemAnnotations<'a>>, key: &str) -> Seen<'a> {
    let declared_bool = |hint: &str| declared.and_then(|d| d.bool(hint));
    let default = match key {
        "readOnlyHint" => false,
        "destructiveHint" => !declared_bool("readOnlyHint").unwrap_or(false),
        "idempotentHint" => false,
        "openWorldHint" => true,
        _ => {
            return match declared.and_then(|d| d.get(key)) {
                Some(v) => Seen::Value(v),
                None => Seen::Absent,
            }
        }
    };
    Seen::Bool(declared_bool(key).unwrap_or(default))
}

/// A [`Listing`] under one Cedar generation: the caller's parts (with its blind answers
/// per class, [`ClassAnswers`]) and the request the list answers.
pub(super) struct CedarListing<'a> {
    pub(super) engine: &'a CedarEngine,
    /// `None` if the caller's parts could not be built: every item is hidden.
    pub(super) parts: Option<ListingParts>,
    pub(super) identity: &'a Identity,
    pub(super) env: &'a RequestEnv,
    /// The buffer each item's class key is written into.
    pub(super) key: Mutex<Vec<u8>>,
}

/// Blind answers kept across lists: at most this many per caller, then emptied.
const MAX_CLASS_ANSWERS: usize = 64;

/// One caller's blind answers by class key (context inputs, action, what the blind
/// policies can see of an item: [`CedarListing::class_key`]), kept with the caller.
#[derive(Default)]
pub(super) struct ClassAnswers {
    answers: Mutex<HashMap<Vec<u8>, Flags, foldhash::fast::RandomState>>,
}

impl ClassAnswers {
    fn get(&self, key: &[u8]) -> Option<Flags> {
        self.answers.lock().get(key).copied()
    }

    fn insert(&self, key: &[u8], flags: Flags) {
        let mut answers = self.answers.lock();
        if answers.len() >= MAX_CLASS_ANSWERS {
            answers.clear();
        }
        answers.insert(key.to_vec(), flags);
    }

    /// How many answers are kept (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.answers.lock().len()
    }
}

impl Listing for CedarListing<'_> {
    fn may_list(&self, item: &ListedItem<'_>) -> bool {
        let Some(parts) = &self.parts else {
            return false;
        };
        self.try_may_list(parts, item).unwrap_or(false)
    }
}

/// The action a listed item's call is.
fn listed_action(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Tools => "call_tool",
        ListKind::Prompts => "get_prompt",
        ListKind::Resources | ListKind::ResourceTemplates => "read_resource",
    }
}

impl CedarListing<'_> {
    fn try_may_list(
        &self,
        parts: &ListingParts,
        item: &ListedItem<'_>,
    ) -> Result<bool, BuildError> {
        let engine = self.engine;
        let action = listed_action(item.kind);
        let index = engine
            .one_pass
            .get(action)
            .ok_or(BuildError::UnknownAction { action })?;
        // The item's entity could not be built (annotations nested too deep): hidden,
        // as building it would fail, whatever its class says.
        if action == "call_tool" && !item.annotations.is_none_or(|a| a.convertible()) {
            return Ok(false);
        }
        let mut resource: Option<Entity> = None;
        let blind = {
            let mut key = self.key.lock();
            self.class_key(&mut key, action, index, item);
            let answers = &parts.caller.listing_answers;
            match answers.get(&key) {
                Some(flags) => flags,
                None => {
                    let entity = engine.listed_call(item)?.1;
                    let flags = self.evaluate(parts, action, &index.blind, entity.clone())?;
                    resource = Some(entity);
                    answers.insert(&key, flags);
                    flags
                }
            }
        };
        if blind.hides() {
            return Ok(false);
        }
        let mut sensitive = &index.generic_sensitive;
        if index.named.contains(item.name) {
            let entity = match resource.take() {
                Some(entity) => entity,
                None => engine.listed_call(item)?.1,
            };
            if let Some(set) = index.by_resource.get(&entity.uid()) {
                sensitive = set;
            }
            resource = Some(entity);
        }
        if sensitive.is_empty() {
            return Ok(blind.listed());
        }
        let entity = match resource {
            Some(entity) => entity,
            None => engine.listed_call(item)?.1,
        };
        let item_flags = self.evaluate(parts, action, sensitive, entity)?;
        Ok(blind.or(item_flags).listed())
    }

    /// Writes into `key` what the blind policies can see of an item's call: the inputs
    /// of the context attributes they read, its action, its pinning facts, the
    /// annotations they read (tools) and each name test's outcome.
    fn class_key(
        &self,
        key: &mut Vec<u8>,
        action: &'static str,
        index: &ListingIndex,
        item: &ListedItem<'_>,
    ) {
        key.clear();
        super::context::write_inputs(self.identity, self.env, index.context_attrs.as_deref(), key);
        key.push(b'|');
        key.extend_from_slice(action.as_bytes());
        key.push(b'|');
        key.push(b'0' + u8::from(item.definition.pinned));
        key.push(b'0' + u8::from(item.definition.invisible_characters));
        key.extend(
            index
                .name_tests
                .iter()
                .map(|t| b'0' + u8::from(t.holds(item.name))),
        );
        key.push(b'|');
        if action == "call_tool" {
            write_class_annotations(key, index.annotation_keys.as_deref(), item.annotations);
        }
    }

    fn evaluate(
        &self,
        parts: &ListingParts,
        action: &'static str,
        policies: &PolicySet,
        resource: Entity,
    ) -> Result<Flags, BuildError> {
        if policies.is_empty() {
            return Ok(Flags::default());
        }
        let response = self
            .engine
            .partial_listing(parts, action, policies, resource)?;
        Ok(Flags::of(self.engine, &response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn like(pattern: &str) -> NameTest {
        // `*` a wildcard, every other character literal (as Cedar's JSON form splits it).
        NameTest::Like(pattern.bytes().map(|b| (b != b'*').then_some(b)).collect())
    }

    #[test]
    fn context_reads_are_collected_one_attribute_at_a_time() {
        let conditions = |text: &str| {
            let policy = Policy::parse(None, text).unwrap();
            policy.to_json().unwrap()["conditions"].clone()
        };
        let mut attrs = Vec::new();
        let read = conditions(
            r#"permit (principal, action, resource) when {
                 context.session.taints.contains("x") && context has mtls && context.time > 1
               };"#,
        );
        assert!(context_read(&read, &mut attrs));
        attrs.sort();
        assert_eq!(attrs, ["mtls", "session", "time"]);
        // The context as a whole: every attribute counts.
        let whole = conditions(r#"permit (principal, action, resource) when { context == {} };"#);
        assert!(!context_read(&whole, &mut Vec::new()));
    }

    #[test]
    fn globs_match_as_cedar_like_does() {
        let cases = [
            ("svc_*", "svc_tool", true),
            ("svc_*", "svc", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbYcZ", false),
            ("*ab", "aab", true),
            ("*ab*", "xxaxxab", true),
            ("a**", "a", true),
            ("é*", "été", true),
            ("*t\u{e9}", "été", true),
            ("?", "a", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                like(pattern).holds(text),
                expected,
                "{pattern:?} on {text:?}"
            );
        }
        assert!(NameTest::Equals("x".into()).holds("x"));
        assert!(!NameTest::Equals("x".into()).holds("xy"));
    }

    #[test]
    fn class_annotations_follow_the_hint_defaults() {
        let declared: Map<String, Value> = serde_json::from_str(
            r#"{"readOnlyHint": true, "destructiveHint": "yes", "title": "T", "x": null}"#,
        )
        .unwrap();
        let full = super::super::with_hint_defaults(Some(&declared));
        for key in [
            "readOnlyHint",
            "destructiveHint",
            "idempotentHint",
            "openWorldHint",
            "title",
            "x",
            "absent",
        ] {
            let mut ours = Vec::new();
            write_class_annotations(&mut ours, Some(&[key.to_owned()]), Some((&declared).into()));
            let theirs = format!("{},", full.get(key).unwrap_or(&Value::Null));
            assert_eq!(String::from_utf8(ours).unwrap(), theirs, "{key}");
        }
    }
}
