//! The listening socket and its accept loop.
//!
//! Pingora's listening service spawns, per connection, a task that first runs the TLS
//! handshake's future and then awaits the application's boxed connection future. The
//! handshake's state stays in that task for the connection's life whether or not the
//! listener has TLS: 8.7 KiB per connection on sluice's plain listener, on top of the
//! 5.8 KiB connection future in its own box (a page-fault profile of 1,000 open streams;
//! README, "Measured"). Here each connection is one task whose future is sluice's
//! connection loop itself.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::{ListenFds, ShutdownWatch};
use pingora_core::services::Service;
use socket2::{Domain, Type};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::service::SluiceProxy;

/// Connections the kernel queues before they are accepted, as Pingora's listeners: a
/// burst of new clients waits rather than being refused.
const BACKLOG: i32 = 65_535;

/// Bind a listening socket, so the address is known (and taken) before the server runs.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // A restarted sluice rebinds at once over the last one's closing connections.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The proxy's listener, run as one of Pingora's services (on the proxy's threads, under
/// its shutdown).
pub(crate) struct Accept {
    listener: Option<std::net::TcpListener>,
    app: Arc<SluiceProxy>,
}

impl Accept {
    pub(crate) fn new(listener: std::net::TcpListener, app: SluiceProxy) -> Self {
        Self {
            listener: Some(listener),
            app: Arc::new(app),
        }
    }
}

#[async_trait]
impl Service for Accept {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        mut shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                warn!(error = %e, "the proxy's listener could not join the runtime");
                return;
            }
        };
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                    continue;
                }
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let app = self.app.clone();
                    let shutdown = shutdown.clone();
                    // A random one of the proxy's threads; the connection stays there.
                    pingora_runtime::current_handle()
                        .spawn(async move { app.connection(tcp, peer, &shutdown).await });
                }
                Err(e) => {
                    warn!(error = %e, "accepting a connection failed");
                    if is_out_of_descriptors(&e) {
                        // Accept fails at once until descriptors are freed: wait rather
                        // than spin.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
        drop(listener);
        info!("proxy stopped listening");
        self.app.closing.close();
    }

    fn name(&self) -> &str {
        "sluice proxy"
    }
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_address_is_taken_until_the_listener_closes() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        assert!(
            bind(addr).is_err(),
            "a second listener bound the same address"
        );
        drop(listener);
        bind(addr).unwrap();
    }

    #[test]
    fn running_out_of_descriptors_is_told_apart() {
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(!is_out_of_descriptors(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }
}
