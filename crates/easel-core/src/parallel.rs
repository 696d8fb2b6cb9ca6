//! Independent chunks of one job (occlusion batches, integrated-gradient path points,
//! noise-tunnel samples, the halves of a training batch, the batches of a test pass) on
//! several threads sharing one model.
//!
//! burn's CPU backend parallelises inside large operations only: a batch-1 pass of a 224-pixel
//! network keeps about one core busy. Running two chunks at once fills the second core. The
//! results are merged on the calling thread in chunk order, so the sums are the same as one
//! thread's, whatever the number of workers or the timing; progress, live pictures and
//! cancellation stay on the calling thread too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::progress::Progress;

/// Whether `device` is burn's CPU backend.
pub fn on_cpu(device: &Device) -> bool {
    *device == Device::flex()
}

/// Threads for the chunks of one job on `device`: the CPU's cores (at most 4; the
/// backend's own threads share them), one on a GPU (its queue already runs work in parallel).
/// `EASEL_WORKERS` overrides it (1 restores the single-thread order of passes).
pub fn workers_for(device: &Device) -> usize {
    if let Some(n) = std::env::var("EASEL_WORKERS").ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n >= 1) {
        return n.min(64);
    }
    if !on_cpu(device) {
        return 1;
    }
    cores().clamp(1, 4)
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Idle thread pools by size, kept for the process and lent out one at a time.
static IDLE_POOLS: Mutex<Vec<(usize, rayon::ThreadPool)>> = Mutex::new(Vec::new());

/// An idle pool of `size` threads, or a new one; `None` if the system refuses a thread.
fn lend_pool(size: usize) -> Option<rayon::ThreadPool> {
    let lent = {
        let mut idle = IDLE_POOLS.lock().unwrap_or_else(|e| e.into_inner());
        idle.iter().position(|(n, _)| *n == size).map(|i| idle.swap_remove(i).1)
    };
    lent.or_else(|| rayon::ThreadPoolBuilder::new().num_threads(size).thread_name(|i| format!("easel-pool-{i}")).build().ok())
}

fn return_pool(size: usize, pool: rayon::ThreadPool) {
    IDLE_POOLS.lock().unwrap_or_else(|e| e.into_inner()).push((size, pool));
}

/// Runs `f` in a thread pool of `size` threads lent to this call alone, then puts the pool
/// back for the next call. The backend's operations fan out over the pool of the thread that
/// calls them; from plain threads they would all share one pool of every core, and a small
/// network's operations spend more time handing out and waiting for pieces than computing
/// them (45 % of a small CNN's occlusion profile). A worker that runs all its chunks inside a
/// pool of its share of the cores runs each straight through. Each call has a pool of its
/// own, so jobs running at once (the app runs several) never wait for each other's pools. If
/// the system refuses a thread, `f` runs here (in the global pool).
fn in_lent_pool<T: Send>(size: usize, f: impl FnOnce() -> T + Send) -> T {
    let Some(pool) = lend_pool(size) else {
        return f();
    };
    let out = on_first_thread(&pool, f, true);
    return_pool(size, pool);
    out
}

/// How long a helper of [`on_first_thread`] waits awake for a piece: far longer than the gaps
/// between a CPU pass's operations, far shorter than a GPU pass.
const AWAKE_IDLE: Duration = Duration::from_millis(1);

/// `f` on `pool`'s first thread. With `awake`, the pool's other threads stay awake while it
/// runs, taking the pieces its operations hand out as they come, instead of going to sleep
/// between two operations and being woken for the next (a batch-1 pass of a small CNN is a
/// few dozen operations of tens of microseconds each; perf: 20 % of a forward pass was the
/// kernel putting the second thread to sleep and waking it). A helper that finds no piece
/// for [`AWAKE_IDLE`] goes back to sleeping as before.
fn on_first_thread<T: Send>(pool: &rayon::ThreadPool, f: impl FnOnce() -> T + Send, awake: bool) -> T {
    struct Finished<'a>(&'a AtomicBool);
    impl Drop for Finished<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let f = Mutex::new(Some(f));
    let out = Mutex::new(None);
    let finished = AtomicBool::new(false);
    pool.broadcast(|ctx| {
        if ctx.index() == 0 {
            // set even if `f` panics, so that the other threads stop
            let _finished = Finished(&finished);
            if let Some(f) = f.lock().unwrap_or_else(|e| e.into_inner()).take() {
                *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(f());
            }
        } else if awake {
            let mut idle_since: Option<Instant> = None;
            while !finished.load(Ordering::Acquire) {
                if matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
                    idle_since = None;
                } else if idle_since.get_or_insert_with(Instant::now).elapsed() > AWAKE_IDLE {
                    // no piece for a while (a GPU pass, a long serial stretch): back to
                    // rayon's own idling, which sleeps until the next piece
                    break;
                } else {
                    // the core goes to any other thread that wants it (another job's)
                    std::thread::yield_now();
                }
            }
        }
    });
    match out.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(t) => t,
        // a pool always has a first thread, and broadcast runs on every thread
        None => unreachable!("the pool's first thread did not run"),
    }
}

