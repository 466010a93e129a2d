//! Tests of the reconciler loop: convergence, retries with backoff, and resync repairing drift.

use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

/// Desired: a set of names; actual: what "runs". Reconcile fails the first `flaky` times.
#[derive(Default)]
struct Fake {
    desired: Mutex<BTreeSet<String>>,
    actual: Mutex<BTreeSet<String>>,
    flaky: AtomicU32,
    calls: AtomicU32,
}

impl Reconciler for Fake {
    type Key = String;

    fn keys(&self) -> Vec<String> {
        let desired = self.desired.lock().unwrap().clone();
        let actual = self.actual.lock().unwrap().clone();
        desired.union(&actual).cloned().collect()
    }

    async fn reconcile(&self, key: &String) -> Result<Requeue, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.flaky.load(Ordering::SeqCst) > 0 {
            self.flaky.fetch_sub(1, Ordering::SeqCst);
            return Err("not yet".into());
        }
        let wanted = self.desired.lock().unwrap().contains(key);
        let mut actual = self.actual.lock().unwrap();
        if wanted {
            actual.insert(key.clone());
        } else {
            actual.remove(key);
        }
        Ok(Requeue::Done)
    }
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "{what} within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn changes_converge_failures_are_retried_and_resync_repairs_drift() {
    let fake = Arc::new(Fake::default());
    let queue = Arc::new(Queue::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(fake.clone(), queue.clone(), Duration::from_millis(300), shutdown.clone()));

    fake.desired.lock().unwrap().extend(["a".to_string(), "b".to_string()]);
    queue.push_all(["a".to_string(), "b".to_string()]);
    until("a and b run", || fake.actual.lock().unwrap().len() == 2).await;

    // Two failures, then success: retried with backoff (100 ms, 200 ms), not dropped.
    fake.flaky.store(2, Ordering::SeqCst);
    fake.desired.lock().unwrap().remove("a");
    let started = Instant::now();
    queue.push("a".to_string());
    until("a removed", || !fake.actual.lock().unwrap().contains("a")).await;
    assert!(started.elapsed() >= Duration::from_millis(250), "backed off: {:?}", started.elapsed());

    // Drift nobody announced (b vanished by hand) is repaired by the resync.
    fake.actual.lock().unwrap().remove("b");
    until("b back by resync", || fake.actual.lock().unwrap().contains("b")).await;

    shutdown.cancel();
    task.await.unwrap();
}

#[test]
fn backoff_doubles_to_a_ceiling() {
    assert_eq!(backoff(1), Duration::from_millis(100));
    assert_eq!(backoff(2), Duration::from_millis(200));
    assert_eq!(backoff(5), Duration::from_millis(1600));
    assert_eq!(backoff(50), Duration::from_secs(30));
}

#[test]
fn a_key_queued_now_is_not_also_kept_for_later() {
    let queue = Queue::default();
    queue.push_after("k", Duration::from_secs(60));
    queue.push("k");
    assert_eq!(queue.next(), Ok("k"));
    assert_eq!(queue.next(), Err(None));
    assert!(queue.is_idle());
}
