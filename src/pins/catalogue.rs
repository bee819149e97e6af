//! The catalogue: what the proxy has seen of the upstream's definitions, measured
//! against the pins, with each tool's compiled `inputSchema`.
//!
//! [`Catalogue::observe`] is called for every item of every `tools/list`,
//! `prompts/list` and `resources/templates/list` result (before per-caller filtering),
//! [`Catalogue::check_call`] for every `tools/call`. A definition is digested on each
//! sighting, but scanned and compiled only when its digest changes: the schema is
//! compiled once per generation of the catalogue, not per call.
//!
//! Pins come from the pin file (hot-reloaded, [`Catalogue::reload`]) and, in `learn`
//! mode, from the first sighting of each definition (kept in memory; a restart learns
//! afresh, so pair `learn` with a pin file for pins that last). Every change is reported
//! once per new digest ([`PinEvent`]), for the audit log.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use serde_json::{Map, Value};

use super::definition::{changed_fields, Definition, DefinitionKind};
use super::file::{PinFile, PinFileError};
use super::invisible::{scan, Finding, Findings};
use super::learned::{Claim, LearnedStore};
use super::{PinMode, PinningConfig};
use crate::policy::DefinitionFacts;
use crate::schema::{
    compile, ArgumentError, CompiledSchema, SchemaError, SchemaLimits, ValidationMode,
};

/// Most definitions remembered (seen, learned, reported); beyond this, new names are
/// treated as unpinned and not remembered, so a hostile upstream cannot grow memory.
const MAX_DEFINITIONS: usize = 65_536;

type Key = (DefinitionKind, String);

/// Where a definition stands against the pins.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum PinStatus {
    /// Pinning is off.
    NotChecked,
    /// Matches its pin (or, not listed yet, has one).
    Pinned,
    /// Listed, but no pin holds it (a new definition).
    Unpinned,
    /// Listed with a definition other than its pin's.
    Drifted {
        /// The pin's digest.
        pinned: String,
    },
    /// Never listed and not pinned.
    Unknown,
}

impl PinStatus {
    /// `pinned`, `unpinned`, `drifted`, `unknown`, `not_checked`.
    pub fn label(&self) -> &'static str {
        match self {
            PinStatus::NotChecked => "not_checked",
            PinStatus::Pinned => "pinned",
            PinStatus::Unpinned => "unpinned",
            PinStatus::Drifted { .. } => "drifted",
            PinStatus::Unknown => "unknown",
        }
    }
}

/// What changed, for one audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A definition no pin holds (audited in `warn` and `enforce`).
    New,
    /// A definition other than its pin's.
    Drifted,
    /// `learn` pinned a definition on first sight.
    Learned,
    /// Invisible or control characters in a definition.
    InvisibleCharacters,
}

impl Change {
    /// `new`, `drifted`, `learned`, `invisible_characters`.
    pub fn label(&self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Drifted => "drifted",
            Change::Learned => "learned",
            Change::InvisibleCharacters => "invisible_characters",
        }
    }
}

/// One definition change, reported once per digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinEvent {
    /// What kind of definition.
    pub kind: DefinitionKind,
    /// Its name.
    pub name: String,
    /// What happened.
    pub change: Change,
    /// The pin's digest, when there is one.
    pub old_digest: Option<String>,
    /// The digest seen.
    pub new_digest: String,
    /// The covered fields that differ from the pin.
    pub fields: Vec<&'static str>,
    /// Flagged characters (for [`Change::InvisibleCharacters`]).
    pub findings: Vec<Finding>,
    /// Whether the item stays listed.
    pub listed: bool,
}

/// The verdict on one list item.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Keep the item in the list (the policy's listing rule still applies).
    pub visible: bool,
    /// What policies see of it.
    pub facts: DefinitionFacts,
    /// Where it stands.
    pub status: PinStatus,
    /// Changes to audit (empty when nothing new).
    pub events: Vec<PinEvent>,
}