/// A pool of every core held by one caller for many calls ([`PinnedPool::run`]), each of which
/// runs on the same thread of the pool, its first. burn keeps BatchNorm's running statistics
/// per thread and averages the threads' values when they meet: training steps that landed on
/// whichever pool thread was free would blend them (and make them depend on timing). Pinned,
/// the steps see one thread, as they did on the caller's, with the pool's other threads
/// taking their share of each operation.
pub struct PinnedPool {
    size: usize,
    pool: Option<rayon::ThreadPool>,
}

impl PinnedPool {
    pub fn lend() -> PinnedPool {
        let size = cores();
        PinnedPool { size, pool: lend_pool(size) }
    }

    /// `f` on the pool's first thread (here if the system refused the pool's threads).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let Some(pool) = &self.pool else {
            return f();
        };
        on_first_thread(pool, f, false)
    }
}

impl Drop for PinnedPool {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            return_pool(self.size, pool);
        }
    }
}

/// Runs `f` on a thread of a pool of every core (unless this thread is in a pool already, as
/// a chunk worker is; a training step with BatchNorm uses a [`PinnedPool`]): the backend's operations then fan out from inside the pool, whose
/// threads stay awake between operations ([`on_first_thread`]), instead of being handed over
/// from outside and waking them each time. The same operations, so the same numbers.
/// Measured: the demo network's training epoch on 10,000 images 29.4 s -> 24.1 s;
/// EfficientNet-Lite0's saliency 122-161 ms -> 108-127 ms; with the helpers kept awake, the
/// small CNN's saliency map 1.02-1.13 ms -> 0.85-0.96 ms and its forward pass 0.46-0.56 ms
/// -> 0.40-0.49 ms (2,000 calls in a row, alternating).
pub fn in_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    in_lent_pool(cores(), f)
}

/// `0..total` cut into runs of at most `batch` items for [`ordered_chunks`], of equal sizes
/// (give or take one), as many runs as a multiple of four, so that two or four workers get
/// equal shares: SmoothGrad's 20 samples at 8 a pass were 8 + 8 + 4, two passes on one core and
/// one on the other; they are now four passes of 5. EfficientNet's IG-50 at 4 a pass was 13
/// passes (7 against 6); it is 16 of 3 or 4 (measured: 2.7 s -> 2.2 s). The runs do not depend
/// on the number of workers, so neither do the numbers.
pub fn batch_ranges(total: usize, batch: usize) -> Vec<std::ops::Range<usize>> {
    let runs = total.div_ceil(batch.max(1)).next_multiple_of(4).min(total);
    let (size, extra) = (total / runs.max(1), total % runs.max(1));
    let mut start = 0;
    (0..runs)
        .map(|i| {
            let end = start + size + usize::from(i < extra);
            let r = start..end;
            start = end;
            r
        })
        .collect()
}

