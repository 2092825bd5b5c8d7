//! The [`Device`] trait and the types every device speaks in: jobs, events, hashrate and
//! status reports.

use std::fmt;
use std::ops::Range;
use std::sync::mpsc;
use std::sync::Arc;

use otedama_core::{Hashrate, Target};
use otedama_hash::{ScanJob, Solution};

use crate::error::{DeviceError, JobError};

/// Something that mines: a set of CPU threads, a GPU, an ASIC.
///
/// A device mines one [`DeviceJob`] at a time, set with [`Device::set_job`], and reports what it
/// finds through the [`EventSink`] it was started with. Every event names the job generation it
/// belongs to, so the caller can tell finds on a replaced job from current ones.
pub trait Device: Send {
    /// The name the device was given (for logs and error messages).
    fn name(&self) -> &str;

    /// What kind of device this is.
    fn kind(&self) -> DeviceKind;

    /// Replaces the job the device mines; `None` makes it idle.
    ///
    /// Returns at once. No new work on the previous job starts after this call; work already
    /// under way finishes its current chunk (a fraction of a second), and what it finds is still
    /// delivered, tagged with the previous job's generation.
    fn set_job(&self, job: Option<DeviceJob>);

    /// The live hashrate (smoothed over the last seconds) and the hashes done since start.
    fn hashrate(&self) -> HashrateReport;

    /// The state of the device's threads, their CPU pinning and priority, and any failures.
    fn status(&self) -> DeviceStatus;

    /// Stops mining and waits for the device's threads to finish their current chunk.
    ///
    /// Returns the first failure of any thread, if there was one; later calls return the same.
    /// Dropping a device stops it too.
    fn stop(&mut self) -> Result<(), DeviceError>;
}

/// What kind of hardware a [`Device`] drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceKind {
    /// Threads on the host's processors.
    Cpu,
}

impl DeviceKind {
    /// The lowercase name, as in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A job for a device: what to hash, the share target, the nonces it may use, and the
/// caller's generation number that tags everything found on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceJob {
    generation: u64,
    scan: ScanJob,
    target: Target,
    nonces: Range<u64>,
}

impl DeviceJob {
    /// A job scanning `nonces` of `scan` against `target`, tagged with `generation`.
    ///
    /// The range must be non-empty and fit the scan job's nonce slot. To share a nonce space
    /// between devices, give each a part of it, for example from [`split_nonces`].
    pub fn new(
        generation: u64,
        scan: ScanJob,
        target: Target,
        nonces: Range<u64>,
    ) -> Result<DeviceJob, JobError> {
        if nonces.is_empty() {
            return Err(JobError::EmptyRange {
                generation,
                start: nonces.start,
                end: nonces.end,
            });
        }
        scan.check_range(&nonces)
            .map_err(|source| JobError::NonceRange {
                generation,
                source: Arc::new(source),
            })?;
        Ok(DeviceJob {
            generation,
            scan,
            target,
            nonces,
        })
    }

    /// A job scanning every nonce the scan job's slot holds (for a 64-bit slot, all but
    /// `u64::MAX`).
    pub fn full_range(generation: u64, scan: ScanJob, target: Target) -> DeviceJob {
        let end = u64::try_from(scan.nonce_width().limit()).unwrap_or(u64::MAX);
        DeviceJob {
            generation,
            scan,
            target,
            nonces: 0..end,
        }
    }

    /// The caller's generation number for this job.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The input and its nonce slot.
    pub fn scan(&self) -> &ScanJob {
        &self.scan
    }

    /// The share target a solution must meet.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The nonces the device may use.
    pub fn nonces(&self) -> Range<u64> {
        self.nonces.clone()
    }
}

/// Splits `nonces` into `parts` contiguous ranges of sizes that differ by at most one, in
/// order; when the range holds fewer nonces than `parts`, the last ranges are empty.
///
/// ```
/// use otedama_devices::split_nonces;
///
/// assert_eq!(split_nonces(0..10, 3), vec![0..4, 4..7, 7..10]);
/// assert_eq!(split_nonces(0..1 << 32, 2), vec![0..1 << 31, 1 << 31..1 << 32]);
/// ```
pub fn split_nonces(nonces: Range<u64>, parts: usize) -> Vec<Range<u64>> {
    if parts == 0 {
        return Vec::new();
    }
    let len = u128::from(nonces.end.saturating_sub(nonces.start));
    let parts_wide = parts as u128;
    let (base, extra) = (len / parts_wide, len % parts_wide);
    let mut out = Vec::with_capacity(parts);
    let mut start = u128::from(nonces.start);
    for i in 0..parts_wide {
        let size = base + u128::from(i < extra);
        let end = start + size;
        // Every bound lies within `nonces`, so it fits a u64.
        let lo = u64::try_from(start).unwrap_or(nonces.end);
        let hi = u64::try_from(end).unwrap_or(nonces.end);
        out.push(lo..hi);
        start = end;
    }
    out
}

