//! The Pingora floor: the thinnest proxy Pingora makes (no auth, no parsing, no
//! policies, one fixed upstream over a keep-alive pool), built from the same Pingora
//! version as sluice. What sluice costs beyond it is sluice's own work.
//!
//!   pingora-floor --listen 127.0.0.1:19091 --upstream 127.0.0.1:19100 --threads 1

use std::net::SocketAddr;

use async_trait::async_trait;
use clap::Parser;
use pingora_core::server::Server;
use pingora_core::server::configuration::ServerConf;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session, http_proxy_service};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:19091")]
    listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:19100")]
    upstream: SocketAddr,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pingora's work-stealing runtime instead of pinned single-threaded ones; off by
    /// default, as in sluice, so the floor runs on the runtime sluice runs on.
    #[arg(long)]
    work_stealing: bool,
}

struct Floor {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora_error::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args = Args::parse();
    let conf = ServerConf {
        threads: args.threads,
        work_stealing: args.work_stealing,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(
        &server.configuration,
        Floor {
            upstream: args.upstream,
        },
    );
    service.add_tcp(&args.listen.to_string());
    server.add_service(service);
    server.run_forever();
}