/// Runs `work(i)` for every chunk `i` in `0..chunks` on up to `workers` threads and hands the
/// results to `merge(i, result)` on this thread in the order `0, 1, 2, ...`. A failed chunk
/// stops the run as on one thread: the chunks before it are merged, then its error is
/// returned; the other workers finish the chunk they are on and start no other. Cancellation
/// is checked between chunks and before every merge.
pub fn ordered_chunks<T: Send>(
    workers: usize,
    chunks: usize,
    progress: Progress<'_>,
    work: &(dyn Fn(usize) -> Result<T> + Sync),
    merge: &mut dyn FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    let mut workers = workers.clamp(1, chunks.max(1));
    if rayon::current_thread_index().is_some() {
        // called from a chunk already running in a worker's pool: the cores are taken, so
        // its chunks run here, in order
        workers = 1;
    }
    if workers == 1 {
        for i in 0..chunks {
            progress.check()?;
            let t = work(i)?;
            merge(i, t)?;
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Result<T>)>();
        for k in 0..workers {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            let spawned = std::thread::Builder::new().name(format!("easel-chunk-{k}")).spawn_scoped(scope, move || {
                let run = || loop {
                    if stop.load(Ordering::Relaxed) || progress.is_cancelled() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= chunks {
                        break;
                    }
                    let r = work(i);
                    let failed = r.is_err();
                    if failed {
                        // the others start no further chunk: the run is over
                        stop.store(true, Ordering::Relaxed);
                    }
                    if tx.send((i, r)).is_err() || failed {
                        break;
                    }
                };
                in_lent_pool((cores() / workers).max(1), run)
            });
            if let Err(e) = spawned {
                stop.store(true, Ordering::Relaxed);
                return Err(Error::Compute(format!("cannot start a worker thread: {e}")));
            }
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut expected = 0;
        // the earliest failed chunk: every chunk before it is merged first, as on one thread
        // (they were all handed out before it, so they arrive), then its error is returned
        let mut failed: Option<(usize, Error)> = None;
        let result = (|| {
            while expected < chunks {
                progress.check()?;
                let Ok((i, r)) = rx.recv() else {
                    // every worker stopped early: cancelled between chunks, or after a failure
                    progress.check()?;
                    return Err(match failed.take() {
                        Some((_, e)) => e,
                        None => Error::Compute("the worker threads stopped before the last chunk".into()),
                    });
                };
                match r {
                    Ok(t) => {
                        pending.insert(i, t);
                    }
                    Err(e) if failed.as_ref().is_none_or(|(j, _)| i < *j) => failed = Some((i, e)),
                    Err(_) => {}
                }
                while let Some(t) = pending.remove(&expected) {
                    // a merge may cancel (the app's live map, a caller's stop): none after it
                    progress.check()?;
                    merge(expected, t)?;
                    expected += 1;
                }
                if let Some((j, e)) = failed.take() {
                    if j == expected {
                        return Err(e);
                    }
                    failed = Some((j, e));
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    /// `in_pool` runs its work on the pool with the other threads helping (a parallel sum is
    /// the same), and a panic in the work comes back to the caller instead of leaving the
    /// helpers waiting for it forever; the pool is usable again after.
    #[test]
    fn in_pool_helps_and_a_panic_ends_it() {
        let v: Vec<u64> = (0..100_000).collect();
        let total: u64 = in_pool(|| {
            assert!(rayon::current_thread_index().is_some());
            v.par_iter().sum()
        });
        assert_eq!(total, v.iter().sum::<u64>());
        let r = std::panic::catch_unwind(|| in_pool(|| -> u64 { panic!("inside the pool") }));
        assert!(r.is_err());
        assert_eq!(in_pool(|| v.par_iter().map(|x| x * 2).sum::<u64>()), 2 * total);
    }

    #[test]
    fn batch_ranges_cover_everything_in_equal_runs() {
        assert_eq!(batch_ranges(20, 8), vec![0..5, 5..10, 10..15, 15..20]);
        assert_eq!(batch_ranges(50, 8).iter().map(|r| r.len()).collect::<Vec<_>>(), vec![7, 7, 6, 6, 6, 6, 6, 6]);
        assert_eq!(batch_ranges(50, 4).iter().map(|r| r.len()).collect::<Vec<_>>(), vec![4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]);
        assert_eq!(batch_ranges(3, 8), vec![0..1, 1..2, 2..3]);
        assert!(batch_ranges(0, 8).is_empty());
        for (total, batch) in [(1, 1), (7, 2), (50, 2), (169, 8), (100, 64), (9, 100)] {
            let runs = batch_ranges(total, batch);
            assert_eq!(runs.first().map(|r| r.start), Some(0));
            assert_eq!(runs.last().map(|r| r.end), Some(total));
            assert!(runs.windows(2).all(|w| w[0].end == w[1].start));
            assert!(runs.iter().all(|r| !r.is_empty() && r.len() <= batch));
        }
    }

    #[test]
    fn merges_in_order_whatever_the_workers() {
        for workers in [1, 2, 3, 8] {
            let mut seen = Vec::new();
            ordered_chunks(
                workers,
                20,
                Progress::none(),
                &|i| {
                    std::thread::sleep(std::time::Duration::from_millis(((i * 7) % 5) as u64));
                    Ok(i * 10)
                },
                &mut |i, v| {
                    seen.push((i, v));
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(seen, (0..20).map(|i| (i, i * 10)).collect::<Vec<_>>(), "{workers} workers");
        }
    }

    #[test]
    fn a_pinned_pool_runs_every_call_on_one_thread_while_its_others_help() {
        let pinned = PinnedPool::lend();
        let first = pinned.run(|| std::thread::current().id());
        for _ in 0..200 {
            let (id, helpers) = pinned.run(|| {
                // work for every thread of the pool, so all are awake when the next call comes
                let helpers: std::collections::HashSet<_> = (0..64)
                    .into_par_iter()
                    .map(|_| {
                        std::thread::sleep(std::time::Duration::from_micros(50));
                        std::thread::current().id()
                    })
                    .collect();
                (std::thread::current().id(), helpers.len())
            });
            assert_eq!(id, first);
            assert!(helpers >= 1);
        }
    }

    #[test]
    fn a_chunk_may_run_chunks_of_its_own() {
        let mut outer = Vec::new();
        ordered_chunks(
            2,
            4,
            Progress::none(),
            &|i| {
                let mut inner = Vec::new();
                ordered_chunks(2, 3, Progress::none(), &|j| Ok(i * 10 + j), &mut |_, v| {
                    inner.push(v);
                    Ok(())
                })?;
                Ok(inner)
            },
            &mut |_, v| {
                outer.push(v);
                Ok(())
            },
        )
        .expect("no deadlock, no error");
        assert_eq!(outer, (0..4).map(|i| (0..3).map(|j| i * 10 + j).collect::<Vec<_>>()).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_error_stops_the_run() {
        let started = AtomicUsize::new(0);
        let err = ordered_chunks(
            2,
            100,
            Progress::none(),
            &|i| {
                started.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(2));
                if i == 3 { Err(Error::Compute("chunk 3".into())) } else { Ok(i) }
            },
            &mut |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("chunk 3"), "{err}");
        assert!(started.load(Ordering::Relaxed) < 20, "{} chunks started", started.load(Ordering::Relaxed));
    }

    #[test]
    fn every_chunk_before_a_failed_one_is_merged_first() {
        for workers in [1, 2, 3] {
            let mut merged = Vec::new();
            let err = ordered_chunks(
                workers,
                12,
                Progress::none(),
                &|i| {
                    // the early chunks are the slow ones: the failure arrives first
                    std::thread::sleep(std::time::Duration::from_millis(if i < 4 { 30 } else { 1 }));
                    if i == 5 || i == 7 { Err(Error::Compute(format!("chunk {i}"))) } else { Ok(i) }
                },
                &mut |i, v| {
                    assert_eq!(i, v);
                    merged.push(v);
                    Ok(())
                },
            )
            .unwrap_err();
            assert!(err.to_string().contains("chunk 5"), "{workers} workers: {err}");
            assert_eq!(merged, vec![0, 1, 2, 3, 4], "{workers} workers");
        }
    }

    #[test]
    fn cancellation_is_an_error_not_a_partial_result() {
        let cancel = AtomicBool::new(false);
        let mut merged = 0;
        let r = ordered_chunks(
            2,
            50,
            Progress::none().with_cancel(&cancel),
            &|i| {
                if i == 5 {
                    cancel.store(true, Ordering::Relaxed);
                }
                Ok(i)
            },
            &mut |_, _| {
                merged += 1;
                Ok(())
            },
        );
        assert!(matches!(r, Err(Error::Cancelled)), "{:?}", r.err());
        assert!(merged < 50);

        // cancelled from inside a merge (the app's live map): no merge after it, even with
        // later chunks already waiting
        for _ in 0..20 {
            let cancel = AtomicBool::new(false);
            let mut merged = 0;
            let r = ordered_chunks(
                2,
                30,
                Progress::none().with_cancel(&cancel),
                &|i| {
                    if i == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(5)); // chunk 1 waits behind it
                    }
                    Ok(i)
                },
                &mut |_, _| {
                    merged += 1;
                    cancel.store(true, Ordering::Relaxed);
                    Ok(())
                },
            );
            assert!(matches!(r, Err(Error::Cancelled)));
            assert_eq!(merged, 1);
        }
    }
}
