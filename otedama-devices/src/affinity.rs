//! Pinning threads to processors, where the operating system allows it.
//!
//! On Linux with the `affinity` feature this uses `sched_getaffinity` / `sched_setaffinity`
//! through `libc`; everywhere else pinning reports [`AffinityStatus::Unsupported`].

use crate::device::AffinityStatus;

/// The processors this thread may run on, in ascending order; when that cannot be known, the
/// status every thread reports instead of being pinned.
pub(crate) fn allowed_cpus() -> Result<Vec<usize>, AffinityStatus> {
    imp::allowed_cpus()
}

/// Pins the calling thread to `cpu`.
pub(crate) fn pin_current_thread(cpu: usize) -> AffinityStatus {
    imp::pin_current_thread(cpu)
}

#[cfg(all(feature = "affinity", target_os = "linux"))]
#[allow(unsafe_code)]
mod imp {
    use std::mem::{size_of, zeroed};

    use crate::device::AffinityStatus;

    /// The number of processors a `cpu_set_t` can name.
    const SET_SIZE: usize = libc::CPU_SETSIZE as usize;

    fn empty_set() -> libc::cpu_set_t {
        // SAFETY: `cpu_set_t` is a plain bit array; all zeroes is the empty set.
        unsafe { zeroed() }
    }

    pub(super) fn allowed_cpus() -> Result<Vec<usize>, AffinityStatus> {
        let mut set = empty_set();
        // SAFETY: `set` is a valid, writable `cpu_set_t` of the size passed; pid 0 is the
        // calling thread.
        let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return Err(AffinityStatus::Failed {
                os_error: std::io::Error::last_os_error().raw_os_error(),
            });
        }
        let cpus: Vec<usize> = (0..SET_SIZE)
            // SAFETY: `cpu` is below CPU_SETSIZE, so the bit lies inside `set`.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect();
        if cpus.is_empty() {
            return Err(AffinityStatus::Failed { os_error: None });
        }
        Ok(cpus)
    }

    pub(super) fn pin_current_thread(cpu: usize) -> AffinityStatus {
        if cpu >= SET_SIZE {
            return AffinityStatus::Failed {
                os_error: Some(libc::EINVAL),
            };
        }
        let mut set = empty_set();
        // SAFETY: `cpu` was checked to be below CPU_SETSIZE, so the bit lies inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: `set` is a valid `cpu_set_t` of the size passed; pid 0 is the calling thread.
        let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
        if rc == 0 {
            AffinityStatus::Pinned { cpu }
        } else {
            AffinityStatus::Failed {
                os_error: std::io::Error::last_os_error().raw_os_error(),
            }
        }
    }
}

#[cfg(not(all(feature = "affinity", target_os = "linux")))]
mod imp {
    use crate::device::AffinityStatus;

    pub(super) fn allowed_cpus() -> Result<Vec<usize>, AffinityStatus> {
        Err(AffinityStatus::Unsupported)
    }

    pub(super) fn pin_current_thread(_cpu: usize) -> AffinityStatus {
        AffinityStatus::Unsupported
    }
}
