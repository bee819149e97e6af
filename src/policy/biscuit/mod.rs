//! The Biscuit [`PolicyEngine`], and the token checks every engine enforces.
//!
//! **The engine** (`[policy] engine = "biscuit"`). The operator's authorizer is the
//! Datalog in the policy directory ([`load_datalog_dir`]). For each message the proxy
//! takes the authorizer loaded with it and the caller's verified token (made once per
//! token and mode and kept in the engine's bounded cache, see the `loaded` and `cache`
//! modules; built per request for third-party tokens), adds the request's facts (the
//! fact reference is in [`facts`] and `docs/src/biscuit.md`), and runs Biscuit's
//! authorization under the configured run limits:
//! - every check must pass: the authorizer's, and every block's of the token (expiry,
//!   `check if tool("…")`, … — so a token narrowed by attenuation is narrower here);
//! - then the policies are tried in order and the first that matches decides.
//!
//! `call_tool`, `read_resource`, `subscribe_resource`, `get_prompt`, `complete` and
//! `other` need a matching `allow`. Target-free messages — list requests, protocol
//! messages (`initialize`, `ping`, notifications, …) and responses — are allowed unless a
//! `deny` policy matches or a check fails, as under Cedar; they are evaluated with the
//! target predicates (`tool`, `prompt`, `resource`, `arg`, `annotation`) *unknown*
//! (see the `relax` module), so an attenuation to one tool does not stop the holder
//! from initializing, pinging or listing.
//!
//! A caller that authenticated without a Biscuit (JWT, API key, anonymous) is evaluated
//! with no token: its identity is only in the `auth_method`, `caller`, `caller_agent`,
//! `caller_role` and `caller_scope` facts, which are present for every caller. Policies
//! that require token facts therefore deny it; policies written on `caller_*` facts can
//! admit it.
//!
//! **Listing** (same rule as Cedar: an item is listed if some call to it could be
//! allowed): the item's call is decided with its target facts and the `arg` facts
//! unknown (again the `relax` module). A tool whose allow depends on the arguments
//! stays listed; every call is still decided with its real arguments.
//!
//! **Outcomes** ([`Decision`]): `policy_ids` names the matched policy (the `@id` or
//! `<file>:<line>`) and every failed check (`<file>:<line>` for the authorizer's,
//! `token/block<N>/check<M>` for the token's). `errors` explains a deny with a stable
//! first word: `failed_check: …`, `run_limit: …` (a limit of `[policy.biscuit.limits]`
//! was exceeded), `datalog_error: …`, `arguments: …`. Any failure is a deny. A failed
//! check is a denial by policy ([`super::Outcome::Deny`], `decision="deny"` in metrics
//! and audit); the others are evaluation failures ([`super::Outcome::Error`]).
//!
//! **Cedar with Biscuit callers.** [`TokenChecks`] wraps the Cedar engine: a Biscuit
//! caller's token checks run first, with the same facts and the same target-free and
//! listing rules, and a failure denies; then Cedar decides with the principal built from
//! the token's authority facts (`principal.auth_method == "biscuit"`, roles, scopes,
//! `principal.claims` from `[auth.biscuit] claim_facts`).

mod cache;
pub mod facts;
mod load;
mod loaded;
mod relax;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use biscuit_auth::builder::AuthorizerBuilder;
use biscuit_auth::error::{FailedCheck, Logic, MatchedPolicy, Token as TokenError};
use biscuit_auth::{AuthorizerLimits, Biscuit, PublicKey};
use serde::Deserialize;

use crate::biscuit::{BiscuitToken, DatalogLimits};

pub use load::{compile, load_datalog_dir, AuthorizerProgram};

use super::load::PolicyLoadError;
use super::{AuthzRequest, Decision, ListQuery, ListedItem, Listing, PolicyEngine, FAILED_CHECK};
use crate::auth::Identity;
use cache::LoadedCache;
use facts::ReqFact;
use loaded::Loaded;

