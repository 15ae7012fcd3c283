//! Telling connections that wait for their next request that the server stopped
//! listening.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Whether the server has stopped listening, for connections waiting for their next
/// request: they close instead of holding the shutdown up until their client sends again.
#[derive(Debug, Default)]
pub(crate) struct Closing {
    closed: AtomicBool,
    notify: Notify,
}

impl Closing {
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Resolves once `close` was called, before or after this call.
    pub(crate) async fn wait(&self) {
        let notified = self.notify.notified();
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_wait_ends_when_closed_before_or_after_it_began() {
        let closing = std::sync::Arc::new(Closing::default());
        let waiting = tokio::spawn({
            let closing = closing.clone();
            async move { closing.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        closing.close();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("a waiter was not woken by close")
            .unwrap();
        // Closed already: returns at once.
        tokio::time::timeout(Duration::from_secs(5), closing.wait())
            .await
            .expect("a wait after close did not return");
    }
}