/// Why a call is refused (or, in `warn`, would have been).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallProblem {
    /// The tool's definition is not approved (`enforce`, or a drift in `learn`).
    NotApproved {
        /// Where it stands.
        status: PinStatus,
    },
    /// Its definition carries invisible characters and `refuse_invisible` is set.
    InvisibleCharacters,
    /// A `prompts/get` of a prompt whose definition is not approved (as
    /// [`CallProblem::NotApproved`] for tools).
    PromptNotApproved {
        /// Where it stands.
        status: PinStatus,
    },
    /// A `prompts/get` of a prompt whose definition carries invisible characters, with
    /// `refuse_invisible` set.
    PromptInvisibleCharacters,
    /// Never listed: no schema to check against.
    UnknownTool,
    /// Its schema could not be compiled.
    SchemaUnusable {
        /// Why.
        reason: String,
    },
    /// The arguments do not match the schema.
    InvalidArguments {
        /// How.
        errors: Vec<ArgumentError>,
    },
}

impl CallProblem {
    /// A stable label (audit `reason`, metrics).
    pub fn label(&self) -> &'static str {
        match self {
            CallProblem::NotApproved { .. } => "tool_not_approved",
            CallProblem::InvisibleCharacters => "tool_invisible_characters",
            CallProblem::PromptNotApproved { .. } => "prompt_not_approved",
            CallProblem::PromptInvisibleCharacters => "prompt_invisible_characters",
            CallProblem::UnknownTool => "unknown_tool",
            CallProblem::SchemaUnusable { .. } => "schema_unusable",
            CallProblem::InvalidArguments { .. } => "invalid_arguments",
        }
    }

    /// Everything, for the audit line.
    pub fn detail(&self) -> Vec<String> {
        match self {
            CallProblem::NotApproved { status } => {
                vec![format!("tool definition is {}", status.label())]
            }
            CallProblem::InvisibleCharacters => {
                vec!["tool definition carries invisible characters".into()]
            }
            CallProblem::PromptNotApproved { status } => {
                vec![format!("prompt definition is {}", status.label())]
            }
            CallProblem::PromptInvisibleCharacters => {
                vec!["prompt definition carries invisible characters".into()]
            }
            CallProblem::UnknownTool => vec!["tool never listed by the upstream".into()],
            CallProblem::SchemaUnusable { reason } => vec![format!("input schema: {reason}")],
            CallProblem::InvalidArguments { errors } => errors
                .iter()
                .map(|e| {
                    let path = if e.path.is_empty() { "/" } else { &e.path };
                    format!("arguments `{path}`: {} ({})", e.detail, e.rule)
                })
                .collect(),
        }
    }
}

/// The verdict on one `tools/call`.
#[derive(Debug, Clone, Default)]
pub struct CallCheck {
    /// What policies see of the tool.
    pub facts: DefinitionFacts,
    /// Refuse the call for this reason.
    pub refusal: Option<CallProblem>,
    /// Forward, but audit this (`warn` modes).
    pub warning: Option<CallProblem>,
}

impl CallCheck {
    /// Record `p`: the first enforced problem refuses, the first other one warns.
    fn problem(&mut self, p: CallProblem, enforced: bool) {
        let slot = if enforced {
            &mut self.refusal
        } else {
            &mut self.warning
        };
        if slot.is_none() {
            *slot = Some(p);
        }
    }
}

/// A definition as seen, with what was derived from it once.
struct Known {
    definition: Definition,
    findings: Findings,
    schema: Option<Result<CompiledSchema, SchemaError>>,
}

