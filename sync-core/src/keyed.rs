//! Maps and sets keyed by owned strings (scope names), looked up by `&str`:
//! the key is copied only when it is new. Most records go to a scope that
//! is already there, and `entry` would copy the name every time.

use std::collections::{BTreeMap, BTreeSet};

/// `map[key]`, made with `new` if missing.
pub(crate) fn entry<'a, V>(
    map: &'a mut BTreeMap<String, V>,
    key: &str,
    new: impl FnOnce() -> V,
) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), new());
    }
    map.get_mut(key).expect("inserted above if it was missing")
}

/// Adds `key` to `set` if it is not there yet.
pub(crate) fn insert(set: &mut BTreeSet<String>, key: &str) {
    if !set.contains(key) {
        set.insert(key.to_owned());
    }
}
