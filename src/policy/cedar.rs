//! The Cedar [`PolicyEngine`]: turns an [`AuthzRequest`] into a Cedar request and
//! Cedar's response into a [`Decision`].
//!
//! The Cedar model (operators write policies against these names):
//! - principal `User::"<subject>"` with `auth_method`, `roles`, `scopes`, `claims` and
//!   optional `agent`, a member of `Role::"<role>"` for each of its roles;
//! - action `Action::"<McpAction::policy_action()>"`;
//! - resource `Tool::"<name>"` (attributes `name`, `annotations`, `pinned`,
//!   `invisible_characters`), `Resource::"<uri>"`
//!   (`uri`), `Prompt::"<name>"` (`name`), or `Method::"<json-rpc method>"` for list,
//!   protocol and other messages (`Method::"response"` for responses);
//! - context `arguments`, `time`, `datetime`, optional `source_ip`, `session { id,
//!   taints }`, `protocol_version`, optional `agent`, optional `mtls { spiffe_id, dns,
//!   subject, fingerprint }` (the connection's verified client certificate).
//!
//! Everything that does not depend on the request is prepared once per generation: the
//! static entities (with the schema's action entities), every policy classified by its
//! principal scope and by a leading taint guard, and an index of the policies by action
//! and by resource. A decision evaluates only the policies that can hold for it
//! (`cedar_index.rs`): those whose action scope can match its action, whose resource
//! scope is not `resource == <another entity>`, whose principal scope the caller
//! matches, and whose leading `context.session.taints.contains("<label>")` guard the
//! session satisfies. A policy skipped this way would have been false without an error
//! (scope conditions are evaluated first and cannot error; the guard is the first
//! conjunct evaluated after them and cannot error either), so Cedar's answer is the
//! same. The principal and the entity stores holding it are built once per caller and
//! kept (`callers`, bounded), with the scopes it matches; per caller, the entity store
//! with a target's resource added and the target's candidate policies are kept too
//! (`cedar_targets.rs`, bounded, keyed by the whole description of the target), with
//! the candidates partially evaluated for that caller and target (`cedar_eval.rs`:
//! those true for every context counted satisfied, those false dropped), so a decision
//! builds only the arguments, the context and the request, and runs Cedar's evaluator
//! on the remaining conditions, built once per generation. The context is built as
//! Cedar values (`cedar_context.rs`), its `datetime` and `source_ip` values from a
//! small cache (per second, per address). The listing rule builds the context once per list result
//! ([`PolicyEngine::listing`]) and evaluates the policies blind to the item's identity
//! once per class of items (`listing`).
//!
//! Fail closed: a request that cannot be built is a deny, and a `forbid` policy that
//! fails to evaluate denies as if it had matched (Cedar itself would skip it).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Effect, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, RestrictedExpression,
};
#[cfg(test)]
use cedar_policy::{AuthorizationError, Decision as CedarDecision};
use cedar_policy_core::ast;
use serde_json::{json, Map, Value};

use super::convert::{self, ConvertError};

#[cfg(test)]
use super::extension_cache::rfc3339_utc;
use super::extension_cache::ExtensionCache;
use super::load::{PolicyBundle, PolicyLoadError};
use super::{
    AuthzRequest, Decision, DefinitionFacts, ListQuery, ListedItem, Listing, PolicyEngine,
    RequestEnv,
};
use crate::auth::Identity;
use crate::mcp::ListKind;
#[cfg(test)]
use crate::mcp::McpAction;

/// Every action the proxy sends, as `Action::"<name>"`.
pub const ACTIONS: [&str; 12] = [
    "call_tool",
    "read_resource",
    "subscribe_resource",
    "get_prompt",
    "complete",
    "list_tools",
    "list_resources",
    "list_resource_templates",
    "list_prompts",
    "protocol",
    "respond",
    "other",
];

/// The name of the unknown that stands for `context.arguments` at list time.
const ARGUMENTS_UNKNOWN: &str = "arguments";

/// The entity type of the entity that holds the unknown arguments at list time.
const LISTING_TYPE: &str = "McpWarden::Listing";