#[derive(Default)]
struct State {
    seen: HashMap<Key, Arc<Known>>,
    learned: HashMap<Key, Arc<Known>>,
    /// Pinned tool definitions compiled on demand (a call before any list), by digest.
    pinned_schemas: HashMap<String, Arc<Known>>,
    reported: HashSet<(Key, String, &'static str)>,
    drifted: HashSet<Key>,
}

/// See the module docs.
pub struct Catalogue {
    mode: PinMode,
    refuse_invisible: bool,
    validation: ValidationMode,
    limits: SchemaLimits,
    file_path: Option<PathBuf>,
    file: ArcSwap<PinFile>,
    state: RwLock<State>,
}

impl Catalogue {
    /// A catalogue for the `[pinning]` and `[arguments]` settings, with the pin file
    /// (already resolved against the configuration's directory) read now.
    pub fn new(
        pinning: &PinningConfig,
        file_path: Option<PathBuf>,
        validation: ValidationMode,
        limits: SchemaLimits,
    ) -> Result<Self, PinFileError> {
        let file = match &file_path {
            Some(path) if pinning.mode != PinMode::Off => PinFile::load(path)?,
            _ => PinFile::new(),
        };
        Ok(Catalogue {
            mode: pinning.mode,
            refuse_invisible: pinning.refuse_invisible,
            validation,
            limits,
            file_path: if pinning.mode == PinMode::Off {
                None
            } else {
                file_path
            },
            file: ArcSwap::from_pointee(file),
            state: RwLock::new(State::default()),
        })
    }

    /// A catalogue that checks nothing (pinning and validation off).
    pub fn disabled() -> Self {
        Catalogue {
            mode: PinMode::Off,
            refuse_invisible: false,
            validation: ValidationMode::Off,
            limits: SchemaLimits::default(),
            file_path: None,
            file: ArcSwap::from_pointee(PinFile::new()),
            state: RwLock::new(State::default()),
        }
    }

    /// The pinning mode.
    pub fn mode(&self) -> PinMode {
        self.mode
    }

    /// The argument validation mode.
    pub fn validation(&self) -> ValidationMode {
        self.validation
    }

    /// Whether list results need to be looked at at all.
    pub fn active(&self) -> bool {
        self.mode != PinMode::Off || self.validation != ValidationMode::Off
    }

    /// The pin file to watch, if any.
    pub fn watched_file(&self) -> Option<PathBuf> {
        self.file_path.clone()
    }

    /// Re-read the pin file; on error the previous pins stay in force.
    pub fn reload(&self) -> Result<bool, PinFileError> {
        let Some(path) = &self.file_path else {
            return Ok(false);
        };
        let file = PinFile::load(path)?;
        if **self.file.load() == file {
            return Ok(false);
        }
        self.file.store(Arc::new(file));
        // Re-report against the new pins.
        self.state.write().reported.clear();
        Ok(true)
    }

    /// How many listed definitions currently differ from their pins.
    pub fn drifted(&self) -> usize {
        self.state.read().drifted.len()
    }

    /// The pin digest and definition for a key: the file's, else a learned one.
    fn pin(
        &self,
        file: &PinFile,
        state: &State,
        key: &Key,
    ) -> Option<(String, Map<String, Value>)> {
        if let Some(entry) = file.entries(key.0).get(&key.1) {
            return Some((entry.digest.clone(), entry.definition.clone()));
        }
        state
            .learned
            .get(key)
            .map(|k| (k.definition.digest.clone(), k.definition.fields.clone()))
    }

    fn know(&self, kind: DefinitionKind, definition: Definition) -> Known {
        let findings = scan(&definition.fields);
        let schema =
            (kind == DefinitionKind::Tool && self.validation != ValidationMode::Off).then(|| {
                match definition.input_schema() {
                    Some(schema) => compile(schema, &self.limits),
                    None => Err(SchemaError::Invalid {
                        reason: "the tool declares no `inputSchema`".into(),
                    }),
                }
            });
        if let Some(Err(e)) = &schema {
            tracing::warn!(tool = %definition.name, error = %e, "tool input schema cannot be used to check arguments");
        }
        Known {
            definition,
            findings,
            schema,
        }
    }

