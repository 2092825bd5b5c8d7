//! Setting a thread's scheduling priority, where the operating system allows it.
//!
//! On Linux with the `affinity` feature this sets the calling thread's nice value with
//! `setpriority(PRIO_PROCESS, gettid(), nice)` through `libc` (on Linux the nice value belongs
//! to the thread, not the process); everywhere else it reports [`PriorityStatus::Unsupported`].

use crate::cpu::ThreadPriority;
use crate::device::PriorityStatus;

/// Gives the calling thread `priority`; [`ThreadPriority::Normal`] leaves it as it is.
///
/// Never panics: a refusal (raising the priority needs `CAP_SYS_NICE` or a `RLIMIT_NICE`
/// allowance) is reported as [`PriorityStatus::Failed`].
pub(crate) fn apply_to_current_thread(priority: ThreadPriority) -> PriorityStatus {
    match priority.nice() {
        None => PriorityStatus::NotRequested,
        Some(nice) => imp::set_current_thread_nice(nice),
    }
}

#[cfg(all(feature = "affinity", target_os = "linux"))]
#[allow(unsafe_code)]
mod imp {
    use crate::device::PriorityStatus;

    pub(super) fn set_current_thread_nice(nice: i32) -> PriorityStatus {
        // SAFETY: `gettid` takes no arguments, cannot fail and touches no memory of ours.
        let tid = unsafe { libc::gettid() };
        // A thread id is always positive; should one not convert, report EINVAL rather than
        // hand `setpriority` a wrong id.
        let Ok(who) = libc::id_t::try_from(tid) else {
            return PriorityStatus::Failed {
                os_error: Some(libc::EINVAL),
            };
        };
        // SAFETY: plain integer arguments and no pointers; with PRIO_PROCESS and a thread id,
        // Linux changes the nice value of that one thread, which is the calling one.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, who, nice) };
        if rc == 0 {
            PriorityStatus::Applied { nice }
        } else {
            PriorityStatus::Failed {
                os_error: std::io::Error::last_os_error().raw_os_error(),
            }
        }
    }
}

#[cfg(not(all(feature = "affinity", target_os = "linux")))]
mod imp {
    use crate::device::PriorityStatus;

    pub(super) fn set_current_thread_nice(_nice: i32) -> PriorityStatus {
        PriorityStatus::Unsupported
    }
}
