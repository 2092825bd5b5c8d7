//! [`EpochCache`]: epoch contexts and full datasets shared across threads, built once each,
//! kept within a limit.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use otedama_core::Target;

use crate::algorithm::Progress;
use crate::HashError;

use super::dag::{EpochContext, FullDataset};
use super::epoch::{DagAlgorithm, MAX_EPOCH};
use super::light::LightCache;
use super::Verification;

type Key = (DagAlgorithm, u32);

enum Slot<T> {
    /// A thread is building it; others wait for it rather than build it twice.
    Building,
    Ready(T),
}

struct Entry<T> {
    key: Key,
    slot: Slot<T>,
    /// When it was last handed out, on the cache's own counter (not a clock).
    used: u64,
}

/// The entries of one kind, kept to `limit` ready ones, least recently used evicted first.
struct Table<T> {
    entries: Vec<Entry<T>>,
    limit: usize,
}

enum Found<T> {
    Ready(T),
    Building,
    Absent,
}

impl<T: Clone> Table<T> {
    fn new(limit: usize) -> Self {
        Table {
            entries: Vec::new(),
            limit: limit.max(1),
        }
    }

    fn find(&mut self, key: Key, tick: u64) -> Found<T> {
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(entry) => match &entry.slot {
                Slot::Ready(value) => {
                    entry.used = tick;
                    Found::Ready(value.clone())
                }
                Slot::Building => Found::Building,
            },
            None => Found::Absent,
        }
    }

    fn finish(&mut self, key: Key, value: T, tick: u64) {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.key == key) {
            entry.slot = Slot::Ready(value);
            entry.used = tick;
        }
        loop {
            let ready = self
                .entries
                .iter()
                .filter(|e| matches!(e.slot, Slot::Ready(_)))
                .count();
            if ready <= self.limit {
                break;
            }
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| matches!(e.slot, Slot::Ready(_)))
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => {
                    self.entries.remove(i);
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, key: Key) {
        self.entries.retain(|e| e.key != key);
    }

    fn ready_keys(&self) -> Vec<Key> {
        let mut ready: Vec<(u64, Key)> = self
            .entries
            .iter()
            .filter(|e| matches!(e.slot, Slot::Ready(_)))
            .map(|e| (e.used, e.key))
            .collect();
        ready.sort();
        ready.into_iter().map(|(_, key)| key).collect()
    }
}

struct State {
    contexts: Table<Arc<EpochContext>>,
    datasets: Table<Arc<FullDataset>>,
    tick: u64,
}

impl State {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|p| p.into_inner())
    }
}

/// Takes a `Building` entry out again if its builder fails or panics, and wakes the waiters.
struct BuildGuard<'a, T: Clone> {
    shared: &'a Shared,
    table: fn(&mut State) -> &mut Table<T>,
    key: Key,
    armed: bool,
}

impl<T: Clone> Drop for BuildGuard<'_, T> {
    fn drop(&mut self) {
        if self.armed {
            let mut state = self.shared.lock();
            (self.table)(&mut state).remove(self.key);
            drop(state);
            self.shared.changed.notify_all();
        }
    }
}

