//! RandomX (rx/0, Monero) on the reference implementation.
//!
//! The C library comes from the `randomx-rs` crate, which builds tevador/RandomX; otedama talks
//! to its stable C API directly, because mining needs what the safe wrapper does not offer: a
//! dataset initialised by several threads, cache and dataset shared across threads, and the
//! pipelined `randomx_calculate_hash_first/next/last` calls.
//!
//! Light mode (a 256 MiB cache) verifies; fast mode (the 2 GiB dataset) mines. A [`RandomX`]
//! handle owns the current key's context; [`RandomX::set_key`] swaps it, and workers pick the new
//! one up at their next scan.

use std::ffi::c_void;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use otedama_core::Target;

use crate::algorithm::{Algorithm, PowAlgorithm, PowOutput, Progress, ScanJob, Solution, Worker};
use crate::HashError;

// Keep the crate linked: it builds and links the static RandomX library whose C API is declared
// below.
use randomx_rs as _;

#[allow(non_camel_case_types)]
#[repr(C)]
struct randomx_cache {
    _private: [u8; 0],
}
#[allow(non_camel_case_types)]
#[repr(C)]
struct randomx_dataset {
    _private: [u8; 0],
}
#[allow(non_camel_case_types)]
#[repr(C)]
struct randomx_vm {
    _private: [u8; 0],
}

const FLAG_LARGE_PAGES: u32 = 1;
const FLAG_FULL_MEM: u32 = 4;

extern "C" {
    fn randomx_get_flags() -> u32;
    fn randomx_alloc_cache(flags: u32) -> *mut randomx_cache;
    fn randomx_init_cache(cache: *mut randomx_cache, key: *const c_void, key_size: usize);
    fn randomx_release_cache(cache: *mut randomx_cache);
    fn randomx_alloc_dataset(flags: u32) -> *mut randomx_dataset;
    fn randomx_dataset_item_count() -> std::ffi::c_ulong;
    fn randomx_init_dataset(
        dataset: *mut randomx_dataset,
        cache: *mut randomx_cache,
        start_item: std::ffi::c_ulong,
        item_count: std::ffi::c_ulong,
    );
    fn randomx_get_dataset_memory(dataset: *mut randomx_dataset) -> *mut c_void;
    fn randomx_release_dataset(dataset: *mut randomx_dataset);
    fn randomx_create_vm(
        flags: u32,
        cache: *mut randomx_cache,
        dataset: *mut randomx_dataset,
    ) -> *mut randomx_vm;
    fn randomx_destroy_vm(vm: *mut randomx_vm);
    fn randomx_calculate_hash(
        vm: *mut randomx_vm,
        input: *const c_void,
        input_size: usize,
        output: *mut c_void,
    );
    fn randomx_calculate_hash_first(vm: *mut randomx_vm, input: *const c_void, input_size: usize);
    fn randomx_calculate_hash_next(
        vm: *mut randomx_vm,
        next_input: *const c_void,
        next_input_size: usize,
        output: *mut c_void,
    );
    fn randomx_calculate_hash_last(vm: *mut randomx_vm, output: *mut c_void);
    fn randomx_calculate_commitment(
        input: *const c_void,
        input_size: usize,
        hash: *const c_void,
        commitment: *mut c_void,
    );
}

/// The pages behind the fast-mode dataset. Its reads are random over 2 GiB, so with 4 KiB pages
/// nearly every read also misses the TLB; 2 MiB pages take most of that cost away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatasetPages {
    /// No dataset: light mode.
    None,
    /// Huge pages of the system's default size (2 MiB on x86-64 Linux) from those the
    /// administrator reserved (`vm.nr_hugepages`).
    Reserved,
    /// Ordinary memory advised for transparent huge pages: the kernel backs it with 2 MiB
    /// pages where it can.
    Transparent,
    /// Small pages (4 KiB on x86-64): huge pages were turned down, or no reserved ones were
    /// free and transparent huge pages are off.
    Standard,
}

