//! Asking Linux for transparent huge pages under the light cache and the dataset.
//!
//! Every dataset node reads 256 or 512 cache nodes at random across the light cache (16 MiB
//! and up); with 4 KiB pages most of those reads also miss the TLB, and the page walk adds to
//! a latency the hash already waits on. Backed by 2 MiB pages the cache needs a few dozen TLB
//! entries instead of thousands: light verification runs about an eighth faster on the
//! development machine. Kernels in the common `madvise` mode only do this when asked, so the
//! buffers are advised before they are first written. The advice is best effort: it changes
//! how pages are backed, never what they hold, and a refusal is ignored.

/// Advises the kernel to back the unused capacity of `buffer` with huge pages. Call it after
/// reserving and before filling, so that the first writes fault in huge pages.
pub(crate) fn advise<T>(buffer: &mut Vec<T>) {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        /// `MADV_HUGEPAGE` in Linux's generic `mman-common.h`, used by x86-64 and AArch64.
        const MADV_HUGEPAGE: i32 = 14;
        const PAGE: usize = 4096;
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        let spare = buffer.spare_capacity_mut();
        let start = spare.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(spare);
        // madvise wants a page-aligned start; the partial first page is left out.
        let first_page = start.next_multiple_of(PAGE);
        if end > first_page {
            // SAFETY: the range lies inside `buffer`'s own allocation (its spare capacity,
            // rounded inwards to a page boundary). MADV_HUGEPAGE only changes how the kernel
            // backs those pages, not their contents or who may access them, so no Rust
            // invariant depends on the call; its result is deliberately ignored.
            unsafe {
                madvise(
                    first_page as *mut std::ffi::c_void,
                    end - first_page,
                    MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        let _ = buffer;
    }
}
