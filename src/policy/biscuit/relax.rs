//! Relaxed evaluation: deciding whether *some* request could pass when part of it is
//! unknown.
//!
//! Two questions need it. Listing: "could some call to this tool be allowed?" — the
//! arguments are unknown. Target-free messages (`initialize`, `ping`, notifications,
//! list requests, responses): a check such as an attenuation's `check if tool("echo")`
//! constrains what the holder may *touch*; a message that touches no tool, prompt or
//! resource cannot violate it, so for those messages the target is unknown.
//!
//! Given the names of the unknown predicates (the seeds), the set `U` of unknown
//! predicates is closed over every rule of the token and the authorizer: a rule with an
//! unknown predicate in its body makes its head unknown. Then, in every block's checks
//! and in the authorizer's checks and policies:
//! - in a positive query (`check if`, `check all`, `allow if`), predicates in `U` are
//!   dropped, and so are expressions that read a variable no remaining predicate binds;
//! - a negative query (`reject if`, `deny if`) that mentions a predicate in `U` is
//!   replaced by `false`: some request avoids it.
//!
//! Every rewrite only weakens what allows and only removes what denies, so if any
//! concrete request (any arguments, any target) would pass, the relaxed question passes:
//! a sound over-approximation, which is the right side for a listing (each call is still
//! decided with its real facts) and for target-free messages (they touch nothing the
//! dropped conditions protect). Block scoping, third-party blocks and the order of
//! policies are untouched; checks and policies keep their positions, so failures still
//! name the right ones.
//!
//! The token's own blocks cannot be rewritten in place (they are signed), so the rewrite
//! works on the authorizer's snapshot (`Authorizer::snapshot`, Biscuit's own
//! serialization of a loaded authorizer, which carries every block's checks unsigned)
//! and loads the result back with `Authorizer::from_snapshot`.

use std::collections::HashSet;

use biscuit_auth::builder::AuthorizerBuilder;
use biscuit_auth::datalog::SymbolTable;
use biscuit_auth::error::Token as TokenError;
use biscuit_auth::format::schema::{self, op, term};
use biscuit_auth::{Authorizer, Biscuit};

/// Unknown predicates when deciding whether an item may be listed.
pub(crate) const LISTING: &[&str] = &["arg"];

/// Unknown predicates for a message that names no tool, prompt or resource.
pub(crate) const TARGET_FREE: &[&str] = &[
    "arg",
    "tool",
    "prompt",
    "resource",
    "annotation",
    "pinned",
    "invisible_characters",
];

/// `authorizer` with the predicates `seeds` (and everything derived from them) unknown.
pub(crate) fn relaxed(authorizer: &Authorizer, seeds: &[&str]) -> Result<Authorizer, TokenError> {
    let mut snapshot = authorizer.snapshot()?;
    if relax_snapshot(&mut snapshot, seeds).is_none() {
        // No rule, check or policy can mention a name the symbol table lacks.
        return Ok(authorizer.clone());
    }
    Authorizer::from_snapshot(snapshot)
}

/// The authorizer's own code relaxed once for a set of seeds, for every request of a
/// policy generation.
///
/// Relaxing per request costs a snapshot and a reload of the whole authorizer (most of
/// a listing's time). The rewrite of the operator's code does not depend on the request,
/// and a token's blocks need no rewrite when they mention none of the unknown predicates
/// (a check or rule that never reads an unknown cannot depend on it, and such a token
/// cannot make more predicates unknown). For those tokens — nearly all — the prepared
/// builder gives the same answer as [`relaxed`]; a token that does mention one takes the
/// per-request path.
#[derive(Clone)]
pub(crate) struct Prepared {
    builder: AuthorizerBuilder,
    /// The seeds and every predicate the operator's rules derive from them.
    unknown: Vec<String>,
}

impl Prepared {
    /// Relaxes `program` for `seeds`.
    pub(crate) fn new(program: &AuthorizerBuilder, seeds: &[&str]) -> Result<Self, TokenError> {
        let mut snapshot = program.clone().build_unauthenticated()?.snapshot()?;
        let mut unknown: Vec<String> = seeds.iter().map(|s| (*s).to_owned()).collect();
        for name in relax_snapshot(&mut snapshot, seeds).unwrap_or_default() {
            if !unknown.contains(&name) {
                unknown.push(name);
            }
        }
        // Loading put the program's facts into the world as well; its own block keeps
        // them, and a builder is made from that block alone.
        snapshot.world.generated_facts.clear();
        Ok(Prepared {
            builder: AuthorizerBuilder::from_snapshot(snapshot)?,
            unknown,
        })
    }

    /// The relaxed builder, if `token` (when there is one) can be run against it as is.
    pub(crate) fn builder_for(&self, token: Option<&Biscuit>) -> Option<&AuthorizerBuilder> {
        match token {
            Some(token) if self.mentioned_by(token) => None,
            _ => Some(&self.builder),
        }
    }