impl DatasetPages {
    /// One line for logs: what the dataset got and, short of huge pages, how to get them.
    pub fn describe(self) -> &'static str {
        match self {
            DatasetPages::None => "no dataset (light mode)",
            DatasetPages::Reserved => "reserved huge pages",
            DatasetPages::Transparent => {
                "transparent huge pages (not 1040 reserved 2 MiB pages free; reserve them with \
                 `sysctl vm.nr_hugepages=1040`, twice that to keep them across a key change)"
            }
            DatasetPages::Standard => {
                "small pages, slower (huge pages turned off, or not 1040 reserved 2 MiB pages \
                 free and transparent huge pages off; `sysctl vm.nr_hugepages=1040` reserves \
                 them)"
            }
        }
    }
}

/// Light mode verifies with the cache alone; fast mode mines with the full dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandomXMode {
    /// 256 MiB cache, about a hundredth of fast mode's speed: for verifying shares.
    Light,
    /// 2 GiB dataset built from the cache: for mining.
    Fast,
}

/// A key's cache, and in fast mode its dataset. Read-only once built, so shared freely.
struct Context {
    key: Vec<u8>,
    cache: *mut randomx_cache,
    dataset: *mut randomx_dataset,
    flags: u32,
    pages: DatasetPages,
}

// SAFETY: RandomX documents the cache and dataset as read-only after initialisation and safe to
// use from many VMs on many threads at once; `Context` never mutates them after `build`, and it
// frees them only in `Drop`, when no VM can reference it any more (every worker holds an `Arc`).
unsafe impl Send for Context {}
// SAFETY: as above; shared references only read.
unsafe impl Sync for Context {}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: both pointers came from the matching alloc calls (or are null for no dataset)
        // and are released exactly once, here.
        unsafe {
            if !self.dataset.is_null() {
                randomx_release_dataset(self.dataset);
            }
            randomx_release_cache(self.cache);
        }
    }
}

impl Context {
    fn build(
        key: &[u8],
        mode: RandomXMode,
        threads: usize,
        progress: Progress<'_>,
        huge_pages: bool,
    ) -> Result<Self, HashError> {
        if key.is_empty() {
            return Err(HashError::RandomX("the key must not be empty".into()));
        }
        // SAFETY: a plain query with no arguments.
        let mut flags = unsafe { randomx_get_flags() };
        if mode == RandomXMode::Fast {
            flags |= FLAG_FULL_MEM;
        }
        // SAFETY: flags are those the library recommends for this CPU.
        let cache = unsafe { randomx_alloc_cache(flags) };
        if cache.is_null() {
            return Err(HashError::RandomX(
                "could not allocate the 256 MiB cache".into(),
            ));
        }
        let mut context = Context {
            key: key.to_vec(),
            cache,
            dataset: std::ptr::null_mut(),
            flags,
            pages: DatasetPages::None,
        };
        // SAFETY: `cache` is a fresh allocation; the key pointer and length describe `key`.
        unsafe { randomx_init_cache(cache, key.as_ptr().cast(), key.len()) };
        if mode == RandomXMode::Fast {
            // Reserved 2 MiB pages first; the library answers null when there are none.
            let mut dataset = std::ptr::null_mut();
            if huge_pages {
                // SAFETY: flags as above, plus large pages for this allocation only.
                dataset = unsafe { randomx_alloc_dataset(flags | FLAG_LARGE_PAGES) };
                context.pages = DatasetPages::Reserved;
            }
            if dataset.is_null() {
                // SAFETY: flags as above.
                dataset = unsafe { randomx_alloc_dataset(flags) };
                if dataset.is_null() {
                    return Err(HashError::RandomX(
                        "could not allocate the 2 GiB dataset".into(),
                    ));
                }
                // SAFETY: `dataset` is a fresh, untouched allocation.
                context.pages = unsafe { advise_pages(dataset, huge_pages) };
            }
            context.dataset = dataset;
            context.init_dataset(threads.max(1), progress);
        }
        Ok(context)
    }