/// A solution a device found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The generation of the job it was found on.
    pub generation: u64,
    /// The index of the thread (or chip, or core) that found it.
    pub thread: usize,
    /// The nonce and its proof-of-work output.
    pub solution: Solution,
}

/// What a device reports while it mines.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// A nonce whose hash meets the job's target.
    Found(Found),
    /// Every nonce of the job's range has been scanned; the device idles until the next job.
    Exhausted {
        /// The job's generation.
        generation: u64,
    },
    /// A thread stopped on an error; the others keep mining.
    Failed(DeviceError),
}

/// Where a device delivers its [`DeviceEvent`]s.
///
/// Implemented for [`mpsc::Sender`] (unbounded), [`mpsc::SyncSender`] (bounded: an event that
/// does not fit is dropped and counted rather than stalling a mining thread) and for closures
/// `Fn(DeviceEvent) -> bool`, which can forward into any queue, an async channel included.
/// Events are delivered from the mining threads, so delivery should be quick.
pub trait EventSink: Send + Sync + 'static {
    /// Delivers one event; `false` when it could not be (receiver gone, queue full), and the
    /// device counts it in [`DeviceStatus::dropped_events`].
    fn deliver(&self, event: DeviceEvent) -> bool;
}

impl EventSink for mpsc::Sender<DeviceEvent> {
    fn deliver(&self, event: DeviceEvent) -> bool {
        self.send(event).is_ok()
    }
}

impl EventSink for mpsc::SyncSender<DeviceEvent> {
    fn deliver(&self, event: DeviceEvent) -> bool {
        self.try_send(event).is_ok()
    }
}

impl<F> EventSink for F
where
    F: Fn(DeviceEvent) -> bool + Send + Sync + 'static,
{
    fn deliver(&self, event: DeviceEvent) -> bool {
        self(event)
    }
}

/// A device's hashrate: live (smoothed) and in total.
#[derive(Debug, Clone, PartialEq)]
pub struct HashrateReport {
    /// The sum of the threads' live hashrates.
    pub current: Hashrate,
    /// Hashes done since the device started.
    pub hashes: u64,
    /// Each thread's figures, in thread order.
    pub threads: Vec<ThreadHashrate>,
}

/// One thread's hashrate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThreadHashrate {
    /// The thread's index.
    pub thread: usize,
    /// Its live hashrate, smoothed over the device's window; zero while it idles.
    pub current: Hashrate,
    /// Hashes it has done since the device started.
    pub hashes: u64,
}

/// The state of a device and its threads.
#[derive(Debug, Clone)]
pub struct DeviceStatus {
    /// The generation of the job being mined, `None` when idle.
    pub generation: Option<u64>,
    /// Events the sink refused ([`EventSink::deliver`] returned `false`).
    pub dropped_events: u64,
    /// Each thread, in thread order.
    pub threads: Vec<ThreadStatus>,
}

/// The state of one thread.
#[derive(Debug, Clone)]
pub struct ThreadStatus {
    /// The thread's index.
    pub thread: usize,
    /// What it is doing.
    pub state: ThreadState,
    /// Whether it was pinned to a processor.
    pub affinity: AffinityStatus,
    /// Whether its scheduling priority was set, see
    /// [`CpuConfig::priority`](crate::CpuConfig::priority).
    pub priority: PriorityStatus,
    /// Why it stopped, when it failed.
    pub error: Option<DeviceError>,
}

/// What a thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThreadState {
    /// Building its kernel.
    Starting,
    /// Waiting for a job (none set, or its range is done).
    Idle,
    /// Scanning nonces.
    Mining,
    /// Stopped on an error; see [`ThreadStatus::error`].
    Failed,
    /// Stopped because the device was.
    Stopped,
}

