//! The identity a verified token stands for, read from its authority block.
//!
//! Only the authority block counts (every query says `trusting authority`), so a holder
//! who appends a block cannot rename themselves or add a role. Which facts are read is
//! configured in `[auth.biscuit]` (`subject_fact`, `agent_fact`, `roles_fact`,
//! `scopes_fact`, `claim_facts`). The result, [`TokenIdentity`], is plain data: the
//! authenticator turns it into the proxy's identity type.

use std::sync::Arc;

use biscuit_auth::builder::{AuthorizerBuilder, Fact, Term};
use biscuit_auth::error::Token as TokenError;
use biscuit_auth::AuthorizerLimits;
use serde_json::{Map, Value};

use super::config::BiscuitConfig;
use super::error::VerifyError;
use super::token::BiscuitToken;

/// What a verified token says about its holder.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenIdentity {
    /// The user: the one subject fact, or `biscuit:<first 16 hex digits of the authority
    /// block's revocation id>` when there is none.
    pub subject: String,
    /// The agent acting for the user, if the token names one.
    pub agent: Option<String>,
    /// Roles, sorted, without duplicates.
    pub roles: Vec<String>,
    /// Scopes, sorted, without duplicates.
    pub scopes: Vec<String>,
    /// The configured claim facts: one value as itself, several as an array.
    pub claims: Map<String, Value>,
    /// The verified token.
    pub token: Arc<BiscuitToken>,
}

/// Which authority-block facts make up the identity (`[auth.biscuit] subject_fact`, …).
#[derive(Clone)]
pub(crate) struct IdentityFacts {
    subject: String,
    agent: String,
    roles: String,
    scopes: String,
    claims: Vec<String>,
}

impl IdentityFacts {
    pub(crate) fn from_config(cfg: &BiscuitConfig) -> Self {
        IdentityFacts {
            subject: cfg.subject_fact.clone(),
            agent: cfg.agent_fact.clone(),
            roles: cfg.roles_fact.clone(),
            scopes: cfg.scopes_fact.clone(),
            claims: cfg.claim_facts.clone(),
        }
    }
}

/// The identity a verified token stands for, read as the proxy reads it (the fact names
/// of `cfg`), e.g. for policy tests.
pub fn identity_from_token(
    token: Arc<BiscuitToken>,
    cfg: &BiscuitConfig,
    limits: &AuthorizerLimits,
) -> Result<TokenIdentity, VerifyError> {
    read_identity(&token, &IdentityFacts::from_config(cfg), limits)
}

/// Reads the identity from the authority block: each query says `trusting authority`,
/// so facts added by attenuation (or third-party) blocks never count.
pub(crate) fn read_identity(
    token: &Arc<BiscuitToken>,
    names: &IdentityFacts,
    limits: &AuthorizerLimits,
) -> Result<TokenIdentity, VerifyError> {
    let mut authorizer = AuthorizerBuilder::new()
        .set_limits(limits.clone())
        .build(token.biscuit())
        .map_err(evaluation_error)?;
    let mut values = |name: &str| -> Result<Vec<Term>, VerifyError> {
        let facts: Vec<Fact> = authorizer
            .query_all(format!("value($v) <- {name}($v) trusting authority").as_str())
            .map_err(evaluation_error)?;
        let mut terms: Vec<Term> = facts
            .into_iter()
            .filter_map(|f| f.predicate.terms.into_iter().next())
            .collect();
        terms.sort();
        terms.dedup();
        Ok(terms)
    };
    let subjects = values(&names.subject)?;
    let subject = match subjects.as_slice() {
        [] => format!(
            "biscuit:{}",
            token
                .revocation_ids()
                .first()
                .map_or("", |id| &id[..id.len().min(16)])
        ),
        [one] => term_text(one),
        _ => return Err(VerifyError::AmbiguousSubject),
    };
    let agent = values(&names.agent)?.first().map(term_text);
    let roles = values(&names.roles)?.iter().map(term_text).collect();
    let scopes = values(&names.scopes)?.iter().map(term_text).collect();
    let mut claims = Map::new();
    for name in &names.claims {
        let terms = values(name)?;
        let value = match terms.as_slice() {
            [] => continue,
            [one] => term_json(one),
            many => Value::Array(many.iter().map(term_json).collect()),
        };
        claims.insert(name.clone(), value);
    }
    Ok(TokenIdentity {
        subject,
        agent,
        roles,
        scopes,
        claims,
        token: Arc::clone(token),
    })
}

/// A term as identity text: strings as themselves, anything else as Datalog prints it.
fn term_text(term: &Term) -> String {
    match term {
        Term::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A term as a claim value.
fn term_json(term: &Term) -> Value {
    match term {
        Term::Str(s) => Value::String(s.clone()),
        Term::Integer(i) => Value::from(*i),
        Term::Bool(b) => Value::Bool(*b),
        other => Value::String(other.to_string()),
    }
}

/// Maps a failure to evaluate a verified token's Datalog.
pub(crate) fn evaluation_error(e: TokenError) -> VerifyError {
    match e {
        TokenError::RunLimit(_) => VerifyError::RunLimit,
        _ => VerifyError::Malformed,
    }
}