    /// Fills the dataset with `threads` threads, each taking the next slice of items.
    fn init_dataset(&self, threads: usize, progress: Progress<'_>) {
        // SAFETY: a plain query.
        let total = u64::from(unsafe { randomx_dataset_item_count() } as u32);
        const CHUNK: u64 = 1 << 16;
        let next = AtomicU64::new(0);
        let done = AtomicU64::new(0);
        let this = SharedPtrs {
            dataset: self.dataset,
            cache: self.cache,
        };
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let ptrs = &this;
                    loop {
                        let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                        if start >= total {
                            break;
                        }
                        let count = CHUNK.min(total - start);
                        // SAFETY: threads take disjoint item ranges of a dataset allocated for
                        // `total` items; the cache is initialised and only read.
                        unsafe {
                            randomx_init_dataset(
                                ptrs.dataset,
                                ptrs.cache,
                                start as std::ffi::c_ulong,
                                count as std::ffi::c_ulong,
                            )
                        };
                        let finished = done.fetch_add(count, Ordering::Relaxed) + count;
                        progress(finished, total);
                    }
                });
            }
        });
    }
}

/// Tells the kernel how to page the dataset, before its first touch so that the pages are
/// faulted in as asked: transparent huge pages when `huge` is true, never when it is false (so
/// 4 KiB pages hold even where transparent huge pages are `always`). Changes no system
/// setting: where transparent huge pages are off, the dataset keeps small pages.
///
/// # Safety
/// `dataset` must be a live dataset allocation.
#[cfg(target_os = "linux")]
unsafe fn advise_pages(dataset: *mut randomx_dataset, huge: bool) -> DatasetPages {
    let enabled =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let offered = enabled.contains("[always]") || enabled.contains("[madvise]");
    // SAFETY: the caller passes a live dataset; the queries only read.
    let (start, items, page) = unsafe {
        (
            randomx_get_dataset_memory(dataset),
            randomx_dataset_item_count(),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let page = usize::try_from(page).unwrap_or(4096).max(1);
    let len = items as usize * 64;
    // madvise wants a page-aligned start; the library aligns the dataset only to a cache line.
    let offset = (start as usize).next_multiple_of(page) - start as usize;
    if start.is_null() || len <= offset || (huge && !offered) {
        return DatasetPages::Standard;
    }
    let advice = if huge {
        libc::MADV_HUGEPAGE
    } else {
        libc::MADV_NOHUGEPAGE
    };
    // SAFETY: the range lies inside the dataset's allocation; the advice changes how it is
    // paged, not what it holds.
    let advised = unsafe {
        libc::madvise(
            start.cast::<u8>().add(offset).cast(),
            (len - offset) / page * page,
            advice,
        )
    };
    if huge && advised == 0 {
        DatasetPages::Transparent
    } else {
        DatasetPages::Standard
    }
}

/// Transparent huge pages are a Linux interface; elsewhere the dataset keeps the default pages.
///
/// # Safety
/// None beyond the Linux version's; kept `unsafe` for one call site.
#[cfg(not(target_os = "linux"))]
unsafe fn advise_pages(_dataset: *mut randomx_dataset, _huge: bool) -> DatasetPages {
    DatasetPages::Standard
}

/// Raw pointers handed to dataset-building threads.
struct SharedPtrs {
    dataset: *mut randomx_dataset,
    cache: *mut randomx_cache,
}

// SAFETY: the threads that receive these write disjoint dataset ranges and only read the cache.
unsafe impl Sync for SharedPtrs {}

/// A RandomX virtual machine bound to one context.
struct Vm {
    vm: *mut randomx_vm,
    context: Arc<Context>,
}

// SAFETY: a VM is used by one thread at a time (it is owned, and `&mut` is needed to hash); the
// library allows a VM to move between threads.
unsafe impl Send for Vm {}

impl Vm {
    fn new(context: Arc<Context>) -> Result<Self, HashError> {
        let (cache, dataset) = if context.dataset.is_null() {
            (context.cache, std::ptr::null_mut())
        } else {
            (std::ptr::null_mut(), context.dataset)
        };
        // SAFETY: cache/dataset match the flags they were built with and outlive the VM, which
        // holds an `Arc` of their context.
        let vm = unsafe { randomx_create_vm(context.flags, cache, dataset) };
        if vm.is_null() {
            return Err(HashError::RandomX(
                "could not create a virtual machine".into(),
            ));
        }
        Ok(Vm { vm, context })
    }

    fn hash(&mut self, input: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        // SAFETY: the VM is live; input and output pointers describe valid buffers (32 bytes
        // out, RANDOMX_HASH_SIZE).
        unsafe {
            randomx_calculate_hash(
                self.vm,
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
            )
        };
        out
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // SAFETY: created by `randomx_create_vm`, destroyed once.
        unsafe { randomx_destroy_vm(self.vm) }
    }
}

/// The context of the current key, shared by a kernel and its workers.
type Slot = Arc<Mutex<Arc<Context>>>;

fn load(slot: &Slot) -> Arc<Context> {
    match slot.lock() {
        Ok(guard) => Arc::clone(&guard),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

/// The RandomX kernel for one key at a time.
pub struct RandomX {
    mode: RandomXMode,
    /// Whether the dataset may use huge pages.
    huge_pages: bool,
    init_threads: usize,
    current: Slot,
    /// A VM for `hash` calls, rebuilt when the key changes.
    verifier: Mutex<Option<Vm>>,
}

impl std::fmt::Debug for RandomX {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomX")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl RandomX {
    /// A kernel for `key` (the seed hash) in the given mode. Fast mode builds the dataset with
    /// `init_threads` threads, which takes from several seconds to a minute.
    pub fn new(key: &[u8], mode: RandomXMode, init_threads: usize) -> Result<Self, HashError> {
        RandomX::with_progress(key, mode, init_threads, &|_, _| {})
    }

    /// As [`RandomX::new`], calling `progress(done, total)` as dataset items are built.
    pub fn with_progress(
        key: &[u8],
        mode: RandomXMode,
        init_threads: usize,
        progress: Progress<'_>,
    ) -> Result<Self, HashError> {
        RandomX::with_pages(key, mode, init_threads, progress, true)
    }

    /// As [`RandomX::with_progress`], choosing whether the fast-mode dataset may use huge
    /// pages (see [`DatasetPages`]); `false` keeps it on 4 KiB pages, for comparisons with
    /// miners run without them.
    pub fn with_pages(
        key: &[u8],
        mode: RandomXMode,
        init_threads: usize,
        progress: Progress<'_>,
        huge_pages: bool,
    ) -> Result<Self, HashError> {
        let context = Context::build(key, mode, init_threads, progress, huge_pages)?;
        Ok(RandomX {
            mode,
            huge_pages,
            init_threads: init_threads.max(1),
            current: Arc::new(Mutex::new(Arc::new(context))),
            verifier: Mutex::new(None),
        })
    }

    /// The pages behind the current key's dataset.
    pub fn dataset_pages(&self) -> DatasetPages {
        load(&self.current).pages
    }

    /// The mode this kernel runs in.
    pub fn mode(&self) -> RandomXMode {
        self.mode
    }

    /// The current key.
    pub fn key(&self) -> Vec<u8> {
        self.context().key.clone()
    }

    fn context(&self) -> Arc<Context> {
        load(&self.current)
    }

    /// Switches to a new key (a new seed hash), rebuilding the cache and, in fast mode, the
    /// dataset. Does nothing when the key is unchanged. Workers move over at their next scan.
    pub fn set_key(&self, key: &[u8]) -> Result<(), HashError> {
        self.set_key_with_progress(key, &|_, _| {})
    }

    /// As [`RandomX::set_key`], reporting dataset progress.
    pub fn set_key_with_progress(
        &self,
        key: &[u8],
        progress: Progress<'_>,
    ) -> Result<(), HashError> {
        if self.context().key == key {
            return Ok(());
        }
        let context = Arc::new(Context::build(
            key,
            self.mode,
            self.init_threads,
            progress,
            self.huge_pages,
        )?);
        match self.current.lock() {
            Ok(mut guard) => *guard = context,
            Err(poisoned) => *poisoned.into_inner() = context,
        }
        Ok(())
    }

    /// Item `index` of the dataset for the current key (64 bytes), computed from the cache.
    ///
    /// Works in both modes; in light mode a dataset is allocated but only the one item is
    /// written.
    pub fn dataset_item(&self, index: u64) -> Result<[u8; 64], HashError> {
        let context = self.context();
        // SAFETY: a plain query.
        let total = u64::from(unsafe { randomx_dataset_item_count() } as u32);
        if index >= total {
            return Err(HashError::RandomX(format!(
                "dataset item {index} is past the last ({total})"
            )));
        }
        let read = |dataset: *mut randomx_dataset| {
            // SAFETY: `dataset` holds `total` 64-byte items and `index < total`; item `index`
            // was initialised before this read.
            unsafe {
                let memory = randomx_get_dataset_memory(dataset).cast::<u8>();
                let mut item = [0u8; 64];
                std::ptr::copy_nonoverlapping(
                    memory.add(index as usize * 64),
                    item.as_mut_ptr(),
                    64,
                );
                item
            }
        };
        if !context.dataset.is_null() {
            return Ok(read(context.dataset));
        }
        // SAFETY: allocation with the context's own flags; pages are only touched for the one
        // item initialised below.
        let dataset = unsafe { randomx_alloc_dataset(context.flags & !FLAG_FULL_MEM) };
        if dataset.is_null() {
            return Err(HashError::RandomX("could not allocate a dataset".into()));
        }
        // SAFETY: one item inside the allocation, from the initialised cache.
        unsafe { randomx_init_dataset(dataset, context.cache, index as std::ffi::c_ulong, 1) };
        let item = read(dataset);
        // SAFETY: allocated above, released once.
        unsafe { randomx_release_dataset(dataset) };
        Ok(item)
    }
}

/// RandomX's commitment: Blake2b-256 over the input and its hash (RandomX v2 API).
pub fn randomx_commitment(input: &[u8], hash: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // SAFETY: pointers and lengths describe valid buffers; the output is 32 bytes.
    unsafe {
        randomx_calculate_commitment(
            input.as_ptr().cast(),
            input.len(),
            hash.as_ptr().cast(),
            out.as_mut_ptr().cast(),
        )
    };
    out
}

impl PowAlgorithm for RandomX {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RandomX
    }

    fn hash(&self, input: &[u8]) -> Result<PowOutput, HashError> {
        let context = self.context();
        let mut guard = match self.verifier.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let stale = guard
            .as_ref()
            .is_none_or(|vm| !Arc::ptr_eq(&vm.context, &context));
        if stale {
            *guard = Some(Vm::new(context)?);
        }
        let vm = guard
            .as_mut()
            .ok_or_else(|| HashError::RandomX("no virtual machine".into()))?;
        Ok(PowOutput::hash_only(vm.hash(input)))
    }

    fn worker(&self) -> Result<Box<dyn Worker>, HashError> {
        Ok(Box::new(RandomXWorker {
            vm: Vm::new(self.context())?,
            slot: Arc::clone(&self.current),
        }))
    }
}

/// A RandomX mining thread: one VM, and the kernel's slot to follow key changes.
struct RandomXWorker {
    vm: Vm,
    slot: Slot,
}

impl Worker for RandomXWorker {
    fn scan(
        &mut self,
        job: &ScanJob,
        nonces: Range<u64>,
        target: &Target,
        found: &mut Vec<Solution>,
    ) -> Result<u64, HashError> {
        job.check_range(&nonces)?;
        if nonces.is_empty() {
            return Ok(0);
        }
        let current = load(&self.slot);
        if !Arc::ptr_eq(&current, &self.vm.context) {
            self.vm = Vm::new(current)?;
        }
        let mut next = job.input().to_vec();
        job.write_nonce(&mut next, nonces.start)?;
        // SAFETY: live VM, valid input buffer.
        unsafe { randomx_calculate_hash_first(self.vm.vm, next.as_ptr().cast(), next.len()) };
        let mut out = [0u8; 32];
        let mut pending = nonces.start;
        for nonce in nonces.start + 1..nonces.end {
            job.write_nonce(&mut next, nonce)?;
            // SAFETY: live VM, valid buffers; the output is the hash of the previous input.
            unsafe {
                randomx_calculate_hash_next(
                    self.vm.vm,
                    next.as_ptr().cast(),
                    next.len(),
                    out.as_mut_ptr().cast(),
                )
            };
            if target.is_met_by(&out) {
                found.push(Solution {
                    nonce: pending,
                    output: PowOutput::hash_only(out),
                });
            }
            pending = nonce;
        }
        // SAFETY: live VM; finishes the hash begun by the last `first`/`next`.
        unsafe { randomx_calculate_hash_last(self.vm.vm, out.as_mut_ptr().cast()) };
        if target.is_met_by(&out) {
            found.push(Solution {
                nonce: pending,
                output: PowOutput::hash_only(out),
            });
        }
        Ok(nonces.end - nonces.start)
    }
}

/// Vectors of the reference library's inner stages that its hashing API does not expose:
/// the Argon2d-filled cache and the reciprocal used by the IMUL_RCP instruction.
#[cfg(test)]
mod inner_stage_tests {
    use super::*;

    extern "C" {
        // Exported with C linkage by the library's reciprocal.h.
        fn randomx_reciprocal(divisor: u32) -> u64;
    }

    fn vectors() -> Vec<serde_json::Value> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/randomx.json");
        let text = std::fs::read_to_string(path).expect("vectors");
        serde_json::from_str(&text).expect("json")
    }

    fn hex_u64(v: &serde_json::Value) -> u64 {
        let text = v.as_str().expect("hex string").trim_start_matches("0x");
        u64::from_str_radix(text, 16).expect("u64 hex")
    }

    #[test]
    fn reciprocals_match() {
        let mut seen = 0;
        for e in vectors()
            .iter()
            .filter(|e| e["kind"] == "randomx_reciprocal")
        {
            let divisor = u32::try_from(e["divisor"].as_u64().expect("divisor")).expect("u32");
            // SAFETY: a pure function of its argument.
            let got = unsafe { randomx_reciprocal(divisor) };
            assert_eq!(
                got,
                e["reciprocal_u64"].as_u64().expect("value"),
                "divisor {divisor}"
            );
            seen += 1;
        }
        assert_eq!(seen, 5);
    }

    #[test]
    fn cache_words_match() {
        let context = Context::build(b"test key 000", RandomXMode::Light, 1, &|_, _| {}, true)
            .expect("cache");
        let mut seen = 0;
        for e in vectors().iter().filter(|e| e["kind"] == "cache_u64") {
            assert_eq!(e["key_ascii"], "test key 000");
            let index =
                usize::try_from(e["cache_u64_index"].as_u64().expect("index")).expect("usize");
            assert!(index < (256 << 20) / 8, "index inside the 256 MiB cache");
            // SAFETY: `randomx_cache` begins with `uint8_t* memory`, the 256 MiB Argon2 output
            // (dataset.hpp), filled by `randomx_init_cache`; `index` is inside it.
            let word = unsafe {
                let memory = *context.cache.cast::<*const u64>();
                memory.add(index).read_unaligned()
            };
            assert_eq!(word, hex_u64(&e["value_u64_hex"]), "cache word {index}");
            seen += 1;
        }
        assert_eq!(seen, 2);
    }
}
