//! The proxy: Pingora glue around [`crate::exchange`], and nothing else.
//!
//! Pingora is used only in this module: `service` ([`WardenProxy`]) implements `ProxyHttp`
//! (each callback a call or two into [`crate::exchange`]), `body` reads request bodies
//! whole, `upstream` names the upstream peer and its failures, [`lifecycle`] drains on
//! SIGTERM, `listener` binds the listener and caps and times connections, and [`admin`] serves `/metrics`, `/healthz` and `/readyz` on the admin
//! address. [`run`] starts it all.
//!
//! Where is a `tools/call` decided? In [`crate::exchange::verdict::authorize_body`], which
//! asks [`crate::policy::PolicyEngine::decide`]; `service`'s `request_filter` reads the
//! body and hands it over.

pub mod admin;
mod body;
pub mod lifecycle;
pub mod listener;
mod service;
mod tls;
mod upstream;

use std::sync::Arc;

use anyhow::Context as _;

use crate::policy::watch;

pub use crate::exchange::Warden;
pub use service::WardenProxy;

/// Start watching policy and key files, and listening for SIGHUP; both reload, and
/// SIGHUP also reopens the audit log file.
/// The returned handles keep the watchers alive.
pub fn spawn_reloaders(warden: &Arc<Warden>) -> anyhow::Result<Vec<watch::WatchHandle>> {
    let mut handles = Vec::new();
    let policy = &warden.config.raw.policy;
    if policy.watch {
        let mut paths = warden.policies.watched_paths();
        paths.extend(warden.auth.watched_files());
        paths.extend(warden.catalogue.watched_file());
        let w = Arc::clone(warden);
        handles.push(watch::spawn_watcher(
            paths,
            policy.debounce,
            Box::new(move || w.reload()),
        )?);
    }

    let w = Arc::clone(warden);
    let (registered, on_registered) = std::sync::mpsc::channel();
    spawn_with_runtime("sighup", "SIGHUP listener", move || async move {
        use tokio::signal::unix::{signal, SignalKind};
        let hup = signal(SignalKind::hangup());
        let _ = registered.send(());
        let Ok(mut hup) = hup else {
            tracing::error!("cannot listen for SIGHUP");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading, reopening the audit log");
            w.audit.reopen();
            w.reload();
        }
    })?;
    // Return once SIGHUP is taken over: from then on it reloads instead of killing the
    // process (its default action).
    let _ = on_registered.recv();
    Ok(handles)
}

/// Watch `tls`'s files and reload them on change (see [`crate::tls::server`]), keeping
/// `mcp_warden_tls_reloads_total` and `mcp_warden_tls_cert_expiry_timestamp_seconds`
/// for `listener`. A file that does not load is logged by name; the last good material
/// keeps serving.
fn spawn_tls_reloader(
    tls: &Arc<crate::tls::ServerTls>,
    warden: &Arc<Warden>,
    listener: &'static str,
) -> anyhow::Result<watch::WatchHandle> {
    let expiry = warden
        .metrics
        .tls_cert_expiry
        .with_label_values(&[listener]);
    if let Some(not_after) = tls.not_after() {
        expiry.set(not_after);
    }
    let reloads = warden.metrics.tls_reloads.clone();
    let st = Arc::clone(tls);
    let handle = watch::spawn_watcher(
        tls.watched_files(),
        crate::tls::RELOAD_DEBOUNCE,
        Box::new(move || {
            let errors = st.reload();
            for e in &errors {
                tracing::error!(
                    listener,
                    error = %e,
                    "tls: rejected a changed file; the last good certificate and CA keep serving"
                );
            }
            let result = if errors.is_empty() {
                "success"
            } else {
                "failure"
            };
            reloads.with_label_values(&[listener, result]).inc();
            if let Some(not_after) = st.not_after() {
                expiry.set(not_after);
            }
            if errors.is_empty() {
                tracing::info!(
                    listener,
                    cert = %st.config.cert_file.display(),
                    not_after = st.not_after(),
                    "tls: reloaded; new connections use the new certificate and CA"
                );
            }
        }),
    )?;
    Ok(handle)
}

