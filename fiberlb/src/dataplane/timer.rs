//! A connection's timeout, kept on one timer that is re-armed only when its deadline moves by
//! more than `SLACK`: a busy keep-alive connection waits under a timeout per request without
//! touching the timer wheel per request. A timer that fires early (its deadline since pushed
//! out) re-arms to the real one.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

const SLACK: Duration = Duration::from_secs(1);

pub struct Timer {
    /// Made on first use: many connections never wait on some of their timers.
    sleep: Option<Pin<Box<Sleep>>>,
    deadline: Instant,
}

impl Default for Timer {
    fn default() -> Self {
        Self { sleep: None, deadline: Instant::now() }
    }
}

impl Timer {
    /// Runs `work` until it finishes (`Some`) or `limit` passes from now (`None`).
    pub async fn within<F: Future>(&mut self, limit: Duration, work: F) -> Option<F::Output> {
        self.until(Instant::now() + limit, work).await
    }

    /// Runs `work` until it finishes (`Some`) or `deadline` passes (`None`).
    pub async fn until<F: Future>(&mut self, deadline: Instant, work: F) -> Option<F::Output> {
        self.deadline = deadline;
        if let Some(sleep) = self.sleep.as_mut() {
            let armed = sleep.deadline();
            if armed > deadline || armed + SLACK < deadline {
                sleep.as_mut().reset(deadline);
            }
        }
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                done = &mut work => return Some(done),
                () = sleep.as_mut() => {
                    if Instant::now() >= self.deadline {
                        return None;
                    }
                    sleep.as_mut().reset(self.deadline);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_is_cut_at_its_own_deadline_whether_or_not_the_timer_was_re_armed() {
        let mut timer = Timer::default();
        // Arms at +400 ms.
        assert_eq!(timer.within(Duration::from_millis(400), async { 7 }).await, Some(7));
        // +900 ms is within the slack of that arming: the timer fires at 400 ms, finds the
        // deadline not reached, re-arms, and cuts the work at 900 ms.
        let started = Instant::now();
        assert_eq!(timer.within(Duration::from_millis(900), std::future::pending::<()>()).await, None);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(1500), "{took:?}");
        // A shorter limit re-arms at once.
        let started = Instant::now();
        assert_eq!(timer.within(Duration::from_millis(100), std::future::pending::<()>()).await, None);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(100) && took < Duration::from_millis(600), "{took:?}");
    }
}
