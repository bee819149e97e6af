//! An authorizer with the operator's program and one caller's token already loaded, in
//! Datalog form, so that a decision only adds the request's facts and runs.
//!
//! Building a Biscuit authorizer per request (clone the program's builder, add the
//! request facts, `build(&token)`, `authorize()`) redoes work that depends only on the
//! program and the token: every block of the token is decoded and its facts, rules and
//! checks translated into the authorizer's symbol table, and every fact, rule, check and
//! policy of the program is converted from builder form (strings) to Datalog form
//! (interned symbols) — the conversion of checks and policies even happens inside
//! `authorize`. That is most of a warm decision. biscuit-auth 6.0.0 has no public way to
//! add facts to a built `Authorizer`, so [`Loaded`] keeps the loaded state itself: the
//! symbol table, the `World` (token facts and rules by block, program facts and rules)
//! and the checks and policies with their trusted origins, read once from Biscuit's own
//! serialization of the loaded authorizer (`Authorizer::snapshot`).
//!
//! [`Loaded::authorize`] is `Authorizer::authorize` over that state (same order of
//! checks and policies, same origins, same run limits and time accounting, same errors),
//! after adding the request facts as the authorizer's own, which is what
//! `AuthorizerBuilder::fact` + `build` do. The request facts go in directly in Datalog
//! form (`facts::ReqFact::to_datalog`: strings interned through a map of the loaded
//! symbol table instead of Biscuit's scan of it, the same indices `Fact::convert` gives),
//! and a fact under a predicate name that no rule, check or policy of the state reads
//! (and no fact or rule head has) is left out, with `max_facts` lowered by the number
//! left out so that the run limit trips exactly as it would have. The differential tests
//! in `tests.rs` hold it to the per-request authorizer. A token with a third-party block, or a program that
//! trusts a public key, is not loaded here (`from_snapshot` gives `None`): it keeps the
//! per-request authorizer, which maps keys to blocks itself.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use biscuit_auth::builder::CheckKind;
use biscuit_auth::datalog::{Origin, Rule, SymbolIndex, SymbolTable, TrustedOrigins, World};
use biscuit_auth::error::{
    FailedAuthorizerCheck, FailedBlockCheck, FailedCheck, Logic, MatchedPolicy, RunLimit,
    Token as TokenError,
};
use biscuit_auth::format::convert::{
    proto_check_to_token_check, proto_fact_to_token_fact, proto_rule_to_token_rule,
    proto_scope_to_token_scope,
};
use biscuit_auth::format::schema;
use biscuit_auth::AuthorizerLimits;

use super::facts::{Interner, ReqFact};

/// The origin of the authorizer's own facts and rules (`usize::MAX` in Biscuit).
const AUTHORIZER: usize = usize::MAX;

/// One query of a check or policy, with the origins whose facts it may read.
#[derive(Clone)]
struct Query {
    rule: Rule,
    origins: TrustedOrigins,
}

/// A check and the failure it reports (its printed rule is fixed once loaded).
#[derive(Clone)]
struct LoadedCheck {
    kind: CheckKind,
    queries: Vec<Query>,
    failure: FailedCheck,
}

#[derive(Clone)]
struct LoadedPolicy {
    deny: bool,
    queries: Vec<Query>,
}

/// The authorizer's state before the request facts (see the module docs).
#[derive(Clone)]
pub(crate) struct Loaded {
    symbols: SymbolTable,
    /// The strings of `symbols`, to intern the request's without scanning it.
    interner: Interner,
    /// The predicate names a request fact is added under: those some rule, check or
    /// policy reads, or some fact or rule head of the state has (see [`add_facts`]).
    needed: HashSet<SymbolIndex>,
    world: World,
    limits: AuthorizerLimits,
    /// The authorizer's checks.
    checks: Vec<LoadedCheck>,
    /// The token's blocks' checks, block 0 first; empty without a token.
    blocks: Vec<Vec<LoadedCheck>>,
    policies: Vec<LoadedPolicy>,
}

