//! The one bounded map every store here is built on: entries expire, and past
//! a cap the oldest give way, so no one can grow a store without limit.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A value that knows when it stops being live, in unix seconds. The values
/// carry their expiry themselves (a session's is saved with it), so the map
/// stores no second copy that could disagree.
pub trait Expires {
    /// The first second at which the value is no longer live.
    fn expires(&self) -> i64;
}

impl<T: Expires + ?Sized> Expires for Box<T> {
    fn expires(&self) -> i64 {
        (**self).expires()
    }
}

impl<T: Expires + ?Sized> Expires for std::sync::Arc<T> {
    fn expires(&self) -> i64 {
        (**self).expires()
    }
}

/// Queue slots for removed entries tolerated beyond twice the live count
/// before the queue is compacted: small stores never bother.
const SLACK: usize = 64;

/// Key → value, at most `cap` entries, each live while `now` is before its
/// expiry, kept in insertion order.
///
/// Invariants:
/// - Every stored entry has exactly one slot in `order` carrying its stamp;
///   `order` may also hold slots of entries removed or replaced since, which
///   match nothing (a stamp is never reused, so a key removed and inserted
///   again is not confused with its old slot).
/// - The slots that match, front to back, are the entries oldest first:
///   eviction at the cap and iteration both follow it.
/// - After every call `order.len() <= 2 * len() + SLACK`: removals only mark
///   slots dead, and the queue is compacted once the dead outnumber the live
///   (plus slack). Each compaction costs what the removals since the last one
///   left behind, so every operation stays amortised O(1).
/// - `len()` counts entries stored, expired or not; `get` and `get_mut`
///   hide an expired entry even before `sweep` drops it.
///
/// Values are stored as given: a large value belongs in a `Box`, so the
/// table's spare capacity costs a pointer per slot, not a whole value.
pub struct Expiring<K, V> {
    map: HashMap<K, Entry<V>>,
    /// (key, stamp) in insertion order, dead slots included.
    order: VecDeque<(K, u64)>,
    /// The stamp the next insertion gets.
    next: u64,
    cap: usize,
}

struct Entry<V> {
    stamp: u64,
    value: V,
}

impl<K: Hash + Eq + Clone, V: Expires> Expiring<K, V> {
    /// An empty map keeping at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Expiring<K, V> {
        Expiring {
            map: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    /// Stores `value` under `key` as the newest entry, replacing any entry
    /// `key` had (expired or not). A new key at the cap first evicts the
    /// oldest entries, expired or not, until there is room.
    pub fn insert(&mut self, key: K, value: V) {
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.cap {
                let Some((oldest, stamp)) = self.order.pop_front() else {
                    break;
                };
                if self.map.get(&oldest).is_some_and(|e| e.stamp == stamp) {
                    self.map.remove(&oldest);
                }
            }
        }
        let stamp = self.next;
        self.next += 1;
        self.order.push_back((key.clone(), stamp));
        self.map.insert(key, Entry { stamp, value });
        self.compact();
    }