/// Actions whose requests carry arguments (the others get `{}`).
const ACTIONS_WITH_ARGUMENTS: [&str; 2] = ["call_tool", "get_prompt"];

/// Why a request could not be put to Cedar (always a deny).
#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error("cannot build the `{what}` entity: {message}")]
    Entity { what: &'static str, message: String },
    #[error("cannot build the request context: {message}")]
    Context { message: String },
    #[error("cannot build the request: {message}")]
    Request { message: String },
    #[error("unknown action `{action}`")]
    UnknownAction { action: &'static str },
}

/// Entity type names, parsed once.
struct Types {
    user: EntityTypeName,
    role: EntityTypeName,
    tool: EntityTypeName,
    resource: EntityTypeName,
    prompt: EntityTypeName,
    method: EntityTypeName,
}

/// A Cedar request without schema validation (the entities and context are the proxy's
/// own, built to the schema).
fn new_request(
    principal: EntityUid,
    action: &EntityUid,
    resource: EntityUid,
    context: Context,
) -> Result<Request, BuildError> {
    Request::new(principal, action.clone(), resource, context, None).map_err(|e| {
        BuildError::Request {
            message: e.to_string(),
        }
    })
}

fn engine_error(e: impl std::fmt::Display) -> PolicyLoadError {
    PolicyLoadError::Engine {
        message: e.to_string(),
    }
}

/// The list-time form of a policy: `context.arguments` replaced by an attribute of the
/// listing entity, which holds an unknown (see [`CedarEngine::may_list`]). Policies that
/// do not read the arguments are returned unchanged.
fn listing_variant(policy: &Policy) -> Result<Policy, PolicyLoadError> {
    let mut est = policy.to_json().map_err(engine_error)?;
    if !rewrite_arguments(&mut est) {
        return Ok(policy.clone());
    }
    Policy::from_json(Some(policy.id().clone()), est).map_err(engine_error)
}

/// Rewrites every `context.arguments` (`{".": {"left": {"Var": "context"}, "attr":
/// "arguments"}}` in Cedar's JSON policy format) to `McpWarden::Listing::"arguments"
/// .arguments`. Returns whether anything changed.
fn rewrite_arguments(node: &mut Value) -> bool {
    match node {
        Value::Object(map) => {
            if let Some(Value::Object(get)) = map.get_mut(".") {
                if get.get("attr") == Some(&json!("arguments"))
                    && get.get("left") == Some(&json!({"Var": "context"}))
                {
                    get.insert(
                        "left".to_owned(),
                        json!({"Value": {"__entity": {"type": LISTING_TYPE, "id": ARGUMENTS_UNKNOWN}}}),
                    );
                    return true;
                }
            }
            map.values_mut()
                .fold(false, |changed, child| rewrite_arguments(child) | changed)
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, child| rewrite_arguments(child) | changed),
        _ => false,
    }
}

/// A compiled Cedar policy generation.
pub struct CedarEngine {
    generation: u64,
    authorizer: Authorizer,
    /// Every policy, classified for selection (`cedar_index.rs`).
    policies: index::Policies,
    /// Per action name: the policies whose action scope can match it, by resource.
    by_action: HashMap<&'static str, index::Index>,
    /// The policies of a bucket that can match a class of callers, built on first use.
    selections: index::Selections,
    /// Per listed action (`call_tool`, `get_prompt` in their list-time forms,
    /// `read_resource`): the policies split for one-pass listing.
    one_pass: HashMap<&'static str, listing::ListingIndex>,
    /// Every policy in its list-time form, unindexed: the single-pass rule the
    /// one-pass listing is tested against.
    #[cfg(test)]
    naive_listing: PolicySet,
    #[cfg(test)]
    naive: PolicySet,
    /// `entities` plus the listing entity holding the unknown arguments.
    listing_entities: Entities,
    /// `Action::"<name>"` uids.
    actions: HashMap<&'static str, EntityUid>,
    /// Ids of `forbid` policies (an evaluation error in one denies).
    forbids: HashSet<PolicyId>,
    /// Static entities plus the schema's actions.
    entities: Entities,
    types: Types,
    policy_count: usize,
    /// `context.datetime` and `context.source_ip` expressions, reused.
    extensions: ExtensionCache,
    /// Recent callers' principals and entity stores.
    callers: callers::Callers,
}

impl std::fmt::Debug for CedarEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CedarEngine")
            .field("generation", &self.generation)
            .field("policies", &self.policy_count)
            .field("entities", &self.entities.len())
            .finish_non_exhaustive()
    }
}