fn origin(block: usize) -> Origin {
    let mut origin = Origin::default();
    origin.insert(block);
    origin
}

impl Loaded {
    /// Loads a snapshot of an authorizer built (not yet run) from the program and the
    /// token; `None` if it has third-party blocks or public-key scopes.
    pub(crate) fn from_snapshot(
        snapshot: schema::AuthorizerSnapshot,
        limits: &AuthorizerLimits,
    ) -> Result<Option<Loaded>, TokenError> {
        let world = snapshot.world;
        if !world.public_keys.is_empty()
            || world.authorizer_block.external_key.is_some()
            || world.blocks.iter().any(|b| b.external_key.is_some())
        {
            return Ok(None);
        }
        // As `Authorizer::from_snapshot`: the default symbols, then the snapshot's.
        let mut symbols = SymbolTable::default();
        for symbol in &world.symbols {
            symbols.insert(symbol);
        }
        // No public keys (checked above), so no `trusting <key>` scope can resolve.
        let keys: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut loaded_world = World::new();

        let mut blocks = Vec::with_capacity(world.blocks.len());
        for (i, block) in world.blocks.iter().enumerate() {
            let (_, checks) =
                load_block(block, i, &mut loaded_world, &symbols, &keys, |j, rule| {
                    FailedCheck::Block(FailedBlockCheck {
                        block_id: i as u32,
                        check_id: j as u32,
                        rule,
                    })
                })?;
            blocks.push(checks);
        }
        let (trusted, checks) = load_block(
            &world.authorizer_block,
            AUTHORIZER,
            &mut loaded_world,
            &symbols,
            &keys,
            |j, rule| {
                FailedCheck::Authorizer(FailedAuthorizerCheck {
                    check_id: j as u32,
                    rule,
                })
            },
        )?;
        let policy_version = world.version.unwrap_or(0);
        let mut policies = Vec::with_capacity(world.authorizer_policies.len());
        for policy in &world.authorizer_policies {
            let deny = match policy.kind {
                k if k == schema::policy::Kind::Allow as i32 => false,
                k if k == schema::policy::Kind::Deny as i32 => true,
                _ => return Ok(None),
            };
            let rules = policy
                .queries
                .iter()
                .map(|q| proto_rule_to_token_rule(q, policy_version).map(|(rule, _)| rule))
                .collect::<Result<Vec<_>, _>>()?;
            policies.push(LoadedPolicy {
                deny,
                queries: queries(rules, &trusted, AUTHORIZER, &keys),
            });
        }
        loaded_world.iterations = world.iterations;
        Ok(Some(Loaded {
            interner: Interner::of(&symbols),
            needed: needed_names(&loaded_world, &checks, &blocks, &policies),
            symbols,
            world: loaded_world,
            limits: limits.clone(),
            checks,
            blocks,
            policies,
        }))
    }

