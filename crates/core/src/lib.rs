//! roster's pure planning core. See `ARCHITECTURE.md`: this crate does no I/O.

pub mod attr;
pub mod config;
mod correlate;
pub mod dn;
pub mod effective;
pub mod engine;
pub mod explain;
pub mod expr;
pub mod lifecycle;
pub mod login;
mod parallel;
pub mod partial;
pub mod plan;
pub mod render;
pub mod settings;
pub mod source;
pub mod state;

/// A hash map for the planner's maps over every person (correlation by key, links by person,
/// logins by owner): foldhash instead of SipHash, seeded per process as std's is.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The set of [`FastMap`]'s kind.
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// An empty [`FastMap`] with room for `n` entries.
pub(crate) fn fast_map<K, V>(n: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(n, foldhash::fast::RandomState::default())
}
