//! Policy generations and hot reload.
//!
//! A [`PolicyStore`] holds the current [`Generation`] in an `ArcSwap`. Requests take the
//! generation with [`PolicyStore::current`] and keep their `Arc` until they finish, so a
//! reload never changes the rules under a request in flight. [`PolicyStore::reload`]
//! compiles the directory again off the request path; it swaps the new generation in
//! only if everything parsed and validated, and otherwise returns the error and keeps
//! serving the last good generation.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::biscuit::{load_datalog_dir, BiscuitEngine, BiscuitPolicyConfig, TokenChecks};
use super::cedar::CedarEngine;
use super::load::{load_dir, PolicyLoadError};
use super::scopes::ScopeRequirements;
use super::watch::{spawn_watcher, WatchError, WatchHandle};
use super::PolicyEngine;

fn default_watch() -> bool {
    true
}

fn default_debounce() -> Duration {
    Duration::from_millis(200)
}

/// Which policy engine decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Cedar policies (`*.cedar`, a schema, optional `entities.json`).
    #[default]
    Cedar,
    /// A Biscuit Datalog authorizer (`*.datalog`).
    Biscuit,
}

/// The `[policy]` section of the configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `"cedar"` (default) or `"biscuit"`.
    #[serde(default)]
    pub engine: EngineKind,
    /// Directory holding the policies: for Cedar, `*.cedar` policies, one
    /// `*.cedarschema`, optional `entities.json`; for Biscuit, `*.datalog` files. Relative
    /// paths are resolved against the configuration file's directory.
    pub dir: PathBuf,
    /// Reload automatically when a file in `dir` changes (default `true`). `SIGHUP`
    /// reloads either way.
    #[serde(default = "default_watch")]
    pub watch: bool,
    /// How long changes must settle before a reload (default `200ms`), so an editor's
    /// or a deploy tool's burst of writes causes one reload.
    #[serde(default = "default_debounce", with = "humantime_serde")]
    pub debounce: Duration,
    /// `[policy.biscuit]`: run limits and third-party keys. The limits apply under
    /// either engine (a Biscuit caller's token checks run under Cedar too).
    #[serde(default)]
    pub biscuit: BiscuitPolicyConfig,
}

/// What compiling a directory needs besides the directory.
#[derive(Debug, Clone)]
struct Settings {
    engine: EngineKind,
    limits: biscuit_auth::AuthorizerLimits,
    external_keys: std::collections::HashMap<String, biscuit_auth::PublicKey>,
}

impl Settings {
    fn from_config(cfg: &PolicyConfig) -> Result<Self, PolicyLoadError> {
        Ok(Settings {
            engine: cfg.engine,
            limits: cfg.biscuit.limits.to_limits(),
            external_keys: cfg.biscuit.parsed_external_keys()?,
        })
    }
}

/// One compiled, validated policy set.
pub struct Generation {
    /// Increases by one on each successful reload, starting at 1.
    pub number: u64,
    /// The engine built from it.
    pub engine: Arc<dyn PolicyEngine>,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// The scopes its `@insufficient_scope` policies require (OAuth step-up).
    pub scopes: ScopeRequirements,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("number", &self.number)
            .field("engine", &self.engine.name())
            .field("loaded_at", &self.loaded_at)
            .finish()
    }
}

/// The current policy generation, swapped atomically on reload.
pub struct PolicyStore {
    /// The resolved policy directory; `None` for a store built from a fixed engine.
    dir: Option<PathBuf>,
    settings: Settings,
    watch: bool,
    debounce: Duration,
    current: ArcSwap<Generation>,
    /// Serializes reloads so generation numbers increase one at a time.
    reload_lock: Mutex<()>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore")
            .field("dir", &self.dir)
            .field("generation", &self.current.load().number)
            .finish_non_exhaustive()
    }
}

fn compile_dir(
    dir: &Path,
    number: u64,
    settings: &Settings,
) -> Result<Generation, PolicyLoadError> {
    let (engine, scopes): (Arc<dyn PolicyEngine>, _) = match settings.engine {
        EngineKind::Cedar => {
            let bundle = load_dir(dir)?;
            for warning in &bundle.warnings {
                tracing::warn!(%warning, "policy warning");
            }
            let scopes = ScopeRequirements::from_cedar(&bundle.policies, dir)?;
            let cedar = CedarEngine::new(bundle, number)?;
            (
                Arc::new(TokenChecks::new(cedar, number, settings.limits.clone())),
                scopes,
            )
        }
        EngineKind::Biscuit => {
            let program = load_datalog_dir(dir, &settings.external_keys)?;
            let scopes = program.scopes.clone();
            (
                Arc::new(BiscuitEngine::new(program, number, settings.limits.clone())),
                scopes,
            )
        }
    };
    Ok(Generation {
        number,
        engine,
        loaded_at: SystemTime::now(),
        scopes,
    })
}