/// Epoch contexts (light caches) and full datasets for Ethash and KawPow, shared by every
/// thread of a pool or miner.
///
/// Each is built once, by the first thread that asks; a thread that asks while another builds
/// the same one waits for it, and builds of different epochs run side by side. At most
/// `max_epochs` contexts and `max_datasets` full datasets are kept, the least recently used
/// dropped first. A dropped one lives on while someone still holds its `Arc`; the limits bound
/// what the cache itself keeps.
///
/// Cloning is cheap and gives a handle to the same cache.
///
/// # Example
///
/// Verify a share of Ethash block 22 (a PoC-9 testnet block) against its boundary:
///
/// ```
/// use otedama_core::{Difficulty, DifficultyConvention};
/// use otedama_hash::{DagAlgorithm, EpochCache};
///
/// let hex32 = |s: &str| -> [u8; 32] { hex::decode(s).unwrap().try_into().unwrap() };
/// let header = hex32("372eca2454ead349c3df0ab5d00b0b706b23e49d469387db91811cee0358fc6d");
/// let mix = hex32("2f74cdeb198af0b9abe65d22d372e22fb2d474371774a9583c1cc427a07939f5");
/// let nonce = 0x495732e0ed7a801c;
/// let boundary = DifficultyConvention::Ethash.target_for(Difficulty::new(132_416.0)?);
///
/// let epochs = EpochCache::default();
/// // Builds epoch 0's 16 MiB light cache on first use; later calls share it.
/// let verdict = epochs.verify(DagAlgorithm::Ethash, 22, &header, nonce, &mix, &boundary)?;
/// assert!(verdict.is_valid());
/// // A pool thread of its own builds the next epoch's cache before the chain gets there.
/// let next = epochs.prepare_next(DagAlgorithm::Ethash, 0)?;
/// assert_eq!(next.epoch(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Across an epoch change
///
/// A pool that verifies shares across an epoch boundary keeps at least two contexts (the
/// default is three: the previous epoch for late shares, the current one, and the next) and
/// calls [`prepare_next`](Self::prepare_next) ahead of the boundary, **from a thread of its
/// own**: the call builds the next light cache there (under a second on one core for the
/// epochs in use today) and returns when it is ready, so the share-verifying threads never
/// stall on it. The library starts no threads for this itself.
#[derive(Clone)]
pub struct EpochCache {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EpochCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("EpochCache")
            .field("epochs", &state.contexts.ready_keys())
            .field("datasets", &state.datasets.ready_keys())
            .finish()
    }
}

impl Default for EpochCache {
    fn default() -> Self {
        EpochCache::new(EpochCache::DEFAULT_MAX_EPOCHS)
    }
}

impl EpochCache {
    /// Contexts kept by default: the previous epoch, the current one and the next.
    pub const DEFAULT_MAX_EPOCHS: usize = 3;

    /// A cache keeping at most `max_epochs` contexts (at least one) and one full dataset.
    pub fn new(max_epochs: usize) -> Self {
        EpochCache::with_limits(max_epochs, 1)
    }

