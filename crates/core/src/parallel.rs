//! Pure computation on every core, in order: the planner evaluates a million persons' expressions
//! this way, then takes the results one by one in key order, so what depends on order (login
//! choice, DN uniqueness, the plan's order) stays sequential and the plan is the same as when made
//! on one core. Threads, not I/O: the core crate stays pure.

use std::num::NonZeroUsize;
use std::thread;

/// Items per thread below which starting a thread costs more than it saves.
const MIN_PER_THREAD: usize = 64;

/// `f` of every item, in the items' order, computed on up to as many threads as the machine has
/// cores, each with its own scratch state from `scratch` (an expression environment, filled in
/// place item after item).
pub(crate) fn map<T: Sync, S, R: Send>(
    items: &[T],
    scratch: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
) -> Vec<R> {
    let cores = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let threads = cores.min(items.len() / MIN_PER_THREAD).max(1);
    let run = |chunk: &[T]| {
        let mut state = scratch();
        chunk.iter().map(|item| f(&mut state, item)).collect::<Vec<R>>()
    };
    if threads == 1 {
        return run(items);
    }
    let chunk = items.len().div_ceil(threads);
    thread::scope(|scope| {
        let mut parts = items.chunks(chunk);
        // The calling thread takes the first chunk itself.
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts.map(|part| scope.spawn(|| run(part))).collect();
        let mut results = run(first);
        for handle in others {
            match handle.join() {
                Ok(part) => results.extend(part),
                // A panic in `f` is a bug: raised again here, as it would have been on one thread.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    })
}

/// Persons evaluated ahead per round of [`blocks`]: enough to keep every core busy, few enough that
/// the results held at once stay small next to the plan.
const BLOCK: usize = 8192;

/// Each item with `f` of it, in the items' order, `f` computed ahead on every core a block of
/// items at a time ([`map`]), so a sequential loop over the items takes the results as it goes.
pub(crate) fn blocks<'a, T: Sync, S, R: Send, Scratch, F>(
    items: &'a [T],
    scratch: Scratch,
    f: F,
) -> Blocks<'a, T, R, Scratch, F>
where
    Scratch: Fn() -> S + Sync,
    F: Fn(&mut S, &T) -> R + Sync,
{
    Blocks { items, done: 0, ready: Vec::new().into_iter(), scratch, f }
}

pub(crate) struct Blocks<'a, T, R, Scratch, F> {
    items: &'a [T],
    /// Items whose results were computed (handed out or in `ready`).
    done: usize,
    ready: std::vec::IntoIter<R>,
    scratch: Scratch,
    f: F,
}

impl<'a, T: Sync, S, R: Send, Scratch, F> Iterator for Blocks<'a, T, R, Scratch, F>
where
    Scratch: Fn() -> S + Sync,
    F: Fn(&mut S, &T) -> R + Sync,
{
    type Item = (&'a T, R);

    fn next(&mut self) -> Option<(&'a T, R)> {
        if self.ready.len() == 0 {
            let block = &self.items[self.done..(self.done + BLOCK).min(self.items.len())];
            self.ready = map(block, &self.scratch, &self.f).into_iter();
            self.done += block.len();
        }
        let result = self.ready.next()?;
        let item = &self.items[self.done - self.ready.len() - 1];
        Some((item, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_of_the_items_with_each_thread_its_own_scratch() {
        for n in [0, 1, 63, 64, 129, 1000] {
            let items: Vec<usize> = (0..n).collect();
            let out = map(
                &items,
                || 0usize,
                |seen, i| {
                    *seen += 1;
                    (*i * 2, *seen)
                },
            );
            assert_eq!(
                out.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
                items.iter().map(|i| i * 2).collect::<Vec<_>>()
            );
            // Each thread starts from a fresh scratch: as many counts of 1 as threads used.
            let threads = out.iter().filter(|(_, seen)| *seen == 1).count();
            let cores = thread::available_parallelism().map_or(1, NonZeroUsize::get);
            assert!(threads <= cores && (n == 0 || threads >= 1), "{threads} threads for {n} items");
        }
    }

    #[test]
    fn blocks_pair_each_item_with_its_result_across_blocks() {
        let items: Vec<usize> = (0..BLOCK * 2 + 5).collect();
        let pairs: Vec<(usize, usize)> = blocks(&items, || (), |(), i| i + 1).map(|(i, r)| (*i, r)).collect();
        assert_eq!(pairs.len(), items.len());
        assert!(pairs.iter().all(|(i, r)| *r == i + 1));
        assert_eq!(blocks(&[] as &[usize], || (), |(), i| *i).count(), 0);
    }
}