fn type_name(name: &str) -> Result<EntityTypeName, PolicyLoadError> {
    EntityTypeName::from_str(name).map_err(|e| PolicyLoadError::Engine {
        message: format!("entity type `{name}`: {e}"),
    })
}

impl CedarEngine {
    /// Builds the engine for generation `generation` from a validated bundle.
    pub fn new(bundle: PolicyBundle, generation: u64) -> Result<Self, PolicyLoadError> {
        let action_type = type_name("Action")?;
        let actions: HashMap<&'static str, EntityUid> = ACTIONS
            .iter()
            .map(|&a| {
                (
                    a,
                    EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(a)),
                )
            })
            .collect();
        let applies = |policy: &Policy, uid: &EntityUid| match policy.action_constraint() {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(a) => &a == uid,
            // `is_ancestor_of` does not count an entity as its own ancestor; `in` does.
            ActionConstraint::In(groups) => groups
                .iter()
                .any(|g| g == uid || bundle.entities.is_ancestor_of(g, uid)),
        };
        let listing_policies = bundle
            .policies
            .policies()
            .map(listing_variant)
            .collect::<Result<Vec<_>, _>>()?;
        let policies = index::Policies::new(bundle.policies.policies())?;
        let mut by_action = HashMap::new();
        let mut one_pass = HashMap::new();
        for (&name, uid) in &actions {
            by_action.insert(
                name,
                index::Index::build(&policies, &policies.positions(|p| applies(p, uid))),
            );
            let declared: &[&str] = if name == "call_tool" {
                &["annotations", "pinned", "invisible_characters"]
            } else {
                &[]
            };
            let identity = if name == "read_resource" {
                "uri"
            } else {
                "name"
            };
            if ACTIONS_WITH_ARGUMENTS.contains(&name) {
                one_pass.insert(
                    name,
                    listing::ListingIndex::build(
                        listing_policies.iter().filter(|p| applies(p, uid)),
                        declared,
                        identity,
                    )?,
                );
            } else if name == "read_resource" {
                one_pass.insert(
                    name,
                    listing::ListingIndex::build(
                        bundle.policies.policies().filter(|p| applies(p, uid)),
                        declared,
                        identity,
                    )?,
                );
            }
        }
        #[cfg(test)]
        let naive_listing =
            PolicySet::from_policies(listing_policies.iter().cloned()).map_err(engine_error)?;
        let listing_entity = Entity::new(
            EntityUid::from_type_name_and_id(
                type_name(LISTING_TYPE)?,
                EntityId::new(ARGUMENTS_UNKNOWN),
            ),
            HashMap::from([(
                ARGUMENTS_UNKNOWN.to_owned(),
                RestrictedExpression::new_unknown(ARGUMENTS_UNKNOWN),
            )]),
            HashSet::new(),
        )
        .map_err(engine_error)?;
        let listing_entities = bundle
            .entities
            .clone()
            .add_entities([listing_entity], None)
            .map_err(engine_error)?;
        let forbids = bundle
            .policies
            .policies()
            .filter(|p| p.effect() == Effect::Forbid)
            .map(|p| p.id().clone())
            .collect();
        Ok(CedarEngine {
            generation,
            authorizer: Authorizer::new(),
            policies,
            by_action,
            selections: index::Selections::default(),
            one_pass,
            #[cfg(test)]
            naive_listing,
            #[cfg(test)]
            naive: bundle.policies.clone(),
            listing_entities,
            actions,
            forbids,
            policy_count: bundle.policies.num_of_policies(),
            extensions: ExtensionCache::new(),
            callers: callers::Callers::default(),
            entities: bundle.entities,
            types: Types {
                user: type_name("User")?,
                role: type_name("Role")?,
                tool: type_name("Tool")?,
                resource: type_name("Resource")?,
                prompt: type_name("Prompt")?,
                method: type_name("Method")?,
            },
        })
    }

    /// The generation number this engine reports in its decisions.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many policies it holds.
    pub fn policy_count(&self) -> usize {
        self.policy_count
    }

    /// `Action::"<name>"`, or why there is none.
    fn action_uid(&self, name: &'static str) -> Result<&EntityUid, BuildError> {
        self.actions
            .get(name)
            .ok_or(BuildError::UnknownAction { action: name })
    }

    fn uid(&self, ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    fn principal(&self, identity: &Identity) -> Result<Entity, BuildError> {
        let strings = |v: &[String]| {
            RestrictedExpression::new_set(v.iter().cloned().map(RestrictedExpression::new_string))
        };
        let mut attrs = HashMap::with_capacity(5);
        attrs.insert(
            "auth_method".to_owned(),
            RestrictedExpression::new_string(identity.method.as_str().to_owned()),
        );
        attrs.insert("roles".to_owned(), strings(&identity.roles));
        attrs.insert("scopes".to_owned(), strings(&identity.scopes));
        attrs.insert(
            "claims".to_owned(),
            convert::map_to_record(&identity.claims, "claims")?,
        );
        if let Some(agent) = &identity.agent {
            attrs.insert(
                "agent".to_owned(),
                RestrictedExpression::new_string(agent.clone()),
            );
        }
        let parents: HashSet<EntityUid> = identity
            .roles
            .iter()
            .map(|r| self.uid(&self.types.role, r))
            .collect();
        Entity::new(
            self.uid(&self.types.user, &identity.subject),
            attrs,
            parents,
        )
        .map_err(|e| BuildError::Entity {
            what: "principal",
            message: e.to_string(),
        })
    }

    /// An entity with a single string attribute naming it.
    fn named(
        &self,
        ty: &EntityTypeName,
        id: &str,
        attr: &'static str,
        extra: Option<(&'static str, RestrictedExpression)>,
    ) -> Result<Entity, BuildError> {
        let mut attrs = HashMap::with_capacity(2);
        attrs.insert(
            attr.to_owned(),
            RestrictedExpression::new_string(id.to_owned()),
        );
        if let Some((k, v)) = extra {
            attrs.insert(k.to_owned(), v);
        }
        Entity::new(self.uid(ty, id), attrs, HashSet::new()).map_err(|e| BuildError::Entity {
            what: "resource",
            message: e.to_string(),
        })
    }

    fn tool(
        &self,
        name: &str,
        annotations: Option<&Map<String, Value>>,
        definition: DefinitionFacts,
    ) -> Result<Entity, BuildError> {
        let annotations = convert::map_to_record(&with_hint_defaults(annotations), "annotations")?;
        let attrs = HashMap::from([
            (
                "name".to_owned(),
                RestrictedExpression::new_string(name.to_owned()),
            ),
            ("annotations".to_owned(), annotations),
            (
                "pinned".to_owned(),
                RestrictedExpression::new_bool(definition.pinned),
            ),
            (
                "invisible_characters".to_owned(),
                RestrictedExpression::new_bool(definition.invisible_characters),
            ),
        ]);
        Entity::new(self.uid(&self.types.tool, name), attrs, HashSet::new()).map_err(|e| {
            BuildError::Entity {
                what: "resource",
                message: e.to_string(),
            }
        })
    }

    fn resource_entity(&self, uri: &str) -> Result<Entity, BuildError> {
        self.named(&self.types.resource, uri, "uri", None)
    }

    fn prompt_entity(&self, name: &str) -> Result<Entity, BuildError> {
        self.named(&self.types.prompt, name, "name", None)
    }

    fn method_entity(&self, method: &str) -> Entity {
        Entity::new_no_attrs(self.uid(&self.types.method, method), HashSet::new())
    }

    /// The request context, built as Cedar's evaluated values (`cedar_context.rs`).
    fn context(
        &self,
        identity: &Identity,
        env: &RequestEnv,
        arguments: ast::Value,
    ) -> Result<Context, BuildError> {
        context::build(&self.extensions, identity, env, arguments)
    }

    /// A decision's question, in the order of [`Self::naive_decide`] so that the same
    /// failure is reported: the resource entity, the arguments, the context, the
    /// principal, then the entity store. What depends only on the caller and the target
    /// (entity store, candidate policies) comes from the caches (module docs).
    fn try_decide(&self, request: &AuthzRequest<'_>) -> Result<Decision, BuildError> {
        let action = request.action;
        let name = action.policy_action();
        let target_ref = targets::TargetRef::of(action, request.annotations, request.definition);
        let caller = self.callers.get(self, request.identity);
        let target = match &caller {
            Ok(caller) => Some(caller.targets.get(self, &caller.entities, target_ref)?),
            Err(_) => {
                target_ref.entity(self)?;
                None
            }
        };
        let context = self.context(request.identity, request.env, context::arguments(action)?)?;
        let caller = caller?;
        let target = target.unwrap_or_else(|| unreachable!("built with the caller"))?;
        let action_uid = self.action_uid(name)?;
        let policies = target.policies(self, name, &caller.class, &request.env.taints)?;
        let cedar_request = new_request(
            caller.principal_uid.clone(),
            action_uid,
            target.resource_uid.clone(),
            context,
        )?;
        let plan = target.plan(&policies, &caller.principal_uid, action_uid);
        let outcome = eval::evaluate(&plan, &cedar_request, &target.entities)?;
        let reasons = outcome.reasons().to_vec();
        Ok(self.judge(
            action.allowed_unless_forbidden(),
            outcome.allowed(),
            reasons.into_iter(),
            outcome.errors.into_iter(),
        ))
    }

    /// The unoptimised decision the optimised one must equal: every policy of the
    /// bundle, a fresh entity store with the principal and the resource.
    #[cfg(test)]
    fn naive_decide(&self, request: &AuthzRequest<'_>) -> Decision {
        let run = || -> Result<Decision, BuildError> {
            let action = request.action;
            let name = action.policy_action();
            let resource = targets::TargetRef::of(action, request.annotations, request.definition)
                .entity(self)?;
            let context =
                self.context(request.identity, request.env, context::arguments(action)?)?;
            let principal = self.principal(request.identity)?;
            let principal_uid = principal.uid();
            let resource_uid = resource.uid();
            let entities = self
                .entities
                .clone()
                .add_entities([principal, resource], None)
                .map_err(|e| BuildError::Entity {
                    what: "request",
                    message: e.to_string(),
                })?;
            let action_uid = self.action_uid(name)?;
            let request_ = new_request(principal_uid, action_uid, resource_uid, context)?;
            let response = self
                .authorizer
                .is_authorized(&request_, &self.naive, &entities);
            Ok(self.judge_response(action.allowed_unless_forbidden(), &response))
        };
        run().unwrap_or_else(|e| Decision::deny_error(e.to_string(), self.generation))
    }

    /// Turns Cedar's response into a [`Decision`] (see the module docs for the rules).
    #[cfg(test)]
    fn judge_response(
        &self,
        allowed_unless_forbidden: bool,
        response: &cedar_policy::Response,
    ) -> Decision {
        let diagnostics = response.diagnostics();
        let errors = diagnostics.errors().map(|error| {
            let AuthorizationError::PolicyEvaluationError(e) = error;
            (error.to_string(), e.policy_id())
        });
        self.judge(
            allowed_unless_forbidden,
            response.decision() == CedarDecision::Allow,
            diagnostics.reason(),
            errors,
        )
    }

    /// Turns the authorizer's answer (its decision, reasons and errors with the policy
    /// that raised each) into a [`Decision`] (see the module docs for the rules).
    fn judge<'p>(
        &self,
        allowed_unless_forbidden: bool,
        cedar_allow: bool,
        reasons: impl Iterator<Item = &'p PolicyId>,
        errors: impl Iterator<Item = (String, &'p PolicyId)>,
    ) -> Decision {
        let mut reasons: Vec<String> = reasons.map(id_string).collect();
        reasons.sort();
        let mut messages = Vec::new();
        let mut errored_forbids = Vec::new();
        for (message, policy) in errors {
            messages.push(message);
            if self.forbids.contains(policy) {
                errored_forbids.push(id_string(policy));
            }
        }
        let allow = errored_forbids.is_empty()
            && (cedar_allow || (allowed_unless_forbidden && reasons.is_empty()));
        let policy_ids = if allow {
            reasons
        } else {
            // Cedar's reasons for a deny are the satisfied forbids; for an allow that an
            // erroring forbid overturned, they are permits and did not decide.
            let mut ids = if cedar_allow { Vec::new() } else { reasons };
            ids.extend(errored_forbids);
            ids.sort();
            ids.dedup();
            ids
        };
        Decision {
            allow,
            policy_ids,
            errors: messages,
            generation: self.generation,
        }
    }

    /// The caller-dependent parts of one list result's questions, built once.
    fn listing_parts(&self, query: &ListQuery<'_>) -> Result<ListingParts, BuildError> {
        let context = self.context(query.identity, query.env, ast::Value::empty_record(None))?;
        Ok(ListingParts {
            caller: self.callers.get(self, query.identity)?,
            context,
        })
    }

    /// The call a list item stands for: its action and resource entity.
    fn listed_call(&self, item: &ListedItem<'_>) -> Result<(&'static str, Entity), BuildError> {
        Ok(match item.kind {
            ListKind::Tools => (
                "call_tool",
                self.tool(
                    item.name,
                    item.annotations.map(|a| a.to_map()).as_deref(),
                    item.definition,
                )?,
            ),
            ListKind::Prompts => ("get_prompt", self.prompt_entity(item.name)?),
            ListKind::Resources | ListKind::ResourceTemplates => {
                ("read_resource", self.resource_entity(item.name)?)
            }
        })
    }

    /// Cedar's partial answer for a listed call under `policies` (arguments unknown).
    fn partial_listing(
        &self,
        parts: &ListingParts,
        action: &'static str,
        policies: &PolicySet,
        resource: Entity,
    ) -> Result<cedar_policy::PartialResponse, BuildError> {
        let base = if ACTIONS_WITH_ARGUMENTS.contains(&action) {
            &parts.caller.listing_entities
        } else {
            &parts.caller.entities
        };
        let action_uid = self.action_uid(action)?;
        let resource_uid = resource.uid();
        let entities =
            base.clone()
                .add_entities([resource], None)
                .map_err(|e| BuildError::Entity {
                    what: "request",
                    message: e.to_string(),
                })?;
        let request = new_request(
            parts.caller.principal_uid.clone(),
            action_uid,
            resource_uid,
            parts.context.clone(),
        )?;
        Ok(self
            .authorizer
            .is_authorized_partial(&request, policies, &entities))
    }

    /// The single-pass listing rule, every policy evaluated for the item at once (what
    /// the one-pass listing must agree with).
    #[cfg(test)]
    fn single_pass_may_list(
        &self,
        identity: &Identity,
        item: &ListedItem<'_>,
        env: &RequestEnv,
    ) -> bool {
        let query = ListQuery { identity, env };
        let run = || -> Result<bool, BuildError> {
            let parts = self.listing_parts(&query)?;
            let (action, resource) = self.listed_call(item)?;
            let policies = if ACTIONS_WITH_ARGUMENTS.contains(&action) {
                &self.naive_listing
            } else {
                &self.naive
            };
            let response = self.partial_listing(&parts, action, policies, resource)?;
            Ok(listing::Flags::of(self, &response).listed())
        };
        run().unwrap_or(false)
    }
}

/// What every item of one list result shares: the principal (inside both entity
/// stores) and the context.
struct ListingParts {
    caller: Arc<callers::Caller>,
    context: Context,
}

impl PolicyEngine for CedarEngine {
    fn name(&self) -> &'static str {
        "cedar"
    }

    /// Cedar's authorization answer, with two rules on top:
    /// - for actions that are
    ///   [`McpAction::allowed_unless_forbidden`](crate::mcp::McpAction::allowed_unless_forbidden)
    ///   (list methods, protocol messages, responses), a default deny (no policy matched)
    ///   is an allow;
    ///   a satisfied `forbid` still denies;
    /// - a `forbid` policy that fails to evaluate denies (fail closed), and is named in
    ///   `policy_ids`. A `permit` that fails to evaluate simply does not permit.
    ///
    /// Evaluation errors are always reported in [`Decision::errors`].
    fn decide(&self, request: &AuthzRequest<'_>) -> Decision {
        match self.try_decide(request) {
            Ok(decision) => decision,
            Err(e) => Decision::deny_error(e.to_string(), self.generation),
        }
    }

    /// The listing rule for argument-dependent policies: the item's call (`call_tool` on
    /// `Tool::"<name>"` with the item's annotations, `get_prompt` on `Prompt::"<name>"`,
    /// `read_resource` on `Resource::"<uri or template>"`) is evaluated with Cedar's
    /// partial evaluation, `context.arguments` left unknown. A concrete allow lists the
    /// item; a concrete deny hides it; a residual (the answer depends on the arguments)
    /// lists it, because some arguments might be allowed; each call is decided again
    /// with its real arguments. A `forbid` that errors regardless of arguments hides the
    /// item, and any failure to build the question hides it (fail closed). The principal,
    /// the context and the entity stores holding the principal are built once per list.
    ///
    /// How the unknown is placed: Cedar's partial evaluator does not reduce attribute
    /// access on a context record that holds an unknown, so an unknown inside the context
    /// would leave every policy that reads `context.session` or `context.time` residual.
    /// Instead, at load time, each policy's `context.arguments` is rewritten to an
    /// attribute of a listing-only entity whose value is the unknown
    /// (`RestrictedExpression::new_unknown`), and the context carries `arguments: {}`.
    /// Everything else in the context is the listing request's real value.
    fn listing<'a>(&'a self, query: &ListQuery<'a>) -> Box<dyn Listing + 'a> {
        let parts = match self.listing_parts(query) {
            Ok(parts) => Some(parts),
            Err(e) => {
                tracing::debug!(error = %e, "cannot build the listing question; hiding every item");
                None
            }
        };
        Box::new(listing::CedarListing {
            engine: self,
            parts,
            identity: query.identity,
            env: query.env,
            key: Default::default(),
        })
    }
}