    /// Judge one list item (see the module docs). Items without a name are left to the
    /// list filter, which refuses the whole result.
    ///
    /// In `learn`, a definition no pin holds is offered to `store` first, so replicas
    /// sharing one agree on what was seen first ([`super::learned`]).
    pub fn observe(
        &self,
        kind: DefinitionKind,
        item: &Map<String, Value>,
        store: &dyn LearnedStore,
    ) -> Observed {
        let Some(definition) = Definition::from_item(kind, item) else {
            return Observed {
                visible: false,
                facts: DefinitionFacts::default(),
                status: PinStatus::Unknown,
                events: Vec::new(),
            };
        };
        let key: Key = (kind, definition.name.clone());
        let current = {
            let state = self.state.read();
            state
                .seen
                .get(&key)
                .filter(|k| k.definition.digest == definition.digest)
                .cloned()
        };
        let known = match current {
            Some(known) => known,
            None => {
                let known = Arc::new(self.know(kind, definition));
                let mut state = self.state.write();
                if state.seen.len() < MAX_DEFINITIONS || state.seen.contains_key(&key) {
                    state.seen.insert(key.clone(), Arc::clone(&known));
                }
                known
            }
        };
        let digest = known.definition.digest.clone();
        let invisible = !known.findings.is_empty();
        let mut events = Vec::new();

        let status = if self.mode == PinMode::Off {
            PinStatus::NotChecked
        } else {
            let file = self.file.load();
            let state = self.state.read();
            match self.pin(&file, &state, &key) {
                Some((pinned, _)) if pinned == digest => PinStatus::Pinned,
                Some((pinned, _)) => PinStatus::Drifted { pinned },
                None => PinStatus::Unpinned,
            }
        };
        let status = if self.mode == PinMode::Learn && status == PinStatus::Unpinned {
            self.learn(kind, &key, &known, store, &mut events)
        } else {
            status
        };

        let schema_unusable =
            matches!(known.schema, Some(Err(_))) && self.validation == ValidationMode::Enforce;
        let approved = match self.mode {
            PinMode::Off | PinMode::Warn => true,
            PinMode::Learn | PinMode::Enforce => status == PinStatus::Pinned,
        };
        let visible = approved && !(self.refuse_invisible && invisible) && !schema_unusable;

        {
            let mut state = self.state.write();
            if matches!(status, PinStatus::Drifted { .. }) {
                if state.drifted.len() < MAX_DEFINITIONS {
                    state.drifted.insert(key.clone());
                }
            } else {
                state.drifted.remove(&key);
            }
            let change = match &status {
                PinStatus::Drifted { .. } => Some(Change::Drifted),
                PinStatus::Unpinned => Some(Change::New),
                _ => None,
            };
            if let Some(change) = change {
                if self.first_report(&mut state, &key, &digest, change.label()) {
                    let (old, fields) = match self.pin(&self.file.load(), &state, &key) {
                        Some((d, old)) => (
                            Some(d),
                            changed_fields(kind, &old, &known.definition.fields),
                        ),
                        None => (None, Vec::new()),
                    };
                    events.push(self.event(kind, &known, change, old, fields, visible));
                }
            }
            if invisible
                && self.mode != PinMode::Off
                && self.first_report(
                    &mut state,
                    &key,
                    &digest,
                    Change::InvisibleCharacters.label(),
                )
            {
                events.push(self.event(
                    kind,
                    &known,
                    Change::InvisibleCharacters,
                    None,
                    Vec::new(),
                    visible,
                ));
            }
        }
        Observed {
            visible,
            facts: DefinitionFacts {
                pinned: status == PinStatus::Pinned,
                invisible_characters: invisible,
            },
            status,
            events,
        }
    }

    fn first_report(&self, state: &mut State, key: &Key, digest: &str, what: &'static str) -> bool {
        let entry = (key.clone(), digest.to_owned(), what);
        if state.reported.contains(&entry) || state.reported.len() >= MAX_DEFINITIONS {
            return false;
        }
        state.reported.insert(entry);
        true
    }

    fn event(
        &self,
        kind: DefinitionKind,
        known: &Known,
        change: Change,
        old_digest: Option<String>,
        fields: Vec<&'static str>,
        listed: bool,
    ) -> PinEvent {
        PinEvent {
            kind,
            name: known.definition.name.clone(),
            findings: if change == Change::InvisibleCharacters {
                known.findings.first.clone()
            } else {
                Vec::new()
            },
            change,
            old_digest,
            new_digest: known.definition.digest.clone(),
            fields,
            listed,
        }
    }

