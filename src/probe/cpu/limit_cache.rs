//! When a container's CPU limit is read again. A limit changes only when its
//! pod is resized, yet reading it costs one file (`cpu.max`) or two
//! (`cpu.cfs_quota_us`, `cpu.cfs_period_us`) per container per scan: as much
//! as the counters themselves. (On v1 the reader re-reads the period only
//! along with a changed quota.) So a container's limit is read when it is first
//! seen, again at the next scan (the runtime writes the limit after it made
//! the cgroup: a scan in between reads no limit), and then every
//! [`REFRESH_SCANS`]th scan, staggered by cgroup path so every scan carries an
//! equal share. A read that failed is retried on the next scan. Emits no
//! metrics.
//!
//! Entries are keyed by a 64-bit hash of the cgroup path rather than the path
//! itself (often 200 bytes): the cache costs about 60 bytes per container. Two
//! paths sharing a hash (odds of 1 in 10^13 among 1,000 containers) would share
//! a limit until the next refresh.

use super::limit::Limit;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

/// A limit is at most this many scans old: one minute at the default 15 s
/// interval.
pub const REFRESH_SCANS: u64 = 4;

/// The limits read in earlier scans, by hash of the cgroup path relative to
/// the hierarchy.
#[derive(Debug, Default)]
pub struct LimitCache {
    scan: u64,
    known: HashMap<u64, Known>,
}

#[derive(Debug)]
struct Known {
    /// `None`: the cgroup has no limit file (no cpu controller there).
    limit: Option<Limit>,
    /// The last scan that met this cgroup.
    seen: u64,
    /// The scan that first read it.
    first: u64,
}

/// What [`LimitCache::lookup`] found.
#[derive(Debug, PartialEq)]
pub enum Cached {
    /// Read recently enough: use this.
    Fresh(Option<Limit>),
    /// Read it now, then [`LimitCache::store`] it; carries the limit read
    /// last time, if any.
    Due(Option<Limit>),
}

impl LimitCache {
    /// Starts a scan: cgroups not met by it are forgotten at [`Self::end_scan`].
    pub fn begin_scan(&mut self) {
        self.scan += 1;
    }

    pub fn lookup(&mut self, rel: &str) -> Cached {
        let (scan, key) = (self.scan, key(rel));
        match self.known.get_mut(&key) {
            Some(known) if !due(key, scan) && scan != known.first + 1 => {
                known.seen = scan;
                Cached::Fresh(known.limit)
            }
            known => Cached::Due(known.and_then(|k| k.limit)),
        }
    }

    pub fn store(&mut self, rel: &str, limit: Option<Limit>) {
        let scan = self.scan;
        let first = self.known.get(&key(rel)).map_or(scan, |k| k.first);
        let known = Known {
            limit,
            seen: scan,
            first,
        };
        self.known.insert(key(rel), known);
    }

    /// Forgets the cgroups this scan did not meet: removed containers, and
    /// those whose limit could not be read (so they are read again next scan).
    pub fn end_scan(&mut self) {
        let scan = self.scan;
        self.known.retain(|_, k| k.seen == scan);
    }
}

fn key(rel: &str) -> u64 {
    // SipHash with fixed keys: the same path gets the same key in every scan.
    BuildHasherDefault::<DefaultHasher>::default().hash_one(rel)
}

/// Each cgroup's turn comes every [`REFRESH_SCANS`] scans, at an offset taken
/// from its path's hash so that turns spread evenly over scans.
fn due(key: u64, scan: u64) -> bool {
    key.wrapping_add(scan).is_multiple_of(REFRESH_SCANS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Option<Limit> = Some(Limit {
        quota_us: Some(50_000),
        period_us: 100_000,
    });

    /// Runs `scans` scans over `rels`, storing `limit` whenever a read is due,
    /// and returns how many reads each scan made.
    fn reads_per_scan(cache: &mut LimitCache, rels: &[String], scans: usize) -> Vec<usize> {
        (0..scans)
            .map(|_| {
                cache.begin_scan();
                let mut reads = 0;
                for rel in rels {
                    if let Cached::Due(_) = cache.lookup(rel) {
                        reads += 1;
                        cache.store(rel, LIMIT);
                    }
                }
                cache.end_scan();
                reads
            })
            .collect()
    }

    fn rels(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("kubepods/burstable/pod{i}/{:064x}", i * 7919))
            .collect()
    }

    #[test]
    fn new_cgroups_are_read_at_once_then_in_turns() {
        let mut cache = LimitCache::default();
        let rels = rels(1000);
        let reads = reads_per_scan(&mut cache, &rels, 2 + 4 * REFRESH_SCANS as usize);
        assert_eq!(reads[0], 1000, "every cgroup is read when first seen");
        assert_eq!(reads[1], 1000, "and again at the next scan");
        // Afterwards each cgroup is read once per REFRESH_SCANS scans...
        let window: usize = reads[2..2 + REFRESH_SCANS as usize].iter().sum();
        assert_eq!(window, 1000, "{reads:?}");
        // ...and the reads spread over the scans rather than bunching.
        for &r in &reads[2..] {
            assert!((150..=350).contains(&r), "{reads:?}");
        }
    }

    #[test]
    fn cached_limit_is_served_until_its_turn() {
        let mut cache = LimitCache::default();
        let rel = "system.slice/docker-x.scope";
        cache.begin_scan();
        assert_eq!(cache.lookup(rel), Cached::Due(None));
        cache.store(rel, None);
        cache.end_scan();
        // The runtime wrote the limit just after it made the cgroup: the
        // second scan reads it.
        cache.begin_scan();
        assert_eq!(cache.lookup(rel), Cached::Due(None));
        cache.store(rel, LIMIT);
        cache.end_scan();
        // Over two refresh periods: served from the cache except on its turn,
        // when the re-read value (the limit was removed) replaces the old one.
        let (mut served, mut expected) = (0, LIMIT);
        for _ in 0..2 * REFRESH_SCANS {
            cache.begin_scan();
            match cache.lookup(rel) {
                Cached::Fresh(l) => {
                    assert_eq!(l, expected);
                    served += 1;
                }
                Cached::Due(previous) => {
                    assert_eq!(previous, expected, "a due lookup hands over the last limit");
                    cache.store(rel, None);
                    expected = None;
                }
            }
            cache.end_scan();
        }
        assert_eq!(served, 2 * (REFRESH_SCANS - 1));
        assert_eq!(expected, None, "the limit was read again");
    }

    #[test]
    fn unread_and_vanished_cgroups_are_forgotten() {
        let mut cache = LimitCache::default();
        cache.begin_scan();
        cache.store("a", LIMIT);
        // "b" failed to read: looked up but never stored.
        assert_eq!(cache.lookup("b"), Cached::Due(None));
        cache.end_scan();
        cache.begin_scan();
        assert_eq!(
            cache.lookup("b"),
            Cached::Due(None),
            "a failed read is retried"
        );
        cache.end_scan();
        // "a" was not met by the last scan: it is gone, and read anew if it returns.
        cache.begin_scan();
        assert_eq!(cache.lookup("a"), Cached::Due(None));
        assert!(cache.known.is_empty());
    }
}
