//! A throw-away PostgreSQL database per test, on the server at `DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`, a superuser).
//!
//! When the server cannot be reached: with `CI=true` the test fails, saying so; otherwise
//! it is skipped with a message on stderr (`cargo test -- --nocapture` shows it).
#![allow(dead_code)]

use std::net::SocketAddr;

use tokio_postgres::{Client, Config, NoTls};

/// The server tests use when `DATABASE_URL` is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one test and dropped (with its connections) afterwards.
pub struct TestDb {
    /// `postgres://…/<name>`, for `Database::setup` (with the password, if any).
    pub url: String,
    /// The database's name.
    pub name: String,
    admin: Config,
}

/// The administrator connection settings from `DATABASE_URL`.
pub fn admin_config() -> Config {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
    url.parse()
        .unwrap_or_else(|e| panic!("DATABASE_URL `{url}` does not parse: {e}"))
}

/// `postgres://user[:password]@host:port/dbname` for `config` with another database.
pub fn url_for(config: &Config, dbname: &str) -> String {
    url_with_port(config, port_of(config), dbname)
}

/// [`url_for`] with another port (to go through a [`Forwarder`]).
pub fn url_with_port(config: &Config, port: u16, dbname: &str) -> String {
    let password = config
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    format!(
        "postgres://{}{password}@{}:{port}/{dbname}",
        config.get_user().unwrap_or("postgres"),
        host_of(config)
    )
}

/// The server's TCP address.
pub fn server_addr(config: &Config) -> SocketAddr {
    use std::net::ToSocketAddrs;
    (host_of(config).as_str(), port_of(config))
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .expect("resolve the PostgreSQL host")
}

fn host_of(config: &Config) -> String {
    match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_owned(),
    }
}

fn port_of(config: &Config) -> u16 {
    config.get_ports().first().copied().unwrap_or(5432)
}

async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl TestDb {
    /// Create a fresh database with a random name. `None` means: skip this test
    /// (PostgreSQL is unreachable and `CI` is not `true`).
    pub async fn create() -> Option<TestDb> {
        let mut admin = admin_config();
        let mut connected = connect(&admin).await;
        if let Err(e) = &connected {
            // DATABASE_URL may name the demo's database before it exists: any database
            // of the server will do to create the test's own.
            if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) {
                admin.dbname("postgres");
                connected = connect(&admin).await;
            }
        }
        let client = match connected {
            Ok(client) => client,
            Err(e) => {
                let message = format!(
                    "PostgreSQL is unreachable at `{}` ({e}: {}); set DATABASE_URL to a superuser URL",
                    url_for(&admin, admin.get_dbname().unwrap_or("postgres")),
                    std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default()
                );
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{message}");
                }
                eprintln!("SKIPPED (not CI): {message}");
                return None;
            }
        };
        let name = format!("mcp_warden_test_{:016x}", rand::random::<u64>());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        Some(TestDb {
            url: url_for(&admin, &name),
            name,
            admin,
        })
    }

    /// A superuser connection to this database, for test-only changes.
    pub async fn admin_client(&self) -> Client {
        let mut config = self.admin.clone();
        config.dbname(&self.name);
        connect(&config)
            .await
            .expect("connect to the test database")
    }

    /// The administrator settings, pointed at this database.
    pub fn config(&self) -> Config {
        let mut config = self.admin.clone();
        config.dbname(&self.name);
        config
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(client) = connect(&admin).await {
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A TCP forwarder to the PostgreSQL server that a test can cut, to play "the database
/// went down".
pub struct Forwarder {
    /// The port to connect to instead of the server's.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    /// Forward `127.0.0.1:<port>` to `target`.
    pub async fn start(target: SocketAddr) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Forwarder { port, task }
    }

    /// Stop listening and cut every forwarded connection (dropping the task drops them).
    pub async fn cut(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