/// The `[policy.biscuit]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BiscuitPolicyConfig {
    /// Run limits of every Datalog evaluation (authorization, listing, and reading a
    /// token at authentication), under either engine: the one place both read (see
    /// [`crate::biscuit::DatalogLimits`]).
    #[serde(default)]
    pub limits: DatalogLimits,
    /// Third-party keys by name, e.g. `{ partner = "ed25519/…" }`: the authorizer can
    /// write `trusting {partner}` to accept facts from blocks that key signed. (A key
    /// may also be written literally: `trusting ed25519/…`.)
    #[serde(default)]
    pub external_keys: BTreeMap<String, String>,
}

impl BiscuitPolicyConfig {
    /// Parses `external_keys`.
    pub fn parsed_external_keys(&self) -> Result<HashMap<String, PublicKey>, PolicyLoadError> {
        self.external_keys
            .iter()
            .map(|(name, text)| {
                crate::biscuit::keys::parse_public_key(text, None)
                    .map(|key| (name.clone(), key))
                    .map_err(|reason| PolicyLoadError::Setting {
                        setting: format!("policy.biscuit.external_keys.{name}"),
                        reason,
                    })
            })
            .collect()
    }
}

/// How a question is put.
#[derive(Clone, Copy)]
enum Mode {
    /// A message that names its target: strict, needs an `allow`.
    Targeted,
    /// A list/protocol/response message: target unknown, allowed unless denied.
    TargetFree,
    /// Could some call to this item be allowed: arguments unknown, needs an `allow`.
    Listing,
}

impl Mode {
    /// How many modes there are (the cache keeps one state per mode).
    const COUNT: usize = 3;

    fn index(self) -> usize {
        match self {
            Mode::Targeted => 0,
            Mode::TargetFree => 1,
            Mode::Listing => 2,
        }
    }

    fn of(request: &AuthzRequest<'_>) -> Mode {
        if request.action.allowed_unless_forbidden() {
            Mode::TargetFree
        } else {
            Mode::Targeted
        }
    }

    fn relax(self) -> Option<&'static [&'static str]> {
        match self {
            Mode::Targeted => None,
            Mode::TargetFree => Some(relax::TARGET_FREE),
            Mode::Listing => Some(relax::LISTING),
        }
    }
}

/// The program relaxed once per generation for each relaxed mode (see
/// [`relax::Prepared`]); `None` where preparing failed, which only means the slower path.
struct Relaxations {
    target_free: Option<relax::Prepared>,
    listing: Option<relax::Prepared>,
}

impl Relaxations {
    fn new(program: &AuthorizerProgram) -> Self {
        let prepare = |seeds| match relax::Prepared::new(&program.builder, seeds) {
            Ok(prepared) => Some(prepared),
            Err(e) => {
                tracing::warn!("cannot prepare a relaxed authorizer ({e}); relaxing per request");
                None
            }
        };
        Relaxations {
            target_free: prepare(relax::TARGET_FREE),
            listing: prepare(relax::LISTING),
        }
    }

    fn get(&self, mode: Mode) -> Option<&relax::Prepared> {
        match mode {
            Mode::Targeted => None,
            Mode::TargetFree => self.target_free.as_ref(),
            Mode::Listing => self.listing.as_ref(),
        }
    }
}

/// What every question of an engine is decided with: the program, its relaxations,
/// the run limits and the loaded states of recent callers (`None`: the per-request
/// authorizer only, the reference the tests compare with).
struct Program {
    program: AuthorizerProgram,
    relaxations: Relaxations,
    limits: AuthorizerLimits,
    cache: Option<LoadedCache>,
}

impl Program {
    fn new(program: AuthorizerProgram, limits: AuthorizerLimits) -> Self {
        Program {
            relaxations: Relaxations::new(&program),
            program,
            limits,
            cache: Some(LoadedCache::new(cache::TOKENS)),
        }
    }

