//! Idle provider connections, kept per worker thread.
//!
//! Pingora's pool is shared by all threads and, for every connection put back, spawns a
//! task that watches it while it is idle, behind an `Arc<Mutex<_>>`, with a timer of
//! its own; taking one back wakes that task, waits for its lock and asks the kernel
//! for the socket's peer (`getpeername`) to check it. On scenario 1 that was a task,
//! a timer, a system call and about one wake-up through the runtime's eventfd in ten,
//! for every request.
//!
//! Here a connection waits in its thread's list and nothing watches it. Whether it
//! is still open is read when it is taken: one poll of its read side, which the
//! runtime's readiness state usually answers without a system call (a provider that
//! closed it, or sent bytes nobody asked for, gets it discarded). Connections idle past
//! the timeout are dropped then too, and by a sweeper task on each thread, so a thread
//! whose traffic stopped does not hold its idle sockets open. A connection stays on
//! the thread that made it, which with pinned runtimes is the thread whose reactor it
//! is registered with: no cross-thread wake-ups when it is used again.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pingora_core::protocols::Stream;
use sluice_shared::map::Map;
use tokio::io::{AsyncRead, ReadBuf};

/// The most idle connections to one peer on one thread; more are closed.
const MAX_PER_PEER: usize = 128;
/// How often the sweeper looks for connections idle too long.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

struct Parked {
    stream: Stream,
    since: Instant,
}

#[derive(Default)]
struct Idle {
    by_peer: Map<u64, Vec<Parked>>,
    /// Whether this thread's sweeper runs.
    sweeping: bool,
}

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::default();
}

/// A connection to the peer of `key` idle for less than `timeout` and still open, the
/// most recently used first.
pub(crate) fn take(key: u64, timeout: Duration) -> Option<Stream> {
    IDLE.with_borrow_mut(|idle| {
        let list = idle.by_peer.get_mut(&key)?;
        while let Some(mut parked) = list.pop() {
            if parked.since.elapsed() < timeout && still_open(&mut parked.stream) {
                return Some(parked.stream);
            }
        }
        None
    })
}

/// Keep `stream`, a connection that can carry another request, for the peer of `key`.
/// Connections idle longer than `timeout` are closed.
pub(crate) fn put(key: u64, stream: Stream, timeout: Duration) {
    let start_sweeper = IDLE.with_borrow_mut(|idle| {
        let list = idle.by_peer.entry(key).or_default();
        if list.len() >= MAX_PER_PEER {
            // The longest idle goes: the others are likelier to be open still.
            list.remove(0);
        }
        list.push(Parked {
            stream,
            since: Instant::now(),
        });
        !std::mem::replace(&mut idle.sweeping, true)
    });
    if start_sweeper && tokio::runtime::Handle::try_current().is_ok() {
        tokio::spawn(sweep_forever(timeout));
    }
}

/// How many connections wait on this thread.
#[cfg(test)]
pub(crate) fn idle_here() -> usize {
    IDLE.with_borrow(|idle| idle.by_peer.values().map(Vec::len).sum())
}

/// Close this thread's connections idle for `timeout` or longer, every
/// [`SWEEP_EVERY`]. Spawned on the thread whose pool it sweeps (pinned runtimes run a
/// task on the thread that spawned it).
async fn sweep_forever(timeout: Duration) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sweep(timeout);
    }
}

fn sweep(timeout: Duration) {
    IDLE.with_borrow_mut(|idle| {
        idle.by_peer.retain(|_, list| {
            list.retain(|p| p.since.elapsed() < timeout);
            !list.is_empty()
        });
    });
}

/// Whether an idle connection is still open and quiet: its read side has nothing to
/// give yet. End of stream, an error or bytes nobody asked for mean it cannot be used.
fn still_open(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::Socket;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connection and the provider's end of it.
    async fn pair() -> (Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (theirs, _) = listener.accept().await.unwrap();
        (Box::new(Socket::connected(tcp, addr)), theirs)
    }

    /// Lets the runtime's reactor see what happened on the sockets.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn a_connection_put_back_is_taken_again_for_its_peer_only() {
        let long = Duration::from_secs(60);
        let (a, _theirs_a) = pair().await;
        let (b, _theirs_b) = pair().await;
        let (id_a, id_b) = (a.id(), b.id());
        put(1, a, long);
        put(1, b, long);
        assert!(
            take(2, long).is_none(),
            "another peer's connections are not lent"
        );
        // The most recently used first.
        assert_eq!(take(1, long).map(|s| s.id()), Some(id_b));
        assert_eq!(take(1, long).map(|s| s.id()), Some(id_a));
        assert!(take(1, long).is_none());
    }

    #[tokio::test]
    async fn closed_chatty_and_expired_connections_are_dropped() {
        let long = Duration::from_secs(60);
        let (closed, theirs) = pair().await;
        put(7, closed, long);
        drop(theirs);
        settle().await;
        assert!(take(7, long).is_none(), "closed by the provider");

        let (chatty, mut theirs) = pair().await;
        put(7, chatty, long);
        theirs
            .write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            .await
            .unwrap();
        settle().await;
        assert!(take(7, long).is_none(), "bytes nobody asked for");

        let (open, _theirs) = pair().await;
        put(7, open, long);
        settle().await;
        assert!(take(7, Duration::ZERO).is_none(), "idle past the timeout");

        let (open, _theirs) = pair().await;
        put(7, open, long);
        assert_eq!(idle_here(), 1);
        sweep(Duration::ZERO);
        assert_eq!(
            idle_here(),
            0,
            "the sweep closes what has been idle too long"
        );
    }

    #[tokio::test]
    async fn a_peer_keeps_at_most_its_share() {
        let long = Duration::from_secs(60);
        let mut theirs = Vec::new();
        for _ in 0..MAX_PER_PEER + 3 {
            let (s, t) = pair().await;
            theirs.push(t);
            put(9, s, long);
        }
        assert_eq!(idle_here(), MAX_PER_PEER);
    }
}