    /// Trust on first sight (`learn`) a definition no pin holds: this one, unless the
    /// store holds an earlier one of that name (then this one has drifted from it).
    fn learn(
        &self,
        kind: DefinitionKind,
        key: &Key,
        known: &Arc<Known>,
        store: &dyn LearnedStore,
        events: &mut Vec<PinEvent>,
    ) -> PinStatus {
        let digest = &known.definition.digest;
        let held = match store.claim(kind, &known.definition) {
            Claim::Local => Arc::clone(known),
            Claim::Held(definition) if definition.digest == *digest => Arc::clone(known),
            Claim::Held(definition) => Arc::new(self.know(kind, definition)),
            Claim::Unavailable(reason) => {
                tracing::warn!(
                    kind = kind.label(),
                    name = %key.1,
                    %reason,
                    "definition not trusted: the shared store of learned pins did not answer"
                );
                return PinStatus::Unpinned;
            }
        };
        let mut state = self.state.write();
        let in_force = match state.learned.get(key) {
            // Learned meanwhile by another request of this process.
            Some(k) => Arc::clone(k),
            None if state.learned.len() < MAX_DEFINITIONS => {
                state.learned.insert(key.clone(), Arc::clone(&held));
                if held.definition.digest == *digest {
                    events.push(self.event(kind, known, Change::Learned, None, Vec::new(), true));
                }
                held
            }
            None => return PinStatus::Unpinned,
        };
        if in_force.definition.digest == *digest {
            PinStatus::Pinned
        } else {
            PinStatus::Drifted {
                pinned: in_force.definition.digest.clone(),
            }
        }
    }

    /// What policies see of a tool for a call, without judging the arguments.
    pub fn facts(&self, name: &str) -> DefinitionFacts {
        self.resolve(DefinitionKind::Tool, name).0
    }

    /// Where a tool's definition stands against the pins (for audit lines).
    pub fn status(&self, name: &str) -> PinStatus {
        if self.mode == PinMode::Off {
            return PinStatus::NotChecked;
        }
        self.resolve(DefinitionKind::Tool, name).1
    }

    /// A definition's facts, its pin status and (tools only) the definition to check
    /// arguments against.
    fn resolve(
        &self,
        kind: DefinitionKind,
        name: &str,
    ) -> (DefinitionFacts, PinStatus, Option<Arc<Known>>) {
        let key: Key = (kind, name.to_owned());
        let file = self.file.load();
        let state = self.state.read();
        let seen = state.seen.get(&key).cloned();
        let pin = if self.mode == PinMode::Off {
            None
        } else {
            self.pin(&file, &state, &key)
        };
        let status = match (&seen, &pin) {
            _ if self.mode == PinMode::Off => PinStatus::NotChecked,
            (Some(s), Some((d, _))) if s.definition.digest == *d => PinStatus::Pinned,
            (Some(_), Some((d, _))) => PinStatus::Drifted { pinned: d.clone() },
            (Some(_), None) => PinStatus::Unpinned,
            (None, Some(_)) => PinStatus::Pinned,
            (None, None) => PinStatus::Unknown,
        };
        // Check arguments against what was approved when that is what is enforced; the
        // listed definition otherwise.
        let strict = matches!(self.mode, PinMode::Enforce | PinMode::Learn);
        let basis = match (&seen, &pin, &status) {
            _ if kind != DefinitionKind::Tool => None,
            (Some(s), _, PinStatus::Pinned) => Some(Arc::clone(s)),
            (None, Some((digest, fields)), PinStatus::Pinned) => {
                let cached = state.pinned_schemas.get(digest).cloned();
                drop(state);
                Some(cached.unwrap_or_else(|| self.compile_pinned(name, digest, fields)))
            }
            (Some(s), _, _) if !strict => Some(Arc::clone(s)),
            _ => None,
        };
        let invisible = basis
            .as_ref()
            .or(seen.as_ref())
            .is_some_and(|k| !k.findings.is_empty());
        (
            DefinitionFacts {
                pinned: status == PinStatus::Pinned,
                invisible_characters: invisible,
            },
            status,
            basis,
        )
    }