/// Every certificate, key, CA bundle and CRL the configuration names, loaded and checked:
/// the listener's `[tls]`, the admin listener's `[admin.tls]` and `[upstream_tls]` for an
/// `https://` upstream. `run` serves with it; `check` loads it so a bad file fails the
/// check as it would fail the start.
pub struct TlsMaterial {
    /// `[tls]`.
    pub(crate) listener: Option<Arc<crate::tls::ServerTls>>,
    /// `[admin.tls]`.
    pub(crate) admin: Option<Arc<crate::tls::ServerTls>>,
    /// `[upstream_tls]`, when the upstream is `https://`.
    pub(crate) upstream: Option<Arc<upstream::UpstreamTls>>,
}

impl TlsMaterial {
    /// Load everything; the first bad file is the error, naming it and its key.
    pub fn load(warden: &Warden) -> anyhow::Result<Self> {
        let raw = &warden.config.raw;
        let base = &warden.config.base_dir;
        let listener = match &raw.tls {
            Some(cfg) => Some(Arc::new(load_server_tls(cfg, base, "tls")?)),
            None => None,
        };
        let admin = match &raw.admin.tls {
            Some(cfg) => Some(Arc::new(load_server_tls(
                &cfg.as_listener(),
                base,
                "admin.tls",
            )?)),
            None => None,
        };
        let upstream = if warden.config.upstream.tls {
            Some(Arc::new(
                upstream::UpstreamTls::load(&raw.upstream_tls, base).context("[upstream_tls]")?,
            ))
        } else {
            None
        };
        Ok(TlsMaterial {
            listener,
            admin,
            upstream,
        })
    }
}

/// Load the TLS material of `cfg` (relative paths against `base`); an error names the
/// file and the key of `section` (`tls`, `admin.tls`) that points at it.
fn load_server_tls(
    cfg: &crate::tls::TlsConfig,
    base: &std::path::Path,
    section: &str,
) -> anyhow::Result<crate::tls::ServerTls> {
    crate::tls::ServerTls::load(cfg, base).map_err(|e| {
        let key = e.path().and_then(|p| cfg.resolved(base).key_of(p));
        let at = match key {
            Some(key) => format!("`{section}.{key}`"),
            None => format!("`[{section}]`"),
        };
        anyhow::Error::new(e).context(at)
    })
}

/// Runs `task` on a thread of its own (named `name`) with a single-threaded Tokio
/// runtime, so that it keeps working whatever Pingora's runtimes do (a drain, say).
/// `what` names it in the error logged when the runtime cannot be built.
pub(crate) fn spawn_with_runtime<F, Fut>(
    name: &str,
    what: &'static str,
    task: F,
) -> std::io::Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(task()),
                Err(e) => tracing::error!("cannot start the {what}: {e}"),
            }
        })?;
    Ok(())
}

/// Whether Pingora's worker threads steal each other's tasks: yes (Pingora's default).
/// The body filters are synchronous, and a taint write or a pin claim to Redis waits for
/// its answer there with `block_in_place`, which hands the worker's other connections to
/// another thread; a runtime without stealing cannot, so one slow Redis command would
/// stall every connection of that worker. Single-threaded runtimes per worker (as nginx's
/// workers) were measured against it under the load benchmark's fixed rate (2026-12-04,
/// `docs/src/performance.md`): the CPU per allowed call moved within the run-to-run noise.
pub const WORK_STEALING: bool = true;