    /// Runs one authorization.
    fn run(
        &self,
        token: Option<&Arc<BiscuitToken>>,
        facts: &[ReqFact<'_>],
        mode: Mode,
    ) -> Result<usize, TokenError> {
        match self.loaded(token, mode) {
            Some(loaded) => loaded.authorize(facts),
            None => Base::new(self, token, mode, &[])?.run(facts),
        }
    }

    /// The caller's loaded state in `mode`, if it can be (see [`loaded`]).
    fn loaded(&self, token: Option<&Arc<BiscuitToken>>, mode: Mode) -> Option<Arc<Loaded>> {
        let cache = self.cache.as_ref()?;
        cache.get(token, mode, || {
            let biscuit = token.map(|t| t.biscuit());
            match self.load(biscuit, mode) {
                Ok(loaded) => loaded.map(Arc::new),
                Err(e) => {
                    tracing::debug!("cannot load the authorizer ({e}); building it per request");
                    None
                }
            }
        })
    }

    /// The authorizer [`Base::run`] builds, without the request's facts, as a
    /// [`Loaded`] state. Relaxing does not depend on the request's facts: it rewrites
    /// only rules, checks and policies, and a seed only the request mentions occurs in
    /// none of them.
    fn load(&self, token: Option<&Biscuit>, mode: Mode) -> Result<Option<Loaded>, TokenError> {
        let prepared = self
            .relaxations
            .get(mode)
            .and_then(|prepared| prepared.builder_for(token));
        let builder = prepared
            .unwrap_or(&self.program.builder)
            .clone()
            .set_limits(self.limits.clone());
        let authorizer = match token {
            Some(token) => builder.build(token)?,
            None => builder.build_unauthenticated()?,
        };
        let mut snapshot = authorizer.snapshot()?;
        if let (None, Some(seeds)) = (prepared, mode.relax()) {
            relax::relax_snapshot(&mut snapshot, seeds);
        }
        Loaded::from_snapshot(snapshot, &self.limits)
    }

    /// Turns Biscuit's answer into a [`Decision`] (see [`judge`]).
    fn judge(
        &self,
        result: Result<usize, TokenError>,
        default_allow: bool,
        generation: u64,
    ) -> Decision {
        judge(&self.program, result, default_allow, generation)
    }
}

/// One caller's questions in one mode: its loaded state, or else (no state could be
/// loaded) an authorizer builder with the program (relaxed once per generation where
/// possible), the run limits and the facts every question shares. A listing makes it
/// once per list and adds each item's facts.
enum Base<'a> {
    Loaded(Arc<Loaded>),
    Builder {
        /// Boxed: a builder is large, and the loaded variant is the common one.
        builder: Box<AuthorizerBuilder>,
        token: Option<&'a Biscuit>,
        /// The seeds still to relax per question (the token mentions an unknown).
        relax_each: Option<&'static [&'static str]>,
    },
}

