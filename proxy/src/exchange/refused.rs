//! Letting go of a provider's answer that the client will not see (a 429 or 5xx that
//! fail-over retries elsewhere) without losing its connection.

use std::time::Duration;

use super::{Sent, keep};

/// The most of a refused answer's body read through to keep its connection.
const MAX_DISCARDED: usize = 64 * 1024;
/// The longest a refused answer's body is waited for, in the background.
const DISCARD_WAIT: Duration = Duration::from_secs(5);

impl Sent {
    /// Let go of an answer the client will not see (a 429 or 5xx that is retried
    /// elsewhere), keeping its connection when its body can be read past. The
    /// provider that pushes back is the one a busy gateway calls again soonest, and a
    /// dropped connection made that next call pay a new TCP and TLS handshake, at the
    /// moment the provider is already overloaded. What has arrived is read at once
    /// (an error body usually comes with its header); a body still on its way is read
    /// by a task of its own, so the retry does not wait for it. A stream, or a body
    /// larger than [`MAX_DISCARDED`] or slower than [`DISCARD_WAIT`], closes the
    /// connection as before.
    pub(crate) fn release(self) {
        if self.is_sse || self.length.is_some_and(|n| n > MAX_DISCARDED as u64) {
            return;
        }
        let Sent {
            mut up, pool_key, ..
        } = self;
        let mut read = 0;
        loop {
            match up.read_body_now() {
                Some(Ok(Some(piece))) => {
                    read += piece.len();
                    if read > MAX_DISCARDED {
                        return;
                    }
                }
                Some(Ok(None)) => return keep(*up, pool_key),
                Some(Err(_)) => return,
                None => break,
            }
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        tokio::spawn(async move {
            let drained = tokio::time::timeout(DISCARD_WAIT, async {
                loop {
                    match up.read_body().await {
                        Ok(Some(piece)) => {
                            read += piece.len();
                            if read > MAX_DISCARDED {
                                return false;
                            }
                        }
                        Ok(None) => return true,
                        Err(_) => return false,
                    }
                }
            })
            .await;
            if drained == Ok(true) {
                keep(*up, pool_key);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::upstream::{Conn, pool};

    /// A refused answer from a provider played by `wire`, written in `pieces` with a
    /// pause between them, its head read; and the key its connection pools under.
    async fn refused(pieces: &'static [&'static str]) -> (Sent, u64) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            for piece in pieces {
                tcp.write_all(piece.as_bytes()).await.expect("write");
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            // Held open, as a provider's keep-alive connection is.
            let _ = tcp.read(&mut [0u8; 1]).await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut up = Conn::new(Box::new(crate::socket::Socket::connected(tcp, addr)));
        up.set_read_timeout(Some(Duration::from_secs(5)));
        let head = up.read_head().await.expect("head");
        // A key of the test's own: the pool is the thread's, shared by the tests on it.
        let pool_key = u64::from(addr.port()) << 32;
        let sent = Sent {
            up: Box::new(up),
            status: head.status,
            fields: head.fields,
            length: head.length,
            is_sse: false,
            retry_after: None,
            header_latency: Duration::ZERO,
            started: Instant::now(),
            pool_key,
        };
        (sent, pool_key)
    }

    async fn pooled_within(key: u64, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        loop {
            if pool::take(key, Duration::from_secs(60)).is_some() {
                return true;
            }
            if Instant::now() > until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    const HEAD: &str = "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 26\r\n\r\n";
    const BODY: &str = r#"{"error":"slow down"}     "#;

    #[tokio::test]
    async fn a_refused_answer_that_came_whole_keeps_its_connection() {
        let (sent, key) = refused(&["HTTP/1.1 503 Busy\r\ncontent-length: 2\r\n\r\n{}"]).await;
        sent.release();
        // Nothing was left to wait for: kept before `release` returned.
        assert!(pool::take(key, Duration::from_secs(60)).is_some());
    }

    #[tokio::test]
    async fn a_refused_body_still_coming_is_read_past_in_the_background() {
        assert_eq!(BODY.len(), 26);
        let (sent, key) = refused(&[HEAD, BODY]).await;
        sent.release();
        assert!(pooled_within(key, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn a_refused_answer_that_cannot_be_read_past_closes() {
        // Too long to read through, one whose end does not come, and one that ends
        // with the connection.
        const LONG: &[&str] = &["HTTP/1.1 500 Oops\r\ncontent-length: 1000000\r\n\r\n"];
        const CUT: &[&str] = &["HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab"];
        const CLOSE: &[&str] =
            &["HTTP/1.1 500 Oops\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}"];
        for wire in [LONG, CUT, CLOSE] {
            let (sent, key) = refused(wire).await;
            sent.release();
            assert!(
                !pooled_within(key, Duration::from_millis(300)).await,
                "{wire:?}"
            );
        }
    }
}