/// Run the proxy until the process is told to stop: SIGTERM (or SIGQUIT) drains
/// gracefully (see [`lifecycle`]), SIGINT stops at once. Fails before serving anything
/// if the listener or the admin address cannot be bound.
pub fn run(warden: Warden) -> anyhow::Result<()> {
    use pingora::server::configuration::ServerConf;
    use pingora::server::{RunArgs, Server};

    let listen = warden.config.raw.listen;
    warden.audit.start().context("audit log")?;
    let warden = Arc::new(warden);
    // SIGHUP is taken over before the port is bound: a client may connect (and an operator
    // signal) as soon as the kernel queues connections, and a SIGHUP must then reload,
    // never kill the process.
    let _watchers = spawn_reloaders(&warden)?;
    // Then bind: a taken port stops the start before anything is served.
    let socket = listener::bind(listen, "listen")?;
    let bound = socket.local_addr()?;
    let tls = TlsMaterial::load(&warden)?;
    let admin_tls = tls.admin;
    let admin = admin::spawn(&warden, admin_tls.as_deref())?;
    let _admin_tls_watch = admin_tls
        .as_ref()
        .map(|st| spawn_tls_reloader(st, &warden, "admin"))
        .transpose()?;

    let lc = &warden.config.raw.lifecycle;
    let conf = ServerConf {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        work_stealing: WORK_STEALING,
        grace_period_seconds: Some(lifecycle::whole_seconds(lc.drain_timeout)),
        graceful_shutdown_timeout_seconds: Some(lifecycle::whole_seconds(lc.shutdown_timeout)),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut app = WardenProxy::new(Arc::clone(&warden));
    let mut _upstream_tls_watch = None;
    if let Some(tls) = tls.upstream {
        let files = tls.watched_files();
        if !files.is_empty() {
            let t = Arc::clone(&tls);
            let reloads = warden.metrics.tls_reloads.clone();
            _upstream_tls_watch = Some(watch::spawn_watcher(
                files,
                crate::tls::RELOAD_DEBOUNCE,
                Box::new(move || {
                    let result = match t.reload() {
                        Ok(()) => {
                            tracing::info!(
                                "tls: reloaded the upstream CA bundle and client certificate"
                            );
                            "success"
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "tls: rejected a changed upstream TLS file; the last good one stays");
                            "failure"
                        }
                    };
                    reloads.with_label_values(&["upstream", result]).inc();
                }),
            )?);
        }
        app = app.with_upstream_tls(tls);
    }
    let mut proxy = pingora::proxy::http_proxy(&server.configuration, app);
    let connections = &warden.config.raw.connections;
    proxy.server_options = Some(listener::server_options(connections));
    let mut gate = listener::Gate::new(proxy, listener::Limits::from(connections), &warden.metrics)
        .with_h2c(connections.h2c);
    if let Some(cfg) = &warden.config.raw.tls {
        gate = gate.with_min_tls(cfg.min_version);
    }
    let server_tls = tls.listener;
    let mut service =
        pingora::services::listening::Service::new("mcp-warden proxy".to_owned(), gate);
    // Pingora finds the socket bound above under this address and does not bind.
    let _tls_watch = match &server_tls {
        Some(st) => {
            service.add_tls_with_settings(&listen.to_string(), None, tls::settings(st)?);
            Some(spawn_tls_reloader(st, &warden, "proxy")?)
        }
        None => {
            service.add_tcp(&listen.to_string());
            None
        }
    };
    let lifecycle = Arc::clone(&warden.lifecycle);
    server.add_service(listener::PreBound::new(
        service,
        listen.to_string(),
        socket,
        move || lifecycle.set_listening(),
    ));
    tracing::info!(
        listen = %bound,
        tls = server_tls.is_some(),
        %admin,
        upstream = %warden.config.raw.upstream,
        generation = warden.policies.current().number,
        "mcp-warden listening"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(lifecycle::Signals::new(Arc::clone(&warden))),
    });
    warden.audit.flush(lifecycle::FINAL_FLUSH);
    tracing::info!("stopped");
    Ok(())
}