    /// Does any block of `token` mention an unknown predicate? Reads the blocks' Datalog
    /// (`name(` is how a predicate prints); a false alarm only costs the slower path.
    fn mentioned_by(&self, token: &Biscuit) -> bool {
        (0..token.block_count()).any(|i| match token.print_block_source(i) {
            Ok(source) => self
                .unknown
                .iter()
                .any(|name| source.contains(&format!("{name}("))),
            Err(_) => true,
        })
    }
}

/// Rewrites `snapshot` with the predicates `seeds` (and everything derived from them)
/// unknown; returns the names of the unknown predicates, or `None` when no seed occurs
/// (nothing to rewrite).
pub(crate) fn relax_snapshot(
    snapshot: &mut schema::AuthorizerSnapshot,
    seeds: &[&str],
) -> Option<Vec<String>> {
    let world = &mut snapshot.world;
    let mut symbols = SymbolTable::default();
    for s in &world.symbols {
        symbols.insert(s);
    }
    let mut unknown: HashSet<u64> = seeds.iter().filter_map(|s| symbols.get(s)).collect();
    if unknown.is_empty() {
        return None;
    }
    let blocks: Vec<&schema::SnapshotBlock> = world
        .blocks
        .iter()
        .chain(std::iter::once(&world.authorizer_block))
        .collect();
    loop {
        let mut changed = false;
        for rule in blocks.iter().flat_map(|b| &b.rules) {
            if rule.body.iter().any(|p| unknown.contains(&p.name)) {
                changed |= unknown.insert(rule.head.name);
            }
        }
        if !changed {
            break;
        }
    }
    for block in world
        .blocks
        .iter_mut()
        .chain(std::iter::once(&mut world.authorizer_block))
    {
        for check in &mut block.checks {
            let reject = check.kind == Some(schema::check::Kind::Reject as i32);
            for query in &mut check.queries {
                if reject {
                    falsify_if_unknown(query, &unknown);
                } else {
                    weaken(query, &unknown);
                }
            }
        }
    }
    for policy in &mut world.authorizer_policies {
        let deny = policy.kind == schema::policy::Kind::Deny as i32;
        for query in &mut policy.queries {
            if deny {
                falsify_if_unknown(query, &unknown);
            } else {
                weaken(query, &unknown);
            }
        }
    }
    Some(
        unknown
            .iter()
            .filter_map(|&id| symbols.get_symbol(id).map(str::to_owned))
            .collect(),
    )
}

fn constant(value: bool) -> schema::Expression {
    schema::Expression {
        ops: vec![schema::Op {
            content: Some(op::Content::Value(schema::Term {
                content: Some(term::Content::Bool(value)),
            })),
        }],
    }
}

/// Drops unknown predicates and the expressions that depended on them.
fn weaken(query: &mut schema::Rule, unknown: &HashSet<u64>) {
    let before = query.body.len();
    query.body.retain(|p| !unknown.contains(&p.name));
    if query.body.len() == before {
        return;
    }
    let bound: HashSet<u32> = query
        .body
        .iter()
        .flat_map(|p| &p.terms)
        .filter_map(|t| match t.content {
            Some(term::Content::Variable(v)) => Some(v),
            _ => None,
        })
        .collect();
    query.expressions.retain(|e| {
        let mut vars = Vec::new();
        collect_variables(&e.ops, &mut vars);
        vars.iter().all(|v| bound.contains(v))
    });
    if query.body.is_empty() && query.expressions.is_empty() {
        query.expressions.push(constant(true));
    }
}

/// Replaces a query that mentions an unknown predicate by `false`.
fn falsify_if_unknown(query: &mut schema::Rule, unknown: &HashSet<u64>) {
    if query.body.iter().any(|p| unknown.contains(&p.name)) {
        query.body.clear();
        query.expressions = vec![constant(false)];
    }
}