impl<'a> Base<'a> {
    /// The caller's base, from its loaded state when there is one.
    fn of(
        program: &Program,
        token: Option<&'a Arc<BiscuitToken>>,
        mode: Mode,
        shared: &[ReqFact<'_>],
    ) -> Result<Self, TokenError> {
        match program.loaded(token, mode) {
            Some(loaded) => Ok(Base::Loaded(Arc::new(loaded.with_facts(shared)))),
            None => Base::new(program, token, mode, shared),
        }
    }

    /// The per-request builder (the reference [`Loaded`] is held to).
    fn new(
        program: &Program,
        token: Option<&'a Arc<BiscuitToken>>,
        mode: Mode,
        shared: &[ReqFact<'_>],
    ) -> Result<Self, TokenError> {
        let token = token.map(|t| t.biscuit());
        let prepared = program
            .relaxations
            .get(mode)
            .and_then(|prepared| prepared.builder_for(token));
        let mut builder = prepared.unwrap_or(&program.program.builder).clone();
        for fact in shared {
            builder = builder.fact(fact.to_builder())?;
        }
        Ok(Base::Builder {
            builder: Box::new(builder.set_limits(program.limits.clone())),
            token,
            relax_each: if prepared.is_none() {
                mode.relax()
            } else {
                None
            },
        })
    }

    /// Authorizes with `facts` added to the shared ones.
    fn run(&self, facts: &[ReqFact<'_>]) -> Result<usize, TokenError> {
        let (builder, token, relax_each) = match self {
            Base::Loaded(loaded) => return loaded.authorize(facts),
            Base::Builder {
                builder,
                token,
                relax_each,
            } => (builder, token, relax_each),
        };
        let mut builder = AuthorizerBuilder::clone(builder);
        for fact in facts {
            builder = builder.fact(fact.to_builder())?;
        }
        let mut authorizer = match token {
            Some(token) => builder.build(token)?,
            None => builder.build_unauthenticated()?,
        };
        if let Some(seeds) = relax_each {
            authorizer = relax::relaxed(&authorizer, seeds)?;
        }
        authorizer.authorize()
    }
}

/// A [`Listing`] under one Biscuit program: the caller's base, made once.
struct BiscuitListing<'a> {
    program: &'a Program,
    /// `Err` if the caller's base could not be made: every item is hidden.
    base: Result<Base<'a>, TokenError>,
    generation: u64,
}

impl<'a> BiscuitListing<'a> {
    fn new(program: &'a Program, generation: u64, query: &ListQuery<'a>) -> Self {
        let token = BiscuitEngine::token(query.identity);
        let shared = facts::caller_facts(query.identity, query.env);
        BiscuitListing {
            program,
            base: Base::of(program, token, Mode::Listing, &shared),
            generation,
        }
    }
}

impl Listing for BiscuitListing<'_> {
    fn may_list(&self, item: &ListedItem<'_>) -> bool {
        let result = match &self.base {
            Ok(base) => {
                let annotations = item.annotations.map(|a| a.to_map());
                base.run(&facts::item_facts(item, annotations.as_deref()))
            }
            Err(e) => Err(e.clone()),
        };
        self.program.judge(result, false, self.generation).allow
    }
}

/// Turns Biscuit's answer into a [`Decision`] (see the module docs).
fn judge(
    program: &AuthorizerProgram,
    result: Result<usize, TokenError>,
    default_allow: bool,
    generation: u64,
) -> Decision {
    let policy = |i: usize| {
        program
            .policy_ids
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("policy{i}"))
    };
    let deny = |policy_ids: Vec<String>, errors: Vec<String>| Decision {
        allow: false,
        policy_ids,
        errors,
        generation,
    };
    let failed = |checks: &[FailedCheck]| {
        let mut ids = Vec::with_capacity(checks.len());
        let mut errors = Vec::with_capacity(checks.len());
        for check in checks {
            let (id, rule) = match check {
                FailedCheck::Authorizer(c) => (
                    program
                        .check_ids
                        .get(c.check_id as usize)
                        .cloned()
                        .unwrap_or_else(|| format!("check{}", c.check_id)),
                    &c.rule,
                ),
                FailedCheck::Block(c) => (
                    format!("token/block{}/check{}", c.block_id, c.check_id),
                    &c.rule,
                ),
            };
            errors.push(format!("{FAILED_CHECK}{id}: {rule}"));
            ids.push(id);
        }
        (ids, errors)
    };
    match result {
        Ok(index) => Decision {
            allow: true,
            policy_ids: vec![policy(index)],
            errors: Vec::new(),
            generation,
        },
        Err(TokenError::FailedLogic(Logic::NoMatchingPolicy { checks })) => {
            if checks.is_empty() && default_allow {
                return Decision {
                    allow: true,
                    policy_ids: Vec::new(),
                    errors: Vec::new(),
                    generation,
                };
            }
            let (ids, errors) = failed(&checks);
            deny(ids, errors)
        }
        Err(TokenError::FailedLogic(Logic::Unauthorized {
            policy: matched,
            checks,
        })) => {
            let (mut ids, errors) = failed(&checks);
            if let MatchedPolicy::Deny(i) = matched {
                ids.insert(0, policy(i));
            }
            deny(ids, errors)
        }
        Err(TokenError::RunLimit(limit)) => deny(Vec::new(), vec![format!("run_limit: {limit}")]),
        Err(e) => deny(Vec::new(), vec![format!("datalog_error: {e}")]),
    }
}

/// A compiled Biscuit policy generation.
pub struct BiscuitEngine {
    generation: u64,
    program: Program,
}

impl std::fmt::Debug for BiscuitEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BiscuitEngine")
            .field("generation", &self.generation)
            .field("program", &self.program.program)
            .finish_non_exhaustive()
    }
}

