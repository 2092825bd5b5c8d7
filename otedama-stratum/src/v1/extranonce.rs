//! Extranonce1 allocation: unique across every live session of a pool.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Hands out extranonce1 values. One allocator serves a whole pool (share it with `Arc`);
/// a value is live from allocation until its [`Extranonce1`] is dropped, and no two live
/// sessions ever hold the same value.
///
/// Values are `prefix || counter`. Several pool instances that feed one chain stay disjoint by
/// giving each a different prefix. A released value is remembered for a while so that a miner
/// reconnecting with its old session id can resume it, but only while no one else holds it.
#[derive(Debug)]
pub struct ExtranonceAllocator {
    prefix: Vec<u8>,
    counter_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    live: HashSet<u64>,
    recent: VecDeque<u64>,
    recent_set: HashSet<u64>,
}

/// How many released values stay resumable.
const RESUMABLE: usize = 4096;

/// A bad allocator configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtranonceConfigError {
    /// The counter part must be 1 to 8 bytes.
    #[error("extranonce1 counter of {0} bytes (must be 1 to 8)")]
    CounterSize(usize),
    /// The whole extranonce1 must fit in 16 bytes.
    #[error("extranonce1 of {0} bytes is too long (at most 16)")]
    TooLong(usize),
}

impl ExtranonceAllocator {
    /// An allocator of `prefix || counter` values with a `counter_bytes`-byte counter.
    pub fn new(prefix: &[u8], counter_bytes: usize) -> Result<Arc<Self>, ExtranonceConfigError> {
        if !(1..=8).contains(&counter_bytes) {
            return Err(ExtranonceConfigError::CounterSize(counter_bytes));
        }
        if prefix.len() + counter_bytes > 16 {
            return Err(ExtranonceConfigError::TooLong(prefix.len() + counter_bytes));
        }
        Ok(Arc::new(ExtranonceAllocator {
            prefix: prefix.to_vec(),
            counter_bytes,
            inner: Mutex::new(Inner::default()),
        }))
    }

    /// The length of every value handed out.
    pub fn len(&self) -> usize {
        self.prefix.len() + self.counter_bytes
    }

    /// Always false: values have at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn space(&self) -> u128 {
        1u128 << (8 * self.counter_bytes)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent even if a holder panicked: every update is one step.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn encode(&self, counter: u64) -> Vec<u8> {
        let mut out = self.prefix.clone();
        out.extend_from_slice(&counter.to_be_bytes()[8 - self.counter_bytes..]);
        out
    }

    fn decode(&self, value: &[u8]) -> Option<u64> {
        if value.len() != self.len() || !value.starts_with(&self.prefix) {
            return None;
        }
        let mut bytes = [0u8; 8];
        bytes[8 - self.counter_bytes..].copy_from_slice(&value[self.prefix.len()..]);
        Some(u64::from_be_bytes(bytes))
    }

    /// Allocates a value: `resume` when it names a recently released value that nobody holds,
    /// a fresh one otherwise. `None` only when every value is live.
    pub fn allocate(self: &Arc<Self>, resume: Option<&[u8]>) -> Option<Extranonce1> {
        let mut inner = self.lock();
        if let Some(counter) = resume.and_then(|r| self.decode(r)) {
            if inner.recent_set.remove(&counter) && !inner.live.contains(&counter) {
                inner.recent.retain(|c| *c != counter);
                inner.live.insert(counter);
                return Some(self.lease(counter, true));
            }
        }
        if inner.live.len() as u128 >= self.space() {
            return None;
        }
        let space = self.space();
        loop {
            let candidate = inner.next;
            inner.next = ((u128::from(candidate) + 1) % space) as u64;
            // Skip live values and, while the space allows, values still resumable.
            let crowded = (inner.live.len() + inner.recent.len()) as u128 >= space;
            if inner.live.contains(&candidate)
                || (!crowded && inner.recent_set.contains(&candidate))
            {
                continue;
            }
            if inner.recent_set.remove(&candidate) {
                inner.recent.retain(|c| *c != candidate);
            }
            inner.live.insert(candidate);
            return Some(self.lease(candidate, false));
        }
    }

    fn lease(self: &Arc<Self>, counter: u64, resumed: bool) -> Extranonce1 {
        Extranonce1 {
            bytes: self.encode(counter),
            counter,
            resumed,
            owner: Arc::clone(self),
        }
    }

    fn release(&self, counter: u64) {
        let mut inner = self.lock();
        if inner.live.remove(&counter) {
            inner.recent.push_back(counter);
            inner.recent_set.insert(counter);
            while inner.recent.len() > RESUMABLE {
                if let Some(old) = inner.recent.pop_front() {
                    inner.recent_set.remove(&old);
                }
            }
        }
    }

    /// How many values are live.
    pub fn live(&self) -> usize {
        self.lock().live.len()
    }
}

/// A live extranonce1; dropping it releases the value.
#[derive(Debug)]
pub struct Extranonce1 {
    bytes: Vec<u8>,
    counter: u64,
    resumed: bool,
    owner: Arc<ExtranonceAllocator>,
}

impl Extranonce1 {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether this value was resumed from an earlier session.
    pub fn resumed(&self) -> bool {
        self.resumed
    }
}

impl Drop for Extranonce1 {
    fn drop(&mut self) {
        self.owner.release(self.counter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn resume_only_what_nobody_holds() {
        let alloc = ExtranonceAllocator::new(&[0xab], 1).expect("config");
        let a = alloc.allocate(None).expect("a");
        let a_bytes = a.as_bytes().to_vec();
        // Live: resuming it gives someone else a fresh value.
        let b = alloc.allocate(Some(&a_bytes)).expect("b");
        assert_ne!(b.as_bytes(), a_bytes.as_slice());
        assert!(!b.resumed());
        drop(a);
        let again = alloc.allocate(Some(&a_bytes)).expect("resumed");
        assert_eq!(again.as_bytes(), a_bytes.as_slice());
        assert!(again.resumed());
        // Garbage and foreign prefixes are ignored.
        let c = alloc.allocate(Some(b"not ours")).expect("c");
        assert!(!c.resumed());
        let d = alloc.allocate(Some(&[0xcd, 0x00])).expect("d");
        assert!(!d.resumed());
    }

    #[test]
    fn exhaustion_is_reported_not_wrapped() {
        let alloc = ExtranonceAllocator::new(&[], 1).expect("config");
        let held: Vec<_> = (0..256)
            .map(|_| alloc.allocate(None).expect("free"))
            .collect();
        assert!(alloc.allocate(None).is_none());
        drop(held);
        assert_eq!(alloc.live(), 0);
        assert!(alloc.allocate(None).is_some());
    }

    proptest! {
        #[test]
        fn live_values_never_collide(ops in proptest::collection::vec((any::<bool>(), any::<u8>()), 1..400)) {
            let alloc = ExtranonceAllocator::new(&[7], 1).expect("config");
            let mut held: Vec<Extranonce1> = Vec::new();
            for (allocate, pick) in ops {
                if allocate || held.is_empty() {
                    let resume = held.get(pick as usize % held.len().max(1)).map(|e| e.as_bytes().to_vec());
                    if let Some(e) = alloc.allocate(resume.as_deref().or(Some(&[7, pick]))) {
                        held.push(e);
                    }
                } else {
                    held.swap_remove(pick as usize % held.len());
                }
                let mut seen = std::collections::HashSet::new();
                for e in &held {
                    prop_assert!(seen.insert(e.as_bytes().to_vec()));
                }
                prop_assert_eq!(alloc.live(), held.len());
            }
        }
    }
}