    fn compile_pinned(&self, name: &str, digest: &str, fields: &Map<String, Value>) -> Arc<Known> {
        let definition = Definition {
            name: name.to_owned(),
            fields: fields.clone(),
            digest: digest.to_owned(),
        };
        let known = Arc::new(self.know(DefinitionKind::Tool, definition));
        let mut state = self.state.write();
        if state.pinned_schemas.len() >= MAX_DEFINITIONS {
            state.pinned_schemas.clear();
        }
        state
            .pinned_schemas
            .insert(digest.to_owned(), Arc::clone(&known));
        known
    }

    /// Judge one `tools/call` (see the module docs): pin status first, then the
    /// arguments against the approved (or, outside `enforce`/`learn`, the listed) schema.
    pub fn check_call(&self, name: &str, arguments: &Value) -> CallCheck {
        if !self.active() {
            return CallCheck::default();
        }
        let (facts, status, basis) = self.resolve(DefinitionKind::Tool, name);
        let mut check = CallCheck {
            facts,
            refusal: None,
            warning: None,
        };
        self.judge_pin(&status, &mut check, |status| CallProblem::NotApproved {
            status,
        });
        let invisible = facts.invisible_characters && self.mode != PinMode::Off;
        if invisible && self.refuse_invisible {
            check.problem(CallProblem::InvisibleCharacters, true);
        }
        let mut problem = |p: CallProblem, enforced: bool| check.problem(p, enforced);
        let enforce = self.validation == ValidationMode::Enforce;
        if self.validation != ValidationMode::Off {
            match basis.as_ref().and_then(|k| k.schema.as_ref()) {
                None => problem(CallProblem::UnknownTool, enforce),
                Some(Err(e)) => problem(
                    CallProblem::SchemaUnusable {
                        reason: e.to_string(),
                    },
                    enforce,
                ),
                Some(Ok(schema)) => {
                    if let Err(errors) = schema.check(arguments) {
                        problem(CallProblem::InvalidArguments { errors }, enforce);
                    }
                }
            }
        }
        check
    }

    /// Judge one `prompts/get` by the prompt's pin, as [`Catalogue::check_call`] judges
    /// a tool's: in `enforce` (and for a drift in `learn`) a prompt whose definition is
    /// not approved is refused, in `warn` it is audited. Prompts carry no schema, so
    /// there are no arguments to check.
    pub fn check_prompt(&self, name: &str) -> CallCheck {
        if self.mode == PinMode::Off {
            return CallCheck::default();
        }
        let (facts, status, _) = self.resolve(DefinitionKind::Prompt, name);
        let mut check = CallCheck {
            facts,
            refusal: None,
            warning: None,
        };
        self.judge_pin(&status, &mut check, |status| {
            CallProblem::PromptNotApproved { status }
        });
        if facts.invisible_characters && self.refuse_invisible {
            check.problem(CallProblem::PromptInvisibleCharacters, true);
        }
        check
    }

    /// The pin rule of the mode, for a definition in `status`: refused in `enforce`
    /// unless pinned, in `learn` unless pinned or never listed (first sight pins it when
    /// listed), audited in `warn`.
    fn judge_pin(
        &self,
        status: &PinStatus,
        check: &mut CallCheck,
        not_approved: impl FnOnce(PinStatus) -> CallProblem,
    ) {
        let enforced = match (self.mode, status) {
            (PinMode::Off, _) | (_, PinStatus::Pinned) | (PinMode::Learn, PinStatus::Unknown) => {
                return
            }
            (PinMode::Enforce | PinMode::Learn, _) => true,
            (PinMode::Warn, _) => false,
        };
        check.problem(not_approved(status.clone()), enforced);
    }

    /// The pins now in force (file and learned), for `pin diff` style reports.
    pub fn approved(&self) -> PinFile {
        let mut out = (**self.file.load()).clone();
        let state = self.state.read();
        for ((kind, name), known) in &state.learned {
            out.entries_mut(*kind)
                .entry(name.clone())
                .or_insert_with(|| {
                    super::file::PinEntry::approve(&known.definition, SystemTime::now())
                });
        }
        out
    }
}

#[cfg(test)]
mod tests;