/// Every variable an expression reads (closure parameters included, which only makes
/// the rewrite drop more, never less).
fn collect_variables(ops: &[schema::Op], out: &mut Vec<u32>) {
    for op in ops {
        match &op.content {
            Some(op::Content::Value(schema::Term {
                content: Some(term::Content::Variable(v)),
            })) => out.push(*v),
            Some(op::Content::Closure(closure)) => collect_variables(&closure.ops, out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use biscuit_auth::builder::AuthorizerBuilder;
    use biscuit_auth::{Biscuit, KeyPair};

    fn outcome(code: &str, token: Option<&Biscuit>, seeds: &[&str]) -> (bool, bool) {
        let builder = AuthorizerBuilder::new().code(code).unwrap();
        let build = |b: AuthorizerBuilder| match token {
            Some(t) => b.build(t).unwrap(),
            None => b.build_unauthenticated().unwrap(),
        };
        // Biscuit's default time limit (1 ms of wall-clock time) fails on a busy machine.
        let limits = crate::testing::biscuit_limits;
        let strict = build(builder.clone())
            .authorize_with_limits(limits())
            .is_ok();
        let relaxed = relaxed(&build(builder.clone()), seeds)
            .unwrap()
            .authorize_with_limits(limits())
            .is_ok();
        // The program relaxed once gives the same answer, whenever it may be used.
        let prepared = Prepared::new(&builder, seeds).unwrap();
        if let Some(prepared) = prepared.builder_for(token) {
            assert_eq!(
                build(prepared.clone())
                    .authorize_with_limits(limits())
                    .is_ok(),
                relaxed,
                "prepared and per-request relaxation disagree on {code}"
            );
        }
        (strict, relaxed)
    }

    #[test]
    fn a_token_that_mentions_an_unknown_is_relaxed_per_request() {
        let root = KeyPair::new();
        let program = AuthorizerBuilder::new()
            .code(r#"city($c) <- arg("city", $c); allow if true;"#)
            .unwrap();
        let prepared = Prepared::new(&program, LISTING).unwrap();
        let plain = Biscuit::builder()
            .code(r#"user("alice"); check if tool("echo");"#)
            .unwrap()
            .build(&root)
            .unwrap();
        assert!(prepared.builder_for(Some(&plain)).is_some());
        assert!(prepared.builder_for(None).is_some());
        for code in [
            r#"check if arg("city", "Paris");"#,
            // Derived from an unknown by the operator's rule.
            r#"check if city("Paris");"#,
        ] {
            let checked = plain
                .append(
                    biscuit_auth::builder::BlockBuilder::new()
                        .code(code)
                        .unwrap(),
                )
                .unwrap();
            assert!(prepared.builder_for(Some(&checked)).is_none(), "{code}");
            // Listing still passes: some arguments satisfy the check.
            assert_eq!(
                outcome(
                    r#"tool("echo"); city($c) <- arg("city", $c); allow if true;"#,
                    Some(&checked),
                    LISTING
                ),
                (false, true),
                "{code}"
            );
        }
    }

    #[test]
    fn argument_conditions_are_unknown_when_listing() {
        let policy = r#"
            tool("get_weather");
            allow if tool("get_weather"), arg("city", $c), ["Paris", "Tokyo"].contains($c);
        "#;
        assert_eq!(outcome(policy, None, LISTING), (false, true));
        // A tool the policy never allows stays hidden.
        let policy = r#"tool("x"); allow if tool("y"), arg("a", $a), $a > 1;"#;
        assert_eq!(outcome(policy, None, LISTING), (false, false));
    }

    #[test]
    fn derived_predicates_are_unknown_too() {
        let policy = r#"
            tool("record"); caller("alice"); assigned("alice", "p1");
            patient($p) <- arg("patient", $p);
            allow if tool("record"), patient($p), caller($u), assigned($u, $p);
        "#;
        assert_eq!(outcome(policy, None, LISTING), (false, true));
    }

    #[test]
    fn denies_and_rejects_on_unknowns_are_avoidable() {
        let policy = r#"
            tool("t");
            deny if arg("dangerous", true);
            check if true;
            reject if arg("x", $x), $x > 3;
            allow if tool("t");
        "#;
        assert_eq!(outcome(policy, None, LISTING), (true, true));
        // A deny that does not depend on the unknowns still denies.
        let policy = r#"tool("t"); deny if tool("t"); allow if true;"#;
        assert_eq!(outcome(policy, None, LISTING), (false, false));
    }

    #[test]
    fn token_checks_on_the_target_pass_for_target_free_messages() {
        let root = KeyPair::new();
        let token = Biscuit::builder()
            .code(
                r#"user("alice"); check if time($t), $t < 2000-01-01T00:00:00Z or user("alice");"#,
            )
            .unwrap()
            .build(&root)
            .unwrap()
            .append(
                biscuit_auth::builder::BlockBuilder::new()
                    .code(r#"check if tool("echo"); check if method($m), $m != "forbidden";"#)
                    .unwrap(),
            )
            .unwrap();
        let policy = r#"method("initialize"); allow if user("alice");"#;
        assert_eq!(outcome(policy, Some(&token), TARGET_FREE), (false, true));
        // A check on something the message does have still applies.
        let policy = r#"method("forbidden"); allow if user("alice");"#;
        assert_eq!(outcome(policy, Some(&token), TARGET_FREE), (false, false));
        // Facts an attenuation block adds never reach the authorizer's policies.
        let widened = token
            .append(
                biscuit_auth::builder::BlockBuilder::new()
                    .code(r#"role("admin");"#)
                    .unwrap(),
            )
            .unwrap();
        let policy = r#"method("initialize"); allow if role("admin");"#;
        assert_eq!(outcome(policy, Some(&widened), TARGET_FREE), (false, false));
    }
}
