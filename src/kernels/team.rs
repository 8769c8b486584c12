//! A team of worker threads for the fork-join splits inside one training step: the halves
//! of a matrix product, of a batch of images, of an optimizer update.
//!
//! Why not rayon's `join`: called from outside rayon's pool (a compiled step runs on the
//! caller's thread), each join queues the work, wakes a sleeping worker through the OS and
//! blocks the caller on a lock until the pool is done. Measured on the MNIST MLP, that
//! overhead ate more than a second core gained on 100 µs products. Here a worker keeps
//! spinning for [`SPIN_FOR`] after each job (a step hands one over every few microseconds),
//! so a hand-over costs a cache-line transfer; an idle worker parks. A job the worker has
//! not started when the caller finishes its own half is taken back and run by the caller,
//! so on a busy machine a descheduled worker never makes the caller wait for work that has
//! not begun.
//!
//! The team has one worker per core beyond the first. A join finding every worker busy
//! (nested splits, or several host threads at once) runs both halves on the caller.

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long a worker spins for the next job before it parks.
const SPIN_FOR: Duration = Duration::from_millis(1);

/// A worker's states. A caller moves it IDLE → CLAIMED → POSTED; the worker POSTED →
/// RUNNING → DONE; the caller DONE → IDLE, or takes an unstarted job back POSTED → IDLE.
const IDLE: u8 = 0;
const CLAIMED: u8 = 1;
const POSTED: u8 = 2;
const RUNNING: u8 = 3;
const DONE: u8 = 4;

/// A type-erased pointer to a job on the caller's stack.
#[derive(Copy, Clone)]
struct JobRef {
    data: *const (),
    execute: unsafe fn(*const ()),
}

struct Worker {
    state: AtomicU8,
    /// Written by the claiming caller before POSTED, read by the worker after RUNNING.
    job: UnsafeCell<Option<JobRef>>,
    parked: AtomicBool,
    /// Set once the worker's thread has started and prepared its scratch.
    ready: AtomicBool,
    thread: OnceLock<Thread>,
}

// Safety: `job` is written only by the caller holding the CLAIMED state and read only by
// the worker after it won POSTED → RUNNING; the state's release/acquire orders the two.
unsafe impl Sync for Worker {}

struct Team {
    workers: Vec<&'static Worker>,
}

fn team() -> &'static Team {
    static TEAM: OnceLock<Team> = OnceLock::new();
    TEAM.get_or_init(|| {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        let mut workers = Vec::new();
        for i in 1..cores {
            let worker: &'static Worker = Box::leak(Box::new(Worker {
                state: AtomicU8::new(IDLE),
                job: UnsafeCell::new(None),
                parked: AtomicBool::new(false),
                ready: AtomicBool::new(false),
                thread: OnceLock::new(),
            }));
            let spawned = thread::Builder::new().name(format!("dnnc-team-{i}")).spawn(move || {
                super::gemm_blocked::prepare_thread();
                worker.ready.store(true, Ordering::Release);
                serve(worker)
            });
            match spawned {
                Ok(handle) => {
                    let _ = worker.thread.set(handle.thread().clone());
                    workers.push(worker);
                }
                // No thread, no worker: joins run on the caller.
                Err(_) => break,
            }
        }
        // Wait until every worker has made its scratch: what a worker allocates belongs to
        // the team's creation, not to the step that happened to create it.
        for w in &workers {
            while !w.ready.load(Ordering::Acquire) {
                thread::yield_now();
            }
        }
        Team { workers }
    })
}

/// The number of threads a join can use at once (the caller and the team's workers).
pub fn size() -> usize {
    team().workers.len() + 1
}

/// A worker's loop: run posted jobs, spin while they keep coming, park when they stop.
fn serve(worker: &'static Worker) {
    let mut idle_since = Instant::now();
    let mut spins = 0u32;
    loop {
        if worker.state.load(Ordering::Acquire) == POSTED
            && worker.state.compare_exchange(POSTED, RUNNING, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            // Safety: the caller wrote the job before POSTED and keeps it alive until DONE.
            if let Some(job) = unsafe { *worker.job.get() } {
                unsafe { (job.execute)(job.data) };
            }
            worker.state.store(DONE, Ordering::Release);
            idle_since = Instant::now();
            continue;
        }
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(256) || idle_since.elapsed() < SPIN_FOR {
            std::hint::spin_loop();
            continue;
        }
        // SeqCst on both sides: either the caller sees `parked` and unparks, or this
        // thread sees the posted job.
        worker.parked.store(true, Ordering::SeqCst);
        if worker.state.load(Ordering::SeqCst) != POSTED {
            thread::park();
        }
        worker.parked.store(false, Ordering::SeqCst);
        idle_since = Instant::now();
    }
}

/// A closure and the slot for its outcome, on the caller's stack.
struct StackJob<F, R> {
    f: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<thread::Result<R>>>,
}

impl<F: FnOnce() -> R, R> StackJob<F, R> {
    /// # Safety
    /// `data` points to a live `StackJob<F, R>` that nothing else touches during the call.
    unsafe fn execute(data: *const ()) {
        let job = unsafe { &*(data as *const StackJob<F, R>) };
        if let Some(f) = unsafe { (*job.f.get()).take() } {
            let outcome = panic::catch_unwind(AssertUnwindSafe(f));
            unsafe { *job.result.get() = Some(outcome) };
        }
    }

