//! A bounded pool of worker threads for the calls that block (WeChat's API).
//! The request loop hands it work and never waits for it: each finished call
//! comes back to the loop as an event on the loop's own channel. Knows
//! nothing about requests or the app.

use crate::metrics;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};

/// A blocking call, run on a worker. Its result goes back to the loop as is.
pub type Work = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;

/// What a call produced, or `Err` when it panicked (the loop answers 500).
pub type Finished = Result<Box<dyn Any + Send>, ()>;

/// Where a worker reports a finished call: `(job id, result)`.
pub type Report = Arc<dyn Fn(u64, Finished) + Send + Sync>;

/// Worker threads, started as work needs them, up to `max`; work beyond
/// what the threads can take waits in a queue of at most `queue` calls.
/// Only the loop calls `submit` and `finished`, so the counts need no lock.
pub struct Pool {
    name: String,
    work: mpsc::Sender<(u64, Work)>,
    /// Shared by the workers only: the loop never takes this lock.
    taken: Arc<Mutex<mpsc::Receiver<(u64, Work)>>>,
    report: Report,
    max: usize,
    queue: usize,
    started: usize,
    /// Calls submitted and not yet reported back to the loop.
    in_pool: usize,
    /// Its calls are counted in the metrics' gauges (the app's pool).
    counted: bool,
}

impl Pool {
    /// A pool of at most `max` threads (at least one) and `queue` waiting calls.
    pub fn new(name: &str, max: usize, queue: usize, report: Report) -> Pool {
        let (work, taken) = mpsc::channel();
        Pool {
            name: name.to_string(),
            work,
            taken: Arc::new(Mutex::new(taken)),
            report,
            max: max.max(1),
            queue,
            started: 0,
            in_pool: 0,
            counted: false,
        }
    }

    /// Counts this pool's calls in the metrics' gauges (metrics.rs).
    pub fn counted(mut self, counted: bool) -> Pool {
        self.counted = counted;
        self
    }

    /// True when another call would have to wait beyond the queue's bound.
    pub fn is_full(&self) -> bool {
        self.in_pool >= self.max + self.queue
    }

    /// Hands a call to the workers. Never blocks; the caller checks
    /// `is_full` first. Returns false if no worker could be had at all.
    pub fn submit(&mut self, id: u64, work: Work) -> bool {
        // A thread per call under way, up to the maximum. If none can be
        // spawned the call still queues for the threads there are.
        let wanted = self.in_pool >= self.started && self.started < self.max;
        if wanted && !self.spawn() && self.started == 0 {
            return false;
        }
        if self.counted {
            metrics::call_queued();
        }
        if self.work.send((id, work)).is_err() {
            if self.counted {
                metrics::call_running();
                metrics::call_done();
            }
            return false;
        }
        self.in_pool += 1;
        true
    }

    /// The loop saw a call's report: one fewer in the pool.
    pub fn finished(&mut self) {
        self.in_pool = self.in_pool.saturating_sub(1);
    }

    /// Calls running or queued.
    pub fn in_pool(&self) -> usize {
        self.in_pool
    }

    fn spawn(&mut self) -> bool {
        let taken = Arc::clone(&self.taken);
        let report = Arc::clone(&self.report);
        let counted = self.counted;
        let spawned = std::thread::Builder::new()
            .name(format!("{}-worker", self.name))
            .spawn(move || worker(&taken, &*report, counted));
        if spawned.is_ok() {
            self.started += 1;
        }
        spawned.is_ok()
    }
}

/// Takes calls until the pool is dropped. A panicking call is reported as
/// such, so the request waiting for it is still answered.
fn worker(
    taken: &Mutex<mpsc::Receiver<(u64, Work)>>,
    report: &(dyn Fn(u64, Finished) + Send + Sync),
    counted: bool,
) {
    loop {
        let next = {
            // A worker that panicked never holds this lock (the call runs
            // outside it), so poisoning cannot happen; take it anyway if so.
            let queue = taken.lock().unwrap_or_else(|p| p.into_inner());
            queue.recv()
        };
        let Ok((id, work)) = next else {
            return;
        };
        if counted {
            metrics::call_running();
        }
        let result = catch_unwind(AssertUnwindSafe(work)).map_err(|_| ());
        if counted {
            metrics::call_done();
        }
        report(id, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pool(max: usize, queue: usize) -> (Pool, mpsc::Receiver<(u64, Finished)>) {
        let (tx, rx) = mpsc::channel();
        let report: Report = Arc::new(move |id, r| {
            let _ = tx.send((id, r));
        });
        (Pool::new("test", max, queue, report), rx)
    }

    #[test]
    fn calls_run_in_parallel_up_to_the_maximum_and_report_back() {
        let (mut pool, rx) = pool(4, 4);
        for id in 0..4 {
            assert!(pool.submit(
                id,
                Box::new(move || {
                    std::thread::sleep(Duration::from_millis(300));
                    Box::new(id * 10) as Box<dyn Any + Send>
                })
            ));
        }
        assert_eq!(pool.started, 4);
        let started = std::time::Instant::now();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (id, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            pool.finished();
            assert_eq!(*r.unwrap().downcast::<u64>().unwrap(), id * 10);
            seen.push(id);
        }
        // Four 300 ms calls one after another would take 1.2 s.
        assert!(started.elapsed() < Duration::from_millis(1100));
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2, 3]);
        assert_eq!(pool.in_pool(), 0);
    }

    #[test]
    fn the_pool_is_bounded_and_a_panic_is_reported() {
        let (mut pool, rx) = pool(1, 1);
        assert!(pool.submit(1, Box::new(|| panic!("a bug in a call"))));
        assert!(!pool.is_full());
        assert!(pool.submit(2, Box::new(|| Box::new(()) as Box<dyn Any + Send>)));
        assert!(pool.is_full());
        let (id, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((id, r.is_err()), (1, true));
        pool.finished();
        // The worker survived its call's panic and takes the next one.
        let (id, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((id, r.is_ok()), (2, true));
        pool.finished();
        assert_eq!(pool.started, 1);
    }
}