impl PolicyStore {
    /// Load and validate the policy directory (`cfg.dir`, relative to `base_dir`, the
    /// configuration file's directory) as generation 1; fails on any error.
    pub fn load(cfg: &PolicyConfig, base_dir: &Path) -> Result<Self, PolicyLoadError> {
        let dir = base_dir.join(&cfg.dir);
        let settings = Settings::from_config(cfg)?;
        let generation = compile_dir(&dir, 1, &settings)?;
        Ok(PolicyStore {
            dir: Some(dir),
            settings,
            watch: cfg.watch,
            debounce: cfg.debounce,
            current: ArcSwap::from_pointee(generation),
            reload_lock: Mutex::new(()),
        })
    }

    /// A store serving a fixed engine as generation 1, e.g. for tests of other modules.
    /// [`PolicyStore::reload`] fails with [`PolicyLoadError::NotReloadable`].
    pub fn from_engine(engine: Arc<dyn PolicyEngine>) -> Self {
        PolicyStore {
            dir: None,
            settings: Settings {
                engine: EngineKind::Cedar,
                limits: crate::biscuit::default_limits(),
                external_keys: Default::default(),
            },
            watch: false,
            debounce: default_debounce(),
            current: ArcSwap::from_pointee(Generation {
                number: 1,
                engine,
                loaded_at: SystemTime::now(),
                scopes: ScopeRequirements::default(),
            }),
            reload_lock: Mutex::new(()),
        }
    }

    /// The generation in force now. Hold the `Arc` for the whole request.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Recompile; on success swap and return the new generation number, on failure
    /// keep the last good generation.
    pub fn reload(&self) -> Result<u64, PolicyLoadError> {
        let Some(dir) = &self.dir else {
            return Err(PolicyLoadError::NotReloadable);
        };
        let _serialized = self.reload_lock.lock();
        let number = self.current.load().number + 1;
        let generation = compile_dir(dir, number, &self.settings)?;
        self.current.store(Arc::new(generation));
        Ok(number)
    }

    /// Swaps `engine` in as the next generation, as a reload would (tests of what a
    /// reload does to requests in flight).
    #[cfg(test)]
    pub(crate) fn install(&self, engine: Arc<dyn PolicyEngine>) -> u64 {
        let _serialized = self.reload_lock.lock();
        let number = self.current.load().number + 1;
        self.current.store(Arc::new(Generation {
            number,
            engine,
            loaded_at: SystemTime::now(),
            scopes: ScopeRequirements::default(),
        }));
        number
    }

    /// Paths to watch: the policy directory (empty for a fixed engine).
    pub fn watched_paths(&self) -> Vec<PathBuf> {
        self.dir.iter().cloned().collect()
    }

    /// The resolved policy directory, if the store has one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Starts reloading on file changes if the configuration asks for it (`watch`);
    /// `Ok(None)` otherwise. Reload outcomes are logged. Keep the handle: dropping it
    /// stops the watcher.
    pub fn spawn_watcher(self: &Arc<Self>) -> Result<Option<WatchHandle>, WatchError> {
        if !self.watch || self.dir.is_none() {
            return Ok(None);
        }
        let store: Weak<Self> = Arc::downgrade(self);
        let handle = spawn_watcher(
            self.watched_paths(),
            self.debounce,
            Box::new(move || {
                if let Some(store) = store.upgrade() {
                    store.reload_and_log();
                }
            }),
        )?;
        Ok(Some(handle))
    }