impl BiscuitEngine {
    /// The engine for generation `generation`.
    pub fn new(program: AuthorizerProgram, generation: u64, limits: AuthorizerLimits) -> Self {
        BiscuitEngine {
            generation,
            program: Program::new(program, limits),
        }
    }

    /// This engine without loaded states: every question builds its authorizer, the
    /// reference the cached path is tested against (and measured against, by
    /// `examples/biscuit_decide.rs`); not for production use.
    #[doc(hidden)]
    pub fn uncached(mut self) -> Self {
        self.program.cache = None;
        self
    }

    fn token(identity: &Identity) -> Option<&Arc<BiscuitToken>> {
        identity.biscuit.as_ref()
    }
}

impl PolicyEngine for BiscuitEngine {
    fn name(&self) -> &'static str {
        "biscuit"
    }

    fn decide(&self, request: &AuthzRequest<'_>) -> Decision {
        let facts = match facts::request_facts(
            request.identity,
            request.action,
            request.annotations,
            request.definition,
            request.env,
        ) {
            Ok(facts) => facts,
            Err(e) => return Decision::deny_error(format!("arguments: {e}"), self.generation),
        };
        let mode = Mode::of(request);
        let result = self
            .program
            .run(Self::token(request.identity), &facts, mode);
        self.program
            .judge(result, matches!(mode, Mode::TargetFree), self.generation)
    }

    fn listing<'a>(&'a self, query: &ListQuery<'a>) -> Box<dyn Listing + 'a> {
        Box::new(BiscuitListing::new(&self.program, self.generation, query))
    }
}

/// Another engine (Cedar), with a Biscuit caller's token checks enforced first (see the
/// module docs). Callers without a Biscuit go straight to the inner engine.
pub struct TokenChecks<E> {
    inner: E,
    generation: u64,
    program: Program,
}

impl<E> TokenChecks<E> {
    /// Wraps `inner`; `generation` is reported in denials by token checks.
    pub fn new(inner: E, generation: u64, limits: AuthorizerLimits) -> Self {
        let builder = AuthorizerBuilder::new()
            .policy("allow if true")
            .expect("a constant policy parses");
        let program = AuthorizerProgram {
            builder,
            policy_ids: vec!["token-checks".to_owned()],
            check_ids: Vec::new(),
            files: Vec::new(),
            scopes: Default::default(),
        };
        TokenChecks {
            inner,
            generation,
            program: Program::new(program, limits),
        }
    }

    /// The wrapped engine.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// These checks without loaded states (see [`BiscuitEngine::uncached`]).
    #[cfg(test)]
    fn uncached(mut self) -> Self {
        self.program.cache = None;
        self
    }
}

impl<E: PolicyEngine> PolicyEngine for TokenChecks<E> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn decide(&self, request: &AuthzRequest<'_>) -> Decision {
        if let Some(token) = BiscuitEngine::token(request.identity) {
            let facts = match facts::request_facts(
                request.identity,
                request.action,
                request.annotations,
                request.definition,
                request.env,
            ) {
                Ok(facts) => facts,
                Err(e) => return Decision::deny_error(format!("arguments: {e}"), self.generation),
            };
            let result = self.program.run(Some(token), &facts, Mode::of(request));
            let verdict = self.program.judge(result, false, self.generation);
            if !verdict.allow {
                return verdict;
            }
        }
        self.inner.decide(request)
    }

    fn listing<'a>(&'a self, query: &ListQuery<'a>) -> Box<dyn Listing + 'a> {
        let inner = self.inner.listing(query);
        if query.identity.biscuit.is_none() {
            return inner;
        }
        Box::new(CheckedListing {
            checks: BiscuitListing::new(&self.program, self.generation, query),
            inner,
        })
    }
}

/// A Biscuit caller's token checks around another engine's listing.
struct CheckedListing<'a> {
    checks: BiscuitListing<'a>,
    inner: Box<dyn Listing + 'a>,
}

impl Listing for CheckedListing<'_> {
    fn may_list(&self, item: &ListedItem<'_>) -> bool {
        self.checks.may_list(item) && self.inner.may_list(item)
    }
}

#[cfg(test)]
mod tests;
