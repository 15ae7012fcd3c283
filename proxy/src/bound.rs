//! One timer for many waits: how long each wait on a socket may last.
//!
//! `tokio::time::timeout` around every read made a timer entry for each read that had
//! to wait, put into the runtime's timer wheel under its lock and taken out again when
//! the read completed, nearly always long before the limit. A keep-alive client
//! connection did that for every request while it waited for the next one, and every
//! exchange with a provider while it waited for the answer. A [`Bound`] keeps one timer
//! and moves it only when it fires early: each wait works out when it is due, and a
//! timer that fires before the current wait is due is set again for that point. A
//! read that is ready at once reads no clock and touches no timer.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};

/// When a wait is due.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Due {
    /// This long after the wait begins.
    After(Duration),
    /// At this instant, however long the wait has been.
    At(Instant),
}

impl Due {
    fn instant(self) -> Instant {
        match self {
            Due::After(d) => {
                let now = Instant::now();
                // As tokio's own timeout does with a duration too large to add.
                now.checked_add(d).unwrap_or_else(|| now + FAR)
            }
            Due::At(at) => at,
        }
    }
}

/// About thirty years: "never" for a limit too large to add to now.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The timer of a connection's waits, made on its first wait and kept.
#[derive(Debug, Default)]
pub(crate) struct Bound {
    timer: Option<Pin<Box<Sleep>>>,
}

impl Bound {
    /// `fut`'s output, or `None` when it was still waiting when `due`.
    pub(crate) async fn run<F: Future>(&mut self, due: Due, fut: F) -> Option<F::Output> {
        let mut fut = pin!(fut);
        let mut at = None;
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            // The wait begins at its first `Pending`.
            let at = *at.get_or_insert_with(|| due.instant());
            let timer = self.timer.get_or_insert_with(|| Box::pin(sleep_until(at)));
            if timer.deadline() > at {
                // An earlier wait's later point: this wait's comes first.
                timer.as_mut().reset(at);
            }
            loop {
                match timer.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) if timer.deadline() >= at => return Poll::Ready(None),
                    // Set by an earlier wait: this one is not due yet.
                    Poll::Ready(()) => timer.as_mut().reset(at),
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    const LIMIT: Duration = Duration::from_secs(10);

    /// `value`, arriving `after` from now.
    fn arriving<T: Send + 'static>(after: Duration, value: T) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(value);
        });
        rx
    }

    /// Waits on what never comes under `due`; how long it took.
    async fn never(bound: &mut Bound, due: Due) -> Duration {
        let start = Instant::now();
        let got = bound.run(due, std::future::pending::<()>()).await;
        assert_eq!(got, None);
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_needs_no_timer() {
        let mut bound = Bound::default();
        assert_eq!(bound.run(Due::After(LIMIT), async { 7 }).await, Some(7));
        assert!(bound.timer.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_its_limit_ends_at_the_limit() {
        assert_eq!(never(&mut Bound::default(), Due::After(LIMIT)).await, LIMIT);
    }

    /// The timer set by the first wait fires during the third; the third is bounded
    /// from its own start, not from the first's.
    #[tokio::test(start_paused = true)]
    async fn each_wait_is_bounded_from_its_own_start() {
        let mut bound = Bound::default();
        for _ in 0..2 {
            let rx = arriving(LIMIT * 3 / 4, ());
            assert!(bound.run(Due::After(LIMIT), rx).await.is_some());
        }
        assert_eq!(never(&mut bound, Due::After(LIMIT)).await, LIMIT);
    }

    /// A wait due sooner than the timer an earlier wait left set ends when it is due.
    #[tokio::test(start_paused = true)]
    async fn a_sooner_point_moves_the_timer_forward() {
        let mut bound = Bound::default();
        let rx = arriving(Duration::from_secs(1), ());
        assert!(bound.run(Due::After(LIMIT * 100), rx).await.is_some());
        let due = Due::At(Instant::now() + LIMIT);
        assert_eq!(never(&mut bound, due).await, LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_limit_too_large_to_add_is_never() {
        let mut bound = Bound::default();
        let rx = arriving(LIMIT * 1000, 5);
        let got = bound.run(Due::After(Duration::MAX), rx).await;
        assert_eq!(got.map(Result::ok), Some(Some(5)));
    }
}