    /// A cache keeping at most `max_epochs` contexts and `max_datasets` full datasets (each at
    /// least one).
    pub fn with_limits(max_epochs: usize, max_datasets: usize) -> Self {
        EpochCache {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    contexts: Table::new(max_epochs),
                    datasets: Table::new(max_datasets),
                    tick: 0,
                }),
                changed: Condvar::new(),
            }),
        }
    }

    /// The most contexts kept.
    pub fn max_epochs(&self) -> usize {
        self.shared.lock().contexts.limit
    }

    /// The most full datasets kept.
    pub fn max_datasets(&self) -> usize {
        self.shared.lock().datasets.limit
    }

    /// The context of `epoch` for `algorithm`, built now if it is not kept. The light cache is
    /// shared with the other algorithm's context for the same epoch number when that one is
    /// kept.
    pub fn context(
        &self,
        algorithm: DagAlgorithm,
        epoch: u32,
    ) -> Result<Arc<EpochContext>, HashError> {
        if epoch > MAX_EPOCH {
            return Err(HashError::EpochOutOfRange {
                epoch: u64::from(epoch),
                max: MAX_EPOCH,
            });
        }
        self.acquire(
            |s| &mut s.contexts,
            (algorithm, epoch),
            |state| {
                state.contexts.entries.iter().find_map(|e| match &e.slot {
                    Slot::Ready(c) if c.epoch() == epoch => Some(Arc::clone(c.light())),
                    _ => None,
                })
            },
            |light: Option<Arc<LightCache>>| match light {
                Some(light) => Ok(Arc::new(EpochContext::from_light(algorithm, light))),
                None => EpochContext::build(algorithm, epoch).map(Arc::new),
            },
        )
    }

    /// The context serving block `height`.
    pub fn context_for_height(
        &self,
        algorithm: DagAlgorithm,
        height: u64,
    ) -> Result<Arc<EpochContext>, HashError> {
        self.context(algorithm, algorithm.epoch_of(height)?)
    }

    /// Builds (or finds) the context of the epoch after `current_epoch`, so that it is ready
    /// when the chain gets there. Blocks until it is built: call it from a thread of your own,
    /// not from one that verifies shares.
    pub fn prepare_next(
        &self,
        algorithm: DagAlgorithm,
        current_epoch: u32,
    ) -> Result<Arc<EpochContext>, HashError> {
        let next = current_epoch
            .checked_add(1)
            .ok_or(HashError::EpochOutOfRange {
                epoch: u64::from(current_epoch) + 1,
                max: MAX_EPOCH,
            })?;
        self.context(algorithm, next)
    }

    /// The full dataset of `epoch` for `algorithm`, built now with `threads` threads if it is
    /// not kept (about 1 GiB at epoch 0: some 20 seconds on two cores). `progress(done, total)`
    /// reports items; setting `cancel` stops the build with [`HashError::Cancelled`], and a
    /// later call starts it afresh.
    pub fn dataset(
        &self,
        algorithm: DagAlgorithm,
        epoch: u32,
        threads: usize,
        progress: Progress<'_>,
        cancel: &AtomicBool,
    ) -> Result<Arc<FullDataset>, HashError> {
        let context = self.context(algorithm, epoch)?;
        self.acquire(
            |s| &mut s.datasets,
            (algorithm, epoch),
            |_| (),
            |()| FullDataset::build(context, threads, progress, cancel).map(Arc::new),
        )
    }

    /// Checks a claimed solution at `height`: see [`EpochContext::verify`].
    pub fn verify(
        &self,
        algorithm: DagAlgorithm,
        height: u64,
        header_hash: &[u8; 32],
        nonce: u64,
        mix: &[u8; 32],
        boundary: &Target,
    ) -> Result<Verification, HashError> {
        self.context_for_height(algorithm, height)?.verify(
            height,
            header_hash,
            nonce,
            mix,
            boundary,
        )
    }

    /// The contexts kept, least recently used first.
    pub fn cached_epochs(&self) -> Vec<(DagAlgorithm, u32)> {
        self.shared.lock().contexts.ready_keys()
    }

    /// The full datasets kept, least recently used first.
    pub fn cached_datasets(&self) -> Vec<(DagAlgorithm, u32)> {
        self.shared.lock().datasets.ready_keys()
    }

    /// Hands out the entry `key` of `table`, waiting for a build in progress or doing the build
    /// (outside the lock) if there is none. `prepare` runs under the lock before the build.
    fn acquire<T: Clone, P>(
        &self,
        table: fn(&mut State) -> &mut Table<T>,
        key: Key,
        prepare: impl FnOnce(&State) -> P,
        build: impl FnOnce(P) -> Result<T, HashError>,
    ) -> Result<T, HashError> {
        let shared = &*self.shared;
        let mut state = shared.lock();
        loop {
            let tick = state.next_tick();
            match table(&mut state).find(key, tick) {
                Found::Ready(value) => return Ok(value),
                Found::Building => state = shared.wait(state),
                Found::Absent => break,
            }
        }
        table(&mut state).entries.push(Entry {
            key,
            slot: Slot::Building,
            used: 0,
        });
        let prepared = prepare(&state);
        drop(state);
        let mut guard = BuildGuard {
            shared,
            table,
            key,
            armed: true,
        };
        let value = build(prepared)?;
        let mut state = shared.lock();
        let tick = state.next_tick();
        table(&mut state).finish(key, value.clone(), tick);
        guard.armed = false;
        drop(state);
        shared.changed.notify_all();
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_evict_the_least_recently_used() {
        let mut table: Table<u32> = Table::new(2);
        for (tick, epoch) in [(1, 0u32), (2, 1), (3, 2)] {
            table.entries.push(Entry {
                key: (DagAlgorithm::Ethash, epoch),
                slot: Slot::Building,
                used: 0,
            });
            if epoch == 2 {
                // Touch epoch 0 so that epoch 1 is the oldest when epoch 2 arrives.
                assert!(matches!(
                    table.find((DagAlgorithm::Ethash, 0), 3),
                    Found::Ready(0)
                ));
                table.finish((DagAlgorithm::Ethash, epoch), epoch, tick + 1);
            } else {
                table.finish((DagAlgorithm::Ethash, epoch), epoch, tick);
            }
        }
        assert_eq!(
            table.ready_keys(),
            [(DagAlgorithm::Ethash, 0), (DagAlgorithm::Ethash, 2)]
        );
        assert!(matches!(
            table.find((DagAlgorithm::KawPow, 0), 9),
            Found::Absent
        ));
    }
}
