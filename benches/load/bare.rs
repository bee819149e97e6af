//! The Pingora floor: a reverse proxy on the same Pingora as mcp-warden, with its
//! runtime settings, that does nothing but forward.
//!
//! Why: nginx is the floor any proxy pays, but part of what mcp-warden adds over nginx is
//! Pingora's own way of proxying (its HTTP/1 sessions, its connection pool, the request
//! head and body written to the upstream in separate writes), which no change inside
//! mcp-warden's callbacks can remove. This target measures that part on its own, so the
//! report can say how much of mcp-warden's cost is its own work and how much is the
//! framework's.
//!
//! It runs as `load bare-pingora --listen ADDR --upstream ADDR` (this bench binary started
//! again, like the upstream) and prints `READY` once its listener is bound.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

/// Forwards every request to one upstream, keeping connections alive as mcp-warden does.
struct Forward {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Forward {
    type CTX = ();

    fn new_ctx(&self) {}

    /// No modules, as mcp-warden (`WardenProxy::init_downstream_modules`).
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.read_timeout = Some(Duration::from_secs(30));
        peer.options.idle_timeout = Some(Duration::from_secs(90));
        Ok(Box::new(peer))
    }
}

/// Serves until killed.
pub fn serve(listen: SocketAddr, upstream: SocketAddr) -> ! {
    let conf = ServerConf {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        work_stealing: mcp_warden::proxy::WORK_STEALING,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Forward { upstream });
    proxy.add_tcp(&listen.to_string());
    server.add_service(proxy);
    println!("READY {listen}");
    server.run_forever()
}