    /// [`PolicyStore::reload`], logging the outcome (for the watcher and `SIGHUP`).
    pub fn reload_and_log(&self) -> Option<u64> {
        match self.reload() {
            Ok(number) => {
                tracing::info!(generation = number, "policies reloaded");
                Some(number)
            }
            Err(error) => {
                tracing::error!(
                    %error,
                    generation = self.current.load().number,
                    "policy reload rejected; keeping the last good generation"
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;
    use crate::mcp::McpAction;
    use crate::policy::{AuthzRequest, RequestEnv};
    use serde_json::json;

    const SCHEMA: &str = include_str!("../../policies/example/mcp.cedarschema");
    const ALLOW_ECHO: &str = r#"@id("echo") permit (principal, action == Action::"call_tool", resource == Tool::"echo");"#;

    fn setup(policies: &str) -> (tempfile::TempDir, PolicyStore) {
        let dir = tempfile::tempdir().unwrap();
        let pdir = dir.path().join("policies");
        std::fs::create_dir(&pdir).unwrap();
        std::fs::write(pdir.join("mcp.cedarschema"), SCHEMA).unwrap();
        std::fs::write(pdir.join("main.cedar"), policies).unwrap();
        let cfg: PolicyConfig = toml::from_str("dir = \"policies\"").unwrap();
        let store = PolicyStore::load(&cfg, dir.path()).unwrap();
        (dir, store)
    }

    fn echo_allowed(generation: &Generation) -> (bool, u64) {
        let identity = Identity::anonymous();
        let action = McpAction::CallTool {
            name: "echo".into(),
            arguments: json!({}),
        };
        let env = RequestEnv {
            time: SystemTime::now(),
            source_ip: None,
            session_id: None,
            taints: vec![],
            protocol_version: None,
            mtls: None,
        };
        let d = generation.engine.decide(&AuthzRequest {
            identity: &identity,
            action: &action,
            annotations: None,
            definition: Default::default(),
            env: &env,
        });
        (d.allow, d.generation)
    }

    #[test]
    fn a_reload_of_the_role_hierarchy_is_not_served_from_cached_callers() {
        let (dir, store) = setup(
            r#"permit (principal in Role::"staff", action == Action::"call_tool", resource == Tool::"echo");"#,
        );
        let entities = |parents: &str| {
            format!(
                r#"[{{"uid": {{"type": "Role", "id": "admin"}}, "attrs": {{}}, "parents": [{parents}]}}, {{"uid": {{"type": "Role", "id": "staff"}}, "attrs": {{}}, "parents": []}}]"#
            )
        };
        let pdir = dir.path().join("policies");
        std::fs::write(
            pdir.join("entities.json"),
            entities(r#"{"type": "Role", "id": "staff"}"#),
        )
        .unwrap();
        store.reload().unwrap();
        let admin = Identity {
            roles: vec!["admin".to_owned()],
            ..Identity::anonymous()
        };
        let allowed = |generation: &Generation| {
            let env = RequestEnv {
                time: SystemTime::now(),
                source_ip: None,
                session_id: None,
                taints: vec![],
                protocol_version: None,
                mtls: None,
            };
            let action = McpAction::CallTool {
                name: "echo".into(),
                arguments: json!({}),
            };
            generation
                .engine
                .decide(&AuthzRequest {
                    identity: &admin,
                    action: &action,
                    annotations: None,
                    definition: Default::default(),
                    env: &env,
                })
                .allow
        };
        let before = store.current();
        assert!(allowed(&before) && allowed(&before), "admin is staff");
        std::fs::write(pdir.join("entities.json"), entities("")).unwrap();
        store.reload().unwrap();
        assert!(!allowed(&store.current()), "admin is no longer staff");
        assert!(allowed(&before), "the old generation keeps its rules");
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let cfg: PolicyConfig = toml::from_str("dir = \"p\"").unwrap();
        assert!(cfg.watch);
        assert_eq!(cfg.debounce, Duration::from_millis(200));
        assert_eq!(cfg.engine, EngineKind::Cedar);
        assert_eq!(cfg.biscuit.limits.max_time, Duration::from_millis(20));
        let cfg: PolicyConfig =
            toml::from_str("engine = \"biscuit\"\ndir = \"p\"\n[biscuit.limits]\nmax_facts = 5\n")
                .unwrap();
        assert_eq!(cfg.engine, EngineKind::Biscuit);
        assert_eq!(cfg.biscuit.limits.max_facts, 5);
        assert_eq!(cfg.biscuit.limits.max_iterations, 100);
        assert!(toml::from_str::<PolicyConfig>("engine = \"opa\"\ndir = \"p\"").is_err());
        let cfg: PolicyConfig =
            toml::from_str("dir = \"p\"\nwatch = false\ndebounce = \"1s\"").unwrap();
        assert!(!cfg.watch);
        assert_eq!(cfg.debounce, Duration::from_secs(1));
        assert!(toml::from_str::<PolicyConfig>("dir = \"p\"\nwatsh = true").is_err());
    }

    #[test]
    fn reload_swaps_and_numbers_generations() {
        let (dir, store) = setup(ALLOW_ECHO);
        assert_eq!(store.current().number, 1);
        assert_eq!(echo_allowed(&store.current()), (true, 1));
        assert_eq!(store.watched_paths(), [dir.path().join("policies")]);

        std::fs::write(
            dir.path().join("policies/main.cedar"),
            r#"permit (principal, action == Action::"get_prompt", resource);"#,
        )
        .unwrap();
        assert_eq!(store.reload().unwrap(), 2);
        assert_eq!(echo_allowed(&store.current()), (false, 2));
    }

    #[test]
    fn broken_reload_keeps_last_good_generation() {
        let (dir, store) = setup(ALLOW_ECHO);
        std::fs::write(dir.path().join("policies/main.cedar"), "permit (principal,").unwrap();
        let err = store.reload().unwrap_err();
        assert!(err.to_string().contains("main.cedar:1:"), "{err}");
        let current = store.current();
        assert_eq!(current.number, 1);
        assert_eq!(echo_allowed(&current), (true, 1));
        // A later good edit continues the numbering from the last good generation.
        std::fs::write(dir.path().join("policies/main.cedar"), ALLOW_ECHO).unwrap();
        assert_eq!(store.reload().unwrap(), 2);
    }

    #[test]
    fn in_flight_request_keeps_its_generation() {
        let (dir, store) = setup(ALLOW_ECHO);
        let in_flight = store.current();
        std::fs::write(
            dir.path().join("policies/main.cedar"),
            r#"forbid (principal, action, resource);"#,
        )
        .unwrap();
        store.reload().unwrap();
        assert_eq!(echo_allowed(&store.current()), (false, 2));
        assert_eq!(echo_allowed(&in_flight), (true, 1));
    }

    #[test]
    fn load_fails_on_bad_directory() {
        let dir = tempfile::tempdir().unwrap();
        let cfg: PolicyConfig = toml::from_str("dir = \"missing\"").unwrap();
        assert!(matches!(
            PolicyStore::load(&cfg, dir.path()),
            Err(PolicyLoadError::MissingDir { .. })
        ));
    }

    #[test]
    fn watcher_reloads_on_change() {
        let (dir, store) = setup(ALLOW_ECHO);
        let mut store = store;
        store.debounce = Duration::from_millis(50);
        let store = Arc::new(store);
        let _handle = store.spawn_watcher().unwrap().unwrap();
        std::fs::write(
            dir.path().join("policies/main.cedar"),
            r#"forbid (principal, action, resource);"#,
        )
        .unwrap();
        crate::testing::wait_until("a reload", || store.current().number >= 2);
        assert!(!echo_allowed(&store.current()).0);
    }

    #[test]
    fn biscuit_engine_loads_and_reloads_datalog() {
        let dir = tempfile::tempdir().unwrap();
        let pdir = dir.path().join("policies");
        std::fs::create_dir(&pdir).unwrap();
        std::fs::write(pdir.join("authorizer.datalog"), "allow if tool(\"echo\");").unwrap();
        let cfg: PolicyConfig = toml::from_str("engine = \"biscuit\"\ndir = \"policies\"").unwrap();
        let store = PolicyStore::load(&cfg, dir.path()).unwrap();
        assert_eq!(store.current().engine.name(), "biscuit");
        assert_eq!(echo_allowed(&store.current()), (true, 1));
        std::fs::write(pdir.join("authorizer.datalog"), "allow if tool(\"other\");").unwrap();
        assert_eq!(store.reload().unwrap(), 2);
        assert_eq!(echo_allowed(&store.current()), (false, 2));
        std::fs::write(pdir.join("authorizer.datalog"), "allow if tool(\"echo\"").unwrap();
        let err = store.reload().unwrap_err().to_string();
        assert!(err.contains("authorizer.datalog:1:"), "{err}");
        assert_eq!(store.current().number, 2);
    }

    #[test]
    fn bad_external_key_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let cfg: PolicyConfig = toml::from_str(
            "engine = \"biscuit\"\ndir = \"p\"\n[biscuit.external_keys]\npartner = \"nope\"\n",
        )
        .unwrap();
        let err = PolicyStore::load(&cfg, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("policy.biscuit.external_keys.partner"),
            "{err}"
        );
    }

    #[test]
    fn fixed_engine_store_is_not_reloadable() {
        let (_dir, loaded) = setup(ALLOW_ECHO);
        let store = PolicyStore::from_engine(Arc::clone(&loaded.current().engine));
        assert!(matches!(
            store.reload(),
            Err(PolicyLoadError::NotReloadable)
        ));
        assert!(store.watched_paths().is_empty());
    }
}