    /// This state with `facts` added as the authorizer's (a listing's shared facts).
    pub(crate) fn with_facts(&self, facts: &[ReqFact<'_>]) -> Loaded {
        let mut loaded = self.clone();
        let own = origin(AUTHORIZER);
        for fact in facts {
            let fact = fact.to_datalog(&self.interner, &mut loaded.symbols);
            loaded.world.add_fact(&own, fact);
        }
        loaded.interner = Interner::of(&loaded.symbols);
        loaded.needed = needed_names(
            &loaded.world,
            &loaded.checks,
            &loaded.blocks,
            &loaded.policies,
        );
        loaded
    }

    /// Whether a request fact named `name` would be left out (for tests).
    #[cfg(test)]
    pub(crate) fn leaves_out(&self, name: &str) -> bool {
        !self
            .interner
            .known(name)
            .is_some_and(|i| self.needed.contains(&i))
    }

    /// Authorizes with `facts` added: `Authorizer::authorize`, step for step.
    pub(crate) fn authorize(&self, facts: &[ReqFact<'_>]) -> Result<usize, TokenError> {
        let mut symbols = self.symbols.clone();
        let mut world = self.world.clone();
        let left_out = add_facts(
            &self.interner,
            &self.needed,
            &mut symbols,
            &mut world,
            facts,
        );
        // Each fact left out is distinct from every other fact of the world (none has
        // its name): with it the count of facts would be `left_out` higher, so the limit
        // is as much lower, and `max_facts` stops the run exactly when it would have.
        let mut limits = self.limits.clone();
        limits.max_facts = limits.max_facts.saturating_sub(left_out as u64);

        // `Authorizer::run`, then `authorize`'s budget for the checks and policies.
        let start = Instant::now();
        world.run_with_limits(&symbols, limits)?;
        let execution_time = start.elapsed();
        if execution_time >= self.limits.max_time {
            return Err(TokenError::RunLimit(RunLimit::Timeout));
        }
        let time_limit = Instant::now() + (self.limits.max_time - execution_time);

        let run = |query: &Query, check: CheckKind, block: usize| -> Result<bool, TokenError> {
            let rule = query.rule.clone();
            let matched = match check {
                CheckKind::One => world.query_match(rule, block, &query.origins, &symbols)?,
                CheckKind::All => world.query_match_all(rule, &query.origins, &symbols)?,
                CheckKind::Reject => !world.query_match(rule, block, &query.origins, &symbols)?,
            };
            if Instant::now() >= time_limit {
                return Err(TokenError::RunLimit(RunLimit::Timeout));
            }
            Ok(matched)
        };
        let check_all = |checks: &[LoadedCheck],
                         block: usize,
                         errors: &mut Vec<FailedCheck>|
         -> Result<(), TokenError> {
            for check in checks {
                let mut passed = false;
                for query in &check.queries {
                    if run(query, check.kind.clone(), block)? {
                        passed = true;
                        break;
                    }
                }
                if !passed {
                    errors.push(check.failure.clone());
                }
            }
            Ok(())
        };

        let mut errors = Vec::new();
        check_all(&self.checks, AUTHORIZER, &mut errors)?;
        if let Some(authority) = self.blocks.first() {
            check_all(authority, 0, &mut errors)?;
        }
        let mut matched: Option<Result<usize, usize>> = None;
        'policies: for (i, policy) in self.policies.iter().enumerate() {
            for query in &policy.queries {
                if run(query, CheckKind::One, AUTHORIZER)? {
                    matched = Some(if policy.deny { Err(i) } else { Ok(i) });
                    break 'policies;
                }
            }
        }
        for (i, checks) in self.blocks.iter().enumerate().skip(1) {
            check_all(checks, i, &mut errors)?;
        }

        match (matched, errors.is_empty()) {
            (Some(Ok(i)), true) => Ok(i),
            (None, _) => Err(TokenError::FailedLogic(Logic::NoMatchingPolicy {
                checks: errors,
            })),
            (Some(Ok(i)), false) => Err(TokenError::FailedLogic(Logic::Unauthorized {
                policy: MatchedPolicy::Allow(i),
                checks: errors,
            })),
            (Some(Err(i)), _) => Err(TokenError::FailedLogic(Logic::Unauthorized {
                policy: MatchedPolicy::Deny(i),
                checks: errors,
            })),
        }
    }
}

/// Loads one block of the snapshot (a token's block `index`, or the authorizer's own at
/// [`AUTHORIZER`]) as `Authorizer::from_snapshot` does: its facts and rules into `world`
/// under the origins its scopes trust, and its checks, each with the failure `failure`
/// reports for its position and printed rule. Returns the block's trusted origins too
/// (the authorizer's policies are read under them).
fn load_block(
    block: &schema::SnapshotBlock,
    index: usize,
    world: &mut World,
    symbols: &SymbolTable,
    keys: &HashMap<usize, Vec<usize>>,
    failure: impl Fn(usize, String) -> FailedCheck,
) -> Result<(TrustedOrigins, Vec<LoadedCheck>), TokenError> {
    let version = block.version.unwrap_or(0);
    let scopes = block
        .scope
        .iter()
        .map(proto_scope_to_token_scope)
        .collect::<Result<Vec<_>, _>>()?;
    let trusted = TrustedOrigins::from_scopes(&scopes, &TrustedOrigins::default(), index, keys);
    let block_origin = origin(index);
    for fact in &block.facts {
        world.add_fact(&block_origin, proto_fact_to_token_fact(fact)?);
    }
    for rule in &block.rules {
        let rule = proto_rule_to_token_rule(rule, version)?.0;
        let origins = TrustedOrigins::from_scopes(&rule.scopes, &trusted, index, keys);
        world.add_rule(index, &origins, rule);
    }
    let mut checks = Vec::with_capacity(block.checks.len());
    for (j, check) in block.checks.iter().enumerate() {
        let check = proto_check_to_token_check(check, version)?;
        checks.push(LoadedCheck {
            failure: failure(j, symbols.print_check(&check)),
            kind: check.kind,
            queries: queries(check.queries, &trusted, index, keys),
        });
    }
    Ok((trusted, checks))
}

/// Adds `facts` as the authorizer's own, as `AuthorizerBuilder::fact` and `build` do
/// (request facts have no parameters, so `AuthorizerBuilder::fact`'s check cannot
/// fail), converted directly to Datalog form with `interner` (that of `symbols`).
///
/// A fact whose predicate name is not `needed` (no rule, check or policy reads it, no
/// fact or rule head of the state has it) cannot take part in any match, so it is left
/// out; only facts without a JSON term are, so that telling them apart is comparing
/// their text. Returns how many distinct facts were left out (the caller accounts for
/// them in `max_facts`).
fn add_facts(
    interner: &Interner,
    needed: &HashSet<SymbolIndex>,
    symbols: &mut SymbolTable,
    world: &mut World,
    facts: &[ReqFact<'_>],
) -> usize {
    let own = origin(AUTHORIZER);
    let mut left_out: Vec<&ReqFact<'_>> = Vec::new();
    for fact in facts {
        let read = interner
            .known(fact.name)
            .is_some_and(|name| needed.contains(&name));
        if !read && fact.is_plain() {
            if !left_out.iter().any(|f| f.same_plain(fact)) {
                left_out.push(fact);
            }
            continue;
        }
        world.add_fact(&own, fact.to_datalog(interner, symbols));
    }
    left_out.len()
}

/// The predicate names of `world`'s facts, of its rules' heads and bodies, and of the
/// bodies of `checks`, `blocks`' checks and `policies`: every name a fact can be
/// matched, derived or held under.
fn needed_names(
    world: &World,
    checks: &[LoadedCheck],
    blocks: &[Vec<LoadedCheck>],
    policies: &[LoadedPolicy],
) -> HashSet<SymbolIndex> {
    let mut names = HashSet::new();
    for (_, fact) in world.facts.iter_all() {
        names.insert(fact.predicate.name);
    }
    let mut rule_names = |rule: &Rule| {
        names.insert(rule.head.name);
        names.extend(rule.body.iter().map(|p| p.name));
    };
    for (_, rule) in world.rules.iter_all() {
        rule_names(rule);
    }
    let queries = checks
        .iter()
        .chain(blocks.iter().flatten())
        .flat_map(|c| &c.queries)
        .chain(policies.iter().flat_map(|p| &p.queries));
    for query in queries {
        rule_names(&query.rule);
    }
    names
}

/// The queries of a check or policy of block `block` (whose rules trust `trusted`).
fn queries(
    rules: Vec<Rule>,
    trusted: &TrustedOrigins,
    block: usize,
    keys: &HashMap<usize, Vec<usize>>,
) -> Vec<Query> {
    rules
        .into_iter()
        .map(|rule| Query {
            origins: TrustedOrigins::from_scopes(&rule.scopes, trusted, block, keys),
            rule,
        })
        .collect()
}