/// Whether a thread was pinned to a processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AffinityStatus {
    /// Pinning was not asked for.
    NotRequested,
    /// This build or operating system cannot pin threads (the `affinity` feature is off, or
    /// the OS is not Linux).
    Unsupported,
    /// The thread runs only on this processor.
    Pinned {
        /// The processor's index, as the operating system numbers them.
        cpu: usize,
    },
    /// The operating system refused; the thread runs unpinned.
    Failed {
        /// The OS error number, when there was one.
        os_error: Option<i32>,
    },
}

impl fmt::Display for AffinityStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AffinityStatus::NotRequested => f.write_str("not pinned"),
            AffinityStatus::Unsupported => f.write_str("pinning unsupported"),
            AffinityStatus::Pinned { cpu } => write!(f, "pinned to cpu {cpu}"),
            AffinityStatus::Failed { os_error: Some(e) } => {
                write!(
                    f,
                    "pinning failed ({})",
                    std::io::Error::from_raw_os_error(*e)
                )
            }
            AffinityStatus::Failed { os_error: None } => f.write_str("pinning failed"),
        }
    }
}

/// Whether a thread's scheduling priority was set (on Linux, its nice value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PriorityStatus {
    /// No change was asked for ([`ThreadPriority::Normal`](crate::ThreadPriority::Normal)): the
    /// thread runs at the priority it inherited.
    NotRequested,
    /// This build or operating system cannot set thread priorities (the `affinity` feature is
    /// off, or the OS is not Linux); the thread runs at the priority it inherited.
    Unsupported,
    /// The thread runs with this nice value.
    Applied {
        /// The nice value set, from -20 (most favoured) to 19 (least).
        nice: i32,
    },
    /// The operating system refused (raising a priority needs privileges); the thread runs at
    /// the priority it inherited.
    Failed {
        /// The OS error number, when there was one (`EACCES` or `EPERM` for missing
        /// privileges).
        os_error: Option<i32>,
    },
}

impl fmt::Display for PriorityStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriorityStatus::NotRequested => f.write_str("priority inherited"),
            PriorityStatus::Unsupported => f.write_str("priority unsupported"),
            PriorityStatus::Applied { nice } => write!(f, "nice {nice}"),
            PriorityStatus::Failed { os_error: Some(e) } => {
                write!(
                    f,
                    "setting priority failed ({})",
                    std::io::Error::from_raw_os_error(*e)
                )
            }
            PriorityStatus::Failed { os_error: None } => f.write_str("setting priority failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otedama_hash::NonceWidth;

    #[test]
    fn split_nonces_covers_the_range_once() {
        for (range, parts) in [
            (0..10u64, 3usize),
            (5..6, 4),
            (0..1 << 32, 7),
            (u64::MAX - 10..u64::MAX, 3),
            (0..u64::MAX, 5),
            (3..3, 2),
        ] {
            let split = split_nonces(range.clone(), parts);
            assert_eq!(split.len(), parts);
            let mut next = range.start;
            for part in &split {
                assert_eq!(part.start, next);
                assert!(part.end >= part.start);
                next = part.end;
            }
            assert_eq!(next, range.end.max(range.start));
            let sizes: Vec<u64> = split.iter().map(|r| r.end - r.start).collect();
            let (min, max) = (sizes.iter().min(), sizes.iter().max());
            assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1));
        }
        assert!(split_nonces(0..10, 0).is_empty());
    }

    #[test]
    fn jobs_check_their_range() {
        let scan = ScanJob::header80([0; 80]);
        assert!(matches!(
            DeviceJob::new(1, scan.clone(), Target::MAX, 5..5),
            Err(JobError::EmptyRange { generation: 1, .. })
        ));
        assert!(matches!(
            DeviceJob::new(2, scan.clone(), Target::MAX, 0..(1 << 32) + 1),
            Err(JobError::NonceRange { generation: 2, .. })
        ));
        let job = DeviceJob::new(3, scan.clone(), Target::MAX, 0..1 << 32).expect("fits");
        assert_eq!(job.nonces(), 0..1 << 32);
        assert_eq!(DeviceJob::full_range(3, scan, Target::MAX), job);
        let wide = ScanJob::new(vec![0; 40], 32, NonceWidth::U64).expect("slot fits");
        assert_eq!(
            DeviceJob::full_range(4, wide, Target::MAX).nonces(),
            0..u64::MAX
        );
    }
}