    /// The live entry under `key`.
    pub fn get<Q>(&self, key: &Q, now: i64) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let value = &self.map.get(key)?.value;
        (value.expires() > now).then_some(value)
    }

    /// The live entry under `key`, to update it.
    pub fn get_mut<Q>(&mut self, key: &Q, now: i64) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let value = &mut self.map.get_mut(key)?.value;
        (value.expires() > now).then_some(value)
    }

    /// The entry under `key` even if it has expired, for an update whose
    /// caller has no clock: an expired entry stays hidden from `get` anyway.
    pub fn stored_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Some(&mut self.map.get_mut(key)?.value)
    }

    /// True when an entry is stored under `key`, expired or not.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// Removes the entry under `key`, returning it.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entry = self.map.remove(key)?;
        self.compact();
        Some(entry.value)
    }

    /// Drops every expired entry: O(len).
    pub fn sweep(&mut self, now: i64) {
        self.retain(|_, value| value.expires() > now);
    }

    /// Drops expired entries from the oldest end, stopping at the first live
    /// one: amortised O(1), and as good as `sweep` where entries expire in
    /// the order they were inserted (one lifetime for all).
    pub fn sweep_oldest(&mut self, now: i64) {
        while let Some((oldest, stamp)) = self.order.front() {
            match self.map.get(oldest) {
                Some(e) if e.stamp == *stamp && e.value.expires() > now => break,
                Some(e) if e.stamp == *stamp => {
                    let (oldest, _) = self.order.pop_front().expect("front exists");
                    self.map.remove(&oldest);
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
        self.compact();
    }

    /// Keeps only the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.map.retain(|key, entry| keep(key, &entry.value));
        self.compact();
    }

    /// How many entries are stored, expired or not.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// True when the cap is reached: a new key evicts the oldest entry.
    pub fn is_full(&self) -> bool {
        self.map.len() >= self.cap
    }

    /// Every stored entry, expired or not, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.order.iter().filter_map(|(key, stamp)| {
            let entry = self.map.get(key)?;
            (entry.stamp == *stamp).then_some((key, &entry.value))
        })
    }

    /// Slots in the order queue, dead ones included.
    #[cfg(test)]
    pub(super) fn queue_len(&self) -> usize {
        self.order.len()
    }

    fn compact(&mut self) {
        if self.order.len() > 2 * self.map.len() + SLACK {
            let map = &self.map;
            self.order
                .retain(|(key, stamp)| map.get(key).is_some_and(|e| e.stamp == *stamp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value expiring at the second it holds.
    #[derive(Debug, PartialEq)]
    struct At(i64);

    impl Expires for At {
        fn expires(&self) -> i64 {
            self.0
        }
    }

    fn keys<V: Expires>(map: &Expiring<u32, V>) -> Vec<u32> {
        map.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn the_oldest_entry_gives_way_at_the_cap() {
        let mut map = Expiring::new(3);
        for k in 0..3 {
            map.insert(k, At(100));
        }
        assert!(map.is_full());
        map.insert(3, At(100));
        assert_eq!(map.len(), 3);
        assert!(map.get(&0, 0).is_none());
        assert_eq!(keys(&map), [1, 2, 3]);
        // Replacing a stored key makes no room and evicts nothing.
        map.insert(2, At(200));
        assert_eq!(keys(&map), [1, 3, 2]);
        assert_eq!(map.get(&2, 0), Some(&At(200)));
        // An expired entry counts toward the cap until swept.
        let mut map = Expiring::new(2);
        map.insert(0, At(10));
        map.insert(1, At(100));
        map.insert(2, At(100));
        assert_eq!(keys(&map), [1, 2]);
    }

    #[test]
    fn expired_entries_are_hidden_before_a_sweep_and_gone_after() {
        let mut map = Expiring::new(10);
        map.insert(1, At(100));
        map.insert(2, At(50));
        map.insert(3, At(200));
        assert_eq!(map.get(&1, 99), Some(&At(100)));
        assert!(map.get(&1, 100).is_none() && map.get_mut(&1, 100).is_none());
        assert!(map.get_mut(&3, 100).is_some());
        assert_eq!(map.len(), 3, "hidden, still stored");
        assert!(map.contains_key(&2) && map.stored_mut(&2).is_some());
        map.sweep(100);
        assert_eq!(keys(&map), [3]);
        assert!(!map.contains_key(&1) && !map.contains_key(&2));
        map.sweep(200);
        assert!(map.is_empty());
    }

    #[test]
    fn sweeping_the_oldest_stops_at_the_first_live_entry() {
        let mut map = Expiring::new(10);
        map.insert(1, At(10));
        map.insert(2, At(20));
        map.insert(3, At(5));
        map.insert(4, At(30));
        map.insert(5, At(5));
        map.remove(&2);
        map.sweep_oldest(10);
        assert_eq!(keys(&map), [4, 5], "stopped at 4, before the expired 5");
        assert!(map.get(&5, 10).is_none());
        map.sweep(10);
        assert_eq!(keys(&map), [4]);
    }

    #[test]
    fn order_survives_remove_and_reinsert() {
        let mut map = Expiring::new(3);
        for k in 1..=3 {
            map.insert(k, At(100));
        }
        assert_eq!(map.remove(&1), Some(At(100)));
        assert_eq!(map.remove(&1), None);
        map.insert(1, At(100));
        assert_eq!(keys(&map), [2, 3, 1], "once, as the newest");
        // At the cap the oldest live entry goes, not the new 1 through its
        // dead slot at the front.
        map.insert(4, At(100));
        assert_eq!(keys(&map), [3, 1, 4]);
        map.insert(5, At(100));
        assert_eq!(keys(&map), [1, 4, 5]);
        map.retain(|k, _| *k != 4);
        map.insert(4, At(100));
        assert_eq!(keys(&map), [1, 5, 4]);
    }

    #[test]
    fn iteration_goes_oldest_first_with_the_current_values() {
        let mut map: Expiring<String, At> = Expiring::new(10);
        for (k, at) in [("c", 1), ("a", 2), ("b", 3)] {
            map.insert(k.to_string(), At(at));
        }
        map.get_mut("a", 0).unwrap().0 = 20;
        let all: Vec<(&str, i64)> = map.iter().map(|(k, v)| (k.as_str(), v.0)).collect();
        assert_eq!(all, [("c", 1), ("a", 20), ("b", 3)]);
        assert_eq!(map.get("b", 2), Some(&At(3)), "looked up by &str");
    }

    #[test]
    fn the_queue_stays_bounded_under_churn() {
        let mut map = Expiring::new(1000);
        let bound = |map: &Expiring<u32, At>| 2 * map.len() + SLACK;
        for k in 0..10 {
            map.insert(k, At(i64::MAX));
        }
        for k in 10..100_010 {
            map.insert(k, At(i64::MAX));
            map.remove(&k);
            assert!(map.queue_len() <= bound(&map));
        }
        // Replacing, and keys coming back after their removal.
        for i in 0..100_000u32 {
            let k = i % 50;
            if i % 3 == 0 {
                map.remove(&k);
            } else {
                map.insert(k, At(i64::MAX));
            }
            assert!(map.queue_len() <= bound(&map));
        }
        assert!(map.queue_len() <= 2 * 60 + SLACK);
        // At the cap, evictions keep it in step too.
        for k in 1_000_000..1_100_000 {
            map.insert(k, At(0));
            assert!(map.queue_len() <= bound(&map));
        }
        assert_eq!(map.len(), 1000);
        map.sweep(0);
        assert_eq!((map.len(), map.queue_len()), (0, 0));
    }
}