    fn as_ref(&self) -> JobRef {
        JobRef { data: self as *const Self as *const (), execute: Self::execute }
    }
}

/// Runs `a` and `b`, `b` on an idle worker of the team if there is one, and returns both
/// results; a panic in either is resumed on the caller once both are finished.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let claimed = team()
        .workers
        .iter()
        .find(|w| w.state.compare_exchange(IDLE, CLAIMED, Ordering::Acquire, Ordering::Relaxed).is_ok());
    let Some(worker) = claimed else {
        // Both halves here, the second even when the first panics, as with a worker.
        return both(panic::catch_unwind(AssertUnwindSafe(a)), panic::catch_unwind(AssertUnwindSafe(b)));
    };
    let job = StackJob { f: UnsafeCell::new(Some(b)), result: UnsafeCell::new(None) };
    // Safety: this caller holds the worker in CLAIMED; nobody else reads or writes `job`.
    unsafe { *worker.job.get() = Some(job.as_ref()) };
    worker.state.store(POSTED, Ordering::SeqCst);
    if worker.parked.load(Ordering::SeqCst)
        && let Some(t) = worker.thread.get()
    {
        t.unpark();
    }
    // `job` must outlive the worker's use of it even if `a` panics: catch, finish, resume.
    let ra = panic::catch_unwind(AssertUnwindSafe(a));
    if worker.state.compare_exchange(POSTED, IDLE, Ordering::Acquire, Ordering::Relaxed).is_ok() {
        // Not started: run it here.
        unsafe { StackJob::<B, RB>::execute(job.as_ref().data) };
    } else {
        let mut spins = 0u32;
        while worker.state.load(Ordering::Acquire) != DONE {
            spins = spins.wrapping_add(1);
            if spins < 1 << 14 {
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        worker.state.store(IDLE, Ordering::Release);
    }
    let rb = job.result.into_inner().expect("a finished join's second half has a result");
    both(ra, rb)
}

/// Both halves' results, or the first half's panic (else the second's) resumed.
fn both<RA, RB>(ra: thread::Result<RA>, rb: thread::Result<RB>) -> (RA, RB) {
    match (ra, rb) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (Err(payload), _) | (_, Err(payload)) => panic::resume_unwind(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_halves_run_and_return_their_results() {
        for n in 0..2000u64 {
            let mut left = vec![0u64; 64];
            let mut right = vec![0u64; 64];
            let (x, y) = join(
                || {
                    left.iter_mut().enumerate().for_each(|(i, v)| *v = i as u64 * n);
                    left.iter().sum::<u64>()
                },
                || {
                    right.iter_mut().enumerate().for_each(|(i, v)| *v = i as u64 + n);
                    right.iter().sum::<u64>()
                },
            );
            assert_eq!(x, 2016 * n);
            assert_eq!(y, 2016 + 64 * n);
            assert_eq!(right[63], 63 + n);
        }
    }

    #[test]
    fn nested_and_concurrent_joins_give_every_result() {
        let sums: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|t| {
                    s.spawn(move || {
                        (0..500u64)
                            .map(|i| {
                                let ((a, b), (c, d)) =
                                    join(|| join(|| i, || i + t), || join(|| 2 * i, || 3 * i));
                                a + b + c + d
                            })
                            .sum::<u64>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("no panic")).collect()
        });
        for (t, sum) in sums.into_iter().enumerate() {
            let expected: u64 = (0..500u64).map(|i| 7 * i + t as u64).sum();
            assert_eq!(sum, expected);
        }
    }

    #[test]
    fn a_panic_in_either_half_reaches_the_caller_after_both_finish() {
        for panics_first in [true, false] {
            let finished = AtomicBool::new(false);
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                join(
                    || {
                        if panics_first {
                            panic!("first half")
                        }
                    },
                    || {
                        if !panics_first {
                            panic!("second half")
                        }
                        finished.store(true, Ordering::SeqCst);
                    },
                )
            }));
            assert!(outcome.is_err());
            assert_eq!(finished.load(Ordering::SeqCst), panics_first);
        }
        // The team still works afterwards.
        assert_eq!(join(|| 1, || 2), (1, 2));
    }

    #[test]
    fn with_every_worker_taken_a_panicking_first_half_still_lets_the_second_run() {
        // Inside a join the team's one worker (on two cores) is taken, so the inner join
        // runs both halves on the caller: the second must run even though the first panics.
        let finished = AtomicBool::new(false);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            join(|| join(|| panic!("first half"), || finished.store(true, Ordering::SeqCst)), || ())
        }));
        assert!(outcome.is_err());
        assert!(finished.load(Ordering::SeqCst), "the second half ran");
    }

    #[test]
    fn a_join_after_the_workers_parked_still_runs_the_second_half() {
        std::thread::sleep(SPIN_FOR * 5);
        let (a, b) = join(|| 3, || 4);
        assert_eq!((a, b), (3, 4));
    }
}
