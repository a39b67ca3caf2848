//! Pure computation on every core, in order: the planner evaluates a million persons' expressions
//! this way, then takes the results one by one in key order, so what depends on order (login
//! choice, DN uniqueness, the plan's order) stays sequential and the plan is the same as when made
//! on one core. Threads, not I/O: the core crate stays pure.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, mpsc};
use std::thread;

/// The cores this process may use, asked of the system once. `available_parallelism` reads the
/// process's cgroup files at every call (`/proc/self/cgroup`, `cpu.max`): a million-record plan
/// sorts some 150,000 groups' members, and asking at each sort took 3 s of CPU.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

/// Items per block: enough that a block's hand-over costs little next to its work, few enough
/// that the blocks computed ahead stay small next to the plan.
const BLOCK: usize = 8192;

/// Blocks a worker may compute ahead of the one the sequential loop is taking from.
const AHEAD: usize = 4;

/// Runs `body` over each item paired with `f` of it, in the items' order. `f` is computed on
/// worker threads, one per core, a block of items at a time and ahead of `body`, each worker with
/// its own scratch state from `scratch` (an expression environment, filled in place item after
/// item); `body` runs on the calling thread at the same time, taking the results as they come.
/// A loop whose sequential work is as large as the parallel work it waits for (a daily run takes
/// a million settled persons one by one) so keeps both cores busy, where computing a block and
/// then taking it left one core idle while the loop ran.
pub(crate) fn in_order<'a, T: Sync, S, R: Send, Out>(
    items: &'a [T],
    scratch: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
    body: impl FnOnce(&mut dyn Iterator<Item = (&'a T, R)>) -> Out,
) -> Out {
    in_blocks_of(BLOCK, items, scratch, f, body)
}

/// [`in_order`] with blocks of `block` items: for items each of which is much work or a large
/// result (a part of a group's members as JSON), where [`BLOCK`] of them computed ahead would
/// hold too much.
pub(crate) fn in_blocks_of<'a, T: Sync, S, R: Send, Out>(
    block: usize,
    items: &'a [T],
    scratch: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
    body: impl FnOnce(&mut dyn Iterator<Item = (&'a T, R)>) -> Out,
) -> Out {
    let cores = cores();
    let block = block.max(1);
    let blocks = items.len().div_ceil(block);
    if cores == 1 || (blocks <= 1 && items.len() < 2 * MIN_PER_THREAD) {
        let mut state = scratch();
        return body(&mut items.iter().map(|item| (item, f(&mut state, item))));
    }
    let size = if blocks <= 1 { items.len().div_ceil(cores) } else { block };
    let blocks = items.len().div_ceil(size);
    let workers = cores.min(blocks);
    let shared =
        Shared { next: AtomicUsize::new(0), taken: Mutex::new(0), room: Condvar::new(), stop: AtomicBool::new(false) };
    thread::scope(|scope| {
        let (sender, results) = mpsc::channel::<(usize, Vec<R>)>();
        for _ in 0..workers {
            let sender = sender.clone();
            let (shared, scratch, f) = (&shared, &scratch, &f);
            scope.spawn(move || {
                let _stop_all_if_this_panics = StopOnPanic(shared);
                let mut state = scratch();
                loop {
                    let block = shared.next.fetch_add(1, Ordering::Relaxed);
                    if block >= blocks || !shared.wait_for_room(block) {
                        return;
                    }
                    let part = &items[block * size..((block + 1) * size).min(items.len())];
                    let computed = part.iter().map(|item| f(&mut state, item)).collect();
                    if sender.send((block, computed)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        let mut taking = Taking {
            items,
            blocks,
            shared: &shared,
            results,
            early: BTreeMap::new(),
            block: 0,
            handed: 0,
            ready: Vec::new().into_iter(),
        };
        body(&mut taking)
        // `taking` is dropped here, before the scope joins the workers: its drop lets them go.
    })
}

/// Runs `f` on each item in place, on every core: each thread takes the next item left, so the
/// work balances when the items' sizes differ (put the largest first).
pub(crate) fn each_mut<T: Send>(items: &mut [T], f: impl Fn(&mut T) + Sync) {
    let cores = cores();
    let left = Mutex::new(items.iter_mut());
    let work = || {
        loop {
            // The lock is held only to take the next item, not while `f` runs.
            let next = left.lock().unwrap_or_else(|e| e.into_inner()).next();
            let Some(item) = next else { return };
            f(item);
        }
    };
    thread::scope(|scope| {
        for _ in 1..cores {
            scope.spawn(work);
        }
        work();
    });
}

/// Runs `f` on each item in place, on every core, in parts of [`BLOCK`] items: for many items
/// each of which is little work, where [`each_mut`] would take its lock once per item.
pub(crate) fn each_in_parts_mut<T: Send>(items: &mut [T], f: impl Fn(&mut T) + Sync) {
    if items.len() <= BLOCK {
        return items.iter_mut().for_each(f);
    }
    let mut parts: Vec<&mut [T]> = items.chunks_mut(BLOCK).collect();
    each_mut(&mut parts, |part| part.iter_mut().for_each(&f));
}

/// Sorts `items` stably by `compare`, its two halves on two threads when it is large
/// (a group of a million members, its comparisons cache misses, sorted on one core while the
/// other had finished the smaller groups), then merged: among equal items the earlier stays first.
pub(crate) fn sort_by<T: Send>(items: &mut Vec<T>, compare: impl Fn(&T, &T) -> std::cmp::Ordering + Sync) {
    let cores = cores();
    if cores == 1 || items.len() < PARALLEL_SORT {
        items.sort_by(compare);
        return;
    }
    let mut right = items.split_off(items.len() / 2);
    let mut left = std::mem::take(items);
    thread::scope(|scope| {
        scope.spawn(|| left.sort_by(&compare));
        right.sort_by(&compare);
    });
    items.reserve_exact(left.len() + right.len());
    let (mut left, mut right) = (left.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(l), Some(r)) = (left.peek(), right.peek()) {
        let next = if compare(r, l).is_lt() { right.next() } else { left.next() };
        items.extend(next);
    }
    items.extend(left);
    items.extend(right);
}

/// `f` of `items`, on every core when they are many: `f` of each core's share of the items, the
/// results joined in the items' order. For one large piece of work among many small ones (a
/// group of a million members among a million persons' operations), which would otherwise take
/// one core alone while the others finish the rest.
pub(crate) fn in_parts<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let cores = cores();
    if cores == 1 || items.len() < PARALLEL_PARTS {
        return f(items);
    }
    let size = items.len().div_ceil(cores);
    let f = &f;
    thread::scope(|scope| {
        let rest: Vec<_> = items[size..].chunks(size).map(|part| scope.spawn(move || f(part))).collect();
        let mut all = f(&items[..size]);
        for part in rest {
            all.extend(part.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        all
    })
}

/// From this many items a sort is split between two threads.
const PARALLEL_SORT: usize = 1 << 16;

/// From this many items [`in_parts`] splits its work between the cores: a million persons' plan
/// has some fifty groups of 40,000 to 60,000 members, whose dependencies (a look-up per member)
/// one worker found one group after another while the other core waited.
const PARALLEL_PARTS: usize = 1 << 12;

/// Below this many items a second thread costs more than it saves.
const MIN_PER_THREAD: usize = 64;

struct Shared {
    /// The next block a worker will compute.
    next: AtomicUsize,
    /// Blocks handed to the sequential loop so far.
    taken: Mutex<usize>,
    /// Signalled when a block is taken, or when the loop stops.
    room: Condvar,
    /// Set when the loop ends (or unwinds): the workers stop.
    stop: AtomicBool,
}

impl Shared {
    /// Ends the computation: the workers stop at their next block, the waiting ones at once.
    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        // Taken under the lock, so a worker between its check and its wait cannot miss the signal.
        let _taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        self.room.notify_all();
    }

    /// Waits until `block` is within [`AHEAD`] of the loop; false if the loop has ended.
    fn wait_for_room(&self, block: usize) -> bool {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        while block >= *taken + AHEAD && !self.stop.load(Ordering::Relaxed) {
            taken = self.room.wait(taken).unwrap_or_else(|e| e.into_inner());
        }
        !self.stop.load(Ordering::Relaxed)
    }
}

/// The calling thread's side: the workers' blocks, put back in order.
struct Taking<'a, 's, T, R> {
    items: &'a [T],
    blocks: usize,
    shared: &'s Shared,
    results: mpsc::Receiver<(usize, Vec<R>)>,
    /// Blocks that arrived before the one the loop is waiting for.
    early: BTreeMap<usize, Vec<R>>,
    /// The next block to take.
    block: usize,
    /// Items handed to the loop so far: the next one's place in `items`.
    handed: usize,
    ready: std::vec::IntoIter<R>,
}

impl<'a, T, R> Iterator for Taking<'a, '_, T, R> {
    type Item = (&'a T, R);

    fn next(&mut self) -> Option<(&'a T, R)> {
        if self.ready.len() == 0 {
            if self.block >= self.blocks {
                return None;
            }
            let part = loop {
                if let Some(part) = self.early.remove(&self.block) {
                    break part;
                }
                match self.results.recv() {
                    Ok((block, part)) => {
                        self.early.insert(block, part);
                    }
                    // Every worker is gone with this block not sent: one panicked, a bug, raised
                    // again when the scope joins it.
                    Err(_) => panic!("a worker of the parallel evaluation stopped before block {}", self.block),
                }
            };
            self.ready = part.into_iter();
            self.block += 1;
            *self.shared.taken.lock().unwrap_or_else(|e| e.into_inner()) = self.block;
            self.shared.room.notify_all();
        }
        let result = self.ready.next()?;
        let item = &self.items[self.handed];
        self.handed += 1;
        Some((item, result))
    }
}

impl<T, R> Drop for Taking<'_, '_, T, R> {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

/// A worker's guard: a panic in `f` stops the other workers too, so that they let go of their
/// senders and the loop, finding the block never sent, raises it instead of waiting for ever.
struct StopOnPanic<'s>(&'s Shared);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_each_item_with_its_result_in_order_with_each_worker_its_own_scratch() {
        for n in [0, 1, 63, 64, 129, 1000, BLOCK, BLOCK * 2 + 5, BLOCK * (AHEAD + 3) + 1] {
            let items: Vec<usize> = (0..n).collect();
            let pairs: Vec<(usize, usize, usize)> = in_order(
                &items,
                || 0usize,
                |seen, i| {
                    *seen += 1;
                    (*i * 2, *seen)
                },
                |results| results.map(|(i, (double, seen))| (*i, double, seen)).collect(),
            );
            assert_eq!(pairs.len(), n);
            assert!(pairs.iter().enumerate().all(|(at, (i, double, _))| *i == at && *double == at * 2));
            // Each worker starts from a fresh scratch: as many counts of 1 as workers used.
            let workers = pairs.iter().filter(|(_, _, seen)| *seen == 1).count();
            let cores = cores();
            assert!(workers <= cores && (n == 0 || workers >= 1), "{workers} workers for {n} items");
        }
    }

    #[test]
    fn each_item_is_worked_on_once() {
        let mut items: Vec<Vec<usize>> = (0..1000).map(|n| (0..n % 37).rev().collect()).collect();
        each_mut(&mut items, |item| {
            item.sort_unstable();
            item.push(usize::MAX);
        });
        assert!(items.iter().enumerate().all(|(n, item)| {
            item.len() == n % 37 + 1 && item.is_sorted() && item.iter().filter(|&&x| x == usize::MAX).count() == 1
        }));
    }

    #[test]
    fn each_item_in_parts_is_worked_on_once() {
        for n in [0, 5, BLOCK, BLOCK + 1, 3 * BLOCK + 7] {
            let mut items: Vec<usize> = (0..n).collect();
            each_in_parts_mut(&mut items, |i| *i = *i * 2 + 1);
            assert!(items.iter().copied().eq((0..n).map(|i| i * 2 + 1)), "{n} items");
        }
    }

    #[test]
    fn a_large_sort_is_stable_and_whole() {
        for n in [0, 5, PARALLEL_SORT - 1, PARALLEL_SORT, 3 * PARALLEL_SORT + 7] {
            // Keys with many repeats, each item tagged with where it was pushed.
            let mut items: Vec<(usize, usize)> = (0..n).map(|i| ((i * 7919) % 1009, i)).collect();
            let mut expected = items.clone();
            expected.sort_by_key(|(key, _)| *key);
            sort_by(&mut items, |a, b| a.0.cmp(&b.0));
            assert_eq!(items, expected, "{n} items");
        }
    }

    #[test]
    fn work_in_parts_is_joined_in_order() {
        for n in [0, 1, PARALLEL_PARTS - 1, PARALLEL_PARTS, 3 * PARALLEL_PARTS + 7] {
            let items: Vec<usize> = (0..n).collect();
            let parts = std::sync::atomic::AtomicUsize::new(0);
            let doubled = in_parts(&items, |part| {
                parts.fetch_add(1, Ordering::Relaxed);
                part.iter().map(|i| i * 2).collect()
            });
            assert!(doubled.iter().copied().eq((0..n).map(|i| i * 2)), "{n} items");
            let expected = if n < PARALLEL_PARTS { 1 } else { cores() };
            assert_eq!(parts.into_inner(), expected, "{n} items");
        }
    }

    #[test]
    fn blocks_of_one_item_come_in_order_with_few_computed_ahead() {
        let items: Vec<usize> = (0..200).collect();
        let computed = AtomicUsize::new(0);
        let count = |_: &mut (), i: &usize| {
            computed.fetch_add(1, Ordering::SeqCst);
            i * 2
        };
        let most_ahead = in_blocks_of(
            1,
            &items,
            || (),
            count,
            |results| {
                let mut most = 0;
                for (taken, (i, double)) in results.enumerate() {
                    assert_eq!((*i, double), (taken, taken * 2));
                    most = most.max(computed.load(Ordering::SeqCst) - taken);
                }
                most
            },
        );
        assert!(most_ahead <= AHEAD + cores(), "{most_ahead} items computed ahead of the loop");
    }

    #[test]
    fn a_loop_that_stops_early_lets_the_workers_go() {
        let items: Vec<usize> = (0..BLOCK * (AHEAD + 4)).collect();
        let first =
            in_order(&items, || (), |(), i| i + 1, |results| results.take(3).map(|(_, r)| r).collect::<Vec<_>>());
        assert_eq!(first, [1, 2, 3]);
    }

    #[test]
    fn a_panic_in_the_work_is_raised_on_the_calling_thread() {
        let items: Vec<usize> = (0..BLOCK * 3).collect();
        let outcome = std::panic::catch_unwind(|| {
            in_order(&items, || (), |(), i| if *i == BLOCK + 7 { panic!("bug") } else { *i }, |results| results.count())
        });
        assert!(outcome.is_err());
    }
}