#[path = "cedar_callers.rs"]
mod callers;
#[path = "cedar_context.rs"]
mod context;
#[path = "cedar_eval.rs"]
mod eval;
#[path = "cedar_index.rs"]
mod index;
#[path = "cedar_listing.rs"]
mod listing;
#[path = "cedar_targets.rs"]
mod targets;

#[cfg(test)]
#[path = "cedar_decide_tests.rs"]
mod decide_tests;
#[cfg(test)]
#[path = "cedar_tests.rs"]
mod tests;

/// `id.to_string()` (Cedar writes a policy id escaped, as `str::escape_debug` does),
/// without the formatting machinery for the ids escaping leaves alone: printable ASCII
/// other than `\`, `'` and `"`. Every decision names its policies this way.
fn id_string(id: &PolicyId) -> String {
    let text: &str = id.as_ref();
    if text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && !matches!(b, b'\\' | b'\'' | b'"'))
    {
        text.to_owned()
    } else {
        id.to_string()
    }
}

/// Fill in the MCP spec's defaults for tool hints a server did not declare (or declared
/// as something other than a boolean): `readOnlyHint` false, `destructiveHint` true
/// (false for a read-only tool, where the spec says it is meaningless), `idempotentHint`
/// false, `openWorldHint` true. So a tool the proxy knows nothing about — never listed,
/// or called by a client that skips `tools/list` on purpose — meets every `forbid`
/// written against risky tools and no `permit` meant for safe ones.
pub(crate) fn with_hint_defaults(declared: Option<&Map<String, Value>>) -> Map<String, Value> {
    let mut out = declared.cloned().unwrap_or_default();
    let declared_bool =
        |out: &Map<String, Value>, hint: &str| out.get(hint).and_then(Value::as_bool);
    let read_only = declared_bool(&out, "readOnlyHint").unwrap_or(false);
    let defaults = [
        ("readOnlyHint", false),
        ("destructiveHint", !read_only),
        ("idempotentHint", false),
        ("openWorldHint", true),
    ];
    for (hint, default) in defaults {
        if declared_bool(&out, hint).is_none() {
            out.insert(hint.to_owned(), Value::Bool(default));
        }
    }
    out
}
